//! Unit tests of the chain state machine against the emulated controller
//! with fault injection (the scripted transport): holes, DMA exhaustion,
//! limits, lost and bogus completions, a failed controller, and stopping a
//! reactor with chains in flight. Every wait is bounded.

// Block numbers and sizes here are small constants: the casts are exact.
#![allow(clippy::cast_possible_truncation)]

use super::*;
use crate::reactor::{Engine, EngineConfig, FunctionFactory};
use crate::request::{ChainRequest, ProgId};
use ebpf_runtime::XrpContext;
use fs_extents::FileOffset;
use fs_extents::{ChangeStamp, DevOffset, Extent, ExtentKind, ExtentMap};
use nvme::dma::PoolOptions;
use nvme::emu::{Backing, CompletionFault, EmuConfig, EmulatedController};
use std::sync::Mutex;
use std::time::Instant;

const T: TenantId = TenantId(1);
const BLOCK: u64 = 4096;
/// The file: blocks 0..32 on the device at 0, a hole at blocks 32..48, then
/// blocks 48..64 on the device at block 64.
const FILE_BLOCKS: u64 = 64;
const HOLE: std::ops::Range<u64> = 32..48;
const TIMEOUT: Duration = Duration::from_millis(30);
const WAIT: Duration = Duration::from_secs(5);

struct Fx {
    emu: Arc<EmulatedController>,
    ctrl: Arc<Controller>,
    registry: Arc<Registry>,
    file: FileId,
}

/// Device block `b` starts with the u64 `b + 1` (never zero).
fn fixture(dma: PoolOptions) -> Fx {
    fixture_with(EmuConfig { dma, ..EmuConfig::default() })
}

fn fixture_with(cfg: EmuConfig) -> Fx {
    let mut image = vec![0u8; 1 << 20];
    for b in 0..(image.len() as u64 / BLOCK) {
        let at = (b * BLOCK) as usize;
        image[at..at + 8].copy_from_slice(&(b + 1).to_le_bytes());
    }
    let emu = Arc::new(EmulatedController::new(Backing::memory_from(image), cfg).unwrap());
    let ctrl = Arc::new(Controller::attach(emu.clone()).unwrap());
    let ext = |logical: u64, physical: u64, blocks: u64| Extent {
        logical: FileOffset(logical * BLOCK),
        physical: DevOffset(physical * BLOCK),
        len: blocks * BLOCK,
        kind: ExtentKind::Written,
    };
    let map = ExtentMap::new(vec![ext(0, 0, HOLE.start), ext(HOLE.end, 64, FILE_BLOCKS - HOLE.end)], FILE_BLOCKS * BLOCK, BLOCK, ChangeStamp::default()).unwrap();
    let registry = Arc::new(Registry::new());
    registry.add_tenant(T);
    let file = registry.add_file(Arc::new(map)).unwrap();
    registry.grant(T, file).unwrap();
    Fx { emu, ctrl, registry, file }
}

impl Fx {
    fn queue(&self, depth: u16, limits: ChainLimits) -> ChainQueue {
        ChainQueue::with_limits(&self.ctrl, 1, self.registry.clone(), QueueConfig { depth, ..QueueConfig::default() }, limits).unwrap()
    }
    /// LBAs (512-byte) of device block `b`.
    fn lbas(b: u64) -> std::ops::Range<u64> {
        b * 8..b * 8 + 8
    }
    fn req(&self, block: u64, prog: ProgId) -> ChainRequest {
        ChainRequest::new(T, self.file, FileOffset(block * BLOCK), BLOCK as u32, prog)
    }
}

fn limits() -> ChainLimits {
    ChainLimits { command_timeout: TIMEOUT, ..ChainLimits::default() }
}

/// Reads one block: scratch word 0 gets the block's first u64; done.
fn one_shot() -> Function {
    Function::native(BLOCK as u32, |d: &[u8], s: &mut [u8], ctx: &mut XrpContext| {
        s[..8].copy_from_slice(&d[..8]);
        ctx.done = 1;
        0
    })
}

