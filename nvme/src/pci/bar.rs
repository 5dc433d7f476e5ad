//! BAR0 mapped into the process: the only place that touches device
//! registers. Accesses are volatile 32-bit loads and stores (NVMe registers
//! are 32-bit; 64-bit ones are written as two halves by the transport trait).

use std::io;
use std::os::fd::AsRawFd;
use std::ptr::NonNull;
use std::sync::atomic::{fence, Ordering};

/// Smallest BAR0 that holds the NVMe registers and the first doorbells.
pub const BAR0_MIN: usize = 0x2000;

/// A shared mapping of a device BAR, unmapped on drop.
#[derive(Debug)]
pub struct Bar {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is device memory owned by this value; every access is
// a volatile 32-bit load or store, which the device serialises itself.
unsafe impl Send for Bar {}
// SAFETY: as above: concurrent volatile accesses to distinct (or the same)
// registers are what a device sees from several CPUs on any driver.
unsafe impl Sync for Bar {}

impl Bar {
    /// Maps `len` bytes of `file` at `offset` (a VFIO device fd and its
    /// region offset, or a sysfs `resource0` file and 0).
    pub fn map(file: &impl AsRawFd, offset: u64, len: usize) -> io::Result<Bar> {
        if len < BAR0_MIN {
            return Err(io::Error::other(format!("BAR0 is {len} bytes, smaller than the {BAR0_MIN} an NVMe controller has")));
        }
        let off = libc::off_t::try_from(offset).map_err(|_| io::Error::other("BAR offset out of range"))?;
        // SAFETY: a fresh shared mapping with no address hint; it aliases
        // only device memory, and the result is checked against MAP_FAILED.
        let p = unsafe { libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, file.as_raw_fd(), off) };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned null"))?;
        Ok(Bar { ptr, len })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn reg(&self, offset: u32) -> *mut u32 {
        let off = offset as usize;
        assert!(off % 4 == 0 && off + 4 <= self.len, "register offset {off:#x} outside BAR0 of {:#x} bytes or unaligned", self.len);
        self.ptr.as_ptr().wrapping_add(off).cast::<u32>()
    }

    pub fn read32(&self, offset: u32) -> u32 {
        let r = self.reg(offset);
        // SAFETY: `reg` checked the offset is 4-aligned and inside the live
        // mapping; the BAR itself is page aligned.
        let v = unsafe { std::ptr::read_volatile(r) };
        u32::from_le(v)
    }

    pub fn write32(&self, offset: u32, value: u32) {
        let r = self.reg(offset);
        // A full fence: SQEs and PRP lists written with plain stores into
        // DMA memory are globally visible before the doorbell reaches the
        // device (SPDK's wmb before a doorbell). On x86 stores are not
        // reordered with each other, so this mostly stops the compiler; on
        // weaker architectures it is the required barrier.
        fence(Ordering::SeqCst);
        // SAFETY: as in `read32`.
        unsafe { std::ptr::write_volatile(r, value.to_le()) }
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` describe the mapping this value owns; nothing
        // uses it after drop (the transport owning the BAR is gone).
        let rc = unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
        debug_assert_eq!(rc, 0, "munmap of BAR0 failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_stands_in_for_a_bar() {
        let path = std::env::temp_dir().join(format!("nvme-bar-{}", std::process::id()));
        std::fs::write(&path, vec![0u8; 0x2000]).unwrap();
        let f = std::fs::OpenOptions::new().read(true).write(true).open(&path).unwrap();
        let bar = Bar::map(&f, 0, 0x2000).unwrap();
        bar.write32(0x14, 0x0046_0001);
        assert_eq!(bar.read32(0x14), 0x0046_0001);
        drop(bar);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[0x14..0x18], &0x0046_0001u32.to_le_bytes());
        let _ = std::fs::remove_file(&path);
        assert!(Bar::map(&f, 0, 0x100).is_err());
    }
}
