//! A fixed-size, 8-byte aligned, zeroed block of host memory that a BPF
//! program may read and write through raw addresses while the host keeps a
//! handle to it: map values, globals, the interpreter's scratch, the context.
//!
//! The bytes live in `Cell<u64>` words, so writes through the addresses handed
//! to a program do not alias any `&`/`&mut` the host holds: the host only ever
//! copies in and out through [`Region::read`] and [`Region::write`]. A region
//! never moves or resizes, so an address stays valid for its whole life.

use std::cell::Cell;

use crate::context::{XrpContext, CTX_SIZE};

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
    words: Box<[Cell<u64>]>,
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
        Region { words: (0..words).map(|_| Cell::new(0)).collect(), size }
    }

    /// Size in bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Host address of byte 0, as a program sees it.
    pub fn addr(&self) -> u64 {
        self.ptr() as u64
    }

    fn ptr(&self) -> *mut u8 {
        // Derived from the slice pointer: provenance over all words; writing
        // through it is allowed because the words are `Cell`s.
        self.words.as_ptr().cast::<u8>().cast_mut()
    }

    fn check(&self, offset: usize, len: usize) -> Result<(), OutOfRegion> {
        match offset.checked_add(len) {
            Some(end) if end <= self.size => Ok(()),
            _ => Err(OutOfRegion { offset, len, size: self.size }),
        }
    }

    /// Copies `out.len()` bytes starting at `offset` into `out`.
    pub fn read(&self, offset: usize, out: &mut [u8]) -> Result<(), OutOfRegion> {
        self.check(offset, out.len())?;
        // SAFETY: offset..offset+len lies inside the allocation (checked
        // above); the words are `Cell`s, so no reference to them is
        // invalidated, and `out` is a distinct `&mut` buffer.
        let src = self.ptr().wrapping_add(offset);
        // SAFETY: see above.
        unsafe { std::ptr::copy_nonoverlapping(src, out.as_mut_ptr(), out.len()) };
        Ok(())
    }

    /// Copies `bytes` into the region starting at `offset`.
    pub fn write(&self, offset: usize, bytes: &[u8]) -> Result<(), OutOfRegion> {
        self.check(offset, bytes.len())?;
        // SAFETY: in bounds (checked above); interior mutability through
        // `Cell` words makes writing through `&self` sound; `bytes` cannot
        // overlap the region because a `&[u8]` into it is never handed out.
        let dst = self.ptr().wrapping_add(offset);
        // SAFETY: see above.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), dst, bytes.len()) };
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
        self.check(offset, len)?;
        // SAFETY: in bounds (checked above); `Cell` words allow the write.
        let dst = self.ptr().wrapping_add(offset);
        // SAFETY: see above.
        unsafe { std::ptr::write_bytes(dst, 0, len) };
        Ok(())
    }

    /// Reads the context stored at offset 0 (the region must hold CTX_SIZE bytes).
    pub fn read_ctx(&self) -> Result<XrpContext, OutOfRegion> {
        self.check(0, CTX_SIZE)?;
        // SAFETY: CTX_SIZE bytes are in bounds (checked); the words are
        // 8-aligned, XrpContext's alignment; every bit pattern is a valid
        // XrpContext (integers only); `Cell` words allow the shared read.
        Ok(unsafe { std::ptr::read(self.ptr().cast::<XrpContext>()) })
    }

    /// Writes `ctx` at offset 0 (the region must hold CTX_SIZE bytes).
    pub fn write_ctx(&self, ctx: &XrpContext) -> Result<(), OutOfRegion> {
        self.check(0, CTX_SIZE)?;
        // SAFETY: in bounds and aligned as in `read_ctx`; `Cell` words allow
        // the write through `&self`.
        unsafe { std::ptr::write(self.ptr().cast::<XrpContext>(), *ctx) };
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
        assert_eq!(r.addr() % 8, 0);
    }

    #[test]
    fn context_round_trip_matches_byte_layout() {
        let r = Region::zeroed(CTX_SIZE);
        let mut c = XrpContext { data: 1, done: 2, scratch: 3, ..Default::default() };
        c.next_addr[1] = 4;
        r.write_ctx(&c).unwrap();
        assert_eq!(r.to_vec(0, CTX_SIZE).unwrap(), c.to_bytes().to_vec());
        assert_eq!(r.read_ctx().unwrap().next_addr[1], 4);
        assert!(Region::zeroed(8).read_ctx().is_err());
    }
}
