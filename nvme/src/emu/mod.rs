//! An in-process emulated NVMe controller: the embedded default device.
//!
//! It speaks the queue protocol through memory as a PCIe device would: after
//! a doorbell it reads SQEs from the ring, follows PRPs, moves data between
//! the namespace and host buffers, and writes CQEs with the phase bit. Bad
//! input gets the proper NVMe status, never a panic. The device runs on the
//! poller's thread, inside [`Transport::service`], so it needs no thread of
//! its own and is deterministic; with a latency model, completions become
//! visible only when due.
//!
//! Fault injection, so that every failure path of the host has a test: a
//! media error status for an LBA range ([`EmulatedController::inject_fault`]);
//! a completion that is dropped, delayed, duplicated or corrupted
//! ([`EmulatedController::inject_completion_fault`]); and controller fatal
//! status ([`EmulatedController::set_fatal`], CSTS.CFS: the device stops).
//! It answers the Abort admin command for completions it still holds.

pub mod backing;
mod exec;
pub mod latency;
mod prp_walk;

pub use backing::Backing;
pub use latency::Latency;

use crate::addr::Iova;
use crate::dma::{DeviceMemory, DmaPool, PoolOptions};
use crate::ring::CqProducer;
use crate::spec::regs::{self, offset, Cap, Cc, Csts};
use crate::spec::{Cqe, Status};
use crate::transport::Transport;
use backing::Bounce;
use std::collections::VecDeque;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Configuration of an emulated controller.
#[derive(Debug, Clone)]
pub struct EmuConfig {
    /// Logical block size of namespace 1 (512 or 4096 typically).
    pub block_size: u32,
    pub latency: Latency,
    /// CAP.MQES + 1.
    pub max_queue_entries: u32,
    /// MDTS as a power of two of 4 KiB pages (8 = 1 MiB).
    pub mdts: u8,
    /// I/O queue pairs the controller grants.
    pub io_queues: u16,
    pub dma: PoolOptions,
}

impl Default for EmuConfig {
    fn default() -> Self {
        EmuConfig { block_size: 512, latency: Latency::None, max_queue_entries: 4096, mdts: 8, io_queues: 64, dma: PoolOptions::default() }
    }
}

/// What happens to the completion of a command that matches an injected
/// completion fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompletionFault {
    /// The command executes but its completion is never posted (a lost command).
    Drop,
    /// The completion is posted this much later than it would be.
    Delay(Duration),
    /// The completion is posted twice.
    Duplicate,
    /// The completion is posted with its command id inverted (a corrupted entry).
    CorruptCid,
}

/// Errors creating an emulated controller.
#[derive(Debug, thiserror::Error)]
pub enum EmuError {
    #[error("block size {0} is not a power of two between 512 and 65536")]
    BlockSize(u32),
    #[error("backing store of {len} bytes holds no whole {block}-byte block")]
    TooSmall { len: u64, block: u32 },
    #[error("invalid emulated controller configuration: {0}")]
    Config(&'static str),
}

struct DevSq {
    base: Iova,
    entries: u16,
    head: u16,
    cqid: u16,
    /// Completions not posted yet: not due, or the CQ was full. Sorted by due time.
    pending: VecDeque<(Option<Instant>, Cqe)>,
}

struct DevCq {
    base: Iova,
    entries: u16,
    prod: CqProducer,
}

/// Device counters, for tests and reports.
#[derive(Debug, Default)]
pub struct EmuStats {
    pub commands: AtomicU64,
    pub reads: AtomicU64,
    pub writes: AtomicU64,
    pub errors: AtomicU64,
}

pub struct EmulatedController {
    cfg: EmuConfig,
    cap: Cap,
    cc: AtomicU32,
    csts: AtomicU32,
    aqa: AtomicU32,
    asq: AtomicU64,
    acq: AtomicU64,
    doorbells: Box<[AtomicU32]>,
    dma: DmaPool,
    mem: DeviceMemory,
    backing: Backing,
    blocks: u64,
    sqs: Box<[Mutex<Option<DevSq>>]>,
    cqs: Box<[Mutex<Option<DevCq>>]>,
    bounce: Mutex<Vec<Bounce>>,
    faults_armed: AtomicBool,
    faults: Mutex<Vec<(Range<u64>, Status)>>,
    cq_faults: Mutex<Vec<(Range<u64>, CompletionFault)>>,
    pub stats: EmuStats,
}

impl std::fmt::Debug for EmulatedController {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmulatedController").field("blocks", &self.blocks).field("block_size", &self.cfg.block_size).field("latency", &self.cfg.latency).finish()
    }
}

