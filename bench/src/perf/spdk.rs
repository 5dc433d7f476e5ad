//! `spdk-style`: our driver, run to completion as SPDK perf runs it. Each
//! thread owns an I/O queue pair and polls it; a completion's callback
//! records the latency and submits the thread's next I/O with the same
//! buffer, in the same poll (one doorbell write per poll for all of them).
//!
//! The device is the emulated controller over the run's device (no model:
//! the block device or file itself, O_DIRECT; with a model: a memory
//! snapshot of it plus the model), wrapped so the time spent inside it is
//! measured and reported apart; or a PCIe controller (`--pci`).

use super::ops::{self, OpGen};
use super::stats::ThreadStats;
use super::Worker;
use anyhow::{bail, Context, Result};
use fs_extents::DevOffset;
use nvme::{Backing, Controller, DmaBuf, DmaPool, EmuConfig, EmulatedController, IoQueuePair, Latency, Namespace, PoolOptions, Submitter, Transport};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Largest device snapshot held in memory for a modelled run.
const SNAPSHOT_MAX_BYTES: u64 = 8 << 30;
/// DMA memory of one controller's pool.
const DMA_LIMIT_BYTES: usize = 2 << 30;

/// The emulated controller, with the time spent inside it counted: the
/// device's work (fetching commands, moving data, posting completions),
/// which real hardware does without the host's CPU.
#[derive(Debug)]
pub struct Timed {
    emu: EmulatedController,
    /// Nanoseconds per queue id, each on its own cache line: threads polling
    /// their own queue pairs do not share one counter.
    device_ns: Box<[PaddedCounter]>,
}

/// A counter alone on its cache line (two lines: adjacent-line prefetch).
#[derive(Debug, Default)]
#[repr(align(128))]
struct PaddedCounter(AtomicU64);

impl Timed {
    fn new(emu: EmulatedController) -> Timed {
        let queues = usize::from(emu.config().io_queues) + 1;
        Timed { emu, device_ns: (0..queues).map(|_| PaddedCounter::default()).collect() }
    }

    pub fn device_time(&self) -> Duration {
        Duration::from_nanos(self.device_ns.iter().map(|c| c.0.load(Ordering::Relaxed)).sum())
    }
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
    fn dma(&self) -> &DmaPool {
        self.emu.dma()
    }
    fn service(&self, qid: u16) {
        let t0 = Instant::now();
        self.emu.service(qid);
        let ns = u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX);
        if let Some(c) = self.device_ns.get(usize::from(qid)) {
            c.0.fetch_add(ns, Ordering::Relaxed);
        }
    }
}

/// A controller ready for perf: its namespace 1, and the device timer when emulated.
pub struct Device {
    pub ctrl: Arc<Controller>,
    pub ns: Namespace,
    pub timed: Option<Arc<Timed>>,
    /// "emulated NVMe over /dev/zram3 (O_DIRECT)", "PCIe vfio 0000:00:04.0".
    pub label: String,
}

impl Device {
    /// Time spent inside the emulated device so far (zero for PCIe).
    pub fn device_time(&self) -> Duration {
        self.timed.as_ref().map_or(Duration::ZERO, |t| t.device_time())
    }

    /// The most I/Os one queue pair may hold.
    pub fn qd_max(&self) -> u32 {
        let entries = self.ctrl.cap().max_queue_entries().min(u32::from(nvme::controller::IO_DEPTH_MAX));
        entries - 1
    }
}

