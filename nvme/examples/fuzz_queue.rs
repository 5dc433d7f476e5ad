//! Time-bounded, seeded fuzz of the two places where the driver meets what a
//! device says (no panic allowed, and no hang: every wait is bounded):
//!
//! - the emulated device's PRP walk: raw reads and writes with random PRP1,
//!   PRP2 and PRP-list entries (valid pages, misaligned, outside the pool,
//!   chained lists) and random lengths, all pointing only at memory the
//!   fuzzer owns and never touches while the commands run (the contract of
//!   the unsafe `Submitter::submit`);
//! - the host's completion handling: a hostile transport wraps the emulated
//!   controller and writes random completion entries (random command ids,
//!   SQ heads, statuses and phases) into the completion ring. The queue pair
//!   must either go on or fail cleanly; once failed it must refuse work.
//!
//!     fuzz_queue [SECONDS] [SEED]

// The random numbers are meant to be truncated into fields.
#![allow(clippy::cast_possible_truncation)]

use nvme::dma::{DeviceMemory, DmaPool};
use nvme::spec::{Cqe, Sqe};
use nvme::{Controller, DmaBuf, EmuConfig, EmulatedController, Iova, Lba, QueueError, Transport};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// The emulated controller, plus random completion entries written into one
/// I/O completion ring whenever that queue is serviced.
struct Hostile {
    emu: EmulatedController,
    mem: DeviceMemory,
    /// (ring address, entries) of the completion ring under attack.
    cq: Mutex<Option<(Iova, u16)>>,
    rng: Mutex<Rng>,
    injected: AtomicU64,
}

impl std::fmt::Debug for Hostile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hostile")
    }
}

