//! A read-only ext4 reader for extent maps, for when the kernel no longer owns
//! the device. It reads the superblock, group descriptors (32 or 64 bytes),
//! inode records, extent trees (with index nodes) and directories (linear, or
//! htree read linearly), and nothing else: no journal replay, no checksums,
//! no block-mapped files, no inline data, no encryption. Everything read is
//! bounds-checked; corrupt structures and unsupported features are errors.
//!
//! No suitable crate exposes physical extents of ext4 files (the ext4 crates
//! on crates.io read file contents, not the block layout), so this is the
//! read-only subset written from the on-disk format documentation.

mod dir;
mod extent_tree;
mod inode;
mod source;
mod superblock;

pub use extent_tree::{RawExtent, DEPTH_MAX, EXTENTS_MAX, NODES_MAX};
pub use inode::{Inode, ROOT_INO};
pub use source::{ReadAt, Window};
pub use superblock::{incompat, Superblock};

use crate::addr::{DevOffset, FileOffset};
use crate::map::{Extent, ExtentKind, ExtentMap, MapError};
use std::io;

/// Most path components a lookup follows.
pub const PATH_COMPONENTS_MAX: usize = 256;

/// What went wrong reading an ext4 file system.
#[derive(Debug, thiserror::Error)]
pub enum Ext4Error {
    /// A read failed.
    #[error("reading the {what} at byte {offset}")]
    Io {
        /// What was being read.
        what: &'static str,
        /// Where.
        offset: u64,
        /// The I/O error.
        source: io::Error,
    },
    /// A structure lies past the end of the image.
    #[error("the {what} at byte {offset} lies past the end of the image; the image is truncated or corrupt")]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Where.
        offset: u64,
    },
    /// The image is shorter than the file system it holds.
    #[error("the image is {dev_bytes} bytes but its superblock describes {fs_bytes} bytes; the image is truncated")]
    TruncatedImage {
        /// Size the superblock describes.
        fs_bytes: u64,
        /// Size of the image or device.
        dev_bytes: u64,
    },
    /// No ext4 magic.
    #[error("no ext2/3/4 file system: superblock magic is {found:#06x}, expected 0xef53 (wrong device or partition offset?)")]
    BadMagic {
        /// The magic found.
        found: u16,
    },
    /// A superblock field is out of range.
    #[error("corrupt superblock: {field} = {value} {why}")]
    BadSuperblock {
        /// The field.
        field: &'static str,
        /// Its value.
        value: u64,
        /// The rule it breaks.
        why: &'static str,
    },
    /// The journal holds changes not yet written to their place.
    #[error("the file system needs journal recovery; unmount it cleanly or run `e2fsck -fy` on the image first")]
    NeedsRecovery,
    /// Incompatible features this reader does not understand.
    #[error("unsupported ext4 incompat features {incompat:#x} (e.g. meta_bg 0x10, compression 0x1, dirdata 0x1000); make the file system without them")]
    UnsupportedFeatures {
        /// The unknown bits.
        incompat: u32,
    },
    /// A group descriptor points outside the file system.
    #[error("corrupt group descriptor {group}: inode table at block {inode_table} does not fit in {blocks_count} blocks")]
    BadGroupDescriptor {
        /// The group.
        group: u64,
        /// Its inode table block.
        inode_table: u64,
        /// Blocks in the file system.
        blocks_count: u64,
    },
    /// An inode number outside `1..=inodes_count`.
    #[error("inode {ino} does not exist (the file system has inodes 1..={count})")]
    InodeOutOfRange {
        /// The number.
        ino: u32,
        /// Inodes in the file system.
        count: u32,
    },
    /// The file's data is stored inside its inode.
    #[error("inode {ino} stores its data inline (inline_data); it has no extents to read. Make the file system with -O ^inline_data or make the file larger than 60 bytes")]
    InlineData {
        /// The inode.
        ino: u32,
    },
    /// The file is encrypted.
    #[error("inode {ino} is encrypted; its blocks cannot be read without the kernel's key")]
    Encrypted {
        /// The inode.
        ino: u32,
    },
    /// The file uses the old block map instead of extents.
    #[error("inode {ino} is block-mapped (ext2/ext3 style), not extent-mapped; only extent files are supported (copy the file on ext4 with the extents feature)")]
    NotExtentMapped {
        /// The inode.
        ino: u32,
    },
    /// A case-folded directory, whose names need Unicode folding to match.
    #[error("directory inode {ino} is case-folded; name lookup in it is not supported (look the file up by inode number)")]
    Casefolded {
        /// The inode.
        ino: u32,
    },
    /// The extent tree is corrupt.
    #[error("corrupt extent tree in inode {ino}: {why}")]
    BadExtentTree {
        /// The inode.
        ino: u32,
        /// The check that failed.
        why: &'static str,
    },
    /// More extents than [`EXTENTS_MAX`].
    #[error("inode {ino} has more than {max} extents; defragment it (e4defrag)")]
    TooManyExtents {
        /// The inode.
        ino: u32,
        /// The limit.
        max: usize,
    },
    /// A directory entry is corrupt.
    #[error("corrupt entry in directory inode {dir_ino}, block {block_index}, byte {offset}: {why}")]
    BadDirEntry {
        /// The directory.
        dir_ino: u32,
        /// The directory's logical block.
        block_index: u64,
        /// Byte in the block.
        offset: usize,
        /// The check that failed.
        why: &'static str,
    },
    /// A directory has a hole.
    #[error("directory inode {dir_ino} has a hole at block {block_index}; the file system is corrupt")]
    DirHole {
        /// The directory.
        dir_ino: u32,
        /// The missing logical block.
        block_index: u64,
    },
    /// A path component was not found.
    #[error("{path}: no entry named {component:?}")]
    NotFound {
        /// The path.
        path: String,
        /// The missing component.
        component: String,
    },
    /// A path goes through something that is not a directory.
    #[error("{path}: {component:?} is not a directory (symbolic links are not followed)")]
    NotADirectory {
        /// The path.
        path: String,
        /// The component.
        component: String,
    },
    /// Too many path components.
    #[error("{path}: more than {PATH_COMPONENTS_MAX} components")]
    PathTooLong {
        /// The path.
        path: String,
    },
    /// Extent maps are for regular files.
    #[error("inode {ino} is not a regular file (mode {mode:#o})")]
    NotRegularFile {
        /// The inode.
        ino: u32,
        /// Its mode.
        mode: u16,
    },
    /// The extents do not form a valid map.
    #[error("the extents of inode {ino}")]
    Map {
        /// The inode.
        ino: u32,
        /// Why.
        source: MapError,
    },
}

