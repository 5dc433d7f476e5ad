//! The userspace engines: an NVMe controller (the emulated one over the same
//! device the kernel engines read, or a PCIe controller), chains translated
//! through the data file's extents with a tenant grant, and client threads
//! that either run their chains to completion on a queue pair of their own
//! (inline, as SPDK does) or hand them to reactor threads.

use super::{Client, EngineKind, Recorder};
use crate::workload::{self, Data, Gen, Kind};
use anyhow::{bail, Context, Result};
use chaining::{ChainOutcome, ChainQueue, Engine, EngineConfig, Function, FunctionFactory, ProgId, QueueConfig};
use ebpf_runtime::vm::Engine as VmEngine;
use fs_extents::{ChangeStamp, DevOffset, Ext4, Extent, ExtentKind, ExtentMap, FileId, FileOffset, Registry, TenantId, TrackedFile};
use nvme::{Backing, Controller, EmuConfig, EmulatedController, Latency};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::Thread;
use std::time::{Duration, Instant};

/// How long a reactor-mode client spins for a result before it parks: long
/// enough to cover a modelled chain without a wake-up, short enough that
/// many client threads on few cores do not fight over them.
const SPIN_BEFORE_PARK: Duration = Duration::from_micros(50);
/// Entries of each queue pair (reads in flight: one less).
const QUEUE_DEPTH: u16 = 256;
/// Largest read of a chain (the databases' 4 KiB nodes).
const BUF_BYTES: u32 = 4096;
/// The emulated controller's LBA size.
const EMU_BLOCK_BYTES: u32 = 512;

const TENANT: TenantId = TenantId(1);

/// How client threads reach the queue pairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
pub enum Mode {
    /// Inline when client threads are at most the cores, reactor otherwise.
    Auto,
    /// Run to completion: each client thread owns a queue pair and polls it;
    /// the program runs in that thread's poll (no hand-off).
    Inline,
    /// Reactor threads own the queue pairs; clients hand chains over a
    /// bounded channel and wait (for more clients than cores).
    Reactor,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Auto => "auto",
            Mode::Inline => "inline",
            Mode::Reactor => "reactor",
        }
    }

    /// The mode that runs for `threads` client threads.
    pub fn resolve(self, threads: u32) -> Mode {
        match self {
            Mode::Auto if threads as usize <= cores() => Mode::Inline,
            Mode::Auto => Mode::Reactor,
            m => m,
        }
    }
}

/// Cores this process may run on.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// What the bypass engines read for the data file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NsChoice {
    /// The block device under the file, through the file's extents, when it
    /// can be read; else the file itself as the namespace (with a note).
    Auto,
    /// The block device under the file, through its extents (FIEMAP); an
    /// error when that cannot be had.
    Device,
    /// The file itself is the namespace (one identity extent): no file
    /// system on the bypass path.
    File,
}

/// Where the data file's bytes are, for the bypass path.
#[derive(Debug)]
pub struct Layout {
    /// What the namespace holds: a block device (or a loop device's backing
    /// file), or the data file itself.
    pub source: PathBuf,
    /// The data file's extents on `source`.
    pub map: Arc<ExtentMap>,
    /// Kept open so a change to the file is seen (FIEMAP layouts).
    pub tracked: Option<TrackedFile>,
    /// A regular file served as the namespace itself, and its stamp then.
    pub watch: Option<(std::fs::File, ChangeStamp)>,
    /// How many extents, and whether the ext4 reader agreed.
    pub note: String,
}

impl Layout {
    /// Fails when the data file changed since its extents were read: the
    /// bypass engines would read stale blocks (never a wrong answer: the run
    /// stops instead).
    pub fn check_unchanged(&self) -> Result<()> {
        let changed = match (&self.tracked, &self.watch) {
            (Some(t), _) => t.may_have_changed().context("checking the data file for changes")?,
            (None, Some((f, then))) => fs_extents::fiemap::stamp(f).context("checking the data file for changes")? != *then,
            (None, None) => false,
        };
        if changed {
            bail!("the data file changed during the run (its size or change time differ from when the run began); its blocks may have moved, so the run stops rather than report answers from stale blocks");
        }
        Ok(())
    }
}

