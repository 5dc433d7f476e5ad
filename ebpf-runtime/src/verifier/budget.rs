//! What one verification may spend: wall time and memory, counted as the
//! walk goes. A program that exceeds either is refused with the cap and the
//! instruction it had reached, never with an allocation failure (issue 15).
//!
//! Memory is counted, not estimated: every state the walk holds (the
//! current path, the paths waiting on the pending stack, the states stored
//! for pruning) is charged with its inline size plus the heap buffers it
//! owns, when it is created, and refunded when it is dropped. What is not
//! charged is per-program and bounded by the program length (the static
//! pass's tables, the per-instruction list headers) and the spare capacity
//! of those lists.

use super::error::VerifyError;
use super::Limits;
use std::time::Instant;

/// The clock is read once per this many units of work (an instruction
/// processed or a stored state compared): reading it costs about as much as
/// a unit, and 1024 units take well under a millisecond.
pub const TIME_CHECK_INTERVAL: u64 = 1024;

/// Time and memory accounting for one verification.
pub struct Budget {
    limits: Limits,
    start: Instant,
    work: u64,
    bytes: u64,
    peak_bytes: u64,
}

impl Budget {
    pub fn new(limits: Limits) -> Budget {
        Budget { limits, start: Instant::now(), work: 0, bytes: 0, peak_bytes: 0 }
    }

    /// One unit of work at `insn`; refuses once the wall-time cap is spent.
    pub fn tick(&mut self, insn: usize) -> Result<(), VerifyError> {
        self.work += 1;
        if self.work % TIME_CHECK_INTERVAL == 0 && self.start.elapsed() > self.limits.time_max {
            let cap_ms = u64::try_from(self.limits.time_max.as_millis()).unwrap_or(u64::MAX);
            return Err(VerifyError::TimeCap { insn, cap_ms });
        }
        Ok(())
    }

    /// Charges `bytes` held from now on; refuses past the memory cap.
    pub fn charge(&mut self, bytes: usize, insn: usize) -> Result<(), VerifyError> {
        self.bytes += u64::try_from(bytes).unwrap_or(u64::MAX);
        self.peak_bytes = self.peak_bytes.max(self.bytes);
        if self.bytes > self.limits.mem_max_bytes {
            return Err(VerifyError::MemoryCap { insn, cap_bytes: self.limits.mem_max_bytes });
        }
        Ok(())
    }

    /// Refunds `bytes` charged earlier.
    pub fn refund(&mut self, bytes: usize) {
        let b = u64::try_from(bytes).unwrap_or(u64::MAX);
        assert!(b <= self.bytes, "refunding {b} bytes, {} charged", self.bytes);
        self.bytes -= b;
    }

    /// Most bytes held at one time.
    pub fn peak_bytes(&self) -> u64 {
        self.peak_bytes
    }
}
