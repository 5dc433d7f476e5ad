//! One queue pair's chains, driven from one thread: the chain state machine.
//!
//! A chain's first read goes to its tenant's backlog; `poll` issues backlogs
//! round-robin into the queue pair, reaps completions, runs the function on
//! each block in place (`ctx.data` is the DMA buffer, no copy), and puts the
//! reads the function asks for back into the backlog, to be issued in the
//! same poll. Every way a chain can fail ends only that chain: reads it still
//! has in flight complete into a closed chain and are dropped.
//!
//! Limits ([`ChainLimits`], STYLE item 6): chains in flight per queue, reads
//! waiting per tenant, and the device deadline per read. At a limit a chain
//! is refused ([`ChainQueue::try_submit`] hands it back; `submit` ends it with
//! [`ChainStatus::Busy`]): memory never grows past the limits. A read past
//! its deadline ends its chain with [`ChainStatus::Timeout`]; a queue pair
//! that fails ends every chain on it with [`ChainStatus::QueueFailed`], and
//! every chain submitted afterwards, so nothing waits forever.

use crate::addr::device_blocks;
use crate::function::Function;
use crate::request::{ChainRequest, ProgId, FANOUT_MAX, HOPS_MAX_DEFAULT, HOPS_MAX_LIMIT, SCRATCH_SIZE};
use crate::status::{ChainOutcome, ChainStatus};
use crate::tenant::{PendingRead, TenantConfig, Tenants};
use ebpf_runtime::XrpContext;
use fs_extents::registry::FileHandle;
use fs_extents::{FileId, FileOffset, Registry, Snapshot, Target, TenantId, TranslateError};
use nvme::{Completion, Controller, CtrlError, DmaBuf, DmaPool, IoQueuePair, Namespace, QueueError, QueueFailure, Status, Submitter};
use slab::Slab;
use std::sync::Arc;
use std::time::Duration;

/// Chains one queue may hold at once (started and not yet cleaned up).
pub const CHAINS_IN_FLIGHT_MAX: usize = 4096;
/// Reads one tenant may have waiting for the device on one queue.
pub const BACKLOG_PER_TENANT_MAX: usize = 16 * 1024;

/// Called once per chain, on the polling thread, when it ends.
pub type Callback = Box<dyn FnOnce(ChainOutcome) + Send>;

/// Errors of the queue itself (not of one chain).
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error(transparent)]
    Ctrl(#[from] CtrlError),
    #[error("more functions than a queue can number ({} at most)", u32::MAX)]
    TooManyFunctions,
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Dma(#[from] nvme::dma::DmaError),
    #[error("function reads blocks of {data_size} bytes, more than this queue's buffers of {buf_size} bytes; raise QueueConfig::buf_size")]
    FunctionTooLarge { data_size: u32, buf_size: u32 },
    #[error("buffer size {0} must be a positive multiple of the device block size {1}")]
    BadBufSize(u32, u32),
}

/// How a chain queue is set up.
#[derive(Debug, Clone, Copy)]
pub struct QueueConfig {
    /// Entries of the NVMe queue pair (reads in flight: one less).
    pub depth: u16,
    /// Bytes of each read buffer: the largest read a chain may issue.
    pub buf_size: u32,
    /// Hop limit of a chain that does not set one.
    pub hops_max: u32,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig { depth: 128, buf_size: 4096, hops_max: HOPS_MAX_DEFAULT }
    }
}

/// The limits of a queue (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainLimits {
    /// Most chains held at once.
    pub chains_max: usize,
    /// Most reads one tenant may have waiting (not yet on the device).
    pub backlog_per_tenant_max: usize,
    /// How long one read may stay with the device.
    pub command_timeout: Duration,
}

impl Default for ChainLimits {
    fn default() -> Self {
        ChainLimits { chains_max: CHAINS_IN_FLIGHT_MAX, backlog_per_tenant_max: BACKLOG_PER_TENANT_MAX, command_timeout: nvme::COMMAND_TIMEOUT_DEFAULT }
    }
}

