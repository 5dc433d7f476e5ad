//! The transport trait (STYLE item 9): how the driver reaches a controller's
//! registers and which DMA memory the controller can reach. The controller and
//! queue logic above it do not know whether the device is emulated or PCIe.

use crate::dma::DmaPool;
use crate::spec::regs;

pub trait Transport: Send + Sync + std::fmt::Debug {
    /// A short name for messages ("emulated", "vfio 0000:00:04.0").
    fn name(&self) -> String;
    /// Reads a 32-bit register of BAR0.
    fn read32(&self, offset: u32) -> u32;
    /// Writes a 32-bit register of BAR0 (release ordering: the DMA memory
    /// written before it, such as SQEs, is visible to the device).
    fn write32(&self, offset: u32, value: u32);
    fn read64(&self, offset: u32) -> u64 {
        u64::from(self.read32(offset)) | (u64::from(self.read32(offset + 4)) << 32)
    }
    fn write64(&self, offset: u32, value: u64) {
        self.write32(offset, (value & 0xffff_ffff) as u32);
        self.write32(offset + 4, (value >> 32) as u32);
    }
    /// The DMA memory this controller can reach.
    fn dma(&self) -> &DmaPool;
    /// Gives an in-process device the chance to work on queue `qid` (fetch
    /// commands, post due completions). PCIe devices work on their own: no-op.
    fn service(&self, _qid: u16) {}
    /// Writes doorbell `index` for a doorbell stride of `dstrd`.
    fn ring(&self, index: u32, dstrd: u8, value: u16) {
        self.write32(regs::doorbell_offset(index, dstrd), u32::from(value));
    }
}
