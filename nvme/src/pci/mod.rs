//! PCIe transports: a real NVMe controller reached through VFIO (with an
//! IOMMU) or uio_pci_generic (without one), and the sysfs work of binding a
//! device to them and back to the kernel driver. See docs/pcie.md.
//!
//! Layout: `sysfs` (ids, driver, IOMMU group, bind/reset, mounted check),
//! `bar` (BAR0 mapping and volatile register access; unsafe), `vfio_sys`
//! (VFIO ioctls behind a trait; unsafe), `vfio` (the VFIO bring-up and IOMMU
//! mapping of DMA chunks), `uio` (resource0 and pagemap physical addresses).
//! Everything above the [`Transport`] trait (bring-up state machine, queue
//! pairs) is shared with the emulated controller.

pub mod bar;
pub mod sysfs;
pub mod uio;
pub mod vfio;
pub mod vfio_sys;

use crate::dma::{DmaPool, PoolOptions};
use crate::spec::regs::{offset, Cc, Csts};
use crate::transport::Transport;
use bar::Bar;
use std::sync::Arc;
use std::time::{Duration, Instant};
pub use sysfs::{Sysfs, SysfsError};
pub use uio::UioError;
pub use vfio::{VfioDevice, VfioError};

/// How long dropping a transport waits for the controller to stop (CSTS.RDY = 0).
const SHUTDOWN_WAIT_MS: u64 = 2_000;

/// A PCI address, `domain:bus:device.function` ("0000:00:04.0").
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Bdf(String);

impl Bdf {
    /// Parses a full address; a short "00:04.0" gets domain 0000.
    pub fn parse(s: &str) -> Result<Bdf, PciError> {
        let s = s.trim();
        let full = if s.matches(':').count() == 1 { format!("0000:{s}") } else { s.to_string() };
        let ok = full.len() == 12
            && full.char_indices().all(|(i, c)| match i {
                4 | 7 => c == ':',
                10 => c == '.',
                11 => ('0'..='7').contains(&c),
                _ => c.is_ascii_hexdigit(),
            });
        if ok {
            Ok(Bdf(full.to_ascii_lowercase()))
        } else {
            Err(PciError::BadBdf(s.to_string()))
        }
    }
}

impl std::fmt::Display for Bdf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which user-space driver a device is reached through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    Vfio,
    Uio,
}

impl Driver {
    pub fn sysfs_name(self) -> &'static str {
        match self {
            Driver::Vfio => "vfio-pci",
            Driver::Uio => "uio_pci_generic",
        }
    }
}

