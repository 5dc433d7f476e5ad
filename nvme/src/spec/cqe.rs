//! Completion queue entries and status codes (Base spec 4.6).

use core::fmt;
use core::mem::{offset_of, size_of};

/// One 16-byte completion queue entry (Figure 89).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cqe {
    /// Command specific (DW0).
    pub result: u32,
    pub rsvd: u32,
    /// SQ head pointer (DW2 15:0) and SQ identifier (DW2 31:16).
    pub sq_head: u16,
    pub sq_id: u16,
    pub cid: u16,
    /// Phase tag (bit 0) and status field (bits 15:1).
    pub status: u16,
}

const _: () = assert!(size_of::<Cqe>() == 16);
const _: () = assert!(offset_of!(Cqe, sq_head) == 8);
const _: () = assert!(offset_of!(Cqe, cid) == 12);
const _: () = assert!(offset_of!(Cqe, status) == 14);

/// Size of a completion queue entry in bytes (CC.IOCQES = 4).
pub const CQE_SIZE: usize = 16;

impl Cqe {
    pub fn to_bytes(&self) -> [u8; CQE_SIZE] {
        let mut b = [0u8; CQE_SIZE];
        b[0..4].copy_from_slice(&self.result.to_le_bytes());
        b[4..8].copy_from_slice(&self.rsvd.to_le_bytes());
        b[8..10].copy_from_slice(&self.sq_head.to_le_bytes());
        b[10..12].copy_from_slice(&self.sq_id.to_le_bytes());
        b[12..14].copy_from_slice(&self.cid.to_le_bytes());
        b[14..16].copy_from_slice(&self.status.to_le_bytes());
        b
    }

    pub fn from_bytes(b: &[u8; CQE_SIZE]) -> Cqe {
        Cqe {
            result: u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            rsvd: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
            sq_head: u16::from_le_bytes([b[8], b[9]]),
            sq_id: u16::from_le_bytes([b[10], b[11]]),
            cid: u16::from_le_bytes([b[12], b[13]]),
            status: u16::from_le_bytes([b[14], b[15]]),
        }
    }

    /// The phase tag the device wrote.
    pub fn phase(&self) -> bool {
        self.status & 1 == 1
    }

    /// The status field without the phase tag.
    pub fn status(&self) -> Status {
        Status::from_field(self.status >> 1)
    }
}

/// Status code type (Figure 93).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusCodeType {
    Generic,
    CommandSpecific,
    MediaError,
    PathRelated,
    Vendor,
    Reserved(u8),
}

/// A command's completion status: status code type and status code, plus the
/// do-not-retry bit.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Status {
    pub sct: u8,
    pub sc: u8,
    pub dnr: bool,
}

impl Status {
    pub const SUCCESS: Status = Status::generic(0x00);
    pub const INVALID_OPCODE: Status = Status::generic(0x01);
    pub const INVALID_FIELD: Status = Status::generic(0x02);
    pub const DATA_TRANSFER_ERROR: Status = Status::generic(0x04);
    pub const INTERNAL_ERROR: Status = Status::generic(0x06);
    /// The command was aborted by an Abort command (generic 0x07).
    pub const ABORT_REQUESTED: Status = Status::generic(0x07);
    pub const INVALID_NAMESPACE: Status = Status::generic(0x0b);
    pub const INVALID_PRP_OFFSET: Status = Status::generic(0x13);
    pub const LBA_OUT_OF_RANGE: Status = Status::generic(0x80);
    /// Command specific (SCT 1): Completion Queue Invalid.
    pub const CQ_INVALID: Status = Status::specific(0x00);
    /// Command specific: Invalid Queue Identifier.
    pub const INVALID_QUEUE_ID: Status = Status::specific(0x01);
    /// Command specific: Invalid Queue Size.
    pub const INVALID_QUEUE_SIZE: Status = Status::specific(0x02);
    /// Media error (SCT 2): Unrecovered Read Error.
    pub const UNRECOVERED_READ_ERROR: Status = Status { sct: 2, sc: 0x81, dnr: false };
    /// Path related (SCT 3) 0x70, Host Pathing Error. Never read from a
    /// device here: the driver sets it on commands it ends because their
    /// queue pair failed (as Linux does for a dead controller).
    pub const HOST_PATH_ERROR: Status = Status { sct: 3, sc: 0x70, dnr: false };
    /// Path related (SCT 3) 0x71, Command Aborted By Host. Never read from a
    /// device here: the driver sets it on commands that passed their deadline.
    pub const HOST_ABORTED: Status = Status { sct: 3, sc: 0x71, dnr: false };

