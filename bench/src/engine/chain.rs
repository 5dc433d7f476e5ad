//! The userspace engines: the emulated NVMe controller over the same file the
//! kernel engines read, the chaining engine's reactors, and client threads
//! that hand chains to them.

use super::{Client, EngineKind, Recorder};
use crate::workload::{self, Data, Gen, Kind};
use anyhow::{bail, Context, Result};
use chaining::{Engine, EngineConfig, Function, FunctionFactory, ProgId, QueueConfig};
use ebpf_runtime::vm::Engine as VmEngine;
use fs_extents::{ChangeStamp, DevOffset, Extent, ExtentKind, ExtentMap, FileId, FileOffset, Registry, TenantId};
use nvme::{Backing, Controller, EmuConfig, EmulatedController, Latency};
use std::path::Path;
use chaining::ChainOutcome;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::Thread;
use std::time::{Duration, Instant};

/// How long a client spins for a result before it parks: long enough to
/// cover a modelled chain without a wake-up, short enough that many client
/// threads on few cores do not fight over them.
const SPIN_BEFORE_PARK: Duration = Duration::from_micros(50);

const TENANT: TenantId = TenantId(1);

/// A started userspace engine over one file.
pub struct ChainEngine {
    engine: Engine,
    file: FileId,
    data: Data,
    pub note: String,
}

/// Starts the emulated controller over `path` and a chaining engine with the
/// workload's function. Without a device model the controller reads the file
/// itself (O_DIRECT where possible: the same device the kernel engines use);
/// with one, it serves the file's bytes from memory and models the device.
///
/// With `pci` (a PCI address), the engine drives that controller instead: its
/// namespace 1 holds the same image as `path` from LBA 0.
pub fn start(kind: EngineKind, wk: Kind, data: &Data, path: &Path, model: Latency, reactors: usize, pci: Option<&str>) -> Result<ChainEngine> {
    // Seek to the end rather than metadata: a block device's metadata length is 0.
    let len = std::fs::File::open(path).and_then(|f| crate::run::size_of(&f)).with_context(|| format!("reading {}", path.display()))?;
    let (ctrl, block, note) = match pci {
        Some(bdf) => pci_controller(bdf, model, len)?,
        None => emulated_controller(path, model)?,
    };
    // The namespace holds the file from byte 0: one extent.
    let registry = Arc::new(Registry::new());
    registry.add_tenant(TENANT);
    let ext = Extent { logical: FileOffset(0), physical: DevOffset(0), len, kind: ExtentKind::Written };
    let map = ExtentMap::new(vec![ext], len, u64::from(block), ChangeStamp::default()).context("extent map of the database")?;
    let file = registry.add_file(Arc::new(map))?;
    registry.grant(TENANT, file)?;
    let d2 = data.clone();
    let factory: FunctionFactory = match kind {
        // One compiled program and one set of maps for every reactor.
        EngineKind::BpfChain => Function::bpf_factory(workload::bpf_object(wk, &d2), None, d2.block(), VmEngine::Jit)?.0,
        EngineKind::UserChain => Arc::new(move || Ok(workload::native_function(wk, &d2))),
        _ => bail!("{} is not a userspace engine", kind.name()),
    };
    let cfg = EngineConfig { reactors: reactors.max(1), queue: QueueConfig { depth: 256, buf_size: 4096, hops_max: 1 << 20 }, channel_capacity: 1024, ..EngineConfig::default() };
    let engine = Engine::start(ctrl, registry, vec![factory], cfg)?;
    Ok(ChainEngine { engine, file, data: data.clone(), note })
}

/// A PCIe controller bound to vfio-pci or uio_pci_generic (no device model:
/// it is a real device).
fn pci_controller(bdf: &str, model: Latency, len: u64) -> Result<(Arc<Controller>, u32, String)> {
    if !model.is_none() {
        bail!("--device-latency models an emulated device; a PCIe controller (--pci) has its own latency: drop one of them");
    }
    let bdf = nvme::pci::Bdf::parse(bdf)?;
    let t = nvme::pci::open(&bdf, &nvme::pci::OpenOptions::default())?;
    let name = nvme::Transport::name(&*t);
    let ctrl = Arc::new(Controller::attach(t).with_context(|| format!("bringing up the controller at {bdf}"))?);
    let ns = ctrl.namespace(1).context("namespace 1 of the PCIe controller")?;
    if ns.capacity_bytes() < len {
        bail!("namespace 1 of {bdf} holds {} bytes, less than the {len}-byte database; write the image to it first", ns.capacity_bytes());
    }
    Ok((ctrl, ns.block_size, format!("PCIe controller {name}, namespace 1 ({} B blocks)", ns.block_size)))
}

