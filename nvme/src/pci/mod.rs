//! PCIe transports (VFIO with the IOMMU; uio_pci_generic without one).
//! Work in progress: see docs/pcie.md.
