//! Submit + complete of 4 KiB reads on the memory-backed emulated controller
//! without modelled latency, at queue depth 1 and 32, on one core (the device
//! runs inside the poll on the same thread). Reports time per I/O; the
//! throughput is its inverse.
//!
//! cargo bench -p nvme --bench qpair

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use nvme::{Controller, EmulatedController, Lba};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Namespace sizes: one that stays in the CPU caches (the software cost plus
/// a cache-hot 4 KiB copy) and one far larger than the LLC (each read's copy
/// comes from DRAM, as a real device's DMA would land in memory).
const WORKING_SETS: [(&str, u64); 2] = [("hot_1MiB", 1 << 20), ("cold_256MiB", 256 << 20)];

fn reads(c: &mut Criterion) {
    let mut g = c.benchmark_group("emulated_4k_read");
    g.throughput(Throughput::Elements(1));
    for (ws_name, ns_bytes) in WORKING_SETS {
        let emu = Arc::new(EmulatedController::new(nvme::Backing::memory(ns_bytes).unwrap(), nvme::EmuConfig { block_size: 4096, ..Default::default() }).unwrap());
        let ctrl = Controller::attach(emu).unwrap();
        let ns = ctrl.namespace(1).unwrap();
        let pool = ctrl.transport().dma().clone();
        for qd in [1usize, 32] {
            let mut qp = ctrl.alloc_io_qpair::<()>(64, 0).unwrap();
            let mut bufs: Vec<_> = (0..qd).map(|_| pool.alloc(4096).unwrap()).collect();
            g.bench_function(format!("{ws_name}/qd{qd}"), |b| {
                b.iter_custom(|iters| {
                    let mut next_lba = 0u64;
                    let mut submitted = 0u64;
                    let mut done = 0u64;
                    let start = Instant::now();
                    while done < iters {
                        while submitted < iters && (submitted - done) < qd as u64 {
                            let buf = bufs.pop().expect("one buffer per slot");
                            next_lba = (next_lba + 7) % ns.blocks;
                            qp.read(&ns, Lba(next_lba), 1, buf, ()).unwrap();
                            submitted += 1;
                        }
                        qp.process_completions(0, |_, c| {
                            assert!(c.status.is_success(), "read failed: {}", c.status);
                            bufs.push(c.buf.expect("reads carry a buffer"));
                            done += 1;
                        })
                        .unwrap();
                    }
                    start.elapsed()
                })
            });
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = reads
}
criterion_main!(benches);
