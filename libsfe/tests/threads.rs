//! `sfe_read_xrp` from several threads at once, each on its own queue pair,
//! on a database on ext4 on a RAM-backed block device; every answer checked
//! against the reference traversal (plain reads). Needs root.

use fs_extents::scratch::{Prefer, ScratchFs};
use sfe::ffi::{sfe_engine, sfe_engine_close, sfe_engine_open, sfe_last_error, sfe_prog_load_mem, sfe_read_xrp, SFE_SCRATCH_SIZE};
use std::ffi::{CStr, CString};
use std::os::fd::AsRawFd;
use workloads::btree;

struct Shared(*mut sfe_engine);
// SAFETY: libsfe engines may be called from any thread (the library's contract).
unsafe impl Send for Shared {}
// SAFETY: as above.
unsafe impl Sync for Shared {}

fn last_error() -> String {
    // SAFETY: a NUL-terminated string valid until this thread's next libsfe call.
    unsafe { CStr::from_ptr(sfe_last_error()) }.to_string_lossy().into_owned()
}

#[test]
fn threads_each_run_their_chains_to_completion() {
    let fs = ScratchFs::create(64 << 20, Prefer::Any).expect("a scratch ext4 on a RAM-backed block device (root needed)");
    let db = fs.mount_point().join("db.sfe");
    let sb = btree::build_file(&db, 30_000, 4096, 16, 3, |_| {}).unwrap();
    fs.sync().unwrap();
    let dev = CString::new(fs.device().to_str().unwrap()).unwrap();
    let mut e = std::ptr::null_mut();
    // SAFETY: a NUL-terminated device path and a writable out pointer.
    let rc = unsafe { sfe_engine_open(dev.as_ptr(), std::ptr::null(), 32, &mut e) };
    assert_eq!(rc, 0, "{}", last_error());
    let obj = workloads::programs::BTREE_LOOKUP_4K;
    // SAFETY: `e` is open; the object is `obj.len()` bytes.
    let prog = unsafe { sfe_prog_load_mem(e, obj.as_ptr(), obj.len(), std::ptr::null(), 4096) };
    assert!(prog >= 0, "{}", last_error());
    let shared = Shared(e);
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let (shared, db, sb) = (&shared, &db, &sb);
            s.spawn(move || {
                let file = std::fs::File::open(db).unwrap();
                let mut buf = vec![0u8; 4096];
                let mut scratch = vec![0u8; SFE_SCRATCH_SIZE];
                for i in 0..300u64 {
                    let key = (i * 131 + t * 7) % 60_003;
                    scratch.fill(0);
                    scratch[..8].copy_from_slice(&key.to_le_bytes());
                    // SAFETY: the engine is open; buf and scratch are large enough.
                    let r = unsafe { sfe_read_xrp(shared.0, file.as_raw_fd(), buf.as_mut_ptr().cast(), 4096, i64::try_from(sb.root).unwrap(), prog, scratch.as_mut_ptr().cast()) };
                    assert_eq!(r, 4096, "thread {t} key {key}: {}", last_error());
                    let word = |i: usize| u64::from_le_bytes(scratch[i * 8..i * 8 + 8].try_into().unwrap());
                    let (want, _) = btree::reference_lookup(&file, sb, key).unwrap();
                    assert_eq!(word(2) == 1, want.is_some(), "thread {t} key {key}");
                    if let Some(v) = want {
                        assert_eq!(word(1), v, "thread {t} key {key}");
                    }
                    assert_eq!(u32::from_le_bytes(buf[..4].try_into().unwrap()), btree::MAGIC, "buf holds the last node read");
                }
            });
        }
    });
    // SAFETY: opened above, not used after.
    unsafe { sfe_engine_close(e) };
    fs.close().unwrap();
}
