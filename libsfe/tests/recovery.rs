//! A thread's queue pair that fails is replaced at the thread's next call:
//! a fatal controller is reset once, and every thread comes back. On a
//! database on ext4 on a RAM-backed block device. Needs root.

use chaining::ChainStatus;
use fs_extents::scratch::{Prefer, ScratchFs};
use sfe::engine::{Engine, Options, Read};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use workloads::btree;

/// Looks `key` up with the bundled program; the chain's status and, when it
/// is done, the value found.
fn lookup(e: &Arc<Engine>, prog: i32, file: &std::fs::File, sb: &btree::Superblock, key: u64) -> (ChainStatus, Option<u64>) {
    let mut scratch = [0u8; chaining::SCRATCH_SIZE];
    scratch[..8].copy_from_slice(&key.to_le_bytes());
    let r = Read { fd: file.as_raw_fd(), count: 4096, offset: sb.root, prog, scratch: Some(&scratch) };
    let o = e.read_xrp(&r).expect("read_xrp returns the chain's outcome");
    let found = (o.scratch_u64(2) == 1).then(|| o.scratch_u64(1));
    (o.status, found)
}

#[test]
fn a_fatal_controller_is_reset_at_the_next_call_and_every_thread_comes_back() {
    let fs = ScratchFs::create(64 << 20, Prefer::Any).expect("a scratch ext4 on a RAM-backed block device (root needed)");
    let db = fs.mount_point().join("db.sfe");
    let sb = btree::build_file(&db, 5_000, 4096, 16, 3, |_| {}).unwrap();
    fs.sync().unwrap();
    let e = Engine::open(&Options { device: fs.device().to_path_buf(), pci: None, dma_mib: 32 }).unwrap();
    let prog = e.load(workloads::programs::BTREE_LOOKUP_4K.to_vec(), None, 4096).unwrap();
    let file = std::fs::File::open(&db).unwrap();
    let want = |key| btree::reference_lookup(&file, &sb, key).unwrap().0;
    assert_eq!(lookup(&e, prog, &file, &sb, 42), (ChainStatus::Done, want(42)));
    std::thread::scope(|s| {
        let (go, wait) = std::sync::mpsc::channel::<()>();
        let (ready, made) = std::sync::mpsc::channel::<()>();
        let (e2, db2, sb2) = (&e, &db, &sb);
        // A second thread with a queue pair made before the failure.
        let other = s.spawn(move || {
            let f = std::fs::File::open(db2).unwrap();
            let first = lookup(e2, prog, &f, sb2, 100);
            ready.send(()).unwrap();
            wait.recv().unwrap();
            (first, lookup(e2, prog, &f, sb2, 100))
        });
        made.recv().expect("the other thread made its queue pair");
        e.emulated_controller().expect("the emulated controller").set_fatal();
        let (status, _) = lookup(&e, prog, &file, &sb, 42);
        assert!(matches!(status, ChainStatus::QueueFailed(nvme::QueueFailure::ControllerFatal { .. })), "{status:?}");
        // The next call resets the controller and makes a new queue pair.
        assert_eq!(lookup(&e, prog, &file, &sb, 44), (ChainStatus::Done, want(44)));
        go.send(()).unwrap();
        let (first, after) = other.join().unwrap();
        assert_eq!(first, (ChainStatus::Done, want(100)));
        assert_eq!(after, (ChainStatus::Done, want(100)), "the other thread's pair, gone with the reset, is replaced at its next call");
    });
    e.close();
}
