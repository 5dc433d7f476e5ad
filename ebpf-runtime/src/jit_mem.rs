//! Executable memory for the JIT, kept W^X: mapped read-write while the
//! machine code Cranelift produced is copied in, then switched to
//! read-execute before the first call, never writable again. Every
//! `mmap`/`mprotect` result is checked.

use std::io;

const PAGE: usize = 4096;
/// Largest JIT code of one program, in bytes.
pub const CODE_BYTES_MAX: usize = 64 << 20;

/// One private anonymous mapping, writable until [`ExecMemory::seal`].
#[derive(Debug)]
pub struct ExecMemory {
    ptr: *mut u8,
    len: usize,
    sealed: bool,
}

impl ExecMemory {
    /// Maps `bytes` (rounded up to pages) of read-write memory.
    pub fn with_len(bytes: usize) -> io::Result<ExecMemory> {
        if bytes == 0 || bytes > CODE_BYTES_MAX {
            return Err(io::Error::other(format!("{bytes} bytes of JIT code; the limit is {CODE_BYTES_MAX}")));
        }
        let len = bytes.next_multiple_of(PAGE);
        // SAFETY: an anonymous private mapping at an address the kernel
        // chooses aliases nothing; the result is checked below.
        let ptr = unsafe { libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0) };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(ExecMemory { ptr: ptr.cast::<u8>(), len, sealed: false })
    }

    /// Copies `code` to `offset` (only before [`ExecMemory::seal`]).
    pub fn write(&mut self, offset: usize, code: &[u8]) -> io::Result<()> {
        if self.sealed || offset.checked_add(code.len()).is_none_or(|end| end > self.len) {
            return Err(io::Error::other("JIT code write after sealing or outside the mapping"));
        }
        let dst = self.ptr.wrapping_add(offset);
        // SAFETY: `offset..offset+len` is inside our read-write mapping
        // (checked above, not sealed); `code` is a distinct Rust buffer.
        unsafe { std::ptr::copy_nonoverlapping(code.as_ptr(), dst, code.len()) };
        Ok(())
    }

    /// Address of byte `offset` of the mapping.
    pub fn addr(&self, offset: usize) -> u64 {
        assert!(offset < self.len, "offset {offset} outside the JIT mapping");
        self.ptr as u64 + offset as u64
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
        flush_icache(self.ptr, self.len);
        Ok(())
    }

    /// Whether [`ExecMemory::seal`] succeeded.
    pub fn is_sealed(&self) -> bool {
        self.sealed
    }
}

/// Makes freshly written code visible to instruction fetch. x86-64 keeps
/// instruction and data caches coherent; aarch64 needs the caches cleaned
/// (libgcc's/compiler-rt's `__clear_cache`; not yet tested on aarch64).
#[cfg(target_arch = "aarch64")]
fn flush_icache(ptr: *mut u8, len: usize) {
    extern "C" {
        fn __clear_cache(start: *mut libc::c_char, end: *mut libc::c_char);
    }
    // SAFETY: the range is exactly our mapping.
    unsafe { __clear_cache(ptr.cast(), ptr.add(len).cast()) };
}

#[cfg(not(target_arch = "aarch64"))]
fn flush_icache(_: *mut u8, _: usize) {}

// SAFETY: after `seal` the mapping is immutable and only executed; before it
// only `&mut self` writes. The raw pointer is owned, never shared elsewhere.
unsafe impl Send for ExecMemory {}
// SAFETY: as above: `&self` methods only read the pointer and length.
unsafe impl Sync for ExecMemory {}

impl Drop for ExecMemory {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping created in `with_len`; no
        // code in it runs any more (the JIT code is dropped with its instance).
        let rc = unsafe { libc::munmap(self.ptr.cast(), self.len) };
        debug_assert_eq!(rc, 0, "munmap of JIT memory failed");
    }
}
