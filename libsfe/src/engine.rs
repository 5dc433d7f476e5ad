//! The engine behind the C interface, in safe Rust: a controller over the
//! device the files live on, the programs loaded on it, the files it has
//! seen (by device and inode, mapped through FIEMAP), and one queue pair per
//! calling thread, made on the thread's first call and driven only by that
//! thread (run to completion: the program runs in the caller's own poll).

use crate::error::Error;
use crate::files::Files;
use chaining::{ChainOutcome, ChainQueue, ChainRequest, Function, ProgId, QueueConfig, SCRATCH_SIZE};
use ebpf_runtime::vm::Engine as VmEngine;
use ebpf_runtime::with_causes;
use fs_extents::FileOffset;
use fs_extents::{FileId, Registry, TenantId};
use nvme::dma::PoolOptions;
use nvme::{Backing, Controller, EmuConfig, EmulatedController, QueueFailure};
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// The one tenant of a libsfe engine: every file it is asked about is its own.
pub const TENANT: TenantId = TenantId(1);
/// The largest block a program may be verified for (bytes of each read buffer).
pub const DATA_SIZE_MAX: u32 = 16 << 10;
/// The data size a program is verified for when the caller gives 0.
pub const DATA_SIZE_DEFAULT: u32 = 4096;
/// Entries of each thread's queue pair (chains' reads in flight: one less).
pub const QUEUE_DEPTH: u16 = 128;
/// Hop limit of a chain: XRP's own applications need 4096 for a 32-key batch.
pub const HOPS_MAX_DEFAULT: u32 = 1 << 16;
/// DMA memory when the caller gives 0 (MiB).
pub const DMA_MIB_DEFAULT: u64 = 64;
/// The emulated controller's LBA size.
const EMU_BLOCK_BYTES: u32 = 512;
/// Least time between two tries to replace a thread's failed queue pair
/// (the first try is at the thread's next call).
pub const RECOVER_EVERY: Duration = Duration::from_secs(1);

/// How to open an engine.
#[derive(Debug, Clone)]
pub struct Options {
    /// The block device (or image file) the files live on.
    pub device: PathBuf,
    /// A PCIe controller (BDF) whose namespace 1 holds the same bytes as
    /// `device`; `None` = the emulated controller reads `device` itself.
    pub pci: Option<String>,
    /// DMA memory to map (MiB): hugepages, or locked pages when none are free.
    pub dma_mib: u64,
}

/// A program loaded on an engine: the object, kept so each thread can make
/// its own instance (a compiled program is not shared between threads).
#[derive(Debug)]
struct ProgSpec {
    object: Vec<u8>,
    section: Option<String>,
    data_size: u32,
}

static NEXT_ENGINE_ID: AtomicU64 = AtomicU64::new(1);

/// An open engine. Shared by every thread that calls into it.
#[derive(Debug)]
pub struct Engine {
    id: u64,
    ctrl: Arc<Controller>,
    registry: Arc<Registry>,
    files: Files,
    progs: RwLock<Vec<Option<Arc<ProgSpec>>>>,
    closed: AtomicBool,
    hops_max: u32,
    /// The emulated controller, when the engine drives one (fault injection
    /// in tests).
    emu: Option<Arc<EmulatedController>>,
}

impl Engine {
    pub fn open(o: &Options) -> Result<Arc<Engine>, Error> {
        let dma_mib = if o.dma_mib == 0 { DMA_MIB_DEFAULT } else { o.dma_mib };
        let dma_bytes = usize::try_from(dma_mib.saturating_mul(1 << 20)).map_err(|_| Error::Invalid { what: "dma_mib", why: "too large".into() })?;
        let device_path = o.device.display().to_string();
        let mut emulated = None;
        let ctrl = match &o.pci {
            None => {
                let backing = Backing::file_read_only(&o.device).map_err(|source| Error::Device { path: device_path.clone(), source })?;
                let cfg = EmuConfig { block_size: EMU_BLOCK_BYTES, dma: PoolOptions { limit_bytes: dma_bytes, allow_fallback: true }, ..EmuConfig::default() };
                let emu = EmulatedController::new(backing, cfg).map_err(|e| Error::Start(format!("emulated controller over {device_path}: {}", with_causes(&e))))?;
                let emu = Arc::new(emu);
                emulated = Some(emu.clone());
                Controller::attach(emu).map_err(|e| Error::Start(with_causes(&e)))?
            }
            Some(bdf) => {
                let b = nvme::pci::Bdf::parse(bdf).map_err(|e| Error::Start(with_causes(&e)))?;
                let t = nvme::pci::open(&b, &nvme::pci::OpenOptions { dma_limit: dma_bytes, ..Default::default() }).map_err(|e| Error::Start(with_causes(&e)))?;
                Controller::attach(t).map_err(|e| Error::Start(format!("bringing up {bdf}: {}", with_causes(&e))))?
            }
        };
        let registry = Arc::new(Registry::new());
        registry.add_tenant(TENANT);
        let files = Files::new(&o.device)?;
        Ok(Arc::new(Engine {
            id: NEXT_ENGINE_ID.fetch_add(1, Ordering::Relaxed),
            ctrl: Arc::new(ctrl),
            registry,
            files,
            progs: RwLock::new(Vec::new()),
            closed: AtomicBool::new(false),
            hops_max: HOPS_MAX_DEFAULT,
            emu: emulated,
        }))
    }

