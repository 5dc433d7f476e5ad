//! A controller: bring-up as an explicit state machine (SPDK's
//! `nvme_ctrlr_state`), admin commands, namespaces, and I/O queue pairs.
//! The same code drives the emulated controller and a PCIe controller.

use crate::dma::DmaBuf;
use crate::error::CtrlError;
use crate::prp::{PAGE, PRP_LIST_ENTRIES};
use crate::queue::{Aborter, Namespace, QueuePair, QueueParts, COMMAND_TIMEOUT_DEFAULT, COMPLETIONS_PER_POLL_MAX};
use crate::spec::cmd::{self, AdminOpcode, SQE_SIZE};
use crate::spec::cqe::CQE_SIZE;
use crate::spec::regs::{self, offset, Cap, Cc, Csts};
use crate::spec::{IdentifyController, IdentifyNamespace, Sqe, Status};
use crate::transport::Transport;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, TryLockError, Weak};
use std::time::{Duration, Instant};
use zerocopy::FromBytes;

/// Entries of the admin queues.
pub const ADMIN_DEPTH: u16 = 32;
/// How long an admin command may take.
pub const ADMIN_TIMEOUT_MS: u64 = 10_000;
/// Most I/O queue pairs we ask a controller for.
pub const IO_QUEUES_WANTED: u16 = 64;
/// Deepest I/O queue we create (entries).
pub const IO_DEPTH_MAX: u16 = 4096;

/// Bring-up states, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Disable,
    WaitDisabled,
    ConfigureAdmin,
    Enable,
    WaitReady,
    IdentifyController,
    SetQueueCount,
    IdentifyNamespaces,
    Ready,
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Disable => "disable",
            State::WaitDisabled => "wait for disable",
            State::ConfigureAdmin => "configure admin queue",
            State::Enable => "enable",
            State::WaitReady => "wait for ready",
            State::IdentifyController => "identify controller",
            State::SetQueueCount => "set number of queues",
            State::IdentifyNamespaces => "identify namespaces",
            State::Ready => "ready",
        }
    }
}

/// Tag of an admin command: the sequence number of a command someone waits
/// for, or [`ABORT_TAG`] for a fire-and-forget Abort.
type AdminTag = u64;
const ABORT_TAG: AdminTag = 0;

struct Shared {
    transport: Arc<dyn Transport>,
    dstrd: u8,
    admin: Mutex<Option<QueuePair<AdminTag>>>,
    next_tag: AtomicU64,
    free_qids: Mutex<Vec<u16>>,
    /// I/O queues the controller granted at its latest bring-up or reset.
    granted: AtomicU16,
    /// Resets so far: a queue pair made before the latest one is gone from
    /// the device (see [`Controller::reset`]).
    epoch: Arc<AtomicU64>,
}

impl Shared {
    /// Runs one admin command to completion (polling), returning CQE DW0 and
    /// the data buffer. Gives up after [`ADMIN_TIMEOUT_MS`], or at once when
    /// the controller reports fatal status.
    ///
    /// # Safety
    ///
    /// As [`crate::Submitter::submit`]: the command makes the device touch no
    /// host memory but the first `len` bytes of `data`, or memory that stays
    /// allocated (and is not raced by the host) until the command completes.
    unsafe fn admin(&self, sqe: Sqe, data: Option<(DmaBuf, usize)>) -> Result<(u32, Option<DmaBuf>), CtrlError> {
        let mut guard = self.admin.lock().unwrap_or_else(|p| p.into_inner());
        let Some(qp) = guard.as_mut() else {
            return Err(CtrlError::Fatal { state: "admin command before the admin queue exists" });
        };
        let tag = self.next_tag.fetch_add(1, Ordering::Relaxed) + 1;
        // SAFETY: the caller's contract (above) is `submit`'s.
        unsafe { qp.submit(sqe, data, tag) }.map_err(|r| CtrlError::Queue(r.error))?;
        // The queue pair abandons the command at ADMIN_TIMEOUT_MS; this is a
        // backstop in case polling itself stalls.
        let deadline = Instant::now() + Duration::from_millis(ADMIN_TIMEOUT_MS) + Duration::from_secs(1);
        loop {
            let mut done = None;
            // Completions of earlier Aborts (and of commands an earlier call
            // gave up on) are not ours: dropped here.
            qp.process_completions(0, |_, c| {
                if c.cookie == tag {
                    done = Some(c);
                }
            })?;
            if let Some(c) = done {
                if c.status == Status::HOST_ABORTED {
                    return Err(CtrlError::AdminTimeout { opcode: sqe.opcode, ms: ADMIN_TIMEOUT_MS });
                }
                if !c.status.is_success() {
                    return Err(CtrlError::AdminFailed { opcode: sqe.opcode, status: c.status });
                }
                return Ok((c.result, c.buf));
            }
            if Csts(self.transport.read32(offset::CSTS)).fatal() {
                return Err(CtrlError::Fatal { state: "an admin command" });
            }
            if Instant::now() > deadline {
                return Err(CtrlError::AdminTimeout { opcode: sqe.opcode, ms: ADMIN_TIMEOUT_MS });
            }
            std::hint::spin_loop();
        }
    }

