//! A newtype per address space (STYLE item 2): what the device sees (`Iova`)
//! and what the namespace counts in (`Lba`). Translation is a function.

use core::fmt;

/// An address as the device sees it (I/O virtual address). For the emulated
/// controller it equals the host virtual address; under VFIO it is what the
/// IOMMU maps; under uio it is a physical address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Iova(pub u64);

impl Iova {
    pub fn checked_add(self, n: u64) -> Option<Iova> {
        self.0.checked_add(n).map(Iova)
    }
    /// Offset within a memory page of `page` bytes (a power of two).
    pub fn page_offset(self, page: u64) -> u64 {
        debug_assert!(page.is_power_of_two());
        self.0 & (page - 1)
    }
}

impl fmt::Debug for Iova {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Iova({:#x})", self.0)
    }
}

/// A logical block address within a namespace.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Debug)]
pub struct Lba(pub u64);

impl Lba {
    pub fn checked_add(self, n: u64) -> Option<Lba> {
        self.0.checked_add(n).map(Lba)
    }
    /// The byte offset of this block for blocks of `block_size` bytes.
    pub fn to_bytes(self, block_size: u32) -> Option<u64> {
        self.0.checked_mul(u64::from(block_size))
    }
    /// The block holding byte `offset`, if it is block aligned.
    pub fn from_bytes(offset: u64, block_size: u32) -> Option<Lba> {
        (offset % u64::from(block_size) == 0).then(|| Lba(offset / u64::from(block_size)))
    }
}

impl fmt::Display for Lba {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