/// A chain [`ChainQueue::try_submit`] could not take, handed back whole.
#[derive(Debug)]
pub struct Refused<F> {
    pub request: ChainRequest,
    pub done: F,
    /// Why: always [`ChainStatus::Busy`].
    pub status: ChainStatus,
}

/// Memory a queue holds for its chains, for checks that it stays bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footprint {
    /// Chain slots allocated (the slab's capacity).
    pub chain_slots: usize,
    /// Backlog entries allocated, over all tenants.
    pub backlog_slots: usize,
    /// Read buffers kept for reuse.
    pub free_buffers: usize,
}

/// What travels with each NVMe read.
#[derive(Debug, Clone, Copy)]
pub struct ReadTag {
    chain: u32,
    file_off: FileOffset,
    len: u32,
}

/// Counters of a queue.
#[derive(Debug, Default, Clone, Copy)]
pub struct QueueStats {
    pub chains_started: u64,
    pub chains_ended: u64,
    pub reads: u64,
    pub hole_reads: u64,
    pub hops: u64,
}

struct Chain {
    tenant: usize,
    file: FileId,
    /// The map the chain translates with, and whether it is still current.
    handle: FileHandle,
    prog: usize,
    scratch: Option<Box<[u8; SCRATCH_SIZE]>>,
    hops: u32,
    reads: u32,
    /// Reads planned so far (queued, in flight or done): what the hop limit counts.
    planned: u32,
    hops_max: u32,
    in_flight: u32,
    queued: u32,
    ended: bool,
    cb: Option<Callback>,
    /// With `keep_last`: the buffer of the last block the program ran on and
    /// its length (returned to the free list when the chain is reaped).
    last: Option<Option<(DmaBuf, u32)>>,
}

struct State {
    ns: Namespace,
    pool: DmaPool,
    free: Vec<DmaBuf>,
    buf_size: u32,
    registry: Arc<Registry>,
    snap: Arc<Snapshot>,
    snap_gen: u64,
    functions: Vec<Function>,
    chains: Slab<Chain>,
    tenants: Tenants,
    hops_default: u32,
    limits: ChainLimits,
    stats: QueueStats,
}

/// Chains on one NVMe queue pair, driven by [`ChainQueue::poll`] from one thread.
pub struct ChainQueue {
    qp: IoQueuePair<ReadTag>,
    st: State,
}

impl std::fmt::Debug for ChainQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainQueue").field("chains", &self.st.chains.len()).field("stats", &self.st.stats).finish()
    }
}

impl ChainQueue {
    /// A queue over a new I/O queue pair of `ctrl`, reading namespace `nsid`,
    /// with files and grants from `registry`.
    pub fn new(ctrl: &Controller, nsid: u32, registry: Arc<Registry>, cfg: QueueConfig) -> Result<ChainQueue, ChainError> {
        ChainQueue::with_limits(ctrl, nsid, registry, cfg, ChainLimits::default())
    }

    /// As [`ChainQueue::new`], with explicit limits.
    pub fn with_limits(ctrl: &Controller, nsid: u32, registry: Arc<Registry>, cfg: QueueConfig, limits: ChainLimits) -> Result<ChainQueue, ChainError> {
        let ns = ctrl.namespace(nsid)?;
        if cfg.buf_size == 0 || cfg.buf_size % ns.block_size != 0 {
            return Err(ChainError::BadBufSize(cfg.buf_size, ns.block_size));
        }
        let limits = ChainLimits { chains_max: limits.chains_max.max(1), backlog_per_tenant_max: limits.backlog_per_tenant_max.max(1), ..limits };
        let mut qp = ctrl.alloc_io_qpair(cfg.depth, 0)?;
        qp.set_command_timeout(limits.command_timeout);
        let snap = registry.snapshot();
        let snap_gen = registry.generation();
        Ok(ChainQueue {
            qp,
            st: State {
                ns,
                pool: ctrl.transport().dma().clone(),
                free: Vec::new(),
                buf_size: cfg.buf_size,
                registry,
                snap,
                snap_gen,
                functions: Vec::new(),
                chains: Slab::new(),
                tenants: Tenants::default(),
                hops_default: cfg.hops_max.clamp(1, HOPS_MAX_LIMIT),
                limits,
                stats: QueueStats::default(),
            },
        })
    }

