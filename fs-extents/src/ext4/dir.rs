//! Directory entries. Linear directories and the leaf blocks of htree
//! directories hold the same `ext4_dir_entry_2` records; htree interior
//! blocks look like one empty entry (inode 0) spanning the block, so a linear
//! scan that skips inode 0 reads both. Layout: kernel.org "ext4 Data
//! Structures and Algorithms", section "Directory Entries".

use super::source::{le16, le32};
use super::Ext4Error;

/// Longest name in a directory entry.
pub const NAME_MAX_BYTES: usize = 255;
const ENTRY_HEADER_BYTES: usize = 8;

/// Finds `name` in one directory block; returns its inode number.
pub fn find_in_block(block: &[u8], name: &[u8], has_filetype: bool, dir_ino: u32, block_index: u64) -> Result<Option<u32>, Ext4Error> {
    let bad = |offset: usize, why: &'static str| Ext4Error::BadDirEntry { dir_ino, block_index, offset, why };
    let mut off = 0usize;
    while off < block.len() {
        if block.len() - off < ENTRY_HEADER_BYTES {
            return Err(bad(off, "entry header does not fit in the block"));
        }
        let ino = le32(block, off);
        let mut rec_len = usize::from(le16(block, off + 4));
        // 64 KiB blocks encode a full-block record as 0 or 65535 (ext4_rec_len_from_disk).
        if block.len() == 65536 && (rec_len == 0 || rec_len == 65535) {
            rec_len = 65536;
        }
        let name_len = if has_filetype { usize::from(block[off + 6]) } else { usize::from(le16(block, off + 6)) };
        if rec_len < ENTRY_HEADER_BYTES || rec_len % 4 != 0 || rec_len > block.len() - off {
            return Err(bad(off, "record length out of bounds"));
        }
        if ENTRY_HEADER_BYTES + name_len > rec_len {
            return Err(bad(off, "name longer than its record"));
        }
        let entry_name = &block[off + ENTRY_HEADER_BYTES..off + ENTRY_HEADER_BYTES + name_len];
        if ino != 0 && entry_name == name {
            return Ok(Some(ino));
        }
        off += rec_len;
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(ino: u32, rec_len: u16, name: &[u8]) -> Vec<u8> {
        let mut e = ino.to_le_bytes().to_vec();
        e.extend_from_slice(&rec_len.to_le_bytes());
        e.push(u8::try_from(name.len()).expect("short test name"));
        e.push(1);
        e.extend_from_slice(name);
        e.resize(usize::from(rec_len), 0);
        e
    }

    #[test]
    fn finds_names_and_skips_deleted_entries() {
        let mut b = entry(0, 12, b"gone");
        b.extend(entry(12, 16, b"data.bin"));
        b.extend(entry(13, 1024 - 28, b"x"));
        assert_eq!(find_in_block(&b, b"data.bin", true, 2, 0).expect("valid"), Some(12));
        assert_eq!(find_in_block(&b, b"gone", true, 2, 0).expect("valid"), None);
        assert_eq!(find_in_block(&b, b"y", true, 2, 0).expect("valid"), None);
    }

    #[test]
    fn corrupt_records_are_errors() {
        let mut b = entry(12, 16, b"a");
        b.extend(entry(13, 1024 - 16, b"b"));
        let mut zero_len = b.clone();
        zero_len[4] = 0;
        assert!(matches!(find_in_block(&zero_len, b"b", true, 2, 0), Err(Ext4Error::BadDirEntry { .. })));
        let mut long_name = b.clone();
        long_name[6] = 200;
        assert!(matches!(find_in_block(&long_name, b"b", true, 2, 0), Err(Ext4Error::BadDirEntry { .. })));
        let mut past_end = b;
        past_end[16 + 5] = 0x08; // rec_len 0x800 > what is left
        assert!(matches!(find_in_block(&past_end, b"b", true, 2, 0), Err(Ext4Error::BadDirEntry { .. })));
    }
}
