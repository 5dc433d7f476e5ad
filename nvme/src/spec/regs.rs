//! Controller registers in BAR0 (Base spec 3.1, Figure 33) and their fields.

/// Register offsets within BAR0.
pub mod offset {
    pub const CAP: u32 = 0x00;
    pub const VS: u32 = 0x08;
    pub const INTMS: u32 = 0x0c;
    pub const INTMC: u32 = 0x10;
    pub const CC: u32 = 0x14;
    pub const CSTS: u32 = 0x1c;
    pub const AQA: u32 = 0x24;
    pub const ASQ: u32 = 0x28;
    pub const ACQ: u32 = 0x30;
    /// First doorbell (SQ 0 tail); doorbell `i` is at `DOORBELLS + i * (4 << CAP.DSTRD)`.
    pub const DOORBELLS: u32 = 0x1000;
}

/// Index of a doorbell: submission tail of queue `qid` is `2*qid`, completion head `2*qid + 1`.
pub fn sq_tail_doorbell(qid: u16) -> u32 {
    2 * u32::from(qid)
}

/// See [`sq_tail_doorbell`].
pub fn cq_head_doorbell(qid: u16) -> u32 {
    2 * u32::from(qid) + 1
}

/// Byte offset of doorbell `index` for a doorbell stride `dstrd` (CAP.DSTRD).
pub fn doorbell_offset(index: u32, dstrd: u8) -> u32 {
    offset::DOORBELLS + index * (4u32 << dstrd)
}

/// Controller Capabilities (CAP, Figure 36).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cap(pub u64);

impl Cap {
    /// Maximum queue entries supported (MQES is zero-based; this is the count).
    pub fn max_queue_entries(self) -> u32 {
        (self.0 & 0xffff) as u32 + 1
    }
    /// Contiguous queues required.
    pub fn cqr(self) -> bool {
        self.0 & (1 << 16) != 0
    }
    /// Worst-case time to ready, in milliseconds (TO is in 500 ms units).
    pub fn timeout_ms(self) -> u64 {
        ((self.0 >> 24) & 0xff) * 500
    }
    pub fn dstrd(self) -> u8 {
        ((self.0 >> 32) & 0xf) as u8
    }
    /// NVM command set supported (CSS bit 0).
    pub fn nvm_css(self) -> bool {
        self.0 & (1 << 37) != 0
    }
    /// Minimum memory page size in bytes.
    pub fn mps_min(self) -> u64 {
        1 << (12 + ((self.0 >> 48) & 0xf))
    }
    /// Maximum memory page size in bytes.
    pub fn mps_max(self) -> u64 {
        1 << (12 + ((self.0 >> 52) & 0xf))
    }
    /// Builds a CAP value (for devices we emulate).
    pub fn build(mqes_count: u32, timeout_500ms: u8, dstrd: u8) -> Cap {
        assert!((2..=65536).contains(&mqes_count));
        Cap(u64::from(mqes_count - 1) | (1 << 16) | (u64::from(timeout_500ms) << 24) | (u64::from(dstrd & 0xf) << 32) | (1 << 37))
    }
}

/// Controller Configuration (CC, Figure 41).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cc(pub u32);

impl Cc {
    pub fn enabled(self) -> bool {
        self.0 & 1 != 0
    }
    /// Memory page size in bytes (2^(12+MPS)).
    pub fn page_size(self) -> u64 {
        1 << (12 + ((self.0 >> 7) & 0xf))
    }
    pub fn iosqes(self) -> u32 {
        (self.0 >> 16) & 0xf
    }
    pub fn iocqes(self) -> u32 {
        (self.0 >> 20) & 0xf
    }
    /// Enabled, NVM command set, 4 KiB pages, round robin, 64-byte SQEs, 16-byte CQEs.
    pub fn enable_default() -> Cc {
        Cc(1 | (6 << 16) | (4 << 20))
    }
}

/// Controller Status (CSTS, Figure 42).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Csts(pub u32);

impl Csts {
    pub const RDY: u32 = 1;
    pub const CFS: u32 = 1 << 1;
    pub fn ready(self) -> bool {
        self.0 & Self::RDY != 0
    }
    /// Controller fatal status.
    pub fn fatal(self) -> bool {
        self.0 & Self::CFS != 0
    }
}

/// Admin Queue Attributes (AQA, Figure 45): sizes are zero-based in the register.
pub fn aqa(sq_entries: u32, cq_entries: u32) -> u32 {
    assert!((2..=4096).contains(&sq_entries) && (2..=4096).contains(&cq_entries));
    (sq_entries - 1) | ((cq_entries - 1) << 16)
}

/// Splits AQA into (submission entries, completion entries).
pub fn aqa_entries(v: u32) -> (u32, u32) {
    ((v & 0xfff) + 1, ((v >> 16) & 0xfff) + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_fields() {
        let cap = Cap::build(1024, 20, 0);
        assert_eq!(cap.max_queue_entries(), 1024);
        assert_eq!(cap.timeout_ms(), 10_000);
        assert_eq!(cap.dstrd(), 0);
        assert!(cap.nvm_css());
        assert!(cap.cqr());
        assert_eq!(cap.mps_min(), 4096);
    }

    #[test]
    fn doorbell_offsets_with_stride() {
        assert_eq!(doorbell_offset(sq_tail_doorbell(0), 0), 0x1000);
        assert_eq!(doorbell_offset(cq_head_doorbell(0), 0), 0x1004);
        assert_eq!(doorbell_offset(sq_tail_doorbell(1), 0), 0x1008);
        assert_eq!(doorbell_offset(cq_head_doorbell(1), 2), 0x1000 + 3 * 16);
    }

    #[test]
    fn aqa_round_trip() {
        assert_eq!(aqa_entries(aqa(32, 64)), (32, 64));
        assert_eq!(Cc::enable_default().iosqes(), 6);
        assert_eq!(Cc::enable_default().iocqes(), 4);
        assert_eq!(Cc::enable_default().page_size(), 4096);
    }
}