    /// Registers a function; chains name it by the returned id.
    pub fn add_function(&mut self, f: Function) -> Result<ProgId, ChainError> {
        if f.data_size() > self.st.buf_size {
            return Err(ChainError::FunctionTooLarge { data_size: f.data_size(), buf_size: self.st.buf_size });
        }
        let id = u32::try_from(self.st.functions.len()).map_err(|_| ChainError::TooManyFunctions)?;
        self.st.functions.push(f);
        Ok(ProgId(id))
    }

    /// Sets a tenant's hop limit and in-flight budget on this queue.
    pub fn configure_tenant(&mut self, tenant: TenantId, cfg: TenantConfig) {
        self.st.tenants.configure(tenant, cfg);
    }

    /// The device block size reads must be multiples of.
    pub fn block_size(&self) -> u32 {
        self.st.ns.block_size
    }

    pub fn stats(&self) -> QueueStats {
        self.st.stats
    }

    /// Chains started and not yet cleaned up.
    pub fn chains_in_flight(&self) -> usize {
        self.st.chains.len()
    }

    pub fn limits(&self) -> ChainLimits {
        self.st.limits
    }

    /// Why the queue pair failed, once it has (every chain then ends with
    /// [`ChainStatus::QueueFailed`]).
    pub fn failure(&self) -> Option<QueueFailure> {
        self.qp.failure()
    }

    /// Memory held for chains; bounded by the limits whatever is submitted.
    pub fn footprint(&self) -> Footprint {
        Footprint { chain_slots: self.st.chains.capacity(), backlog_slots: self.st.tenants.list.iter().map(|t| t.backlog.capacity()).sum(), free_buffers: self.st.free.len() }
    }

    /// Starts a chain; `done` runs on this thread when it ends, with a status
    /// for every way it can end (including an invalid request). At a limit
    /// the chain ends at once with [`ChainStatus::Busy`] (use
    /// [`ChainQueue::try_submit`] to get it back instead).
    pub fn submit(&mut self, req: ChainRequest, done: impl FnOnce(ChainOutcome) + Send + 'static) {
        let cb: Callback = Box::new(done);
        if let Err(r) = self.try_submit(req, cb) {
            (r.done)(ChainOutcome::ended(r.status));
        }
    }

