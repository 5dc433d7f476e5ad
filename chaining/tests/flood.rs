//! A million chains through one queue: memory stays flat (the chain slab,
//! the backlogs, the DMA pool) and every chain ends. Memory-backed emulated
//! controller, no latency, a one-read native function.

use chaining::{ChainLimits, ChainOutcome, ChainQueue, ChainRequest, ChainStatus, Footprint, Function, QueueConfig};
use ebpf_runtime::XrpContext;
use fs_extents::{ChangeStamp, DevOffset, Extent, ExtentKind, ExtentMap, FileOffset, Registry, TenantId};
use nvme::{Backing, Controller, EmuConfig, EmulatedController};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

const CHAINS: u64 = 1_000_000;
const CHAINS_MAX: usize = 512;
const BLOCKS: u64 = 256;

#[test]
fn a_million_chains_end_and_memory_stays_flat() {
    let emu = Arc::new(EmulatedController::new(Backing::memory(BLOCKS * 4096).unwrap(), EmuConfig::default()).unwrap());
    let ctrl = Controller::attach(emu).unwrap();
    let map =
        ExtentMap::new(vec![Extent { logical: FileOffset(0), physical: DevOffset(0), len: BLOCKS * 4096, kind: ExtentKind::Written }], BLOCKS * 4096, 4096, ChangeStamp::default())
            .unwrap();
    let registry = Arc::new(Registry::new());
    let tenant = TenantId(1);
    registry.add_tenant(tenant);
    let file = registry.add_file(Arc::new(map)).unwrap();
    registry.grant(tenant, file).unwrap();
    let limits = ChainLimits { chains_max: CHAINS_MAX, ..ChainLimits::default() };
    let mut q = ChainQueue::with_limits(&ctrl, 1, registry, QueueConfig { depth: 64, ..QueueConfig::default() }, limits).unwrap();
    let prog = q
        .add_function(Function::native(4096, |_: &[u8], _: &mut [u8], ctx: &mut XrpContext| {
            ctx.done = 1;
            0
        }))
        .unwrap();
    let done = Arc::new(AtomicU64::new(0));
    let bad = Arc::new(AtomicU64::new(0));
    let pool = ctrl.transport().dma().clone();
    let mut first: Option<(Footprint, usize)> = None;
    let mut refused = 0u64;
    for i in 0..CHAINS {
        let mut req = ChainRequest::new(tenant, file, FileOffset((i % BLOCKS) * 4096), 4096, prog);
        let (d, b) = (done.clone(), bad.clone());
        let mut cb = move |o: ChainOutcome| {
            if o.status != ChainStatus::Done {
                b.fetch_add(1, Ordering::Relaxed);
            }
            d.fetch_add(1, Ordering::Relaxed);
        };
        // At the limit the chain comes back: poll, then retry.
        loop {
            match q.try_submit(req, cb) {
                Ok(()) => break,
                Err(r) => {
                    refused += 1;
                    (req, cb) = (r.request, r.done);
                    q.poll().unwrap();
                }
            }
        }
        assert!(q.chains_in_flight() <= CHAINS_MAX);
        if i == 50_000 {
            first = Some((q.footprint(), pool.mapped_bytes()));
        }
    }
    while q.chains_in_flight() > 0 {
        q.poll().unwrap();
    }
    assert_eq!(done.load(Ordering::Relaxed), CHAINS, "every chain ended");
    assert_eq!(bad.load(Ordering::Relaxed), 0, "every chain ended Done");
    assert!(refused > 0, "the limit was reached and pushed back");
    let (early, mapped) = first.unwrap();
    let late = q.footprint();
    assert!(late.chain_slots <= CHAINS_MAX.next_power_of_two(), "{late:?}");
    assert_eq!((late.chain_slots, late.backlog_slots), (early.chain_slots, early.backlog_slots), "no growth between chain 50,000 and chain 1,000,000");
    assert!(late.free_buffers < 64, "read buffers: at most one per command slot ({late:?})");
    assert_eq!(pool.mapped_bytes(), mapped, "DMA memory did not grow");
}
