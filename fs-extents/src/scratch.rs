//! A scratch file system on a RAM-backed kernel block device, for the
//! kernel-path baselines and the tests that compare against them: a fresh
//! zram device (made through `/sys/class/zram-control/hot_add`, never one the
//! system already has), or where the kernel has no zram a loop device with
//! direct I/O over a file in `/dev/shm`; ext4 made on it and mounted.
//!
//! Everything it made is undone when the [`ScratchFs`] drops (unmount,
//! device reset and removal, the mount directory): also on an error path
//! that unwinds. A device or mount it did not make is never touched. Mount
//! points live under [`RUN_DIR`] named by the owning process id, so a later
//! run can remove what a killed run left behind ([`reap_stale`]).
//!
//! [`ScratchFs::create_raw`] makes the same device without a file system
//! (for raw block I/O benchmarks), with the same cleanup guarantees.
//!
//! Needs root (mount, device set-up); [`ScratchFs::create`] says so when it
//! is not.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// Where scratch mount points are made: `RUN_DIR/<pid>-<n>`.
pub const RUN_DIR: &str = "/run/sfe-scratch";
/// The smallest device that holds an ext4 file system with room for data.
pub const SIZE_MIN_BYTES: u64 = 16 << 20;
const ZRAM_CONTROL: &str = "/sys/class/zram-control";
/// Attempts (50 ms apart) at removing a zram device that is still busy.
const ZRAM_REMOVE_TRIES: u32 = 100;

/// What the file system sits on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    /// A zram device: a real kernel block device in RAM (4 KiB sectors).
    Zram,
    /// A loop device with direct I/O over a file in `/dev/shm` (every read
    /// takes a hop through the loop worker thread: a poor stand-in).
    Loop,
}

impl DeviceKind {
    pub fn name(self) -> &'static str {
        match self {
            DeviceKind::Zram => "zram",
            DeviceKind::Loop => "loop",
        }
    }
}

/// Which devices [`ScratchFs::create`] may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefer {
    /// zram, else a loop device.
    Any,
    ZramOnly,
    LoopOnly,
}

/// Errors making the scratch file system.
#[derive(Debug, thiserror::Error)]
pub enum ScratchError {
    #[error("making a block device and mounting a file system needs root; run as root (sudo)")]
    NotRoot,
    #[error("a scratch device of {0} bytes is too small; at least {SIZE_MIN_BYTES} bytes")]
    TooSmall(u64),
    #[error("this kernel has no zram ({ZRAM_CONTROL} is missing; modprobe zram, or allow a loop device)")]
    NoZram,
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("`{command}` failed: {stderr}")]
    Command { command: String, stderr: String },
    #[error("neither zram nor a loop device could be had: zram: {zram}; loop: {lo}")]
    NoDevice { zram: String, lo: String },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> ScratchError {
    let what = what.into();
    move |source| ScratchError::Io { what, source }
}