    /// The emulated controller this engine drives (`None` on a PCIe
    /// controller): for tests that inject faults.
    #[doc(hidden)]
    pub fn emulated_controller(&self) -> Option<&EmulatedController> {
        self.emu.as_deref()
    }

    /// Marks the engine closed: calls fail from now on, and each thread's
    /// queue pair is freed on that thread's next call (or when it exits).
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        forget_closed();
    }

    pub fn device(&self) -> &Path {
        self.files.device()
    }

    /// Loads and verifies a program; the verifier's message on rejection.
    pub fn load(&self, object: Vec<u8>, section: Option<String>, data_size: u32) -> Result<i32, Error> {
        let data_size = if data_size == 0 { DATA_SIZE_DEFAULT } else { data_size };
        if data_size > DATA_SIZE_MAX || data_size % EMU_BLOCK_BYTES != 0 {
            return Err(Error::Invalid { what: "data_size", why: format!("{data_size} bytes: a multiple of {EMU_BLOCK_BYTES} up to {DATA_SIZE_MAX}") });
        }
        // Verified here once, so the caller hears about a rejection now; each
        // thread instantiates (and verifies again) on its first chain.
        Function::bpf(&object, section.as_deref(), data_size, VmEngine::Jit).map_err(|e| Error::ProgRejected(with_causes(&e)))?;
        let mut progs = self.progs.write().unwrap_or_else(|p| p.into_inner());
        let id = i32::try_from(progs.len()).map_err(|_| Error::Invalid { what: "program", why: "too many programs loaded".into() })?;
        progs.push(Some(Arc::new(ProgSpec { object, section, data_size })));
        Ok(id)
    }

    pub fn unload(&self, prog: i32) -> Result<(), Error> {
        let mut progs = self.progs.write().unwrap_or_else(|p| p.into_inner());
        let slot = usize::try_from(prog).ok().and_then(|i| progs.get_mut(i)).ok_or(Error::UnknownProg(prog.into()))?;
        slot.take().ok_or(Error::UnknownProg(prog.into()))?;
        Ok(())
    }

    fn prog(&self, prog: i32) -> Result<Arc<ProgSpec>, Error> {
        let progs = self.progs.read().unwrap_or_else(|p| p.into_inner());
        usize::try_from(prog).ok().and_then(|i| progs.get(i)).and_then(Clone::clone).ok_or(Error::UnknownProg(prog.into()))
    }

    fn check_open(&self) -> Result<(), Error> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        Ok(())
    }

    /// The registered file behind `fd` (re-mapped when it changed).
    pub fn file(&self, fd: i32) -> Result<FileId, Error> {
        self.files.lookup(fd, &self.registry)
    }

    /// Runs one chain to its end on this thread's queue pair.
    pub fn read_xrp(self: &Arc<Self>, r: &Read) -> Result<ChainOutcome, Error> {
        self.check_open()?;
        let file = self.file(r.fd)?;
        with_queue(self, |tq| {
            let req = tq.request(self, file, r)?;
            let token = tq.next_token();
            tq.submit(token, req);
            loop {
                if let Some(o) = tq.take_sync(token) {
                    return Ok(o);
                }
                if let Err(e) = tq.q.poll() {
                    // A failed queue pair ended every chain on it: this
                    // chain's outcome says why.
                    return tq.take_sync(token).ok_or(e.into());
                }
            }
        })
    }

    /// Starts a chain on this thread's queue pair; [`Engine::poll`] on the
    /// same thread reports its end with `user_data`.
    pub fn submit(self: &Arc<Self>, r: &Read, user_data: u64, out: Dest) -> Result<(), Error> {
        self.check_open()?;
        let file = self.file(r.fd)?;
        with_queue(self, |tq| {
            let req = tq.request(self, file, r)?;
            let token = tq.next_token();
            tq.pending.push((token, user_data, out));
            tq.submit(token, req);
            Ok(())
        })
    }

    /// Polls this thread's queue pair once and hands up to `max` finished
    /// asynchronous chains to `each`.
    pub fn poll(self: &Arc<Self>, max: usize, mut each: impl FnMut(u64, Dest, ChainOutcome)) -> Result<usize, Error> {
        self.check_open()?;
        with_queue(self, |tq| {
            tq.q.poll()?;
            let mut n = 0;
            let mut done = tq.done.lock().unwrap_or_else(|p| p.into_inner());
            let mut i = 0;
            while i < done.len() && n < max {
                let token = done[i].0;
                if let Some(p) = tq.pending.iter().position(|(t, ..)| *t == token) {
                    let (_, user_data, dest) = tq.pending.swap_remove(p);
                    let (_, o) = done.remove(i);
                    each(user_data, dest, o);
                    n += 1;
                } else {
                    i += 1;
                }
            }
            Ok(n)
        })
    }

    /// This thread's asynchronous chains not yet reported by `poll`.
    pub fn in_flight(self: &Arc<Self>) -> Result<usize, Error> {
        self.check_open()?;
        with_queue(self, |tq| Ok(tq.pending.len()))
    }
}

