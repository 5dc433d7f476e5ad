//! `libsfe_xrp.so`: runs an application written for XRP's kernel unchanged
//! on a stock kernel, under `LD_PRELOAD`. It answers the two calls XRP added:
//!
//! - libbpf 0.x's legacy `bpf_prog_load(path, BPF_PROG_TYPE_XRP, &obj,
//!   &prog_fd)`: the program is loaded (and verified) by libsfe, and
//!   `prog_fd` is a real descriptor (a memfd) standing for it, so `close`
//!   works; any other program type goes to the real `bpf_prog_load`;
//! - `syscall(445, fd, buf, count, offset, prog_fd, scratch)` (XRP's
//!   `SYS_READ_XRP`): `sfe_read_xrp` on the engine; any other system call
//!   goes to the real `syscall`.
//!
//! Every other call reaches the C library untouched. The engine opens on the
//! first XRP call, on the device named by `SFE_DEVICE`, with `SFE_HUGEMEM`
//! MiB of DMA memory (README, "Running an XRP application").
//!
//! Must not know about: the engine's internals (it uses libsfe's C interface).

use libc::{c_char, c_int, c_long, c_void};
use sfe::ffi::{sfe_engine, sfe_engine_open, sfe_last_error, sfe_prog_load, sfe_prog_unload, sfe_read_xrp};
use std::collections::HashMap;
use std::ffi::CStr;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

/// XRP's system call number (`SYS_READ_XRP` in XRP's 5.12 kernel). On a
/// stock kernel 445 is `landlock_add_rule`: under the shim it is read_xrp.
pub const SYS_READ_XRP: c_long = 445;
/// `BPF_PROG_TYPE_XRP` as XRP's kernel numbered it: appended to Linux
/// 5.12's `enum bpf_prog_type` after `BPF_PROG_TYPE_SK_LOOKUP` (30). The
/// environment variable `SFE_XRP_PROG_TYPE` overrides it.
pub const BPF_PROG_TYPE_XRP: c_int = 31;

/// The real functions, resolved once (dlsym(RTLD_NEXT)) when the library loads.
static REAL_SYSCALL: AtomicPtr<c_void> = AtomicPtr::new(std::ptr::null_mut());
static REAL_CLOSE: AtomicPtr<c_void> = AtomicPtr::new(std::ptr::null_mut());
static REAL_PROG_LOAD: AtomicPtr<c_void> = AtomicPtr::new(std::ptr::null_mut());
static REAL_OBJECT_CLOSE: AtomicPtr<c_void> = AtomicPtr::new(std::ptr::null_mut());

type SyscallFn = unsafe extern "C" fn(c_long, c_long, c_long, c_long, c_long, c_long, c_long) -> c_long;
type CloseFn = unsafe extern "C" fn(c_int) -> c_int;
type ProgLoadFn = unsafe extern "C" fn(*const c_char, c_int, *mut *mut c_void, *mut c_int) -> c_int;
type ObjectCloseFn = unsafe extern "C" fn(*mut c_void);

fn next(name: &CStr) -> *mut c_void {
    // SAFETY: dlsym with RTLD_NEXT and a NUL-terminated name has no other
    // precondition; a missing symbol is NULL.
    unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) }
}

fn resolve() {
    // Relaxed: written before any thread of the application can call in
    // (the loader runs constructors first), and re-resolving is harmless.
    REAL_SYSCALL.store(next(c"syscall"), Ordering::Relaxed);
    REAL_CLOSE.store(next(c"close"), Ordering::Relaxed);
    REAL_PROG_LOAD.store(next(c"bpf_prog_load"), Ordering::Relaxed);
    REAL_OBJECT_CLOSE.store(next(c"bpf_object__close"), Ordering::Relaxed);
}

extern "C" fn init() {
    resolve();
}

/// Runs `init` when the library is loaded, before `main`.
#[used]
#[link_section = ".init_array"]
static INIT: extern "C" fn() = init;

