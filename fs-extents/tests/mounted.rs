//! FIEMAP on a loop-mounted ext4 image against the ext4 reader on the same
//! image after unmounting: both give identical maps, and reading the raw
//! image at the translated offsets gives exactly each file's bytes. Needs
//! root and loop devices; without them the test prints why and skips.

mod common;

use common::{bytes, mkfs, read_through_map, run, skip_mount, write_sparse, Mount, TempDir};
use fs_extents::{Ext4, ExtentKind, ExtentMap, TrackedFile};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

const CHUNK_BYTES: usize = 4096;
/// Entries in the directory the kernel turns into an htree.
const HTREE_ENTRIES: usize = 3000;
/// `i_flags`: hashed-index directory.
const EXT4_INDEX_FL: u32 = 0x1000;

/// Two files written a chunk at a time, alternately, each write fsynced, so
/// the allocator interleaves their blocks.
fn write_interleaved(a: &Path, b: &Path, chunks: u64) {
    let mut fa = File::create(a).expect("create");
    let mut fb = File::create(b).expect("create");
    for i in 0..chunks {
        fa.write_all(&bytes(100 + i, CHUNK_BYTES)).expect("write");
        fa.sync_all().expect("fsync");
        fb.write_all(&bytes(200 + i, CHUNK_BYTES)).expect("write");
        fb.sync_all().expect("fsync");
    }
}

struct Case {
    path: &'static str,
    map: ExtentMap,
    bytes: Vec<u8>,
}

#[test]
fn fiemap_and_ext4_reader_agree_on_fragmented_files() {
    let t = TempDir::new("mounted");
    let img = t.path().join("img");
    mkfs(&img, None, "64M", 4096, &[]);
    let mnt = t.path().join("mnt");
    let mount = match Mount::try_new(&img, &mnt) {
        Ok(m) => m,
        Err(why) => {
            skip_mount(&why);
            return;
        }
    };
    write_interleaved(&mnt.join("a.bin"), &mnt.join("b.bin"), 64);
    write_sparse(&mnt.join("sparse.bin"), 2000, 7);
    // Unwritten extents: preallocate 1 MiB, write 8 KiB in the middle.
    run("fallocate", &["-l", "1M", mnt.join("prealloc.bin").to_str().expect("utf-8")]);
    OpenOptions::new().write(true).open(mnt.join("prealloc.bin")).expect("open").write_all_at(&bytes(9, 8192), 300 * 1024).expect("write");
    // Punched holes in a contiguous file.
    fs::write(mnt.join("punched.bin"), bytes(11, 256 * 1024)).expect("write");
    for off in ["16384", "65536", "131072"] {
        run("fallocate", &["-p", "-o", off, "-l", "8192", mnt.join("punched.bin").to_str().expect("utf-8")]);
    }
    // A directory large enough for the kernel to index it (htree).
    fs::create_dir_all(mnt.join("big")).expect("mkdir");
    let mut kernel_inos = Vec::new();
    for i in 0..HTREE_ENTRIES {
        let p = mnt.join(format!("big/entry-with-a-long-name-{i:05}"));
        fs::write(&p, b"x").expect("create");
        if i % 499 == 0 {
            kernel_inos.push((format!("/big/entry-with-a-long-name-{i:05}"), fs::metadata(&p).expect("stat").ino()));
        }
    }
    fs::create_dir_all(mnt.join("d/e")).expect("mkdir");
    fs::write(mnt.join("d/e/tail.txt"), bytes(13, 5000)).expect("write");

    let canonical_img = fs::canonicalize(&img).expect("image path");
    let mut cases = Vec::new();
    for path in ["/a.bin", "/b.bin", "/sparse.bin", "/prealloc.bin", "/punched.bin", "/d/e/tail.txt"] {
        let file = mnt.join(&path[1..]);
        let tracked = TrackedFile::open(&file).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(fs::canonicalize(&tracked.device().path).expect("device path"), canonical_img, "the loop device maps to its backing file");
        assert_eq!(tracked.device().base.0, 0);
        let want = fs::read(&file).expect("read through the kernel");
        let dev = File::open(&img).expect("open image");
        assert!(read_through_map(tracked.map(), &dev) == want, "{path}: FIEMAP map reads other bytes than the file");
        cases.push(Case { path, map: ExtentMap::clone(tracked.map()), bytes: want });
    }
    let a = &cases[0].map;
    assert!(a.extents().len() > 1, "interleaved writes did not fragment a.bin: {:?}", a.extents());
    assert!(cases[2].map.extents().len() >= 1000, "sparse file has {} extents", cases[2].map.extents().len());
    assert!(cases[3].map.extents().iter().any(|e| e.kind == ExtentKind::Unwritten));
    assert!(cases[3].map.extents().iter().any(|e| e.kind == ExtentKind::Written));
    mount.unmount();

    let dev = File::open(&img).expect("open image");
    let fs = Ext4::open(&dev).expect("cleanly unmounted image");
    for c in &cases {
        let map = fs.file_map(c.path).unwrap_or_else(|e| panic!("{}: {e}", c.path));
        assert_eq!(map.extents(), c.map.extents(), "{}: sources disagree", c.path);
        assert!(map.same_layout(&c.map), "{}: sources disagree on size", c.path);
        assert_eq!(map.stamp(), c.map.stamp(), "{}: sources disagree on the change stamp", c.path);
        assert!(read_through_map(&map, &dev) == c.bytes, "{}: ext4 map reads other bytes", c.path);
    }
    let big = fs.inode(fs.lookup("/big").expect("dir")).expect("inode");
    assert_ne!(big.flags & EXT4_INDEX_FL, 0, "the kernel made /big an htree directory");
    for (path, ino) in kernel_inos {
        assert_eq!(u64::from(fs.lookup(&path).expect("htree entry")), ino, "{path}");
    }
}

