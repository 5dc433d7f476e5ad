//! A queue pair: the submission and completion rings of one queue in DMA
//! memory, shared by every transport. Submissions are batched (one doorbell
//! write per batch); completions are reaped without blocking, at most
//! `max_completions_per_poll` per call. Each command owns its buffer until its
//! completion hands it back (STYLE item 5); a full queue hands the request
//! back instead of dropping or blocking.
//!
//! Failures have deadlines (STYLE item 16). Every command carries one
//! ([`COMMAND_TIMEOUT_DEFAULT`] unless [`QueuePair::set_command_timeout`]
//! says otherwise). A command past it is *abandoned*: its cookie comes back
//! with [`Status::HOST_ABORTED`] and no buffer, an NVMe Abort is sent, and the
//! queue pair keeps the buffer (and the command id) until the device answers,
//! because the device may still write into it. An impossible completion (a
//! command id not in flight, a duplicate, a submission-queue head outside what
//! was submitted), a controller reporting fatal status, or a queue whose
//! commands are all lost moves the queue pair to a failed state
//! ([`QueueFailure`]): every command in flight comes back with
//! [`Status::HOST_PATH_ERROR`], later submissions are refused with
//! [`QueueError::Failed`], and the rings are not touched again.
//!
//! Deadlines run on the coarse monotonic clock (the kernel's tick, read in a
//! few nanoseconds, where the fine clock costs about 25 ns on every
//! submission and poll): a command is abandoned no earlier than its timeout
//! and at most two ticks plus the 1 ms scan interval later.

use crate::addr::Lba;
use crate::clock::Tick;
use crate::dma::DmaBuf;
use crate::error::{QueueError, QueueFailure, Rejected};
use crate::prp::{self, Prp2, PRP_LIST_ENTRIES};
use crate::ring::{CqRing, SqRing};
use crate::spec::cmd::SQE_SIZE;
use crate::spec::cqe::CQE_SIZE;
use crate::spec::regs::{self, offset, Csts};
use crate::spec::{Cqe, IoOpcode, Sqe, Status};
use crate::transport::Transport;
use slab::Slab;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use zerocopy::IntoBytes;

/// Most completions one poll handles when the caller asks for "all" (0).
pub const COMPLETIONS_PER_POLL_MAX: usize = 256;
/// How long a command may stay with the device unless the queue pair is told
/// otherwise (SPDK leaves it to the application; Linux uses 30 s for I/O; a
/// storage function waits on every read, so we fail sooner).
pub const COMMAND_TIMEOUT_DEFAULT: Duration = Duration::from_secs(5);
/// Shortest command timeout a queue pair accepts.
pub const COMMAND_TIMEOUT_MIN: Duration = Duration::from_millis(1);
/// How often a poll looks for commands past their deadline.
const DEADLINE_SCAN_INTERVAL: Duration = Duration::from_millis(1);
/// Low bits of a command id: the slot (queues hold at most 4095 commands).
const CID_SLOT_BITS: u32 = 12;
const CID_SLOT_MASK: u16 = (1 << CID_SLOT_BITS) - 1;
/// High bits of a command id: the slot's generation, so a stale or
/// duplicated completion for a reused slot is recognised as impossible.
const CID_GENERATIONS: u8 = 1 << (16 - CID_SLOT_BITS);

/// Sends an NVMe Abort for command `cid` of submission queue `sqid`, without
/// waiting for it (best effort: the controller may have finished already).
pub(crate) type Aborter = Arc<dyn Fn(u16, u16) + Send + Sync>;

/// A namespace as the I/O path needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Namespace {
    pub id: u32,
    /// Bytes per logical block.
    pub block_size: u32,
    /// Capacity in logical blocks.
    pub blocks: u64,
    /// Largest transfer in bytes (from MDTS and the PRP list limit).
    pub max_transfer: u64,
}

impl Namespace {
    pub fn capacity_bytes(&self) -> u64 {
        self.blocks.saturating_mul(u64::from(self.block_size))
    }
}

