//! Which device, at which offset, holds a file system: from the file's
//! `st_dev` through sysfs to a whole disk (partition start added) or, for a
//! loop device, to its backing file (loop offset added). The sysfs root is a
//! parameter so tests can use a fake tree.

use crate::addr::DevOffset;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Bytes per sysfs sector: a partition's `start` counts 512-byte sectors
/// whatever the device's block size.
pub const SYSFS_SECTOR_BYTES: u64 = 512;

/// The device the driver reads, and where the file system starts on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceTarget {
    /// A whole block device (`/dev/nvme0n1`) or a loop device's backing file.
    pub path: PathBuf,
    /// Byte offset of the file system on it.
    pub base: DevOffset,
}

/// Why a file system's device could not be found.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// `st_dev` has no block device in sysfs.
    #[error("device {major}:{minor} is not a block device (tmpfs, overlayfs, a btrfs subvolume?); put the file on a file system on a disk or loop device")]
    NotABlockDevice {
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
    /// A device-mapper or md device: blocks are remapped below it.
    #[error("{name} is a device-mapper or md device; mapping through it is not supported, use a plain partition or loop device")]
    Stacked {
        /// The device name.
        name: String,
    },
    /// The backing file of a loop device is gone.
    #[error("loop device {name} has no usable backing file ({backing:?}); detach and re-attach it")]
    LoopBacking {
        /// The loop device.
        name: String,
        /// What sysfs says.
        backing: String,
    },
    /// A sysfs read failed or held something unexpected.
    #[error("reading {path}")]
    Sysfs {
        /// The sysfs file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// Offsets overflow.
    #[error("{path}: offset overflows 64 bits")]
    Overflow {
        /// The sysfs file.
        path: PathBuf,
    },
}

fn read_trimmed(path: &Path) -> Result<String, DeviceError> {
    fs::read_to_string(path).map(|s| s.trim_end_matches('\n').to_owned()).map_err(|source| DeviceError::Sysfs { path: path.to_owned(), source })
}

fn read_u64(path: &Path) -> Result<u64, DeviceError> {
    read_trimmed(path)?.parse().map_err(|e| DeviceError::Sysfs { path: path.to_owned(), source: io::Error::new(io::ErrorKind::InvalidData, e) })
}

/// Resolves block device `major:minor` under `sysfs` (normally `/sys`).
pub fn resolve(sysfs: &Path, major: u32, minor: u32) -> Result<DeviceTarget, DeviceError> {
    let link = sysfs.join("dev/block").join(format!("{major}:{minor}"));
    let dir = fs::canonicalize(&link).map_err(|_| DeviceError::NotABlockDevice { major, minor })?;
    let (disk, mut base) = if dir.join("partition").exists() {
        let start_path = dir.join("start");
        let sectors = read_u64(&start_path)?;
        let start = sectors.checked_mul(SYSFS_SECTOR_BYTES).ok_or(DeviceError::Overflow { path: start_path })?;
        let parent = dir.parent().ok_or(DeviceError::NotABlockDevice { major, minor })?.to_owned();
        (parent, start)
    } else {
        (dir, 0)
    };
    let name = disk.file_name().map(|n| n.to_string_lossy().into_owned()).ok_or(DeviceError::NotABlockDevice { major, minor })?;
    if disk.join("dm").exists() || disk.join("md").exists() {
        return Err(DeviceError::Stacked { name });
    }
    let backing_path = disk.join("loop/backing_file");
    let path = if backing_path.exists() {
        let backing = read_trimmed(&backing_path)?;
        if backing.is_empty() || backing.ends_with(" (deleted)") {
            return Err(DeviceError::LoopBacking { name, backing });
        }
        let offset_path = disk.join("loop/offset");
        let offset = read_u64(&offset_path)?;
        base = base.checked_add(offset).ok_or(DeviceError::Overflow { path: offset_path })?;
        PathBuf::from(backing)
    } else {
        PathBuf::from("/dev").join(&name)
    };
    Ok(DeviceTarget { path, base: DevOffset(base) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    struct FakeSys(PathBuf);

    impl FakeSys {
        fn new(tag: &str) -> Self {
            let root = std::env::temp_dir().join(format!("fs-extents-sysfs-{tag}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&root);
            fs::create_dir_all(root.join("dev/block")).expect("temp dir");
            Self(root)
        }

        fn device(&self, majmin: &str, rel: &str, files: &[(&str, &str)]) {
            let dir = self.0.join("devices").join(rel);
            fs::create_dir_all(&dir).expect("temp dir");
            for (name, content) in files {
                let p = dir.join(name);
                fs::create_dir_all(p.parent().expect("has parent")).expect("temp dir");
                fs::write(p, content).expect("temp file");
            }
            symlink(&dir, self.0.join("dev/block").join(majmin)).expect("symlink");
        }
    }

    impl Drop for FakeSys {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn partition_of_a_disk_adds_its_start() {
        let s = FakeSys::new("part");
        s.device("259:0", "pci/nvme0n1", &[]);
        s.device("259:1", "pci/nvme0n1/nvme0n1p1", &[("partition", "1\n"), ("start", "2048\n")]);
        let t = resolve(&s.0, 259, 1).expect("partition resolves");
        assert_eq!(t, DeviceTarget { path: "/dev/nvme0n1".into(), base: DevOffset(2048 * 512) });
        let whole = resolve(&s.0, 259, 0).expect("disk resolves");
        assert_eq!(whole.base, DevOffset(0));
    }

    #[test]
    fn loop_device_maps_to_its_backing_file() {
        let s = FakeSys::new("loop");
        s.device("7:0", "virtual/loop0", &[("loop/backing_file", "/tmp/img\n"), ("loop/offset", "4096\n")]);
        s.device("259:7", "virtual/loop0/loop0p1", &[("partition", "1\n"), ("start", "8\n")]);
        assert_eq!(resolve(&s.0, 7, 0).expect("loop"), DeviceTarget { path: "/tmp/img".into(), base: DevOffset(4096) });
        assert_eq!(resolve(&s.0, 259, 7).expect("loop partition").base, DevOffset(4096 + 8 * 512));
    }

    #[test]
    fn unmappable_devices_are_errors() {
        let s = FakeSys::new("bad");
        s.device("253:0", "virtual/dm-0", &[("dm/name", "vg-root\n")]);
        s.device("7:1", "virtual/loop1", &[("loop/backing_file", "/tmp/x (deleted)\n"), ("loop/offset", "0\n")]);
        s.device("7:2", "virtual/loop2/loop2p1", &[("partition", "1"), ("start", "lots")]);
        assert!(matches!(resolve(&s.0, 253, 0), Err(DeviceError::Stacked { .. })));
        assert!(matches!(resolve(&s.0, 7, 1), Err(DeviceError::LoopBacking { .. })));
        assert!(matches!(resolve(&s.0, 0, 45), Err(DeviceError::NotABlockDevice { .. })));
        assert!(matches!(resolve(&s.0, 7, 2), Err(DeviceError::Sysfs { .. })));
    }
}
