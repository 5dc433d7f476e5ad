//! The kernel path on the same device: `psync` (pread/pwrite, one I/O at a
//! time per thread, as fio's psync) and `io_uring` (QD I/Os in flight per
//! thread; IOPOLL, SQPOLL, fixed buffers and a registered file where asked).
//! Both open the device with O_DIRECT. Under a device model each I/O's
//! completion is seen only once the modelled time has passed since the
//! kernel returned it (as `sfbench run` charges the kernel engines).

use super::ops::{self, OpGen};
use super::stats::ThreadStats;
use super::Worker;
use crate::engine::uring::{Dir, Uring, UringOptions};
use crate::engine::Wait;
use anyhow::{bail, Context, Result};
use nvme::{DmaBuf, DmaPool, Latency};
use std::collections::VecDeque;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The device model as the kernel engines are charged it.
#[derive(Debug, Clone, Copy)]
pub struct Model {
    pub latency: Latency,
    pub wait: Wait,
}

impl Model {
    fn delay(&self, bytes: u64) -> Duration {
        self.latency.for_bytes(bytes)
    }
    fn wait_until(&self, due: Instant) {
        if self.wait == Wait::Sleep {
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            return;
        }
        while Instant::now() < due {
            std::hint::spin_loop();
        }
    }
}

fn ns_between(a: Instant, b: Instant) -> u64 {
    u64::try_from(b.saturating_duration_since(a).as_nanos()).unwrap_or(u64::MAX)
}

fn verify_read(engine: &str, data: &[u8], off: u64, seed: u64, st: &mut ThreadStats) -> Result<()> {
    if let Err(at) = ops::check(data, off, seed) {
        bail!("VERIFY FAILED: {engine} read at byte {off} does not hold what was written (first bad byte {at})");
    }
    st.verified += 1;
    Ok(())
}

/// pread/pwrite, one I/O at a time.
pub struct PsyncWorker {
    file: File,
    buf: DmaBuf,
    model: Model,
    io_size: usize,
}

impl PsyncWorker {
    pub fn new(file: File, io_size: u64, model: Model, pool: &DmaPool, seed: u64) -> Result<PsyncWorker> {
        crate::engine::set_timer_slack_min();
        let io_size = usize::try_from(io_size).context("I/O size")?;
        let mut buf = pool.alloc(io_size).context("an aligned I/O buffer")?;
        ops::fill_random(buf.as_mut_slice(), seed);
        Ok(PsyncWorker { file, buf, model, io_size })
    }
}

impl Worker for PsyncWorker {
    fn run(&mut self, gen: &mut OpGen, stop: &AtomicBool, st: &mut ThreadStats, verify: Option<u64>, progress: &AtomicU64) -> Result<()> {
        let delay = self.model.delay(self.io_size as u64);
        while !stop.load(Ordering::Relaxed) {
            let Some(io) = gen.next_io() else { break };
            let data = &mut self.buf.as_mut_slice()[..self.io_size];
            if let (Some(seed), true) = (verify, io.write) {
                ops::fill(data, io.offset, seed);
            }
            let t0 = Instant::now();
            if io.write {
                self.file.write_all_at(data, io.offset).with_context(|| format!("pwrite of {} bytes at {}", self.io_size, io.offset))?;
            } else {
                self.file.read_exact_at(data, io.offset).with_context(|| format!("pread of {} bytes at {}", self.io_size, io.offset))?;
            }
            if !delay.is_zero() {
                self.model.wait_until(Instant::now() + delay);
            }
            st.record(io.write, ns_between(t0, Instant::now()));
            if let (Some(seed), false) = (verify, io.write) {
                verify_read("psync", data, io.offset, seed, st)?;
            }
            progress.store(st.ios(), Ordering::Relaxed);
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.file.sync_data().context("fdatasync")
    }
}

/// io_uring, QD I/Os in flight.
pub struct UringWorker {
    ring: Uring,
    model: Model,
    io_size: usize,
    t_sub: Vec<Instant>,
    offs: Vec<u64>,
    writes: Vec<bool>,
}

impl UringWorker {
    pub fn new(file: File, opts: UringOptions, qd: u32, io_size: u64, model: Model, pool: &DmaPool, seed: u64) -> Result<UringWorker> {
        crate::engine::set_timer_slack_min();
        let io_size = usize::try_from(io_size).context("I/O size")?;
        let slots = usize::try_from(qd).context("queue depth")?;
        let mut ring = Uring::with_options(file, opts, slots, io_size, pool)?;
        for i in 0..slots {
            ops::fill_random(ring.buf_mut(i).as_mut_slice(), seed ^ i as u64);
        }
        Ok(UringWorker { ring, model, io_size, t_sub: vec![Instant::now(); slots], offs: vec![0; slots], writes: vec![false; slots] })
    }

