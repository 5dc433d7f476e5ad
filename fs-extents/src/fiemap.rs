//! Extent maps of files on a mounted file system, from the FIEMAP ioctl
//! (FIEMAP_FLAG_SYNC, so delayed allocations are flushed first), with
//! physical offsets moved onto the device the driver reads.

use crate::addr::{DevOffset, FileOffset};
use crate::device::{self, DeviceError, DeviceTarget};
use crate::ext4::EXTENTS_MAX;
use crate::map::{ChangeStamp, Extent, ExtentKind, ExtentMap, MapError};
use crate::sys;
use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// `fm_flags`: sync the file before mapping.
pub const FIEMAP_FLAG_SYNC: u32 = 0x1;

/// `fe_flags` bits (linux/fiemap.h).
pub mod extent_flags {
    /// Last extent of the file.
    pub const LAST: u32 = 0x1;
    /// Location unknown.
    pub const UNKNOWN: u32 = 0x2;
    /// Delayed allocation: no blocks yet.
    pub const DELALLOC: u32 = 0x4;
    /// Data is encoded (compressed).
    pub const ENCODED: u32 = 0x8;
    /// Data is encrypted.
    pub const DATA_ENCRYPTED: u32 = 0x80;
    /// Data not block-aligned.
    pub const NOT_ALIGNED: u32 = 0x100;
    /// Data in a metadata block.
    pub const DATA_INLINE: u32 = 0x200;
    /// Several files' tails in one block.
    pub const DATA_TAIL: u32 = 0x400;
    /// Allocated, not written: reads as zeros.
    pub const UNWRITTEN: u32 = 0x800;
    /// Unreadable by a driver: the bytes on the device are not the file's bytes.
    pub const UNREADABLE: u32 = ENCODED | DATA_ENCRYPTED | NOT_ALIGNED | DATA_INLINE | DATA_TAIL;
}

/// Most FIEMAP calls one map may take.
pub const FIEMAP_CALLS_MAX: usize = EXTENTS_MAX / crate::sys::FIEMAP_CHUNK_EXTENTS + 1;

