//! Identify data structures (Base spec 5.17.2.1, NVM spec 4.1.5.1).

use core::mem::{offset_of, size_of};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Identify Controller data structure (CNS 01h), 4096 bytes. Fields we use are
/// named; the rest is kept as reserved byte ranges.
#[repr(C)]
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct IdentifyController {
    pub vid: u16,
    pub ssvid: u16,
    pub sn: [u8; 20],
    pub mn: [u8; 40],
    pub fr: [u8; 8],
    pub rab: u8,
    pub ieee: [u8; 3],
    pub cmic: u8,
    /// Maximum data transfer size, as a power of two in units of CAP.MPSMIN; 0 = no limit.
    pub mdts: u8,
    pub cntlid: u16,
    pub ver: u32,
    pub rsvd84: [u8; 428],
    pub sqes: u8,
    pub cqes: u8,
    pub maxcmd: u16,
    /// Number of namespaces.
    pub nn: u32,
    pub rsvd520: [u8; 3576],
}

const _: () = assert!(size_of::<IdentifyController>() == 4096);
const _: () = assert!(offset_of!(IdentifyController, mdts) == 77);
const _: () = assert!(offset_of!(IdentifyController, ver) == 80);
const _: () = assert!(offset_of!(IdentifyController, sqes) == 512);
const _: () = assert!(offset_of!(IdentifyController, nn) == 516);

impl IdentifyController {
    /// Model number as text, trailing spaces removed.
    pub fn model(&self) -> String {
        ascii_field(&self.mn)
    }
    pub fn serial(&self) -> String {
        ascii_field(&self.sn)
    }
}

impl core::fmt::Debug for IdentifyController {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("IdentifyController")
            .field("vid", &self.vid)
            .field("sn", &self.serial())
            .field("mn", &self.model())
            .field("mdts", &self.mdts)
            .field("nn", &self.nn)
            .finish_non_exhaustive()
    }
}

/// LBA format descriptor (NVM spec Figure 116).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct LbaFormat(pub u32);

impl LbaFormat {
    /// LBA data size in bytes (2^LBADS).
    pub fn data_size(self) -> Option<u32> {
        let lbads = (self.0 >> 16) & 0xff;
        if (9..=16).contains(&lbads) {
            Some(1 << lbads)
        } else {
            None
        }
    }
    pub fn metadata_size(self) -> u16 {
        (self.0 & 0xffff) as u16
    }
    pub fn with_data_size(block: u32) -> LbaFormat {
        assert!(block.is_power_of_two());
        LbaFormat(block.trailing_zeros() << 16)
    }
}

/// Identify Namespace data structure (CNS 00h), 4096 bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct IdentifyNamespace {
    /// Namespace size in logical blocks.
    pub nsze: u64,
    pub ncap: u64,
    pub nuse: u64,
    pub nsfeat: u8,
    /// Number of LBA formats (zero-based).
    pub nlbaf: u8,
    /// Formatted LBA size: bits 3:0 index the format in use.
    pub flbas: u8,
    pub mc: u8,
    pub dpc: u8,
    pub dps: u8,
    pub nmic: u8,
    pub rescap: u8,
    pub rsvd32: [u8; 96],
    pub lbaf: [LbaFormat; 16],
    pub rsvd192: [u8; 3904],
}

const _: () = assert!(size_of::<IdentifyNamespace>() == 4096);
const _: () = assert!(offset_of!(IdentifyNamespace, flbas) == 26);
const _: () = assert!(offset_of!(IdentifyNamespace, lbaf) == 128);

impl IdentifyNamespace {
    /// The LBA format in use.
    pub fn lba_format(&self) -> LbaFormat {
        self.lbaf[usize::from(self.flbas & 0xf)]
    }
}

fn ascii_field(b: &[u8]) -> String {
    String::from_utf8_lossy(b).trim_end_matches([' ', '\0']).to_string()
}

/// Fills a fixed-width ASCII field, space padded, as the spec wants.
pub fn set_ascii_field(dst: &mut [u8], s: &str) {
    dst.fill(b' ');
    let n = s.len().min(dst.len());
    dst[..n].copy_from_slice(&s.as_bytes()[..n]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::FromZeros;

    #[test]
    fn lba_format_sizes() {
        assert_eq!(LbaFormat::with_data_size(512).data_size(), Some(512));
        assert_eq!(LbaFormat::with_data_size(4096).data_size(), Some(4096));
        assert_eq!(LbaFormat(3 << 16).data_size(), None);
    }

    #[test]
    fn identify_round_trips_through_bytes() {
        let mut id = IdentifyController::new_zeroed();
        set_ascii_field(&mut id.mn, "model");
        id.nn = 3;
        let bytes = id.as_bytes().to_vec();
        let back = IdentifyController::read_from_bytes(&bytes).expect("4096 bytes");
        assert_eq!(back.model(), "model");
        assert_eq!(back.nn, 3);
    }
}
