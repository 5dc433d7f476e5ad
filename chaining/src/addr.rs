//! The one place a device byte range becomes NVMe blocks (STYLE item 2):
//! `fs-extents` translates a [`FileOffset`](fs_extents::FileOffset) to a
//! [`DevOffset`], this module checks it and turns it into an [`Lba`] and a
//! block count, and `nvme` takes only those. Nothing else divides by the
//! block size.

use fs_extents::DevOffset;
use nvme::{Lba, Namespace};

/// A read as the device counts it: `nlb` blocks from `lba`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceBlocks {
    pub lba: Lba,
    pub nlb: u32,
}

/// Why a device byte range is not a whole number of blocks on the namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    #[error("device offset {offset} is not a multiple of the {block}-byte block")]
    Unaligned { offset: DevOffset, block: u32 },
    #[error("a read of {len} bytes is not a positive multiple of the {block}-byte block")]
    Length { len: u64, block: u32 },
    #[error("{len} bytes at device offset {offset} end past the namespace's {blocks} blocks")]
    PastEnd { offset: DevOffset, len: u64, blocks: u64 },
}

/// The blocks of `len` bytes at `offset` on `ns`: checked for alignment,
/// for a length of at least one block that fits a command, and for the end
/// of the namespace.
pub fn device_blocks(offset: DevOffset, len: u64, ns: &Namespace) -> Result<DeviceBlocks, BlockError> {
    let block = ns.block_size;
    let bs = u64::from(block);
    if bs == 0 || offset.get() % bs != 0 {
        return Err(BlockError::Unaligned { offset, block });
    }
    if len == 0 || len % bs != 0 {
        return Err(BlockError::Length { len, block });
    }
    let nlb = u32::try_from(len / bs).map_err(|_| BlockError::Length { len, block })?;
    let lba = Lba(offset.get() / bs);
    match lba.checked_add(u64::from(nlb)) {
        Some(end) if end.0 <= ns.blocks => Ok(DeviceBlocks { lba, nlb }),
        _ => Err(BlockError::PastEnd { offset, len, blocks: ns.blocks }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NS: Namespace = Namespace { id: 1, block_size: 512, blocks: 100, max_transfer: 1 << 20 };

    #[test]
    fn whole_blocks_convert() {
        assert_eq!(device_blocks(DevOffset(1024), 4096, &NS), Ok(DeviceBlocks { lba: Lba(2), nlb: 8 }));
        assert_eq!(device_blocks(DevOffset(99 * 512), 512, &NS), Ok(DeviceBlocks { lba: Lba(99), nlb: 1 }));
    }

    #[test]
    fn misaligned_empty_and_out_of_range_reads_are_refused() {
        assert_eq!(device_blocks(DevOffset(100), 512, &NS), Err(BlockError::Unaligned { offset: DevOffset(100), block: 512 }));
        assert_eq!(device_blocks(DevOffset(0), 0, &NS), Err(BlockError::Length { len: 0, block: 512 }));
        assert_eq!(device_blocks(DevOffset(0), 700, &NS), Err(BlockError::Length { len: 700, block: 512 }));
        assert_eq!(device_blocks(DevOffset(0), 512 << 32, &NS), Err(BlockError::Length { len: 512 << 32, block: 512 }));
        assert_eq!(device_blocks(DevOffset(99 * 512), 1024, &NS), Err(BlockError::PastEnd { offset: DevOffset(99 * 512), len: 1024, blocks: 100 }));
        assert!(matches!(device_blocks(DevOffset(u64::MAX - 511), 512, &NS), Err(BlockError::PastEnd { .. })));
        let zero = Namespace { block_size: 0, ..NS };
        assert!(matches!(device_blocks(DevOffset(0), 512, &zero), Err(BlockError::Unaligned { .. })));
    }
}