/// One read_xrp call's arguments (the buffers stay with the caller).
#[derive(Debug)]
pub struct Read<'a> {
    pub fd: i32,
    pub count: u32,
    pub offset: u64,
    pub prog: i32,
    /// The scratch the chain starts with (`None`: zeros).
    pub scratch: Option<&'a [u8; SCRATCH_SIZE]>,
}

/// Where an asynchronous chain's results go, kept by the thread until its
/// end is polled (raw C pointers: written only by the FFI layer).
#[derive(Debug, Clone, Copy)]
pub struct Dest {
    pub buf: *mut u8,
    pub count: usize,
    pub scratch: *mut u8,
}

/// This thread's queue pair on one engine.
struct ThreadQueue {
    engine: Arc<Engine>,
    q: ChainQueue,
    /// Program handle -> this queue's instance.
    progs: Vec<Option<ProgId>>,
    /// Chains that ended in a poll (the callback runs inside `poll`, here).
    done: Arc<Mutex<Vec<(u64, ChainOutcome)>>>,
    /// Asynchronous chains: token, user data, destination.
    pending: Vec<(u64, u64, Dest)>,
    token: u64,
    generation: u64,
    /// Resets of the controller when the queue pair was made.
    made_in: u64,
    /// When a failed queue pair was last replaced (or tried to be).
    recovered_at: Option<Instant>,
}

impl ThreadQueue {
    fn new(engine: &Arc<Engine>) -> Result<ThreadQueue, Error> {
        let q = new_queue(engine)?;
        // Read after making the queue pair: never lower than the truth.
        let made_in = engine.ctrl.resets();
        Ok(ThreadQueue { engine: engine.clone(), q, progs: Vec::new(), done: Arc::default(), pending: Vec::new(), token: 0, generation: u64::MAX, made_in, recovered_at: None })
    }

    /// Replaces a failed queue pair (or one a reset took away), resetting
    /// the controller first when it failed (unless another thread has reset
    /// it since): at the thread's first call after the failure, then at most
    /// once per [`RECOVER_EVERY`]. Until it works, chains on the failed queue pair
    /// end at once with `QueueFailed`.
    fn recover_if_failed(&mut self) {
        // A reset by another thread took this queue pair from the device.
        let reset_since = self.engine.ctrl.resets() != self.made_in;
        let why = match self.q.failure() {
            Some(why) => why,
            None if reset_since => QueueFailure::ControllerReset,
            None => return,
        };
        if self.recovered_at.is_some_and(|t| t.elapsed() < RECOVER_EVERY) {
            return;
        }
        self.recovered_at = Some(Instant::now());
        // Ends the chains still on the failed queue pair (their outcomes
        // wait in `done`); the error is the failure already known.
        let _ = self.q.poll();
        let ctrl = &self.engine.ctrl;
        if ctrl.reset_if_needed(why, self.made_in).is_err() {
            return;
        }
        if let Ok(q) = new_queue(&self.engine) {
            self.q = q;
            self.made_in = ctrl.resets();
            // Program instances belong to a queue: made again on first use.
            self.progs.clear();
            // Outcomes of synchronous chains nobody waits for any more.
            let pending = &self.pending;
            self.done.lock().unwrap_or_else(|p| p.into_inner()).retain(|(t, _)| pending.iter().any(|(p, ..)| p == t));
        }
    }

    fn next_token(&mut self) -> u64 {
        self.token = self.token.wrapping_add(1);
        self.token
    }

    /// This queue's instance of program `prog`, made on first use.
    fn prog(&mut self, engine: &Engine, prog: i32) -> Result<(ProgId, u32), Error> {
        let spec = engine.prog(prog)?;
        // `prog` is a valid index (engine.prog found it), so non-negative.
        let i = usize::try_from(prog).map_err(|_| Error::UnknownProg(prog.into()))?;
        if self.progs.len() <= i {
            self.progs.resize(i + 1, None);
        }
        if let Some(id) = self.progs[i] {
            return Ok((id, spec.data_size));
        }
        let f = Function::bpf(&spec.object, spec.section.as_deref(), spec.data_size, VmEngine::Jit).map_err(|e| Error::ProgRejected(with_causes(&e)))?;
        let id = self.q.add_function(f)?;
        self.progs[i] = Some(id);
        Ok((id, spec.data_size))
    }

