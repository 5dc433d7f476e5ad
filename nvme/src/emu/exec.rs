//! Command execution of the emulated controller: admin commands (identify,
//! queue creation and deletion, number of queues) and NVM I/O commands.

use super::backing::Bounce;
use super::{lock, prp_walk, DevCq, DevSq, EmulatedController};
use crate::addr::Iova;
use crate::ring::CqProducer;
use crate::spec::cmd::{self, AdminOpcode, IoOpcode};
use crate::spec::identify::{set_ascii_field, LbaFormat};
use crate::spec::{IdentifyController, IdentifyNamespace, Sqe, Status};
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use zerocopy::{FromZeros, IntoBytes};

/// Command specific status: Invalid Queue Deletion.
const INVALID_QUEUE_DELETION: Status = Status::specific(0x0c);

type Outcome = (Status, u32, u64);

fn ok(result: u32, bytes: u64) -> Outcome {
    (Status::SUCCESS, result, bytes)
}

fn err(s: Status) -> Outcome {
    (s, 0, 0)
}

impl EmulatedController {
    pub(super) fn exec_admin(&self, sqe: &Sqe) -> Outcome {
        match sqe.opcode {
            x if x == AdminOpcode::Identify as u8 => self.identify(sqe),
            x if x == AdminOpcode::CreateIoCq as u8 => self.create_cq(sqe),
            x if x == AdminOpcode::CreateIoSq as u8 => self.create_sq(sqe),
            x if x == AdminOpcode::DeleteIoSq as u8 => self.delete_sq(sqe),
            x if x == AdminOpcode::DeleteIoCq as u8 => self.delete_cq(sqe),
            x if x == AdminOpcode::Abort as u8 => self.abort(sqe),
            x if x == AdminOpcode::SetFeatures as u8 || x == AdminOpcode::GetFeatures as u8 => {
                if sqe.cdw10 & 0xff != cmd::FEAT_NUMBER_OF_QUEUES {
                    return err(Status::INVALID_FIELD);
                }
                let n = u32::from(self.cfg.io_queues - 1);
                ok(n | (n << 16), 0)
            }
            _ => err(Status::INVALID_OPCODE),
        }
    }

    fn identify(&self, sqe: &Sqe) -> Outcome {
        let mut page = [0u8; 4096];
        match sqe.cdw10 & 0xff {
            cmd::CNS_CONTROLLER => {
                let mut id = IdentifyController::new_zeroed();
                id.vid = 0x1b36;
                id.ssvid = 0x1af4;
                set_ascii_field(&mut id.sn, "SFE-EMU-0001");
                set_ascii_field(&mut id.mn, "sfe emulated NVMe controller");
                set_ascii_field(&mut id.fr, "1.0");
                id.mdts = self.cfg.mdts;
                id.ver = 0x0001_0400;
                id.sqes = 0x66;
                id.cqes = 0x44;
                id.nn = 1;
                page.copy_from_slice(id.as_bytes());
            }
            cmd::CNS_NAMESPACE => {
                if sqe.nsid != 1 {
                    return err(Status::INVALID_NAMESPACE);
                }
                let mut ns = IdentifyNamespace::new_zeroed();
                ns.nsze = self.blocks;
                ns.ncap = self.blocks;
                ns.nuse = self.blocks;
                ns.nlbaf = 0;
                ns.flbas = 0;
                ns.lbaf[0] = LbaFormat::with_data_size(self.cfg.block_size);
                page.copy_from_slice(ns.as_bytes());
            }
            cmd::CNS_ACTIVE_NS_LIST => {
                // Namespaces with an id above `nsid`: ours is 1.
                if sqe.nsid < 1 {
                    page[..4].copy_from_slice(&1u32.to_le_bytes());
                }
            }
            _ => return err(Status::INVALID_FIELD),
        }
        match prp_walk::walk(&self.mem, sqe.prp1, sqe.prp2, 4096, |iova, len, off| {
            let off = off as usize;
            self.mem.write(iova, &page[off..off + len]).ok_or(Status::DATA_TRANSFER_ERROR)
        }) {
            Ok(()) => ok(0, 4096),
            Err(s) => err(s),
        }
    }

    /// Validates the common fields of a queue creation: (qid, entries, base).
    fn queue_params(&self, sqe: &Sqe, entry_size: u64) -> Result<(u16, u16, Iova), Status> {
        let qid = (sqe.cdw10 & 0xffff) as u16;
        let entries = (sqe.cdw10 >> 16) + 1;
        if qid == 0 || qid > self.cfg.io_queues {
            return Err(Status::INVALID_QUEUE_ID);
        }
        if entries < 2 || entries > self.cap.max_queue_entries() {
            return Err(Status::INVALID_QUEUE_SIZE);
        }
        if sqe.cdw11 & cmd::QUEUE_PHYS_CONTIG == 0 {
            // CAP.CQR is set: queues must be physically contiguous.
            return Err(Status::INVALID_FIELD);
        }
        if sqe.prp1 % 4096 != 0 {
            return Err(Status::INVALID_PRP_OFFSET);
        }
        // `entries <= max_queue_entries <= 65536`; a 65536-entry ring is the only value that
        // does not fit u16 and is refused by `Cap::build`'s range.
        let entries = u16::try_from(entries).map_err(|_| Status::INVALID_QUEUE_SIZE)?;
        let base = Iova(sqe.prp1);
        self.mem.translate(base, usize::from(entries) * entry_size as usize).ok_or(Status::INVALID_FIELD)?;
        Ok((qid, entries, base))
    }

