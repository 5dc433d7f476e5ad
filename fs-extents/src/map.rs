//! The extent map of one file and the translation of file ranges to device
//! ranges.
//!
//! Defined answers (see docs/fs-extents.md):
//! - A range must lie inside `[0, access_limit)`, where the access limit is the
//!   file size rounded up to the block size (the file owns its last block).
//!   Anything else, including a zero-length range, is an access error.
//! - A hole or an unwritten (preallocated) extent reads as zeros: the segment's
//!   target is [`Target::Zeros`], the reader fills its buffer, no device read.
//! - [`ExtentMap::translate`] is the fast path: the range must sit in one extent
//!   (or one hole) or it returns [`TranslateError::CrossesExtent`] naming the
//!   boundary. [`ExtentMap::segments`] splits a range at extent boundaries
//!   without allocating.

use crate::addr::{DevOffset, FileOffset};

/// Smallest block size a map accepts, in bytes.
pub const BLOCK_SIZE_MIN_BYTES: u64 = 512;
/// Largest block size a map accepts, in bytes (ext4 allows 64 KiB).
pub const BLOCK_SIZE_MAX_BYTES: u64 = 65536;

/// Whether an extent's blocks hold data or are allocated but never written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExtentKind {
    /// The device holds the file's bytes.
    Written,
    /// Allocated but unwritten (fallocate): reads as zeros.
    Unwritten,
}

/// One run of bytes that is contiguous both in the file and on the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Extent {
    /// Where the run starts in the file.
    pub logical: FileOffset,
    /// Where it starts on the device.
    pub physical: DevOffset,
    /// Its length in bytes (never 0).
    pub len: u64,
    /// Written or unwritten.
    pub kind: ExtentKind,
}

/// What tells whether a file may have changed since its map was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ChangeStamp {
    /// File size in bytes.
    pub size: u64,
    /// Inode change time, seconds.
    pub ctime_sec: i64,
    /// Inode change time, nanoseconds.
    pub ctime_nsec: u32,
    /// Inode generation, where the file system reports one.
    pub generation: Option<u32>,
}

/// Where the bytes of a segment come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// Read them from the device at this offset.
    Device(DevOffset),
    /// A hole or an unwritten extent: they are zeros, do not read the device.
    Zeros,
}

/// A piece of a translated range that needs one device read (or none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Segment {
    /// Start of the piece in the file.
    pub file: FileOffset,
    /// Its length in bytes.
    pub len: u64,
    /// Where its bytes are.
    pub target: Target,
}

/// A list of extents that cannot form a map.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    /// The block size is not a power of two in the accepted range.
    #[error("block size {0} bytes is not a power of two between {BLOCK_SIZE_MIN_BYTES} and {BLOCK_SIZE_MAX_BYTES}")]
    BadBlockSize(u64),
    /// An extent of length 0.
    #[error("extent at file offset {0} has length 0; drop empty extents before building a map")]
    EmptyExtent(FileOffset),
    /// Two extents cover the same file bytes.
    #[error("extents at file offsets {first} and {second} overlap; the source is corrupt")]
    Overlap {
        /// The earlier extent.
        first: FileOffset,
        /// The one that starts inside it.
        second: FileOffset,
    },
    /// An extent's end does not fit in 64 bits.
    #[error("extent at file offset {0} ends beyond 2^64 bytes; the source is corrupt")]
    Overflow(FileOffset),
}

/// A range that cannot be translated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranslateError {
    /// Length 0.
    #[error("read of 0 bytes at file offset {off}; give a length of at least 1")]
    EmptyRange {
        /// The offset asked for.
        off: FileOffset,
    },
    /// The range leaves the file: an access error.
    #[error("access error: {len} bytes at file offset {off} leave the file (size {size} bytes, readable up to {limit})")]
    PastEof {
        /// The offset asked for.
        off: FileOffset,
        /// The length asked for.
        len: u64,
        /// The file size.
        size: u64,
        /// The access limit (size rounded up to the block size).
        limit: FileOffset,
    },
    /// The range crosses from one extent (or hole) into the next.
    #[error("{len} bytes at file offset {off} cross an extent boundary at {boundary}; split the read there or use segments()")]
    CrossesExtent {
        /// The offset asked for.
        off: FileOffset,
        /// The length asked for.
        len: u64,
        /// The first byte not in the extent that holds `off`.
        boundary: FileOffset,
    },
}

/// The extents of one file, sorted, with its size, block size and version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtentMap {
    /// `extents[i].logical`, kept apart so the binary search touches dense memory.
    starts: Vec<u64>,
    extents: Vec<Extent>,
    size: u64,
    limit: u64,
    block_size: u64,
    version: u64,
    stamp: ChangeStamp,
}

