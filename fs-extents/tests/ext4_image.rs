//! The ext4 reader on images made by `mkfs.ext4 -d` (no mount, no root):
//! reading the raw image at the translated offsets gives exactly the files'
//! bytes, across block sizes and layouts (64bit on/off, flex_bg on/off).

mod common;

use common::{bytes, mkfs, read_through_map, write_sparse, TempDir};
use fs_extents::{Ext4, Ext4Error, ExtentKind};
use std::fs::{self, File};

/// Files in the source tree: (path, expected minimum extent count).
fn populate(src: &std::path::Path) -> Vec<(&'static str, usize)> {
    fs::create_dir_all(src.join("a/b")).expect("mkdir");
    fs::write(src.join("small.txt"), bytes(1, 5000)).expect("write");
    fs::write(src.join("a/b/big.bin"), bytes(2, 3 << 20)).expect("write");
    write_sparse(&src.join("sparse.bin"), 2000, 3);
    fs::write(src.join("empty"), b"").expect("write");
    // A directory with enough entries to span several blocks.
    fs::create_dir_all(src.join("many")).expect("mkdir");
    for i in 0..600 {
        fs::write(src.join(format!("many/file-with-a-longish-name-{i:04}")), bytes(i, 100)).expect("write");
    }
    vec![("/small.txt", 1), ("/a/b/big.bin", 1), ("/sparse.bin", 1000), ("/empty", 0), ("/many/file-with-a-longish-name-0599", 1)]
}

fn check_layout(tag: &str, block_size: u32, opts: &[&str]) {
    let t = TempDir::new(tag);
    let src = t.path().join("src");
    let files = populate(&src);
    let img = t.path().join("img");
    mkfs(&img, Some(&src), "64M", block_size, opts);
    let dev = File::open(&img).expect("open image");
    let fs = Ext4::open(&dev).expect("valid image");
    assert_eq!(fs.superblock().block_size, u64::from(block_size));
    for (path, min_extents) in files {
        let map = fs.file_map(path).unwrap_or_else(|e| panic!("{tag} {path}: {e}"));
        let want = fs::read(src.join(&path[1..])).expect("source file");
        assert_eq!(map.size(), want.len() as u64, "{tag} {path}");
        assert!(map.extents().len() >= min_extents, "{tag} {path}: {} extents", map.extents().len());
        assert!(map.extents().iter().all(|e| e.kind == ExtentKind::Written));
        assert!(read_through_map(&map, &dev) == want, "{tag} {path}: bytes through the map differ");
    }
}

#[test]
fn default_layout_4k() {
    check_layout("default", 4096, &[]);
}

#[test]
fn no_64bit_no_flex_bg_4k() {
    check_layout("plain", 4096, &["-O", "^64bit,^flex_bg"]);
}

#[test]
fn one_k_blocks() {
    check_layout("1k", 1024, &[]);
}

#[test]
fn bigalloc_clusters() {
    check_layout("bigalloc", 4096, &["-O", "bigalloc", "-C", "16384"]);
}

#[test]
fn lookup_errors_name_the_problem() {
    let t = TempDir::new("lookup");
    let src = t.path().join("src");
    populate(&src);
    let img = t.path().join("img");
    mkfs(&img, Some(&src), "64M", 4096, &[]);
    let dev = File::open(&img).expect("open image");
    let fs = Ext4::open(&dev).expect("valid image");
    assert!(matches!(fs.lookup("/nope"), Err(Ext4Error::NotFound { .. })));
    assert!(matches!(fs.lookup("/small.txt/x"), Err(Ext4Error::NotADirectory { .. })));
    assert!(matches!(fs.file_map("/a"), Err(Ext4Error::NotRegularFile { .. })));
    assert!(matches!(fs.extent_map(0), Err(Ext4Error::InodeOutOfRange { .. })));
    assert!(matches!(fs.extent_map(u32::MAX), Err(Ext4Error::InodeOutOfRange { .. })));
    assert_eq!(fs.lookup("/a/./b/../b/big.bin").expect("dot entries"), fs.lookup("/a/b/big.bin").expect("plain"));
    let deep = "/a".repeat(300);
    assert!(matches!(fs.lookup(&deep), Err(Ext4Error::PathTooLong { .. })));
}
