//! The device every engine of a perf run uses. By default (as root) a fresh
//! RAM-backed kernel block device with no file system (zram, else a loop
//! device over /dev/shm), filled with incompressible bytes and removed
//! afterwards; without root a file in a temporary directory, labelled as
//! such. `--dev` is the user's own block device or file; `--pci` a real
//! controller for our driver, its kernel twin (if any) given with `--dev`.

use crate::bed::BedChoice;
use anyhow::{bail, Context, Result};
use fs_extents::scratch::{self, Prefer, ScratchFs};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Bytes written per call while filling a fresh device.
const FILL_CHUNK: usize = 1 << 20;
/// The logical block size assumed for plain files (what O_DIRECT needs on
/// the common file systems).
const FILE_BLOCK: u32 = 4096;

/// What the kernel engines open and what our driver's namespace holds.
#[derive(Debug)]
pub struct Target {
    /// The block device or file (None: `--pci` without `--dev`, kernel engines cannot run).
    pub path: Option<PathBuf>,
    /// "raw zram (/dev/zram3, made by this run)", ...
    pub label: String,
    /// Bytes of `path`.
    pub size: u64,
    /// Logical block size of `path` (I/O sizes and offsets are multiples of it).
    pub block: u32,
    pub is_block_device: bool,
    scratch: Option<ScratchFs>,
    tmp_dir: Option<PathBuf>,
}

impl Target {
    /// The default target: a scratch device of `size` bytes (as root), else a file.
    pub fn fresh(choice: BedChoice, size: u64) -> Result<Target> {
        for s in scratch::reap_stale() {
            eprintln!("removed a scratch device a killed run left behind: {s}");
        }
        let prefer = match choice {
            BedChoice::Files => None,
            BedChoice::Auto => Some(Prefer::Any),
            BedChoice::Zram => Some(Prefer::ZramOnly),
            BedChoice::Loop => Some(Prefer::LoopOnly),
        };
        let t = match prefer.map(|p| ScratchFs::create_raw(size.max(scratch::SIZE_MIN_BYTES), p)) {
            Some(Ok(dev)) => {
                let path = dev.device().to_path_buf();
                let block = logical_block_size(&path).unwrap_or(512);
                let label = format!("{} ({}, {} MiB, made by this run, removed at exit)", dev.label(), path.display(), dev.size() >> 20);
                Target { size: dev.size(), path: Some(path), label, block, is_block_device: true, scratch: Some(dev), tmp_dir: None }
            }
            Some(Err(e)) if choice != BedChoice::Auto => return Err(anyhow::Error::new(e).context("making the scratch block device (--bed)")),
            other => {
                let why = match other {
                    Some(Err(e)) => e.to_string(),
                    _ => "--bed files".into(),
                };
                let dir = std::env::temp_dir().join(format!("sfbench-perf-{}", std::process::id()));
                std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
                let path = dir.join("device.img");
                let f = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
                f.set_len(size).with_context(|| format!("sizing {}", path.display()))?;
                let label = format!("a FILE in {} (NOT a block device: {why})", dir.display());
                eprintln!("device: {label}");
                Target { size, path: Some(path), label, block: FILE_BLOCK, is_block_device: false, scratch: None, tmp_dir: Some(dir) }
            }
        };
        t.fill(size)?;
        Ok(t)
    }

    /// The user's own block device or file.
    pub fn user(path: &Path) -> Result<Target> {
        let meta = std::fs::metadata(path).with_context(|| format!("--dev {}", path.display()))?;
        let is_block_device = meta.file_type().is_block_device();
        if !is_block_device && !meta.is_file() {
            bail!("--dev {}: not a block device or a regular file", path.display());
        }
        let f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let size = crate::run::size_of(&f)?;
        let block = if is_block_device { logical_block_size(path).unwrap_or(512) } else { FILE_BLOCK };
        let label = format!("{} ({})", path.display(), if is_block_device { "block device" } else { "file" });
        Ok(Target { path: Some(path.to_path_buf()), label, size, block, is_block_device, scratch: None, tmp_dir: None })
    }

