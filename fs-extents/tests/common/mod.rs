//! Helpers for the tests on real file systems: temp dirs, mkfs, loop mounts,
//! reading a device through a map, deterministic data.
#![allow(dead_code)]

use fs_extents::{ExtentMap, FileOffset, Target};
use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// A directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!("fs-extents-{tag}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).expect("create temp dir");
        Self(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Runs a command, panicking with its stderr if it fails.
pub fn run(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd).args(args).output().unwrap_or_else(|e| panic!("{cmd}: {e} (install e2fsprogs/util-linux)"));
    assert!(out.status.success(), "{cmd} {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// `mkfs.ext4 -F -q -b <bs> [opts] -d <src> <img> <size>`.
pub fn mkfs(img: &Path, src: Option<&Path>, size: &str, block_size: u32, opts: &[&str]) {
    let bs = block_size.to_string();
    let mut args = vec!["-F", "-q", "-b", &bs];
    args.extend_from_slice(opts);
    if let Some(src) = src {
        args.push("-d");
        args.push(src.to_str().expect("utf-8 temp path"));
    }
    args.push(img.to_str().expect("utf-8 temp path"));
    args.push(size);
    run("mkfs.ext4", &args);
}

/// Deterministic pseudo-random bytes (xorshift64*).
pub fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}

/// A file with data in every other block, holes between, and a size that is
/// not a multiple of the block size: `blocks` blocks of 4 KiB, plus 100 bytes.
pub fn write_sparse(path: &Path, blocks: u64, seed: u64) {
    let f = File::create(path).expect("create sparse file");
    for b in (0..blocks).step_by(2) {
        f.write_all_at(&bytes(seed + b, 4096), b * 4096).expect("write");
    }
    f.set_len(blocks * 4096 + 100).expect("set_len");
}

/// Reads the file's bytes `[0, size)` from `dev` through `map`: device
/// segments from the device, zero segments as zeros.
pub fn read_through_map(map: &ExtentMap, dev: &File) -> Vec<u8> {
    let mut out = Vec::new();
    if map.size() == 0 {
        return out;
    }
    for seg in map.segments(FileOffset(0), map.size()) {
        let seg = seg.expect("whole file translates");
        let mut buf = vec![0u8; usize::try_from(seg.len).expect("small test files")];
        if let Target::Device(d) = seg.target {
            dev.read_exact_at(&mut buf, d.0).expect("read device at translated offset");
        }
        out.extend_from_slice(&buf);
    }
    out
}

/// A loop mount, unmounted on drop.
pub struct Mount(pub PathBuf);

impl Mount {
    /// Mounts `img` on `dir` with `-o loop`, or says why it cannot.
    pub fn try_new(img: &Path, dir: &Path) -> Result<Self, String> {
        Self::try_with_options(img, dir, "loop")
    }

    /// Mounts with `-o <options>` (which must set up the loop device).
    pub fn try_with_options(img: &Path, dir: &Path, options: &str) -> Result<Self, String> {
        // mount needs root: say so instead of failing.
        let uid =
            fs::read_to_string("/proc/self/status").ok().and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1).unwrap_or("").to_owned()));
        if uid.as_deref() != Some("0") {
            return Err("not root".into());
        }
        fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let out = Command::new("mount").args(["-o", options, img.to_str().expect("utf-8"), dir.to_str().expect("utf-8")]).output().map_err(|e| format!("mount: {e}"))?;
        if !out.status.success() {
            return Err(format!("mount -o loop failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
        Ok(Self(dir.to_owned()))
    }

    pub fn unmount(self) {
        drop(self);
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let ok = Command::new("umount").arg(&self.0).status().map(|s| s.success()).unwrap_or(false);
        if !ok {
            eprintln!("warning: umount {} failed", self.0.display());
        }
    }
}

/// Skips the mount part of a test, saying why; with
/// `FS_EXTENTS_REQUIRE_MOUNT=1` (CI as root) a skip is a failure instead.
pub fn skip_mount(why: &str) {
    if std::env::var("FS_EXTENTS_REQUIRE_MOUNT").as_deref() == Ok("1") {
        panic!("FS_EXTENTS_REQUIRE_MOUNT=1 but the loop mount is impossible: {why}");
    }
    eprintln!("SKIPPED the loop-mount part of this test: {why}");
}
