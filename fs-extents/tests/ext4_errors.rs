//! Corrupt and truncated images and unsupported features give clear errors,
//! never a panic.

mod common;

use common::{bytes, mkfs, run, write_sparse, TempDir};
use fs_extents::{Ext4, Ext4Error};
use std::fs;
use std::path::{Path, PathBuf};

/// An image holding `/f.txt` (5000 bytes) and `/sparse.bin` (index nodes),
/// as bytes, plus its path.
fn image(t: &TempDir, opts: &[&str]) -> (PathBuf, Vec<u8>) {
    let src = t.path().join("src");
    fs::create_dir_all(&src).expect("mkdir");
    fs::write(src.join("f.txt"), bytes(1, 5000)).expect("write");
    fs::write(src.join("tiny"), b"inline me").expect("write");
    write_sparse(&src.join("sparse.bin"), 2000, 2);
    let img = t.path().join("img");
    mkfs(&img, Some(&src), "16M", 4096, opts);
    let data = fs::read(&img).expect("read image");
    (img, data)
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().expect("4 bytes"))
}

fn inode_at(data: &Vec<u8>, path: &str) -> usize {
    let fs = Ext4::open(data).expect("valid before corruption");
    let ino = fs.lookup(path).expect("present");
    usize::try_from(fs.inode_offset(ino).expect("in range")).expect("small image")
}

fn err_of(data: &Vec<u8>, path: &str) -> Ext4Error {
    match Ext4::open(data) {
        Err(e) => e,
        Ok(fs) => fs.file_map(path).expect_err("corruption must be detected"),
    }
}

#[test]
fn bad_magic_and_truncation() {
    let t = TempDir::new("trunc");
    let (_, data) = image(&t, &[]);
    let mut bad = data.clone();
    bad[1024 + 0x38] = 0;
    assert!(matches!(Ext4::open(&bad), Err(Ext4Error::BadMagic { .. })));
    let short = data[..data.len() / 2].to_vec();
    let e = Ext4::open(&short).expect_err("truncated");
    assert!(matches!(e, Ext4Error::TruncatedImage { .. }), "{e}");
    assert!(e.to_string().contains("truncated"));
    assert!(matches!(Ext4::open(&data[..1500].to_vec()), Err(Ext4Error::Truncated { .. })));
    assert!(matches!(Ext4::open(&Vec::new()), Err(Ext4Error::Truncated { .. })));
}

#[test]
fn corrupt_superblock_fields() {
    let t = TempDir::new("sb");
    let (_, data) = image(&t, &[]);
    let mut big_bs = data.clone();
    big_bs[1024 + 0x18] = 9;
    assert!(matches!(Ext4::open(&big_bs), Err(Ext4Error::BadSuperblock { field: "s_log_block_size", .. })));
    let mut no_ipg = data.clone();
    no_ipg[1024 + 0x28..1024 + 0x2C].fill(0);
    assert!(matches!(Ext4::open(&no_ipg), Err(Ext4Error::BadSuperblock { field: "s_inodes_per_group", .. })));
    let mut recover = data.clone();
    recover[1024 + 0x60] |= 0x4;
    assert!(matches!(Ext4::open(&recover), Err(Ext4Error::NeedsRecovery)));
    let mut meta_bg = data;
    meta_bg[1024 + 0x60] |= 0x10;
    let e = Ext4::open(&meta_bg).expect_err("meta_bg");
    assert!(matches!(e, Ext4Error::UnsupportedFeatures { incompat: 0x10 }), "{e}");
}

#[test]
fn corrupt_group_descriptor() {
    let t = TempDir::new("gd");
    let (_, mut data) = image(&t, &[]);
    // Group descriptors start at block 1 with 4 KiB blocks; bg_inode_table_lo at +8.
    data[4096 + 8..4096 + 12].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
    let fs = Ext4::open(&data).expect("superblock is fine");
    assert!(matches!(fs.lookup("/f.txt"), Err(Ext4Error::BadGroupDescriptor { group: 0, .. })));
}