/// First run asks for blocks 0..n at once; later runs do nothing (drains).
fn fan(n: usize, size: u64) -> Function {
    Function::native(BLOCK as u32, move |_: &[u8], s: &mut [u8], ctx: &mut XrpContext| {
        if s[0] == 0 {
            s[0] = 1;
            for i in 0..n {
                ctx.next_addr[i] = i as u64 * BLOCK;
                ctx.size[i] = size;
            }
        }
        0
    })
}

type Results = Arc<Mutex<Vec<(u64, ChainOutcome)>>>;

fn submit_all(q: &mut ChainQueue, fx: &Fx, prog: ProgId, blocks: &[u64]) -> Results {
    let out: Results = Arc::new(Mutex::new(Vec::new()));
    for &b in blocks {
        let o = out.clone();
        q.submit(fx.req(b, prog), move |r| o.lock().unwrap().push((b, r)));
    }
    out
}

/// Polls until `n` chains reported (errors from a failed queue allowed).
fn wait_for(q: &mut ChainQueue, out: &Results, n: usize) {
    let t0 = Instant::now();
    while out.lock().unwrap().len() < n {
        let _ = q.poll();
        assert!(t0.elapsed() < WAIT, "chains did not end within {WAIT:?}");
    }
}

#[test]
fn a_hole_is_served_as_zeros_without_a_device_read() {
    let fx = fixture(PoolOptions::default());
    let mut q = fx.queue(8, limits());
    let p = q.add_function(one_shot()).unwrap();
    // Dirty the one read buffer first, so zeros cannot be left-overs.
    assert_eq!(q.run_blocking(fx.req(3, p)).unwrap().scratch_u64(0), 4);
    let reads = fx.emu.stats.reads.load(std::sync::atomic::Ordering::Relaxed);
    let o = q.run_blocking(fx.req(HOLE.start + 1, p)).unwrap();
    assert_eq!(o.status, ChainStatus::Done);
    assert_eq!(o.scratch_u64(0), 0, "a hole reads as zeros");
    assert_eq!((o.reads, o.hops), (0, 1));
    assert_eq!(fx.emu.stats.reads.load(std::sync::atomic::Ordering::Relaxed), reads, "no device read for a hole");
    assert_eq!(q.stats().hole_reads, 1);
    // Past the hole the file maps to device block 64 + (b - 48).
    assert_eq!(q.run_blocking(fx.req(HOLE.end, p)).unwrap().scratch_u64(0), 65);
}

#[test]
fn dma_exhaustion_ends_the_chain_and_the_queue_recovers() {
    // One 2 MiB chunk: the queues take a few pages, one 1 MiB read buffer
    // fits, a second does not.
    let fx = fixture(PoolOptions { limit_bytes: 2 << 20, allow_fallback: true });
    let cfg = QueueConfig { depth: 8, buf_size: 1 << 20, ..QueueConfig::default() };
    let mut q = ChainQueue::with_limits(&fx.ctrl, 1, fx.registry.clone(), cfg, limits()).unwrap();
    let fan2 = q.add_function(fan(2, BLOCK)).unwrap();
    let one = q.add_function(one_shot()).unwrap();
    let o = q.run_blocking(fx.req(0, fan2)).unwrap();
    assert!(matches!(&o.status, ChainStatus::Submit(m) if m.contains("DMA")), "{:?}", o.status);
    // The chain reported at once; its read still in flight drains into it.
    let t0 = Instant::now();
    while q.chains_in_flight() > 0 {
        q.poll().unwrap();
        assert!(t0.elapsed() < WAIT);
    }
    let o = q.run_blocking(fx.req(5, one)).unwrap();
    assert_eq!((o.scratch_u64(0), o.status), (6, ChainStatus::Done));
}