/// A finished command: its cookie and buffer come back with the status.
///
/// A command that did not finish on the device comes back without its
/// buffer (`buf: None`; the queue pair keeps it until the device lets go)
/// and with a status the driver sets itself: [`Status::HOST_ABORTED`] when
/// it passed its deadline, [`Status::HOST_PATH_ERROR`] when the queue pair
/// failed.
#[derive(Debug)]
pub struct Completion<C> {
    pub cookie: C,
    pub buf: Option<DmaBuf>,
    pub status: Status,
    /// Command specific result (CQE DW0).
    pub result: u32,
}

struct Slot<C> {
    /// `None` once the command was abandoned (timed out or failed): the
    /// cookie went back to its owner, the buffer stays until the device answers.
    cookie: Option<C>,
    buf: Option<DmaBuf>,
    deadline: Tick,
    cid: u16,
}

/// The submission half of a queue pair. Completion callbacks receive it so
/// that they can resubmit (a chain's next read) within the same poll.
pub struct Submitter<C> {
    qid: u16,
    dstrd: u8,
    transport: Arc<dyn Transport>,
    sq_mem: DmaBuf,
    sq: SqRing,
    doorbell_pending: bool,
    slots: Slab<Slot<C>>,
    /// Generation of each slot's next command id.
    generations: Vec<u8>,
    capacity: usize,
    /// One PRP list page per command slot, allocated on first need.
    prp_lists: Vec<Option<DmaBuf>>,
    prp_scratch: Box<[u64; PRP_LIST_ENTRIES]>,
    timeout: Duration,
    /// Commands abandoned and not answered yet (they hold their slots).
    abandoned: usize,
    failed: Option<QueueFailure>,
    /// The controller's reset count and its value when this queue pair was
    /// created (`None` for the admin queue, which a reset replaces).
    epoch: Option<(Arc<AtomicU64>, u64)>,
}

impl<C> std::fmt::Debug for Submitter<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Submitter").field("qid", &self.qid).field("in_flight", &self.slots.len()).field("failed", &self.failed).finish()
    }
}

impl<C> Submitter<C> {
    pub fn qid(&self) -> u16 {
        self.qid
    }
    /// Commands submitted and not yet completed (abandoned ones included:
    /// they hold their command ids until the device answers).
    pub fn in_flight(&self) -> usize {
        self.slots.len()
    }
    /// Commands abandoned after their deadline that the device has not answered.
    pub fn abandoned(&self) -> usize {
        self.abandoned
    }
    /// The most commands that may be in flight at once.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
    pub fn is_full(&self) -> bool {
        self.slots.len() >= self.capacity || self.sq.is_full()
    }
    /// Why the queue pair failed, once it has.
    pub fn failure(&self) -> Option<QueueFailure> {
        self.failed
    }
    /// Whether the controller was reset since this queue pair was created:
    /// its queues are gone from the device, which no longer touches its memory.
    pub fn controller_was_reset(&self) -> bool {
        self.epoch.as_ref().is_some_and(|(now, then)| now.load(Ordering::Acquire) != *then)
    }
    /// How long a command may take before it is abandoned.
    pub fn command_timeout(&self) -> Duration {
        self.timeout
    }

    /// Reads `nlb` blocks at `lba` into the start of `buf`.
    pub fn read(&mut self, ns: &Namespace, lba: Lba, nlb: u32, buf: DmaBuf, cookie: C) -> Result<(), Rejected<C>> {
        self.rw(IoOpcode::Read, ns, lba, nlb, buf, cookie)
    }

    /// Writes `nlb` blocks at `lba` from the start of `buf`.
    pub fn write(&mut self, ns: &Namespace, lba: Lba, nlb: u32, buf: DmaBuf, cookie: C) -> Result<(), Rejected<C>> {
        self.rw(IoOpcode::Write, ns, lba, nlb, buf, cookie)
    }

    /// Flushes the namespace's volatile write cache.
    pub fn flush(&mut self, ns: &Namespace, cookie: C) -> Result<(), Rejected<C>> {
        let sqe = Sqe { opcode: IoOpcode::Flush as u8, nsid: ns.id, ..Sqe::default() };
        // SAFETY: a flush transfers no data and its PRPs are zero: the device
        // touches no host memory for it.
        unsafe { self.submit(sqe, None, cookie) }.map(|_| ())
    }

