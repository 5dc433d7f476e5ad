//! Every way a chain can fail gets its own status, and a failing chain
//! disturbs nothing else in flight. Also fanout, tenants and the reactors.

mod common;

use chaining::{ChainOutcome, ChainRequest, ChainStatus, Engine, EngineConfig, Function, FunctionFactory, ProgId, QueueConfig, TenantConfig};
use common::*;
use ebpf_runtime::vm::Engine as VmEngine;
use ebpf_runtime::XrpContext;
use fs_extents::FileOffset;
use std::sync::{Arc, Mutex};
use workloads::btree::{self, key_at};
use workloads::programs;

/// A native function that always asks for `next` (offset, size) pairs.
fn asks(reads: Vec<(u64, u64)>) -> Function {
    Function::native(4096, move |_d: &[u8], _s: &mut [u8], ctx: &mut XrpContext| {
        for (i, (o, sz)) in reads.iter().enumerate() {
            ctx.next_addr[i] = *o;
            ctx.size[i] = *sz;
        }
        0
    })
}

fn run(q: &mut chaining::ChainQueue, f: &Fixture, prog: ProgId) -> ChainOutcome {
    q.run_blocking(ChainRequest::new(T1, f.db, FileOffset(4096), 4096, prog)).unwrap()
}

#[test]
fn hostile_programs_get_their_defined_errors() {
    let f = fixture("hostile", 20_000, 4096, 255, 1);
    let mut q = f.queue(QueueConfig { hops_max: 64, ..QueueConfig::default() });
    let size = f.db_map.size();
    let loop_forever = q.add_function(asks(vec![(0, 4096)])).unwrap();
    let outside = q.add_function(asks(vec![(size + (1 << 20), 4096)])).unwrap();
    let far = q.add_function(asks(vec![(u64::MAX - 4095, 4096)])).unwrap();
    let odd_size = q.add_function(asks(vec![(0, 4095)])).unwrap();
    let huge = q.add_function(asks(vec![(0, 1 << 30)])).unwrap();
    let abort = q.add_function(Function::native(4096, |_: &[u8], _: &mut [u8], _: &mut XrpContext| 77)).unwrap();

    let o = run(&mut q, &f, loop_forever);
    assert_eq!(o.status, ChainStatus::HopLimit { hops_max: 64 });
    assert_eq!(o.reads, 64, "exactly the limit was read");
    let o = q.run_blocking(ChainRequest::new(T1, f.db, FileOffset(0), 4096, loop_forever).with_hops_max(5)).unwrap();
    assert_eq!(o.status, ChainStatus::HopLimit { hops_max: 5 });

    assert!(matches!(run(&mut q, &f, outside).status, ChainStatus::Access { .. }));
    assert!(matches!(run(&mut q, &f, far).status, ChainStatus::Access { .. }));
    assert!(matches!(run(&mut q, &f, odd_size).status, ChainStatus::BadSize { slot: 0, size: 4095, .. }));
    assert!(matches!(run(&mut q, &f, huge).status, ChainStatus::BadSize { slot: 0, .. }));
    assert_eq!(run(&mut q, &f, abort).status, ChainStatus::Aborted { code: 77, hop: 1 });

    // The first read itself is checked too.
    let bad_first = q.run_blocking(ChainRequest::new(T1, f.db, FileOffset(size + 4096), 4096, abort)).unwrap();
    assert!(matches!(bad_first.status, ChainStatus::Access { .. }));
    let zero_first = q.run_blocking(ChainRequest::new(T1, f.db, FileOffset(0), 0, abort)).unwrap();
    assert!(matches!(zero_first.status, ChainStatus::BadSize { size: 0, .. }));
    let unknown = q.run_blocking(ChainRequest::new(T1, f.db, FileOffset(0), 4096, ProgId(99))).unwrap();
    assert!(matches!(unknown.status, ChainStatus::Invalid(_)));
    let mut big = ChainRequest::new(T1, f.db, FileOffset(0), 4096, abort);
    big.scratch = vec![0; 5000];
    assert!(matches!(q.run_blocking(big).unwrap().status, ChainStatus::Invalid(_)));
    assert_eq!(q.chains_in_flight(), 0, "failed chains leave nothing behind");
}

