//! End-to-end chains over the emulated controller on a real ext4 image:
//! every answer checked against an independent traversal of the source file.
// Test and benchmark data: small known values, narrowed on purpose.
#![allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_possible_wrap)]

mod common;

use chaining::{ChainRequest, ChainStatus, Function, ProgId, QueueConfig};
use common::*;
use ebpf_runtime::vm::Engine as VmEngine;
use fs_extents::FileOffset;
use std::sync::{Arc, Mutex};
use workloads::btree::{self, key_at, value_of};
use workloads::{filter, programs};

fn lookup_req(f: &Fixture, prog: ProgId, key: u64) -> ChainRequest {
    ChainRequest::new(T1, f.db, FileOffset(f.db_sb.root), f.db_sb.node_size as u32, prog).with_u64(btree::LK_KEY, key)
}

fn check_lookups(node_size: usize, per: usize, keys: u64, engine: VmEngine) {
    let f = fixture(&format!("lookup-{node_size}-{per}-{engine:?}"), keys, node_size, per, 1);
    let mut q = f.queue(QueueConfig::default());
    let bpf = q.add_function(Function::bpf(programs::lookup(node_size), None, node_size as u32, engine).unwrap()).unwrap();
    let native = q.add_function(btree::native_lookup(node_size)).unwrap();
    for i in (0..keys).step_by((keys / 97).max(1) as usize).chain([0, keys - 1]) {
        for key in [key_at(i), key_at(i) + 1] {
            let (want, nodes) = btree::reference_lookup(&f.db_src, &f.db_sb, key).unwrap();
            for prog in [bpf, native] {
                let o = q.run_blocking(lookup_req(&f, prog, key)).unwrap();
                assert_eq!(o.status, ChainStatus::Done, "key {key} prog {prog:?}");
                assert_eq!(o.scratch_u64(btree::LK_FOUND), u64::from(want.is_some()), "key {key} prog {prog:?}");
                if let Some(v) = want {
                    assert_eq!(o.scratch_u64(btree::LK_VALUE), v);
                    assert_eq!(v, value_of(key, 42));
                }
                assert_eq!(o.hops, nodes, "one program run per node");
                assert_eq!(o.scratch_u64(btree::LK_NODES), u64::from(nodes));
            }
        }
    }
}

#[test]
fn lookups_4k_nodes_jit() {
    check_lookups(4096, 255, 70_000, VmEngine::Jit);
}

#[test]
fn lookups_512_nodes_deep_tree_interpreter() {
    // 8 keys per node: 5000 keys make a tree of depth 5.
    check_lookups(512, 8, 5000, VmEngine::Interpreter);
}

#[test]
fn lookups_512_nodes_jit() {
    check_lookups(512, 31, 20_000, VmEngine::Jit);
}

#[test]
fn range_sums_match_the_reference() {
    let f = fixture("range", 20_000, 512, 16, 1);
    let mut q = f.queue(QueueConfig { hops_max: 4096, ..QueueConfig::default() });
    let bpf = q.add_function(Function::bpf(programs::range_sum(512), None, 512, VmEngine::Jit).unwrap()).unwrap();
    let native = q.add_function(btree::native_range_sum(512)).unwrap();
    for (lo, hi) in [(0u64, 10), (key_at(5), key_at(900)), (key_at(19_000) + 1, u64::MAX), (key_at(100), key_at(100)), (7, 5)] {
        let want = btree::reference_range_sum(&f.db_src, &f.db_sb, lo, hi).unwrap();
        for prog in [bpf, native] {
            let req = ChainRequest::new(T1, f.db, FileOffset(f.db_sb.root), 512, prog).with_u64(btree::RS_LO, lo).with_u64(btree::RS_HI, hi);
            let o = q.run_blocking(req).unwrap();
            assert_eq!(o.status, ChainStatus::Done, "[{lo}, {hi}]");
            assert_eq!((o.scratch_u64(btree::RS_SUM), o.scratch_u64(btree::RS_COUNT)), want, "[{lo}, {hi}] {prog:?}");
        }
    }
}

#[test]
fn filter_reduce_matches_the_reference() {
    let f = fixture("filter", 100, 4096, 255, 64);
    let mut q = f.queue(QueueConfig { hops_max: 1024, ..QueueConfig::default() });
    let bpf = q.add_function(Function::bpf(programs::FILTER_REDUCE, None, 4096, VmEngine::Jit).unwrap()).unwrap();
    let native = q.add_function(filter::native()).unwrap();
    let size = f.nums_bytes.len() as u64;
    for (lo, hi) in [(0u64, u64::MAX), (1000, 5000), (999_999, 999_999)] {
        let want = filter::reference(&f.nums_bytes, lo, hi);
        for prog in [bpf, native] {
            let req = filter::request(ChainRequest::new(T1, f.nums, FileOffset(0), 4096, prog), lo, hi, size);
            let o = q.run_blocking(req).unwrap();
            assert_eq!(o.status, ChainStatus::Done);
            assert_eq!(filter::result(&o.scratch[..]), want, "[{lo}, {hi}] {prog:?}");
            assert_eq!(o.hops, 64);
        }
    }
}

#[test]
fn hundreds_of_chains_in_flight() {
    let f = fixture("many", 50_000, 512, 31, 1);
    let mut q = f.queue(QueueConfig { depth: 64, ..QueueConfig::default() });
    let bpf = q.add_function(Function::bpf(programs::lookup(512), None, 512, VmEngine::Jit).unwrap()).unwrap();
    let results = Arc::new(Mutex::new(Vec::new()));
    let n = 600u64;
    for i in 0..n {
        let key = key_at((i * 7919) % 50_000) + (i % 2);
        let r = results.clone();
        q.submit(lookup_req(&f, bpf, key), move |o| r.lock().unwrap().push((key, o)));
    }
    assert!(q.chains_in_flight() as u64 == n, "all chains admitted at once");
    while results.lock().unwrap().len() < n as usize {
        q.poll().unwrap();
    }
    for (key, o) in results.lock().unwrap().iter() {
        let (want, _) = btree::reference_lookup(&f.db_src, &f.db_sb, *key).unwrap();
        assert_eq!(o.status, ChainStatus::Done);
        assert_eq!(o.scratch_u64(btree::LK_FOUND) == 1, want.is_some(), "key {key}");
        if let Some(v) = want {
            assert_eq!(o.scratch_u64(btree::LK_VALUE), v);
        }
    }
    assert_eq!(q.chains_in_flight(), 0);
}