    /// Starts a chain as [`ChainQueue::submit`] does, unless the queue holds
    /// [`ChainLimits::chains_max`] chains or the tenant's backlog is full:
    /// then the request and callback come back (poll, then retry).
    pub fn try_submit<F: FnOnce(ChainOutcome) + Send + 'static>(&mut self, req: ChainRequest, done: F) -> Result<(), Refused<F>> {
        if let Some(status) = self.st.busy(&req) {
            return Err(Refused { request: req, done, status });
        }
        if let Some(reason) = self.qp.failure() {
            self.st.stats.chains_started += 1;
            self.st.stats.chains_ended += 1;
            done(ChainOutcome::ended(ChainStatus::QueueFailed(reason)));
            return Ok(());
        }
        self.st.start(req, Box::new(done));
        Ok(())
    }

    /// Issues queued reads, reaps completions (running the function on each
    /// block and queueing the reads it asks for), issues those, and returns
    /// the number of completions handled. Never blocks.
    pub fn poll(&mut self) -> Result<usize, ChainError> {
        let gen = self.st.registry.generation();
        if gen != self.st.snap_gen {
            self.st.snap = self.st.registry.snapshot();
            self.st.snap_gen = gen;
        }
        if let Some(reason) = self.qp.failure() {
            self.st.drain(reason);
            return Err(ChainError::Queue(QueueError::Failed { qid: self.qp.qid(), reason }));
        }
        let st = &mut self.st;
        st.pump(self.qp.submitter());
        let timeout_ms = u64::try_from(self.qp.command_timeout().as_millis()).unwrap_or(u64::MAX);
        let r = self.qp.process_completions(0, |sub, c| {
            st.on_completion(c, sub.failure(), timeout_ms);
            st.pump(sub);
        });
        let n = match r {
            Ok(n) => n,
            Err(e) => {
                // The queue pair failed: it handed back every read it held;
                // the reads still waiting in backlogs end here.
                if let Some(reason) = self.qp.failure() {
                    self.st.drain(reason);
                }
                return Err(e.into());
            }
        };
        self.st.pump(self.qp.submitter());
        self.qp.submitter().ring_doorbell();
        Ok(n)
    }

    /// Runs one chain to its end, polling on this thread (a convenience for
    /// tools and tests; the reactor serves many chains at once).
    pub fn run_blocking(&mut self, req: ChainRequest) -> Result<ChainOutcome, ChainError> {
        let slot = Arc::new(std::sync::Mutex::new(None));
        let s2 = slot.clone();
        self.submit(req, move |o| *s2.lock().unwrap_or_else(|p| p.into_inner()) = Some(o));
        // Ends: every read has a deadline, and a failed queue ends its chains.
        loop {
            if let Some(o) = slot.lock().unwrap_or_else(|p| p.into_inner()).take() {
                return Ok(o);
            }
            if let Err(e) = self.poll() {
                // The chain ended with the failure (QueueFailed) unless it
                // could not have: then the error is the answer.
                return slot.lock().unwrap_or_else(|p| p.into_inner()).take().ok_or(e);
            }
        }
    }
}

fn outcome(scratch: Box<[u8; SCRATCH_SIZE]>, status: ChainStatus, hops: u32, reads: u32) -> ChainOutcome {
    ChainOutcome { status, scratch, hops, reads, last_block: None }
}

impl State {
    /// The limit a new chain would exceed, if any.
    fn busy(&self, req: &ChainRequest) -> Option<ChainStatus> {
        if self.chains.len() >= self.limits.chains_max {
            return Some(ChainStatus::Busy { limit: "chains in flight on the queue", max: self.limits.chains_max });
        }
        let full = self.tenants.find(req.tenant).is_some_and(|t| self.tenants.list[t].backlog.len() >= self.limits.backlog_per_tenant_max);
        full.then_some(ChainStatus::Busy { limit: "the tenant's backlog of reads", max: self.limits.backlog_per_tenant_max })
    }

    /// Ends every chain with reads still waiting in a backlog (the queue
    /// pair failed and will take no more).
    fn drain(&mut self, reason: QueueFailure) {
        for t in 0..self.tenants.list.len() {
            while let Some(r) = self.tenants.list[t].backlog.pop_front() {
                self.chains[r.chain].queued -= 1;
                if self.chains[r.chain].ended {
                    self.reap(r.chain);
                } else {
                    self.end(r.chain, ChainStatus::QueueFailed(reason));
                }
            }
        }
    }