/// The emulated controller over `path` (block size `block`): the device
/// itself without a model (read-write when `write`), a memory snapshot of
/// its first `region` bytes with one or when `snapshot`.
pub fn emulated(path: &Path, block: u32, region: u64, model: Latency, write: bool, snapshot: bool) -> Result<Device> {
    let (backing, label) = if model.is_none() && !snapshot {
        let b = if write { Backing::file(path, None) } else { Backing::file_read_only(path) }.with_context(|| format!("opening {} as the emulated namespace", path.display()))?;
        let direct = matches!(&b, Backing::File(f) if f.is_direct());
        (b, format!("emulated NVMe over {} ({})", path.display(), if direct { "O_DIRECT" } else { "page cache: no O_DIRECT here" }))
    } else {
        if region > SNAPSHOT_MAX_BYTES {
            bail!("a modelled run serves a memory snapshot of the region, and {region} bytes is more than {SNAPSHOT_MAX_BYTES}; pass a smaller --size");
        }
        let src = Backing::file_read_only(path).with_context(|| format!("opening {}", path.display()))?;
        let n = usize::try_from(region).context("region too large for memory")?;
        let bytes = src.snapshot(0, n).with_context(|| format!("reading {region} bytes of {}", path.display()))?;
        let how = if model.is_none() { "no device model (--emu-snapshot)".to_string() } else { format!("device modelled: {model}") };
        (Backing::memory_from(bytes), format!("emulated NVMe serving a memory snapshot of {}, {how}", path.display()))
    };
    let cfg = EmuConfig { block_size: block, latency: model, dma: PoolOptions { limit_bytes: DMA_LIMIT_BYTES, allow_fallback: true }, ..EmuConfig::default() };
    let emu = EmulatedController::new(backing, cfg).context("emulated controller")?;
    let timed = Arc::new(Timed::new(emu));
    let ctrl = Arc::new(Controller::attach(timed.clone()).context("bringing up the emulated controller")?);
    let ns = ctrl.namespace(1)?;
    Ok(Device { ctrl, ns, timed: Some(timed), label })
}

/// A PCIe controller bound to vfio-pci or uio_pci_generic; writes are refused
/// unless `write_ok` (checked by the caller) and when the kernel still has a
/// file system of it mounted.
pub fn pci(bdf: &str, write: bool) -> Result<Device> {
    let bdf = nvme::pci::Bdf::parse(bdf)?;
    if write {
        // As `sfbench setup --bind` does: a mounted namespace is never overwritten.
        nvme::pci::Sysfs::default().check_not_mounted(&bdf)?;
    }
    let t = crate::setup::open_pci(&bdf)?;
    let name = Transport::name(&*t);
    let ctrl = Arc::new(Controller::attach(t).with_context(|| format!("bringing up the controller at {bdf}"))?);
    let ns = ctrl.namespace(1).context("namespace 1 of the PCIe controller")?;
    Ok(Device { ctrl, ns, timed: None, label: format!("PCIe NVMe {name}, namespace 1 ({} B blocks, {} MiB)", ns.block_size, ns.capacity_bytes() >> 20) })
}

/// Queues one I/O. Its device bytes become blocks through the engine's one
/// checked conversion ([`chaining::device_blocks`]); on failure the buffer
/// comes back (when the queue pair handed it back).
fn issue(sub: &mut Submitter<u32>, ns: &Namespace, io: &ops::Io, io_size: u64, buf: DmaBuf, cookie: u32) -> Result<(), (String, Option<DmaBuf>)> {
    let b = match chaining::device_blocks(DevOffset(io.offset), io_size, ns) {
        Ok(b) => b,
        Err(e) => return Err((e.to_string(), Some(buf))),
    };
    let r = if io.write { sub.write(ns, b.lba, b.nlb, buf, cookie) } else { sub.read(ns, b.lba, b.nlb, buf, cookie) };
    r.map_err(|rej| (rej.error.to_string(), rej.buf))
}

/// One thread's queue pair and buffers.
pub struct SpdkWorker {
    qp: IoQueuePair<u32>,
    ns: Namespace,
    bufs: Vec<Option<DmaBuf>>,
    t_sub: Vec<Instant>,
    offs: Vec<u64>,
    io_size: u64,
}