/// Errors opening a PCIe controller.
#[derive(Debug, thiserror::Error)]
pub enum PciError {
    #[error("{0:?} is not a PCI address; write it as domain:bus:device.function, e.g. 0000:01:00.0 (see lspci -D)")]
    BadBdf(String),
    #[error("{bdf} is not an NVMe controller (class {class:#08x}, vendor {vendor:#06x}, device {device:#06x}); pick another with lspci -D -d ::0108")]
    NotNvme { bdf: Bdf, class: u32, vendor: u32, device: u32 },
    #[error("{bdf} is bound to {driver}; bind it to a user-space driver (vfio-pci or uio_pci_generic, as root) first")]
    WrongDriver { bdf: Bdf, driver: String },
    #[error(transparent)]
    Sysfs(#[from] SysfsError),
    #[error(transparent)]
    Vfio(#[from] VfioError),
    #[error(transparent)]
    Uio(#[from] UioError),
    #[error("no 2 MiB hugepages are free, and uio_pci_generic needs them (physically contiguous DMA memory); reserve some as root (/proc/sys/vm/nr_hugepages)")]
    NoHugepages,
}

/// Options for [`open`].
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// The sysfs root (`/` except in tests).
    pub sysfs: Sysfs,
    /// DMA pool limit (bytes).
    pub dma_limit: usize,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions { sysfs: Sysfs::default(), dma_limit: 256 << 20 }
    }
}

/// Opens the controller at `bdf` through the user-space driver it is bound
/// to (vfio-pci or uio_pci_generic).
pub fn open(bdf: &Bdf, opts: &OpenOptions) -> Result<Arc<PciTransport>, PciError> {
    let ids = opts.sysfs.ids(bdf)?;
    if !ids.is_nvme() {
        return Err(PciError::NotNvme { bdf: bdf.clone(), class: ids.class, vendor: ids.vendor, device: ids.device });
    }
    match opts.sysfs.driver(bdf)?.as_deref() {
        Some("vfio-pci") => open_vfio(bdf, opts),
        Some("uio_pci_generic") => open_uio(bdf, opts),
        other => Err(PciError::WrongDriver { bdf: bdf.clone(), driver: other.unwrap_or("no driver").to_string() }),
    }
}

fn open_vfio(bdf: &Bdf, opts: &OpenOptions) -> Result<Arc<PciTransport>, PciError> {
    let dev = Arc::new(VfioDevice::open(Arc::new(vfio_sys::RealVfio), &opts.sysfs, bdf)?);
    let bar = dev.map_bar0()?;
    // The IOMMU maps ordinary pages too: hugepages only make it faster.
    let pool = DmaPool::with_mapper(PoolOptions { limit_bytes: opts.dma_limit, allow_fallback: true }, dev.clone());
    Ok(Arc::new(PciTransport { name: format!("vfio {bdf}"), bar, pool, _vfio: Some(dev) }))
}

fn open_uio(bdf: &Bdf, opts: &OpenOptions) -> Result<Arc<PciTransport>, PciError> {
    let hp = crate::setup::hugepages().map_err(|_| PciError::NoHugepages)?;
    if hp.free == 0 {
        return Err(PciError::NoHugepages);
    }
    let bar = uio::open(&opts.sysfs, bdf)?;
    let pool = DmaPool::with_mapper(PoolOptions { limit_bytes: opts.dma_limit, allow_fallback: false }, Arc::new(uio::Pagemap::default()));
    Ok(Arc::new(PciTransport { name: format!("uio {bdf}"), bar, pool, _vfio: None }))
}

/// A PCIe NVMe controller: BAR0 registers and a DMA pool it can reach.
/// Dropping it disables the controller, so the device stops DMA before the
/// memory goes away.
#[derive(Debug)]
pub struct PciTransport {
    name: String,
    // Field order is drop order: registers, then DMA memory, then the VFIO
    // fds (closing the container unmaps the IOMMU).
    bar: Bar,
    pool: DmaPool,
    _vfio: Option<Arc<VfioDevice>>,
}

impl Transport for PciTransport {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn read32(&self, offset: u32) -> u32 {
        self.bar.read32(offset)
    }
    fn write32(&self, offset: u32, value: u32) {
        self.bar.write32(offset, value);
    }
    fn dma(&self) -> &DmaPool {
        &self.pool
    }
}

impl Drop for PciTransport {
    fn drop(&mut self) {
        let cc = Cc(self.bar.read32(offset::CC));
        if !cc.enabled() {
            return;
        }
        self.bar.write32(offset::CC, cc.0 & !1);
        let deadline = Instant::now() + Duration::from_millis(SHUTDOWN_WAIT_MS);
        while Csts(self.bar.read32(offset::CSTS)).ready() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_micros(100));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pci_addresses() {
        assert_eq!(Bdf::parse("0000:00:04.0").unwrap().to_string(), "0000:00:04.0");
        assert_eq!(Bdf::parse("01:00.1").unwrap().to_string(), "0000:01:00.1");
        assert_eq!(Bdf::parse("0000:AB:1f.7").unwrap().to_string(), "0000:ab:1f.7");
        for bad in ["", "0000:00:04", "0000:00:04.8", "zz00:00:04.0", "/dev/nvme0n1", "0000:00:04.0/../x"] {
            let e = Bdf::parse(bad).unwrap_err();
            assert!(e.to_string().contains("lspci"), "{bad}: {e}");
        }
    }

    #[test]
    fn open_refuses_missing_and_kernel_bound_devices() {
        let dir = std::env::temp_dir().join(format!("nvme-pci-open-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let dev = dir.join("sys/bus/pci/devices/0000:00:04.0");
        std::fs::create_dir_all(&dev).unwrap();
        std::fs::create_dir_all(dir.join("sys/bus/pci/drivers/nvme")).unwrap();
        for (f, v) in [("vendor", "0x1b36"), ("device", "0x0010"), ("class", "0x010802")] {
            std::fs::write(dev.join(f), v).unwrap();
        }
        std::os::unix::fs::symlink("../../../../bus/pci/drivers/nvme", dev.join("driver")).unwrap();
        let opts = OpenOptions { sysfs: Sysfs::new(&dir), ..OpenOptions::default() };
        let e = open(&Bdf::parse("0000:00:04.0").unwrap(), &opts).unwrap_err();
        assert!(matches!(&e, PciError::WrongDriver { driver, .. } if driver == "nvme"), "{e}");
        assert!(e.to_string().contains("bind it to a user-space driver"), "{e}");
        let e = open(&Bdf::parse("0000:00:05.0").unwrap(), &opts).unwrap_err();
        assert!(matches!(e, PciError::Sysfs(SysfsError::NotFound { .. })), "{e}");
        std::fs::write(dev.join("class"), "0x020000").unwrap();
        let e = open(&Bdf::parse("0000:00:04.0").unwrap(), &opts).unwrap_err();
        assert!(matches!(e, PciError::NotNvme { .. }), "{e}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