impl ExtentMap {
    /// Builds a map at version 1. Extents may come in any order; neighbours
    /// that are contiguous in the file and on the device, of the same kind,
    /// are merged, so two sources that split runs differently give equal maps.
    pub fn new(mut extents: Vec<Extent>, size: u64, block_size: u64, stamp: ChangeStamp) -> Result<Self, MapError> {
        if !block_size.is_power_of_two() || !(BLOCK_SIZE_MIN_BYTES..=BLOCK_SIZE_MAX_BYTES).contains(&block_size) {
            return Err(MapError::BadBlockSize(block_size));
        }
        extents.sort_unstable_by_key(|e| e.logical);
        let mut merged: Vec<Extent> = Vec::with_capacity(extents.len());
        for e in extents {
            if e.len == 0 {
                return Err(MapError::EmptyExtent(e.logical));
            }
            if e.logical.checked_add(e.len).is_none() || e.physical.checked_add(e.len).is_none() {
                return Err(MapError::Overflow(e.logical));
            }
            if let Some(last) = merged.last_mut() {
                // Cannot overflow: checked for `last` when it was pushed.
                let last_end = last.logical.0 + last.len;
                if e.logical.0 < last_end {
                    return Err(MapError::Overlap { first: last.logical, second: e.logical });
                }
                if e.logical.0 == last_end && e.physical.0 == last.physical.0 + last.len && e.kind == last.kind {
                    last.len += e.len;
                    continue;
                }
            }
            merged.push(e);
        }
        let limit = size.checked_next_multiple_of(block_size).unwrap_or(u64::MAX - (block_size - 1));
        Ok(Self { starts: merged.iter().map(|e| e.logical.0).collect(), extents: merged, size, limit, block_size, version: 1, stamp })
    }

    /// The sorted, merged extents.
    pub fn extents(&self) -> &[Extent] {
        &self.extents
    }

    /// File size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// First byte no range may reach: the size rounded up to the block size.
    pub fn access_limit(&self) -> FileOffset {
        FileOffset(self.limit)
    }

    /// The file system block size in bytes.
    pub fn block_size(&self) -> u64 {
        self.block_size
    }

    /// The version; starts at 1, bumped by [`ExtentMap::refreshed`] when the layout changes.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The change stamp the map was read with.
    pub fn stamp(&self) -> ChangeStamp {
        self.stamp
    }

    /// Same extents and same size (version and stamp aside).
    pub fn same_layout(&self, other: &Self) -> bool {
        self.size == other.size && self.block_size == other.block_size && self.extents == other.extents
    }

    /// Turns a freshly read map into the successor of `self`: it keeps
    /// `self`'s version if the layout is the same, and gets the next version
    /// otherwise. The stamp is always the fresh one.
    pub fn refreshed(&self, mut fresh: Self) -> Self {
        fresh.version = if self.same_layout(&fresh) { self.version } else { self.version + 1 };
        fresh
    }

    /// Translates a range that lies in one extent or one hole (the fast path:
    /// one binary search, no allocation).
    #[inline]
    pub fn translate(&self, off: FileOffset, len: u64) -> Result<Segment, TranslateError> {
        let seg = self.translate_prefix(off, len)?;
        if seg.len == len {
            Ok(seg)
        } else {
            Err(TranslateError::CrossesExtent { off, len, boundary: FileOffset(off.0 + seg.len) })
        }
    }

    /// Translates the longest prefix of the range that lies in one extent or
    /// one hole. The segment's `len` is at most `len`.
    #[inline]
    pub fn translate_prefix(&self, off: FileOffset, len: u64) -> Result<Segment, TranslateError> {
        if len == 0 {
            return Err(TranslateError::EmptyRange { off });
        }
        let end = match off.0.checked_add(len) {
            Some(end) if end <= self.limit => end,
            _ => return Err(TranslateError::PastEof { off, len, size: self.size, limit: FileOffset(self.limit) }),
        };
        // Number of extents starting at or before `off`.
        let i = self.starts.partition_point(|&s| s <= off.0);
        if let Some(e) = i.checked_sub(1).map(|j| &self.extents[j]) {
            let e_end = e.logical.0 + e.len;
            if off.0 < e_end {
                let seg_len = end.min(e_end) - off.0;
                let target = match e.kind {
                    // Cannot overflow: `physical + len` was checked in `new`.
                    ExtentKind::Written => Target::Device(DevOffset(e.physical.0 + (off.0 - e.logical.0))),
                    ExtentKind::Unwritten => Target::Zeros,
                };
                return Ok(Segment { file: off, len: seg_len, target });
            }
        }
        let hole_end = self.starts.get(i).copied().unwrap_or(u64::MAX);
        Ok(Segment { file: off, len: end.min(hole_end) - off.0, target: Target::Zeros })
    }