    /// Sends an Abort for command `cid` of queue `sqid` without waiting
    /// (best effort: skipped when another thread holds the admin queue or it
    /// is full; the command's deadline handling does not depend on it).
    fn abort_async(&self, sqid: u16, cid: u16) {
        let mut guard = match self.admin.try_lock() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return,
        };
        let Some(qp) = guard.as_mut() else { return };
        // Reap earlier Aborts' completions to keep room in the admin queue.
        let _ = qp.process_completions(0, |_, _| {});
        let sqe = Sqe { opcode: AdminOpcode::Abort as u8, cdw10: u32::from(sqid) | (u32::from(cid) << 16), ..Sqe::default() };
        // SAFETY: Abort transfers no data and carries no address.
        if unsafe { qp.submit(sqe, None, ABORT_TAG) }.is_ok() {
            qp.ring_doorbell();
        }
    }

    /// Returns a queue id to the free list, unless a reset since granted
    /// fewer queues than it.
    fn give_back_qid(&self, qid: u16) {
        if qid <= self.granted.load(Ordering::Acquire) {
            self.free_qids.lock().unwrap_or_else(|p| p.into_inner()).push(qid);
        }
    }

    /// Sets Features (number of queues); the I/O queue pairs granted.
    fn set_queue_count(&self) -> Result<u16, CtrlError> {
        let n = u32::from(IO_QUEUES_WANTED - 1);
        let sqe = Sqe { opcode: AdminOpcode::SetFeatures as u8, cdw10: cmd::FEAT_NUMBER_OF_QUEUES, cdw11: n | (n << 16), ..Sqe::default() };
        // SAFETY: Set Features (number of queues) transfers no data.
        let (res, _) = unsafe { self.admin(sqe, None) }?;
        let nsq = (res & 0xffff) as u16;
        let ncq = (res >> 16) as u16;
        Ok(nsq.min(ncq).saturating_add(1).min(IO_QUEUES_WANTED))
    }

    /// Deletes I/O queue `qid` (SQ, then CQ); true when the controller
    /// confirmed both, so it no longer touches their memory.
    fn delete_queues(&self, qid: u16) -> bool {
        let csts = Csts(self.transport.read32(offset::CSTS));
        if csts.fatal() || !csts.ready() {
            return false;
        }
        [AdminOpcode::DeleteIoSq, AdminOpcode::DeleteIoCq].into_iter().all(|op| {
            let sqe = Sqe { opcode: op as u8, cdw10: u32::from(qid), ..Sqe::default() };
            // SAFETY: queue deletion transfers no data and carries no address.
            unsafe { self.admin(sqe, None) }.is_ok()
        })
    }
}

