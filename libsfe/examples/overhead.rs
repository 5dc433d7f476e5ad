//! What `sfe_read_xrp` from C costs over the same chain through the Rust
//! API: B+-tree lookups (4 KiB nodes, depth 3) on a database on ext4 on a
//! fresh zram (or loop) device, read by the emulated controller over that
//! device. Rounds alternate between the Rust API (`ChainQueue::run_blocking`
//! on a queue pair of this thread, the file's extents from FIEMAP) and a C
//! program (`lookup_bench.c`, built here with cc, linked against libsfe)
//! doing the same lookups in the same order; prints the median of each.
//! Needs root.
//!
//! `cargo run --release -p libsfe --example overhead [ROUNDS] [LOOKUPS]`

use chaining::{ChainQueue, ChainRequest, Function, QueueConfig};
use ebpf_runtime::vm::Engine as VmEngine;
use fs_extents::scratch::{Prefer, ScratchFs};
use fs_extents::FileOffset;
use fs_extents::{Registry, TenantId, TrackedFile};
use nvme::{Backing, Controller, EmuConfig, EmulatedController};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().map_or(7, |s| s.parse().expect("ROUNDS"));
    let n: u64 = args.next().map_or(20_000, |s| s.parse().expect("LOOKUPS"));
    let lib = std::env::current_exe().unwrap().parent().and_then(Path::parent).unwrap().to_path_buf();
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let work = std::env::temp_dir().join(format!("sfe-overhead-{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();
    let cbin = work.join("lookup_bench");
    let st = Command::new("cc")
        .args(["-O2", "-Wall"])
        .arg(format!("-I{}", here.join("include").display()))
        .arg(here.join("examples/lookup_bench.c"))
        .arg("-o")
        .arg(&cbin)
        .arg(format!("-L{}", lib.display()))
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .arg("-lsfe")
        .status()
        .unwrap();
    assert!(st.success(), "cc failed");
    let obj = work.join("lookup.o");
    std::fs::write(&obj, workloads::programs::BTREE_LOOKUP_4K).unwrap();

    let fs = ScratchFs::create(256 << 20, Prefer::Any).expect("scratch ext4 (root needed)");
    let db = fs.mount_point().join("db.sfe");
    let sb = workloads::btree::build_file(&db, 1_000_000, 4096, 255, 1, |_| {}).unwrap();
    fs.sync().unwrap();
    println!("database: {} keys, depth {}, on {} ({})", sb.keys, sb.depth, fs.device().display(), fs.kind().name());

    // The Rust API: the same device, the file's extents, one queue pair.
    let tracked = TrackedFile::open(&db).unwrap();
    let emu = EmulatedController::new(Backing::file_read_only(fs.device()).unwrap(), EmuConfig::default()).unwrap();
    let ctrl = Controller::attach(Arc::new(emu)).unwrap();
    let registry = Arc::new(Registry::new());
    let tenant = TenantId(1);
    registry.add_tenant(tenant);
    let file = registry.add_file(tracked.map().clone()).unwrap();
    registry.grant(tenant, file).unwrap();
    let mut q = ChainQueue::new(&ctrl, 1, registry, QueueConfig { depth: 128, buf_size: 16384, hops_max: 1 << 16 }).unwrap();
    let prog = q.add_function(Function::bpf(workloads::programs::BTREE_LOOKUP_4K, None, 4096, VmEngine::Jit).unwrap()).unwrap();
    let mut rust_pass = |from: u64, n: u64| {
        let t0 = Instant::now();
        for i in from..from + n {
            let key = 2 * ((i * 7919) % sb.keys) + 2;
            let o = q.run_blocking(ChainRequest::new(tenant, file, FileOffset(sb.root), 4096, prog).with_u64(0, key)).unwrap();
            assert!(o.status.is_done() && o.scratch_u64(2) == 1);
        }
        t0.elapsed().as_nanos() as f64 / n as f64
    };
    // sfe_read_xrp in this process (the same C ABI function, called from Rust).
    let dev = std::ffi::CString::new(fs.device().to_str().unwrap()).unwrap();
    let mut e = std::ptr::null_mut();
    // SAFETY: NUL-terminated path, writable out pointer.
    assert_eq!(unsafe { sfe::ffi::sfe_engine_open(dev.as_ptr(), std::ptr::null(), 0, &mut e) }, 0);
    let lk = workloads::programs::BTREE_LOOKUP_4K;
    // SAFETY: `e` is open; `lk` is `lk.len()` bytes.
    let h = unsafe { sfe::ffi::sfe_prog_load_mem(e, lk.as_ptr(), lk.len(), std::ptr::null(), 4096) };
    assert!(h >= 0);
    let dbf = std::fs::File::open(&db).unwrap();
    let mut buf = vec![0u8; 4096];
    let mut scratch = vec![0u64; 512];
    let mut ffi_pass = |from: u64, n: u64| {
        use std::os::fd::AsRawFd;
        let t0 = Instant::now();
        for i in from..from + n {
            scratch[0] = 2 * ((i * 7919) % sb.keys) + 2;
            // SAFETY: the engine is open; buf is 4096 bytes, scratch 4096 bytes.
            let r = unsafe { sfe::ffi::sfe_read_xrp(e, dbf.as_raw_fd(), buf.as_mut_ptr().cast(), 4096, i64::try_from(sb.root).unwrap(), h, scratch.as_mut_ptr().cast()) };
            assert!(r == 4096 && scratch[2] == 1);
        }
        t0.elapsed().as_nanos() as f64 / n as f64
    };
    rust_pass(0, n); // warm up
    ffi_pass(0, n);
    let (mut rust, mut c, mut ffi) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        // Interleaved in batches of CHUNK lookups (the same keys on both
        // paths), so drift in the machine's load hits both alike.
        const CHUNK: u64 = 250;
        let (mut tr, mut tf) = (0.0, 0.0);
        for b in 0..n / CHUNK {
            tr += rust_pass(b * CHUNK, CHUNK);
            tf += ffi_pass(b * CHUNK, CHUNK);
        }
        rust.push(tr / (n / CHUNK) as f64);
        ffi.push(tf / (n / CHUNK) as f64);
        let out = Command::new(&cbin).arg(fs.device()).arg(&db).arg(&obj).arg(n.to_string()).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
        c.push(text.trim().strip_prefix("ns_per_lookup ").unwrap().parse::<f64>().unwrap());
    }
    println!("rust API   ns/lookup per round: {:?}", rust.iter().map(|x| x.round()).collect::<Vec<_>>());
    println!("sfe_read_xrp in-process ns/lookup per round: {:?}", ffi.iter().map(|x| x.round()).collect::<Vec<_>>());
    println!("C program (libsfe) ns/lookup per round: {:?}", c.iter().map(|x| x.round()).collect::<Vec<_>>());
    let (r, cm, fm) = (median(&mut rust), median(&mut c), median(&mut ffi));
    println!("median: rust API {r:.0} ns; sfe_read_xrp in-process {fm:.0} ns ({:+.1}%); C program {cm:.0} ns ({:+.1}%)", (fm / r - 1.0) * 100.0, (cm / r - 1.0) * 100.0);
    // SAFETY: opened above, not used after.
    unsafe { sfe::ffi::sfe_engine_close(e) };
    drop(dbf);
    // The queue, controller and map hold the device open: release them first.
    drop(q);
    drop(ctrl);
    drop(tracked);
    fs.close().unwrap();
    let _ = std::fs::remove_dir_all(&work);
}
