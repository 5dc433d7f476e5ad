//! The C interface (`include/sfe.h`). Every function returns a negative
//! errno on failure (or NULL / nothing where the C type says so) and leaves
//! a message for `sfe_last_error()` and a status for `sfe_last_status()` on
//! the calling thread; no panic crosses the boundary (each body runs under
//! `catch_unwind`, a panic is reported as -EFAULT with its message).
#![allow(non_camel_case_types)]

use crate::engine::{Dest, Engine, Options, Read};
use crate::error::{chain_errno, Error, SfeStatus};
use chaining::{ChainOutcome, SCRATCH_SIZE};
use ebpf_runtime::with_causes;
use libc::{c_char, c_int, c_void, size_t, ssize_t};
use std::cell::RefCell;
use std::ffi::{CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::Arc;

/// Bytes of the scratch buffer `sfe_read_xrp` reads and writes back.
pub const SFE_SCRATCH_SIZE: usize = 4096;
const _: () = assert!(SFE_SCRATCH_SIZE == SCRATCH_SIZE);
/// The largest block a program may be verified for (`data_size` of `sfe_prog_load`).
pub const SFE_DATA_SIZE_MAX: u32 = 16384;
const _: () = assert!(SFE_DATA_SIZE_MAX == crate::engine::DATA_SIZE_MAX);

/// An open engine (opaque).
#[derive(Debug)]
pub struct sfe_engine {
    inner: Arc<Engine>,
}

/// A finished asynchronous chain, as `sfe_poll` reports it.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct sfe_completion {
    /// What the caller passed to `sfe_submit_xrp`.
    pub user_data: u64,
    /// `count` when the program finished the chain, else a negative errno.
    pub result: i64,
    /// How the chain ended.
    pub status: SfeStatus,
    /// Program runs (one per block read).
    pub hops: u32,
}

thread_local! {
    static LAST: RefCell<(SfeStatus, CString)> = RefCell::new((SfeStatus::SFE_STATUS_NOT_STARTED, CString::default()));
}

fn set_last(status: SfeStatus, msg: &str) {
    // A message with a NUL byte keeps the part before it.
    let text = CString::new(msg.split('\0').next().unwrap_or("")).unwrap_or_default();
    let _ = LAST.try_with(|l| *l.borrow_mut() = (status, text));
}

/// Runs `f`, turning an error or a panic into a negative errno (and the
/// thread's last error).
fn guard(f: impl FnOnce() -> Result<i64, Error>) -> i64 {
    let r = match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => {
            let msg = p.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| p.downcast_ref::<String>().cloned()).unwrap_or_else(|| "a panic".into());
            Err(Error::Panic(msg))
        }
    };
    match r {
        Ok(v) => v,
        Err(e) => {
            let status = match &e {
                Error::Chain(s) => SfeStatus::of(s),
                _ => SfeStatus::SFE_STATUS_NOT_STARTED,
            };
            set_last(status, &with_causes(&e));
            -i64::from(e.errno())
        }
    }
}

fn to_int(v: i64) -> c_int {
    // Every value `guard` returns to an int function is an errno or an int.
    c_int::try_from(v).unwrap_or(-libc::EOVERFLOW)
}

/// # Safety
/// `p` is NULL or a NUL-terminated string valid for the call.
unsafe fn opt_str(p: *const c_char, what: &'static str) -> Result<Option<String>, Error> {
    if p.is_null() {
        return Ok(None);
    }
    // SAFETY: non-null, NUL-terminated per the caller's contract.
    let s = unsafe { CStr::from_ptr(p) };
    s.to_str().map(|s| Some(s.to_string())).map_err(|_| Error::Invalid { what, why: "not UTF-8".into() })
}

/// # Safety
/// `e` is NULL or a pointer `sfe_engine_open` returned and not yet closed.
unsafe fn engine<'a>(e: *const sfe_engine) -> Result<&'a Arc<Engine>, Error> {
    // SAFETY: per the caller's contract, a non-null `e` points at a live engine.
    unsafe { e.as_ref() }.map(|e| &e.inner).ok_or(Error::Null { what: "engine" })
}

