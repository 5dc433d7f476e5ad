//! The test bed of the main job: XRP's setup on this machine. As root, a
//! fresh RAM-backed kernel block device (zram, else a loop device over
//! `/dev/shm`) with ext4 on it, the databases written as files on it (one of
//! them deliberately fragmented, so chains cross extents), and the 2 MiB
//! hugepages DMA memory needs. Without root, or where no device can be had,
//! the files stay in the output directory and the run says so.
//!
//! Everything made here is undone on drop (also when a run fails or is
//! interrupted: Ctrl-C sets [`interrupted`], the measurement loops return an
//! error, and the unwinding drops the bed). Hugepages reserved here go back.

use anyhow::{Context, Result};
use fs_extents::scratch::{self, Prefer, ScratchFs};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// Bytes allocated alternately to a fragmented file and a filler file: each
/// extent of a fragmented file is at most this long.
pub const FRAGMENT_BYTES: u64 = 64 << 10;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static SIGNALS: AtomicU32 = AtomicU32::new(0);

/// True once the user asked the run to stop (Ctrl-C, SIGTERM).
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

/// Fails with "interrupted" once the user asked the run to stop.
pub fn check_interrupted() -> Result<()> {
    if interrupted() {
        anyhow::bail!("interrupted: stopping and cleaning up");
    }
    Ok(())
}

/// Ctrl-C and SIGTERM stop the run cleanly: the first one asks the
/// measurement loops to stop (so devices and mounts are undone on the way
/// out), a third one exits at once.
pub fn install_signal_handler() {
    let r = ctrlc::set_handler(|| {
        INTERRUPTED.store(true, Ordering::Relaxed);
        let n = SIGNALS.fetch_add(1, Ordering::Relaxed) + 1;
        if n == 1 {
            eprintln!("\ninterrupted: finishing the current point, then cleaning up (press Ctrl-C twice more to exit at once)");
        } else if n >= 3 {
            std::process::exit(130);
        }
    });
    if let Err(e) = r {
        eprintln!("warning: no Ctrl-C handler ({e}); an interrupted run may leave its scratch device behind (the next run removes it)");
    }
}

/// Which bed to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BedChoice {
    /// A zram device as root, else a loop device, else plain files (with a note).
    Auto,
    /// A zram device; fail when it cannot be had.
    Zram,
    /// A loop device over /dev/shm; fail when it cannot be had.
    Loop,
    /// Plain files in the output directory, read through the page cache
    /// (today's behaviour without root).
    Files,
}

/// Where the data files live and what reads them.
#[derive(Debug)]
pub struct Bed {
    fs: Option<ScratchFs>,
    dir: PathBuf,
    /// "ext4 on zram", or what the fallback is.
    pub label: String,
    /// Why a kernel block device is not in use, when it is not.
    pub fallback: Option<String>,
    hugepages: Option<Hugepages>,
}

impl Bed {
    /// Makes the bed of `size` bytes; plain files go to `out`.
    pub fn new(choice: BedChoice, size: u64, out: &Path) -> Result<Bed> {
        for s in scratch::reap_stale() {
            eprintln!("removed a scratch device a killed run left behind: {s}");
        }
        let prefer = match choice {
            BedChoice::Files => None,
            BedChoice::Auto => Some(Prefer::Any),
            BedChoice::Zram => Some(Prefer::ZramOnly),
            BedChoice::Loop => Some(Prefer::LoopOnly),
        };
        let made = prefer.map(|p| ScratchFs::create(size, p));
        match made {
            Some(Ok(fs)) => {
                let dir = fs.mount_point().to_path_buf();
                let label = format!("{}, O_DIRECT", fs.label());
                eprintln!("bed: {} ({}, {} MiB) mounted on {}", fs.label(), fs.device().display(), fs.size() >> 20, dir.display());
                Ok(Bed { fs: Some(fs), dir, label, fallback: None, hugepages: None })
            }
            Some(Err(e)) if choice != BedChoice::Auto => Err(anyhow::Error::new(e).context("making the scratch block device (--bed)")),
            other => {
                let why = match other {
                    Some(Err(e)) => e.to_string(),
                    _ => "--bed files".to_string(),
                };
                std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
                eprintln!("bed: NO kernel block device ({why}); the databases are plain files in {} and the kernel engines read them through the page cache", out.display());
                Ok(Bed { fs: None, dir: out.to_path_buf(), label: "page cache, no block device".into(), fallback: Some(why), hugepages: None })
            }
        }
    }

    /// True when the files live on a kernel block device we made.
    pub fn has_device(&self) -> bool {
        self.fs.is_some()
    }

    /// Places the file built at `staged` (on any file system) on the bed as
    /// `name`, fragmented when asked; returns its path on the bed. Without a
    /// device the staged file is the file.
    pub fn place(&self, staged: &Path, name: &str, fragment: bool) -> Result<PathBuf> {
        let Some(fs) = &self.fs else { return Ok(staged.to_path_buf()) };
        let dst = self.dir.join(name);
        let bytes = std::fs::read(staged).with_context(|| format!("reading {}", staged.display()))?;
        scratch::write_file(&dst, &bytes, fragment.then_some(FRAGMENT_BYTES)).with_context(|| format!("writing {} on {}", dst.display(), fs.label()))?;
        fs.sync().context("writing the file system to the device")?;
        Ok(dst)
    }

    /// Reserves enough 2 MiB hugepages for `bytes` of DMA memory (as root),
    /// giving them back on drop; says what it did.
    pub fn reserve_hugepages(&mut self, bytes: u64) {
        if !scratch::is_root() {
            eprintln!("hugepages: not root, so none reserved; DMA memory uses ordinary pages (sfbench setup --hugemem N as root reserves them)");
            return;
        }
        let Ok(before) = nvme::setup::hugepages() else { return };
        let want_pages = bytes.div_ceil(2 << 20);
        if before.free >= want_pages {
            eprintln!("hugepages: {} free, {} needed", before.free, want_pages);
            return;
        }
        let total_mb = (before.total + want_pages - before.free) * 2;
        match nvme::setup::reserve(total_mb) {
            Ok(after) if after.free >= want_pages => {
                eprintln!("hugepages: reserved {} more 2 MiB pages for DMA memory ({} needed; given back at exit)", after.total - before.total, want_pages);
                self.hugepages = Some(Hugepages { total_before: before.total });
            }
            Ok(after) => {
                eprintln!("hugepages: asked for {want_pages}, the kernel gave {} free (memory fragmented?); DMA memory falls back to ordinary pages for the rest", after.free);
                self.hugepages = Some(Hugepages { total_before: before.total });
            }
            Err(e) => eprintln!("hugepages: could not reserve {want_pages} pages ({e}); DMA memory uses ordinary pages"),
        }
    }
}

#[derive(Debug)]
struct Hugepages {
    total_before: u64,
}

impl Drop for Bed {
    fn drop(&mut self) {
        if let Some(h) = self.hugepages.take() {
            if let Err(e) = nvme::setup::release_to(h.total_before) {
                eprintln!("warning: giving back hugepages: {e}");
            }
        }
        if let Some(fs) = self.fs.take() {
            let what = format!("{} ({})", fs.label(), fs.device().display());
            match fs.close() {
                Ok(()) => eprintln!("bed: unmounted and removed {what}"),
                Err(e) => eprintln!("warning: bed cleanup: {e}"),
            }
        }
    }
}