impl SpdkWorker {
    pub fn new(dev: &Device, qd: u32, io_size: u64, seed: u64) -> Result<SpdkWorker> {
        let entries = u16::try_from(qd + 1).context("queue depth")?;
        let qp = dev.ctrl.alloc_io_qpair(entries, usize::try_from(qd).unwrap_or(usize::MAX)).context("an I/O queue pair for this thread")?;
        let len = usize::try_from(io_size).context("I/O size")?;
        let pool = dev.ctrl.transport().dma();
        let mut bufs = Vec::new();
        for i in 0..qd {
            let mut b = pool.alloc(len).context("a DMA buffer")?;
            ops::fill_random(b.as_mut_slice(), seed ^ u64::from(i));
            bufs.push(Some(b));
        }
        let n = bufs.len();
        Ok(SpdkWorker { qp, ns: dev.ns, bufs, t_sub: vec![Instant::now(); n], offs: vec![0; n], io_size })
    }
}

/// Fails a completion that did not succeed or whose data is wrong.
fn complete(st: &mut ThreadStats, verify: Option<u64>, write: bool, off: u64, buf: &mut DmaBuf, ns: u64) -> Result<()> {
    st.record(write, ns);
    if let (Some(seed), false) = (verify, write) {
        if let Err(at) = ops::check(buf.as_mut_slice(), off, seed) {
            bail!("VERIFY FAILED: spdk-style read at byte {off} does not hold what was written (first bad byte {at})");
        }
        st.verified += 1;
    }
    Ok(())
}