fn emulated_controller(path: &Path, model: Latency) -> Result<(Arc<Controller>, u32, String)> {
    let (backing, note) = if model.is_none() {
        let b = Backing::file(path, None).with_context(|| format!("opening {} as the emulated namespace", path.display()))?;
        let direct = matches!(&b, Backing::File(f) if f.is_direct());
        (b, format!("emulated controller reads {} ({})", path.display(), if direct { "O_DIRECT" } else { "page cache: no O_DIRECT on this file system" }))
    } else {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        (Backing::memory_from(bytes), format!("emulated controller serves {} from memory, device modelled: {model}", path.display()))
    };
    let emu = EmulatedController::new(backing, EmuConfig { block_size: 512, latency: model, ..EmuConfig::default() }).context("emulated controller")?;
    let ctrl = Arc::new(Controller::attach(Arc::new(emu)).context("bringing up the emulated controller")?);
    Ok((ctrl, 512, note))
}

/// A client thread of a userspace engine.
pub struct ChainClient {
    e: Arc<ChainEngine>,
}

impl ChainClient {
    pub fn new(e: Arc<ChainEngine>) -> ChainClient {
        ChainClient { e }
    }
}

type Done = (crate::workload::Op, Instant, ChainOutcome);

/// Where a reactor drops finished chains for one client thread, and wakes it.
struct Inbox {
    done: Mutex<Vec<Done>>,
    ready: AtomicUsize,
    thread: Thread,
}

impl Inbox {
    fn put(&self, d: Done) {
        self.done.lock().unwrap_or_else(|p| p.into_inner()).push(d);
        // Release: the entry is in the vector before the count says so.
        self.ready.fetch_add(1, Ordering::Release);
        self.thread.unpark();
    }

    /// Waits for at least one result: spins briefly, then parks.
    fn take(&self, out: &mut Vec<Done>) {
        let t0 = Instant::now();
        while self.ready.load(Ordering::Acquire) == 0 {
            if t0.elapsed() < SPIN_BEFORE_PARK {
                // Yield rather than spin: a spinning client slowed the
                // reactor six-fold on the 2-vCPU machine we measure on.
                std::thread::yield_now();
            } else {
                std::thread::park_timeout(Duration::from_millis(1));
            }
        }
        let mut v = self.done.lock().unwrap_or_else(|p| p.into_inner());
        self.ready.fetch_sub(v.len(), Ordering::AcqRel);
        out.append(&mut v);
    }
}

impl Client for ChainClient {
    fn run_until(&mut self, gen: &mut Gen, qd: usize, until: Instant, rec: &mut Recorder) -> Result<()> {
        let inbox = Arc::new(Inbox { done: Mutex::new(Vec::new()), ready: AtomicUsize::new(0), thread: std::thread::current() });
        let mut in_flight = 0usize;
        let mut got = Vec::new();
        loop {
            while in_flight < qd.max(1) && Instant::now() < until {
                let op = gen.next_op();
                let req = workload::request(op, &self.e.data, TENANT, self.e.file, ProgId(0));
                let ib = inbox.clone();
                let t0 = Instant::now();
                self.e.engine.submit(req, move |o| ib.put((op, t0, o))).context("the engine stopped")?;
                in_flight += 1;
            }
            if in_flight == 0 {
                return Ok(());
            }
            inbox.take(&mut got);
            for (op, t0, o) in got.drain(..) {
                in_flight -= 1;
                if !o.status.is_done() {
                    bail!("chain for {op:?} failed: {}", o.status);
                }
                // Measured at the client: includes handing the chain to the
                // reactor and waking this thread with the result.
                rec.record(op, workload::answer(op, &o.scratch[..]), o.hops, t0.elapsed());
            }
        }
    }
}