#[test]
fn access_control_per_tenant() {
    let f = fixture("acl", 1000, 4096, 255, 4);
    let mut q = f.queue(QueueConfig::default());
    let lk = q.add_function(btree::native_lookup(4096)).unwrap();
    // T2 was granted the database but not the numbers file.
    let o = q.run_blocking(ChainRequest::new(T2, f.nums, FileOffset(0), 4096, lk)).unwrap();
    assert!(matches!(&o.status, ChainStatus::Access { reason, .. } if reason.contains("no grant")), "{:?}", o.status);
    let o = q.run_blocking(ChainRequest::new(fs_extents::TenantId(9), f.db, FileOffset(0), 4096, lk)).unwrap();
    assert!(matches!(o.status, ChainStatus::Access { .. }));
    // A program cannot leave its file: the next offset is a file offset.
    let size = f.db_map.size();
    let escape = q.add_function(asks(vec![(size.next_multiple_of(4096), 4096)])).unwrap();
    assert!(matches!(q.run_blocking(ChainRequest::new(T2, f.db, FileOffset(0), 4096, escape)).unwrap().status, ChainStatus::Access { .. }));
}

#[test]
fn device_errors_fail_only_the_chain_that_hit_them() {
    let f = fixture("deverr", 60_000, 4096, 255, 1);
    let mut q = f.queue(QueueConfig::default());
    let lk = q.add_function(Function::bpf(programs::lookup(4096), None, 4096, VmEngine::Jit).unwrap()).unwrap();
    // Fail the device blocks of the first leaf (file offset 4096).
    let seg = f.db_map.translate(fs_extents::FileOffset(4096), 4096).unwrap();
    let fs_extents::Target::Device(dev) = seg.target else { panic!("leaf is not a hole") };
    f.emu.inject_fault(dev.0 / 512..dev.0 / 512 + 8, nvme::Status::UNRECOVERED_READ_ERROR);
    let results = Arc::new(Mutex::new(Vec::new()));
    for i in [0u64, 1, 5000, 30_000, 59_999] {
        let r = results.clone();
        let req = ChainRequest::new(T1, f.db, FileOffset(f.db_sb.root), 4096, lk).with_u64(btree::LK_KEY, key_at(i));
        q.submit(req, move |o| r.lock().unwrap().push((i, o)));
    }
    while results.lock().unwrap().len() < 5 {
        q.poll().unwrap();
    }
    for (i, o) in results.lock().unwrap().iter() {
        if *i < 255 {
            assert_eq!(o.status, ChainStatus::Device { offset: FileOffset(4096), status: nvme::Status::UNRECOVERED_READ_ERROR }, "key {i}");
        } else {
            assert_eq!(o.status, ChainStatus::Done, "key {i}");
            assert_eq!(o.scratch_u64(btree::LK_FOUND), 1);
        }
    }
}

#[test]
fn extent_change_in_the_middle_of_a_chain_is_stale() {
    let f = fixture("stale", 20_000, 512, 8, 1);
    let mut q = f.queue(QueueConfig::default());
    // A lookup that, at its second node, makes the registry replace the
    // file's map (as a refresh that found new extents would).
    let registry = f.registry.clone();
    let (file, map) = (f.db, f.db_map.clone());
    let mut inner = btree::native_lookup(512);
    let mut hop = 0;
    let changing = q
        .add_function(Function::native(512, move |d: &[u8], s: &mut [u8], ctx: &mut XrpContext| {
            hop += 1;
            if hop == 2 {
                // The file moved: its first extent now lives one block later.
                let mut moved: Vec<_> = map.extents().to_vec();
                moved[0].physical = fs_extents::DevOffset(moved[0].physical.0 + 4096);
                let fresh = map.refreshed(fs_extents::ExtentMap::new(moved, map.size(), map.block_size(), map.stamp()).unwrap());
                assert!(fresh.version() > map.version());
                registry.update_file(file, Arc::new(fresh)).unwrap();
            }
            let mut data = d.to_vec();
            inner.call(&mut data, s, ctx).unwrap_or(1)
        }))
        .unwrap();
    let o = q.run_blocking(ChainRequest::new(T1, f.db, FileOffset(f.db_sb.root), 512, changing).with_u64(btree::LK_KEY, key_at(100))).unwrap();
    assert!(matches!(o.status, ChainStatus::Stale { .. }), "{:?}", o.status);
    assert_eq!(o.hops, 2, "the read after the change is not given to the program");
}

