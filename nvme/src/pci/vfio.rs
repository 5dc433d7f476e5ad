//! VFIO bring-up: container, group (viable?), type-1 IOMMU, device fd, BAR0
//! region, bus mastering; and the DMA mapper that puts each 2 MiB chunk of
//! the pool into the IOMMU at an IOVA we choose.
//!
//! IOVAs are handed out upwards from [`IOVA_BASE`] rather than reusing host
//! virtual addresses: an emulated or small IOMMU may translate only 39 bits
//! (QEMU's intel-iommu default), while user addresses reach 47.

use super::bar::Bar;
use super::sysfs::{Sysfs, SysfsError};
use super::vfio_sys::{self, Fd, VfioSys};
use super::Bdf;
use crate::addr::Iova;
use crate::dma::ChunkMapper;
use std::io;
use std::sync::{Arc, Mutex};

/// First IOVA handed to DMA chunks (4 GiB: above the x86 MSI window and
/// anything a 32-bit-only reserved range covers).
pub const IOVA_BASE: u64 = 1 << 32;
/// Highest IOVA used (39-bit address width: 512 GiB).
pub const IOVA_LIMIT: u64 = 1 << 39;
/// PCI config space: the command register and its bits.
const PCI_COMMAND: u64 = 0x04;
const PCI_COMMAND_MEMORY: u16 = 1 << 1;
const PCI_COMMAND_MASTER: u16 = 1 << 2;

