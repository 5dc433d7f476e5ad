//! What a finished chain reports: one distinct status per way a chain can
//! end, and the scratch the program left.

use crate::request::SCRATCH_SIZE;
use fs_extents::{FileId, FileOffset};

/// How a chain ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainStatus {
    /// The program set `done`, or every read finished and none was asked for.
    #[error("done")]
    Done,
    /// The program returned non-zero: the chain aborts with that code.
    #[error("program aborted the chain with code {code} at hop {hop}")]
    Aborted { code: u64, hop: u32 },
    /// The chain asked for more reads than its hop limit allows.
    #[error("hop limit of {hops_max} reads reached")]
    HopLimit { hops_max: u32 },
    /// A read outside the file, in a file the tenant was not granted, or
    /// crossing an extent boundary.
    #[error("access error at file offset {offset} (+{size} bytes): {reason}")]
    Access { offset: FileOffset, size: u64, reason: String },
    /// The file's extents changed while the chain ran; the caller may retry.
    #[error("file {file:?} changed during the chain (extent version {then} -> {now}); retry")]
    Stale { file: FileId, then: u64, now: u64 },
    /// The device completed a read with an error status.
    #[error("device error reading file offset {offset}: {status}")]
    Device { offset: FileOffset, status: nvme::Status },
    /// A read size that is zero, not a multiple of the device block, or larger than allowed.
    #[error("next_addr[{slot}] asks for {size} bytes: {reason}")]
    BadSize { slot: usize, size: u64, reason: &'static str },
    /// The runtime could not run the program.
    #[error("program failed at hop {hop}: {message}")]
    Program { hop: u32, message: String },
    /// The request itself was malformed (unknown program, scratch too large, ...).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The engine could not queue a read for a reason other than a full
    /// queue (out of DMA memory for a read buffer, a transfer the device
    /// cannot take).
    #[error("submission failed: {0}")]
    Submit(String),
    /// A read passed its deadline on the device (the queue's command
    /// timeout); the driver asked the controller to abort it.
    #[error("the read at file offset {offset} passed its {timeout_ms} ms deadline on the device")]
    Timeout { offset: FileOffset, timeout_ms: u64 },
    /// The queue pair failed (the device misbehaved or stopped); every chain
    /// on it ends with this, and so does every chain submitted afterwards.
    #[error("the queue pair failed: {0}")]
    QueueFailed(nvme::QueueFailure),
    /// A limit was reached (chains in flight on the queue, or the tenant's
    /// backlog of reads); the chain was not run, or not continued. Retry later.
    #[error("busy: {limit} is at its maximum of {max}")]
    Busy { limit: &'static str, max: usize },
}

impl ChainStatus {
    pub fn is_done(&self) -> bool {
        matches!(self, ChainStatus::Done)
    }
}

/// A finished chain: its status, the scratch as the program left it, and
/// what it cost.
#[derive(Debug)]
pub struct ChainOutcome {
    pub status: ChainStatus,
    pub scratch: Box<[u8; SCRATCH_SIZE]>,
    /// Program runs (one per completed read).
    pub hops: u32,
    /// Reads issued to the device (holes are served without one).
    pub reads: u32,
    /// The last block the program ran on (its read's length), when the
    /// request asked for it with `keep_last`.
    pub last_block: Option<Vec<u8>>,
}

impl ChainOutcome {
    /// A chain that ended before any read: zero scratch, no hops.
    pub(crate) fn ended(status: ChainStatus) -> ChainOutcome {
        ChainOutcome { status, scratch: Box::new([0u8; crate::SCRATCH_SIZE]), hops: 0, reads: 0, last_block: None }
    }

    /// The `i`-th little-endian u64 of the scratch.
    pub fn scratch_u64(&self, i: usize) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.scratch[i * 8..i * 8 + 8]);
        u64::from_le_bytes(b)
    }
}
