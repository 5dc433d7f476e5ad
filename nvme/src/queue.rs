//! A queue pair: the submission and completion rings of one queue in DMA
//! memory, shared by every transport. Submissions are batched (one doorbell
//! write per batch); completions are reaped without blocking, at most
//! `max_completions_per_poll` per call. Each command owns its buffer until its
//! completion hands it back (STYLE item 5); a full queue hands the request
//! back instead of dropping or blocking.

use crate::addr::Lba;
use crate::dma::DmaBuf;
use crate::error::{QueueError, Rejected};
use crate::prp::{self, Prp2, PRP_LIST_ENTRIES};
use crate::ring::{CqRing, SqRing};
use crate::spec::cmd::SQE_SIZE;
use crate::spec::cqe::CQE_SIZE;
use crate::spec::{regs, Cqe, IoOpcode, Sqe, Status};
use crate::transport::Transport;
use slab::Slab;
use zerocopy::IntoBytes;
use std::sync::Arc;

/// Most completions one poll handles when the caller asks for "all" (0).
pub const COMPLETIONS_PER_POLL_MAX: usize = 256;

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
#[derive(Debug)]
pub struct Completion<C> {
    pub cookie: C,
    pub buf: Option<DmaBuf>,
    pub status: Status,
    /// Command specific result (CQE DW0).
    pub result: u32,
}

struct Slot<C> {
    cookie: C,
    buf: Option<DmaBuf>,
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
    capacity: usize,
    /// One PRP list page per command id, allocated on first need.
    prp_lists: Vec<Option<DmaBuf>>,
    prp_scratch: Box<[u64; PRP_LIST_ENTRIES]>,
}

impl<C> std::fmt::Debug for Submitter<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Submitter").field("qid", &self.qid).field("in_flight", &self.slots.len()).finish()
    }
}

impl<C> Submitter<C> {
    pub fn qid(&self) -> u16 {
        self.qid
    }
    /// Commands submitted and not yet completed.
    pub fn in_flight(&self) -> usize {
        self.slots.len()
    }
    /// The most commands that may be in flight at once.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
    pub fn is_full(&self) -> bool {
        self.slots.len() >= self.capacity || self.sq.is_full()
    }

    /// Reads `nlb` blocks at `lba` into the start of `buf`.
    pub fn read(&mut self, ns: &Namespace, lba: Lba, nlb: u32, buf: DmaBuf, cookie: C) -> Result<(), Rejected<C>> {
        self.rw(IoOpcode::Read, ns, lba, nlb, buf, cookie)
    }

    /// Writes `nlb` blocks at `lba` from the start of `buf`.
    pub fn write(&mut self, ns: &Namespace, lba: Lba, nlb: u32, buf: DmaBuf, cookie: C) -> Result<(), Rejected<C>> {
        self.rw(IoOpcode::Write, ns, lba, nlb, buf, cookie)
    }

    /// Reads `len` bytes at byte `offset` of the namespace (both multiples of
    /// the block size) into the start of `buf`.
    pub fn read_bytes(&mut self, ns: &Namespace, offset: u64, len: u64, buf: DmaBuf, cookie: C) -> Result<(), Rejected<C>> {
        match blocks_of(ns, offset, len) {
            Ok((lba, nlb)) => self.read(ns, lba, nlb, buf, cookie),
            Err(e) => Err(Rejected::new(e, Some(buf), cookie)),
        }
    }

    /// Writes `len` bytes at byte `offset` from the start of `buf`.
    pub fn write_bytes(&mut self, ns: &Namespace, offset: u64, len: u64, buf: DmaBuf, cookie: C) -> Result<(), Rejected<C>> {
        match blocks_of(ns, offset, len) {
            Ok((lba, nlb)) => self.write(ns, lba, nlb, buf, cookie),
            Err(e) => Err(Rejected::new(e, Some(buf), cookie)),
        }
    }

    /// Flushes the namespace's volatile write cache.
    pub fn flush(&mut self, ns: &Namespace, cookie: C) -> Result<(), Rejected<C>> {
        let sqe = Sqe { opcode: IoOpcode::Flush as u8, nsid: ns.id, ..Sqe::default() };
        self.submit(sqe, None, cookie).map(|_| ())
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
        let sqe = Sqe {
            opcode: op as u8,
            nsid: ns.id,
            cdw10: lba.0 as u32,
            cdw11: (lba.0 >> 32) as u32,
            cdw12: nlb - 1,
            ..Sqe::default()
        };
        // `bytes <= max_transfer`, which fits a usize on every target we build for.
        let len = usize::try_from(bytes).unwrap_or(usize::MAX);
        self.submit(sqe, Some((buf, len)), cookie).map(|_| ())
    }

