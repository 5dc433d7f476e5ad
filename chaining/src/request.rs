//! What starts a chain, and the engine's limits.

use fs_extents::{FileId, FileOffset, TenantId};

/// Bytes of per-chain scratch the program sees (what XRP gives a program).
pub const SCRATCH_SIZE: usize = ebpf_runtime::context::SCRATCH_SIZE;
/// Next reads a program may ask for per hop (XRP's prototype allowed 1).
pub const FANOUT_MAX: usize = ebpf_runtime::context::FANOUT_MAX;
/// Reads per chain unless the request or the tenant says otherwise.
pub const HOPS_MAX_DEFAULT: u32 = 64;
/// The largest hop limit a request may ask for.
pub const HOPS_MAX_LIMIT: u32 = 1 << 20;

/// A function registered with a queue or engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProgId(pub u32);

/// A chain to run: a first read of `size` bytes at file offset `offset`,
/// then whatever the program asks for.
#[derive(Debug, Clone)]
pub struct ChainRequest {
    pub tenant: TenantId,
    pub file: FileId,
    pub offset: FileOffset,
    pub size: u32,
    pub prog: ProgId,
    /// Initial scratch (at most [`SCRATCH_SIZE`] bytes; the rest is zero).
    pub scratch: Vec<u8>,
    /// Overrides the default hop limit (capped by the tenant's budget).
    pub hops_max: Option<u32>,
    /// Return the last block read in [`ChainOutcome::last_block`] (XRP's
    /// `read_xrp` leaves it in the caller's buffer). Off by default: it costs
    /// a copy of the block at the end of the chain.
    ///
    /// [`ChainOutcome::last_block`]: crate::ChainOutcome::last_block
    pub keep_last: bool,
}

impl ChainRequest {
    pub fn new(tenant: TenantId, file: FileId, offset: FileOffset, size: u32, prog: ProgId) -> ChainRequest {
        ChainRequest { tenant, file, offset, size, prog, scratch: Vec::new(), hops_max: None, keep_last: false }
    }

    /// Sets scratch word `i` (little-endian u64), growing the scratch as needed.
    pub fn with_u64(mut self, i: usize, v: u64) -> ChainRequest {
        let end = (i + 1) * 8;
        assert!(end <= SCRATCH_SIZE, "scratch word {i} is past the {SCRATCH_SIZE}-byte scratch");
        if self.scratch.len() < end {
            self.scratch.resize(end, 0);
        }
        self.scratch[i * 8..end].copy_from_slice(&v.to_le_bytes());
        self
    }

    pub fn with_hops_max(mut self, hops: u32) -> ChainRequest {
        self.hops_max = Some(hops);
        self
    }
}