    fn start(&mut self, req: ChainRequest, cb: Callback) {
        self.stats.chains_started += 1;
        let mut scratch = Box::new([0u8; SCRATCH_SIZE]);
        if req.scratch.len() > SCRATCH_SIZE {
            let msg = format!("scratch of {} bytes exceeds {SCRATCH_SIZE}", req.scratch.len());
            self.stats.chains_ended += 1;
            return cb(outcome(scratch, ChainStatus::Invalid(msg), 0, 0));
        }
        scratch[..req.scratch.len()].copy_from_slice(&req.scratch);
        let prog = req.prog.0 as usize;
        if prog >= self.functions.len() {
            self.stats.chains_ended += 1;
            return cb(outcome(scratch, ChainStatus::Invalid(format!("unknown program {:?}", req.prog)), 0, 0));
        }
        let handle = match self.snap.lookup(req.tenant, req.file) {
            Ok(h) => h,
            Err(e) => {
                self.stats.chains_ended += 1;
                let st = ChainStatus::Access { offset: req.offset, size: u64::from(req.size), reason: e.to_string() };
                return cb(outcome(scratch, st, 0, 0));
            }
        };
        let tenant = self.tenants.slot(req.tenant);
        let tcfg = self.tenants.list[tenant].cfg;
        let hops_max = req.hops_max.unwrap_or(self.hops_default).clamp(1, HOPS_MAX_LIMIT).min(tcfg.hops_max);
        debug_assert!(self.chains.len() < self.limits.chains_max, "checked by busy()");
        let key = self.chains.insert(Chain {
            tenant,
            file: req.file,
            handle,
            prog,
            scratch: Some(scratch),
            hops: 0,
            reads: 0,
            planned: 0,
            hops_max,
            in_flight: 0,
            queued: 0,
            ended: false,
            cb: Some(cb),
            last: req.keep_last.then_some(None),
        });
        match self.plan(key, 0, req.offset, u64::from(req.size)) {
            Ok(r) => self.enqueue(key, r),
            Err(st) => self.end(key, st),
        }
    }

    /// Checks and translates one read a chain wants.
    fn plan(&self, key: usize, slot: usize, off: FileOffset, size: u64) -> Result<PendingRead, ChainStatus> {
        let c = &self.chains[key];
        let data_size = u64::from(self.functions[c.prog].data_size());
        let bs = u64::from(self.ns.block_size);
        if size == 0 {
            return Err(ChainStatus::BadSize { slot, size, reason: "a read of 0 bytes" });
        }
        if size % bs != 0 {
            return Err(ChainStatus::BadSize { slot, size, reason: "not a multiple of the device block size" });
        }
        if size > data_size {
            return Err(ChainStatus::BadSize { slot, size, reason: "larger than the block the program was verified for" });
        }
        let seg = c.handle.map.translate(off, size).map_err(|e| {
            let reason = match e {
                TranslateError::CrossesExtent { .. } => format!("{e} (reads crossing extents are not split; keep reads block aligned)"),
                _ => e.to_string(),
            };
            ChainStatus::Access { offset: off, size, reason }
        })?;
        // `size <= data_size <= buf_size`, a u32.
        let len = u32::try_from(size).map_err(|_| ChainStatus::BadSize { slot, size, reason: "larger than the block the program was verified for" })?;
        match seg.target {
            Target::Zeros => Ok(PendingRead { chain: key, dev: None, file_off: off, len }),
            Target::Device(d) => match device_blocks(d, size, &self.ns) {
                Ok(blocks) => Ok(PendingRead { chain: key, dev: Some(blocks), file_off: off, len }),
                Err(e) => Err(ChainStatus::Access { offset: off, size, reason: e.to_string() }),
            },
        }
    }

    fn enqueue(&mut self, key: usize, r: PendingRead) {
        let c = &mut self.chains[key];
        c.queued += 1;
        c.planned += 1;
        self.tenants.list[c.tenant].backlog.push_back(r);
    }

    fn take_buf(&mut self) -> Option<DmaBuf> {
        match self.free.pop() {
            Some(b) => Some(b),
            None => self.pool.alloc(self.buf_size as usize).ok(),
        }
    }