/// Works out what the bypass engines read for `path`.
pub fn layout(path: &Path, choice: NsChoice) -> Result<Layout> {
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    let len = crate::run::size_of(&std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?)?;
    let identity = |why: &str| -> Result<Layout> {
        let ext = Extent { logical: FileOffset(0), physical: DevOffset(0), len, kind: ExtentKind::Written };
        let map = ExtentMap::new(vec![ext], len, u64::from(EMU_BLOCK_BYTES), ChangeStamp::default()).context("extent map of the data file")?;
        let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let watch = if meta.file_type().is_file() { Some((fs_extents::fiemap::stamp(&f).context("reading the data file's change stamp")?, f)) } else { None }.map(|(s, f)| (f, s));
        Ok(Layout { source: path.to_path_buf(), map: Arc::new(map), tracked: None, watch, note: format!("namespace = the file itself ({why})") })
    };
    if meta.file_type().is_block_device() {
        return identity("a block device");
    }
    if choice == NsChoice::File {
        return identity("--namespace file");
    }
    let tracked = match TrackedFile::open(path) {
        Ok(t) => t,
        Err(e) if choice == NsChoice::Auto => return identity(&format!("no extents: {}", ebpf_runtime::with_causes(&e))),
        Err(e) => return Err(anyhow::Error::new(e).context(format!("{}: the file's extents (FIEMAP) and device", path.display()))),
    };
    let source = tracked.device().path.clone();
    let base = tracked.device().base;
    let map = tracked.map().clone();
    if let Err(e) = std::fs::File::open(&source) {
        let msg = format!("cannot read {} under {} ({e}; root needed?)", source.display(), path.display());
        if choice == NsChoice::Auto {
            return identity(&msg);
        }
        bail!("{msg}");
    }
    let unwritten = map.extents().iter().filter(|e| e.kind == ExtentKind::Unwritten).count();
    if unwritten > 0 {
        bail!("{}: {unwritten} extents are allocated but not yet written to the device; sync the file (sync {}) and run again", path.display(), path.display());
    }
    let agree = ext4_check(path, &meta, &source, base, &map)?;
    let note = format!("{} through {} extents on {}{}", path.display(), map.extents().len(), source.display(), agree);
    Ok(Layout { source, map, tracked: Some(tracked), watch: None, note })
}

/// On ext4, reads the file's extents again with our user-space ext4 reader
/// over the device and requires the same answer as FIEMAP.
fn ext4_check(path: &Path, meta: &std::fs::Metadata, source: &Path, base: DevOffset, map: &ExtentMap) -> Result<String> {
    let Some((rel, fstype)) = path_in_mount(path, meta.dev()) else { return Ok(" (mount point not found: FIEMAP alone)".into()) };
    if fstype != "ext4" {
        // xfs, btrfs ...: FIEMAP alone.
        return Ok(String::new());
    }
    let dev = std::fs::File::open(source).with_context(|| format!("opening {}", source.display()))?;
    let fs = Ext4::open_live(dev, base).with_context(|| format!("reading the ext4 file system on {} in user space", source.display()))?;
    let theirs = fs.file_map(&rel).with_context(|| format!("reading {rel} with the user-space ext4 reader"))?;
    if theirs.extents() != map.extents() {
        bail!(
            "{}: FIEMAP and the user-space ext4 reader disagree on the file's extents ({} vs {}); is the file still being written? sync it and run again",
            path.display(),
            map.extents().len(),
            theirs.extents().len()
        );
    }
    Ok(" (the ext4 reader agrees)".into())
}

/// The path of `path` inside the file system mounted from device `dev`, and that file system's type.
fn path_in_mount(path: &Path, dev: u64) -> Option<(String, String)> {
    let abs = std::fs::canonicalize(path).ok()?;
    let want = format!("{}:{}", libc::major(dev), libc::minor(dev));
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mut best: Option<(usize, String, String)> = None;
    for l in info.lines() {
        let f: Vec<&str> = l.split(' ').collect();
        if f.len() < 5 || f[2] != want || f[3] != "/" {
            continue;
        }
        let mnt = f[4].replace("\\040", " ");
        let fstype = f.iter().position(|&x| x == "-").and_then(|d| f.get(d + 1)).copied().unwrap_or("").to_string();
        if let Ok(rest) = abs.strip_prefix(&mnt) {
            if best.as_ref().is_none_or(|(n, ..)| mnt.len() > *n) {
                best = Some((mnt.len(), format!("/{}", rest.display()), fstype));
            }
        }
    }
    best.map(|(_, p, t)| (p, t))
}