/// Allocates the admin rings, points the controller at them (AQA, ASQ,
/// ACQ; the controller must be disabled) and returns their queue pair.
fn admin_queue(t: &Arc<dyn Transport>, cap: Cap) -> Result<QueuePair<AdminTag>, CtrlError> {
    let depth = ADMIN_DEPTH.min(u16::try_from(cap.max_queue_entries()).unwrap_or(u16::MAX));
    let dma = t.dma();
    let sq_mem = dma.alloc(usize::from(depth) * SQE_SIZE)?;
    let cq_mem = dma.alloc(usize::from(depth) * CQE_SIZE)?;
    t.write32(offset::AQA, regs::aqa(u32::from(depth), u32::from(depth)));
    t.write64(offset::ASQ, sq_mem.iova().0);
    t.write64(offset::ACQ, cq_mem.iova().0);
    Ok(QueuePair::new(QueueParts {
        qid: 0,
        dstrd: cap.dstrd(),
        transport: t.clone(),
        sq_mem,
        cq_mem,
        entries: depth,
        max_per_poll: COMPLETIONS_PER_POLL_MAX,
        timeout: Duration::from_millis(ADMIN_TIMEOUT_MS),
        aborter: None,
        epoch: None,
    }))
}

/// Polls CSTS until `done` holds, for at most the controller's CAP.TO (at
/// least 500 ms); with `fatal_is_error`, CSTS.CFS ends the wait at once.
fn wait_csts(t: &Arc<dyn Transport>, cap: Cap, done: impl Fn(Csts) -> bool, want: &'static str, fatal_is_error: bool) -> Result<(), CtrlError> {
    let ms = cap.timeout_ms().max(500);
    let deadline = Instant::now() + Duration::from_millis(ms);
    loop {
        let csts = Csts(t.read32(offset::CSTS));
        if fatal_is_error && csts.fatal() {
            return Err(CtrlError::Fatal { state: want });
        }
        if done(csts) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(CtrlError::Timeout { want, ms });
        }
        std::thread::sleep(Duration::from_micros(50));
    }
}

/// How long dropping a controller waits for admin commands still in flight
/// (fire-and-forget Aborts) before it leaks the admin rings instead.
const ADMIN_DRAIN_MS: u64 = 100;

impl Drop for Shared {
    fn drop(&mut self) {
        let Some(mut qp) = self.admin.get_mut().unwrap_or_else(|p| p.into_inner()).take() else { return };
        let deadline = Instant::now() + Duration::from_millis(ADMIN_DRAIN_MS);
        while qp.device_may_hold_buffers() && Instant::now() < deadline {
            if qp.process_completions(0, |_, _| {}).is_err() {
                break;
            }
            std::hint::spin_loop();
        }
        if qp.device_may_hold_buffers() {
            // An Abort (or a command given up on) is still with the device,
            // which may yet write its completion: never free those rings.
            std::mem::forget(qp);
        }
    }
}

/// An attached, enabled controller.
pub struct Controller {
    shared: Arc<Shared>,
    cap: Cap,
    ident: Box<IdentifyController>,
    namespaces: Vec<Namespace>,
    io_queues: u16,
    trace: Vec<State>,
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller").field("transport", &self.shared.transport.name()).field("model", &self.ident.model()).field("namespaces", &self.namespaces).finish()
    }
}

/// Bring-up in progress: one method per state.
struct BringUp {
    transport: Arc<dyn Transport>,
    cap: Cap,
    shared: Option<Arc<Shared>>,
    ident: Option<Box<IdentifyController>>,
    io_queues: u16,
    namespaces: Vec<Namespace>,
    trace: Vec<State>,
}