    fn rw(&mut self, op: IoOpcode, ns: &Namespace, lba: Lba, nlb: u32, buf: DmaBuf, cookie: C) -> Result<(), Rejected<C>> {
        if nlb == 0 || nlb > 65536 {
            let e = if nlb == 0 { QueueError::ZeroBlocks } else { QueueError::TooLarge { bytes: u64::from(nlb) * u64::from(ns.block_size), max: ns.max_transfer } };
            return Err(Rejected::new(e, Some(buf), cookie));
        }
        let bytes = u64::from(nlb) * u64::from(ns.block_size);
        if bytes > ns.max_transfer {
            return Err(Rejected::new(QueueError::TooLarge { bytes, max: ns.max_transfer }, Some(buf), cookie));
        }
        if (buf.len() as u64) < bytes {
            let e = QueueError::BufferTooSmall { buf: buf.len(), nlb, block: ns.block_size };
            return Err(Rejected::new(e, Some(buf), cookie));
        }
        let sqe = Sqe { opcode: op as u8, nsid: ns.id, cdw10: (lba.0 & 0xffff_ffff) as u32, cdw11: (lba.0 >> 32) as u32, cdw12: nlb - 1, ..Sqe::default() };
        // `bytes <= max_transfer`, which fits a usize on every target we build for.
        let len = usize::try_from(bytes).unwrap_or(usize::MAX);
        // SAFETY: the command moves `nlb * block_size == bytes` bytes, which
        // is `len`, at most the buffer's length (checked above); `submit`
        // points the PRPs at that buffer, which the queue pair owns until the
        // command completes or the device lets go of it.
        unsafe { self.submit(sqe, Some((buf, len)), cookie) }.map(|_| ())
    }

    /// Queues a raw command with an optional data buffer of which the first
    /// `len` bytes are transferred. Fills in the command id and, when `data`
    /// is given, PRP1/PRP2 (with a PRP list when needed). Returns the command
    /// id. The doorbell is written by [`Submitter::ring_doorbell`] or at the
    /// next poll, once per batch. Prefer the typed builders ([`Submitter::read`],
    /// [`Submitter::write`], [`Submitter::flush`]), which are safe.
    ///
    /// # Safety
    ///
    /// The device acts on `sqe` as written, and on a PCIe controller without
    /// an IOMMU (uio) a device address is a physical address. The caller
    /// promises that the command makes the device touch no host memory other
    /// than the first `len` bytes of the `data` buffer:
    /// - with `data: None`, the command transfers no data, or every address
    ///   in it (PRP1, PRP2, a PRP list, a metadata pointer, a queue base)
    ///   points into DMA memory that stays allocated, and is not read or
    ///   written by the host in a way that races with the device, until the
    ///   command completes (and, if it is abandoned, until the queue pair is
    ///   dropped);
    /// - with `data: Some((buf, len))`, the command's transfer length (for
    ///   reads and writes, `nlb * block size`) is at most `len`, and `sqe`'s
    ///   other pointer fields (`mptr`) are zero or follow the rule above.
    pub unsafe fn submit(&mut self, mut sqe: Sqe, data: Option<(DmaBuf, usize)>, cookie: C) -> Result<u16, Rejected<C>> {
        if let Some(reason) = self.failed {
            let e = QueueError::Failed { qid: self.qid, reason };
            return Err(Rejected::new(e, data.map(|d| d.0), cookie));
        }
        if self.controller_was_reset() {
            // The queue no longer exists on the device. The next poll fails
            // the queue pair and hands back what is in flight.
            let e = QueueError::Failed { qid: self.qid, reason: QueueFailure::ControllerReset };
            return Err(Rejected::new(e, data.map(|d| d.0), cookie));
        }
        if self.is_full() {
            let e = QueueError::QueueFull { qid: self.qid, in_flight: self.slots.len() };
            return Err(Rejected::new(e, data.map(|d| d.0), cookie));
        }
        let index = self.slots.vacant_key();
        debug_assert!(index < self.capacity, "slab keys stay below capacity while len < capacity");
        // `index < capacity <= CID_SLOT_MASK` (asserted in `new`), so it fits the slot bits.
        let cid = (u16::from(self.generations[index]) << CID_SLOT_BITS) | (u16::try_from(index).unwrap_or(CID_SLOT_MASK) & CID_SLOT_MASK);
        sqe.cid = cid;
        let buf = match data {
            None => None,
            Some((buf, len)) => {
                assert!(len <= buf.len(), "transfer longer than its buffer");
                match prp::build(buf.iova(), len, &mut self.prp_scratch) {
                    Ok(p) => {
                        sqe.prp1 = p.prp1.0;
                        sqe.prp2 = match p.prp2 {
                            Prp2::None => 0,
                            Prp2::Page(a) => a.0,
                            Prp2::List(n) => {
                                if let Err(e) = self.ensure_prp_list(index) {
                                    return Err(Rejected::new(e, Some(buf), cookie));
                                }
                                let page = self.prp_lists[index].as_mut().expect("ensured above");
                                // Little-endian host (asserted in lib.rs): the
                                // entries' memory is already the wire format.
                                page.write(0, self.prp_scratch[..n].as_bytes());
                                page.iova().0
                            }
                        };
                    }
                    Err(e) => return Err(Rejected::new(e.into(), Some(buf), cookie)),
                }
                Some(buf)
            }
        };
        // `is_full` was false, so the ring has room.
        let slot = self.sq.push().expect("ring has room: checked by is_full");
        self.sq_mem.write(usize::from(slot) * SQE_SIZE, &sqe.to_bytes());
        let key = self.slots.insert(Slot { cookie: Some(cookie), buf, deadline: Tick::deadline(self.timeout), cid });
        debug_assert_eq!(key, index);
        self.generations[index] = (self.generations[index] + 1) % CID_GENERATIONS;
        self.doorbell_pending = true;
        Ok(cid)
    }