fn real(p: &AtomicPtr<c_void>) -> *mut c_void {
    let f = p.load(Ordering::Relaxed);
    if f.is_null() {
        resolve();
        return p.load(Ordering::Relaxed);
    }
    f
}

/// The engine, opened on the first XRP call.
struct Shared(*mut sfe_engine);
// SAFETY: libsfe engines are thread-safe (every call takes the calling
// thread's own queue pair); the pointer is never freed while the process runs.
unsafe impl Send for Shared {}
// SAFETY: as above.
unsafe impl Sync for Shared {}

static ENGINE: OnceLock<Result<Shared, (c_int, String)>> = OnceLock::new();

/// What our program descriptors stand for: memfd -> libsfe program handle.
static PROGS: Mutex<Option<HashMap<c_int, c_int>>> = Mutex::new(None);
/// Entries in PROGS (lets `close` skip the lock when there are none).
static PROG_COUNT: AtomicUsize = AtomicUsize::new(0);
/// The `bpf_object` pointers we handed out (boxes of their program fd).
static OBJECTS: Mutex<Vec<usize>> = Mutex::new(Vec::new());

fn say(msg: &str) {
    eprintln!("libsfe_xrp: {msg}");
}

fn env_u64(name: &str, default: u64) -> Result<u64, String> {
    match std::env::var(name) {
        Ok(v) => v.trim().parse().map_err(|_| format!("{name}={v:?} is not a number")),
        Err(_) => Ok(default),
    }
}

fn open_engine() -> Result<Shared, (c_int, String)> {
    let Ok(device) = std::env::var("SFE_DEVICE") else {
        return Err((
            libc::ENODEV,
            "SFE_DEVICE is not set: set it to the block device (or image file) that holds the file system of the files the application reads with read_xrp, e.g. SFE_DEVICE=/dev/nvme0n1 (see the README, \"Running an XRP application\")".into(),
        ));
    };
    let mib = env_u64("SFE_HUGEMEM", 0).map_err(|m| (libc::EINVAL, m))?;
    let pci = std::env::var("SFE_PCI").ok();
    let dev = std::ffi::CString::new(device.clone()).map_err(|_| (libc::EINVAL, "SFE_DEVICE holds a NUL byte".to_string()))?;
    let pci_c = pci.map(std::ffi::CString::new).transpose().map_err(|_| (libc::EINVAL, "SFE_PCI holds a NUL byte".to_string()))?;
    let mut e: *mut sfe_engine = std::ptr::null_mut();
    // SAFETY: `dev` and `pci_c` are NUL-terminated and live for the call; `e` is writable.
    let rc = unsafe { sfe_engine_open(dev.as_ptr(), pci_c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()), mib, &mut e) };
    if rc < 0 {
        return Err((-rc, format!("cannot open the engine on SFE_DEVICE={device}: {}", last_error())));
    }
    Ok(Shared(e))
}

fn last_error() -> String {
    // SAFETY: sfe_last_error returns a NUL-terminated string valid until this
    // thread's next libsfe call; it is copied at once.
    unsafe { CStr::from_ptr(sfe_last_error()) }.to_string_lossy().into_owned()
}

/// The engine, or the errno to fail with (the message said once).
fn engine() -> Result<*mut sfe_engine, c_int> {
    match ENGINE.get_or_init(|| {
        let r = open_engine();
        if let Err((_, m)) = &r {
            say(m);
        }
        r
    }) {
        Ok(s) => Ok(s.0),
        Err((errno, _)) => Err(*errno),
    }
}

fn set_errno(e: c_int) {
    // SAFETY: __errno_location returns this thread's errno slot.
    let slot = unsafe { libc::__errno_location() };
    // SAFETY: the slot is this thread's, valid for the thread's life.
    unsafe { *slot = e };
}

fn xrp_prog_type() -> c_int {
    std::env::var("SFE_XRP_PROG_TYPE").ok().and_then(|v| v.trim().parse().ok()).unwrap_or(BPF_PROG_TYPE_XRP)
}

