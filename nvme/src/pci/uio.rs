//! uio_pci_generic, for machines without an IOMMU: BAR0 through the sysfs
//! `resource0` file, bus mastering through the sysfs `config` file, and
//! device addresses that are physical addresses, looked up per 2 MiB chunk in
//! `/proc/self/pagemap`. Each chunk must be one hugepage (physically
//! contiguous, never moved), so this transport refuses to run without them.

use super::bar::Bar;
use super::sysfs::{Sysfs, SysfsError};
use super::Bdf;
use crate::addr::Iova;
use crate::dma::mmap::HUGEPAGE_SIZE;
use crate::dma::ChunkMapper;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

const PCI_COMMAND: u64 = 0x04;
const PCI_COMMAND_MEMORY: u16 = 1 << 1;
const PCI_COMMAND_MASTER: u16 = 1 << 2;
/// Bits of a pagemap entry (Documentation/admin-guide/mm/pagemap.rst).
const PAGEMAP_PRESENT: u64 = 1 << 63;
const PAGEMAP_PFN_MASK: u64 = (1 << 55) - 1;
const PAGE: u64 = 4096;

/// Errors of the uio transport.
#[derive(Debug, thiserror::Error)]
pub enum UioError {
    #[error(transparent)]
    Sysfs(#[from] SysfsError),
    #[error("{bdf} is bound to {driver}, not uio_pci_generic; bind it to uio_pci_generic (as root) first")]
    NotBound { bdf: Bdf, driver: String },
    #[error("mapping BAR0 of {bdf} ({path}) failed (this needs root)")]
    Bar { bdf: Bdf, path: PathBuf, source: io::Error },
}

/// Opens BAR0 of `bdf` (bound to uio_pci_generic) and enables bus mastering.
pub fn open(sysfs: &Sysfs, bdf: &Bdf) -> Result<Bar, UioError> {
    let driver = sysfs.driver(bdf)?;
    if driver.as_deref() != Some("uio_pci_generic") {
        return Err(UioError::NotBound { bdf: bdf.clone(), driver: driver.unwrap_or_else(|| "no driver".into()) });
    }
    let mut b = [0u8; 2];
    sysfs.config_read(bdf, PCI_COMMAND, &mut b)?;
    let cmd = u16::from_le_bytes(b) | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER;
    sysfs.config_write(bdf, PCI_COMMAND, &cmd.to_le_bytes())?;
    let path = sysfs.device_dir(bdf)?.join("resource0");
    let bar_err = |source| UioError::Bar { bdf: bdf.clone(), path: path.clone(), source };
    let f = std::fs::OpenOptions::new().read(true).write(true).open(&path).map_err(bar_err)?;
    let len = f.metadata().map_err(bar_err)?.len();
    let len = usize::try_from(len).map_err(|_| bar_err(io::Error::other("BAR0 too large")))?;
    Bar::map(&f, 0, len).map_err(bar_err)
}

/// Physical addresses from a pagemap file (`/proc/self/pagemap`).
#[derive(Debug)]
pub struct Pagemap {
    path: PathBuf,
}

impl Default for Pagemap {
    fn default() -> Self {
        Pagemap { path: PathBuf::from("/proc/self/pagemap") }
    }
}

impl Pagemap {
    pub fn new(path: impl Into<PathBuf>) -> Pagemap {
        Pagemap { path: path.into() }
    }

    /// Physical address of virtual address `va` (its page must be resident).
    pub fn phys(&self, va: u64) -> io::Result<u64> {
        let f = std::fs::File::open(&self.path)?;
        let mut e = [0u8; 8];
        f.read_exact_at(&mut e, (va / PAGE) * 8)?;
        let entry = u64::from_le_bytes(e);
        let pfn = entry & PAGEMAP_PFN_MASK;
        if entry & PAGEMAP_PRESENT == 0 {
            return Err(io::Error::other(format!("page at {va:#x} is not resident")));
        }
        if pfn == 0 {
            return Err(io::Error::new(io::ErrorKind::PermissionDenied, "pagemap hides physical addresses from this process; run as root (CAP_SYS_ADMIN)"));
        }
        Ok(pfn * PAGE + va % PAGE)
    }
}

impl ChunkMapper for Pagemap {
    fn map_chunk(&self, host: *mut u8, len: usize, hugepages: bool) -> io::Result<Iova> {
        if !hugepages || len > HUGEPAGE_SIZE {
            return Err(io::Error::other("uio_pci_generic needs DMA memory in 2 MiB hugepages (physically contiguous); reserve them as root (/proc/sys/vm/nr_hugepages)"));
        }
        let pa = self.phys(host as u64)?;
        if pa % HUGEPAGE_SIZE as u64 != 0 {
            return Err(io::Error::other(format!("chunk at {host:p} has physical address {pa:#x}, not 2 MiB aligned: not a hugepage")));
        }
        Ok(Iova(pa))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_pagemap(name: &str, va: u64, entry: u64) -> (PathBuf, Pagemap) {
        let p = std::env::temp_dir().join(format!("nvme-pagemap-{name}-{}", std::process::id()));
        let f = std::fs::File::create(&p).unwrap();
        f.write_all_at(&entry.to_le_bytes(), (va / PAGE) * 8).unwrap();
        (p.clone(), Pagemap::new(p))
    }

    #[test]
    fn physical_address_of_a_hugepage() {
        let va = 0x7f12_3440_0000u64;
        let (p, pm) = fake_pagemap("ok", va, PAGEMAP_PRESENT | 0x12400); // PFN 0x12400 -> 0x1240_0000
        assert_eq!(pm.phys(va + 0x10).unwrap(), 0x1240_0010);
        assert_eq!(pm.map_chunk(va as *mut u8, HUGEPAGE_SIZE, true).unwrap(), Iova(0x1240_0000));
        let e = pm.map_chunk(va as *mut u8, HUGEPAGE_SIZE, false).unwrap_err();
        assert!(e.to_string().contains("hugepages"), "{e}");
        let _ = std::fs::remove_file(p);
    }

    #[test]
    fn hidden_or_absent_pages_are_errors() {
        let va = 0x7f00_0000_0000u64;
        let (p, pm) = fake_pagemap("hidden", va, PAGEMAP_PRESENT);
        assert!(pm.phys(va).unwrap_err().to_string().contains("root"));
        let _ = std::fs::remove_file(p);
        let (p, pm) = fake_pagemap("absent", va, 0x1234);
        assert!(pm.phys(va).unwrap_err().to_string().contains("not resident"));
        let _ = std::fs::remove_file(p);
        let (p, pm) = fake_pagemap("unaligned", va, PAGEMAP_PRESENT | 0x12341);
        assert!(pm.map_chunk(va as *mut u8, HUGEPAGE_SIZE, true).unwrap_err().to_string().contains("not 2 MiB aligned"));
        let _ = std::fs::remove_file(p);
    }
}