/// A started userspace engine over one file.
pub struct ChainEngine {
    ctrl: Arc<Controller>,
    registry: Arc<Registry>,
    factory: FunctionFactory,
    reactors: Option<Engine>,
    file: FileId,
    data: Data,
    pub mode: Mode,
    pub note: String,
    layout: Layout,
}

/// Starts a controller over the layout's source (the emulated one, or the
/// PCIe controller at `pci` whose namespace 1 holds the same bytes) and
/// prepares the engine's function; `mode` is already resolved.
#[allow(clippy::too_many_arguments)]
pub fn start(kind: EngineKind, wk: Kind, data: &Data, mut layout: Layout, model: Latency, mode: Mode, reactors: usize, pci: Option<&str>) -> Result<ChainEngine> {
    let (ctrl, note) = match pci {
        Some(bdf) => pci_controller(bdf, model, &layout)?,
        None => emulated_controller(&mut layout, model)?,
    };
    let registry = Arc::new(Registry::new());
    registry.add_tenant(TENANT);
    let file = registry.add_file(layout.map.clone())?;
    registry.grant(TENANT, file)?;
    let d2 = data.clone();
    let factory: FunctionFactory = match kind {
        // One compiled program and one set of maps for every reactor.
        EngineKind::BpfChain => Function::bpf_factory(workload::bpf_object(wk, &d2), None, d2.block(), VmEngine::Jit)?.0,
        EngineKind::UserChain => Arc::new(move || Ok(workload::native_function(wk, &d2))),
        _ => bail!("{} is not a userspace engine", kind.name()),
    };
    let reactors = match mode {
        Mode::Reactor => {
            let cfg = EngineConfig { reactors: reactors.max(1), queue: queue_config(), channel_capacity: 1024, ..EngineConfig::default() };
            Some(Engine::start(ctrl.clone(), registry.clone(), vec![factory.clone()], cfg)?)
        }
        _ => None,
    };
    let note = format!("{note}; {}", layout.note);
    Ok(ChainEngine { ctrl, registry, factory, reactors, file, data: data.clone(), mode, note, layout })
}

impl ChainEngine {
    /// A client thread's connection: a queue pair of its own (inline), or a
    /// handle on the reactors.
    pub fn client(self: &Arc<Self>) -> Result<Box<dyn Client>> {
        Ok(match self.mode {
            Mode::Reactor => Box::new(ReactorClient { e: self.clone() }),
            _ => {
                let mut q = ChainQueue::new(&self.ctrl, 1, self.registry.clone(), queue_config()).context("a queue pair for this client thread")?;
                let f = (self.factory)().map_err(anyhow::Error::msg).context("loading the storage function")?;
                let prog = q.add_function(f)?;
                Box::new(InlineClient { q, prog, e: self.clone(), done: Arc::default() })
            }
        })
    }

    /// Fails when the data file changed since the run began.
    pub fn check_unchanged(&self) -> Result<()> {
        self.layout.check_unchanged()
    }
}

fn queue_config() -> QueueConfig {
    QueueConfig { depth: QUEUE_DEPTH, buf_size: BUF_BYTES, hops_max: 1 << 20 }
}

/// A PCIe controller bound to vfio-pci or uio_pci_generic (no device model:
/// it is a real device). Its namespace 1 holds what `layout.source` holds,
/// from LBA 0.
fn pci_controller(bdf: &str, model: Latency, layout: &Layout) -> Result<(Arc<Controller>, String)> {
    if !model.is_none() {
        bail!("--device-latency models an emulated device; a PCIe controller (--pci) has its own latency: drop one of them");
    }
    let end = layout.map.extents().iter().map(|e| e.physical.0 + e.len).max().unwrap_or(0);
    let bdf = nvme::pci::Bdf::parse(bdf)?;
    let t = crate::setup::open_pci(&bdf)?;
    let name = nvme::Transport::name(&*t);
    let ctrl = Arc::new(Controller::attach(t).with_context(|| format!("bringing up the controller at {bdf}"))?);
    let ns = ctrl.namespace(1).context("namespace 1 of the PCIe controller")?;
    if ns.capacity_bytes() < end {
        bail!("namespace 1 of {bdf} holds {} bytes, but the data file's blocks reach byte {end}; put the same image on it first", ns.capacity_bytes());
    }
    Ok((ctrl, format!("PCIe controller {name}, namespace 1 ({} B blocks)", ns.block_size)))
}