impl EmulatedController {
    /// A controller with one namespace over `backing`.
    pub fn new(backing: Backing, cfg: EmuConfig) -> Result<EmulatedController, EmuError> {
        if !cfg.block_size.is_power_of_two() || !(512..=65536).contains(&cfg.block_size) {
            return Err(EmuError::BlockSize(cfg.block_size));
        }
        if !(2..=65536).contains(&cfg.max_queue_entries) {
            return Err(EmuError::Config("max_queue_entries must be in 2..=65536"));
        }
        if cfg.io_queues == 0 || cfg.io_queues > 1024 {
            return Err(EmuError::Config("io_queues must be in 1..=1024"));
        }
        let blocks = backing.len() / u64::from(cfg.block_size);
        if blocks == 0 {
            return Err(EmuError::TooSmall { len: backing.len(), block: cfg.block_size });
        }
        let nq = usize::from(cfg.io_queues) + 1;
        let dma = DmaPool::new(cfg.dma.clone());
        Ok(EmulatedController {
            cap: Cap::build(cfg.max_queue_entries, 2, 0),
            cc: AtomicU32::new(0),
            csts: AtomicU32::new(0),
            aqa: AtomicU32::new(0),
            asq: AtomicU64::new(0),
            acq: AtomicU64::new(0),
            doorbells: (0..2 * nq).map(|_| AtomicU32::new(0)).collect(),
            mem: dma.device_view(),
            dma,
            backing,
            blocks,
            sqs: (0..nq).map(|_| Mutex::new(None)).collect(),
            cqs: (0..nq).map(|_| Mutex::new(None)).collect(),
            bounce: Mutex::new(Vec::new()),
            faults_armed: AtomicBool::new(false),
            faults: Mutex::new(Vec::new()),
            cq_faults: Mutex::new(Vec::new()),
            stats: EmuStats::default(),
            cfg,
        })
    }

    /// A memory-backed controller of `bytes` bytes with no latency.
    pub fn in_memory(bytes: u64) -> Result<EmulatedController, EmuError> {
        let backing = Backing::memory(bytes).map_err(|_| EmuError::Config("cannot allocate the in-memory namespace"))?;
        EmulatedController::new(backing, EmuConfig::default())
    }

    pub fn backing(&self) -> &Backing {
        &self.backing
    }

    pub fn config(&self) -> &EmuConfig {
        &self.cfg
    }

    /// Makes reads and writes touching LBAs in `lbas` fail with `status`
    /// (fault injection for tests of error paths).
    pub fn inject_fault(&self, lbas: Range<u64>, status: Status) {
        self.faults.lock().unwrap_or_else(|p| p.into_inner()).push((lbas, status));
        self.faults_armed.store(true, Ordering::Release);
    }

    /// Makes the completions of reads and writes touching LBAs in `lbas`
    /// suffer `fault` (lost, late, duplicated or corrupted completions).
    pub fn inject_completion_fault(&self, lbas: Range<u64>, fault: CompletionFault) {
        self.cq_faults.lock().unwrap_or_else(|p| p.into_inner()).push((lbas, fault));
        self.faults_armed.store(true, Ordering::Release);
    }