#[test]
fn fanout_issues_reads_together_and_runs_the_program_per_block() {
    let f = fixture("fanout", 1000, 4096, 255, 16);
    let mut q = f.queue(QueueConfig::default());
    // First run: ask for the 16 blocks of the numbers file at once. Every
    // later run (one per block, in completion order) adds the block's first
    // word to scratch[0] and counts in scratch[1]; no run sets done, so the
    // chain ends when all 16 have completed (drained).
    let fan = q
        .add_function(Function::native(4096, |d: &[u8], s: &mut [u8], ctx: &mut XrpContext| {
            let runs = btree::u64_at(s, 8);
            if runs == 0 {
                for i in 0..16 {
                    ctx.next_addr[i] = i as u64 * 4096;
                    ctx.size[i] = 4096;
                }
            } else {
                let acc = btree::u64_at(s, 0).wrapping_add(btree::u64_at(d, 0));
                s[0..8].copy_from_slice(&acc.to_le_bytes());
            }
            s[8..16].copy_from_slice(&(runs + 1).to_le_bytes());
            0
        }))
        .unwrap();
    let o = q.run_blocking(ChainRequest::new(T1, f.nums, FileOffset(0), 4096, fan)).unwrap();
    assert_eq!(o.status, ChainStatus::Done);
    assert_eq!(o.hops, 17);
    assert_eq!(o.reads, 17);
    let want = (0..16).fold(0u64, |a, i| a.wrapping_add(btree::u64_at(&f.nums_bytes, i * 4096)));
    assert_eq!(o.scratch_u64(0), want);
    assert_eq!(o.scratch_u64(1), 17);
    // Fanout counts against the hop limit as a whole.
    let o = q.run_blocking(ChainRequest::new(T1, f.nums, FileOffset(0), 4096, fan).with_hops_max(10)).unwrap();
    assert_eq!(o.status, ChainStatus::HopLimit { hops_max: 10 });
}

#[test]
fn a_tenant_with_long_chains_does_not_starve_another() {
    let f = fixture("tenants", 1000, 4096, 255, 4);
    let mut q = f.queue(QueueConfig { depth: 4, hops_max: 1000, ..QueueConfig::default() });
    q.configure_tenant(T1, TenantConfig { hops_max: 1000, inflight_max: 2 });
    let walk = q.add_function(asks(vec![(0, 4096)])).unwrap();
    let one = q
        .add_function(Function::native(4096, |_: &[u8], _: &mut [u8], ctx: &mut XrpContext| {
            ctx.done = 1;
            0
        }))
        .unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    for i in 0..20 {
        let o = order.clone();
        q.submit(ChainRequest::new(T1, f.db, FileOffset(0), 4096, walk).with_hops_max(200), move |_| o.lock().unwrap().push(("long", i)));
    }
    for i in 0..5 {
        let o = order.clone();
        q.submit(ChainRequest::new(T2, f.db, FileOffset(0), 4096, one), move |_| o.lock().unwrap().push(("short", i)));
    }
    while order.lock().unwrap().len() < 25 {
        q.poll().unwrap();
    }
    let order = order.lock().unwrap();
    let first_long = order.iter().position(|(k, _)| *k == "long").unwrap();
    let last_short = order.iter().rposition(|(k, _)| *k == "short").unwrap();
    assert!(last_short < first_long, "short chains of the other tenant finish first: {order:?}");
}

