//! Executable memory for rbpf's JIT, kept W^X: mapped read-write while rbpf
//! writes the machine code, then switched to read-execute before the first
//! call. Every `mmap`/`mprotect` result is checked.
//!
//! rbpf 0.4.1 with its `std` feature allocates one 4 KiB page itself and
//! makes it writable and executable with an unchecked `mprotect`; built
//! without `std` it takes the memory from us (`set_jit_exec_memory`) and
//! accepts more than one page, which also lifts its 4 KiB code limit.

use std::io;

/// Bytes of machine code reserved per BPF instruction slot: rbpf's longest
/// sequences (division with its zero checks, calls) stay well below this.
pub const CODE_BYTES_PER_SLOT: usize = 128;
/// Fixed room for rbpf's prologue, epilogue and exit stub.
pub const CODE_BYTES_FIXED: usize = 4096;
const PAGE: usize = 4096;

/// One private anonymous mapping, writable until [`ExecMemory::seal`].
#[derive(Debug)]
pub struct ExecMemory {
    ptr: *mut u8,
    len: usize,
    sealed: bool,
}

impl ExecMemory {
    /// Maps read-write memory for a program of `slots` instruction slots.
    pub fn for_program(slots: usize) -> io::Result<ExecMemory> {
        let len = slots
            .checked_mul(CODE_BYTES_PER_SLOT)
            .and_then(|b| b.checked_add(CODE_BYTES_FIXED))
            .map(|b| b.next_multiple_of(PAGE))
            .ok_or_else(|| io::Error::other("program too large for JIT memory"))?;
        // SAFETY: an anonymous private mapping at an address the kernel
        // chooses aliases nothing; the result is checked below.
        let ptr = unsafe {
            libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0)
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(ExecMemory { ptr: ptr.cast::<u8>(), len, sealed: false })
    }

    /// The mapping as the `'static` slice rbpf's JIT writes into.
    ///
    /// # Safety
    /// The caller must not use the slice after this `ExecMemory` is dropped
    /// (the instance drops rbpf's VM, which holds it, first), and must not
    /// write through it after [`ExecMemory::seal`].
    pub unsafe fn as_static_mut(&mut self) -> &'static mut [u8] {
        // SAFETY: `ptr..ptr+len` is a live read-write mapping owned by self;
        // the caller upholds the lifetime and write contract above.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }

    /// Switches the mapping to read-execute (no write from now on).
    pub fn seal(&mut self) -> io::Result<()> {
        // SAFETY: `ptr..ptr+len` is exactly our mapping; changing its
        // protection affects no other memory. The result is checked.
        let rc = unsafe { libc::mprotect(self.ptr.cast(), self.len, libc::PROT_READ | libc::PROT_EXEC) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        self.sealed = true;
        Ok(())
    }

    /// Whether [`ExecMemory::seal`] succeeded.
    pub fn is_sealed(&self) -> bool {
        self.sealed
    }
}

impl Drop for ExecMemory {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping created in `for_program`; no
        // reference into it outlives self (see `as_static_mut`).
        let rc = unsafe { libc::munmap(self.ptr.cast(), self.len) };
        debug_assert_eq!(rc, 0, "munmap of JIT memory failed");
    }
}