/// libbpf 0.x's legacy loader. For `BPF_PROG_TYPE_XRP`: loads `file` into
/// the engine and writes a descriptor standing for it to `*prog_fd` (0, or a
/// negative errno with errno set, the verifier's message on stderr). Other
/// types go to the real libbpf.
///
/// # Safety
/// As libbpf's: `file` NUL-terminated; `pobj` and `prog_fd` writable.
#[no_mangle]
pub unsafe extern "C" fn bpf_prog_load(file: *const c_char, prog_type: c_int, pobj: *mut *mut c_void, prog_fd: *mut c_int) -> c_int {
    if prog_type != xrp_prog_type() {
        let f = real(&REAL_PROG_LOAD);
        if f.is_null() {
            set_errno(libc::ENOSYS);
            return -libc::ENOSYS;
        }
        // SAFETY: the real bpf_prog_load has this (libbpf 0.x) signature.
        let f: ProgLoadFn = unsafe { std::mem::transmute::<*mut c_void, ProgLoadFn>(f) };
        // SAFETY: the caller's arguments, passed on.
        return unsafe { f(file, prog_type, pobj, prog_fd) };
    }
    let r = std::panic::catch_unwind(|| {
        if file.is_null() || prog_fd.is_null() {
            return Err(libc::EINVAL);
        }
        let e = engine()?;
        let data_size = env_u64("SFE_DATA_SIZE", 0).ok().and_then(|v| u32::try_from(v).ok()).unwrap_or(0);
        // SAFETY: `e` is open; `file` is NUL-terminated (contract).
        let h = unsafe { sfe_prog_load(e, file, std::ptr::null(), data_size) };
        if h < 0 {
            // SAFETY: NUL-terminated (contract).
            let path = unsafe { CStr::from_ptr(file) }.to_string_lossy();
            say(&format!("{path}: {}", last_error()));
            return Err(-h);
        }
        // SAFETY: a NUL-terminated name and no flags.
        let fd = unsafe { libc::memfd_create(c"sfe-xrp-prog".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            let err = std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EMFILE);
            // SAFETY: `e` is open and `h` was just loaded on it.
            unsafe { sfe_prog_unload(e, h) };
            return Err(err);
        }
        PROGS.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert_with(HashMap::new).insert(fd, h);
        PROG_COUNT.fetch_add(1, Ordering::Release);
        // SAFETY: writable (contract, checked non-null).
        unsafe { prog_fd.write(fd) };
        if !pobj.is_null() {
            let obj = Box::into_raw(Box::new(fd)).cast::<c_void>();
            OBJECTS.lock().unwrap_or_else(|p| p.into_inner()).push(obj as usize);
            // SAFETY: writable (contract).
            unsafe { pobj.write(obj) };
        }
        Ok(())
    });
    match r {
        Ok(Ok(())) => 0,
        Ok(Err(e)) => {
            set_errno(e);
            -e
        }
        Err(_) => {
            set_errno(libc::EFAULT);
            -libc::EFAULT
        }
    }
}

/// Frees an object we handed out; others go to the real libbpf.
///
/// # Safety
/// As libbpf's: `obj` NULL or a `bpf_object` not yet closed.
#[no_mangle]
pub unsafe extern "C" fn bpf_object__close(obj: *mut c_void) {
    if obj.is_null() {
        return;
    }
    let ours = {
        let mut objs = OBJECTS.lock().unwrap_or_else(|p| p.into_inner());
        match objs.iter().position(|&o| o == obj as usize) {
            Some(i) => {
                objs.swap_remove(i);
                true
            }
            None => false,
        }
    };
    if ours {
        // SAFETY: made by Box::into_raw in bpf_prog_load, removed from the list once.
        drop(unsafe { Box::from_raw(obj.cast::<c_int>()) });
        return;
    }
    let f = real(&REAL_OBJECT_CLOSE);
    if !f.is_null() {
        // SAFETY: dlsym found libbpf's bpf_object__close, of this signature.
        let f = unsafe { std::mem::transmute::<*mut c_void, ObjectCloseFn>(f) };
        // SAFETY: the caller's argument, passed on.
        unsafe { f(obj) };
    }
}