#[test]
fn refresh_bumps_the_version_when_the_file_changes() {
    let t = TempDir::new("refresh");
    let img = t.path().join("img");
    mkfs(&img, None, "32M", 4096, &[]);
    let mnt = t.path().join("mnt");
    let _mount = match Mount::try_new(&img, &mnt) {
        Ok(m) => m,
        Err(why) => {
            skip_mount(&why);
            return;
        }
    };
    let path = mnt.join("f.bin");
    fs::write(&path, bytes(1, 8192)).expect("write");
    let mut tracked = TrackedFile::open(&path).expect("map");
    assert_eq!(tracked.map().version(), 1);
    assert!(!tracked.may_have_changed().expect("stat"));
    assert!(!tracked.refresh().expect("refresh"), "nothing changed: same version");
    assert_eq!(tracked.map().version(), 1);

    let mut f = OpenOptions::new().append(true).open(&path).expect("open");
    f.write_all(&bytes(2, 1 << 20)).expect("append");
    f.sync_all().expect("fsync");
    assert!(tracked.may_have_changed().expect("stat"));
    let old = std::sync::Arc::clone(tracked.map());
    assert!(tracked.refresh().expect("refresh"));
    assert_eq!(tracked.map().version(), 2);
    assert_eq!(tracked.map().size(), 8192 + (1 << 20));
    assert!(old.translate(fs_extents::FileOffset(8192), 4096).is_err(), "the old map still ends at the old size");
    assert!(!tracked.may_have_changed().expect("stat"));
}

/// Where the file system starts 1 MiB into the image (loop `offset`).
const LOOP_OFFSET_BYTES: u64 = 1 << 20;

#[test]
fn loop_offset_becomes_the_device_base() {
    let t = TempDir::new("offset");
    let img = t.path().join("img");
    let offset_opt = format!("offset={LOOP_OFFSET_BYTES}");
    mkfs(&img, None, "32M", 4096, &["-E", &offset_opt]);
    let mnt = t.path().join("mnt");
    let mount = match Mount::try_with_options(&img, &mnt, &format!("loop,{offset_opt}")) {
        Ok(m) => m,
        Err(why) => {
            skip_mount(&why);
            return;
        }
    };
    let path = mnt.join("f.bin");
    write_sparse(&path, 64, 5);
    let tracked = TrackedFile::open(&path).expect("map");
    assert_eq!(tracked.device().base, fs_extents::DevOffset(LOOP_OFFSET_BYTES));
    let want = fs::read(&path).expect("read");
    let dev = File::open(&img).expect("image");
    assert!(read_through_map(tracked.map(), &dev) == want, "FIEMAP + loop offset reads other bytes");
    let fiemap_map = ExtentMap::clone(tracked.map());
    drop(tracked);
    mount.unmount();

    let fs = Ext4::open_at(&dev, fs_extents::DevOffset(LOOP_OFFSET_BYTES)).expect("file system at the offset");
    let map = fs.file_map("/f.bin").expect("map");
    assert_eq!(map.extents(), fiemap_map.extents());
    assert!(read_through_map(&map, &dev) == want);
    assert!(matches!(Ext4::open(&dev), Err(fs_extents::Ext4Error::BadMagic { .. })), "no file system at byte 0");
}