impl BringUp {
    fn step(&mut self, s: State) -> Result<State, CtrlError> {
        self.trace.push(s);
        let t = self.transport.clone();
        match s {
            State::Disable => {
                if !self.cap.nvm_css() || self.cap.mps_min() > PAGE {
                    return Err(CtrlError::Unsupported { cap: self.cap.0 });
                }
                let cc = Cc(t.read32(offset::CC));
                if cc.enabled() {
                    t.write32(offset::CC, cc.0 & !1);
                }
                Ok(State::WaitDisabled)
            }
            State::WaitDisabled => {
                wait_csts(&t, self.cap, |c| !c.ready(), "disabled", false)?;
                Ok(State::ConfigureAdmin)
            }
            State::ConfigureAdmin => {
                let qp = admin_queue(&t, self.cap)?;
                self.shared = Some(Arc::new(Shared {
                    transport: t.clone(),
                    dstrd: self.cap.dstrd(),
                    admin: Mutex::new(Some(qp)),
                    next_tag: AtomicU64::new(0),
                    free_qids: Mutex::new(Vec::new()),
                    granted: AtomicU16::new(0),
                    epoch: Arc::new(AtomicU64::new(0)),
                }));
                Ok(State::Enable)
            }
            State::Enable => {
                t.write32(offset::CC, Cc::enable_default().0);
                Ok(State::WaitReady)
            }
            State::WaitReady => {
                wait_csts(&t, self.cap, |c| c.ready(), "ready", true)?;
                Ok(State::IdentifyController)
            }
            State::IdentifyController => {
                let buf = self.admin_identify(cmd::CNS_CONTROLLER, 0)?;
                let ident = IdentifyController::read_from_bytes(&buf).map_err(|_| CtrlError::Fatal { state: "identify controller" })?;
                self.ident = Some(Box::new(ident));
                Ok(State::SetQueueCount)
            }
            State::SetQueueCount => {
                self.io_queues = self.shared().set_queue_count()?;
                self.shared().granted.store(self.io_queues, Ordering::Release);
                let qids: Vec<u16> = (1..=self.io_queues).rev().collect();
                *self.shared().free_qids.lock().unwrap_or_else(|p| p.into_inner()) = qids;
                Ok(State::IdentifyNamespaces)
            }
            State::IdentifyNamespaces => {
                let nn = self.ident.as_ref().map_or(0, |i| i.nn);
                let ids: Vec<u32> = match self.admin_identify(cmd::CNS_ACTIVE_NS_LIST, 0) {
                    Ok(list) => list.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).take_while(|&id| id != 0).collect(),
                    Err(_) => (1..=nn.min(1024)).collect(),
                };
                let mdts = self.ident.as_ref().map_or(0, |i| i.mdts);
                let prp_max = PRP_LIST_ENTRIES as u64 * PAGE;
                let max_transfer = if mdts == 0 { prp_max } else { (self.cap.mps_min() << mdts.min(20)).min(prp_max) };
                for nsid in ids {
                    let buf = self.admin_identify(cmd::CNS_NAMESPACE, nsid)?;
                    let ns = IdentifyNamespace::read_from_bytes(&buf).map_err(|_| CtrlError::Fatal { state: "identify namespace" })?;
                    if ns.nsze == 0 {
                        continue;
                    }
                    let block_size = ns.lba_format().data_size().ok_or(CtrlError::BadLbaFormat { nsid })?;
                    self.namespaces.push(Namespace { id: nsid, block_size, blocks: ns.nsze, max_transfer });
                }
                Ok(State::Ready)
            }
            State::Ready => Ok(State::Ready),
        }
    }

    fn shared(&self) -> &Arc<Shared> {
        // Every state after ConfigureAdmin runs with the admin queue in place.
        self.shared.as_ref().expect("admin queue configured before admin commands")
    }

    fn admin_identify(&self, cns: u32, nsid: u32) -> Result<Vec<u8>, CtrlError> {
        let buf = self.transport.dma().alloc(4096)?;
        let sqe = Sqe { opcode: AdminOpcode::Identify as u8, nsid, cdw10: cns, ..Sqe::default() };
        // SAFETY: Identify transfers exactly 4096 bytes, into `buf`.
        let (_, buf) = unsafe { self.shared().admin(sqe, Some((buf, 4096))) }?;
        Ok(buf.map(|b| b.to_vec()).unwrap_or_default())
    }
}

impl Controller {
    /// Brings a controller up: disable, admin queue, enable, wait ready,
    /// identify, queue count, namespaces.
    pub fn attach(transport: Arc<dyn Transport>) -> Result<Controller, CtrlError> {
        let cap = Cap(transport.read64(offset::CAP));
        let mut b = BringUp { transport, cap, shared: None, ident: None, io_queues: 0, namespaces: Vec::new(), trace: Vec::new() };
        let mut state = State::Disable;
        while state != State::Ready {
            state = b.step(state)?;
        }
        b.trace.push(State::Ready);
        let shared = b.shared.take().ok_or(CtrlError::Fatal { state: "bring-up" })?;
        let ident = b.ident.take().ok_or(CtrlError::Fatal { state: "identify controller" })?;
        Ok(Controller { shared, cap, ident, namespaces: b.namespaces, io_queues: b.io_queues, trace: b.trace })
    }

