//! The device side of PRPs: walking PRP1, PRP2 and PRP lists as a controller
//! does, answering malformed entries with the proper status.

use crate::addr::Iova;
use crate::dma::DeviceMemory;
use crate::prp::PAGE;
use crate::spec::Status;

/// Calls `seg(iova, len, offset_in_transfer)` for each segment of a transfer
/// of `len` bytes described by `prp1`/`prp2`.
pub fn walk(mem: &DeviceMemory, prp1: u64, prp2: u64, len: u64, mut seg: impl FnMut(Iova, usize, u64) -> Result<(), Status>) -> Result<(), Status> {
    if len == 0 {
        return Ok(());
    }
    if prp1 % 4 != 0 {
        return Err(Status::INVALID_PRP_OFFSET);
    }
    let first = len.min(PAGE - prp1 % PAGE);
    // `first <= PAGE` (4 KiB).
    seg(Iova(prp1), usize::try_from(first).map_err(|_| Status::INVALID_FIELD)?, 0)?;
    let mut done = first;
    if done == len {
        return Ok(());
    }
    let rest = len - done;
    if rest <= PAGE {
        if prp2 % PAGE != 0 {
            return Err(Status::INVALID_PRP_OFFSET);
        }
        return seg(Iova(prp2), usize::try_from(rest).map_err(|_| Status::INVALID_FIELD)?, done);
    }
    // PRP2 points at a list; the last entry of a list page chains to the next.
    if prp2 % 8 != 0 {
        return Err(Status::INVALID_PRP_OFFSET);
    }
    let mut entry_addr = prp2;
    // Each step consumes at least one page of the transfer or one list page,
    // so a bound on steps keeps a malicious chain of list pages finite.
    let steps_max = 2 * (len / PAGE + 2);
    for _ in 0..steps_max {
        let mut raw = [0u8; 8];
        mem.read(Iova(entry_addr), &mut raw).ok_or(Status::DATA_TRANSFER_ERROR)?;
        let entry = u64::from_le_bytes(raw);
        let last_in_page = (entry_addr % PAGE) == PAGE - 8;
        let remaining = len - done;
        if last_in_page && remaining > PAGE {
            if entry % 8 != 0 {
                return Err(Status::INVALID_PRP_OFFSET);
            }
            entry_addr = entry;
            continue;
        }
        if entry % PAGE != 0 {
            return Err(Status::INVALID_PRP_OFFSET);
        }
        let n = remaining.min(PAGE);
        seg(Iova(entry), n as usize, done)?;
        done += n;
        if done == len {
            return Ok(());
        }
        entry_addr += 8;
    }
    Err(Status::INVALID_FIELD)
}
