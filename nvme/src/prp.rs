//! Physical Region Page entries (Base spec 4.1.1): how a transfer of `len`
//! bytes at a device address is described to the device.
//!
//! PRP1 points at the first byte (any dword-aligned offset). If the transfer
//! ends within PRP1's page, PRP2 is unused; if it ends within the next page,
//! PRP2 is that page; otherwise PRP2 points at a PRP list of page addresses.
//! One list page of 512 entries suffices for every transfer up to MDTS here
//! (at most [`PRP_LIST_ENTRIES`] pages after the first).

use crate::addr::Iova;

/// Memory page size (CC.MPS = 0).
pub const PAGE: u64 = 4096;
/// [`PAGE`] as a buffer length.
pub const PAGE_BYTES: usize = 4096;
/// Entries in one PRP list page.
pub const PRP_LIST_ENTRIES: usize = (PAGE / 8) as usize;

/// How PRP2 is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prp2 {
    None,
    Page(Iova),
    /// PRP2 points at a list; this many entries were written into it.
    List(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prp {
    pub prp1: Iova,
    pub prp2: Prp2,
}

/// Why a transfer cannot be described.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PrpError {
    #[error("transfer start {0:?} is not dword aligned")]
    Misaligned(Iova),
    #[error("transfer of {len} bytes needs {pages} list entries, more than one PRP list page holds ({PRP_LIST_ENTRIES})")]
    TooLong { len: usize, pages: usize },
    #[error("empty transfer")]
    Empty,
}

/// Builds the PRP entries for `len` bytes starting at `start`, a range that is
/// contiguous in device address space. List entries go into `list`.
pub fn build(start: Iova, len: usize, list: &mut [u64; PRP_LIST_ENTRIES]) -> Result<Prp, PrpError> {
    if len == 0 {
        return Err(PrpError::Empty);
    }
    if start.0 % 4 != 0 {
        return Err(PrpError::Misaligned(start));
    }
    let first_room = PAGE - start.page_offset(PAGE);
    let len64 = len as u64;
    if len64 <= first_room {
        return Ok(Prp { prp1: start, prp2: Prp2::None });
    }
    let second_page = start.0 - start.page_offset(PAGE) + PAGE;
    let rest = len64 - first_room;
    let pages = usize::try_from(rest.div_ceil(PAGE)).unwrap_or(usize::MAX);
    if pages == 1 {
        return Ok(Prp { prp1: start, prp2: Prp2::Page(Iova(second_page)) });
    }
    if pages > PRP_LIST_ENTRIES {
        return Err(PrpError::TooLong { len, pages });
    }
    for (i, e) in list.iter_mut().take(pages).enumerate() {
        *e = second_page + i as u64 * PAGE;
    }
    Ok(Prp { prp1: start, prp2: Prp2::List(pages) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l() -> [u64; PRP_LIST_ENTRIES] {
        [0; PRP_LIST_ENTRIES]
    }

    #[test]
    fn within_one_page() {
        assert_eq!(build(Iova(0x10000), 4096, &mut l()).unwrap().prp2, Prp2::None);
        assert_eq!(build(Iova(0x10200), 512, &mut l()).unwrap().prp2, Prp2::None);
    }

    #[test]
    fn crossing_into_second_page() {
        let p = build(Iova(0x10000), 8192, &mut l()).unwrap();
        assert_eq!(p.prp2, Prp2::Page(Iova(0x11000)));
        // An offset start that spills 1 byte into the next page.
        let p = build(Iova(0x10ffc), 8, &mut l()).unwrap();
        assert_eq!(p.prp2, Prp2::Page(Iova(0x11000)));
    }

    #[test]
    fn list_for_three_or_more_pages() {
        let mut list = l();
        let p = build(Iova(0x10800), 3 * 4096, &mut list).unwrap();
        // 2048 bytes in the first page, then 10240 bytes: 3 more pages.
        assert_eq!(p.prp2, Prp2::List(3));
        assert_eq!(&list[..3], &[0x11000, 0x12000, 0x13000]);
    }

    #[test]
    fn boundaries_and_errors() {
        assert_eq!(build(Iova(0x10001), 4, &mut l()), Err(PrpError::Misaligned(Iova(0x10001))));
        assert_eq!(build(Iova(0x10000), 0, &mut l()), Err(PrpError::Empty));
        let max = (PRP_LIST_ENTRIES + 1) * 4096;
        assert!(matches!(build(Iova(0x10000), max, &mut l()), Ok(Prp { prp2: Prp2::List(PRP_LIST_ENTRIES), .. })));
        assert!(matches!(build(Iova(0x10000), max + 1, &mut l()), Err(PrpError::TooLong { .. })));
    }
}