/// Errors of the VFIO bring-up.
#[derive(Debug, thiserror::Error)]
pub enum VfioError {
    #[error(transparent)]
    Sysfs(#[from] SysfsError),
    #[error("{bdf} is bound to {driver}, not vfio-pci; bind it to vfio-pci (as root) first")]
    NotBound { bdf: Bdf, driver: String },
    #[error("{bdf} has no IOMMU group: VFIO needs an IOMMU; boot with intel_iommu=on (or amd_iommu=on), or use uio_pci_generic")]
    NoIommuGroup { bdf: Bdf },
    #[error("opening {what}{hint}")]
    Open { what: String, source: io::Error, hint: &'static str },
    #[error("VFIO API version {got}, expected {want}; the kernel's VFIO is incompatible")]
    ApiVersion { got: i32, want: i32 },
    #[error("the kernel's VFIO has no type-1 IOMMU driver; load vfio_iommu_type1 (modprobe vfio_iommu_type1)")]
    NoType1,
    #[error("IOMMU group {group} of {bdf} is not viable: every device in it must be bound to vfio-pci or to no driver; see /sys/kernel/iommu_groups/{group}/devices and bind the others too")]
    NotViable { bdf: Bdf, group: u32 },
    #[error("VFIO {step} failed for {bdf}")]
    Ioctl { bdf: Bdf, step: &'static str, source: io::Error },
    #[error("BAR0 of {bdf} cannot be mapped (region flags {flags:#x}, size {size}); the device is not a usable NVMe controller")]
    BarNotMappable { bdf: Bdf, flags: u32, size: u64 },
}

fn open_hint(e: &io::Error) -> &'static str {
    match e.kind() {
        io::ErrorKind::NotFound => " (load the modules: modprobe vfio-pci vfio_iommu_type1)",
        io::ErrorKind::PermissionDenied => " (needs root, or ownership of /dev/vfio/*)",
        _ if e.raw_os_error() == Some(libc::EBUSY) => " (another process has the group open)",
        _ => "",
    }
}

/// An open VFIO device: its container, group and device fds (closed on drop).
#[derive(Debug)]
pub struct VfioDevice {
    sys: Arc<dyn VfioSys>,
    bdf: Bdf,
    container: Fd,
    group: Fd,
    device: Fd,
    bar0: vfio_sys::RegionInfo,
    /// Next IOVA to hand out.
    next_iova: Mutex<u64>,
}

impl VfioDevice {
    /// Opens `bdf` (bound to vfio-pci) through `sys`, with bus mastering on.
    pub fn open(sys: Arc<dyn VfioSys>, sysfs: &Sysfs, bdf: &Bdf) -> Result<VfioDevice, VfioError> {
        let driver = sysfs.driver(bdf)?;
        if driver.as_deref() != Some("vfio-pci") {
            return Err(VfioError::NotBound { bdf: bdf.clone(), driver: driver.unwrap_or_else(|| "no driver".into()) });
        }
        let group_no = sysfs.iommu_group(bdf)?.ok_or_else(|| VfioError::NoIommuGroup { bdf: bdf.clone() })?;
        let container = sys.open_container().map_err(|source| VfioError::Open { what: "/dev/vfio/vfio".into(), hint: open_hint(&source), source })?;
        // From here on, `dev` owns the fds: an early return closes them.
        let mut dev = VfioDevice { sys: sys.clone(), bdf: bdf.clone(), container, group: -1, device: -1, bar0: Default::default(), next_iova: Mutex::new(IOVA_BASE) };
        let ioctl = |step: &'static str| move |source: io::Error| VfioError::Ioctl { bdf: bdf.clone(), step, source };
        let v = sys.api_version(container).map_err(ioctl("VFIO_GET_API_VERSION"))?;
        if v != vfio_sys::API_VERSION {
            return Err(VfioError::ApiVersion { got: v, want: vfio_sys::API_VERSION });
        }
        let kind = if sys.check_extension(container, vfio_sys::TYPE1V2_IOMMU).map_err(ioctl("VFIO_CHECK_EXTENSION"))? {
            vfio_sys::TYPE1V2_IOMMU
        } else if sys.check_extension(container, vfio_sys::TYPE1_IOMMU).map_err(ioctl("VFIO_CHECK_EXTENSION"))? {
            vfio_sys::TYPE1_IOMMU
        } else {
            return Err(VfioError::NoType1);
        };
        dev.group = sys.open_group(group_no).map_err(|source| VfioError::Open { what: format!("/dev/vfio/{group_no}"), hint: open_hint(&source), source })?;
        let flags = sys.group_flags(dev.group).map_err(ioctl("VFIO_GROUP_GET_STATUS"))?;
        if flags & vfio_sys::GROUP_FLAGS_VIABLE == 0 {
            return Err(VfioError::NotViable { bdf: bdf.clone(), group: group_no });
        }
        sys.set_container(dev.group, container).map_err(ioctl("VFIO_GROUP_SET_CONTAINER"))?;
        sys.set_iommu(container, kind).map_err(ioctl("VFIO_SET_IOMMU"))?;
        dev.device = sys.device_fd(dev.group, &bdf.to_string()).map_err(ioctl("VFIO_GROUP_GET_DEVICE_FD"))?;
        let bar0 = sys.region_info(dev.device, vfio_sys::BAR0_REGION).map_err(ioctl("VFIO_DEVICE_GET_REGION_INFO (BAR0)"))?;
        if bar0.flags & vfio_sys::REGION_FLAG_MMAP == 0 || bar0.size < super::bar::BAR0_MIN as u64 {
            return Err(VfioError::BarNotMappable { bdf: bdf.clone(), flags: bar0.flags, size: bar0.size });
        }
        dev.bar0 = bar0;
        dev.enable_bus_master()?;
        Ok(dev)
    }

    /// Sets memory-space and bus-master enable in the command register.
    fn enable_bus_master(&self) -> Result<(), VfioError> {
        let ioctl = |step: &'static str| move |source: io::Error| VfioError::Ioctl { bdf: self.bdf.clone(), step, source };
        let cfg = self.sys.region_info(self.device, vfio_sys::CONFIG_REGION).map_err(ioctl("VFIO_DEVICE_GET_REGION_INFO (config)"))?;
        let mut b = [0u8; 2];
        self.sys.pread(self.device, &mut b, cfg.offset + PCI_COMMAND).map_err(ioctl("config space read"))?;
        let cmd = u16::from_le_bytes(b) | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER;
        self.sys.pwrite(self.device, &cmd.to_le_bytes(), cfg.offset + PCI_COMMAND).map_err(ioctl("config space write"))
    }

    /// Maps BAR0.
    pub fn map_bar0(&self) -> Result<Bar, VfioError> {
        let len = usize::try_from(self.bar0.size).map_err(|_| VfioError::BarNotMappable { bdf: self.bdf.clone(), flags: self.bar0.flags, size: self.bar0.size })?;
        self.sys.mmap_bar(self.device, self.bar0.offset, len).map_err(|source| VfioError::Ioctl { bdf: self.bdf.clone(), step: "mmap of BAR0", source })
    }
}

impl ChunkMapper for VfioDevice {
    fn map_chunk(&self, host: *mut u8, len: usize, _hugepages: bool) -> io::Result<Iova> {
        // The IOMMU maps any pages, so chunks need not be hugepages.
        let mut next = self.next_iova.lock().unwrap_or_else(|p| p.into_inner());
        let iova = *next;
        let end = iova.checked_add(len as u64).filter(|&e| e <= IOVA_LIMIT).ok_or_else(|| io::Error::other("IOVA space exhausted"))?;
        self.sys
            .map_dma(self.container, host as u64, iova, len as u64)
            .map_err(|e| io::Error::new(e.kind(), format!("VFIO_IOMMU_MAP_DMA of {len} bytes at IOVA {iova:#x}: {e} (raise RLIMIT_MEMLOCK or run as root)")))?;
        *next = end;
        Ok(Iova(iova))
    }
}

impl Drop for VfioDevice {
    fn drop(&mut self) {
        // Device first, then the group, then the container (which unmaps
        // and unpins every DMA mapping).
        for fd in [self.device, self.group, self.container] {
            if fd >= 0 {
                self.sys.close(fd);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;
    use std::path::PathBuf;

    /// A fake kernel: records calls; knobs for the failure cases.
    #[derive(Debug, Default)]
    struct FakeVfio {
        viable: bool,
        no_type1: bool,
        calls: Mutex<Vec<String>>,
        config: Mutex<[u8; 8]>,
        bar_file: PathBuf,
    }

    impl FakeVfio {
        fn log(&self, s: impl Into<String>) {
            self.calls.lock().unwrap().push(s.into());
        }
    }

    impl VfioSys for FakeVfio {
        fn open_container(&self) -> io::Result<Fd> {
            self.log("open container");
            Ok(10)
        }
        fn api_version(&self, _: Fd) -> io::Result<i32> {
            Ok(0)
        }
        fn check_extension(&self, _: Fd, ext: u32) -> io::Result<bool> {
            Ok(!self.no_type1 && ext == vfio_sys::TYPE1_IOMMU)
        }
        fn open_group(&self, group: u32) -> io::Result<Fd> {
            self.log(format!("open group {group}"));
            Ok(11)
        }
        fn group_flags(&self, _: Fd) -> io::Result<u32> {
            Ok(if self.viable { vfio_sys::GROUP_FLAGS_VIABLE } else { 0 })
        }
        fn set_container(&self, g: Fd, c: Fd) -> io::Result<()> {
            self.log(format!("set container {g} {c}"));
            Ok(())
        }
        fn set_iommu(&self, _: Fd, kind: u32) -> io::Result<()> {
            self.log(format!("set iommu {kind}"));
            Ok(())
        }
        fn device_fd(&self, _: Fd, bdf: &str) -> io::Result<Fd> {
            self.log(format!("device {bdf}"));
            Ok(12)
        }
        fn region_info(&self, _: Fd, index: u32) -> io::Result<vfio_sys::RegionInfo> {
            Ok(vfio_sys::RegionInfo { index, flags: 7, size: 0x4000, offset: u64::from(index) << 40, ..Default::default() })
        }
        fn map_dma(&self, _: Fd, _vaddr: u64, iova: u64, size: u64) -> io::Result<()> {
            self.log(format!("map {iova:#x} {size:#x}"));
            Ok(())
        }
        fn pread(&self, _: Fd, buf: &mut [u8], offset: u64) -> io::Result<()> {
            let off = (offset & 0xff) as usize;
            buf.copy_from_slice(&self.config.lock().unwrap()[off..off + buf.len()]);
            Ok(())
        }
        fn pwrite(&self, _: Fd, buf: &[u8], offset: u64) -> io::Result<()> {
            assert_eq!(offset >> 40, u64::from(vfio_sys::CONFIG_REGION), "config writes go to the config region");
            let off = (offset & 0xff) as usize;
            self.config.lock().unwrap()[off..off + buf.len()].copy_from_slice(buf);
            Ok(())
        }
        fn mmap_bar(&self, _: Fd, _: u64, len: usize) -> io::Result<Bar> {
            let f = std::fs::OpenOptions::new().read(true).write(true).open(&self.bar_file)?;
            Bar::map(&f, 0, len)
        }
        fn close(&self, fd: Fd) {
            self.log(format!("close {fd}"));
        }
    }

    fn tree(name: &str, driver: &str) -> (PathBuf, Sysfs, Bdf) {
        let dir = std::env::temp_dir().join(format!("nvme-vfio-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let dev = dir.join("sys/bus/pci/devices/0000:00:04.0");
        std::fs::create_dir_all(&dev).unwrap();
        std::fs::create_dir_all(dir.join("sys/bus/pci/drivers").join(driver)).unwrap();
        std::fs::create_dir_all(dir.join("sys/kernel/iommu_groups/5")).unwrap();
        symlink(format!("../../../../bus/pci/drivers/{driver}"), dev.join("driver")).unwrap();
        symlink("../../../kernel/iommu_groups/5", dev.join("iommu_group")).unwrap();
        std::fs::write(dir.join("bar"), vec![0u8; 0x4000]).unwrap();
        (dir.clone(), Sysfs::new(&dir), Bdf::parse("0000:00:04.0").unwrap())
    }

    #[test]
    fn bring_up_sequence_maps_chunks_upwards_and_closes_in_order() {
        let (dir, sysfs, bdf) = tree("ok", "vfio-pci");
        let fake = Arc::new(FakeVfio { viable: true, bar_file: dir.join("bar"), ..Default::default() });
        {
            let dev = VfioDevice::open(fake.clone(), &sysfs, &bdf).unwrap();
            let bar = dev.map_bar0().unwrap();
            assert_eq!(bar.len(), 0x4000);
            let cfg = *fake.config.lock().unwrap();
            let cmd = u16::from_le_bytes([cfg[4], cfg[5]]);
            assert_eq!(cmd & 0b110, 0b110, "memory space and bus master enabled");
            let a = dev.map_chunk(std::ptr::null_mut::<u8>().wrapping_add(0x7f00_0000_0000), 2 << 20, true).unwrap();
            let b = dev.map_chunk(std::ptr::null_mut::<u8>().wrapping_add(0x7f00_0040_0000), 2 << 20, false).unwrap();
            assert_eq!(a, Iova(IOVA_BASE));
            assert_eq!(b, Iova(IOVA_BASE + (2 << 20)));
        }
        let calls = fake.calls.lock().unwrap().clone();
        let want = [
            "open container",
            "open group 5",
            "set container 11 10",
            "set iommu 1",
            "device 0000:00:04.0",
            "map 0x100000000 0x200000",
            "map 0x100200000 0x200000",
            "close 12",
            "close 11",
            "close 10",
        ];
        assert_eq!(calls, want);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn group_not_viable_names_the_fix_and_closes_fds() {
        let (dir, sysfs, bdf) = tree("viable", "vfio-pci");
        let fake = Arc::new(FakeVfio { viable: false, ..Default::default() });
        let e = VfioDevice::open(fake.clone(), &sysfs, &bdf).unwrap_err();
        assert!(matches!(e, VfioError::NotViable { group: 5, .. }), "{e}");
        assert!(e.to_string().contains("/sys/kernel/iommu_groups/5/devices"), "{e}");
        let calls = fake.calls.lock().unwrap().clone();
        assert_eq!(calls.iter().filter(|c| c.starts_with("close")).count(), 2, "{calls:?}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn device_on_another_driver_is_refused_before_any_ioctl() {
        let (dir, sysfs, bdf) = tree("bound", "nvme");
        let fake = Arc::new(FakeVfio { viable: true, ..Default::default() });
        let e = VfioDevice::open(fake.clone(), &sysfs, &bdf).unwrap_err();
        assert!(matches!(&e, VfioError::NotBound { driver, .. } if driver == "nvme"), "{e}");
        assert!(e.to_string().contains("0000:00:04.0 is bound to nvme, not vfio-pci; bind it to vfio-pci"), "{e}");
        assert!(fake.calls.lock().unwrap().is_empty());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn missing_type1_iommu_is_reported() {
        let (dir, sysfs, bdf) = tree("type1", "vfio-pci");
        let fake = Arc::new(FakeVfio { viable: true, no_type1: true, ..Default::default() });
        let e = VfioDevice::open(fake, &sysfs, &bdf).unwrap_err();
        assert!(matches!(e, VfioError::NoType1), "{e}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