#[test]
fn a_lost_read_times_out_only_its_own_chain() {
    let fx = fixture(PoolOptions::default());
    fx.emu.inject_completion_fault(Fx::lbas(2), CompletionFault::Drop);
    let mut q = fx.queue(8, limits());
    let p = q.add_function(one_shot()).unwrap();
    let t0 = Instant::now();
    let out = submit_all(&mut q, &fx, p, &[2, 3, 4]);
    wait_for(&mut q, &out, 3);
    for (b, o) in out.lock().unwrap().iter() {
        if *b == 2 {
            assert_eq!(o.status, ChainStatus::Timeout { offset: FileOffset(2 * BLOCK), timeout_ms: 30 });
        } else {
            assert_eq!(o.status, ChainStatus::Done, "block {b}");
            assert_eq!(o.scratch_u64(0), b + 1);
        }
    }
    assert!(t0.elapsed() >= TIMEOUT);
    assert_eq!(q.chains_in_flight(), 0);
    assert_eq!(q.failure(), None, "one lost read does not fail the queue");
    assert_eq!(q.run_blocking(fx.req(7, p)).unwrap().status, ChainStatus::Done);
}

#[test]
fn a_late_read_times_out_and_a_short_delay_does_not() {
    let fx = fixture(PoolOptions::default());
    fx.emu.inject_completion_fault(Fx::lbas(2), CompletionFault::Delay(Duration::from_secs(30)));
    fx.emu.inject_completion_fault(Fx::lbas(3), CompletionFault::Delay(Duration::from_millis(5)));
    let mut q = fx.queue(8, limits());
    let p = q.add_function(one_shot()).unwrap();
    let t0 = Instant::now();
    assert_eq!(q.run_blocking(fx.req(3, p)).unwrap().status, ChainStatus::Done);
    let o = q.run_blocking(fx.req(2, p)).unwrap();
    assert_eq!(o.status, ChainStatus::Timeout { offset: FileOffset(2 * BLOCK), timeout_ms: 30 });
    assert!(t0.elapsed() < Duration::from_secs(5), "the 30 s delay was not waited for");
    assert_eq!(q.failure(), None);
    assert_eq!(q.run_blocking(fx.req(4, p)).unwrap().status, ChainStatus::Done);
}

#[test]
fn a_duplicate_completion_fails_the_queue_and_ends_every_chain() {
    let fx = fixture(PoolOptions::default());
    fx.emu.inject_completion_fault(Fx::lbas(2), CompletionFault::Duplicate);
    // A shallow queue: most chains wait in the backlog when it fails.
    let mut q = fx.queue(4, limits());
    let p = q.add_function(one_shot()).unwrap();
    let blocks: Vec<u64> = (0..12).collect();
    let out = submit_all(&mut q, &fx, p, &blocks);
    wait_for(&mut q, &out, blocks.len());
    let failed = out.lock().unwrap().iter().filter(|(_, o)| matches!(o.status, ChainStatus::QueueFailed(nvme::QueueFailure::BogusCompletion { .. }))).count();
    assert!(failed >= 8, "chains in flight and in the backlog end with the failure ({failed})");
    assert_eq!(q.chains_in_flight(), 0);
    assert!(matches!(q.poll(), Err(ChainError::Queue(QueueError::Failed { .. }))));
    // Later chains end at once, and run_blocking returns.
    let o = q.run_blocking(fx.req(1, p)).unwrap();
    assert!(matches!(o.status, ChainStatus::QueueFailed(_)), "{:?}", o.status);
}

#[test]
fn a_fatal_controller_ends_run_blocking() {
    let fx = fixture(PoolOptions::default());
    let mut q = fx.queue(8, limits());
    let p = q.add_function(one_shot()).unwrap();
    fx.emu.set_fatal();
    let t0 = Instant::now();
    let o = q.run_blocking(fx.req(1, p)).unwrap();
    assert!(matches!(o.status, ChainStatus::QueueFailed(nvme::QueueFailure::ControllerFatal { .. })), "{:?}", o.status);
    assert!(t0.elapsed() < Duration::from_secs(2));
}

