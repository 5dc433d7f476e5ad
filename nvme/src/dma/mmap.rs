//! The only place that maps memory for DMA: anonymous 2 MiB hugepages, or
//! ordinary pages locked in memory when no hugepages are reserved.

use std::io;
use std::ptr::NonNull;

/// Size of one hugepage and of one chunk of the pool.
pub const HUGEPAGE_SIZE: usize = 2 << 20;

/// An owned anonymous mapping, unmapped on drop.
#[derive(Debug)]
pub struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
    pub hugepages: bool,
}

// SAFETY: the mapping is plain process memory owned by this value; moving the
// owner between threads does not change what the memory is.
unsafe impl Send for Mapping {}
// SAFETY: `Mapping` hands out only raw pointers; every access through them is
// made by code that documents its own synchronisation (rings use atomics,
// buffers are owned by one command at a time).
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps `len` bytes (a multiple of [`HUGEPAGE_SIZE`]) of hugepages, or
    /// locked ordinary pages if `allow_fallback` and no hugepage is free.
    pub fn new(len: usize, allow_fallback: bool) -> io::Result<Mapping> {
        assert!(len > 0 && len % HUGEPAGE_SIZE == 0, "mapping length must be whole hugepages");
        match map(len, libc::MAP_HUGETLB) {
            Ok(ptr) => Ok(Mapping { ptr, len, hugepages: true }),
            Err(huge_err) if allow_fallback => {
                let ptr = map(len, 0).map_err(|e| io::Error::new(e.kind(), format!("mmap of {len} bytes failed: {e} (hugepages: {huge_err})")))?;
                // SAFETY: `ptr` is a fresh mapping of exactly `len` bytes.
                let locked = unsafe { libc::mlock(ptr.as_ptr().cast(), len) } == 0;
                let _ = locked; // Unlocked pages still work for the emulated device; VFIO pins pages itself.
                Ok(Mapping { ptr, len, hugepages: false })
            }
            Err(e) => Err(e),
        }
    }

    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// A mapping that no device is ever given: plain process memory (an
/// emulated namespace's bytes), so borrowing it as a slice is sound.
#[derive(Debug)]
pub struct PrivateMemory {
    map: Mapping,
    len: usize,
}

impl PrivateMemory {
    /// `len` bytes (rounded up to whole hugepages in the mapping) of 2 MiB
    /// hugepages, zero-filled; an error when not enough hugepages are free.
    pub fn hugepages(len: usize) -> io::Result<PrivateMemory> {
        let whole = len.max(1).div_ceil(HUGEPAGE_SIZE) * HUGEPAGE_SIZE;
        Ok(PrivateMemory { map: Mapping::new(whole, false)?, len })
    }

    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: `len` bytes of a live anonymous mapping owned by `self`
        // (fresh mappings are zero-filled, so every byte is initialised);
        // no device is given its address, so only Rust code touches it, and
        // `&self` rules out a writer.
        unsafe { std::slice::from_raw_parts(self.map.as_ptr(), self.len) }
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_slice`, with `&mut self` making the borrow unique.
        unsafe { std::slice::from_raw_parts_mut(self.map.as_ptr(), self.len) }
    }
}

fn map(len: usize, extra_flags: libc::c_int) -> io::Result<NonNull<u8>> {
    // SAFETY: an anonymous private mapping with no address hint touches no
    // existing memory; the result is checked against MAP_FAILED below.
    let p = unsafe { libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE | extra_flags, -1, 0) };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned null"))
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` describe a mapping this value owns; nothing can
        // use it after drop because all users hold the pool (and thus this
        // mapping) alive through an `Arc`.
        let rc = unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
        debug_assert_eq!(rc, 0, "munmap failed");
    }
}

/// Copies `len` bytes between raw addresses inside mappings.
///
/// # Safety
/// Both ranges must lie inside live mappings and must not overlap.
pub unsafe fn copy(src: *const u8, dst: *mut u8, len: usize) {
    // SAFETY: guaranteed by the caller.
    unsafe { std::ptr::copy_nonoverlapping(src, dst, len) }
}

/// Reads a little-endian u16 with acquire ordering (the phase tag of a CQE).
///
/// # Safety
/// `p` must be 2-byte aligned and inside a live mapping.
pub unsafe fn load_u16_acquire(p: *const u8) -> u16 {
    // SAFETY: aligned and live per the caller; AtomicU16 has u16's layout.
    let a = unsafe { std::sync::atomic::AtomicU16::from_ptr(p.cast_mut().cast()) };
    u16::from_le(a.load(std::sync::atomic::Ordering::Acquire))
}

/// Writes a little-endian u16 with release ordering, after which the bytes
/// written before it are visible to an acquiring reader.
///
/// # Safety
/// `p` must be 2-byte aligned and inside a live mapping.
pub unsafe fn store_u16_release(p: *mut u8, v: u16) {
    // SAFETY: aligned and live per the caller.
    let a = unsafe { std::sync::atomic::AtomicU16::from_ptr(p.cast()) };
    a.store(v.to_le(), std::sync::atomic::Ordering::Release);
}

/// Fills `len` bytes at `p` with `byte`.
///
/// # Safety
/// The range must lie inside a live mapping.
pub unsafe fn fill(p: *mut u8, byte: u8, len: usize) {
    // SAFETY: guaranteed by the caller.
    unsafe { std::ptr::write_bytes(p, byte, len) }
}