    /// Issues backlog reads round-robin until the queue is full or the
    /// backlogs are empty (or held back by their tenants' budgets).
    fn pump(&mut self, sub: &mut Submitter<ReadTag>) {
        while let Some(t) = self.tenants.next_ready() {
            let Some(r) = self.tenants.list[t].backlog.pop_front() else { continue };
            let key = r.chain;
            if self.chains[key].ended {
                self.chains[key].queued -= 1;
                self.reap(key);
                continue;
            }
            let Some(dev) = r.dev else {
                // A hole: zeros, no device read.
                self.chains[key].queued -= 1;
                self.stats.hole_reads += 1;
                match self.take_buf() {
                    Some(mut buf) => {
                        buf.fill(0);
                        self.on_block(key, buf, r.len);
                    }
                    None => self.end(key, ChainStatus::Submit("out of DMA memory for a read buffer".into())),
                }
                continue;
            };
            if sub.is_full() {
                self.tenants.list[t].backlog.push_front(r);
                break;
            }
            // Chains in flight are capped (ChainLimits) far below u32::MAX.
            let Ok(chain) = u32::try_from(key) else {
                self.chains[key].queued -= 1;
                self.end(key, ChainStatus::Submit("chain slot number past u32".into()));
                continue;
            };
            let Some(buf) = self.take_buf() else {
                self.chains[key].queued -= 1;
                self.end(key, ChainStatus::Submit("out of DMA memory for a read buffer".into()));
                continue;
            };
            let tag = ReadTag { chain, file_off: r.file_off, len: r.len };
            match sub.read(&self.ns, dev.lba, dev.nlb, buf, tag) {
                Ok(()) => {
                    let c = &mut self.chains[key];
                    c.queued -= 1;
                    c.in_flight += 1;
                    c.reads += 1;
                    self.tenants.list[t].inflight += 1;
                    self.stats.reads += 1;
                }
                Err(rej) => {
                    if let Some(b) = rej.buf {
                        self.free.push(b);
                    }
                    if matches!(rej.error, QueueError::QueueFull { .. }) {
                        self.tenants.list[t].backlog.push_front(r);
                        break;
                    }
                    self.chains[key].queued -= 1;
                    let status = match rej.error {
                        QueueError::Failed { reason, .. } => ChainStatus::QueueFailed(reason),
                        e => ChainStatus::Submit(e.to_string()),
                    };
                    self.end(key, status);
                }
            }
        }
    }

    /// A read came back: done, failed on the device, past its deadline
    /// (no buffer: the queue pair keeps it), or ended by a failed queue pair.
    fn on_completion(&mut self, c: Completion<ReadTag>, failure: Option<QueueFailure>, timeout_ms: u64) {
        let key = c.cookie.chain as usize;
        let Some(chain) = self.chains.get_mut(key) else {
            // Cannot happen: a chain is removed only when nothing is in flight.
            debug_assert!(false, "completion for a removed chain");
            return;
        };
        chain.in_flight -= 1;
        let t = chain.tenant;
        self.tenants.list[t].inflight -= 1;
        let Some(buf) = c.buf else {
            let status = match failure {
                Some(reason) => ChainStatus::QueueFailed(reason),
                None if c.status == Status::HOST_ABORTED => ChainStatus::Timeout { offset: c.cookie.file_off, timeout_ms },
                None => ChainStatus::Device { offset: c.cookie.file_off, status: c.status },
            };
            if self.chains[key].ended {
                self.reap(key);
            } else {
                self.end(key, status);
            }
            return;
        };
        if !c.status.is_success() {
            self.free.push(buf);
            if !self.chains[key].ended {
                self.end(key, ChainStatus::Device { offset: c.cookie.file_off, status: c.status });
            } else {
                self.reap(key);
            }
            return;
        }
        self.on_block(key, buf, c.cookie.len);
    }