    fn push(&mut self, slot: usize, io: ops::Io, verify: Option<u64>, now: Instant) -> Result<()> {
        if let (Some(seed), true) = (verify, io.write) {
            ops::fill(&mut self.ring.buf_mut(slot).as_mut_slice()[..self.io_size], io.offset, seed);
        }
        self.ring.push(slot, if io.write { Dir::Write } else { Dir::Read }, io.offset, self.io_size)?;
        self.t_sub[slot] = now;
        self.offs[slot] = io.offset;
        self.writes[slot] = io.write;
        Ok(())
    }
}

impl Worker for UringWorker {
    fn run(&mut self, gen: &mut OpGen, stop: &AtomicBool, st: &mut ThreadStats, verify: Option<u64>, progress: &AtomicU64) -> Result<()> {
        let delay = self.model.delay(self.io_size as u64);
        let now = Instant::now();
        for slot in 0..self.ring.slots() {
            let Some(io) = gen.next_io() else { break };
            self.push(slot, io, verify, now)?;
        }
        // Completions the kernel returned, each seen by the thread once due (the model).
        let mut due: VecDeque<(Instant, usize, usize)> = VecDeque::new();
        let mut reaped = Vec::new();
        loop {
            if self.ring.in_flight() == 0 && due.is_empty() {
                return Ok(());
            }
            if self.ring.in_flight() > 0 {
                // While completions wait out the model, only collect what is already done.
                let min = if due.is_empty() { 1 } else { 0 };
                reaped.clear();
                self.ring.wait(min, &mut reaped)?;
                let now = Instant::now();
                for &(i, n) in &reaped {
                    due.push_back((now + delay, i, n));
                }
            }
            let stopping = stop.load(Ordering::Relaxed);
            let mut now = None;
            while let Some(&(at, slot, n)) = due.front() {
                let t = *now.get_or_insert_with(Instant::now);
                if t < at {
                    if self.ring.in_flight() > 0 {
                        break;
                    }
                    self.model.wait_until(at);
                    now = None;
                    continue;
                }
                due.pop_front();
                if n != self.io_size {
                    bail!("io_uring: an I/O of {} bytes at {} returned {n} bytes (device smaller than the region?)", self.io_size, self.offs[slot]);
                }
                st.record(self.writes[slot], ns_between(self.t_sub[slot], t));
                if let (Some(seed), false) = (verify, self.writes[slot]) {
                    let off = self.offs[slot];
                    verify_read("io_uring", &self.ring.buf_mut(slot).as_mut_slice()[..n], off, seed, st)?;
                }
                if stopping {
                    continue;
                }
                if let Some(io) = gen.next_io() {
                    self.push(slot, io, verify, t)?;
                }
            }
            progress.store(st.ios(), Ordering::Relaxed);
        }
    }

    fn flush(&mut self) -> Result<()> {
        // The ring is idle here; fdatasync on its file does what IORING_OP_FSYNC would.
        self.ring.file().sync_data().context("fdatasync")
    }
}