    fn ensure_prp_list(&mut self, index: usize) -> Result<(), QueueError> {
        if self.prp_lists[index].is_none() {
            let page = self.transport.dma().alloc(prp::PAGE_BYTES).map_err(QueueError::PrpListAlloc)?;
            self.prp_lists[index] = Some(page);
        }
        Ok(())
    }

    /// Tells the device about every command queued since the last doorbell.
    pub fn ring_doorbell(&mut self) {
        if self.doorbell_pending && self.failed.is_none() && !self.controller_was_reset() {
            self.transport.ring(regs::sq_tail_doorbell(self.qid), self.dstrd, self.sq.tail());
            self.doorbell_pending = false;
        }
    }

    /// The slot of a completion's command id, if that command is in flight.
    fn slot_of(&self, cid: u16) -> Option<usize> {
        let index = usize::from(cid & CID_SLOT_MASK);
        self.slots.get(index).filter(|s| s.cid == cid).map(|_| index)
    }
}

/// A submission ring and its completion ring, owned by one thread.
pub struct QueuePair<C> {
    sub: Submitter<C>,
    cq_mem: DmaBuf,
    cq: CqRing,
    max_per_poll: usize,
    aborter: Option<Aborter>,
    next_scan: Tick,
    last_completion: Tick,
}

impl<C> std::fmt::Debug for QueuePair<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueuePair").field("sub", &self.sub).field("cq_head", &self.cq.head()).finish()
    }
}

/// Construction parameters, used by the controller.
pub(crate) struct QueueParts {
    pub qid: u16,
    pub dstrd: u8,
    pub transport: Arc<dyn Transport>,
    pub sq_mem: DmaBuf,
    pub cq_mem: DmaBuf,
    pub entries: u16,
    pub max_per_poll: usize,
    pub timeout: Duration,
    pub aborter: Option<Aborter>,
    pub epoch: Option<(Arc<AtomicU64>, u64)>,
}

