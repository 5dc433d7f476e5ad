//! FIEMAP on a loop-mounted XFS image: reading the raw image at the
//! translated offsets gives exactly each file's bytes (holes, unwritten
//! extents and interleaved allocations included). Needs root, loop devices
//! and xfsprogs; without them the test prints why and skips.

mod common;

use common::{bytes, read_through_map, run, skip_mount, write_sparse, Mount, TempDir};
use fs_extents::{ExtentKind, TrackedFile};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::process::Command;

/// Smallest XFS file system mkfs.xfs 6.x accepts.
const XFS_IMAGE_SIZE: &str = "300M";

#[test]
fn fiemap_on_xfs_reads_the_files_bytes() {
    if Command::new("mkfs.xfs").arg("-V").output().is_err() {
        skip_mount("mkfs.xfs not installed (apt-get install xfsprogs)");
        return;
    }
    let t = TempDir::new("xfs");
    let img = t.path().join("img");
    run("truncate", &["-s", XFS_IMAGE_SIZE, img.to_str().expect("utf-8")]);
    run("mkfs.xfs", &["-q", "-f", img.to_str().expect("utf-8")]);
    let mnt = t.path().join("mnt");
    let _mount = match Mount::try_new(&img, &mnt) {
        Ok(m) => m,
        Err(why) => {
            skip_mount(&why);
            return;
        }
    };
    let (mut a, mut b) = (File::create(mnt.join("a")).expect("create"), File::create(mnt.join("b")).expect("create"));
    for i in 0..32 {
        a.write_all(&bytes(i, 4096)).expect("write");
        a.sync_all().expect("fsync");
        b.write_all(&bytes(100 + i, 4096)).expect("write");
        b.sync_all().expect("fsync");
    }
    write_sparse(&mnt.join("sparse"), 200, 3);
    run("fallocate", &["-l", "1M", mnt.join("prealloc").to_str().expect("utf-8")]);
    OpenOptions::new().write(true).open(mnt.join("prealloc")).expect("open").write_all_at(&bytes(5, 8192), 256 * 1024).expect("write");

    let dev = File::open(&img).expect("image");
    for name in ["a", "b", "sparse", "prealloc"] {
        let path = mnt.join(name);
        let tracked = TrackedFile::open(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(fs::canonicalize(&tracked.device().path).expect("device"), fs::canonicalize(&img).expect("image"));
        let want = fs::read(&path).expect("read through the kernel");
        assert!(read_through_map(tracked.map(), &dev) == want, "{name}: bytes through the map differ");
        if name == "sparse" {
            assert!(tracked.map().extents().len() >= 100, "{:?}", tracked.map().extents().len());
        }
        if name == "prealloc" {
            assert!(tracked.map().extents().iter().any(|e| e.kind == ExtentKind::Unwritten));
        }
    }
}