/// Runs a command; its stderr becomes the error.
fn run(cmd: &str, args: &[&str]) -> Result<String, ScratchError> {
    let command = format!("{cmd} {}", args.join(" "));
    let out = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| ScratchError::Command { command: command.clone(), stderr: format!("{e} (is it installed? scripts/install-deps.sh installs e2fsprogs and mount)") })?;
    if !out.status.success() {
        return Err(ScratchError::Command { command, stderr: String::from_utf8_lossy(&out.stderr).trim().to_string() });
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// True when this process runs as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// An ext4 file system on a fresh RAM-backed block device, mounted; undone on drop.
#[derive(Debug)]
pub struct ScratchFs {
    kind: DeviceKind,
    device: PathBuf,
    /// What removes the device (None once removed).
    undo: Option<Undo>,
    mount: PathBuf,
    mounted: bool,
    size: u64,
    /// `RUN_DIR/<pid>-<n>.raw`, naming a raw device's owner (raw devices only).
    marker: Option<PathBuf>,
}

/// Extension of the marker files of raw devices under [`RUN_DIR`].
const RAW_MARKER_EXT: &str = ".raw";

#[derive(Debug)]
enum Undo {
    Zram(u32),
    Loop(PathBuf),
}

impl ScratchFs {
    /// Makes a device of `size` bytes, puts ext4 (4 KiB blocks) on it and
    /// mounts it under [`RUN_DIR`].
    pub fn create(size: u64, prefer: Prefer) -> Result<ScratchFs, ScratchError> {
        if !is_root() {
            return Err(ScratchError::NotRoot);
        }
        if size < SIZE_MIN_BYTES {
            return Err(ScratchError::TooSmall(size));
        }
        let size = size.next_multiple_of(1 << 20);
        let dev = match prefer {
            Prefer::ZramOnly => Self::zram(size)?,
            Prefer::LoopOnly => Self::loop_dev(size)?,
            Prefer::Any => match Self::zram(size) {
                Ok(d) => d,
                Err(z) => Self::loop_dev(size).map_err(|l| ScratchError::NoDevice { zram: z.to_string(), lo: l.to_string() })?,
            },
        };
        dev.format_and_mount()
    }

    /// Makes a device of `size` bytes with no file system on it (raw block
    /// I/O); removed on drop like a formatted one. [`ScratchFs::mount_point`]
    /// is empty.
    pub fn create_raw(size: u64, prefer: Prefer) -> Result<ScratchFs, ScratchError> {
        if !is_root() {
            return Err(ScratchError::NotRoot);
        }
        if size < SIZE_MIN_BYTES {
            return Err(ScratchError::TooSmall(size));
        }
        let size = size.next_multiple_of(1 << 20);
        let mut dev = match prefer {
            Prefer::ZramOnly => Self::zram(size)?,
            Prefer::LoopOnly => Self::loop_dev(size)?,
            Prefer::Any => match Self::zram(size) {
                Ok(d) => d,
                Err(z) => Self::loop_dev(size).map_err(|l| ScratchError::NoDevice { zram: z.to_string(), lo: l.to_string() })?,
            },
        };
        // No mount point names the owner of a raw device: a marker file does,
        // so that `reap_stale` can remove it after a killed run.
        fs::create_dir_all(RUN_DIR).map_err(io_err(format!("creating {RUN_DIR}")))?;
        let marker = Path::new(RUN_DIR).join(format!("{}-{}{RAW_MARKER_EXT}", std::process::id(), next_n()));
        fs::write(&marker, dev.device.to_string_lossy().as_bytes()).map_err(io_err(format!("writing {}", marker.display())))?;
        dev.marker = Some(marker);
        Ok(dev)
    }

    /// Whether a file system is mounted from the device (false for [`ScratchFs::create_raw`]).
    pub fn is_mounted(&self) -> bool {
        self.mounted
    }

    fn zram(size: u64) -> Result<ScratchFs, ScratchError> {
        if !Path::new(ZRAM_CONTROL).join("hot_add").exists() {
            return Err(ScratchError::NoZram);
        }
        let n: u32 = fs::read_to_string(Path::new(ZRAM_CONTROL).join("hot_add"))
            .map_err(io_err("adding a zram device (hot_add)"))?
            .trim()
            .parse()
            .map_err(|_| ScratchError::Io { what: "hot_add answered something other than a device number".into(), source: io::ErrorKind::InvalidData.into() })?;
        // From here on, Drop removes the device.
        let fs = ScratchFs {
            kind: DeviceKind::Zram,
            device: PathBuf::from(format!("/dev/zram{n}")),
            undo: Some(Undo::Zram(n)),
            mount: PathBuf::new(),
            mounted: false,
            size,
            marker: None,
        };
        let sys = PathBuf::from(format!("/sys/block/zram{n}"));
        fs::write(sys.join("disksize"), size.to_string()).map_err(io_err(format!("sizing /dev/zram{n}")))?;
        wait_for_node(&fs.device)?;
        Ok(fs)
    }

    fn loop_dev(size: u64) -> Result<ScratchFs, ScratchError> {
        let dir = if Path::new("/dev/shm").is_dir() { PathBuf::from("/dev/shm") } else { std::env::temp_dir() };
        let file = dir.join(format!("sfe-scratch-{}-{}.img", std::process::id(), next_n()));
        let f = fs::File::create(&file).map_err(io_err(format!("creating {}", file.display())))?;
        let set = f.set_len(size);
        drop(f);
        if let Err(e) = set {
            let _ = fs::remove_file(&file);
            return Err(io_err(format!("sizing {}", file.display()))(e));
        }
        let path = file.to_str().unwrap_or_default().to_string();
        let dev = match run("losetup", &["--find", "--show", "--direct-io=on", &path]) {
            Ok(d) => d,
            Err(e) => {
                let _ = fs::remove_file(&file);
                return Err(e);
            }
        };
        Ok(ScratchFs { kind: DeviceKind::Loop, device: PathBuf::from(dev), undo: Some(Undo::Loop(file)), mount: PathBuf::new(), mounted: false, size, marker: None })
    }

    fn format_and_mount(mut self) -> Result<ScratchFs, ScratchError> {
        let dev = self.device.to_string_lossy().to_string();
        // No lazy init: the device's metadata is all written now, not by a
        // kernel thread during the measurements.
        run("mkfs.ext4", &["-q", "-F", "-b", "4096", "-E", "lazy_itable_init=0,lazy_journal_init=0", "-L", "sfe-scratch", &dev])?;
        let mount = Path::new(RUN_DIR).join(format!("{}-{}", std::process::id(), next_n()));
        fs::create_dir_all(&mount).map_err(io_err(format!("creating the mount point {}", mount.display())))?;
        self.mount = mount;
        run("mount", &["-t", "ext4", "-o", "noatime", &dev, &self.mount.to_string_lossy()])?;
        self.mounted = true;
        Ok(self)
    }

    pub fn kind(&self) -> DeviceKind {
        self.kind
    }
    /// The block device (`/dev/zramN` or `/dev/loopN`).
    pub fn device(&self) -> &Path {
        &self.device
    }
    /// Where the file system is mounted.
    pub fn mount_point(&self) -> &Path {
        &self.mount
    }
    /// Bytes of the device.
    pub fn size(&self) -> u64 {
        self.size
    }
    /// "ext4 on zram" or "ext4 on loop (/dev/shm)"; "raw zram" or "raw
    /// loop (...)" without a file system.
    pub fn label(&self) -> String {
        if !self.mounted {
            return match self.kind {
                DeviceKind::Zram => "raw zram".into(),
                DeviceKind::Loop => "raw loop (/dev/shm, direct I/O)".into(),
            };
        }
        match self.kind {
            DeviceKind::Zram => "ext4 on zram".into(),
            DeviceKind::Loop => "ext4 on loop (/dev/shm, direct I/O)".into(),
        }
    }

    /// Writes everything to the device: after this, the device's bytes hold
    /// every file as the file system maps it.
    pub fn sync(&self) -> Result<(), ScratchError> {
        let d = fs::File::open(&self.mount).map_err(io_err(format!("opening {}", self.mount.display())))?;
        // SAFETY: syncfs takes a valid open descriptor, which `d` holds.
        let r = unsafe { libc::syncfs(std::os::fd::AsRawFd::as_raw_fd(&d)) };
        if r != 0 {
            return Err(io_err(format!("syncfs {}", self.mount.display()))(io::Error::last_os_error()));
        }
        Ok(())
    }

    fn teardown(&mut self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.mounted {
            match run("umount", &[&self.mount.to_string_lossy()]) {
                Ok(_) => self.mounted = false,
                Err(e) => {
                    // Still busy (a file left open): detach it now, the kernel
                    // finishes when the last user goes.
                    match run("umount", &["-l", &self.mount.to_string_lossy()]) {
                        Ok(_) => self.mounted = false,
                        Err(_) => problems.push(e.to_string()),
                    }
                }
            }
        }
        if !self.mounted && !self.mount.as_os_str().is_empty() {
            let _ = fs::remove_dir(&self.mount);
            self.mount = PathBuf::new();
        }
        match self.undo.take() {
            None => {}
            Some(Undo::Zram(n)) => {
                let sys = PathBuf::from(format!("/sys/block/zram{n}"));
                if sys.exists() {
                    // The last user may be closing it still (io_uring's
                    // worker threads drop their file references after the
                    // ring is gone): busy is retried for a while.
                    for attempt in 1..=ZRAM_REMOVE_TRIES {
                        let _ = fs::write(sys.join("reset"), "1");
                        match fs::write(Path::new(ZRAM_CONTROL).join("hot_remove"), n.to_string()) {
                            Ok(()) => break,
                            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && attempt < ZRAM_REMOVE_TRIES => std::thread::sleep(std::time::Duration::from_millis(50)),
                            Err(e) => {
                                problems.push(format!("removing /dev/zram{n}: {e}"));
                                break;
                            }
                        }
                    }
                }
            }
            Some(Undo::Loop(file)) => {
                if let Err(e) = run("losetup", &["-d", &self.device.to_string_lossy()]) {
                    problems.push(e.to_string());
                }
                let _ = fs::remove_file(&file);
            }
        }
        if problems.is_empty() {
            if let Some(m) = self.marker.take() {
                let _ = fs::remove_file(m);
            }
        }
        problems
    }

    /// Unmounts and removes the device now, reporting what could not be undone.
    pub fn close(mut self) -> Result<(), ScratchError> {
        let p = self.teardown();
        if p.is_empty() {
            Ok(())
        } else {
            Err(ScratchError::Command { command: "cleaning up the scratch device".into(), stderr: p.join("; ") })
        }
    }
}

impl Drop for ScratchFs {
    fn drop(&mut self) {
        for p in self.teardown() {
            eprintln!("warning: scratch device cleanup: {p}");
        }
    }
}

fn next_n() -> u32 {
    static N: AtomicU32 = AtomicU32::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// udev may take a moment to make `/dev/zramN` after hot_add.
fn wait_for_node(dev: &Path) -> Result<(), ScratchError> {
    for _ in 0..200 {
        if dev.exists() {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    Err(ScratchError::Io { what: format!("{} did not appear", dev.display()), source: io::ErrorKind::NotFound.into() })
}

/// Removes what killed runs left: mounts under [`RUN_DIR`] whose owning
/// process is gone, and the devices under them. Returns what it removed.
pub fn reap_stale() -> Vec<String> {
    let mut done = Vec::new();
    if !is_root() {
        return done;
    }
    let Ok(mounts) = fs::read_to_string("/proc/self/mounts") else { return done };
    for line in mounts.lines() {
        let mut it = line.split_whitespace();
        let (Some(dev), Some(at)) = (it.next(), it.next()) else { continue };
        let Some(name) = at.strip_prefix(RUN_DIR).and_then(|s| s.strip_prefix('/')) else { continue };
        let Some(pid) = name.split('-').next().and_then(|p| p.parse::<u32>().ok()) else { continue };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        if run("umount", &["-l", at]).is_err() {
            continue;
        }
        let _ = fs::remove_dir(at);
        remove_device(dev);
        done.push(format!("{dev} on {at}"));
    }
    // Raw devices (no mount point): their marker files name the owner.
    for entry in fs::read_dir(RUN_DIR).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(RAW_MARKER_EXT) else { continue };
        let Some(pid) = stem.split('-').next().and_then(|p| p.parse::<u32>().ok()) else { continue };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let dev = fs::read_to_string(entry.path()).unwrap_or_default().trim().to_string();
        remove_device(&dev);
        let zram_left = dev.strip_prefix("/dev/").is_some_and(|n| n.starts_with("zram") && Path::new("/sys/block").join(n).exists());
        if zram_left {
            // Still busy: a later run tries again.
            continue;
        }
        let _ = fs::remove_file(entry.path());
        done.push(format!("{dev} (raw)"));
    }
    done
}

/// Removes a zram or loop device a killed run made (loop: with its backing
/// file when it is one of ours).
fn remove_device(dev: &str) {
    if let Some(n) = dev.strip_prefix("/dev/zram").and_then(|n| n.parse::<u32>().ok()) {
        let _ = fs::write(format!("/sys/block/zram{n}/reset"), "1");
        let _ = fs::write(Path::new(ZRAM_CONTROL).join("hot_remove"), n.to_string());
    } else if dev.starts_with("/dev/loop") {
        let backing = fs::read_to_string(format!("/sys/block/{}/loop/backing_file", dev.trim_start_matches("/dev/"))).unwrap_or_default();
        let _ = run("losetup", &["-d", dev]);
        let backing = backing.trim();
        if backing.contains("sfe-scratch-") {
            let _ = fs::remove_file(backing);
        }
    }
}

/// Writes `bytes` to a new file at `path` (replacing one there). With
/// `fragment = Some(n)`, the file's blocks are allocated `n` bytes at a time,
/// alternating with a filler file that is removed afterwards, so on ext4 no
/// two consecutive pieces are adjacent on the device: the file has many
/// extents, as a file written over time on a busy file system does.
pub fn write_file(path: &Path, bytes: &[u8], fragment: Option<u64>) -> Result<(), ScratchError> {
    use std::io::Write;
    let ctx = |what: &str| io_err(format!("{what} {}", path.display()));
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(ctx("replacing")(e)),
        _ => {}
    }
    let mut f = fs::OpenOptions::new().write(true).create_new(true).open(path).map_err(ctx("creating"))?;
    if let Some(piece) = fragment.filter(|&p| p > 0) {
        let filler_path = path.with_extension("filler");
        let filler = fs::OpenOptions::new().write(true).create(true).truncate(true).open(&filler_path).map_err(ctx("creating a filler beside"))?;
        let len = bytes.len() as u64;
        let mut off = 0u64;
        let mut res = Ok(());
        while off < len && res.is_ok() {
            let n = piece.min(len - off);
            res = fallocate(&f, off, n).and_then(|()| fallocate(&filler, off, piece));
            off += n;
        }
        drop(filler);
        let _ = fs::remove_file(&filler_path);
        res.map_err(ctx("allocating the pieces of"))?;
    }
    f.write_all(bytes).map_err(ctx("writing"))?;
    f.sync_all().map_err(ctx("syncing"))?;
    Ok(())
}

fn fallocate(f: &fs::File, off: u64, len: u64) -> io::Result<()> {
    let o = i64::try_from(off).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let l = i64::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: fallocate takes an open descriptor (`f` keeps it open) and plain integers.
    let r = unsafe { libc::fallocate(std::os::fd::AsRawFd::as_raw_fd(f), 0, o, l) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileTypeExt;

    /// A raw device is a block device with no mount, named by a marker file,
    /// and both are gone after drop. Root only (skipped otherwise).
    #[test]
    fn raw_device_is_made_and_removed() {
        if !is_root() {
            eprintln!("skipped: not root");
            return;
        }
        let d = ScratchFs::create_raw(SIZE_MIN_BYTES, Prefer::Any).unwrap();
        let dev = d.device().to_path_buf();
        assert!(fs::metadata(&dev).unwrap().file_type().is_block_device());
        assert!(!d.is_mounted());
        assert!(d.label().starts_with("raw "), "{}", d.label());
        let marker = d.marker.clone().unwrap();
        assert_eq!(fs::read_to_string(&marker).unwrap(), dev.to_string_lossy());
        let mounts = fs::read_to_string("/proc/self/mounts").unwrap();
        assert!(!mounts.lines().any(|l| l.starts_with(&format!("{} ", dev.display()))));
        drop(d);
        assert!(!marker.exists());
        if let Some(name) = dev.to_str().and_then(|s| s.strip_prefix("/dev/")).filter(|n| n.starts_with("zram")) {
            assert!(!Path::new("/sys/block").join(name).exists(), "{name} still there");
        }
    }
}