/// The emulated controller over the layout's source. Without a device model
/// it reads the source itself (O_DIRECT where possible: the same device the
/// kernel engines use); with one, it serves a snapshot of the source's bytes
/// from memory and models the device.
fn emulated_controller(layout: &mut Layout, model: Latency) -> Result<(Arc<Controller>, String)> {
    let src = layout.source.clone();
    let (backing, note) = if model.is_none() {
        let b = Backing::file_read_only(&src).with_context(|| format!("opening {} as the emulated namespace", src.display()))?;
        let direct = matches!(&b, Backing::File(f) if f.is_direct());
        (b, format!("emulated NVMe reads {} ({})", src.display(), if direct { "O_DIRECT" } else { "page cache: no O_DIRECT here" }))
    } else {
        // The namespace needs every byte up to the file's last extent.
        let end = layout.map.extents().iter().map(|e| e.physical.0 + e.len).max().unwrap_or(0);
        let (bytes, what) = if end <= SNAPSHOT_MAX_BYTES {
            (read_prefix(&src, end)?, format!("a snapshot of {}", src.display()))
        } else {
            (pack_extents(layout)?, format!("the file's extents of {} packed ({} is too large to snapshot)", src.display(), src.display()))
        };
        let (backing, mem) = match Backing::hugepages_from(&bytes) {
            Ok(b) => (b, "2 MiB hugepages".to_string()),
            Err(e) => (Backing::memory_from(bytes), format!("ordinary pages: no {} MiB of hugepages ({e})", end.div_ceil(1 << 20))),
        };
        (backing, format!("emulated NVMe serves {what} from {mem}, device modelled: {model}"))
    };
    let emu = EmulatedController::new(backing, EmuConfig { block_size: EMU_BLOCK_BYTES, latency: model, ..EmuConfig::default() }).context("emulated controller")?;
    let ctrl = Arc::new(Controller::attach(Arc::new(emu)).context("bringing up the emulated controller")?);
    Ok((ctrl, note))
}

/// Largest device prefix the emulated controller snapshots into memory;
/// past it, only the data file's extents are copied (packed).
const SNAPSHOT_MAX_BYTES: u64 = 1 << 30;

/// Copies the file's written extents from the device into one buffer, back
/// to back (each padded to a whole LBA), and points the layout's map at
/// them: the same extents, so chains still cross them, at new device offsets.
fn pack_extents(layout: &mut Layout) -> Result<Vec<u8>> {
    let src = Backing::file_read_only(&layout.source).with_context(|| format!("opening {}", layout.source.display()))?;
    let lba = u64::from(EMU_BLOCK_BYTES);
    let mut out = Vec::new();
    let mut moved = Vec::with_capacity(layout.map.extents().len());
    for e in layout.map.extents() {
        let at = out.len() as u64;
        if e.kind == ExtentKind::Written {
            let n = usize::try_from(e.len).context("extent too large for memory")?;
            out.extend_from_slice(&src.snapshot(e.physical.0, n).with_context(|| format!("reading an extent of {}", layout.source.display()))?);
        } else {
            out.resize(out.len() + usize::try_from(e.len).context("extent too large")?, 0);
        }
        out.resize(usize::try_from((out.len() as u64).next_multiple_of(lba)).context("too large")?, 0);
        moved.push(Extent { physical: DevOffset(at), ..*e });
    }
    let m = &layout.map;
    layout.map = Arc::new(ExtentMap::new(moved, m.size(), m.block_size(), m.stamp()).context("the packed extent map")?);
    Ok(out)
}

/// The first `len` bytes of a file or device (rounded up to a whole LBA,
/// zero-padded past its end), read with O_DIRECT where possible: a block
/// device's page cache may hold blocks older than what the file system wrote
/// past it.
fn read_prefix(path: &Path, len: u64) -> Result<Vec<u8>> {
    let src = Backing::file_read_only(path).with_context(|| format!("opening {}", path.display()))?;
    let n = len.next_multiple_of(u64::from(EMU_BLOCK_BYTES));
    let have = src.len().min(n);
    let mut v = src.snapshot(0, usize::try_from(have).context("namespace too large for memory")?).with_context(|| format!("reading {have} bytes of {}", path.display()))?;
    v.resize(usize::try_from(n).context("namespace too large for memory")?, 0);
    Ok(v)
}

type Done = (workload::Op, Instant, ChainOutcome);

