//! `sfbench setup`: hugepages for DMA memory, and (like SPDK's setup.sh)
//! binding an NVMe controller to a user-space driver and back.

use anyhow::{bail, Result};
use nvme::pci::{Bdf, PciError, Sysfs};
use nvme::setup;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// MiB of 2 MiB hugepages to reserve (needs root). Without it, only show
    /// the current reservation.
    #[arg(long, value_name = "MB")]
    hugemem: Option<u64>,
    /// Bind this NVMe controller (PCI address, e.g. 0000:01:00.0) to a
    /// user-space driver; refused when one of its file systems is mounted.
    /// Its data then disappears from the kernel (/dev/nvme*) until --reset.
    #[arg(long, value_name = "BDF", conflicts_with = "reset")]
    bind: Option<String>,
    /// The driver for --bind: vfio-pci (needs an IOMMU) or uio_pci_generic.
    #[arg(long, default_value = "vfio-pci", value_parser = ["vfio-pci", "uio_pci_generic"], requires = "bind")]
    driver: String,
    /// Give this controller back to the kernel nvme driver.
    #[arg(long, value_name = "BDF")]
    reset: Option<String>,
}

/// Opens a PCIe controller for our driver. The library's fixes are in its
/// words; the two a command fixes are said with the command.
pub fn open_pci(bdf: &Bdf) -> Result<std::sync::Arc<nvme::pci::PciTransport>> {
    match nvme::pci::open(bdf, &nvme::pci::OpenOptions::default()) {
        Ok(t) => Ok(t),
        Err(PciError::WrongDriver { driver, .. }) => bail!("{bdf} is bound to {driver}; give it to a user-space driver first: sudo sfbench setup --bind {bdf}"),
        Err(PciError::NoHugepages) => {
            bail!("no 2 MiB hugepages are free, and uio_pci_generic needs them (physically contiguous DMA memory); reserve some: sudo sfbench setup --hugemem 512")
        }
        Err(e) => Err(e.into()),
    }
}

pub fn run(a: Args) -> Result<()> {
    let before = setup::hugepages()?;
    match a.hugemem {
        None => {
            println!("hugepages: {} reserved, {} free ({} KiB each): {} MiB free for DMA memory", before.total, before.free, before.size_kib, before.free_bytes() >> 20);
            if before.total == 0 {
                println!("none reserved: DMA memory falls back to ordinary pages. Reserve some with: sfbench setup --hugemem 512");
            }
        }
        Some(mb) => {
            let after = match setup::reserve(mb) {
                Err(setup::SetupError::NotRoot { .. }) => bail!("reserving {mb} MiB of hugepages needs root: sudo sfbench setup --hugemem {mb}"),
                r => r?,
            };
            if after.total == before.total {
                println!("hugepages: {} already reserved ({} MiB), enough for {mb} MiB; nothing changed", after.total, after.total_bytes() >> 20);
            } else {
                println!("hugepages: reserved {} -> {} ({} MiB), {} free", before.total, after.total, after.total_bytes() >> 20, after.free);
            }
        }
    }
    let sys = Sysfs::default();
    if let Some(b) = a.bind {
        let bdf = Bdf::parse(&b)?;
        let ids = sys.ids(&bdf)?;
        if !ids.is_nvme() {
            bail!("{bdf} is not an NVMe controller (class {:#08x}); refusing to bind it", ids.class);
        }
        let was = sys.bind(&bdf, &a.driver)?;
        match was.as_deref() {
            Some(d) if d == a.driver => println!("{bdf}: already bound to {d}"),
            Some(d) => println!("{bdf}: {d} -> {}", a.driver),
            None => println!("{bdf}: (no driver) -> {}", a.driver),
        }
    }
    if let Some(b) = a.reset {
        let bdf = Bdf::parse(&b)?;
        let was = sys.reset(&bdf)?;
        match was.as_deref() {
            Some("nvme") => println!("{bdf}: already bound to nvme"),
            other => println!("{bdf}: {} -> nvme", other.unwrap_or("(no driver)")),
        }
    }
    Ok(())
}