    pub fn identify(&self) -> &IdentifyController {
        &self.ident
    }
    pub fn cap(&self) -> Cap {
        self.cap
    }
    /// The states bring-up went through, in order.
    pub fn bringup_trace(&self) -> &[State] {
        &self.trace
    }
    pub fn transport(&self) -> &Arc<dyn Transport> {
        &self.shared.transport
    }
    /// Whether the controller reports fatal status (CSTS.CFS), is not
    /// ready, or is gone (CSTS reads all ones): it needs a reset before use.
    pub fn is_failed(&self) -> bool {
        let csts = self.shared.transport.read32(offset::CSTS);
        csts == u32::MAX || Csts(csts).fatal() || !Csts(csts).ready()
    }
    pub fn namespaces(&self) -> &[Namespace] {
        &self.namespaces
    }
    /// I/O queue pairs the controller granted.
    pub fn io_queue_count(&self) -> u16 {
        self.io_queues
    }
    pub fn namespace(&self, nsid: u32) -> Result<Namespace, CtrlError> {
        self.namespaces.iter().copied().find(|n| n.id == nsid).ok_or(CtrlError::NoSuchNamespace { nsid, count: self.namespaces.len() })
    }

    /// How many times [`Controller::reset`] has run on this controller: a
    /// queue pair made when this read `n` is gone from the device once it
    /// reads more.
    pub fn resets(&self) -> u64 {
        self.shared.epoch.load(Ordering::Acquire)
    }

    /// Resets the controller (SPDK's `spdk_nvme_ctrlr_reset`): disables it
    /// (CC.EN = 0; once CSTS.RDY reads 0 the device has deleted every queue
    /// and touches no host memory), then brings it back up with a fresh
    /// admin queue and the number of queues set again. The way back from
    /// fatal status (CSTS.CFS) or a device that stopped answering.
    ///
    /// Every I/O queue pair made before the reset fails at its next poll
    /// with [`QueueFailure::ControllerReset`](crate::QueueFailure::ControllerReset)
    /// (its commands come back with `HOST_PATH_ERROR`); dropping it frees its
    /// memory without asking the device to delete queues that no longer
    /// exist. Make new queue pairs afterwards. Holds the admin queue for the
    /// reset: other admin commands wait.
    pub fn reset(&self) -> Result<(), CtrlError> {
        let admin = self.shared.admin.lock().unwrap_or_else(|p| p.into_inner());
        self.reset_holding(admin)
    }

    /// Resets the controller as [`Controller::reset`] does, unless it has
    /// been reset since [`Controller::resets`] read `seen` (by another user
    /// that saw the same failure); says whether it reset. For users that
    /// share one controller: each reads `resets()` after making its queue
    /// pair and, when that pair fails with a failure that
    /// [needs a reset](crate::QueueFailure::needs_reset), calls this, so one
    /// failure costs one reset.
    pub fn reset_unless_reset_since(&self, seen: u64) -> Result<bool, CtrlError> {
        let admin = self.shared.admin.lock().unwrap_or_else(|p| p.into_inner());
        if self.resets() != seen {
            return Ok(false);
        }
        self.reset_holding(admin).map(|()| true)
    }

    /// What a user of the controller does before making a new queue pair in
    /// place of one that failed with `why` (made when [`Controller::resets`]
    /// read `seen`): resets the controller if the failure
    /// [needs it](crate::QueueFailure::needs_reset) or the controller reports
    /// failure now, unless someone reset it since. Says whether it reset.
    pub fn reset_if_needed(&self, why: crate::QueueFailure, seen: u64) -> Result<bool, CtrlError> {
        if why.needs_reset() || self.is_failed() {
            return self.reset_unless_reset_since(seen);
        }
        Ok(false)
    }