    /// No kernel path: `--pci` alone.
    pub fn none() -> Target {
        Target { path: None, label: "none (--pci without --dev: kernel engines cannot run)".into(), size: 0, block: 512, is_block_device: false, scratch: None, tmp_dir: None }
    }

    /// Whether this run made the device (and may write it freely).
    pub fn is_ours(&self) -> bool {
        self.scratch.is_some() || self.tmp_dir.is_some()
    }

    /// Fails when the block device holds a mounted file system (writes would corrupt it).
    pub fn check_not_mounted(&self) -> Result<()> {
        let Some(p) = &self.path else { return Ok(()) };
        if !self.is_block_device {
            return Ok(());
        }
        let rdev = std::fs::metadata(p)?.rdev();
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        for l in mounts.lines() {
            let mut f = l.split_whitespace();
            let (Some(src), Some(at)) = (f.next(), f.next()) else { continue };
            if !src.starts_with("/dev/") {
                continue;
            }
            let same = std::fs::metadata(src).map(|m| m.file_type().is_block_device() && m.rdev() == rdev).unwrap_or(false);
            if same {
                bail!("refusing to write {}: it is mounted on {at}; unmount it first (umount {at}) if you really mean to overwrite it", p.display());
            }
        }
        Ok(())
    }

    /// Writes incompressible bytes over the first `len` bytes, so reads of a
    /// RAM-backed device copy data instead of returning unwritten zero pages.
    fn fill(&self, len: u64) -> Result<()> {
        let Some(p) = &self.path else { return Ok(()) };
        let f = open(p, true)?.0;
        let pool = nvme::DmaPool::new(nvme::PoolOptions { limit_bytes: 4 << 20, allow_fallback: true });
        let mut aligned = pool.alloc(FILL_CHUNK).context("a buffer for filling the device")?;
        let mut off = 0u64;
        let end = len.min(self.size);
        while off < end {
            let n = usize::try_from((end - off).min(FILL_CHUNK as u64)).unwrap_or(FILL_CHUNK);
            super::ops::fill_random(&mut aligned.as_mut_slice()[..n], off);
            f.write_all_at(&aligned.as_mut_slice()[..n], off).with_context(|| format!("filling {} at {off}", p.display()))?;
            off += n as u64;
        }
        f.sync_all().with_context(|| format!("syncing {}", p.display()))?;
        Ok(())
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        if let Some(s) = self.scratch.take() {
            let what = format!("{} ({})", s.label(), s.device().display());
            match s.close() {
                Ok(()) => eprintln!("device: removed {what}"),
                Err(e) => eprintln!("warning: device cleanup: {e}"),
            }
        }
        if let Some(d) = self.tmp_dir.take() {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// Opens `path` for the kernel engines with O_DIRECT (writable when
/// `write`); where the file system refuses O_DIRECT, through the page cache
/// with a note.
pub fn open(path: &Path, write: bool) -> Result<(File, Option<String>)> {
    let mut o = OpenOptions::new();
    o.read(true).write(write);
    match o.clone().custom_flags(libc::O_DIRECT).open(path) {
        Ok(f) => Ok((f, None)),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            let f = o.open(path).with_context(|| format!("opening {}", path.display()))?;
            Ok((f, Some(format!("{}: no O_DIRECT on this file system; the kernel engines go through the page cache", path.display()))))
        }
        Err(e) => Err(e).with_context(|| format!("opening {}{}", path.display(), if write { " for writing" } else { "" })),
    }
}

/// A block device's logical block size, from sysfs.
fn logical_block_size(dev: &Path) -> Option<u32> {
    let rdev = std::fs::metadata(dev).ok()?.rdev();
    let sys = PathBuf::from(format!("/sys/dev/block/{}:{}", libc::major(rdev), libc::minor(rdev)));
    // A partition has no queue directory of its own: its disk's applies.
    let q = if sys.join("queue").exists() { sys.join("queue") } else { sys.join("../queue") };
    std::fs::read_to_string(q.join("logical_block_size")).ok()?.trim().parse().ok()
}
