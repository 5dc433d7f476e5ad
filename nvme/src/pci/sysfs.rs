//! The PCI device as sysfs shows it: ids, the bound driver, the IOMMU
//! group, the kernel's block devices on it and whether any is mounted, and
//! binding to another driver (`driver_override` + `drivers_probe`, as SPDK's
//! `setup.sh` does).
//!
//! Every path is under a root directory (`/` on a real machine), so the
//! logic runs in tests against a fake tree in a temporary directory.

use super::Bdf;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The kernel NVMe driver, which `reset` binds a device back to.
pub const KERNEL_NVME: &str = "nvme";
/// The drivers `bind` accepts.
pub const USER_DRIVERS: [&str; 2] = ["vfio-pci", "uio_pci_generic"];
/// PCI class of an NVMe controller (mass storage, NVM, NVMe): 0x010802.
pub const CLASS_NVME: u32 = 0x01_08_02;
/// How long `bind`/`reset` wait for the kernel to finish probing.
const PROBE_WAIT_MS: u64 = 5_000;

/// Errors of the sysfs layer.
#[derive(Debug, thiserror::Error)]
pub enum SysfsError {
    #[error("PCI device {bdf} not found ({path} does not exist); list devices with `lspci -D` and pass the full address like 0000:01:00.0")]
    NotFound { bdf: Bdf, path: PathBuf },
    #[error("reading {path}")]
    Read { path: PathBuf, source: io::Error },
    #[error("writing {value:?} to {path}{hint}")]
    Write { path: PathBuf, value: String, source: io::Error, hint: &'static str },
    #[error("{path}: unexpected contents {text:?}")]
    Parse { path: PathBuf, text: String },
    #[error("refusing to touch {bdf}: {dev} is mounted on {mountpoint}; unmount it first (umount {mountpoint}) if you really mean to give this controller to user space")]
    Mounted { bdf: Bdf, dev: String, mountpoint: String },
    #[error("driver {driver:?} is not one we bind to; use one of vfio-pci, uio_pci_generic (or `reset` for the kernel nvme driver)")]
    UnknownDriver { driver: String },
    #[error("driver {driver} is not loaded ({path} missing) and modprobe {driver} failed: {why}")]
    DriverMissing { driver: String, path: PathBuf, why: String },
    #[error("{bdf} has no IOMMU group: VFIO needs an IOMMU; boot with intel_iommu=on (or amd_iommu=on), or bind to uio_pci_generic instead")]
    NoIommuGroup { bdf: Bdf },
    #[error("after binding, {bdf} is bound to {got} instead of {want}; see `dmesg` for why the kernel refused")]
    BindFailed { bdf: Bdf, want: String, got: String },
}

fn io_hint(e: &io::Error) -> &'static str {
    if e.kind() == io::ErrorKind::PermissionDenied {
        " (needs root: run with sudo)"
    } else {
        ""
    }
}

/// A sysfs (and procfs) tree rooted at `root`.
#[derive(Debug, Clone)]
pub struct Sysfs {
    root: PathBuf,
}

impl Default for Sysfs {
    fn default() -> Self {
        Sysfs::new("/")
    }
}

impl Sysfs {
    pub fn new(root: impl Into<PathBuf>) -> Sysfs {
        Sysfs { root: root.into() }
    }

    /// `path` (absolute, like "/sys/bus/pci") under the root.
    pub fn path(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }

    /// The device's directory, checked to exist.
    pub fn device_dir(&self, bdf: &Bdf) -> Result<PathBuf, SysfsError> {
        let p = self.path(&format!("/sys/bus/pci/devices/{bdf}"));
        if p.exists() {
            Ok(p)
        } else {
            Err(SysfsError::NotFound { bdf: bdf.clone(), path: p })
        }
    }

    fn read(&self, path: &Path) -> Result<String, SysfsError> {
        fs::read_to_string(path).map(|s| s.trim().to_string()).map_err(|source| SysfsError::Read { path: path.to_path_buf(), source })
    }

