//! The one place where memory a BPF program can reach is read and written
//! through raw addresses by Rust code: the interpreter's loads, stores and
//! atomics, the helpers' copies of keys and values, and the host's copies in
//! and out of map regions.
//!
//! Every access is atomic (STYLE.md item 4): JIT code on other threads may be
//! writing the same map value at the same time, as in Linux, where array map
//! values are updated in place and `__sync_fetch_and_add` is a real atomic.
//! An aligned access of 1, 2, 4 or 8 bytes is one atomic of that width; an
//! unaligned one (the ISA allows them outside atomics) is done byte by byte.
//!
//! Orderings: plain loads and stores are `Relaxed` (a program's plain access
//! gives no ordering guarantee in Linux either); program atomics are `SeqCst`
//! (Linux's `BPF_ATOMIC` operations are full barriers, `__sync_*` semantics).
//!
//! Mixed-size atomics on the same bytes (a byte copy by the host racing a
//! word-sized atomic of a program) are outside what the Rust memory model
//! describes; on every target we build for each access is a single
//! instruction and the hardware keeps it coherent, which is what Linux relies
//! on for the same situation.

use std::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, AtomicU8, Ordering};

/// The operation of a `BPF_ATOMIC` instruction (its `imm` without the fetch bit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtomicOp {
    Add,
    Or,
    And,
    Xor,
    Xchg,
    /// Compare with the given expected value, write on equality.
    Cmpxchg {
        expected: u64,
    },
}

/// Loads `size` (1, 2, 4 or 8) bytes little-endian, zero-extended.
///
/// # Safety
/// `addr..addr + size` must be valid for reads for the duration of the call
/// and not be accessed through a Rust reference meanwhile.
pub unsafe fn load(addr: u64, size: usize) -> u64 {
    let p = ptr(addr);
    if addr % size as u64 == 0 {
        match size {
            // SAFETY: the caller guarantees validity; the address is aligned
            // to the access width (checked above), as `from_ptr` needs.
            1 => return u64::from(unsafe { AtomicU8::from_ptr(p) }.load(Ordering::Relaxed)),
            // SAFETY: as above.
            2 => return u64::from(u16::from_le(unsafe { AtomicU16::from_ptr(p.cast()) }.load(Ordering::Relaxed))),
            // SAFETY: as above.
            4 => return u64::from(u32::from_le(unsafe { AtomicU32::from_ptr(p.cast()) }.load(Ordering::Relaxed))),
            // SAFETY: as above.
            8 => return u64::from_le(unsafe { AtomicU64::from_ptr(p.cast()) }.load(Ordering::Relaxed)),
            _ => {}
        }
    }
    let mut v = 0u64;
    for i in (0..size).rev() {
        // Inside the caller's valid range.
        let b = p.wrapping_add(i);
        // SAFETY: valid (the caller's range); bytes are always aligned.
        let b = unsafe { AtomicU8::from_ptr(b) }.load(Ordering::Relaxed);
        v = (v << 8) | u64::from(b);
    }
    v
}

/// A program address as a pointer. Addresses come from this process's own
/// pointers, so they fit `usize`.
#[allow(clippy::cast_possible_truncation)]
fn ptr(addr: u64) -> *mut u8 {
    addr as usize as *mut u8
}

/// Stores the low `size` (1, 2, 4 or 8) bytes of `v` little-endian.
///
/// # Safety
/// `addr..addr + size` must be valid for writes for the duration of the
/// call and not be accessed through a Rust reference meanwhile.
// Truncation to the access width is the point of a narrow store.
#[allow(clippy::cast_possible_truncation)]
pub unsafe fn store(addr: u64, size: usize, v: u64) {
    let p = ptr(addr);
    if addr % size as u64 == 0 {
        match size {
            // SAFETY: as in `load`.
            1 => return unsafe { AtomicU8::from_ptr(p) }.store(v as u8, Ordering::Relaxed),
            // SAFETY: as in `load`.
            2 => return unsafe { AtomicU16::from_ptr(p.cast()) }.store((v as u16).to_le(), Ordering::Relaxed),
            // SAFETY: as in `load`.
            4 => return unsafe { AtomicU32::from_ptr(p.cast()) }.store((v as u32).to_le(), Ordering::Relaxed),
            // SAFETY: as in `load`.
            8 => return unsafe { AtomicU64::from_ptr(p.cast()) }.store(v.to_le(), Ordering::Relaxed),
            _ => {}
        }
    }
    for i in 0..size {
        let b = p.wrapping_add(i);
        // SAFETY: inside the caller's valid range; bytes are always aligned.
        unsafe { AtomicU8::from_ptr(b) }.store((v >> (8 * i)) as u8, Ordering::Relaxed);
    }
}