impl Worker for SpdkWorker {
    fn run(&mut self, gen: &mut OpGen, stop: &AtomicBool, st: &mut ThreadStats, verify: Option<u64>, progress: &AtomicU64) -> Result<()> {
        let SpdkWorker { qp, ns, bufs, t_sub, offs, io_size } = self;
        let (ns, io_size) = (*ns, *io_size);
        let mut in_flight = 0usize;
        let mut ended = false;
        let mut writes = vec![false; bufs.len()];
        let now = Instant::now();
        for slot in 0..bufs.len() {
            let Some(io) = gen.next_io() else {
                ended = true;
                break;
            };
            let mut buf = bufs[slot].take().context("idle slot without its buffer")?;
            if let (Some(seed), true) = (verify, io.write) {
                ops::fill(buf.as_mut_slice(), io.offset, seed);
            }
            let cookie = u32::try_from(slot).context("slot")?;
            if let Err((e, _)) = issue(qp, &ns, &io, io_size, buf, cookie) {
                bail!("submitting to the queue pair: {e}");
            }
            t_sub[slot] = now;
            offs[slot] = io.offset;
            writes[slot] = io.write;
            in_flight += 1;
        }
        let mut err: Option<anyhow::Error> = None;
        while in_flight > 0 {
            let stopping = ended || stop.load(Ordering::Relaxed);
            let mut now: Option<Instant> = None;
            qp.process_completions(0, |sub, c| {
                in_flight -= 1;
                let slot = c.cookie as usize;
                let Some(mut buf) = c.buf else {
                    err.get_or_insert_with(|| anyhow::anyhow!("a completion without its buffer"));
                    return;
                };
                if !c.status.is_success() {
                    err.get_or_insert_with(|| anyhow::anyhow!("{} at byte {} failed: {}", if writes[slot] { "write" } else { "read" }, offs[slot], c.status));
                    bufs[slot] = Some(buf);
                    return;
                }
                let t = *now.get_or_insert_with(Instant::now);
                let ns_lat = u64::try_from(t.duration_since(t_sub[slot]).as_nanos()).unwrap_or(u64::MAX);
                if let Err(e) = complete(st, verify, writes[slot], offs[slot], &mut buf, ns_lat) {
                    err.get_or_insert(e);
                }
                let next = if stopping || err.is_some() { None } else { gen.next_io() };
                let Some(io) = next else {
                    bufs[slot] = Some(buf);
                    return;
                };
                if let (Some(seed), true) = (verify, io.write) {
                    ops::fill(buf.as_mut_slice(), io.offset, seed);
                }
                match issue(sub, &ns, &io, io_size, buf, c.cookie) {
                    Ok(()) => {
                        in_flight += 1;
                        t_sub[slot] = t;
                        offs[slot] = io.offset;
                        writes[slot] = io.write;
                    }
                    Err((e, buf)) => {
                        err.get_or_insert_with(|| anyhow::anyhow!("resubmitting: {e}"));
                        bufs[slot] = buf;
                    }
                }
            })
            .context("polling the queue pair")?;
            progress.store(st.ios(), Ordering::Relaxed);
            if let Some(e) = err.take() {
                // Drain what is in flight, then report the first error.
                let mut rest = 0;
                while in_flight > 0 && rest < 1_000_000 {
                    let _ = qp.process_completions(0, |_, c| {
                        in_flight -= 1;
                        if let Some(b) = c.buf {
                            bufs[c.cookie as usize] = Some(b);
                        }
                    });
                    rest += 1;
                }
                return Err(e);
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        let ns = self.ns;
        if let Err(r) = self.qp.flush(&ns, u32::MAX) {
            bail!("flush: {}", r.error);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut done = None;
            self.qp.process_completions(0, |_, c| done = Some(c.status))?;
            if let Some(s) = done {
                if !s.is_success() {
                    bail!("flush failed: {s}");
                }
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("flush did not complete within 30 s");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::perf::ops::{Pattern, Shape};
    use crate::perf::stats::ThreadStats;
    use std::os::unix::fs::FileExt;

    /// Writes on the emulated controller reach the file under it, and a read
    /// pass compares every block: a corrupted block fails it.
    #[test]
    fn write_pass_then_read_pass_compares_content_and_catches_corruption() {
        let dir = std::env::temp_dir().join(format!("sfbench-perf-spdk-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ns.img");
        let region = 64u64 * 4096;
        std::fs::File::create(&path).unwrap().set_len(region).unwrap();
        let dev = emulated(&path, 512, region, Latency::None, true, false).unwrap();
        let shape = Shape { io_size: 4096, base: 0, region, pattern: Pattern::Randread, read_pct: 100, zipf: None };
        let mut w = SpdkWorker::new(&dev, 8, 4096, 1).unwrap();
        let (stop, progress, seed) = (AtomicBool::new(false), AtomicU64::new(0), 42);
        let mut st = ThreadStats::new();
        w.run(&mut OpGen::once(&shape, 0, 1, true), &stop, &mut st, Some(seed), &progress).unwrap();
        w.flush().unwrap();
        assert_eq!(st.writes, 64);
        // The bytes are on the file, where the kernel engines would read them.
        let f = std::fs::File::open(&path).unwrap();
        let mut b = vec![0u8; 4096];
        f.read_exact_at(&mut b, 5 * 4096).unwrap();
        assert_eq!(ops::check(&b, 5 * 4096, seed), Ok(()));
        let mut st = ThreadStats::new();
        w.run(&mut OpGen::once(&shape, 0, 1, false), &stop, &mut st, Some(seed), &progress).unwrap();
        assert_eq!((st.reads, st.verified), (64, 64));
        // A block changed behind the driver's back: the read pass says where.
        std::fs::OpenOptions::new().write(true).open(&path).unwrap().write_all_at(&[0xff; 8], 9 * 4096 + 16).unwrap();
        let mut st = ThreadStats::new();
        let e = w.run(&mut OpGen::once(&shape, 0, 1, false), &stop, &mut st, Some(seed), &progress).unwrap_err();
        assert!(e.to_string().contains(&format!("VERIFY FAILED: spdk-style read at byte {}", 9 * 4096)), "{e}");
        // Timed random reads and writes with the pattern, then stop.
        stop.store(true, Ordering::Relaxed);
        let mut st = ThreadStats::new();
        let mixed = Shape { pattern: Pattern::Randrw, read_pct: 50, ..shape };
        w.run(&mut OpGen::timed(&mixed, 0, 1, 3).unwrap(), &stop, &mut st, None, &progress).unwrap();
        assert!(st.ios() >= 8, "the first batch completes after stop");
        drop(w);
        drop(dev);
        let _ = std::fs::remove_dir_all(dir);
    }
}