/// `close`: a program descriptor of ours also unloads its program.
///
/// # Safety
/// As the C library's.
#[no_mangle]
pub unsafe extern "C" fn close(fd: c_int) -> c_int {
    // Acquire: pairs with the Release increment after an insert.
    if PROG_COUNT.load(Ordering::Acquire) > 0 {
        let h = PROGS.lock().unwrap_or_else(|p| p.into_inner()).as_mut().and_then(|m| m.remove(&fd));
        if let Some(h) = h {
            PROG_COUNT.fetch_sub(1, Ordering::Release);
            if let Some(Ok(s)) = ENGINE.get() {
                // SAFETY: the engine is open; `h` was loaded on it.
                unsafe { sfe_prog_unload(s.0, h) };
            }
        }
    }
    let f = real(&REAL_CLOSE);
    if f.is_null() {
        set_errno(libc::ENOSYS);
        return -1;
    }
    // SAFETY: dlsym found the C library's close, of this signature.
    let f = unsafe { std::mem::transmute::<*mut c_void, CloseFn>(f) };
    // SAFETY: the caller's argument, passed on.
    unsafe { f(fd) }
}

/// `syscall(2)`. `SYS_READ_XRP` (445) runs the chain through libsfe and
/// returns `count`, or -1 with errno; every other number goes to the C
/// library. The variadic arguments are read as six longs: on x86-64 and
/// aarch64 Linux a variadic call passes integer arguments exactly where a
/// fixed one does (registers, then the stack), and the C library's own
/// `syscall` reads six the same way.
///
/// # Safety
/// As the C library's `syscall`.
#[no_mangle]
pub unsafe extern "C" fn syscall(n: c_long, a1: c_long, a2: c_long, a3: c_long, a4: c_long, a5: c_long, a6: c_long) -> c_long {
    if n != SYS_READ_XRP {
        let f = real(&REAL_SYSCALL);
        if f.is_null() {
            set_errno(libc::ENOSYS);
            return -1;
        }
        // SAFETY: dlsym found the C library's syscall, read as six longs (see above).
        let f = unsafe { std::mem::transmute::<*mut c_void, SyscallFn>(f) };
        // SAFETY: the caller's arguments, passed on.
        return unsafe { f(n, a1, a2, a3, a4, a5, a6) };
    }
    // read_xrp(fd, buf, count, offset, prog_fd, scratch)
    let r = std::panic::catch_unwind(|| -> Result<c_long, c_int> {
        let e = engine()?;
        let prog_fd = c_int::try_from(a5).map_err(|_| libc::EBADF)?;
        let h = PROGS.lock().unwrap_or_else(|p| p.into_inner()).as_ref().and_then(|m| m.get(&prog_fd).copied());
        let Some(h) = h else {
            return Err(libc::EBADF);
        };
        let fd = c_int::try_from(a1).map_err(|_| libc::EBADF)?;
        let count = usize::try_from(a3).map_err(|_| libc::EINVAL)?;
        // SAFETY: the application passes read_xrp's arguments: `buf` valid
        // for `count` bytes, `scratch` for XRP's 4096-byte scratch (or NULL).
        let rc = unsafe { sfe_read_xrp(e, fd, a2 as *mut c_void, count, a4, h, a6 as *mut c_void) };
        if rc < 0 {
            // ssize_t errno values fit an int.
            return Err(c_int::try_from(-rc).unwrap_or(libc::EIO));
        }
        Ok(rc as c_long)
    });
    match r {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            set_errno(e);
            -1
        }
        Err(_) => {
            set_errno(libc::EFAULT);
            -1
        }
    }
}