impl Transport for Hostile {
    fn name(&self) -> String {
        "hostile".into()
    }
    fn read32(&self, offset: u32) -> u32 {
        self.emu.read32(offset)
    }
    fn write32(&self, offset: u32, value: u32) {
        self.emu.write32(offset, value)
    }
    fn dma(&self) -> &DmaPool {
        self.emu.dma()
    }
    fn service(&self, qid: u16) {
        self.emu.service(qid);
        let Some((base, entries)) = *self.cq.lock().unwrap_or_else(|p| p.into_inner()) else { return };
        if qid == 0 {
            return;
        }
        let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        if !rng.chance(5) {
            return;
        }
        let cqe = Cqe {
            result: rng.next() as u32,
            rsvd: 0,
            sq_head: if rng.chance(50) { rng.below(u64::from(entries)) as u16 } else { rng.next() as u16 },
            sq_id: qid,
            cid: if rng.chance(50) { rng.below(16) as u16 } else { rng.next() as u16 },
            status: rng.next() as u16,
        };
        let slot = rng.below(u64::from(entries));
        // Inside the ring: the transport writes only where a device may.
        if self.mem.post_cqe(Iova(base.0 + slot * 16), &cqe.to_bytes()).is_some() {
            self.injected.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A random PRP entry: mostly a page of `target`, sometimes anything.
fn entry(rng: &mut Rng, target: &DmaBuf) -> u64 {
    let pages = (target.len() / 4096) as u64;
    match rng.below(10) {
        0 => rng.next(),
        1 => target.iova().0 + rng.below(target.len() as u64),
        2 => 0,
        _ => target.iova().0 + rng.below(pages) * 4096,
    }
}

fn prp_round(rng: &mut Rng) -> Result<(), String> {
    let emu = Arc::new(EmulatedController::in_memory(4 << 20).map_err(|e| e.to_string())?);
    let ctrl = Controller::attach(emu).map_err(|e| e.to_string())?;
    let ns = ctrl.namespace(1).map_err(|e| e.to_string())?;
    let dma = ctrl.transport().dma().clone();
    let mut qp = ctrl.alloc_io_qpair::<u64>(16, 0).map_err(|e| e.to_string())?;
    qp.set_command_timeout(Duration::from_millis(20));
    // Memory the random commands may touch, owned here for the whole round.
    let target = dma.alloc(256 << 10).map_err(|e| e.to_string())?;
    let mut lists: Vec<DmaBuf> = (0..3).map(|_| dma.alloc(4096)).collect::<Result<_, _>>().map_err(|e| e.to_string())?;
    let list_iovas: Vec<u64> = lists.iter().map(|l| l.iova().0).collect();
    for list in &mut lists {
        let mut raw = [0u8; 4096];
        for e in raw.chunks_exact_mut(8) {
            let v = if rng.chance(5) { list_iovas[rng.below(3) as usize] + rng.below(512) * 8 } else { entry(rng, &target) };
            e.copy_from_slice(&v.to_le_bytes());
        }
        list.write(0, &raw);
    }
    for i in 0..64u64 {
        let nlb = 1 + rng.below(600) as u32;
        let prp2 = if rng.chance(50) { list_iovas[rng.below(3) as usize] + rng.below(512) * 8 } else { entry(rng, &target) };
        let sqe = Sqe {
            opcode: if rng.chance(70) { 0x02 } else { 0x01 },
            nsid: if rng.chance(95) { 1 } else { rng.next() as u32 },
            prp1: entry(rng, &target),
            prp2,
            cdw10: rng.below(ns.blocks + 16) as u32,
            cdw12: nlb - 1,
            ..Sqe::default()
        };
        // SAFETY: every address the command carries is inside `target` or a
        // list page (both alive and untouched by the host until the round
        // ends, after every command completed or the queue pair was dropped,
        // which leaks them if the device may still hold them), or outside
        // the DMA pool, which the emulated device refuses.
        match unsafe { qp.submit(sqe, None, i) } {
            Ok(_) => {}
            Err(r) if matches!(r.error, QueueError::QueueFull { .. }) => {}
            Err(r) => return Err(format!("raw submit refused: {}", r.error)),
        }
        let t0 = Instant::now();
        while qp.in_flight() > 0 {
            qp.process_completions(0, |_, _| {}).map_err(|e| format!("the queue pair failed on a well-formed device: {e}"))?;
            if t0.elapsed() > Duration::from_secs(5) {
                return Err("a command did not end within 5 s".into());
            }
        }
    }
    // A real read still works after all that.
    let buf = dma.alloc(4096).map_err(|e| e.to_string())?;
    qp.read(&ns, Lba(0), 8, buf, 0).map_err(|r| r.error.to_string())?;
    let t0 = Instant::now();
    let mut ok = false;
    while !ok {
        qp.process_completions(0, |_, c| ok = c.status.is_success() || panic!("read failed: {}", c.status)).map_err(|e| e.to_string())?;
        if t0.elapsed() > Duration::from_secs(5) {
            return Err("the final read did not end".into());
        }
    }
    drop(qp);
    drop((target, lists));
    Ok(())
}

fn cqe_round(rng: &mut Rng) -> Result<u64, String> {
    let emu = EmulatedController::new(nvme::Backing::memory(1 << 20).map_err(|e| e.to_string())?, EmuConfig::default()).map_err(|e| e.to_string())?;
    let hostile = Arc::new(Hostile { mem: emu.dma().device_view(), emu, cq: Mutex::new(None), rng: Mutex::new(Rng(rng.next() | 1)), injected: AtomicU64::new(0) });
    let ctrl = Controller::attach(hostile.clone()).map_err(|e| e.to_string())?;
    let ns = ctrl.namespace(1).map_err(|e| e.to_string())?;
    let dma = ctrl.transport().dma().clone();
    let mut qp = ctrl.alloc_io_qpair::<u64>(16, 0).map_err(|e| e.to_string())?;
    qp.set_command_timeout(Duration::from_millis(5));
    *hostile.cq.lock().unwrap_or_else(|p| p.into_inner()) = Some((qp.cq_iova(), qp.entries()));
    let t0 = Instant::now();
    let mut failed = false;
    for i in 0..2000u64 {
        while !qp.is_full() && rng.chance(70) {
            let buf = dma.alloc(512).map_err(|e| e.to_string())?;
            match qp.read(&ns, Lba(rng.below(ns.blocks)), 1, buf, i) {
                Ok(()) => {}
                Err(r) if failed && matches!(r.error, QueueError::Failed { .. }) => break,
                Err(r) => return Err(format!("read refused: {}", r.error)),
            }
        }
        match qp.process_completions(0, |_, _| {}) {
            Ok(_) if failed => return Err("a failed queue pair polled Ok".into()),
            Ok(_) => {}
            Err(QueueError::Failed { .. }) => failed = true,
            Err(e) => return Err(format!("unexpected error: {e}")),
        }
        if failed {
            break;
        }
        if t0.elapsed() > Duration::from_secs(10) {
            return Err("a round did not end within 10 s".into());
        }
    }
    drop(qp);
    Ok(hostile.injected.load(Ordering::Relaxed))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let seconds: u64 = args.first().and_then(|s| s.parse().ok()).unwrap_or(20);
    let seed: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1);
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let end = Instant::now() + Duration::from_secs(seconds);
    let (mut prp_rounds, mut cqe_rounds, mut injected) = (0u64, 0u64, 0u64);
    while Instant::now() < end {
        let r = if prp_rounds <= cqe_rounds {
            prp_rounds += 1;
            prp_round(&mut rng).map(|_| 0)
        } else {
            cqe_rounds += 1;
            cqe_round(&mut rng)
        };
        match r {
            Ok(n) => injected += n,
            Err(e) => {
                eprintln!("fuzz_queue: FAIL (seed {seed}, round {}): {e}", prp_rounds + cqe_rounds);
                std::process::exit(1);
            }
        }
    }
    println!("fuzz_queue: {prp_rounds} PRP rounds, {cqe_rounds} completion rounds ({injected} hostile entries), seed {seed}: no panic");
}