#[test]
fn corrupt_extent_trees() {
    let t = TempDir::new("tree");
    let (_, data) = image(&t, &[]);
    let f = inode_at(&data, "/f.txt");
    let root = f + 0x28;

    let mut magic = data.clone();
    magic[root] = 0;
    assert!(matches!(err_of(&magic, "/f.txt"), Ext4Error::BadExtentTree { why, .. } if why.contains("magic")));

    let mut depth = data.clone();
    depth[root + 6] = 6;
    assert!(matches!(err_of(&depth, "/f.txt"), Ext4Error::BadExtentTree { why, .. } if why.contains("depth")));

    let mut entries = data.clone();
    entries[root + 2] = 5; // the root holds at most 4
    assert!(matches!(err_of(&entries, "/f.txt"), Ext4Error::BadExtentTree { why, .. } if why.contains("capacity")));

    let mut outside = data.clone();
    outside[root + 12 + 8..root + 12 + 12].copy_from_slice(&0x00FF_FFFFu32.to_le_bytes());
    assert!(matches!(err_of(&outside, "/f.txt"), Ext4Error::BadExtentTree { why, .. } if why.contains("outside")));

    let mut zero_len = data.clone();
    zero_len[root + 12 + 4..root + 12 + 6].fill(0);
    assert!(matches!(err_of(&zero_len, "/f.txt"), Ext4Error::BadExtentTree { why, .. } if why.contains("length 0")));

    // The sparse file has a depth-1 tree: make its first leaf claim depth 1
    // and point at itself (a loop).
    let s = inode_at(&data, "/sparse.bin") + 0x28;
    assert_eq!(u16::from_le_bytes([data[s + 6], data[s + 7]]), 1, "sparse.bin has index nodes");
    let leaf_block = u32_at(&data, s + 12 + 4);
    let leaf = usize::try_from(leaf_block).expect("small") * 4096;
    let mut looped = data.clone();
    looped[leaf + 6] = 1;
    looped[leaf + 12 + 4..leaf + 12 + 8].copy_from_slice(&leaf_block.to_le_bytes());
    assert!(matches!(err_of(&looped, "/sparse.bin"), Ext4Error::BadExtentTree { why, .. } if why.contains("depth")));

    // Out-of-order leaf entries.
    let mut order = data.clone();
    order[leaf + 24..leaf + 28].copy_from_slice(&0u32.to_le_bytes());
    assert!(matches!(err_of(&order, "/sparse.bin"), Ext4Error::BadExtentTree { why, .. } if why.contains("order")));
}

#[test]
fn corrupt_directory_entries() {
    let t = TempDir::new("dir");
    let (_, data) = image(&t, &[]);
    let fs = Ext4::open(&data).expect("valid");
    let root = fs.inode(2).expect("root");
    let block = u32_at(&root.block, 12 + 8);
    let at = usize::try_from(block).expect("small") * 4096;
    let mut bad = data.clone();
    bad[at + 4..at + 6].fill(0); // rec_len of "." = 0
    assert!(matches!(err_of(&bad, "/f.txt"), Ext4Error::BadDirEntry { .. }));
}

fn debugfs_set_flags(img: &Path, path: &str, flags: &str) {
    run("debugfs", &["-w", "-R", &format!("set_inode_field {path} flags {flags}"), img.to_str().expect("utf-8")]);
}

#[test]
fn unsupported_features_are_named() {
    let t = TempDir::new("inline");
    let (img, _) = image(&t, &["-O", "inline_data"]);
    let data = fs::read(&img).expect("image");
    let e = err_of(&data, "/tiny");
    assert!(matches!(e, Ext4Error::InlineData { .. }), "{e}");
    assert!(e.to_string().contains("inline"));

    let t = TempDir::new("encrypt");
    let (img, _) = image(&t, &[]);
    debugfs_set_flags(&img, "/f.txt", "0x80800");
    let e = err_of(&fs::read(&img).expect("image"), "/f.txt");
    assert!(matches!(e, Ext4Error::Encrypted { .. }), "{e}");

    let t = TempDir::new("casefold");
    let (img, _) = image(&t, &[]);
    debugfs_set_flags(&img, "/", "0x40080000");
    let e = err_of(&fs::read(&img).expect("image"), "/f.txt");
    assert!(matches!(e, Ext4Error::Casefolded { ino: 2 }), "{e}");

    let t = TempDir::new("blockmap");
    let (img, _) = image(&t, &["-O", "^extent,^64bit"]);
    let e = err_of(&fs::read(&img).expect("image"), "/f.txt");
    assert!(matches!(e, Ext4Error::NotExtentMapped { .. }), "{e}");
    assert!(e.to_string().contains("block-mapped"));
}