pub(crate) fn read<R: ReadAt + ?Sized>(src: &R, buf: &mut [u8], offset: u64, what: &'static str) -> Result<(), Ext4Error> {
    src.read_exact_at(buf, offset).map_err(|source| {
        if source.kind() == io::ErrorKind::UnexpectedEof {
            Ext4Error::Truncated { what, offset }
        } else {
            Ext4Error::Io { what, offset, source }
        }
    })
}

/// An ext4 file system opened read-only from a source.
#[derive(Debug)]
pub struct Ext4<R> {
    src: Window<R>,
    sb: Superblock,
    base: DevOffset,
}

impl<R: ReadAt> Ext4<R> {
    /// Opens the file system that fills `src` from its first byte; device
    /// offsets in maps are offsets in `src`.
    pub fn open(src: R) -> Result<Self, Ext4Error> {
        Self::open_at(src, DevOffset(0))
    }

    /// Opens the file system that starts at byte `base` of `src` (a
    /// partition start, a loop offset); device offsets in maps are offsets
    /// in `src`, so they include `base`.
    pub fn open_at(src: R, base: DevOffset) -> Result<Self, Ext4Error> {
        let src = Window::new(src, base.0);
        let sb = Superblock::read(&src)?;
        Ok(Self { src, sb, base })
    }

    /// Opens a file system that is mounted right now, read through the
    /// block device's page cache (`src` opened without O_DIRECT): that is
    /// where the kernel keeps the file system's metadata buffers, so the
    /// reads see its current metadata, journalled but not yet checkpointed
    /// blocks included. Sync the file system first; a file being changed
    /// meanwhile can be seen half-way.
    pub fn open_live(src: R, base: DevOffset) -> Result<Self, Ext4Error> {
        let src = Window::new(src, base.0);
        let sb = Superblock::read_with(&src, true)?;
        Ok(Self { src, sb, base })
    }

    /// The checked superblock.
    pub fn superblock(&self) -> &Superblock {
        &self.sb
    }

    /// Reads inode `ino`.
    pub fn inode(&self, ino: u32) -> Result<Inode, Ext4Error> {
        inode::read_inode(&self.src, &self.sb, ino)
    }

    /// Byte offset of inode `ino`'s record from the start of the file
    /// system (for tools and tests).
    pub fn inode_offset(&self, ino: u32) -> Result<u64, Ext4Error> {
        inode::inode_offset(&self.src, &self.sb, ino)
    }

    /// The raw extents of an inode (blocks), after the per-inode feature checks.
    pub fn raw_extents(&self, inode: &Inode) -> Result<Vec<RawExtent>, Ext4Error> {
        let ino = inode.ino;
        if inode.flags & inode::flags::INLINE_DATA != 0 {
            return Err(Ext4Error::InlineData { ino });
        }
        if inode.flags & inode::flags::ENCRYPT != 0 {
            return Err(Ext4Error::Encrypted { ino });
        }
        if inode.flags & inode::flags::EXTENTS == 0 {
            return Err(Ext4Error::NotExtentMapped { ino });
        }
        extent_tree::read_extents(&self.src, &self.sb, ino, &inode.block)
    }