/// Opens an engine on `device`: the block device (or image file) holding the
/// file system of the files the application will read. With `pci_bdf` NULL
/// the embedded emulated NVMe controller reads `device` (O_DIRECT); with a
/// PCI address ("0000:01:00.0") the chains go to that controller (bound to
/// vfio-pci or uio_pci_generic), whose namespace 1 must hold the same bytes.
/// `dma_mib` is the DMA memory to map (2 MiB hugepages, or locked pages when
/// none are free); 0 for 64 MiB. Writes the engine to `*out`; returns 0 or a
/// negative errno.
///
/// # Safety
/// `device` is a NUL-terminated string; `pci_bdf` is NULL or one; `out` is
/// NULL (an error) or valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn sfe_engine_open(device: *const c_char, pci_bdf: *const c_char, dma_mib: u64, out: *mut *mut sfe_engine) -> c_int {
    to_int(guard(|| {
        if out.is_null() {
            return Err(Error::Null { what: "out" });
        }
        // SAFETY: NULL or NUL-terminated (contract).
        let device = unsafe { opt_str(device, "device") }?.ok_or(Error::Null { what: "device" })?;
        // SAFETY: as above.
        let pci = unsafe { opt_str(pci_bdf, "pci_bdf") }?;
        let inner = Engine::open(&Options { device: PathBuf::from(device), pci, dma_mib })?;
        let e = Box::into_raw(Box::new(sfe_engine { inner }));
        // SAFETY: `out` is non-null and writable (contract).
        unsafe { out.write(e) };
        Ok(0)
    }))
}

/// Closes an engine. Chains still in flight on other threads end when those
/// threads' queue pairs are dropped (their next call, or their exit).
///
/// # Safety
/// `e` is NULL (nothing happens) or a pointer `sfe_engine_open` returned,
/// not closed before and not used after this call.
#[no_mangle]
pub unsafe extern "C" fn sfe_engine_close(e: *mut sfe_engine) {
    guard(|| {
        if !e.is_null() {
            // SAFETY: made by Box::into_raw in sfe_engine_open, closed once (contract).
            let b = unsafe { Box::from_raw(e) };
            b.inner.close();
        }
        Ok(0)
    });
}

/// Loads the program in section `section` (NULL: the first program section)
/// of the BPF ELF object at `path`, verified for blocks of `data_size` bytes
/// (0: 4096; a multiple of 512 up to 16384). Returns a program handle (>= 0)
/// or a negative errno; -EINVAL with the verifier's message in
/// `sfe_last_error()` when the program is rejected.
///
/// # Safety
/// `e` as for `sfe_engine_close`; `path` NUL-terminated; `section` NULL or
/// NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn sfe_prog_load(e: *mut sfe_engine, path: *const c_char, section: *const c_char, data_size: u32) -> c_int {
    to_int(guard(|| {
        // SAFETY: contract.
        let e = unsafe { engine(e) }?;
        // SAFETY: contract.
        let path = unsafe { opt_str(path, "path") }?.ok_or(Error::Null { what: "path" })?;
        // SAFETY: contract.
        let section = unsafe { opt_str(section, "section") }?;
        let object = std::fs::read(&path).map_err(|source| Error::ProgRead { path: path.clone(), source })?;
        e.load(object, section, data_size).map(i64::from)
    }))
}

/// As `sfe_prog_load`, from an object in memory (`len` bytes at `object`).
///
/// # Safety
/// `e` as for `sfe_engine_close`; `object` valid for reading `len` bytes;
/// `section` NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn sfe_prog_load_mem(e: *mut sfe_engine, object: *const u8, len: size_t, section: *const c_char, data_size: u32) -> c_int {
    to_int(guard(|| {
        // SAFETY: contract.
        let e = unsafe { engine(e) }?;
        if object.is_null() {
            return Err(Error::Null { what: "object" });
        }
        // SAFETY: `object` is valid for `len` bytes (contract).
        let bytes = unsafe { std::slice::from_raw_parts(object, len) }.to_vec();
        // SAFETY: contract.
        let section = unsafe { opt_str(section, "section") }?;
        e.load(bytes, section, data_size).map(i64::from)
    }))
}

