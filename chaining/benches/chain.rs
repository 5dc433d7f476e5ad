//! Software cost of chaining, without modelled device latency: the
//! memory-backed emulated controller, one thread (the device runs inside the
//! poll). bpf-chain (the bundled program, JIT) against user-chain (the same
//! traversal as a Rust closure), sharing everything else.
//!
//! cargo bench -p chaining --bench chain
// Test and benchmark data: small known values, narrowed on purpose.
#![allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_possible_wrap)]

use chaining::{ChainQueue, ChainRequest, Function, ProgId, QueueConfig};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ebpf_runtime::vm::Engine as VmEngine;
use fs_extents::{ChangeStamp, DevOffset, Extent, ExtentKind, ExtentMap, FileId, FileOffset, Registry, TenantId};
use nvme::{Backing, Controller, EmuConfig, EmulatedController, Transport};
use std::io::Cursor;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use workloads::btree::{self, key_at};
use workloads::{filter, programs};

const T: TenantId = TenantId(1);

/// The emulated controller, with the time spent inside it (the device's
/// work: fetching commands, copying data, posting completions) counted, so
/// that the host software's share can be reported apart from the device's.
#[derive(Debug)]
struct Timed {
    emu: EmulatedController,
    device_ns: AtomicU64,
}

impl Transport for Timed {
    fn name(&self) -> String {
        self.emu.name()
    }
    fn read32(&self, off: u32) -> u32 {
        self.emu.read32(off)
    }
    fn write32(&self, off: u32, v: u32) {
        // Doorbell writes are the host's work (an MMIO store on real hardware).
        self.emu.write32(off, v)
    }
    fn dma(&self) -> &nvme::DmaPool {
        self.emu.dma()
    }
    fn service(&self, qid: u16) {
        let t0 = Instant::now();
        self.emu.service(qid);
        self.device_ns.fetch_add(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }
}

/// A namespace holding `image` at offset 0, registered as one file.
fn setup(image: Vec<u8>) -> (ChainQueue, FileId) {
    setup_timed(image).0
}

fn setup_timed(image: Vec<u8>) -> ((ChainQueue, FileId), Arc<Timed>) {
    let len = image.len() as u64;
    let emu = EmulatedController::new(Backing::memory_from(image), EmuConfig { block_size: 512, ..EmuConfig::default() }).unwrap();
    let timed = Arc::new(Timed { emu, device_ns: AtomicU64::new(0) });
    let ctrl = Controller::attach(timed.clone()).unwrap();
    let registry = Arc::new(Registry::new());
    registry.add_tenant(T);
    let ext = Extent { logical: FileOffset(0), physical: DevOffset(0), len, kind: ExtentKind::Written };
    let map = ExtentMap::new(vec![ext], len, 4096, ChangeStamp::default()).unwrap();
    let file = registry.add_file(Arc::new(map)).unwrap();
    registry.grant(T, file).unwrap();
    let q = ChainQueue::new(&ctrl, 1, registry, QueueConfig { depth: 128, buf_size: 4096, hops_max: 4096 }).unwrap();
    ((q, file), timed)
}

fn db_image(keys: u64, node_size: usize, per: usize) -> (Vec<u8>, btree::Superblock) {
    let mut c = Cursor::new(Vec::new());
    let sb = btree::build(&mut c, keys, node_size, per, 1, |_| {}).unwrap();
    let mut img = c.into_inner();
    img[..node_size].copy_from_slice(&btree::superblock_bytes(&sb));
    // Pad to whole 4 KiB (the map's block size).
    img.resize(img.len().next_multiple_of(4096), 0);
    (img, sb)
}

/// Keeps `qd` lookups in flight until `n` have completed.
fn lookups(q: &mut ChainQueue, file: FileId, sb: &btree::Superblock, prog: ProgId, keys: u64, qd: u64, n: u64) -> Duration {
    let done = Arc::new(AtomicU64::new(0));
    let mut started = 0u64;
    let t0 = Instant::now();
    while done.load(Ordering::Relaxed) < n {
        while started < n && started - done.load(Ordering::Relaxed) < qd {
            let key = key_at((started * 7919) % keys);
            let d = done.clone();
            let req = ChainRequest::new(T, file, FileOffset(sb.root), sb.node_size as u32, prog).with_u64(btree::LK_KEY, key);
            q.submit(req, move |o| {
                assert!(o.status.is_done(), "lookup failed: {}", o.status);
                d.fetch_add(1, Ordering::Relaxed);
            });
            started += 1;
        }
        q.poll().unwrap();
    }
    t0.elapsed()
}

fn hop_cost(c: &mut Criterion) {
    // 512-byte nodes, 8 keys per node: 40,000 keys make a depth-6 tree.
    let keys = 40_000;
    let (img, sb) = db_image(keys, 512, 8);
    assert_eq!(sb.depth, 6);
    let ((mut q, file), timed) = setup_timed(img);
    let bpf = q.add_function(Function::bpf(programs::lookup(512), None, 512, VmEngine::Jit).unwrap()).unwrap();
    let native = q.add_function(btree::native_lookup(512)).unwrap();
    let mut g = c.benchmark_group("lookup_depth6_hops");
    g.throughput(Throughput::Elements(sb.depth));
    for (name, prog) in [("bpf-chain", bpf), ("user-chain", native)] {
        g.bench_function(BenchmarkId::new(name, "qd1"), |b| b.iter_custom(|iters| lookups(&mut q, file, &sb, prog, keys, 1, iters)));
    }
    g.finish();
    // The same lookups, reporting only the host's time: the time spent inside
    // the emulated device (measured around each `service` call, timer
    // overhead included) is subtracted. This is the "software per hop" of the
    // target: what the engine and the program cost, not the device.
    let mut g = c.benchmark_group("lookup_depth6_software_per_hop");
    g.throughput(Throughput::Elements(sb.depth));
    for (name, prog) in [("bpf-chain", bpf), ("user-chain", native)] {
        g.bench_function(BenchmarkId::new(name, "qd1"), |b| {
            b.iter_custom(|iters| {
                let before = timed.device_ns.load(Ordering::Relaxed);
                let total = lookups(&mut q, file, &sb, prog, keys, 1, iters);
                let device = Duration::from_nanos(timed.device_ns.load(Ordering::Relaxed) - before);
                total.saturating_sub(device)
            })
        });
    }
    g.finish();
    let mut g = c.benchmark_group("lookup_depth6_qd");
    g.throughput(Throughput::Elements(1));
    for qd in [1u64, 4, 16, 64] {
        for (name, prog) in [("bpf-chain", bpf), ("user-chain", native)] {
            g.bench_function(BenchmarkId::new(name, format!("qd{qd}")), |b| b.iter_custom(|iters| lookups(&mut q, file, &sb, prog, keys, qd, iters)));
        }
    }
    g.finish();
}

fn filter_blocks(c: &mut Criterion) {
    let blocks = 256usize;
    let mut img = Vec::with_capacity(blocks * 4096);
    let mut x = 7u64;
    for _ in 0..blocks * 512 {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        img.extend_from_slice(&(x >> 44).to_le_bytes());
    }
    let want = filter::reference(&img, 1000, 500_000);
    let (mut q, file) = setup(img.clone());
    let bpf = q.add_function(Function::bpf(programs::FILTER_REDUCE, None, 4096, VmEngine::Jit).unwrap()).unwrap();
    let native = q.add_function(filter::native()).unwrap();
    let mut g = c.benchmark_group("filter_reduce_blocks");
    g.throughput(Throughput::Elements(blocks as u64));
    for (name, prog) in [("bpf-chain", bpf), ("user-chain", native)] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let req = filter::request(ChainRequest::new(T, file, FileOffset(0), 4096, prog), 1000, 500_000, img.len() as u64);
                let o = q.run_blocking(req).unwrap();
                assert_eq!(filter::result(&o.scratch[..]), want);
            })
        });
    }
    // The per-block kernel alone, native Rust over a cached block: what the
    // program's work costs without any chaining.
    g.bench_function("native-kernel-only", |b| b.iter(|| img.chunks(4096).fold(filter::Reduced::EMPTY, |a, blk| a.fold_block(blk, 1000, 500_000))));
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = hop_cost, filter_blocks
}
criterion_main!(benches);
