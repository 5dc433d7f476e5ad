//! Submission queue entries (Base spec 4.2, "Submission Queue Entry").

use core::mem::{offset_of, size_of};

/// One 64-byte submission queue entry, common command format (Figure 88).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sqe {
    /// Command Dword 0: opcode (7:0), fused (9:8), PSDT (15:14), command id (31:16).
    pub opcode: u8,
    pub flags: u8,
    pub cid: u16,
    pub nsid: u32,
    pub cdw2: u32,
    pub cdw3: u32,
    pub mptr: u64,
    pub prp1: u64,
    pub prp2: u64,
    pub cdw10: u32,
    pub cdw11: u32,
    pub cdw12: u32,
    pub cdw13: u32,
    pub cdw14: u32,
    pub cdw15: u32,
}

const _: () = assert!(size_of::<Sqe>() == 64);
const _: () = assert!(offset_of!(Sqe, cid) == 2);
const _: () = assert!(offset_of!(Sqe, nsid) == 4);
const _: () = assert!(offset_of!(Sqe, mptr) == 16);
const _: () = assert!(offset_of!(Sqe, prp1) == 24);
const _: () = assert!(offset_of!(Sqe, prp2) == 32);
const _: () = assert!(offset_of!(Sqe, cdw10) == 40);
const _: () = assert!(offset_of!(Sqe, cdw15) == 60);

/// Size of a submission queue entry in bytes (CC.IOSQES = 6).
pub const SQE_SIZE: usize = 64;

impl Sqe {
    /// The entry as little-endian bytes, the layout a device reads.
    pub fn to_bytes(&self) -> [u8; SQE_SIZE] {
        let mut b = [0u8; SQE_SIZE];
        b[0] = self.opcode;
        b[1] = self.flags;
        b[2..4].copy_from_slice(&self.cid.to_le_bytes());
        b[4..8].copy_from_slice(&self.nsid.to_le_bytes());
        b[8..12].copy_from_slice(&self.cdw2.to_le_bytes());
        b[12..16].copy_from_slice(&self.cdw3.to_le_bytes());
        b[16..24].copy_from_slice(&self.mptr.to_le_bytes());
        b[24..32].copy_from_slice(&self.prp1.to_le_bytes());
        b[32..40].copy_from_slice(&self.prp2.to_le_bytes());
        for (i, dw) in [self.cdw10, self.cdw11, self.cdw12, self.cdw13, self.cdw14, self.cdw15].iter().enumerate() {
            b[40 + 4 * i..44 + 4 * i].copy_from_slice(&dw.to_le_bytes());
        }
        b
    }

    /// Parses an entry from the bytes a host wrote.
    pub fn from_bytes(b: &[u8; SQE_SIZE]) -> Sqe {
        let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
        let u32_at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let u64_at = |o: usize| u64::from(u32_at(o)) | (u64::from(u32_at(o + 4)) << 32);
        Sqe {
            opcode: b[0],
            flags: b[1],
            cid: u16_at(2),
            nsid: u32_at(4),
            cdw2: u32_at(8),
            cdw3: u32_at(12),
            mptr: u64_at(16),
            prp1: u64_at(24),
            prp2: u64_at(32),
            cdw10: u32_at(40),
            cdw11: u32_at(44),
            cdw12: u32_at(48),
            cdw13: u32_at(52),
            cdw14: u32_at(56),
            cdw15: u32_at(60),
        }
    }

    /// Starting LBA of an I/O command (CDW10 low, CDW11 high; NVM spec 3.2.4).
    pub fn slba(&self) -> u64 {
        u64::from(self.cdw10) | (u64::from(self.cdw11) << 32)
    }

    /// Number of logical blocks of an I/O command (CDW12 bits 15:0 are zero-based).
    pub fn nlb(&self) -> u32 {
        (self.cdw12 & 0xffff) + 1
    }
}

/// Admin command opcodes (Base spec 5, Figure 138).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum AdminOpcode {
    DeleteIoSq = 0x00,
    CreateIoSq = 0x01,
    DeleteIoCq = 0x04,
    CreateIoCq = 0x05,
    Identify = 0x06,
    Abort = 0x08,
    SetFeatures = 0x09,
    GetFeatures = 0x0a,
}

/// NVM command set I/O opcodes (NVM spec 3, Figure 17).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum IoOpcode {
    Flush = 0x00,
    Write = 0x01,
    Read = 0x02,
}

/// Identify CNS values (Base spec 5.17.1).
pub const CNS_NAMESPACE: u32 = 0x00;
pub const CNS_CONTROLLER: u32 = 0x01;
pub const CNS_ACTIVE_NS_LIST: u32 = 0x02;

/// Feature identifier: Number of Queues (Base spec 5.27.1.5).
pub const FEAT_NUMBER_OF_QUEUES: u32 = 0x07;

/// Create I/O queue flag: physically contiguous (CDW11 bit 0).
pub const QUEUE_PHYS_CONTIG: u32 = 1;