#[test]
fn limits_push_back_instead_of_growing() {
    let fx = fixture(PoolOptions::default());
    let mut q = fx.queue(8, ChainLimits { chains_max: 4, backlog_per_tenant_max: 4, ..limits() });
    let p = q.add_function(one_shot()).unwrap();
    let out = submit_all(&mut q, &fx, p, &[0, 1, 2, 3]);
    let r = q.try_submit(fx.req(4, p), |_| {}).unwrap_err();
    assert_eq!(r.status, ChainStatus::Busy { limit: "chains in flight on the queue", max: 4 });
    assert_eq!(r.request.offset, FileOffset(4 * BLOCK), "the request comes back");
    // `submit` ends the chain at once instead; nothing grows.
    let busy: Results = Arc::new(Mutex::new(Vec::new()));
    for b in 0..10_000u64 {
        let o = busy.clone();
        q.submit(fx.req(b % 8, p), move |r| o.lock().unwrap().push((b, r)));
    }
    assert_eq!(busy.lock().unwrap().len(), 10_000);
    assert!(busy.lock().unwrap().iter().all(|(_, o)| matches!(o.status, ChainStatus::Busy { .. })));
    assert!(q.footprint().chain_slots <= 4, "{:?}", q.footprint());
    wait_for(&mut q, &out, 4);
    assert!(out.lock().unwrap().iter().all(|(_, o)| o.status.is_done()));
    // A fanout past the tenant's backlog ends its chain Busy.
    let wide = q.add_function(fan(8, BLOCK)).unwrap();
    let o = q.run_blocking(fx.req(0, wide)).unwrap();
    assert_eq!(o.status, ChainStatus::Busy { limit: "the tenant's backlog of reads", max: 4 });
    assert_eq!(q.try_submit(fx.req(0, p), |_| {}).map_err(|r| r.status), Ok(()));
}

#[test]
fn stopping_a_reactor_with_chains_in_flight_ends_them_all() {
    let fx = fixture(PoolOptions::default());
    fx.emu.inject_completion_fault(Fx::lbas(2), CompletionFault::Drop);
    let f: FunctionFactory = Arc::new(|| Ok(one_shot()));
    let cfg = EngineConfig { reactors: 1, pin_reactors: false, limits: limits(), ..EngineConfig::default() };
    let engine = Engine::start(fx.ctrl.clone(), fx.registry.clone(), vec![f], cfg).unwrap();
    // A lost read: run() returns with the deadline's status.
    let o = engine.run(fx.req(2, ProgId(0))).unwrap();
    assert!(matches!(o.status, ChainStatus::Timeout { .. }), "{:?}", o.status);
    let out: Results = Arc::new(Mutex::new(Vec::new()));
    for b in [2u64, 3, 2, 4, 2, 5] {
        let o = out.clone();
        engine.submit(fx.req(b, ProgId(0)), move |r| o.lock().unwrap().push((b, r))).unwrap();
    }
    let t0 = Instant::now();
    engine.stop();
    assert!(t0.elapsed() < WAIT);
    let out = out.lock().unwrap();
    assert_eq!(out.len(), 6, "every chain ended before the reactor stopped");
    for (b, o) in out.iter() {
        let timed_out = matches!(o.status, ChainStatus::Timeout { .. });
        assert_eq!(timed_out, *b == 2, "block {b}: {:?}", o.status);
    }
}