    fn create_cq(&self, sqe: &Sqe) -> Outcome {
        let (qid, entries, base) = match self.queue_params(sqe, 16) {
            Ok(p) => p,
            Err(s) => return err(s),
        };
        let mut slot = lock(&self.cqs[usize::from(qid)]);
        if slot.is_some() {
            return err(Status::INVALID_QUEUE_ID);
        }
        *slot = Some(DevCq { base, entries, prod: CqProducer::new(entries) });
        self.doorbells[2 * usize::from(qid) + 1].store(0, Ordering::Release);
        ok(0, 0)
    }

    fn create_sq(&self, sqe: &Sqe) -> Outcome {
        let (qid, entries, base) = match self.queue_params(sqe, 64) {
            Ok(p) => p,
            Err(s) => return err(s),
        };
        let cqid = (sqe.cdw11 >> 16) as u16;
        if cqid == 0 || lock(&self.cqs[usize::from(cqid.min(self.cfg.io_queues))]).is_none() || cqid > self.cfg.io_queues {
            return err(Status::CQ_INVALID);
        }
        let mut slot = lock(&self.sqs[usize::from(qid)]);
        if slot.is_some() {
            return err(Status::INVALID_QUEUE_ID);
        }
        *slot = Some(DevSq { base, entries, head: 0, cqid, pending: VecDeque::new() });
        self.doorbells[2 * usize::from(qid)].store(0, Ordering::Release);
        ok(0, 0)
    }

    /// Abort (Base spec 5.1): if the completion of command `cid` of queue
    /// `sqid` is still held (not due yet, or delayed), it is posted now with
    /// "command abort requested" and DW0 bit 0 is 0; otherwise (already
    /// posted, or lost) DW0 bit 0 is 1: not aborted.
    fn abort(&self, sqe: &Sqe) -> Outcome {
        let sqid = (sqe.cdw10 & 0xffff) as u16;
        let cid = (sqe.cdw10 >> 16) as u16;
        if sqid == 0 || sqid > self.cfg.io_queues {
            return ok(1, 0);
        }
        let mut slot = lock(&self.sqs[usize::from(sqid)]);
        let Some(sq) = slot.as_mut() else { return ok(1, 0) };
        match sq.pending.iter().position(|(_, c)| c.cid == cid) {
            Some(i) => {
                let (_, mut cqe) = sq.pending.remove(i).expect("position is in range");
                cqe.status = Status::ABORT_REQUESTED.to_field() << 1;
                cqe.result = 0;
                sq.pending.push_front((None, cqe));
                ok(0, 0)
            }
            None => ok(1, 0),
        }
    }

    fn delete_sq(&self, sqe: &Sqe) -> Outcome {
        let qid = (sqe.cdw10 & 0xffff) as u16;
        if qid == 0 || qid > self.cfg.io_queues {
            return err(Status::INVALID_QUEUE_ID);
        }
        match lock(&self.sqs[usize::from(qid)]).take() {
            Some(_) => ok(0, 0),
            None => err(Status::INVALID_QUEUE_ID),
        }
    }

    fn delete_cq(&self, sqe: &Sqe) -> Outcome {
        let qid = (sqe.cdw10 & 0xffff) as u16;
        if qid == 0 || qid > self.cfg.io_queues {
            return err(Status::INVALID_QUEUE_ID);
        }
        let in_use = self.sqs.iter().skip(1).any(|s| lock(s).as_ref().is_some_and(|s| s.cqid == qid));
        if in_use {
            return err(INVALID_QUEUE_DELETION);
        }
        match lock(&self.cqs[usize::from(qid)]).take() {
            Some(_) => ok(0, 0),
            None => err(Status::INVALID_QUEUE_ID),
        }
    }

    pub(super) fn exec_io(&self, sqe: &Sqe, bounce: &mut Bounce) -> Outcome {
        let is_read = sqe.opcode == IoOpcode::Read as u8;
        let is_write = sqe.opcode == IoOpcode::Write as u8;
        if sqe.opcode == IoOpcode::Flush as u8 {
            if sqe.nsid != 1 && sqe.nsid != u32::MAX {
                return err(Status::INVALID_NAMESPACE);
            }
            return match self.backing.flush() {
                Ok(()) => ok(0, 0),
                Err(_) => err(Status::INTERNAL_ERROR),
            };
        }
        if !is_read && !is_write {
            return err(Status::INVALID_OPCODE);
        }
        if sqe.nsid != 1 {
            return err(Status::INVALID_NAMESPACE);
        }
        let slba = sqe.slba();
        let nlb = u64::from(sqe.nlb());
        match slba.checked_add(nlb) {
            Some(end) if end <= self.blocks => {}
            _ => return err(Status::LBA_OUT_OF_RANGE),
        }
        let bs = u64::from(self.cfg.block_size);
        let bytes = nlb * bs;
        if bytes > (4096u64 << self.cfg.mdts) {
            return err(Status::INVALID_FIELD);
        }
        if let Some(s) = self.fault_for(slba..slba + nlb) {
            return err(s);
        }
        let base = slba * bs;
        let walked = prp_walk::walk(&self.mem, sqe.prp1, sqe.prp2, bytes, |iova, len, off| {
            let r = if is_read {
                self.backing.read_with(base + off, len, bounce, |src| self.mem.write(iova, src))
            } else {
                self.backing.write_with(base + off, len, bounce, |dst| self.mem.read(iova, dst))
            };
            match r {
                Ok(Some(())) => Ok(()),
                Ok(None) => Err(Status::DATA_TRANSFER_ERROR),
                Err(_) => Err(if is_read { Status::UNRECOVERED_READ_ERROR } else { Status::INTERNAL_ERROR }),
            }
        });
        match walked {
            Ok(()) => {
                let counter = if is_read { &self.stats.reads } else { &self.stats.writes };
                counter.fetch_add(1, Ordering::Relaxed);
                ok(0, bytes)
            }
            Err(s) => err(s),
        }
    }
}