impl<C> QueuePair<C> {
    pub(crate) fn new(p: QueueParts) -> QueuePair<C> {
        assert!(p.sq_mem.len() >= usize::from(p.entries) * SQE_SIZE);
        assert!(p.cq_mem.len() >= usize::from(p.entries) * CQE_SIZE);
        let capacity = usize::from(p.entries) - 1;
        assert!(capacity <= usize::from(CID_SLOT_MASK), "command ids hold at most {CID_SLOT_MASK} slots");
        let mut cq_mem = p.cq_mem;
        // A fresh completion ring holds phase 0 everywhere.
        cq_mem.fill(0);
        let now = Tick::now();
        QueuePair {
            sub: Submitter {
                qid: p.qid,
                dstrd: p.dstrd,
                transport: p.transport,
                sq_mem: p.sq_mem,
                sq: SqRing::new(p.entries),
                doorbell_pending: false,
                slots: Slab::with_capacity(capacity),
                generations: vec![0; capacity],
                capacity,
                prp_lists: (0..capacity).map(|_| None).collect(),
                prp_scratch: Box::new([0; PRP_LIST_ENTRIES]),
                timeout: p.timeout.max(COMMAND_TIMEOUT_MIN),
                abandoned: 0,
                failed: None,
                epoch: p.epoch,
            },
            cq_mem,
            cq: CqRing::new(p.entries),
            max_per_poll: p.max_per_poll.clamp(1, COMPLETIONS_PER_POLL_MAX),
            aborter: p.aborter,
            next_scan: now,
            last_completion: now,
        }
    }

    pub fn submitter(&mut self) -> &mut Submitter<C> {
        &mut self.sub
    }

    /// Sets how long each command submitted from now on may take (at least
    /// [`COMMAND_TIMEOUT_MIN`]).
    pub fn set_command_timeout(&mut self, timeout: Duration) {
        self.sub.timeout = timeout.max(COMMAND_TIMEOUT_MIN);
    }

    /// Rings the doorbell for queued commands, lets an in-process device run,
    /// then hands up to `max` completions (0 = the per-poll cap) to `on_done`,
    /// which may queue new commands through the `Submitter` it is given.
    /// Commands past their deadline come back too (see the module docs).
    /// Never blocks; returns how many completions were handled.
    ///
    /// Returns [`QueueError::Failed`] once the queue pair has failed; the poll
    /// that fails it hands every command in flight back first.
    pub fn process_completions<F>(&mut self, max: usize, mut on_done: F) -> Result<usize, QueueError>
    where
        F: FnMut(&mut Submitter<C>, Completion<C>),
    {
        if let Some(reason) = self.sub.failed {
            return Err(QueueError::Failed { qid: self.sub.qid, reason });
        }
        if self.sub.controller_was_reset() {
            let reason = QueueFailure::ControllerReset;
            self.fail(reason, &mut on_done);
            return Err(QueueError::Failed { qid: self.sub.qid, reason });
        }
        self.sub.ring_doorbell();
        self.sub.transport.service(self.sub.qid);
        let max = if max == 0 { self.max_per_poll } else { max.min(self.max_per_poll) };
        let mut handled = 0;
        let mut consumed = 0;
        let mut failure = None;
        while handled < max {
            let off = usize::from(self.cq.head()) * CQE_SIZE;
            // Acquire: the device writes the status word (with the phase) last,
            // with release ordering; seeing the new phase means the whole entry
            // is visible.
            let status_word = self.cq_mem.load_u16_acquire(off + 14);
            if (status_word & 1 == 1) != self.cq.expected_phase() {
                break;
            }
            let mut raw = [0u8; CQE_SIZE];
            self.cq_mem.read(off, &mut raw);
            let cqe = Cqe::from_bytes(&raw);
            self.cq.advance();
            consumed += 1;
            if !self.sub.sq.update_head(cqe.sq_head) {
                failure = Some(QueueFailure::BogusSqHead { head: cqe.sq_head });
                break;
            }
            let Some(index) = self.sub.slot_of(cqe.cid) else {
                // Not in flight: a duplicate, a corrupted entry, or a stale
                // entry read as new (phase confusion). Nothing the device says
                // on this queue can be trusted any more.
                failure = Some(QueueFailure::BogusCompletion { cid: cqe.cid });
                break;
            };
            let slot = self.sub.slots.remove(index);
            match slot.cookie {
                Some(cookie) => {
                    handled += 1;
                    on_done(&mut self.sub, Completion { cookie, buf: slot.buf, status: cqe.status(), result: cqe.result });
                }
                // An abandoned command finally answered: the device is done
                // with its buffer, which goes back to the pool here.
                None => self.sub.abandoned -= 1,
            }
        }
        if consumed > 0 {
            self.sub.transport.ring(regs::cq_head_doorbell(self.sub.qid), self.sub.dstrd, self.cq.head());
        }
        if failure.is_none() && !self.sub.slots.is_empty() {
            let now = Tick::now();
            if consumed > 0 {
                self.last_completion = now;
            }
            if now >= self.next_scan {
                self.next_scan = now.after(DEADLINE_SCAN_INTERVAL);
                failure = self.expire(now, &mut on_done);
            }
        }
        if let Some(reason) = failure {
            self.fail(reason, &mut on_done);
            return Err(QueueError::Failed { qid: self.sub.qid, reason });
        }
        // Commands queued by the callbacks go out with one doorbell write.
        self.sub.ring_doorbell();
        Ok(handled)
    }