#[test]
fn a_failed_reactor_queue_is_reported_through_the_engine() {
    let fx = fixture(PoolOptions::default());
    fx.emu.inject_completion_fault(Fx::lbas(2), CompletionFault::CorruptCid);
    let f: FunctionFactory = Arc::new(|| Ok(one_shot()));
    let cfg = EngineConfig { reactors: 1, pin_reactors: false, limits: limits(), recover_every: None, ..EngineConfig::default() };
    let engine = Engine::start(fx.ctrl.clone(), fx.registry.clone(), vec![f], cfg).unwrap();
    assert_eq!(engine.queue_failure(0), None);
    let o = engine.run(fx.req(2, ProgId(0))).unwrap();
    assert!(matches!(o.status, ChainStatus::QueueFailed(_)), "{:?}", o.status);
    // Recorded when the reactor's poll returns, just after the chains ended.
    let t0 = Instant::now();
    let msg = loop {
        if let Some(m) = engine.queue_failure(0) {
            break m;
        }
        assert!(t0.elapsed() < WAIT, "the failure is reported");
        std::thread::sleep(Duration::from_millis(1));
    };
    assert!(msg.contains("not in flight"), "{msg}");
    // Without recovery, later chains on that reactor end at once.
    assert!(matches!(engine.run(fx.req(3, ProgId(0))).unwrap().status, ChainStatus::QueueFailed(_)));
    assert_eq!(engine.recoveries(0), 0);
}

/// Runs chains on blocks 3, 4, ... until `n` in a row end `Done` with the
/// right data; returns the statuses of the rest. Bounded by [`WAIT`].
fn until_done_in_a_row(engine: &Engine, fx: &Fx, n: usize) -> Vec<ChainStatus> {
    let (t0, mut in_a_row, mut others) = (Instant::now(), 0, Vec::new());
    for b in (3..16u64).cycle() {
        let o = engine.run(fx.req(b, ProgId(0))).unwrap();
        if o.status.is_done() {
            assert_eq!(o.scratch_u64(0), b + 1, "block {b}");
            in_a_row += 1;
            if in_a_row == n {
                return others;
            }
        } else {
            in_a_row = 0;
            others.push(o.status);
        }
        assert!(t0.elapsed() < WAIT, "the engine came back: {others:?}");
    }
    unreachable!("cycle() never ends")
}

#[test]
fn a_reactor_replaces_a_queue_pair_that_failed() {
    // One queue id only: the failed pair must give its id back before the
    // new one is made.
    let fx = fixture_with(EmuConfig { io_queues: 1, ..EmuConfig::default() });
    fx.emu.inject_completion_fault(Fx::lbas(2), CompletionFault::CorruptCid);
    let f: FunctionFactory = Arc::new(|| Ok(one_shot()));
    let cfg = EngineConfig { reactors: 1, pin_reactors: false, limits: limits(), ..EngineConfig::default() };
    let engine = Engine::start(fx.ctrl.clone(), fx.registry.clone(), vec![f], cfg).unwrap();
    let o = engine.run(fx.req(2, ProgId(0))).unwrap();
    assert!(matches!(o.status, ChainStatus::QueueFailed(nvme::QueueFailure::BogusCompletion { .. })), "{:?}", o.status);
    // The reactor rebuilt its queue pair before taking the next chain.
    assert_eq!(until_done_in_a_row(&engine, &fx, 4), []);
    assert_eq!(engine.recoveries(0), 1);
    assert!(engine.queue_failure(0).is_some_and(|m| m.contains("not in flight")));
    assert_eq!(fx.ctrl.resets(), 0, "a bogus completion needs a new queue pair, not a reset");
}

#[test]
fn a_fatal_controller_is_reset_once_and_every_reactor_comes_back() {
    let fx = fixture(PoolOptions::default());
    let f: FunctionFactory = Arc::new(|| Ok(one_shot()));
    let cfg = EngineConfig { reactors: 2, pin_reactors: false, limits: limits(), ..EngineConfig::default() };
    let engine = Engine::start(fx.ctrl.clone(), fx.registry.clone(), vec![f], cfg).unwrap();
    assert_eq!(until_done_in_a_row(&engine, &fx, 2), []);
    fx.emu.set_fatal();
    let o = engine.run(fx.req(3, ProgId(0))).unwrap();
    assert!(matches!(o.status, ChainStatus::QueueFailed(_)), "{:?}", o.status);
    // Chains round-robin over both reactors: a run of Done is both back.
    let failed = until_done_in_a_row(&engine, &fx, 6);
    assert!(failed.iter().all(|s| matches!(s, ChainStatus::QueueFailed(_))), "{failed:?}");
    assert_eq!(fx.ctrl.resets(), 1, "one reset serves both reactors");
    assert_eq!(engine.recoveries(0) + engine.recoveries(1), 2);
    assert!(!fx.ctrl.is_failed());
}