    pub const fn generic(sc: u8) -> Status {
        Status { sct: 0, sc, dnr: true }
    }

    pub const fn specific(sc: u8) -> Status {
        Status { sct: 1, sc, dnr: true }
    }

    /// Parses the 15-bit status field (CQE DW3 bits 31:17 shifted down).
    pub fn from_field(f: u16) -> Status {
        Status { sc: (f & 0xff) as u8, sct: ((f >> 8) & 0x7) as u8, dnr: f & (1 << 14) != 0 }
    }

    /// The 15-bit status field (without phase).
    pub fn to_field(self) -> u16 {
        u16::from(self.sc) | (u16::from(self.sct & 0x7) << 8) | (u16::from(self.dnr) << 14)
    }

    pub fn is_success(self) -> bool {
        self.sct == 0 && self.sc == 0
    }

    pub fn code_type(self) -> StatusCodeType {
        match self.sct {
            0 => StatusCodeType::Generic,
            1 => StatusCodeType::CommandSpecific,
            2 => StatusCodeType::MediaError,
            3 => StatusCodeType::PathRelated,
            7 => StatusCodeType::Vendor,
            r => StatusCodeType::Reserved(r),
        }
    }

    fn name(self) -> &'static str {
        match (self.sct, self.sc) {
            (0, 0x00) => "success",
            (0, 0x01) => "invalid command opcode",
            (0, 0x02) => "invalid field in command",
            (0, 0x04) => "data transfer error",
            (0, 0x06) => "internal error",
            (0, 0x07) => "command abort requested",
            (0, 0x0b) => "invalid namespace or format",
            (0, 0x13) => "invalid PRP offset",
            (0, 0x80) => "LBA out of range",
            (1, 0x00) => "completion queue invalid",
            (1, 0x01) => "invalid queue identifier",
            (1, 0x02) => "invalid queue size",
            (2, 0x81) => "unrecovered read error",
            (3, 0x70) => "host pathing error (queue pair failed)",
            (3, 0x71) => "command aborted by host (deadline passed)",
            _ => "other",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (sct {:#x}, sc {:#04x})", self.name(), self.sct, self.sc)
    }
}

impl fmt::Debug for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_field_round_trip() {
        for s in [Status::SUCCESS, Status::LBA_OUT_OF_RANGE, Status::INVALID_QUEUE_SIZE, Status::UNRECOVERED_READ_ERROR] {
            assert_eq!(Status::from_field(s.to_field()), s);
        }
        assert!(Status::SUCCESS.is_success());
        assert!(!Status::LBA_OUT_OF_RANGE.is_success());
        assert_eq!(Status::LBA_OUT_OF_RANGE.code_type(), StatusCodeType::Generic);
    }

    #[test]
    fn cqe_bytes_round_trip_and_phase() {
        let c = Cqe { result: 7, rsvd: 0, sq_head: 3, sq_id: 1, cid: 42, status: (Status::INVALID_FIELD.to_field() << 1) | 1 };
        let back = Cqe::from_bytes(&c.to_bytes());
        assert_eq!(back, c);
        assert!(back.phase());
        assert_eq!(back.status(), Status::INVALID_FIELD);
    }
}