/// Unloads a program: chains can no longer name it. Returns 0 or -EBADF.
///
/// # Safety
/// `e` as for `sfe_engine_close`.
#[no_mangle]
pub unsafe extern "C" fn sfe_prog_unload(e: *mut sfe_engine, prog: c_int) -> c_int {
    to_int(guard(|| {
        // SAFETY: contract.
        let e = unsafe { engine(e) }?;
        e.unload(prog).map(|()| 0)
    }))
}

/// Checks the arguments shared by `sfe_read_xrp` and `sfe_submit_xrp`.
///
/// # Safety
/// `scratch` is NULL or valid for reading `SFE_SCRATCH_SIZE` bytes.
unsafe fn read_args<'a>(fd: c_int, buf: *mut c_void, count: size_t, offset: i64, prog: c_int, scratch: *mut c_void) -> Result<Read<'a>, Error> {
    if buf.is_null() {
        return Err(Error::Null { what: "buf" });
    }
    let count = u32::try_from(count).map_err(|_| Error::Invalid { what: "count", why: format!("{count} bytes is larger than any block a program reads") })?;
    let offset = u64::try_from(offset).map_err(|_| Error::Invalid { what: "offset", why: format!("{offset} is negative") })?;
    // SAFETY: NULL or valid for SFE_SCRATCH_SIZE bytes (contract).
    let scratch = unsafe { scratch.cast::<[u8; SCRATCH_SIZE]>().as_ref() };
    Ok(Read { fd, count, offset, prog, scratch })
}

/// Writes a finished chain's scratch and last block back to the caller.
///
/// # Safety
/// `d.buf` valid for writing `d.count` bytes; `d.scratch` NULL or valid for
/// writing `SFE_SCRATCH_SIZE` bytes.
unsafe fn deliver(d: Dest, o: &ChainOutcome) {
    if !d.scratch.is_null() {
        // SAFETY: valid for SCRATCH_SIZE bytes (contract); the outcome's own
        // scratch does not overlap caller memory.
        unsafe { std::ptr::copy_nonoverlapping(o.scratch.as_ptr(), d.scratch, SCRATCH_SIZE) };
    }
    if let Some(b) = &o.last_block {
        let n = b.len().min(d.count);
        // SAFETY: `buf` valid for `count >= n` bytes (contract).
        unsafe { std::ptr::copy_nonoverlapping(b.as_ptr(), d.buf, n) };
    }
}

fn result_of(o: &ChainOutcome, count: usize) -> i64 {
    if o.status.is_done() {
        i64::try_from(count).unwrap_or(i64::MAX)
    } else {
        -i64::from(chain_errno(&o.status))
    }
}

/// XRP's `read_xrp`: reads `count` bytes at `offset` of the open file `fd`
/// (on the engine's device; any open mode), runs program `prog` on the
/// block, and follows the reads it asks for (`next_addr`/`size`) until it
/// sets `done`. `scratch` (NULL, or `SFE_SCRATCH_SIZE` bytes) is the
/// program's scratch, in and out; the last block read is left in `buf`.
/// Returns `count`, or a negative errno with the chain's status in
/// `sfe_last_status()`: -ECANCELED (the program returned non-zero), -ELOOP
/// (hop limit), -EFAULT (a read outside the file), -ESTALE (the file changed
/// during the chain: retry), -EIO (device), -EINVAL (bad size or argument),
/// -EBADF (unknown program or fd), -EXDEV (the file is not on the engine's
/// device), -ENOEXEC (the runtime could not run the program), -ETIMEDOUT (a
/// read passed its deadline), -EBUSY (a queue limit: retry).
///
/// Runs on the calling thread's own queue pair, polled here until the chain
/// ends (made on the thread's first call).
///
/// # Safety
/// `e` as for `sfe_engine_close`; `buf` NULL (an error) or valid for
/// writing `count` bytes; `scratch` NULL or valid for reading and writing
/// `SFE_SCRATCH_SIZE` bytes.
#[no_mangle]
pub unsafe extern "C" fn sfe_read_xrp(e: *mut sfe_engine, fd: c_int, buf: *mut c_void, count: size_t, offset: i64, prog: c_int, scratch: *mut c_void) -> ssize_t {
    let r = guard(|| {
        // SAFETY: contract.
        let e = unsafe { engine(e) }?;
        // SAFETY: `scratch` per the contract.
        let r = unsafe { read_args(fd, buf, count, offset, prog, scratch) }?;
        let o = e.read_xrp(&r)?;
        // SAFETY: buffers per the contract.
        unsafe { deliver(Dest { buf: buf.cast(), count, scratch: scratch.cast() }, &o) };
        if !o.status.is_done() {
            return Err(Error::Chain(o.status));
        }
        set_last(SfeStatus::SFE_STATUS_DONE, "");
        Ok(result_of(&o, count))
    });
    // ssize_t holds every count (a u32) and errno.
    ssize_t::try_from(r).unwrap_or(-(libc::EOVERFLOW as ssize_t))
}

