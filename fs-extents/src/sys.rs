//! The two ioctls this crate makes, and the only `unsafe` in it.
//! Structures from `linux/fiemap.h` (Documentation/filesystems/fiemap.rst).

use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, BorrowedFd};

/// `struct fiemap` without its flexible array.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FiemapHeader {
    pub fm_start: u64,
    pub fm_length: u64,
    pub fm_flags: u32,
    pub fm_mapped_extents: u32,
    pub fm_extent_count: u32,
    pub fm_reserved: u32,
}
const _: () = assert!(size_of::<FiemapHeader>() == 32);

/// `struct fiemap_extent`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FiemapExtent {
    pub fe_logical: u64,
    pub fe_physical: u64,
    pub fe_length: u64,
    pub fe_reserved64: [u64; 2],
    pub fe_flags: u32,
    pub fe_reserved: [u32; 3],
}
const _: () = assert!(size_of::<FiemapExtent>() == 56);

/// Extents asked for per FIEMAP call.
pub(crate) const FIEMAP_CHUNK_EXTENTS: usize = 256;
/// The same, as the kernel's `fm_extent_count` type.
pub(crate) const FIEMAP_CHUNK_EXTENTS_U32: u32 = 256;
const _: () = assert!(FIEMAP_CHUNK_EXTENTS_U32 as usize == FIEMAP_CHUNK_EXTENTS);

/// A `struct fiemap` with room for [`FIEMAP_CHUNK_EXTENTS`] extents.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct FiemapBuf {
    pub header: FiemapHeader,
    pub extents: [FiemapExtent; FIEMAP_CHUNK_EXTENTS],
}
const _: () = assert!(std::mem::offset_of!(FiemapBuf, extents) == 32);

impl FiemapBuf {
    pub(crate) fn new() -> Box<Self> {
        Box::new(Self { header: FiemapHeader::default(), extents: [FiemapExtent::default(); FIEMAP_CHUNK_EXTENTS] })
    }
}

/// `_IOWR('f', 11, struct fiemap)`.
pub(crate) const FS_IOC_FIEMAP: libc::c_ulong = (3 << 30) | ((size_of::<FiemapHeader>() as libc::c_ulong) << 16) | ((b'f' as libc::c_ulong) << 8) | 11;
const _: () = assert!(FS_IOC_FIEMAP == 0xC020_660B);

/// Runs FS_IOC_FIEMAP with the request in `buf.header`; the kernel fills in
/// at most `fm_extent_count` (clamped here to the buffer) extents.
pub(crate) fn fiemap(fd: BorrowedFd<'_>, buf: &mut FiemapBuf) -> io::Result<()> {
    buf.header.fm_extent_count = buf.header.fm_extent_count.min(FIEMAP_CHUNK_EXTENTS_U32);
    let ptr: *mut FiemapBuf = buf;
    // SAFETY: `ptr` points at a live, exclusively borrowed `struct fiemap`
    // followed by room for `fm_extent_count` extents (clamped above to the
    // array's length), which is all the kernel writes; the fd is open.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), FS_IOC_FIEMAP as _, ptr) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// FS_IOC_GETVERSION: the inode generation.
pub(crate) fn inode_generation(fd: BorrowedFd<'_>) -> io::Result<u32> {
    // The ioctl is declared with a `long` but file systems store an `int` at
    // its start; zero a `long` and read the first four bytes.
    let mut v: libc::c_long = 0;
    let ptr: *mut libc::c_long = &mut v;
    // SAFETY: `ptr` points at a live `long`, the size the ioctl declares; the fd is open.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::FS_IOC_GETVERSION as _, ptr) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    let bytes = v.to_ne_bytes();
    Ok(u32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}