    fn request(&mut self, engine: &Engine, file: FileId, r: &Read) -> Result<ChainRequest, Error> {
        let (prog, _) = self.prog(engine, r.prog)?;
        // A file added or re-mapped since this queue's last poll: take the
        // registry's new snapshot before the chain looks its file up.
        let gen = engine.registry.generation();
        if gen != self.generation {
            self.q.poll()?;
            self.generation = gen;
        }
        let mut req = ChainRequest::new(TENANT, file, FileOffset(r.offset), r.count, prog);
        if let Some(s) = r.scratch {
            // The chain's scratch starts zeroed: copy only up to the last
            // non-zero byte (a lookup's scratch is one key: 8 bytes, not 4 KiB).
            req.scratch = s[..used_len(s)].to_vec();
        }
        req.keep_last = true;
        Ok(req)
    }

    fn submit(&mut self, token: u64, req: ChainRequest) {
        let done = self.done.clone();
        self.q.submit(req, move |o| done.lock().unwrap_or_else(|p| p.into_inner()).push((token, o)));
    }

    fn take_sync(&mut self, token: u64) -> Option<ChainOutcome> {
        let mut done = self.done.lock().unwrap_or_else(|p| p.into_inner());
        let i = done.iter().position(|(t, _)| *t == token)?;
        Some(done.swap_remove(i).1)
    }
}

/// Bytes of `s` up to its last non-zero byte. 64 bytes at a time (an OR
/// the compiler vectorises): a byte-by-byte scan back over a 4 KiB scratch
/// that holds one key cost about 1 us a call.
fn used_len(s: &[u8]) -> usize {
    const CHUNK: usize = 64;
    let Some(i) = s.chunks(CHUNK).rposition(|c| c.iter().fold(0u8, |a, &b| a | b) != 0) else { return 0 };
    let chunk = &s[i * CHUNK..s.len().min((i + 1) * CHUNK)];
    i * CHUNK + chunk.iter().rposition(|&b| b != 0).map_or(0, |j| j + 1)
}

/// A chain queue with a new queue pair on `engine`'s controller.
fn new_queue(engine: &Engine) -> Result<ChainQueue, chaining::ChainError> {
    let cfg = QueueConfig { depth: QUEUE_DEPTH, buf_size: DATA_SIZE_MAX, hops_max: engine.hops_max };
    ChainQueue::new(&engine.ctrl, 1, engine.registry.clone(), cfg)
}

thread_local! {
    /// This thread's queue pairs, one per engine it has called.
    static QUEUES: RefCell<Vec<ThreadQueue>> = const { RefCell::new(Vec::new()) };
}

/// Drops this thread's queue pairs on closed engines.
fn forget_closed() {
    // `try_with`: during thread exit the list may already be gone.
    let _ = QUEUES.try_with(|qs| {
        if let Ok(mut qs) = qs.try_borrow_mut() {
            qs.retain(|t| !t.engine.closed.load(Ordering::Acquire));
        }
    });
}

/// Runs `f` on this thread's queue pair on `engine`, making it first if needed.
fn with_queue<T>(engine: &Arc<Engine>, f: impl FnOnce(&mut ThreadQueue) -> Result<T, Error>) -> Result<T, Error> {
    QUEUES.with(|qs| {
        let mut qs = qs.try_borrow_mut().map_err(|_| Error::Invalid { what: "call", why: "libsfe called again from inside one of its own calls on this thread".into() })?;
        let i = match qs.iter().position(|t| t.engine.id == engine.id) {
            Some(i) => i,
            None => {
                qs.retain(|t| !t.engine.closed.load(Ordering::Acquire));
                qs.push(ThreadQueue::new(engine)?);
                qs.len() - 1
            }
        };
        qs[i].recover_if_failed();
        f(&mut qs[i])
    })
}

#[cfg(test)]
mod tests {
    use super::used_len;

    #[test]
    fn used_len_ends_at_the_last_non_zero_byte() {
        let mut s = vec![0u8; 4096];
        assert_eq!(used_len(&s), 0);
        for at in [0, 7, 63, 64, 65, 1000, 4095] {
            s.fill(0);
            s[at] = 1;
            assert_eq!(used_len(&s), at + 1, "at {at}");
            s[0] = 9;
            assert_eq!(used_len(&s), at + 1, "at {at} with byte 0 set");
        }
        assert_eq!(used_len(&[0, 5, 0]), 2);
        assert_eq!(used_len(&[]), 0);
    }
}