/// Starts `read_xrp` asynchronously on the calling thread's queue pair;
/// `sfe_poll` on the same thread reports its end with `user_data`. Returns 0
/// or a negative errno (the chain did not start).
///
/// # Safety
/// As `sfe_read_xrp`, and `buf` and `scratch` stay valid (and untouched by
/// the caller) until `sfe_poll` reports the chain.
#[no_mangle]
pub unsafe extern "C" fn sfe_submit_xrp(e: *mut sfe_engine, fd: c_int, buf: *mut c_void, count: size_t, offset: i64, prog: c_int, scratch: *mut c_void, user_data: u64) -> c_int {
    to_int(guard(|| {
        // SAFETY: contract.
        let e = unsafe { engine(e) }?;
        // SAFETY: `scratch` per the contract.
        let r = unsafe { read_args(fd, buf, count, offset, prog, scratch) }?;
        e.submit(&r, user_data, Dest { buf: buf.cast(), count, scratch: scratch.cast() })?;
        Ok(0)
    }))
}

/// Polls the calling thread's queue pair once (running programs and issuing
/// the reads they ask for) and writes up to `max` finished chains of this
/// thread to `out` (their scratch and last block delivered first). Returns
/// how many, or a negative errno. Never blocks.
///
/// # Safety
/// `e` as for `sfe_engine_close`; `out` valid for writing `max` entries.
#[no_mangle]
pub unsafe extern "C" fn sfe_poll(e: *mut sfe_engine, out: *mut sfe_completion, max: size_t) -> c_int {
    to_int(guard(|| {
        // SAFETY: contract.
        let e = unsafe { engine(e) }?;
        if out.is_null() && max > 0 {
            return Err(Error::Null { what: "out" });
        }
        let mut i = 0usize;
        let n = e.poll(max, |user_data, dest, o| {
            // SAFETY: the buffers were valid at submission and stay so until
            // this report (contract of sfe_submit_xrp).
            unsafe { deliver(dest, &o) };
            let c = sfe_completion { user_data, result: result_of(&o, dest.count), status: SfeStatus::of(&o.status), hops: o.hops };
            // SAFETY: `i < max` (poll hands at most `max`), `out` valid for `max` entries.
            let slot = unsafe { out.add(i) };
            // SAFETY: as above: in bounds and writable.
            unsafe { slot.write(c) };
            i += 1;
        })?;
        i64::try_from(n).map_err(|_| Error::Invalid { what: "max", why: "too large".into() })
    }))
}

/// The calling thread's asynchronous chains not yet reported by `sfe_poll`.
///
/// # Safety
/// `e` as for `sfe_engine_close`.
#[no_mangle]
pub unsafe extern "C" fn sfe_in_flight(e: *mut sfe_engine) -> c_int {
    to_int(guard(|| {
        // SAFETY: contract.
        let e = unsafe { engine(e) }?;
        e.in_flight().map(|n| i64::try_from(n).unwrap_or(i64::MAX))
    }))
}

/// How the calling thread's last chain ended (`SFE_STATUS_NOT_STARTED` when
/// its last call failed before a chain ran).
#[no_mangle]
pub extern "C" fn sfe_last_status() -> SfeStatus {
    LAST.try_with(|l| l.borrow().0).unwrap_or(SfeStatus::SFE_STATUS_NOT_STARTED)
}

/// The message of the calling thread's last failure ("" after a success).
/// Valid until the thread's next libsfe call.
#[no_mangle]
pub extern "C" fn sfe_last_error() -> *const c_char {
    static EMPTY: &CStr = c"";
    LAST.try_with(|l| l.borrow().1.as_ptr()).unwrap_or(EMPTY.as_ptr())
}