#[test]
fn reactors_serve_many_client_threads() {
    let f = fixture("reactor", 30_000, 512, 31, 1);
    let bpf: FunctionFactory = Arc::new(|| Function::bpf(programs::lookup(512), None, 512, VmEngine::Jit).map_err(|e| e.to_string()));
    let engine = Arc::new(Engine::start(f.ctrl.clone(), f.registry.clone(), vec![bpf], EngineConfig { reactors: 2, channel_capacity: 8, ..EngineConfig::default() }).unwrap());
    let clients: Vec<_> = (0..8u64)
        .map(|t| {
            let (engine, db, root) = (engine.clone(), f.db, f.db_sb.root);
            std::thread::spawn(move || {
                let mut got = Vec::new();
                for i in 0..100u64 {
                    let key = key_at((t * 3571 + i * 17) % 30_000);
                    let req = ChainRequest::new(T1, db, FileOffset(root), 512, ProgId(0)).with_u64(btree::LK_KEY, key);
                    let o = engine.run(req).unwrap();
                    got.push((key, o.scratch_u64(btree::LK_FOUND), o.scratch_u64(btree::LK_VALUE), o.status));
                }
                got
            })
        })
        .collect();
    for c in clients {
        for (key, found, value, status) in c.join().unwrap() {
            assert_eq!(status, ChainStatus::Done);
            assert_eq!(found, 1);
            assert_eq!(value, btree::value_of(key, 42));
        }
    }
    // A factory that fails makes start fail with its message.
    let bad: FunctionFactory = Arc::new(|| Err("no such program".to_string()));
    let e = Engine::start(f.ctrl.clone(), f.registry.clone(), vec![bad], EngineConfig::default()).unwrap_err();
    assert!(e.to_string().contains("no such program"), "{e}");
}

#[test]
fn try_submit_hands_the_chain_back_when_every_reactor_channel_is_full() {
    use chaining::EngineError;
    use std::sync::atomic::{AtomicBool, Ordering};
    let f = fixture("try_submit", 2_000, 512, 31, 1);
    // The function holds the reactor until the test lets go of `gate`, so
    // the reactor takes nothing more off its channel meanwhile.
    let gate = Arc::new(Mutex::new(()));
    let entered = Arc::new(AtomicBool::new(false));
    let held = gate.lock().unwrap();
    let (g, e) = (gate.clone(), entered.clone());
    let blocking: FunctionFactory = Arc::new(move || {
        let (g, e) = (g.clone(), e.clone());
        Ok(Function::native(512, move |_d: &[u8], _s: &mut [u8], ctx: &mut XrpContext| {
            e.store(true, Ordering::SeqCst);
            drop(g.lock().unwrap_or_else(|p| p.into_inner()));
            ctx.done = 1;
            0
        }))
    });
    let cfg = EngineConfig { reactors: 1, channel_capacity: 2, ..EngineConfig::default() };
    let engine = Engine::start(f.ctrl.clone(), f.registry.clone(), vec![blocking], cfg).unwrap();
    let ended = Arc::new(Mutex::new(0u32));
    let count = |ended: &Arc<Mutex<u32>>| {
        let ended = ended.clone();
        move |o: ChainOutcome| {
            assert_eq!(o.status, ChainStatus::Done);
            *ended.lock().unwrap() += 1;
        }
    };
    engine.try_submit(ChainRequest::new(T1, f.db, FileOffset(0), 512, ProgId(0)), count(&ended)).unwrap();
    while !entered.load(Ordering::SeqCst) {
        std::thread::yield_now();
    }
    // The reactor is inside the function: its channel takes two, then refuses.
    engine.try_submit(ChainRequest::new(T1, f.db, FileOffset(512), 512, ProgId(0)), count(&ended)).unwrap();
    engine.try_submit(ChainRequest::new(T1, f.db, FileOffset(1024), 512, ProgId(0)), count(&ended)).unwrap();
    let refused = engine.try_submit(ChainRequest::new(T1, f.db, FileOffset(1536), 512, ProgId(0)), count(&ended)).unwrap_err();
    assert!(matches!(refused.error, EngineError::Busy { capacity: 2 }), "{:?}", refused.error);
    assert_eq!(refused.request.offset, FileOffset(1536), "the request comes back whole");
    assert_eq!(refused.error.to_string(), "busy: every reactor's channel holds its maximum of 2 chains; retry once chains end");
    drop(held);
    // Nothing was lost: the three taken chains end; the refused one can be retried.
    let retry = refused.request;
    while *ended.lock().unwrap() < 3 {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let o = engine.run(retry).unwrap();
    assert_eq!(o.status, ChainStatus::Done);
    assert_eq!(*ended.lock().unwrap(), 3, "the refused chain's callback never ran");
    engine.stop();
}