    /// The extent map of regular file `ino` (version 1).
    pub fn extent_map(&self, ino: u32) -> Result<ExtentMap, Ext4Error> {
        let inode = self.inode(ino)?;
        if !inode.is_regular() {
            return Err(Ext4Error::NotRegularFile { ino, mode: inode.mode });
        }
        self.map_of(&inode)
    }

    fn map_of(&self, inode: &Inode) -> Result<ExtentMap, Ext4Error> {
        let bs = self.sb.block_size;
        let base = self.base.0;
        let ino = inode.ino;
        let overflow = MapError::Overflow(FileOffset(0));
        let extents = self
            .raw_extents(inode)?
            .into_iter()
            .map(|r| {
                // Cannot overflow for the logical side: a u32 block times at most 64 KiB.
                let physical = (r.physical * bs).checked_add(base).ok_or(Ext4Error::Map { ino, source: overflow.clone() })?;
                Ok(Extent {
                    logical: FileOffset(u64::from(r.logical) * bs),
                    physical: DevOffset(physical),
                    len: u64::from(r.len) * bs,
                    kind: if r.unwritten { ExtentKind::Unwritten } else { ExtentKind::Written },
                })
            })
            .collect::<Result<Vec<_>, Ext4Error>>()?;
        ExtentMap::new(extents, inode.size, bs, inode.stamp()).map_err(|source| Ext4Error::Map { ino, source })
    }

    /// The change stamp of inode `ino` (size, change time, generation).
    pub fn stamp(&self, ino: u32) -> Result<crate::map::ChangeStamp, Ext4Error> {
        Ok(self.inode(ino)?.stamp())
    }

    /// Re-reads file `ino`'s map as the successor of `old`: same version if
    /// the layout is unchanged, the next one otherwise. Reopen the source
    /// first if it caches (a `File` on an image does not).
    pub fn refresh(&self, old: &ExtentMap, ino: u32) -> Result<ExtentMap, Ext4Error> {
        Ok(old.refreshed(self.extent_map(ino)?))
    }

    /// Resolves an absolute path (from the root directory) to an inode number.
    /// `.` and `..` resolve through their directory entries; symbolic links
    /// are not followed.
    pub fn lookup(&self, path: &str) -> Result<u32, Ext4Error> {
        let mut ino = ROOT_INO;
        let components: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
        if components.len() > PATH_COMPONENTS_MAX {
            return Err(Ext4Error::PathTooLong { path: path.to_owned() });
        }
        for component in components {
            let dir = self.inode(ino)?;
            if !dir.is_dir() {
                return Err(Ext4Error::NotADirectory { path: path.to_owned(), component: component.to_owned() });
            }
            ino = self.find_in_dir(&dir, component.as_bytes())?.ok_or_else(|| Ext4Error::NotFound { path: path.to_owned(), component: component.to_owned() })?;
        }
        Ok(ino)
    }

    /// The extent map of the regular file at `path`.
    pub fn file_map(&self, path: &str) -> Result<ExtentMap, Ext4Error> {
        let ino = self.lookup(path)?;
        self.extent_map(ino)
    }

    fn find_in_dir(&self, dir: &Inode, name: &[u8]) -> Result<Option<u32>, Ext4Error> {
        if name.len() > dir::NAME_MAX_BYTES {
            return Ok(None);
        }
        if dir.flags & inode::flags::CASEFOLD != 0 {
            return Err(Ext4Error::Casefolded { ino: dir.ino });
        }
        let map = self.map_of(dir)?;
        let bs = self.sb.block_size;
        let has_filetype = self.sb.has_incompat(incompat::FILETYPE);
        let mut block = vec![0u8; usize::try_from(bs).unwrap_or(65536)];
        let blocks = dir.size.div_ceil(bs);
        for index in 0..blocks {
            let at = FileOffset(index * bs);
            let seg = map.translate(at, bs).map_err(|_| Ext4Error::DirHole { dir_ino: dir.ino, block_index: index })?;
            let crate::map::Target::Device(dev) = seg.target else {
                return Err(Ext4Error::DirHole { dir_ino: dir.ino, block_index: index });
            };
            // Cannot fail: every device offset in `map` is `base` plus a block offset.
            let at_src = dev.checked_distance_from(self.base).unwrap_or(u64::MAX);
            read(&self.src, &mut block, at_src, "directory block")?;
            if let Some(ino) = dir::find_in_block(&block, name, has_filetype, dir.ino, index)? {
                return Ok(Some(ino));
            }
        }
        Ok(None)
    }
}