#[test]
fn a_reactor_without_a_queue_pair_ends_chains_at_once_and_tries_again_later() {
    let fx = fixture(PoolOptions::default());
    fx.emu.inject_completion_fault(Fx::lbas(2), CompletionFault::CorruptCid);
    // The function can be made at start, then not twice (both tries of the
    // first rebuild), then again.
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c = calls.clone();
    let f: FunctionFactory = Arc::new(move || match c.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
        1 | 2 => Err("not now".into()),
        _ => Ok(one_shot()),
    });
    let gap = Duration::from_secs(2);
    let cfg = EngineConfig { reactors: 1, pin_reactors: false, limits: limits(), recover_every: Some(gap), ..EngineConfig::default() };
    let engine = Engine::start(fx.ctrl.clone(), fx.registry.clone(), vec![f], cfg).unwrap();
    let t0 = Instant::now();
    assert!(matches!(engine.run(fx.req(2, ProgId(0))).unwrap().status, ChainStatus::QueueFailed(_)));
    let o = engine.run(fx.req(3, ProgId(0))).unwrap();
    assert!(matches!(o.status, ChainStatus::QueueFailed(nvme::QueueFailure::BogusCompletion { .. })), "{:?}", o.status);
    assert!(t0.elapsed() < gap, "ended at once, not after the next try");
    let msg = engine.queue_failure(0).unwrap();
    assert!(msg.contains("not in flight") && msg.ends_with("; building a new queue pair failed: function 0: not now"), "{msg}");
    assert_eq!(engine.recoveries(0), 0);
    // Chains end QueueFailed until the second try, one gap later, works.
    let failed = until_done_in_a_row(&engine, &fx, 2);
    assert!(failed.iter().all(|s| matches!(s, ChainStatus::QueueFailed(_))), "{failed:?}");
    assert!(t0.elapsed() >= gap, "the second try waited for the gap");
    assert_eq!(engine.recoveries(0), 1);
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 4, "start, two failed tries, one that worked");
}

#[test]
fn a_reactor_takes_only_the_chains_its_queue_has_room_for() {
    let fx = fixture(PoolOptions::default());
    let f: FunctionFactory = Arc::new(|| Ok(one_shot()));
    let lim = ChainLimits { chains_max: 2, ..limits() };
    let cfg = EngineConfig { reactors: 1, pin_reactors: false, channel_capacity: 64, limits: lim, ..EngineConfig::default() };
    let engine = Arc::new(Engine::start(fx.ctrl.clone(), fx.registry.clone(), vec![f], cfg).unwrap());
    // Many more chains than the queue may hold arrive at once: the reactor
    // leaves the rest in its channel instead of refusing them Busy.
    let out: Results = Arc::new(Mutex::new(Vec::new()));
    for b in 0..200u64 {
        let o = out.clone();
        engine.submit(fx.req(b % 16, ProgId(0)), move |r| o.lock().unwrap().push((b, r))).unwrap();
    }
    let t0 = Instant::now();
    while out.lock().unwrap().len() < 200 {
        assert!(t0.elapsed() < WAIT);
        std::thread::sleep(Duration::from_millis(1));
    }
    for (b, o) in out.lock().unwrap().iter() {
        assert_eq!(o.status, ChainStatus::Done, "chain {b}");
        assert_eq!(o.scratch_u64(0), b % 16 + 1);
    }
}