/// What went wrong mapping a file through FIEMAP.
#[derive(Debug, thiserror::Error)]
pub enum FiemapError {
    /// Opening or stat-ing the file failed.
    #[error("opening {path}")]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// fstat of the open file failed.
    #[error("fstat of the open file failed: {0}")]
    Stat(io::Error),
    /// The ioctl failed.
    #[error("FIEMAP failed: {0} (EOPNOTSUPP: the file system has no FIEMAP; use the ext4 reader)")]
    Ioctl(io::Error),
    /// Bytes the driver cannot read directly.
    #[error("extent at file offset {logical} has FIEMAP flags {flags:#x}: inline, tail-packed, encrypted or compressed data cannot be read from the device")]
    Unreadable {
        /// Where.
        logical: FileOffset,
        /// Its flags.
        flags: u32,
    },
    /// No physical location even after a sync.
    #[error("extent at file offset {logical} has no physical location (flags {flags:#x}); the file is being written, retry")]
    Unallocated {
        /// Where.
        logical: FileOffset,
        /// Its flags.
        flags: u32,
    },
    /// The kernel answered with no extent past the one asked for.
    #[error("FIEMAP at file offset {0} returned no new extent and no last-extent flag; the file system misreports its extents")]
    NoProgress(FileOffset),
    /// More extents than [`EXTENTS_MAX`].
    #[error("more than {EXTENTS_MAX} extents; defragment the file")]
    TooManyExtents,
    /// The device could not be found.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// The extents do not form a valid map.
    #[error(transparent)]
    Map(#[from] MapError),
}

/// The change stamp of an open file: fstat plus FS_IOC_GETVERSION where the
/// file system supports it.
pub fn stamp(file: &File) -> io::Result<ChangeStamp> {
    let md = file.metadata()?;
    Ok(ChangeStamp { size: md.size(), ctime_sec: md.ctime(), ctime_nsec: u32::try_from(md.ctime_nsec()).unwrap_or(0), generation: sys::inode_generation(file.as_fd()).ok() })
}

/// The extents of an open file, physical offsets relative to its file
/// system's block device (not yet moved by a [`DeviceTarget`] base).
pub fn raw_extents(file: &File) -> Result<Vec<Extent>, FiemapError> {
    collect_extents(|buf| sys::fiemap(file.as_fd(), buf))
}

/// The FIEMAP loop, with the ioctl as a parameter so tests can script the
/// kernel's answers.
fn collect_extents(mut fiemap: impl FnMut(&mut sys::FiemapBuf) -> io::Result<()>) -> Result<Vec<Extent>, FiemapError> {
    let mut buf = sys::FiemapBuf::new();
    let mut out = Vec::new();
    let mut next = 0u64;
    for _ in 0..FIEMAP_CALLS_MAX {
        buf.header =
            sys::FiemapHeader { fm_start: next, fm_length: u64::MAX - next, fm_flags: FIEMAP_FLAG_SYNC, fm_extent_count: sys::FIEMAP_CHUNK_EXTENTS_U32, ..Default::default() };
        fiemap(&mut buf).map_err(FiemapError::Ioctl)?;
        let mapped = usize::try_from(buf.header.fm_mapped_extents).unwrap_or(usize::MAX).min(sys::FIEMAP_CHUNK_EXTENTS);
        if mapped == 0 {
            return Ok(out);
        }
        let mut last = false;
        let before = next;
        for fe in &buf.extents[..mapped] {
            let logical = FileOffset(fe.fe_logical);
            if fe.fe_flags & extent_flags::UNREADABLE != 0 {
                return Err(FiemapError::Unreadable { logical, flags: fe.fe_flags });
            }
            if fe.fe_flags & (extent_flags::UNKNOWN | extent_flags::DELALLOC) != 0 {
                return Err(FiemapError::Unallocated { logical, flags: fe.fe_flags });
            }
            last |= fe.fe_flags & extent_flags::LAST != 0;
            let end = fe.fe_logical.checked_add(fe.fe_length).ok_or(MapError::Overflow(logical))?;
            if end <= next || fe.fe_length == 0 {
                continue; // already seen (an extent straddling fm_start is reported again)
            }
            if out.len() >= EXTENTS_MAX {
                return Err(FiemapError::TooManyExtents);
            }
            out.push(Extent {
                logical,
                physical: DevOffset(fe.fe_physical),
                len: fe.fe_length,
                kind: if fe.fe_flags & extent_flags::UNWRITTEN != 0 { ExtentKind::Unwritten } else { ExtentKind::Written },
            });
            next = end;
        }
        if last {
            return Ok(out);
        }
        if next == before {
            return Err(FiemapError::NoProgress(FileOffset(next)));
        }
    }
    Err(FiemapError::TooManyExtents)
}

/// The device holding an open file's file system (via `/sys`).
pub fn device_of(file: &File) -> Result<DeviceTarget, FiemapError> {
    let dev = file.metadata().map_err(FiemapError::Stat)?.dev();
    Ok(device::resolve(Path::new("/sys"), libc::major(dev), libc::minor(dev))?)
}

/// Builds the map of an open file whose file system sits at `device.base`.
pub fn map_file(file: &File, device: &DeviceTarget) -> Result<ExtentMap, FiemapError> {
    let before = stamp(file).map_err(FiemapError::Stat)?;
    let block_size = file.metadata().map_err(FiemapError::Stat)?.blksize();
    let mut extents = raw_extents(file)?;
    for e in &mut extents {
        e.physical = e.physical.checked_add(device.base.0).ok_or(MapError::Overflow(e.logical))?;
    }
    Ok(ExtentMap::new(extents, before.size, block_size, before)?)
}

/// A file mapped through FIEMAP, kept open so its map can be refreshed.
#[derive(Debug)]
pub struct TrackedFile {
    file: File,
    device: DeviceTarget,
    map: Arc<ExtentMap>,
}

impl TrackedFile {
    /// Opens `path` read-only, finds its device and reads its map.
    pub fn open(path: &Path) -> Result<Self, FiemapError> {
        let file = File::open(path).map_err(|source| FiemapError::Open { path: path.to_owned(), source })?;
        let device = device_of(&file)?;
        let map = Arc::new(map_file(&file, &device)?);
        Ok(Self { file, device, map })
    }

    /// The current map.
    pub fn map(&self) -> &Arc<ExtentMap> {
        &self.map
    }

    /// The device the map's physical offsets point into.
    pub fn device(&self) -> &DeviceTarget {
        &self.device
    }