    /// Splits a range at extent boundaries. Yields one error and stops if the
    /// range is empty or leaves the file.
    pub fn segments(&self, off: FileOffset, len: u64) -> Segments<'_> {
        Segments { map: self, off, left: len, first: true }
    }
}

/// Iterator over the segments of a range; see [`ExtentMap::segments`].
#[derive(Debug)]
pub struct Segments<'a> {
    map: &'a ExtentMap,
    off: FileOffset,
    left: u64,
    first: bool,
}

impl Iterator for Segments<'_> {
    type Item = Result<Segment, TranslateError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 && !self.first {
            return None;
        }
        if self.first {
            self.first = false;
            // Check the whole range once, so a range leaving the file yields
            // only an error and no partial segments.
            if let Err(e) = self.map.translate_prefix(self.off, self.left) {
                self.left = 0;
                return Some(Err(e));
            }
        }
        match self.map.translate_prefix(self.off, self.left) {
            Ok(seg) => {
                self.off = FileOffset(self.off.0 + seg.len);
                self.left -= seg.len;
                Some(Ok(seg))
            }
            Err(e) => {
                self.left = 0;
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BS: u64 = 4096;

    fn ext(logical: u64, physical: u64, len: u64, kind: ExtentKind) -> Extent {
        Extent { logical: FileOffset(logical), physical: DevOffset(physical), len, kind }
    }

    /// [0,8K) -> dev 100K; hole [8K,16K); [16K,20K) unwritten; [20K,24K) -> dev 4K; size 22K.
    fn sample() -> ExtentMap {
        let extents = vec![
            ext(20 * 1024, 4096, BS, ExtentKind::Written),
            ext(0, 100 * 1024, BS, ExtentKind::Written),
            ext(BS, 100 * 1024 + BS, BS, ExtentKind::Written),
            ext(16 * 1024, 1 << 20, BS, ExtentKind::Unwritten),
        ];
        ExtentMap::new(extents, 22 * 1024, BS, ChangeStamp::default()).expect("valid extents")
    }

    #[test]
    fn merges_contiguous_neighbours() {
        let m = sample();
        assert_eq!(m.extents().len(), 3);
        assert_eq!(m.extents()[0], ext(0, 100 * 1024, 2 * BS, ExtentKind::Written));
        assert_eq!(m.access_limit(), FileOffset(24 * 1024));
    }

    #[test]
    fn translate_inside_one_extent() {
        let m = sample();
        let s = m.translate(FileOffset(100), 5000).expect("inside first extent");
        assert_eq!(s, Segment { file: FileOffset(100), len: 5000, target: Target::Device(DevOffset(100 * 1024 + 100)) });
        let s = m.translate(FileOffset(21 * 1024), 3 * 1024).expect("last block, past size but inside limit");
        assert_eq!(s.target, Target::Device(DevOffset(4096 + 1024)));
    }

    #[test]
    fn holes_and_unwritten_read_as_zeros() {
        let m = sample();
        let hole = m.translate(FileOffset(9000), 100).expect("hole");
        assert_eq!(hole.target, Target::Zeros);
        let unwritten = m.translate(FileOffset(16 * 1024), BS).expect("unwritten");
        assert_eq!(unwritten.target, Target::Zeros);
    }

    #[test]
    fn crossing_is_an_error_naming_the_boundary() {
        let m = sample();
        let err = m.translate(FileOffset(BS), 2 * BS).unwrap_err();
        assert_eq!(err, TranslateError::CrossesExtent { off: FileOffset(BS), len: 2 * BS, boundary: FileOffset(2 * BS) });
    }

    #[test]
    fn past_eof_and_empty_are_errors() {
        let m = sample();
        assert!(matches!(m.translate(FileOffset(24 * 1024), 1), Err(TranslateError::PastEof { .. })));
        assert!(matches!(m.translate(FileOffset(20 * 1024), BS + 1), Err(TranslateError::PastEof { .. })));
        assert!(matches!(m.translate(FileOffset(u64::MAX), 2), Err(TranslateError::PastEof { .. })));
        assert!(matches!(m.translate(FileOffset(0), 0), Err(TranslateError::EmptyRange { .. })));
    }

    #[test]
    fn segments_split_a_range_and_cover_it() {
        let m = sample();
        let segs: Vec<Segment> = m.segments(FileOffset(4000), 24 * 1024 - 4000).collect::<Result<_, _>>().expect("in file");
        let targets: Vec<(u64, u64, Target)> = segs.iter().map(|s| (s.file.0, s.len, s.target)).collect();
        assert_eq!(
            targets,
            vec![
                (4000, 2 * BS - 4000, Target::Device(DevOffset(100 * 1024 + 4000))),
                (8 * 1024, 8 * 1024, Target::Zeros),
                (16 * 1024, BS, Target::Zeros),
                (20 * 1024, BS, Target::Device(DevOffset(4096))),
            ]
        );
        let errs: Vec<_> = m.segments(FileOffset(0), 25 * 1024).collect();
        assert_eq!(errs.len(), 1);
        assert!(errs[0].is_err());
    }

    #[test]
    fn bad_extent_lists_are_rejected() {
        let st = ChangeStamp::default();
        assert_eq!(ExtentMap::new(vec![], 0, 1000, st).unwrap_err(), MapError::BadBlockSize(1000));
        let overlap = vec![ext(0, 0, 2 * BS, ExtentKind::Written), ext(BS, 9 * BS, BS, ExtentKind::Written)];
        assert!(matches!(ExtentMap::new(overlap, 0, BS, st), Err(MapError::Overlap { .. })));
        assert!(matches!(ExtentMap::new(vec![ext(0, 0, 0, ExtentKind::Written)], 0, BS, st), Err(MapError::EmptyExtent(_))));
        assert!(matches!(ExtentMap::new(vec![ext(0, u64::MAX, 2, ExtentKind::Written)], 0, BS, st), Err(MapError::Overflow(_))));
    }

    #[test]
    fn refresh_bumps_version_only_on_layout_change() {
        let m = sample();
        let same = m.refreshed(sample());
        assert_eq!(same.version(), 1);
        let mut grown = ExtentMap::new(m.extents().to_vec(), 23 * 1024, BS, ChangeStamp { size: 1, ..Default::default() }).expect("valid");
        grown = same.refreshed(grown);
        assert_eq!(grown.version(), 2);
        assert_eq!(grown.refreshed(grown.clone()).version(), 2);
    }

    #[test]
    fn empty_file_has_no_readable_bytes() {
        let m = ExtentMap::new(vec![], 0, BS, ChangeStamp::default()).expect("empty map");
        assert!(matches!(m.translate(FileOffset(0), 1), Err(TranslateError::PastEof { .. })));
    }

    /// The naive answer: walk every byte's owner. Slow, obviously right.
    fn naive(m: &ExtentMap, off: u64, len: u64) -> Result<Segment, TranslateError> {
        if len == 0 {
            return Err(TranslateError::EmptyRange { off: FileOffset(off) });
        }
        if off.checked_add(len).is_none_or(|end| end > m.access_limit().0) {
            return Err(TranslateError::PastEof { off: FileOffset(off), len, size: m.size(), limit: m.access_limit() });
        }
        let owner = |b: u64| m.extents().iter().position(|e| e.logical.0 <= b && b < e.logical.0 + e.len);
        let first = owner(off);
        let mut n = 1;
        while n < len && owner(off + n) == first {
            n += 1;
        }
        let target = match first.map(|i| m.extents()[i]) {
            Some(e) if e.kind == ExtentKind::Written => Target::Device(DevOffset(e.physical.0 + off - e.logical.0)),
            _ => Target::Zeros,
        };
        Ok(Segment { file: FileOffset(off), len: n, target })
    }

    #[test]
    fn translate_prefix_matches_a_naive_model() {
        let mut x = 0x1234_5678_9ABC_DEF1u64;
        let mut rnd = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        for _ in 0..50 {
            let mut extents = Vec::new();
            let mut at = 0;
            for _ in 0..rnd(8) {
                at += rnd(3) * 512;
                let len = (1 + rnd(3)) * 512;
                let kind = if rnd(4) == 0 { ExtentKind::Unwritten } else { ExtentKind::Written };
                extents.push(ext(at, rnd(64) * 512 * 8, len, kind));
                at += len;
            }
            let size = rnd(at + 1024);
            let Ok(m) = ExtentMap::new(extents, size, 512, ChangeStamp::default()) else {
                continue;
            };
            for _ in 0..200 {
                let (off, len) = (rnd(at + 2048), rnd(2048));
                assert_eq!(m.translate_prefix(FileOffset(off), len), naive(&m, off, len), "{m:?} off {off} len {len}");
            }
        }
    }
}
