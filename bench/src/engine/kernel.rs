//! The kernel path: the same per-block logic (the native storage function)
//! driven by `pread` (one system call per hop) or `io_uring` (any number of
//! operations in flight per thread), reading the data file with O_DIRECT
//! through its file system and the block layer. A device model is charged
//! after each real read returns: the read's own time is the kernel's software
//! plus a RAM copy, and the model adds the device time on top, as the
//! emulated controller adds it to the userspace engines.

use super::uring::Uring;
use super::{Client, Recorder, Wait};
use crate::workload::{self, Data, Gen, Kind, Op};
use anyhow::{bail, Context, Result};
use chaining::Function;
use nvme::{DmaPool, Latency};
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

/// Reads one operation may make before it is called runaway.
const HOPS_MAX: u32 = 1 << 20;
/// Largest read (the databases' 4 KiB nodes).
const BUF_BYTES: usize = 4096;

/// How the kernel engines open the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// O_DIRECT: every read goes through the file system and the block layer to the device.
    Direct,
    /// Through the page cache (the file system refused O_DIRECT).
    Buffered,
}

/// Opens `path` for the kernel engines, O_DIRECT where the file system
/// allows it; says what it used.
pub fn open(path: &Path) -> Result<(File, Access, Option<String>)> {
    match OpenOptions::new().read(true).custom_flags(libc::O_DIRECT).open(path) {
        Ok(f) => Ok((f, Access::Direct, None)),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            let f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
            let note = format!("{}: the file system does not support O_DIRECT; kernel engines read through the page cache", path.display());
            Ok((f, Access::Buffered, Some(note)))
        }
        Err(e) => Err(e).with_context(|| format!("opening {}", path.display())),
    }
}

/// One operation in progress on the kernel path.
struct OpState {
    op: Op,
    scratch: Vec<u8>,
    hops: u32,
    t0: Instant,
    /// Bytes of the read in flight.
    want: usize,
}

/// The per-block logic shared by the kernel clients.
struct Logic {
    func: Function,
    data: Data,
}

impl Logic {
    fn new(kind: Kind, data: &Data) -> Logic {
        Logic { func: workload::native_function(kind, data), data: data.clone() }
    }

    /// Starts an operation: its state and first read.
    fn begin(&self, op: Op) -> (OpState, u64, usize) {
        let s = workload::start(op, &self.data);
        let mut scratch = vec![0u8; chaining::SCRATCH_SIZE];
        scratch[..s.scratch.len()].copy_from_slice(&s.scratch);
        (OpState { op, scratch, hops: 0, t0: Instant::now(), want: s.size as usize }, s.offset.get(), s.size as usize)
    }

    /// Runs the function on a block just read; the next read, or None when the operation is done.
    fn on_block(&mut self, st: &mut OpState, block: &mut [u8]) -> Result<Option<(u64, usize)>> {
        st.hops += 1;
        if st.hops > HOPS_MAX {
            bail!("operation {:?} did not finish within {HOPS_MAX} reads", st.op);
        }
        let mut ctx = ebpf_runtime::XrpContext::default();
        let ret = self.func.call(block, &mut st.scratch, &mut ctx).map_err(anyhow::Error::msg)?;
        if ret != 0 {
            bail!("storage function returned {ret} at hop {}: corrupt database?", st.hops);
        }
        if ctx.done != 0 {
            return Ok(None);
        }
        // The bundled workloads ask for one read per hop (fanout 1).
        match (0..chaining::FANOUT_MAX).find(|&i| ctx.size[i] != 0) {
            Some(i) if ctx.size[i] <= BUF_BYTES as u64 => Ok(Some((ctx.next_addr[i], usize::try_from(ctx.size[i])?))),
            Some(i) => bail!("the function asked for a read of {} bytes", ctx.size[i]),
            None => Ok(None),
        }
    }

    fn finish(&self, st: &OpState, rec: &mut Recorder) {
        rec.record(st.op, workload::answer(st.op, &st.scratch), st.hops, st.t0.elapsed());
    }
}

/// The device model on the kernel path: each read's completion is seen `L`
/// after the kernel returned it, waited out by spinning or sleeping.
#[derive(Debug, Clone, Copy)]
pub struct Model {
    pub latency: Latency,
    pub wait: Wait,
}

impl Model {
    fn delay(&self, len: usize) -> Duration {
        self.latency.for_bytes(len as u64)
    }