    /// Cheap check (one fstat, one ioctl): whether size, change time or
    /// generation differ from when the map was read.
    pub fn may_have_changed(&self) -> io::Result<bool> {
        Ok(stamp(&self.file)? != self.map.stamp())
    }

    /// Re-reads the extents. Returns whether the version changed (it does
    /// when the extents or the size differ).
    pub fn refresh(&mut self) -> Result<bool, FiemapError> {
        let fresh = self.map.refreshed(map_file(&self.file, &self.device)?);
        let bumped = fresh.version() != self.map.version();
        self.map = Arc::new(fresh);
        Ok(bumped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::{FiemapBuf, FiemapExtent};

    fn fe(logical: u64, physical: u64, len: u64, flags: u32) -> FiemapExtent {
        FiemapExtent { fe_logical: logical, fe_physical: physical, fe_length: len, fe_flags: flags, ..Default::default() }
    }

    /// A fake kernel answering from `extents`, at most `per_call` at a time.
    /// It also repeats the extent that ends exactly at `fm_start` (a kernel
    /// may report an extent touching the range again).
    fn kernel(extents: Vec<FiemapExtent>, per_call: usize) -> impl FnMut(&mut FiemapBuf) -> io::Result<()> {
        move |buf| {
            let start = buf.header.fm_start;
            let found: Vec<_> =
                extents.iter().filter(|e| e.fe_logical + e.fe_length > start || (start > 0 && e.fe_logical + e.fe_length == start)).take(per_call).copied().collect();
            buf.header.fm_mapped_extents = u32::try_from(found.len()).expect("few");
            buf.extents[..found.len()].copy_from_slice(&found);
            Ok(())
        }
    }

    #[test]
    fn loops_over_chunks_until_the_last_extent() {
        let all: Vec<_> = (0..10u64).map(|i| fe(i * 8192, (1 << 20) | (i * 4096), 4096, if i == 9 { extent_flags::LAST } else { 0 })).collect();
        let got = collect_extents(kernel(all, 3)).expect("valid answers");
        assert_eq!(got.len(), 10);
        assert_eq!(got[9].logical, FileOffset(9 * 8192));
        assert!(got.iter().all(|e| e.kind == ExtentKind::Written));
    }

    #[test]
    fn repeated_extent_is_not_counted_twice_and_unwritten_is_kept() {
        let all = vec![fe(0, 4096, 16384, 0), fe(16384, 65536, 4096, 0), fe(20480, 131072, 4096, extent_flags::UNWRITTEN | extent_flags::LAST)];
        let mut calls = 0;
        let mut k = kernel(all, 2);
        let got = collect_extents(|buf| {
            calls += 1;
            k(buf)
        })
        .expect("valid answers");
        assert_eq!(calls, 2);
        assert_eq!(got.len(), 3, "the extent repeated in the second answer is counted once");
        assert_eq!(got[2].kind, ExtentKind::Unwritten);
    }

    #[test]
    fn a_kernel_that_makes_no_progress_is_an_error() {
        let all = vec![fe(0, 4096, 16384, 0), fe(16384, 65536, 4096, extent_flags::LAST)];
        let r = collect_extents(kernel(all, 1));
        assert!(matches!(r, Err(FiemapError::NoProgress(FileOffset(16384)))), "{r:?}");
    }

    #[test]
    fn empty_file_maps_to_no_extents() {
        assert!(collect_extents(kernel(vec![], 8)).expect("empty").is_empty());
    }

    #[test]
    fn unreadable_and_unallocated_extents_are_errors() {
        for flags in [extent_flags::DATA_INLINE, extent_flags::DATA_ENCRYPTED, extent_flags::ENCODED, extent_flags::DATA_TAIL] {
            let r = collect_extents(kernel(vec![fe(0, 0, 4096, flags | extent_flags::LAST)], 8));
            assert!(matches!(r, Err(FiemapError::Unreadable { .. })), "flags {flags:#x}");
        }
        let r = collect_extents(kernel(vec![fe(0, 0, 4096, extent_flags::DELALLOC | extent_flags::LAST)], 8));
        assert!(matches!(r, Err(FiemapError::Unallocated { .. })));
        let r = collect_extents(|_: &mut FiemapBuf| Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP)));
        let e = r.expect_err("ioctl failure");
        assert!(e.to_string().contains("ext4 reader"), "{e}");
    }
}