    fn write(&self, path: &Path, value: &str) -> Result<(), SysfsError> {
        fs::write(path, value).map_err(|source| SysfsError::Write { path: path.to_path_buf(), value: value.to_string(), hint: io_hint(&source), source })
    }

    fn read_hex(&self, path: &Path) -> Result<u32, SysfsError> {
        let t = self.read(path)?;
        u32::from_str_radix(t.trim_start_matches("0x"), 16).map_err(|_| SysfsError::Parse { path: path.to_path_buf(), text: t })
    }

    /// Vendor, device and class ids.
    pub fn ids(&self, bdf: &Bdf) -> Result<DeviceIds, SysfsError> {
        let d = self.device_dir(bdf)?;
        Ok(DeviceIds { vendor: self.read_hex(&d.join("vendor"))?, device: self.read_hex(&d.join("device"))?, class: self.read_hex(&d.join("class"))? })
    }

    /// The driver the device is bound to, if any.
    pub fn driver(&self, bdf: &Bdf) -> Result<Option<String>, SysfsError> {
        let link = self.device_dir(bdf)?.join("driver");
        match fs::read_link(&link) {
            Ok(t) => Ok(t.file_name().map(|n| n.to_string_lossy().into_owned())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(SysfsError::Read { path: link, source }),
        }
    }

    /// The device's IOMMU group number, if it has one.
    pub fn iommu_group(&self, bdf: &Bdf) -> Result<Option<u32>, SysfsError> {
        let link = self.device_dir(bdf)?.join("iommu_group");
        match fs::read_link(&link) {
            Ok(t) => {
                let name = t.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                name.parse().map(Some).map_err(|_| SysfsError::Parse { path: link, text: name })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(SysfsError::Read { path: link, source }),
        }
    }

    /// Block devices (namespaces and their partitions) the kernel nvme
    /// driver created for this controller: `nvme/nvme*/nvme*n*[p*]`.
    pub fn block_devices(&self, bdf: &Bdf) -> Result<Vec<String>, SysfsError> {
        let nvme = self.device_dir(bdf)?.join("nvme");
        let mut out = Vec::new();
        for ctrl in list_dir(&nvme) {
            for ns in list_dir(&nvme.join(&ctrl)) {
                if !is_namespace(&ctrl, &ns) {
                    continue;
                }
                out.extend(list_dir(&nvme.join(&ctrl).join(&ns)).into_iter().filter(|p| p.starts_with(ns.as_str()) && p.len() > ns.len()));
                out.push(ns);
            }
        }
        out.sort();
        Ok(out)
    }

    /// Refuses a device whose block devices carry a mounted file system.
    pub fn check_not_mounted(&self, bdf: &Bdf) -> Result<(), SysfsError> {
        let devs = self.block_devices(bdf)?;
        if devs.is_empty() {
            return Ok(());
        }
        let mounts_path = self.path("/proc/mounts");
        let mounts = match fs::read_to_string(&mounts_path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
            Err(source) => return Err(SysfsError::Read { path: mounts_path, source }),
        };
        for line in mounts.lines() {
            let mut f = line.split_whitespace();
            let (Some(src), Some(mnt)) = (f.next(), f.next()) else { continue };
            let Some(name) = src.strip_prefix("/dev/") else { continue };
            if devs.iter().any(|d| d == name) {
                return Err(SysfsError::Mounted { bdf: bdf.clone(), dev: src.to_string(), mountpoint: mnt.to_string() });
            }
        }
        Ok(())
    }

    /// Binds the device to `driver` (vfio-pci or uio_pci_generic). Returns
    /// the driver it was bound to before (None if unbound). Refuses mounted
    /// devices; a device already on `driver` is left alone.
    pub fn bind(&self, bdf: &Bdf, driver: &str) -> Result<Option<String>, SysfsError> {
        if !USER_DRIVERS.contains(&driver) {
            return Err(SysfsError::UnknownDriver { driver: driver.to_string() });
        }
        let dir = self.device_dir(bdf)?;
        let before = self.driver(bdf)?;
        if before.as_deref() == Some(driver) {
            return Ok(before);
        }
        if driver == "vfio-pci" && self.iommu_group(bdf)?.is_none() {
            return Err(SysfsError::NoIommuGroup { bdf: bdf.clone() });
        }
        self.check_not_mounted(bdf)?;
        self.ensure_driver(driver)?;
        self.rebind(bdf, &dir, driver, before.as_deref())?;
        Ok(before)
    }

    /// Gives the device back to the kernel nvme driver (clears the override).
    pub fn reset(&self, bdf: &Bdf) -> Result<Option<String>, SysfsError> {
        let dir = self.device_dir(bdf)?;
        let before = self.driver(bdf)?;
        if before.as_deref() == Some(KERNEL_NVME) {
            return Ok(before);
        }
        self.ensure_driver(KERNEL_NVME)?;
        self.rebind(bdf, &dir, KERNEL_NVME, before.as_deref())?;
        Ok(before)
    }

    fn rebind(&self, bdf: &Bdf, dir: &Path, driver: &str, current: Option<&str>) -> Result<(), SysfsError> {
        // The override makes the next probe pick `driver` and no other; for
        // the kernel driver we clear it so the device matches by its class.
        let value = if driver == KERNEL_NVME { "\n".to_string() } else { driver.to_string() };
        self.write(&dir.join("driver_override"), &value)?;
        if current.is_some() {
            self.write(&dir.join("driver/unbind"), &bdf.to_string())?;
        }
        self.write(&self.path("/sys/bus/pci/drivers_probe"), &bdf.to_string())?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(PROBE_WAIT_MS);
        loop {
            let now = self.driver(bdf)?;
            if now.as_deref() == Some(driver) {
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                return Err(SysfsError::BindFailed { bdf: bdf.clone(), want: driver.to_string(), got: now.unwrap_or_else(|| "no driver".into()) });
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Loads `driver`'s module when its sysfs directory is missing.
    fn ensure_driver(&self, driver: &str) -> Result<(), SysfsError> {
        let path = self.path(&format!("/sys/bus/pci/drivers/{driver}"));
        if path.exists() {
            return Ok(());
        }
        // Only a real system can load modules; a fake tree says so.
        if self.root != Path::new("/") {
            return Err(SysfsError::DriverMissing { driver: driver.into(), path, why: "not a real sysfs root".into() });
        }
        let module = driver.replace('-', "_");
        let why = match std::process::Command::new("modprobe").arg(&module).status() {
            Ok(s) if s.success() && path.exists() => return Ok(()),
            Ok(s) => format!("modprobe exited with {s}"),
            Err(e) => e.to_string(),
        };
        Err(SysfsError::DriverMissing { driver: driver.into(), path, why })
    }

    /// Reads `len` bytes of PCI config space at `offset` (the sysfs `config` file).
    pub fn config_read(&self, bdf: &Bdf, offset: u64, buf: &mut [u8]) -> Result<(), SysfsError> {
        use std::os::unix::fs::FileExt;
        let p = self.device_dir(bdf)?.join("config");
        let f = fs::File::open(&p).map_err(|source| SysfsError::Read { path: p.clone(), source })?;
        f.read_exact_at(buf, offset).map_err(|source| SysfsError::Read { path: p, source })
    }

    /// Writes PCI config space at `offset`.
    pub fn config_write(&self, bdf: &Bdf, offset: u64, buf: &[u8]) -> Result<(), SysfsError> {
        use std::os::unix::fs::FileExt;
        let p = self.device_dir(bdf)?.join("config");
        let f = fs::OpenOptions::new().write(true).open(&p);
        let r = f.and_then(|f| f.write_all_at(buf, offset));
        r.map_err(|source| SysfsError::Write { path: p, value: format!("{buf:02x?} at {offset:#x}"), hint: io_hint(&source), source })
    }
}

/// Vendor, device and class of a PCI function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceIds {
    pub vendor: u32,
    pub device: u32,
    pub class: u32,
}

impl DeviceIds {
    pub fn is_nvme(&self) -> bool {
        self.class == CLASS_NVME
    }
}

fn list_dir(p: &Path) -> Vec<String> {
    let Ok(rd) = fs::read_dir(p) else { return Vec::new() };
    let mut v: Vec<String> = rd.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

/// Whether `ns` under controller directory `ctrl` ("nvme0") names a
/// namespace block device: "nvme0n1", or with native multipath the path
/// device "nvme0c0n1" (whose head is "nvme0n1").
fn is_namespace(ctrl: &str, ns: &str) -> bool {
    let Some(rest) = ns.strip_prefix("nvme") else { return false };
    ctrl.starts_with("nvme") && rest.contains('n') && ns.chars().last().is_some_and(|c| c.is_ascii_digit()) && !rest.contains('p')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A fake sysfs: one NVMe controller at 0000:00:04.0 bound to nvme with
    /// namespace nvme0n1 and partition nvme0n1p1, in IOMMU group 3.
    struct Fake {
        dir: PathBuf,
        sys: Sysfs,
        bdf: Bdf,
    }

    impl Fake {
        fn new(name: &str) -> Fake {
            let dir = std::env::temp_dir().join(format!("nvme-sysfs-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            let dev = dir.join("sys/bus/pci/devices/0000:00:04.0");
            fs::create_dir_all(dev.join("nvme/nvme0/nvme0n1/nvme0n1p1")).unwrap();
            fs::create_dir_all(dev.join("nvme/nvme0/device")).unwrap();
            for d in ["nvme", "vfio-pci"] {
                fs::create_dir_all(dir.join("sys/bus/pci/drivers").join(d)).unwrap();
            }
            fs::create_dir_all(dir.join("sys/kernel/iommu_groups/3")).unwrap();
            fs::create_dir_all(dir.join("proc")).unwrap();
            fs::write(dev.join("vendor"), "0x1b36\n").unwrap();
            fs::write(dev.join("device"), "0x0010\n").unwrap();
            fs::write(dev.join("class"), "0x010802\n").unwrap();
            fs::write(dev.join("driver_override"), "(null)\n").unwrap();
            fs::write(dev.join("config"), [0u8; 64]).unwrap();
            fs::write(dir.join("sys/bus/pci/drivers/nvme/unbind"), "").unwrap();
            fs::write(dir.join("sys/bus/pci/drivers_probe"), "").unwrap();
            symlink("../../../../bus/pci/drivers/nvme", dev.join("driver")).unwrap();
            symlink("../../../kernel/iommu_groups/3", dev.join("iommu_group")).unwrap();
            fs::write(dir.join("proc/mounts"), "proc /proc proc rw 0 0\n/dev/sda1 / ext4 rw 0 0\n").unwrap();
            Fake { sys: Sysfs::new(&dir), dir, bdf: Bdf::parse("0000:00:04.0").unwrap() }
        }
        fn dev(&self) -> PathBuf {
            self.dir.join("sys/bus/pci/devices/0000:00:04.0")
        }
    }

    impl Drop for Fake {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }

    #[test]
    fn reads_ids_driver_group_and_block_devices() {
        let f = Fake::new("ids");
        let ids = f.sys.ids(&f.bdf).unwrap();
        assert_eq!(ids, DeviceIds { vendor: 0x1b36, device: 0x0010, class: CLASS_NVME });
        assert!(ids.is_nvme());
        assert_eq!(f.sys.driver(&f.bdf).unwrap().as_deref(), Some("nvme"));
        assert_eq!(f.sys.iommu_group(&f.bdf).unwrap(), Some(3));
        assert_eq!(f.sys.block_devices(&f.bdf).unwrap(), vec!["nvme0n1".to_string(), "nvme0n1p1".to_string()]);
    }

    #[test]
    fn missing_device_is_named_with_the_fix() {
        let f = Fake::new("missing");
        let other = Bdf::parse("0000:00:05.0").unwrap();
        let e = f.sys.ids(&other).unwrap_err();
        assert!(matches!(e, SysfsError::NotFound { .. }));
        assert!(e.to_string().contains("lspci -D"), "{e}");
    }

    #[test]
    fn mounted_partition_is_refused() {
        let f = Fake::new("mounted");
        fs::write(f.dir.join("proc/mounts"), "/dev/nvme0n1p1 /data ext4 rw 0 0\n").unwrap();
        let e = f.sys.bind(&f.bdf, "vfio-pci").unwrap_err();
        match &e {
            SysfsError::Mounted { dev, mountpoint, .. } => {
                assert_eq!(dev, "/dev/nvme0n1p1");
                assert_eq!(mountpoint, "/data");
            }
            other => panic!("wrong error {other}"),
        }
        assert!(e.to_string().contains("umount /data"), "{e}");
        // Nothing was written.
        assert_eq!(fs::read_to_string(f.dev().join("driver_override")).unwrap(), "(null)\n");
    }

    #[test]
    fn similar_names_are_not_mistaken_for_mounts() {
        let f = Fake::new("similar");
        fs::write(f.dir.join("proc/mounts"), "/dev/nvme0n10 /x ext4 rw 0 0\n/dev/nvme1n1 /y xfs rw 0 0\n").unwrap();
        f.sys.check_not_mounted(&f.bdf).unwrap();
    }

    #[test]
    fn bind_writes_override_unbind_and_probe_then_checks_the_result() {
        let f = Fake::new("bind");
        // A fake kernel does not react to drivers_probe: the device stays
        // on nvme, which bind must report instead of claiming success.
        let e = f.sys.rebind(&f.bdf, &f.dev(), "vfio-pci", Some("nvme"));
        assert_eq!(fs::read_to_string(f.dev().join("driver_override")).unwrap(), "vfio-pci");
        assert_eq!(fs::read_to_string(f.dir.join("sys/bus/pci/drivers/nvme/unbind")).unwrap(), "0000:00:04.0");
        assert_eq!(fs::read_to_string(f.dir.join("sys/bus/pci/drivers_probe")).unwrap(), "0000:00:04.0");
        assert!(matches!(e, Err(SysfsError::BindFailed { ref got, .. }) if got == "nvme"), "{e:?}");
    }

    #[test]
    fn bind_to_current_driver_is_a_no_op_and_unknown_drivers_are_refused() {
        let f = Fake::new("noop");
        assert_eq!(f.sys.reset(&f.bdf).unwrap().as_deref(), Some("nvme"));
        assert!(matches!(f.sys.bind(&f.bdf, "e1000"), Err(SysfsError::UnknownDriver { .. })));
    }

    #[test]
    fn vfio_without_iommu_group_names_the_fix() {
        let f = Fake::new("nogroup");
        fs::remove_file(f.dev().join("iommu_group")).unwrap();
        let e = f.sys.bind(&f.bdf, "vfio-pci").unwrap_err();
        assert!(e.to_string().contains("intel_iommu=on"), "{e}");
    }

    #[test]
    fn missing_driver_module_is_reported() {
        let f = Fake::new("nouio");
        let e = f.sys.bind(&f.bdf, "uio_pci_generic").unwrap_err();
        assert!(matches!(e, SysfsError::DriverMissing { .. }), "{e}");
    }

    #[test]
    fn config_space_round_trip() {
        let f = Fake::new("config");
        f.sys.config_write(&f.bdf, 4, &[0x06, 0x00]).unwrap();
        let mut b = [0u8; 2];
        f.sys.config_read(&f.bdf, 4, &mut b).unwrap();
        assert_eq!(b, [0x06, 0x00]);
    }

    #[test]
    fn namespace_names() {
        assert!(is_namespace("nvme0", "nvme0n1"));
        assert!(is_namespace("nvme0", "nvme0c0n1"));
        assert!(!is_namespace("nvme0", "nvme0n1p1"));
        assert!(!is_namespace("nvme0", "device"));
        assert!(!is_namespace("nvme0", "ng0n1"));
    }
}