    /// Abandons commands past their deadline (handing their cookies back with
    /// `HOST_ABORTED` and asking the controller to abort them); returns why
    /// the queue pair must fail, if it must.
    fn expire<F>(&mut self, now: Tick, on_done: &mut F) -> Option<QueueFailure>
    where
        F: FnMut(&mut Submitter<C>, Completion<C>),
    {
        let timeout = self.sub.timeout;
        let mut expired = Vec::new();
        let mut unanswered = false;
        for (index, slot) in self.sub.slots.iter() {
            if slot.deadline > now {
                continue;
            }
            if slot.cookie.is_some() {
                expired.push(index);
            } else if now >= slot.deadline.after(2 * timeout) && self.last_completion < slot.deadline {
                // Abandoned, aborted, and still nothing from this queue since.
                unanswered = true;
            }
        }
        if expired.is_empty() && !unanswered {
            return None;
        }
        // A controller that has failed says so in CSTS (all ones: it is gone
        // from the bus).
        let csts = self.sub.transport.read32(offset::CSTS);
        if csts == u32::MAX || Csts(csts).fatal() || !Csts(csts).ready() {
            return Some(QueueFailure::ControllerFatal { csts });
        }
        if unanswered {
            return Some(QueueFailure::Unresponsive { timeout_ms: millis(timeout) });
        }
        for index in expired {
            let slot = &mut self.sub.slots[index];
            let cid = slot.cid;
            let Some(cookie) = slot.cookie.take() else { continue };
            self.sub.abandoned += 1;
            if let Some(abort) = &self.aborter {
                abort(self.sub.qid, cid);
            }
            on_done(&mut self.sub, Completion { cookie, buf: None, status: Status::HOST_ABORTED, result: 0 });
        }
        if self.sub.abandoned >= self.sub.capacity {
            return Some(QueueFailure::Unresponsive { timeout_ms: millis(timeout) });
        }
        None
    }

    /// Enters the failed state: every command still owned by a caller comes
    /// back with `HOST_PATH_ERROR`; buffers stay with the queue pair.
    fn fail<F>(&mut self, reason: QueueFailure, on_done: &mut F)
    where
        F: FnMut(&mut Submitter<C>, Completion<C>),
    {
        self.sub.failed = Some(reason);
        let owned: Vec<usize> = self.sub.slots.iter().filter(|(_, s)| s.cookie.is_some()).map(|(i, _)| i).collect();
        for index in owned {
            if let Some(cookie) = self.sub.slots[index].cookie.take() {
                self.sub.abandoned += 1;
                on_done(&mut self.sub, Completion { cookie, buf: None, status: Status::HOST_PATH_ERROR, result: 0 });
            }
        }
    }

    /// Device address of the completion ring (for tools that play the
    /// device, such as the fuzzer's hostile transport).
    pub fn cq_iova(&self) -> crate::addr::Iova {
        self.cq_mem.iova()
    }

    /// Entries of both rings.
    pub fn entries(&self) -> u16 {
        self.cq.entries()
    }

    /// Whether the device may still write into memory this queue pair holds:
    /// it has commands in flight (abandoned ones included) or has failed,
    /// and the controller has not been reset since (a reset ends all DMA).
    pub fn device_may_hold_buffers(&self) -> bool {
        !self.sub.controller_was_reset() && (!self.sub.slots.is_empty() || self.sub.failed.is_some())
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl<C> std::ops::Deref for QueuePair<C> {
    type Target = Submitter<C>;
    fn deref(&self) -> &Submitter<C> {
        &self.sub
    }
}

impl<C> std::ops::DerefMut for QueuePair<C> {
    fn deref_mut(&mut self) -> &mut Submitter<C> {
        &mut self.sub
    }
}