/// A `BPF_ATOMIC` read-modify-write of 4 or 8 bytes; returns the old value
/// (zero-extended).
///
/// # Safety
/// `addr..addr + size` must be valid for reads and writes, and `addr`
/// aligned to `size` (the callers check both).
#[allow(clippy::cast_possible_truncation)] // 32-bit atomics use the low half
pub unsafe fn atomic(addr: u64, size: usize, op: AtomicOp, v: u64) -> u64 {
    assert!(addr % size as u64 == 0 && (size == 4 || size == 8), "atomic of {size} bytes at {addr:#x}");
    let p = ptr(addr);
    const O: Ordering = Ordering::SeqCst;
    if size == 8 {
        // SAFETY: the caller's contract, alignment asserted above.
        let a = unsafe { AtomicU64::from_ptr(p.cast()) };
        match op {
            AtomicOp::Add => a.fetch_add(v, O),
            AtomicOp::Or => a.fetch_or(v, O),
            AtomicOp::And => a.fetch_and(v, O),
            AtomicOp::Xor => a.fetch_xor(v, O),
            AtomicOp::Xchg => a.swap(v, O),
            AtomicOp::Cmpxchg { expected } => a.compare_exchange(expected, v, O, O).unwrap_or_else(|old| old),
        }
    } else {
        // SAFETY: as above.
        let a = unsafe { AtomicU32::from_ptr(p.cast()) };
        let v = v as u32;
        u64::from(match op {
            AtomicOp::Add => a.fetch_add(v, O),
            AtomicOp::Or => a.fetch_or(v, O),
            AtomicOp::And => a.fetch_and(v, O),
            AtomicOp::Xor => a.fetch_xor(v, O),
            AtomicOp::Xchg => a.swap(v, O),
            AtomicOp::Cmpxchg { expected } => a.compare_exchange(expected as u32, v, O, O).unwrap_or_else(|old| old),
        })
    }
}

/// Copies `out.len()` bytes starting at `addr` into `out`.
///
/// # Safety
/// `addr..addr + out.len()` must be valid for reads and not overlap `out`.
pub unsafe fn copy_in(addr: u64, out: &mut [u8]) {
    let mut i = 0;
    while i < out.len() {
        let a = addr + i as u64;
        let step = if a % 8 == 0 && out.len() - i >= 8 { 8 } else { 1 };
        // SAFETY: `a..a+step` is inside the caller's range.
        let v = unsafe { load(a, step) };
        out[i..i + step].copy_from_slice(&v.to_le_bytes()[..step]);
        i += step;
    }
}

/// Copies `bytes` to `addr..addr + bytes.len()`.
///
/// # Safety
/// The range must be valid for writes and not overlap `bytes`.
pub unsafe fn copy_out(addr: u64, bytes: &[u8]) {
    let mut i = 0;
    while i < bytes.len() {
        let a = addr + i as u64;
        let step = if a % 8 == 0 && bytes.len() - i >= 8 { 8 } else { 1 };
        let mut w = [0u8; 8];
        w[..step].copy_from_slice(&bytes[i..i + step]);
        // SAFETY: `a..a+step` is inside the caller's range.
        unsafe { store(a, step, u64::from_le_bytes(w)) };
        i += step;
    }
}

/// Longest key or value copied on the stack by [`with_bytes`]; longer ones
/// go to the heap.
const STACK_COPY_BYTES_MAX: usize = 256;

/// Copies `len` bytes at `addr` and hands the copy to `f`. A copy, never a
/// slice into program memory: the bytes may change under us (other threads,
/// or the very map slot an update writes to).
///
/// # Safety
/// As [`copy_in`]: `addr..addr + len` must be valid for reads.
pub unsafe fn with_bytes<R>(addr: u64, len: usize, f: impl FnOnce(&[u8]) -> R) -> R {
    if len <= STACK_COPY_BYTES_MAX {
        let mut buf = [0u8; STACK_COPY_BYTES_MAX];
        // SAFETY: the caller's contract; `buf` is ours.
        unsafe { copy_in(addr, &mut buf[..len]) };
        f(&buf[..len])
    } else {
        let mut buf = vec![0u8; len];
        // SAFETY: as above.
        unsafe { copy_in(addr, &mut buf) };
        f(&buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::multiple_unsafe_ops_per_block)] // one contract covers the sequence
    fn aligned_and_unaligned_access() {
        let mut mem = [0u64; 4];
        let base = mem.as_mut_ptr() as u64;
        // SAFETY: all accesses stay inside `mem`, used only through `base`.
        unsafe {
            store(base + 3, 4, 0xdead_beef);
            assert_eq!(load(base + 3, 4), 0xdead_beef);
            assert_eq!(load(base + 3, 2), 0xbeef);
            store(base + 8, 8, u64::MAX);
            assert_eq!(atomic(base + 8, 4, AtomicOp::Add, 2), 0xffff_ffff);
            assert_eq!(load(base + 8, 8), 0xffff_ffff_0000_0001);
            assert_eq!(atomic(base + 16, 8, AtomicOp::Cmpxchg { expected: 0 }, 5), 0);
            assert_eq!(atomic(base + 16, 8, AtomicOp::Cmpxchg { expected: 0 }, 6), 5);
            let mut out = [0u8; 11];
            copy_in(base + 1, &mut out);
            assert_eq!(&out[2..6], &0xdead_beefu32.to_le_bytes());
        }
    }
}