    fn reset_holding(&self, mut admin: std::sync::MutexGuard<'_, Option<QueuePair<AdminTag>>>) -> Result<(), CtrlError> {
        let sh = &self.shared;
        let t = &sh.transport;
        let cc = Cc(t.read32(offset::CC));
        t.write32(offset::CC, cc.0 & !1);
        wait_csts(t, self.cap, |c| !c.ready(), "disabled for reset", false)?;
        // From here the device holds no queue: old queue pairs fail at their
        // next poll and may free their memory.
        sh.epoch.fetch_add(1, Ordering::AcqRel);
        drop(admin.take());
        *admin = Some(admin_queue(t, self.cap)?);
        t.write32(offset::CC, Cc::enable_default().0);
        wait_csts(t, self.cap, |c| c.ready(), "ready after reset", true)?;
        drop(admin);
        let granted = sh.set_queue_count()?;
        sh.granted.store(granted, Ordering::Release);
        // Queue ids held by queue pairs made before the reset come back
        // when those are dropped (`give_back_qid`); never hand out one the
        // device refuses now.
        sh.free_qids.lock().unwrap_or_else(|p| p.into_inner()).retain(|&q| q <= granted);
        Ok(())
    }

    /// Runs a raw admin command to completion (for tests and tools): fills
    /// in the command id and, with `data`, the PRPs.
    ///
    /// # Safety
    ///
    /// As [`crate::Submitter::submit`]: the command makes the device touch no
    /// host memory other than the first `len` bytes of `data`, or DMA memory
    /// that stays allocated (and unraced by the host) until the command
    /// completes. In particular a queue-creation command given here hands the
    /// device a ring that it may write until the queue is deleted.
    pub unsafe fn admin_raw(&self, sqe: Sqe, data: Option<(DmaBuf, usize)>) -> Result<(u32, Option<DmaBuf>), CtrlError> {
        // SAFETY: the caller's contract is `admin`'s.
        unsafe { self.shared.admin(sqe, data) }
    }

    /// Creates an I/O queue pair of `depth` entries (at most `depth - 1`
    /// commands in flight), handling at most `max_per_poll` completions per poll.
    pub fn alloc_io_qpair<C>(&self, depth: u16, max_per_poll: usize) -> Result<IoQueuePair<C>, CtrlError> {
        let max = u16::try_from(self.cap.max_queue_entries()).unwrap_or(u16::MAX).min(IO_DEPTH_MAX);
        if depth < 2 || depth > max {
            return Err(CtrlError::BadDepth { depth: u32::from(depth), max: u32::from(max) });
        }
        let qid = self.shared.free_qids.lock().unwrap_or_else(|p| p.into_inner()).pop().ok_or(CtrlError::NoQueues { granted: self.io_queues })?;
        match self.create_queues(qid, depth, max_per_poll) {
            Ok(qp) => Ok(IoQueuePair { qp: Some(qp), qid, shared: self.shared.clone() }),
            Err(e) => {
                self.shared.free_qids.lock().unwrap_or_else(|p| p.into_inner()).push(qid);
                Err(e)
            }
        }
    }

