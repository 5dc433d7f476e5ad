//! User-space NVMe driver: spec types, queue pairs, controller bring-up, DMA memory and transports. Must not know about: eBPF, files.
