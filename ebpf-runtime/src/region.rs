//! A fixed-size, 8-byte aligned, zeroed block of host memory that BPF
//! programs on any thread read and write through raw addresses while the host
//! keeps a handle to it: map values and globals.
//!
//! The bytes live in `AtomicU64` words and every host access goes through
//! `progmem` (atomic loads and stores), so the host never holds a `&`/`&mut`
//! to bytes a program may be writing, and a `Region` is `Send + Sync`. A region
//! never moves or resizes, so an address stays valid for its whole life.

use std::sync::atomic::AtomicU64;

use crate::progmem;

/// An access outside a region.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("access of {len} bytes at offset {offset} is outside a region of {size} bytes")]
pub struct OutOfRegion {
    pub offset: usize,
    pub len: usize,
    pub size: usize,
}

/// Owned block of `size` bytes (see the module doc).
pub struct Region {
    words: Box<[AtomicU64]>,
    size: usize,
}

impl std::fmt::Debug for Region {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Region {{ addr: {:#x}, size: {} }}", self.addr(), self.size)
    }
}

impl Region {
    /// A zeroed region of `size` bytes (at least one word is allocated so
    /// that every region has a distinct address).
    pub fn zeroed(size: usize) -> Region {
        let words = size.div_ceil(8).max(1);
        Region { words: (0..words).map(|_| AtomicU64::new(0)).collect(), size }
    }

    /// Size in bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Host address of byte 0, as a program sees it.
    pub fn addr(&self) -> u64 {
        // Derived from the slice pointer: provenance over all words; writes
        // through it are atomic (interior mutability).
        self.words.as_ptr() as u64
    }

    fn check(&self, offset: usize, len: usize) -> Result<u64, OutOfRegion> {
        match offset.checked_add(len) {
            Some(end) if end <= self.size => Ok(self.addr() + offset as u64),
            _ => Err(OutOfRegion { offset, len, size: self.size }),
        }
    }

    /// Copies `out.len()` bytes starting at `offset` into `out`.
    pub fn read(&self, offset: usize, out: &mut [u8]) -> Result<(), OutOfRegion> {
        let addr = self.check(offset, out.len())?;
        // SAFETY: in bounds (checked); the words are atomics, only ever
        // accessed atomically; `out` is a distinct buffer.
        unsafe { progmem::copy_in(addr, out) };
        Ok(())
    }

    /// Copies `bytes` into the region starting at `offset`.
    pub fn write(&self, offset: usize, bytes: &[u8]) -> Result<(), OutOfRegion> {
        let addr = self.check(offset, bytes.len())?;
        // SAFETY: in bounds (checked); atomic words; `bytes` may even point
        // into this region (a copy of a slot onto another), since a `&[u8]`
        // into the region is never handed out, `bytes` is a caller's copy.
        unsafe { progmem::copy_out(addr, bytes) };
        Ok(())
    }

    /// Copies out `len` bytes at `offset`.
    pub fn to_vec(&self, offset: usize, len: usize) -> Result<Vec<u8>, OutOfRegion> {
        let mut v = vec![0u8; len];
        self.read(offset, &mut v)?;
        Ok(v)
    }

    /// Sets `len` bytes at `offset` to zero.
    pub fn zero(&self, offset: usize, len: usize) -> Result<(), OutOfRegion> {
        let addr = self.check(offset, len)?;
        for i in 0..len {
            // SAFETY: in bounds (checked); atomic words.
            unsafe { progmem::store(addr + i as u64, 1, 0) };
        }
        Ok(())
    }

    /// Address range `[addr, addr + size)`.
    pub fn range(&self) -> std::ops::Range<u64> {
        self.addr()..self.addr() + self.size as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_write_are_bounds_checked() {
        let r = Region::zeroed(12);
        r.write(4, &[1, 2, 3, 4, 5, 6, 7, 8]).unwrap();
        assert_eq!(r.to_vec(3, 6).unwrap(), vec![0, 1, 2, 3, 4, 5]);
        assert_eq!(r.write(5, &[0; 8]), Err(OutOfRegion { offset: 5, len: 8, size: 12 }));
        assert!(r.to_vec(usize::MAX, 2).is_err());
        r.zero(5, 2).unwrap();
        assert_eq!(r.to_vec(4, 4).unwrap(), vec![1, 0, 0, 4]);
        assert_eq!(r.addr() % 8, 0);
    }

    #[test]
    fn regions_are_send_and_sync() {
        fn both<T: Send + Sync>() {}
        both::<Region>();
    }
}