    /// Runs the chain's function on one block and plans what it asks for.
    fn on_block(&mut self, key: usize, mut buf: DmaBuf, len: u32) {
        if self.chains[key].ended {
            self.free.push(buf);
            self.reap(key);
            return;
        }
        let c = &self.chains[key];
        let prog = c.prog;
        if !c.handle.is_current() {
            // The file's extents changed (or it was removed) since the chain
            // started: what was read may not be the file's bytes any more.
            let (file, then) = (c.file, c.handle.map.version());
            let now = self.registry.snapshot().version(file).unwrap_or(fs_extents::registry::VERSION_RETIRED);
            self.free.push(buf);
            return self.end(key, ChainStatus::Stale { file, then, now });
        }
        let data_size = self.functions[prog].data_size() as usize;
        let data = &mut buf.as_mut_slice()[..data_size];
        if (len as usize) < data_size {
            // No stale bytes of an earlier read (maybe another tenant's) past the data.
            data[len as usize..].fill(0);
        }
        let chain = &mut self.chains[key];
        chain.hops += 1;
        let hop = chain.hops;
        self.stats.hops += 1;
        let scratch = chain.scratch.as_deref_mut().expect("a live chain holds its scratch");
        let mut ctx = XrpContext::default();
        let result = self.functions[prog].call(data, scratch, &mut ctx);
        match &mut chain.last {
            Some(last) => {
                if let Some((old, _)) = last.replace((buf, len)) {
                    self.free.push(old);
                }
            }
            None => self.free.push(buf),
        }
        let ret = match result {
            Ok(r) => r,
            Err(message) => return self.end(key, ChainStatus::Program { hop, message }),
        };
        if ret != 0 {
            return self.end(key, ChainStatus::Aborted { code: ret, hop });
        }
        if ctx.done != 0 {
            return self.end(key, ChainStatus::Done);
        }
        let mut planned = [None; FANOUT_MAX];
        let mut count = 0u32;
        for (slot, out) in planned.iter_mut().enumerate() {
            if ctx.size[slot] == 0 {
                continue;
            }
            match self.plan(key, slot, FileOffset(ctx.next_addr[slot]), ctx.size[slot]) {
                Ok(r) => {
                    *out = Some(r);
                    count += 1;
                }
                Err(st) => return self.end(key, st),
            }
        }
        let c = &self.chains[key];
        if c.planned.saturating_add(count) > c.hops_max {
            let hops_max = c.hops_max;
            return self.end(key, ChainStatus::HopLimit { hops_max });
        }
        let max = self.limits.backlog_per_tenant_max;
        if self.tenants.list[c.tenant].backlog.len() + count as usize > max {
            return self.end(key, ChainStatus::Busy { limit: "the tenant's backlog of reads", max });
        }
        for r in planned.into_iter().flatten() {
            self.enqueue(key, r);
        }
        let c = &self.chains[key];
        if count == 0 && c.in_flight == 0 && c.queued == 0 {
            // Nothing asked for and nothing outstanding: the chain has drained.
            self.end(key, ChainStatus::Done);
        }
    }

    /// Ends a chain: reports to its owner now, frees it once nothing of it is
    /// queued or in flight.
    fn end(&mut self, key: usize, status: ChainStatus) {
        let c = &mut self.chains[key];
        if c.ended {
            return;
        }
        c.ended = true;
        let scratch = c.scratch.take().expect("a live chain holds its scratch");
        let mut out = outcome(scratch, status, c.hops, c.reads);
        if let Some(last) = &mut c.last {
            if let Some((mut buf, len)) = last.take() {
                // Copied once, into memory not zeroed first.
                out.last_block = Some(buf.as_mut_slice()[..len as usize].to_vec());
                self.free.push(buf);
            }
        }
        let cb = c.cb.take();
        self.stats.chains_ended += 1;
        self.reap(key);
        if let Some(cb) = cb {
            cb(out);
        }
    }

    fn reap(&mut self, key: usize) {
        let c = &self.chains[key];
        if c.ended && c.in_flight == 0 && c.queued == 0 {
            self.chains.remove(key);
        }
    }
}

#[cfg(test)]
#[path = "queue_tests.rs"]
mod tests;