    fn create_queues<C>(&self, qid: u16, depth: u16, max_per_poll: usize) -> Result<QueuePair<C>, CtrlError> {
        // Taken before the queues are made: a reset while they are being
        // made leaves a queue pair that knows it is stale.
        let epoch = self.shared.epoch.load(Ordering::Acquire);
        let dma = self.shared.transport.dma();
        let sq_mem = dma.alloc(usize::from(depth) * SQE_SIZE)?;
        let cq_mem = dma.alloc(usize::from(depth) * CQE_SIZE)?;
        let size = u32::from(depth - 1) << 16;
        let create_cq = Sqe { opcode: AdminOpcode::CreateIoCq as u8, prp1: cq_mem.iova().0, cdw10: u32::from(qid) | size, cdw11: cmd::QUEUE_PHYS_CONTIG, ..Sqe::default() };
        // The completion ring must be zeroed (phase 0) before the device owns it.
        let mut cq_mem = cq_mem;
        cq_mem.fill(0);
        // SAFETY: the ring `cq_mem` goes to the queue pair below, which keeps
        // it until the queue is deleted (or leaks it when deletion fails).
        if let Err(e) = unsafe { self.shared.admin(create_cq, None) } {
            // The device may or may not have the queue: never free its ring.
            if matches!(e, CtrlError::AdminTimeout { .. } | CtrlError::Fatal { .. }) {
                std::mem::forget(cq_mem);
            }
            return Err(e);
        }
        let create_sq = Sqe {
            opcode: AdminOpcode::CreateIoSq as u8,
            prp1: sq_mem.iova().0,
            cdw10: u32::from(qid) | size,
            cdw11: cmd::QUEUE_PHYS_CONTIG | (u32::from(qid) << 16),
            ..Sqe::default()
        };
        // SAFETY: as for the completion ring: `sq_mem` goes to the queue pair.
        if let Err(e) = unsafe { self.shared.admin(create_sq, None) } {
            let del = Sqe { opcode: AdminOpcode::DeleteIoCq as u8, cdw10: u32::from(qid), ..Sqe::default() };
            // SAFETY: queue deletion transfers no data and carries no address.
            let deleted = unsafe { self.shared.admin(del, None) }.is_ok();
            if !deleted || matches!(e, CtrlError::AdminTimeout { .. } | CtrlError::Fatal { .. }) {
                // The device may still own either ring: leak them rather than
                // free memory it may write.
                std::mem::forget(sq_mem);
                std::mem::forget(cq_mem);
            }
            return Err(e);
        }
        let weak: Weak<Shared> = Arc::downgrade(&self.shared);
        let aborter: Aborter = Arc::new(move |sqid, cid| {
            if let Some(shared) = weak.upgrade() {
                shared.abort_async(sqid, cid);
            }
        });
        Ok(QueuePair::new(QueueParts {
            qid,
            dstrd: self.shared.dstrd,
            transport: self.shared.transport.clone(),
            sq_mem,
            cq_mem,
            entries: depth,
            max_per_poll,
            timeout: COMMAND_TIMEOUT_DEFAULT,
            aborter: Some(aborter),
            epoch: Some((self.shared.epoch.clone(), epoch)),
        }))
    }
}

/// An I/O queue pair; dropping it deletes the device's queues. When the
/// controller does not confirm the deletion (it failed, or answers nothing),
/// the rings and every buffer still in flight are leaked instead of freed:
/// the device may still write them.
pub struct IoQueuePair<C> {
    /// Always `Some` until drop, which takes it to free or leak it.
    qp: Option<QueuePair<C>>,
    qid: u16,
    shared: Arc<Shared>,
}

impl<C> IoQueuePair<C> {
    fn inner(&self) -> &QueuePair<C> {
        self.qp.as_ref().expect("present until drop")
    }
}

impl<C> std::fmt::Debug for IoQueuePair<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner().fmt(f)
    }
}

impl<C> std::ops::Deref for IoQueuePair<C> {
    type Target = QueuePair<C>;
    fn deref(&self) -> &QueuePair<C> {
        self.inner()
    }
}

impl<C> std::ops::DerefMut for IoQueuePair<C> {
    fn deref_mut(&mut self) -> &mut QueuePair<C> {
        self.qp.as_mut().expect("present until drop")
    }
}

impl<C> Drop for IoQueuePair<C> {
    fn drop(&mut self) {
        let Some(qp) = self.qp.take() else { return };
        if qp.controller_was_reset() {
            // The reset deleted the queues and ended the device's DMA: free
            // everything. The id is the controller's again.
            drop(qp);
            self.shared.give_back_qid(self.qid);
            return;
        }
        // Delete the SQ first (the device stops fetching and stops DMA for
        // it), then the CQ; buffers of commands still in flight are freed
        // only after both are confirmed, when `qp` drops.
        if self.shared.delete_queues(self.qid) {
            drop(qp);
            self.shared.give_back_qid(self.qid);
        } else {
            // Leaked on purpose: the rings, PRP lists and in-flight buffers
            // stay allocated (and the pool mapped) for the process's life.
            // The queue id is not reused: the controller may still hold it.
            std::mem::forget(qp);
        }
    }
}