    /// Removes every injected fault (media and completion faults).
    pub fn clear_faults(&self) {
        self.faults.lock().unwrap_or_else(|p| p.into_inner()).clear();
        self.cq_faults.lock().unwrap_or_else(|p| p.into_inner()).clear();
        self.faults_armed.store(false, Ordering::Release);
    }

    /// Controller fatal status: sets CSTS.CFS and stops executing commands
    /// and posting completions (until a reset through CC.EN).
    pub fn set_fatal(&self) {
        self.csts.fetch_or(Csts::CFS, Ordering::AcqRel);
    }

    fn completion_fault_for(&self, sqe: &crate::spec::Sqe) -> Option<CompletionFault> {
        if !self.faults_armed.load(Ordering::Acquire) {
            return None;
        }
        let start = sqe.slba();
        let end = start.saturating_add(u64::from(sqe.nlb()));
        let f = self.cq_faults.lock().unwrap_or_else(|p| p.into_inner());
        f.iter().find(|(r, _)| r.start < end && start < r.end).map(|(_, f)| *f)
    }

    fn fault_for(&self, lbas: Range<u64>) -> Option<Status> {
        if !self.faults_armed.load(Ordering::Acquire) {
            return None;
        }
        let f = self.faults.lock().unwrap_or_else(|p| p.into_inner());
        f.iter().find(|(r, _)| r.start < lbas.end && lbas.start < r.end).map(|(_, s)| *s)
    }

    fn enabled(&self) -> bool {
        let csts = Csts(self.csts.load(Ordering::Acquire));
        csts.ready() && !csts.fatal()
    }

    fn set_cc(&self, v: u32) {
        let old = Cc(self.cc.swap(v, Ordering::AcqRel));
        let new = Cc(v);
        if new.enabled() && !old.enabled() {
            if self.enable().is_err() {
                self.csts.store(Csts::CFS, Ordering::Release);
            }
        } else if !new.enabled() && old.enabled() {
            self.reset();
        }
    }

    fn enable(&self) -> Result<(), ()> {
        let cc = Cc(self.cc.load(Ordering::Acquire));
        if cc.iosqes() != 6 || cc.iocqes() != 4 || cc.page_size() != 4096 {
            return Err(());
        }
        let (sqn, cqn) = regs::aqa_entries(self.aqa.load(Ordering::Acquire));
        let asq = Iova(self.asq.load(Ordering::Acquire));
        let acq = Iova(self.acq.load(Ordering::Acquire));
        if asq.0 % 4096 != 0 || acq.0 % 4096 != 0 {
            return Err(());
        }
        let (sqn, cqn) = (u16::try_from(sqn).map_err(|_| ())?, u16::try_from(cqn).map_err(|_| ())?);
        self.mem.translate(asq, usize::from(sqn) * 64).ok_or(())?;
        self.mem.translate(acq, usize::from(cqn) * 16).ok_or(())?;
        *lock(&self.cqs[0]) = Some(DevCq { base: acq, entries: cqn, prod: CqProducer::new(cqn) });
        *lock(&self.sqs[0]) = Some(DevSq { base: asq, entries: sqn, head: 0, cqid: 0, pending: VecDeque::new() });
        self.csts.store(Csts::RDY, Ordering::Release);
        Ok(())
    }

    fn reset(&self) {
        for q in self.sqs.iter() {
            *lock(q) = None;
        }
        for q in self.cqs.iter() {
            *lock(q) = None;
        }
        for d in self.doorbells.iter() {
            d.store(0, Ordering::Relaxed);
        }
        self.csts.store(0, Ordering::Release);
    }

    fn doorbell_write(&self, off: u32, v: u32) {
        let idx = ((off - offset::DOORBELLS) / 4) as usize;
        if (off - offset::DOORBELLS) % 4 != 0 {
            return;
        }
        if let Some(d) = self.doorbells.get(idx) {
            // Release pairs with the device's acquire load in `service`: the
            // SQEs written before the doorbell are visible to the device.
            d.store(v, Ordering::Release);
        }
        // A doorbell beyond the queues we have is ignored, as a device would
        // (it would raise an asynchronous event; we have no AER).
    }

