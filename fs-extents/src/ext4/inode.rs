//! Group descriptors and inode records. Layout: kernel.org "ext4 Data
//! Structures and Algorithms", sections "Block Group Descriptors" and
//! "Index Nodes".

use super::source::{le16, le32, ReadAt};
use super::superblock::{incompat, Superblock};
use super::{read, Ext4Error};
use crate::map::ChangeStamp;

/// The root directory's inode number.
pub const ROOT_INO: u32 = 2;
/// Bytes of `i_block`: the extent tree root (or block map, inline data, symlink).
pub const I_BLOCK_BYTES: usize = 60;

/// `i_flags` bits this reader acts on.
pub mod flags {
    /// File data is encrypted.
    pub const ENCRYPT: u32 = 0x800;
    /// The file uses an extent tree.
    pub const EXTENTS: u32 = 0x8_0000;
    /// Data lives in the inode.
    pub const INLINE_DATA: u32 = 0x1000_0000;
    /// Directory names are case-folded.
    pub const CASEFOLD: u32 = 0x4000_0000;
}

/// File type bits of `i_mode`.
pub const S_IFMT: u16 = 0xF000;
/// Regular file.
pub const S_IFREG: u16 = 0x8000;
/// Directory.
pub const S_IFDIR: u16 = 0x4000;

/// The fields of an inode this reader uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inode {
    /// Inode number.
    pub ino: u32,
    /// `i_mode`.
    pub mode: u16,
    /// File size in bytes.
    pub size: u64,
    /// `i_flags`.
    pub flags: u32,
    /// `i_generation`.
    pub generation: u32,
    /// Change time, seconds (with the epoch bits of `i_ctime_extra`).
    pub ctime_sec: i64,
    /// Change time, nanoseconds.
    pub ctime_nsec: u32,
    /// `i_block`.
    pub block: [u8; I_BLOCK_BYTES],
}

impl Inode {
    /// Whether it is a regular file.
    pub fn is_regular(&self) -> bool {
        self.mode & S_IFMT == S_IFREG
    }

    /// Whether it is a directory.
    pub fn is_dir(&self) -> bool {
        self.mode & S_IFMT == S_IFDIR
    }

    /// The stamp that tells whether the file may have changed.
    pub fn stamp(&self) -> ChangeStamp {
        ChangeStamp { size: self.size, ctime_sec: self.ctime_sec, ctime_nsec: self.ctime_nsec, generation: Some(self.generation) }
    }
}

/// Byte offset of inode `ino`'s record on the file system.
pub fn inode_offset<R: ReadAt + ?Sized>(src: &R, sb: &Superblock, ino: u32) -> Result<u64, Ext4Error> {
    if ino == 0 || ino > sb.inodes_count {
        return Err(Ext4Error::InodeOutOfRange { ino, count: sb.inodes_count });
    }
    let group = u64::from((ino - 1) / sb.inodes_per_group);
    let index = u64::from((ino - 1) % sb.inodes_per_group);
    let table = inode_table_block(src, sb, group)?;
    // Cannot overflow: table < blocks_count and blocks_count * block_size fits (checked at open).
    Ok(table * sb.block_size + index * u64::from(sb.inode_size))
}

/// Block number of group `group`'s inode table, checked to lie inside the file system.
fn inode_table_block<R: ReadAt + ?Sized>(src: &R, sb: &Superblock, group: u64) -> Result<u64, Ext4Error> {
    let gdt_block = u64::from(sb.first_data_block) + 1;
    let offset = gdt_block * sb.block_size + group * u64::from(sb.desc_size);
    let mut d = [0u8; 64];
    let len = if sb.desc_size >= 64 { 64 } else { 32 };
    read(src, &mut d[..len], offset, "group descriptor")?;
    let lo = u64::from(le32(&d, 0x8));
    let hi = if sb.has_incompat(incompat::BIT64) && sb.desc_size >= 64 { u64::from(le32(&d, 0x28)) } else { 0 };
    let table = lo | (hi << 32);
    let table_bytes = u64::from(sb.inodes_per_group) * u64::from(sb.inode_size);
    let table_blocks = table_bytes.div_ceil(sb.block_size);
    if table == 0 || table.checked_add(table_blocks).is_none_or(|end| end > sb.blocks_count) {
        return Err(Ext4Error::BadGroupDescriptor { group, inode_table: table, blocks_count: sb.blocks_count });
    }
    Ok(table)
}

/// Reads inode `ino`.
pub fn read_inode<R: ReadAt + ?Sized>(src: &R, sb: &Superblock, ino: u32) -> Result<Inode, Ext4Error> {
    let offset = inode_offset(src, sb, ino)?;
    let mut b = [0u8; 256];
    let len = usize::try_from(sb.inode_size).unwrap_or(256).min(256);
    read(src, &mut b[..len], offset, "inode")?;
    let size = u64::from(le32(&b, 0x4)) | (u64::from(le32(&b, 0x6C)) << 32);
    let mut ctime_sec = i64::from(i32::from_le_bytes([b[0xC], b[0xD], b[0xE], b[0xF]]));
    let mut ctime_nsec = 0;
    let extra_isize = if len > 128 { le16(&b, 0x80) } else { 0 };
    if extra_isize >= 8 {
        let extra = le32(&b, 0x84);
        ctime_sec += i64::from(extra & 3) << 32;
        ctime_nsec = extra >> 2;
    }
    let mut block = [0u8; I_BLOCK_BYTES];
    block.copy_from_slice(&b[0x28..0x28 + I_BLOCK_BYTES]);
    Ok(Inode { ino, mode: le16(&b, 0x0), size, flags: le32(&b, 0x20), generation: le32(&b, 0x64), ctime_sec, ctime_nsec, block })
}