    /// Waits until `due`.
    fn wait_until(&self, due: Instant) {
        match self.wait {
            Wait::Sleep => {
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
            }
            _ => {
                while Instant::now() < due {
                    std::hint::spin_loop();
                }
            }
        }
    }
}

/// `pread`: one system call per hop, one operation at a time per thread.
pub struct PreadClient {
    file: File,
    logic: Logic,
    buf: nvme::DmaBuf,
    model: Model,
}

impl PreadClient {
    pub fn new(file: File, kind: Kind, data: &Data, model: Model, pool: &DmaPool) -> Result<PreadClient> {
        super::set_timer_slack_min();
        // A DMA buffer is simply a 4 KiB-aligned buffer here, as O_DIRECT needs.
        let buf = pool.alloc(BUF_BYTES).context("allocating an aligned read buffer")?;
        Ok(PreadClient { file, logic: Logic::new(kind, data), buf, model })
    }
}

impl Client for PreadClient {
    fn run_until(&mut self, gen: &mut Gen, _qd: usize, until: Instant, rec: &mut Recorder) -> Result<()> {
        while Instant::now() < until {
            let (mut st, mut off, mut len) = self.logic.begin(gen.next_op());
            loop {
                let block = &mut self.buf.as_mut_slice()[..len];
                self.file.read_exact_at(block, off).with_context(|| format!("pread of {len} bytes at {off}"))?;
                self.model.wait_until(Instant::now() + self.model.delay(len));
                match self.logic.on_block(&mut st, block)? {
                    Some((o, l)) => (off, len) = (o, l),
                    None => break,
                }
            }
            self.logic.finish(&st, rec);
        }
        Ok(())
    }
}

/// `io_uring`: `qd` operations in flight per thread, each hop one submission.
pub struct UringClient {
    ring: Uring,
    logic: Logic,
    model: Model,
    slots: Vec<Option<OpState>>,
}

impl UringClient {
    #[allow(clippy::too_many_arguments)]
    pub fn new(file: File, kind: Kind, data: &Data, model: Model, pool: &DmaPool, iopoll: bool, sqpoll: bool, qd: usize) -> Result<UringClient> {
        super::set_timer_slack_min();
        let ring = Uring::new(file, iopoll, sqpoll, qd.max(1), BUF_BYTES, pool)?;
        Ok(UringClient { ring, logic: Logic::new(kind, data), model, slots: (0..qd.max(1)).map(|_| None).collect() })
    }
}

impl Client for UringClient {
    fn run_until(&mut self, gen: &mut Gen, _qd: usize, until: Instant, rec: &mut Recorder) -> Result<()> {
        // Reads the kernel returned, each visible to its operation once due.
        let mut due: VecDeque<(Instant, usize, usize)> = VecDeque::new();
        let mut reaped = Vec::new();
        loop {
            for i in 0..self.slots.len() {
                if self.slots[i].is_none() && Instant::now() < until {
                    let (st, off, len) = self.logic.begin(gen.next_op());
                    self.ring.push_read(i, off, len)?;
                    self.slots[i] = Some(st);
                }
            }
            if self.ring.in_flight() == 0 && due.is_empty() {
                return Ok(());
            }
            if let (Wait::Sleep, Some(&(at, ..))) = (self.model.wait, due.front()) {
                // Sleep out the earliest read's device time, as a blocked
                // reader would; reads that end meanwhile are charged from
                // when they are reaped (a little more than a real device).
                self.model.wait_until(at);
            }
            if self.ring.in_flight() > 0 {
                // With reads waiting out the model, only collect what is already done.
                let min = if due.is_empty() { 1 } else { 0 };
                reaped.clear();
                self.ring.wait(min, &mut reaped)?;
                let now = Instant::now();
                for &(i, n) in &reaped {
                    due.push_back((now + self.model.delay(n), i, n));
                }
            }
            let Some(&(at, i, n)) = due.front() else { continue };
            if self.ring.in_flight() == 0 || Instant::now() >= at {
                self.model.wait_until(at);
                due.pop_front();
                let mut st = self.slots[i].take().context("a completion for an idle slot")?;
                if n != st.want {
                    bail!("io_uring read of {} bytes returned {n} bytes (file truncated?)", st.want);
                }
                let block = &mut self.ring.buf_mut(i).as_mut_slice()[..n];
                match self.logic.on_block(&mut st, block)? {
                    Some((off, len)) => {
                        self.ring.push_read(i, off, len)?;
                        st.want = len;
                        self.slots[i] = Some(st);
                    }
                    None => self.logic.finish(&st, rec),
                }
            }
        }
    }
}
