//! The ext4 superblock: the fields a read-only reader of extent-mapped files
//! needs, checked. Layout: kernel.org "ext4 Data Structures and Algorithms",
//! section "Super Block"; fields at the byte offsets given below.

use super::source::{le16, le32, ReadAt};
use super::{read, Ext4Error};

/// Byte offset of the superblock from the start of the file system.
pub const SUPERBLOCK_OFFSET: u64 = 1024;
/// Size of the superblock in bytes.
pub const SUPERBLOCK_BYTES: usize = 1024;
/// `s_magic`.
pub const EXT4_MAGIC: u16 = 0xEF53;
/// Largest `s_log_block_size`: 1024 << 6 = 64 KiB blocks.
pub const LOG_BLOCK_SIZE_MAX: u32 = 6;

/// Incompatible features (`s_feature_incompat`).
pub mod incompat {
    /// Directory entries record the file type.
    pub const FILETYPE: u32 = 0x2;
    /// The journal needs replaying.
    pub const RECOVER: u32 = 0x4;
    /// Files may use extents.
    pub const EXTENTS: u32 = 0x40;
    /// Block numbers above 2^32; 64-byte group descriptors.
    pub const BIT64: u32 = 0x80;
    /// Multiple mount protection.
    pub const MMP: u32 = 0x100;
    /// Flexible block groups (metadata of a group may live in another group).
    pub const FLEX_BG: u32 = 0x200;
    /// Extended attributes in inodes.
    pub const EA_INODE: u32 = 0x400;
    /// Checksum seed in the superblock.
    pub const CSUM_SEED: u32 = 0x2000;
    /// Large directories (3-level htree).
    pub const LARGEDIR: u32 = 0x4000;
    /// Inline data (rejected per inode).
    pub const INLINE_DATA: u32 = 0x8000;
    /// Encryption (rejected per inode).
    pub const ENCRYPT: u32 = 0x10000;
    /// Case-folded names (rejected per directory).
    pub const CASEFOLD: u32 = 0x20000;
    /// Everything this reader understands.
    pub const SUPPORTED: u32 = FILETYPE | EXTENTS | BIT64 | MMP | FLEX_BG | EA_INODE | CSUM_SEED | LARGEDIR | INLINE_DATA | ENCRYPT | CASEFOLD;
}

/// The checked superblock fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Superblock {
    /// Bytes per block.
    pub block_size: u64,
    /// Blocks in the file system.
    pub blocks_count: u64,
    /// Inodes in the file system.
    pub inodes_count: u32,
    /// Block holding the superblock (1 for 1 KiB blocks, else 0).
    pub first_data_block: u32,
    /// Blocks per group.
    pub blocks_per_group: u32,
    /// Inodes per group.
    pub inodes_per_group: u32,
    /// Bytes per inode record.
    pub inode_size: u32,
    /// Bytes per group descriptor (32, or 64+ with the 64bit feature).
    pub desc_size: u32,
    /// `s_feature_incompat`.
    pub feature_incompat: u32,
    /// `s_feature_ro_compat` (ignored by a read-only reader, by definition).
    pub feature_ro_compat: u32,
    /// Number of block groups.
    pub group_count: u64,
}

fn bad(field: &'static str, value: u64, why: &'static str) -> Ext4Error {
    Ext4Error::BadSuperblock { field, value, why }
}

impl Superblock {
    /// Reads and checks the superblock of an unmounted file system.
    pub fn read<R: ReadAt + ?Sized>(src: &R) -> Result<Self, Ext4Error> {
        Self::read_with(src, false)
    }

    /// Reads and checks the superblock; `live` accepts a mounted file
    /// system (whose journal flag says "needs recovery" while mounted).
    pub fn read_with<R: ReadAt + ?Sized>(src: &R, live: bool) -> Result<Self, Ext4Error> {
        let mut b = [0u8; SUPERBLOCK_BYTES];
        read(src, &mut b, SUPERBLOCK_OFFSET, "superblock")?;
        let magic = le16(&b, 0x38);
        if magic != EXT4_MAGIC {
            return Err(Ext4Error::BadMagic { found: magic });
        }
        let log_bs = le32(&b, 0x18);
        if log_bs > LOG_BLOCK_SIZE_MAX {
            return Err(bad("s_log_block_size", log_bs.into(), "must be at most 6 (64 KiB blocks)"));
        }
        let block_size = 1024u64 << log_bs;
        let rev = le32(&b, 0x4C);
        let inode_size = if rev == 0 { 128 } else { u32::from(le16(&b, 0x58)) };
        if inode_size < 128 || !inode_size.is_power_of_two() || u64::from(inode_size) > block_size {
            return Err(bad("s_inode_size", inode_size.into(), "must be a power of two from 128 to the block size"));
        }
        let feature_incompat = le32(&b, 0x60);
        let unknown = feature_incompat & !incompat::SUPPORTED & !(if live { incompat::RECOVER } else { 0 });
        if feature_incompat & incompat::RECOVER != 0 && !live {
            return Err(Ext4Error::NeedsRecovery);
        }
        if unknown != 0 {
            return Err(Ext4Error::UnsupportedFeatures { incompat: unknown });
        }
        let desc_size = if feature_incompat & incompat::BIT64 != 0 {
            let d = u32::from(le16(&b, 0xFE));
            if d < 64 || !d.is_power_of_two() || d > 1024 {
                return Err(bad("s_desc_size", d.into(), "must be a power of two from 64 to 1024 with the 64bit feature"));
            }
            d
        } else {
            32
        };
        let blocks_hi = if feature_incompat & incompat::BIT64 != 0 { le32(&b, 0x150) } else { 0 };
        let blocks_count = u64::from(le32(&b, 0x4)) | (u64::from(blocks_hi) << 32);
        let first_data_block = le32(&b, 0x14);
        if u64::from(first_data_block) >= blocks_count {
            return Err(bad("s_first_data_block", first_data_block.into(), "must be below s_blocks_count"));
        }
        let blocks_per_group = le32(&b, 0x20);
        if blocks_per_group == 0 {
            return Err(bad("s_blocks_per_group", 0, "must not be 0"));
        }
        let inodes_per_group = le32(&b, 0x28);
        if inodes_per_group == 0 || u64::from(inodes_per_group) > block_size * 8 {
            return Err(bad("s_inodes_per_group", inodes_per_group.into(), "must be from 1 to 8 x block size"));
        }
        let group_count = (blocks_count - u64::from(first_data_block)).div_ceil(u64::from(blocks_per_group));
        let inodes_count = le32(&b, 0x0);
        if u64::from(inodes_count) > group_count * u64::from(inodes_per_group) {
            return Err(bad("s_inodes_count", inodes_count.into(), "exceeds groups x inodes per group"));
        }
        let fs_bytes = blocks_count.checked_mul(block_size).ok_or(bad("s_blocks_count", blocks_count, "size in bytes overflows 64 bits"))?;
        let dev_bytes = src.len_bytes().map_err(|source| Ext4Error::Io { what: "device length", offset: 0, source })?;
        if dev_bytes < fs_bytes {
            return Err(Ext4Error::TruncatedImage { fs_bytes, dev_bytes });
        }
        Ok(Self {
            block_size,
            blocks_count,
            inodes_count,
            first_data_block,
            blocks_per_group,
            inodes_per_group,
            inode_size,
            desc_size,
            feature_incompat,
            feature_ro_compat: le32(&b, 0x64),
            group_count,
        })
    }

    /// Whether an incompat feature bit is set.
    pub fn has_incompat(&self, bit: u32) -> bool {
        self.feature_incompat & bit != 0
    }
}