/// Records a finished chain; its latency runs from submission to now.
fn record_outcome(rec: &mut Recorder, (op, t0, o): Done) -> Result<()> {
    if !o.status.is_done() {
        bail!("chain for {op:?} failed: {}", o.status);
    }
    rec.record(op, workload::answer(op, &o.scratch[..]), o.hops, t0.elapsed());
    Ok(())
}

/// Run to completion: this thread's own queue pair, polled here.
struct InlineClient {
    q: ChainQueue,
    prog: ProgId,
    e: Arc<ChainEngine>,
    /// Chains that ended in the last poll (the callback runs inside `poll`, on this thread).
    done: Arc<Finished>,
}

/// Chains that ended for one client thread (an inline client's own poll, or
/// a reactor). The count lets a look that finds none skip the lock.
#[derive(Default)]
struct Finished {
    list: Mutex<Vec<Done>>,
    count: AtomicUsize,
}

impl Finished {
    fn put(&self, d: Done) {
        self.list.lock().unwrap_or_else(|p| p.into_inner()).push(d);
        // Release: the entry is in the list before the count says so.
        self.count.fetch_add(1, Ordering::Release);
    }

    /// Moves what ended into `out` (an empty `out` stays empty if nothing did).
    fn take(&self, out: &mut Vec<Done>) {
        if self.count.load(Ordering::Acquire) == 0 {
            return;
        }
        let mut v = self.list.lock().unwrap_or_else(|p| p.into_inner());
        self.count.fetch_sub(v.len(), Ordering::AcqRel);
        out.append(&mut v);
    }
}

impl Client for InlineClient {
    fn run_until(&mut self, gen: &mut Gen, qd: usize, until: Instant, rec: &mut Recorder) -> Result<()> {
        let mut in_flight = 0usize;
        let mut got = Vec::new();
        loop {
            while in_flight < qd.max(1) && Instant::now() < until {
                let op = gen.next_op();
                let req = workload::request(op, &self.e.data, TENANT, self.e.file, self.prog);
                let done = self.done.clone();
                let t0 = Instant::now();
                self.q.submit(req, move |o| done.put((op, t0, o)));
                in_flight += 1;
            }
            if in_flight == 0 {
                return Ok(());
            }
            self.q.poll().context("polling the queue pair")?;
            self.done.take(&mut got);
            for d in got.drain(..) {
                in_flight -= 1;
                record_outcome(rec, d)?;
            }
        }
    }
}

/// A client of the reactors.
struct ReactorClient {
    e: Arc<ChainEngine>,
}

/// Where a reactor drops finished chains for one client thread, and wakes it.
struct Inbox {
    done: Finished,
    thread: Thread,
}

impl Inbox {
    fn put(&self, d: Done) {
        self.done.put(d);
        self.thread.unpark();
    }

    /// Waits for at least one result: yields briefly, then parks.
    fn take(&self, out: &mut Vec<Done>) {
        let t0 = Instant::now();
        while self.done.count.load(Ordering::Acquire) == 0 {
            if t0.elapsed() < SPIN_BEFORE_PARK {
                // Yield rather than spin: a spinning client slowed the
                // reactor six-fold on the 2-vCPU machine we measure on.
                std::thread::yield_now();
            } else {
                std::thread::park_timeout(Duration::from_millis(1));
            }
        }
        self.done.take(out);
    }
}

impl Client for ReactorClient {
    fn run_until(&mut self, gen: &mut Gen, qd: usize, until: Instant, rec: &mut Recorder) -> Result<()> {
        let engine = self.e.reactors.as_ref().context("reactor mode without reactors")?;
        let inbox = Arc::new(Inbox { done: Finished::default(), thread: std::thread::current() });
        let mut in_flight = 0usize;
        let mut got = Vec::new();
        loop {
            while in_flight < qd.max(1) && Instant::now() < until {
                let op = gen.next_op();
                let req = workload::request(op, &self.e.data, TENANT, self.e.file, ProgId(0));
                let ib = inbox.clone();
                let t0 = Instant::now();
                engine.submit(req, move |o| ib.put((op, t0, o))).context("the engine stopped")?;
                in_flight += 1;
            }
            if in_flight == 0 {
                return Ok(());
            }
            inbox.take(&mut got);
            for d in got.drain(..) {
                in_flight -= 1;
                // Measured at the client: includes handing the chain to the
                // reactor and waking this thread with the result.
                record_outcome(rec, d)?;
            }
        }
    }
}