    /// Runs the admin queue if it has new commands and nobody else holds it.
    fn try_run_admin(&self) {
        let tail = self.doorbells[0].load(Ordering::Acquire);
        let busy = match self.sqs[0].try_lock() {
            Ok(g) => g.as_ref().is_none_or(|sq| u32::from(sq.head) == tail && sq.pending.is_empty()),
            Err(_) => true,
        };
        if !busy {
            self.run_queue(0);
        }
    }

    /// Fetches and executes new commands of queue `qid`, then posts due
    /// completions to its completion queue.
    fn run_queue(&self, qid: u16) {
        if !self.enabled() {
            return;
        }
        let Some(slot) = self.sqs.get(usize::from(qid)) else { return };
        let mut guard = lock(slot);
        let Some(sq) = guard.as_mut() else { return };
        let mut fetched_at = None;
        let tail = self.doorbells[2 * usize::from(qid)].load(Ordering::Acquire);
        if tail < u32::from(sq.entries) && u32::from(sq.head) != tail {
            // Only a file-backed namespace needs a bounce buffer; take one
            // from the shared stack only then (memory backing copies directly).
            let file_backed = matches!(self.backing, Backing::File(_));
            let mut bounce = if file_backed { self.bounce.lock().unwrap_or_else(|p| p.into_inner()).pop().unwrap_or_default() } else { Bounce::default() };
            // `tail < entries <= u16::MAX` (checked above).
            let tail = u16::try_from(tail).unwrap_or(sq.head);
            if !self.cfg.latency.is_none() {
                fetched_at = Some(Instant::now());
            }
            let now = fetched_at;
            while sq.head != tail {
                let mut raw = [0u8; 64];
                let addr = Iova(sq.base.0 + u64::from(sq.head) * 64);
                sq.head = if sq.head + 1 == sq.entries { 0 } else { sq.head + 1 };
                let (status, result, bytes, cid, fault) = match self.mem.read(addr, &mut raw) {
                    Some(()) => {
                        let sqe = crate::spec::Sqe::from_bytes(&raw);
                        let (st, res, bytes) = if qid == 0 { self.exec_admin(&sqe) } else { self.exec_io(&sqe, &mut bounce) };
                        let fault = if qid == 0 { None } else { self.completion_fault_for(&sqe) };
                        (st, res, bytes, sqe.cid, fault)
                    }
                    // The ring itself became unreachable: nothing sane to answer.
                    None => (Status::DATA_TRANSFER_ERROR, 0, 0, 0, None),
                };
                self.stats.commands.fetch_add(1, Ordering::Relaxed);
                if !status.is_success() {
                    self.stats.errors.fetch_add(1, Ordering::Relaxed);
                }
                let mut due = now.map(|t| t + self.cfg.latency.for_bytes(bytes));
                let mut cqe = Cqe { result, rsvd: 0, sq_head: 0, sq_id: qid, cid, status: status.to_field() << 1 };
                let mut copies = 1;
                match fault {
                    None => {}
                    Some(CompletionFault::Drop) => copies = 0,
                    Some(CompletionFault::Delay(d)) => due = Some(due.unwrap_or_else(Instant::now) + d),
                    Some(CompletionFault::Duplicate) => copies = 2,
                    Some(CompletionFault::CorruptCid) => cqe.cid = !cqe.cid,
                }
                for _ in 0..copies {
                    // Keep `pending` sorted by due time (a later command may be
                    // due sooner when it is shorter; `None`, due at once, sorts first).
                    let pos = sq.pending.iter().rposition(|(d, _)| *d <= due).map_or(0, |p| p + 1);
                    sq.pending.insert(pos, (due, cqe));
                }
            }
            if file_backed {
                self.bounce.lock().unwrap_or_else(|p| p.into_inner()).push(bounce);
            }
        }
        // `pending` is sorted by due time, so only its front is looked at:
        // an idle poll costs one clock read (none when this call fetched:
        // that read serves, and the copies since only make a completion wait
        // for the next poll, never come early) and no completion-queue lock.
        let mut now = fetched_at;
        match sq.pending.front() {
            None => return,
            Some((Some(d), _)) if *d > *now.get_or_insert_with(Instant::now) => return,
            Some(_) => {}
        }
        let Some(cq_slot) = self.cqs.get(usize::from(sq.cqid)) else { return };
        let mut cq_guard = lock(cq_slot);
        let Some(cq) = cq_guard.as_mut() else { return };
        let host_head = self.doorbells[2 * usize::from(sq.cqid) + 1].load(Ordering::Acquire);
        while let Some(&(due, mut cqe)) = sq.pending.front() {
            if let Some(d) = due {
                if d > *now.get_or_insert_with(Instant::now) {
                    break;
                }
            }
            // A remainder of a division by a u16 fits u16.
            if cq.prod.is_full(u16::try_from(host_head % u32::from(cq.entries)).unwrap_or(0)) {
                break;
            }
            cqe.sq_head = sq.head;
            cqe.status |= u16::from(cq.prod.phase());
            let addr = Iova(cq.base.0 + u64::from(cq.prod.tail()) * 16);
            if self.mem.post_cqe(addr, &cqe.to_bytes()).is_none() {
                // The host freed its completion ring under us: stop posting.
                break;
            }
            cq.prod.advance();
            sq.pending.pop_front();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Transport for EmulatedController {
    fn name(&self) -> String {
        "emulated".to_string()
    }

    fn read32(&self, off: u32) -> u32 {
        match off {
            offset::CAP => (self.cap.0 & 0xffff_ffff) as u32,
            o if o == offset::CAP + 4 => (self.cap.0 >> 32) as u32,
            offset::VS => 0x0001_0400, // NVMe 1.4
            offset::CC => self.cc.load(Ordering::Acquire),
            offset::CSTS => self.csts.load(Ordering::Acquire),
            offset::AQA => self.aqa.load(Ordering::Acquire),
            offset::ASQ => (self.asq.load(Ordering::Acquire) & 0xffff_ffff) as u32,
            o if o == offset::ASQ + 4 => (self.asq.load(Ordering::Acquire) >> 32) as u32,
            offset::ACQ => (self.acq.load(Ordering::Acquire) & 0xffff_ffff) as u32,
            o if o == offset::ACQ + 4 => (self.acq.load(Ordering::Acquire) >> 32) as u32,
            _ => 0,
        }
    }

    fn write32(&self, off: u32, v: u32) {
        match off {
            offset::CC => self.set_cc(v),
            offset::AQA => self.aqa.store(v, Ordering::Release),
            offset::ASQ => set_lo(&self.asq, v),
            o if o == offset::ASQ + 4 => set_hi(&self.asq, v),
            offset::ACQ => set_lo(&self.acq, v),
            o if o == offset::ACQ + 4 => set_hi(&self.acq, v),
            o if o >= offset::DOORBELLS => self.doorbell_write(o, v),
            _ => {} // read-only or unimplemented registers ignore writes
        }
    }

    fn dma(&self) -> &DmaPool {
        &self.dma
    }

    fn service(&self, qid: u16) {
        self.run_queue(qid);
        // Admin commands are serviced whenever any queue polls (an Abort sent
        // by an I/O poller is not waited for by anyone), unless another thread
        // is servicing them right now.
        if qid != 0 {
            self.try_run_admin();
        }
    }
}

fn set_lo(a: &AtomicU64, v: u32) {
    let old = a.load(Ordering::Acquire);
    a.store((old & !0xffff_ffff) | u64::from(v), Ordering::Release);
}

fn set_hi(a: &AtomicU64, v: u32) {
    let old = a.load(Ordering::Acquire);
    a.store((old & 0xffff_ffff) | (u64::from(v) << 32), Ordering::Release);
}
