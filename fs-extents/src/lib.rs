//! File offsets to device blocks (extent maps from FIEMAP or an ext4 image), with access control and versions. Must not know about: NVMe, eBPF.