    /// Queues a command with an optional data buffer of which the first
    /// `len` bytes are transferred. Fills in the command id and PRPs. Returns
    /// the command id. The doorbell is written by [`Submitter::ring_doorbell`]
    /// or at the next poll, once per batch.
    pub fn submit(&mut self, mut sqe: Sqe, data: Option<(DmaBuf, usize)>, cookie: C) -> Result<u16, Rejected<C>> {
        if self.is_full() {
            let e = QueueError::QueueFull { qid: self.qid, in_flight: self.slots.len() };
            return Err(Rejected::new(e, data.map(|d| d.0), cookie));
        }
        let cid = self.slots.vacant_key();
        debug_assert!(cid < self.capacity, "slab keys stay below capacity while len < capacity");
        sqe.cid = cid as u16;
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
                                if let Err(e) = self.ensure_prp_list(cid) {
                                    return Err(Rejected::new(e, Some(buf), cookie));
                                }
                                let page = self.prp_lists[cid].as_mut().expect("ensured above");
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
        let key = self.slots.insert(Slot { cookie, buf });
        debug_assert_eq!(key, cid);
        self.doorbell_pending = true;
        Ok(sqe.cid)
    }

    fn ensure_prp_list(&mut self, cid: usize) -> Result<(), QueueError> {
        if self.prp_lists[cid].is_none() {
            let page = self.transport.dma().alloc(prp::PAGE as usize).map_err(QueueError::PrpListAlloc)?;
            self.prp_lists[cid] = Some(page);
        }
        Ok(())
    }

    /// Tells the device about every command queued since the last doorbell.
    pub fn ring_doorbell(&mut self) {
        if self.doorbell_pending {
            self.transport.ring(regs::sq_tail_doorbell(self.qid), self.dstrd, self.sq.tail());
            self.doorbell_pending = false;
        }
    }
}

fn blocks_of(ns: &Namespace, offset: u64, len: u64) -> Result<(Lba, u32), QueueError> {
    let bs = u64::from(ns.block_size);
    if offset % bs != 0 || len % bs != 0 {
        return Err(QueueError::Unaligned { offset, len, block: ns.block_size });
    }
    let nlb = u32::try_from(len / bs).map_err(|_| QueueError::TooLarge { bytes: len, max: ns.max_transfer })?;
    Ok((Lba(offset / bs), nlb))
}

/// A submission ring and its completion ring, owned by one thread.
pub struct QueuePair<C> {
    sub: Submitter<C>,
    cq_mem: DmaBuf,
    cq: CqRing,
    max_per_poll: usize,
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
}

impl<C> QueuePair<C> {
    pub(crate) fn new(p: QueueParts) -> QueuePair<C> {
        assert!(p.sq_mem.len() >= usize::from(p.entries) * SQE_SIZE);
        assert!(p.cq_mem.len() >= usize::from(p.entries) * CQE_SIZE);
        let capacity = usize::from(p.entries) - 1;
        let mut cq_mem = p.cq_mem;
        // A fresh completion ring holds phase 0 everywhere.
        cq_mem.fill(0);
        QueuePair {
            sub: Submitter {
                qid: p.qid,
                dstrd: p.dstrd,
                transport: p.transport,
                sq_mem: p.sq_mem,
                sq: SqRing::new(p.entries),
                doorbell_pending: false,
                slots: Slab::with_capacity(capacity),
                capacity,
                prp_lists: (0..capacity).map(|_| None).collect(),
                prp_scratch: Box::new([0; PRP_LIST_ENTRIES]),
            },
            cq_mem,
            cq: CqRing::new(p.entries),
            max_per_poll: p.max_per_poll.clamp(1, COMPLETIONS_PER_POLL_MAX),
        }
    }

    pub fn submitter(&mut self) -> &mut Submitter<C> {
        &mut self.sub
    }

    /// Rings the doorbell for queued commands, lets an in-process device run,
    /// then hands up to `max` completions (0 = the per-poll cap) to `on_done`,
    /// which may queue new commands through the `Submitter` it is given.
    /// Never blocks; returns how many completions were handled.
    pub fn process_completions<F>(&mut self, max: usize, mut on_done: F) -> Result<usize, QueueError>
    where
        F: FnMut(&mut Submitter<C>, Completion<C>),
    {
        self.sub.ring_doorbell();
        self.sub.transport.service(self.sub.qid);
        let max = if max == 0 { self.max_per_poll } else { max.min(self.max_per_poll) };
        let mut handled = 0;
        let mut consumed = 0;
        let mut first_error = None;
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
                first_error.get_or_insert(QueueError::BogusSqHead { qid: self.sub.qid, head: cqe.sq_head });
            }
            match self.sub.slots.try_remove(usize::from(cqe.cid)) {
                Some(slot) => {
                    handled += 1;
                    on_done(&mut self.sub, Completion { cookie: slot.cookie, buf: slot.buf, status: cqe.status(), result: cqe.result });
                }
                None => {
                    first_error.get_or_insert(QueueError::BogusCompletion { qid: self.sub.qid, cid: cqe.cid });
                }
            }
        }
        if consumed > 0 {
            self.sub.transport.ring(regs::cq_head_doorbell(self.sub.qid), self.sub.dstrd, self.cq.head());
        }
        // Commands queued by the callbacks go out with one doorbell write.
        self.sub.ring_doorbell();
        match first_error {
            Some(e) => Err(e),
            None => Ok(handled),
        }
    }
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
