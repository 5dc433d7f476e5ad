//! The ext4 extent tree: a root of up to 4 entries in `i_block`, index nodes
//! and leaves in blocks. Layout: kernel.org "ext4 Data Structures and
//! Algorithms", section "Extent Tree". Every node is checked (magic, entry
//! counts, depth, key order, block bounds) and the walk is bounded, so a
//! corrupt tree gives an error, never a loop or a panic.

use super::source::{le16, le32, ReadAt};
use super::superblock::Superblock;
use super::{read, Ext4Error};

/// `eh_magic`.
pub const EXTENT_MAGIC: u16 = 0xF30A;
/// Deepest tree the kernel builds (`EXT4_MAX_EXTENT_DEPTH`).
pub const DEPTH_MAX: u16 = 5;
/// Most extents one file may have before the reader gives up.
pub const EXTENTS_MAX: usize = 1 << 20;
/// Most tree nodes (index and leaf blocks) one walk reads.
pub const NODES_MAX: usize = 1 << 16;
/// `ee_len` above this marks an unwritten extent of `ee_len - 32768` blocks.
pub const INIT_MAX_LEN: u16 = 32768;

const HEADER_BYTES: usize = 12;
const ENTRY_BYTES: usize = 12;

/// One leaf entry, in blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawExtent {
    /// First logical block.
    pub logical: u32,
    /// First physical block.
    pub physical: u64,
    /// Length in blocks.
    pub len: u32,
    /// Allocated but not written.
    pub unwritten: bool,
}

struct Walk<'a, R: ?Sized> {
    src: &'a R,
    sb: &'a Superblock,
    ino: u32,
    nodes: usize,
    /// First logical block the next extent may use (keeps the order strict).
    next_logical: u64,
    out: Vec<RawExtent>,
}

/// Reads all extents of an inode whose `i_block` holds an extent tree root.
pub fn read_extents<R: ReadAt + ?Sized>(src: &R, sb: &Superblock, ino: u32, root: &[u8; 60]) -> Result<Vec<RawExtent>, Ext4Error> {
    let mut w = Walk { src, sb, ino, nodes: 0, next_logical: 0, out: Vec::new() };
    w.node(root, None, 0, u64::from(u32::MAX) + 1)?;
    Ok(w.out)
}

impl<R: ReadAt + ?Sized> Walk<'_, R> {
    fn bad(&self, why: &'static str) -> Ext4Error {
        Ext4Error::BadExtentTree { ino: self.ino, why }
    }

    /// Walks one node. `depth` is what the parent expects (`None` at the
    /// root); keys must lie in `[lo, hi)`.
    fn node(&mut self, b: &[u8], depth: Option<u16>, lo: u64, hi: u64) -> Result<(), Ext4Error> {
        if le16(b, 0) != EXTENT_MAGIC {
            return Err(self.bad("bad node magic (expected 0xF30A)"));
        }
        let entries = usize::from(le16(b, 2));
        let max = usize::from(le16(b, 4));
        let d = le16(b, 6);
        if max > (b.len() - HEADER_BYTES) / ENTRY_BYTES || entries > max {
            return Err(self.bad("entry count exceeds node capacity"));
        }
        if d > DEPTH_MAX || depth.is_some_and(|want| want != d) {
            return Err(self.bad("node depth inconsistent or above 5"));
        }
        if d > 0 && entries == 0 {
            return Err(self.bad("empty index node"));
        }
        let entry = |i: usize| &b[HEADER_BYTES + i * ENTRY_BYTES..HEADER_BYTES + (i + 1) * ENTRY_BYTES];
        if d == 0 {
            for i in 0..entries {
                self.leaf_entry(entry(i), lo, hi)?;
            }
            return Ok(());
        }
        for i in 0..entries {
            let e = entry(i);
            let key = u64::from(le32(e, 0));
            let child = u64::from(le32(e, 4)) | (u64::from(le16(e, 8)) << 32);
            let next_key = if i + 1 < entries { u64::from(le32(entry(i + 1), 0)) } else { hi };
            if key < lo || key >= next_key || next_key > hi {
                return Err(self.bad("index keys out of order"));
            }
            if child <= u64::from(self.sb.first_data_block) || child >= self.sb.blocks_count {
                return Err(self.bad("index points outside the file system"));
            }
            self.nodes += 1;
            if self.nodes > NODES_MAX {
                return Err(self.bad("too many tree nodes"));
            }
            let mut block = vec![0u8; usize::try_from(self.sb.block_size).unwrap_or(65536)];
            read(self.src, &mut block, child * self.sb.block_size, "extent tree node")?;
            self.node(&block, Some(d - 1), key, next_key)?;
        }
        Ok(())
    }

    fn leaf_entry(&mut self, e: &[u8], lo: u64, hi: u64) -> Result<(), Ext4Error> {
        let logical = le32(e, 0);
        let raw_len = le16(e, 4);
        let physical = u64::from(le32(e, 8)) | (u64::from(le16(e, 6)) << 32);
        let (len, unwritten) = if raw_len > INIT_MAX_LEN { (raw_len - INIT_MAX_LEN, true) } else { (raw_len, false) };
        if len == 0 {
            return Err(self.bad("extent of length 0"));
        }
        let start = u64::from(logical);
        let end = start + u64::from(len);
        if start < lo.max(self.next_logical) || end > hi {
            return Err(self.bad("extents overlap or out of order"));
        }
        if physical <= u64::from(self.sb.first_data_block) || physical.checked_add(u64::from(len)).is_none_or(|p| p > self.sb.blocks_count) {
            return Err(self.bad("extent points outside the file system"));
        }
        if self.out.len() >= EXTENTS_MAX {
            return Err(Ext4Error::TooManyExtents { ino: self.ino, max: EXTENTS_MAX });
        }
        self.next_logical = end;
        self.out.push(RawExtent { logical, physical, len: u32::from(len), unwritten });
        Ok(())
    }
}
