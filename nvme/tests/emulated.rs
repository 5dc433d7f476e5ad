//! Integration tests of the driver against the emulated controller: data
//! integrity for random sizes and offsets, and every error path.
// Test data: sizes and counts are small and masked where they are narrowed.
#![allow(clippy::cast_possible_truncation)]

use nvme::controller::State;
use nvme::emu::{Backing, EmuConfig, EmulatedController, Latency};
use nvme::spec::{Sqe, Status};
use nvme::{Controller, DmaBuf, Lba, Namespace, QueueError, Transport};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn setup(bytes: u64, cfg: EmuConfig) -> (Arc<EmulatedController>, Controller, Namespace) {
    let emu = Arc::new(EmulatedController::new(Backing::memory(bytes).unwrap(), cfg).unwrap());
    let ctrl = Controller::attach(emu.clone()).expect("bring-up");
    let ns = ctrl.namespace(1).unwrap();
    (emu, ctrl, ns)
}

/// Polls until one completion arrives (or panics after 5 s).
fn wait_one<C>(qp: &mut nvme::IoQueuePair<C>) -> nvme::Completion<C> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut got = None;
        qp.process_completions(1, |_, c| got = Some(c)).unwrap();
        if let Some(c) = got {
            return c;
        }
        assert!(Instant::now() < deadline, "no completion within 5 s");
    }
}

#[test]
fn bring_up_goes_through_every_state_and_identifies() {
    let (_emu, ctrl, ns) = setup(1 << 20, EmuConfig::default());
    assert_eq!(
        ctrl.bringup_trace(),
        &[
            State::Disable,
            State::WaitDisabled,
            State::ConfigureAdmin,
            State::Enable,
            State::WaitReady,
            State::IdentifyController,
            State::SetQueueCount,
            State::IdentifyNamespaces,
            State::Ready
        ]
    );
    assert_eq!(ctrl.identify().model(), "sfe emulated NVMe controller");
    assert_eq!(ns.block_size, 512);
    assert_eq!(ns.blocks, 2048);
    assert_eq!(ns.max_transfer, 1 << 20);
    assert_eq!(ctrl.io_queue_count(), 64);
    assert!(ctrl.namespace(2).is_err());
}

#[test]
fn random_writes_and_reads_check_every_byte() {
    let size: u64 = 8 << 20;
    let (emu, ctrl, ns) = setup(size, EmuConfig::default());
    let mut qp = ctrl.alloc_io_qpair::<u64>(64, 0).unwrap();
    let pool = ctrl.transport().dma().clone();
    let mut model = vec![0u8; size as usize];
    let mut rng = Rng(0x5eed);
    for round in 0..200u64 {
        let nlb = 1 + rng.below(256) as u32; // up to 128 KiB: PRP lists included
        let lba = rng.below(ns.blocks - u64::from(nlb));
        let len = nlb as usize * 512;
        let mut buf = pool.alloc(len).unwrap();
        let data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        buf.write(0, &data);
        qp.write(&ns, Lba(lba), nlb, buf, round).unwrap();
        let c = wait_one(&mut qp);
        assert!(c.status.is_success(), "write {round}: {}", c.status);
        assert_eq!(c.cookie, round);
        model[lba as usize * 512..lba as usize * 512 + len].copy_from_slice(&data);

        // Read back an overlapping random range.
        let rn = 1 + rng.below(256) as u32;
        let rl = rng.below(ns.blocks - u64::from(rn));
        let rbuf = pool.alloc(rn as usize * 512).unwrap();
        qp.read(&ns, Lba(rl), rn, rbuf, round).unwrap();
        let c = wait_one(&mut qp);
        assert!(c.status.is_success(), "read {round}: {}", c.status);
        let got = c.buf.unwrap().to_vec();
        let start = rl as usize * 512;
        assert_eq!(&got[..rn as usize * 512], &model[start..start + rn as usize * 512], "round {round}");
    }
    // The device's store holds what we wrote.
    assert_eq!(emu.backing().snapshot(0, size as usize).unwrap(), model);
}

#[test]
fn many_commands_in_flight_wrap_the_rings() {
    let (emu, ctrl, ns) = setup(4 << 20, EmuConfig::default());
    let mut qp = ctrl.alloc_io_qpair::<u32>(8, 0).unwrap(); // 7 in flight at most
    let pool = ctrl.transport().dma().clone();
    let mut done = 0u32;
    let mut next = 0u32;
    let total = 1000u32;
    let mut seen = vec![false; total as usize];
    while done < total {
        while next < total && !qp.is_full() {
            let buf = pool.alloc(512).unwrap();
            qp.read(&ns, Lba(u64::from(next) % ns.blocks), 1, buf, next).unwrap();
            next += 1;
        }
        assert!(qp.in_flight() <= 7);
        qp.process_completions(0, |_, c| {
            assert!(c.status.is_success());
            assert!(!seen[c.cookie as usize], "completion delivered twice");
            seen[c.cookie as usize] = true;
            done += 1;
        })
        .unwrap();
    }
    assert!(seen.iter().all(|&s| s));
    assert_eq!(emu.stats.reads.load(std::sync::atomic::Ordering::Relaxed), u64::from(total));
}

#[test]
fn full_queue_hands_the_request_back() {
    let (_emu, ctrl, ns) = setup(1 << 20, EmuConfig::default());
    let mut qp = ctrl.alloc_io_qpair::<u8>(4, 0).unwrap();
    let pool = ctrl.transport().dma().clone();
    for i in 0..3 {
        qp.read(&ns, Lba(0), 1, pool.alloc(512).unwrap(), i).unwrap();
    }
    let buf = pool.alloc(512).unwrap();
    let iova = buf.iova();
    let rej = qp.read(&ns, Lba(0), 1, buf, 9).unwrap_err();
    assert!(matches!(rej.error, QueueError::QueueFull { in_flight: 3, .. }), "{}", rej.error);
    assert_eq!(rej.cookie, 9);
    assert_eq!(rej.buf.unwrap().iova(), iova, "the same buffer comes back");
    let mut n = 0;
    while n < 3 {
        n += qp.process_completions(0, |_, _| {}).unwrap();
    }
    assert_eq!(qp.in_flight(), 0);
}

#[test]
fn completions_per_poll_are_capped() {
    let (_emu, ctrl, ns) = setup(1 << 20, EmuConfig::default());
    let mut qp = ctrl.alloc_io_qpair::<u8>(32, 4).unwrap();
    let pool = ctrl.transport().dma().clone();
    for i in 0..20 {
        qp.read(&ns, Lba(i), 1, pool.alloc(512).unwrap(), 0).unwrap();
    }
    assert_eq!(qp.process_completions(0, |_, _| {}).unwrap(), 4);
    assert_eq!(qp.process_completions(2, |_, _| {}).unwrap(), 2);
}

#[test]
fn out_of_range_lba_gets_the_nvme_status() {
    let (_emu, ctrl, ns) = setup(1 << 20, EmuConfig::default());
    let mut qp = ctrl.alloc_io_qpair::<()>(8, 0).unwrap();
    let buf = ctrl.transport().dma().alloc(4096).unwrap();
    qp.read(&ns, Lba(ns.blocks - 4), 8, buf, ()).unwrap();
    assert_eq!(wait_one(&mut qp).status, Status::LBA_OUT_OF_RANGE);
    let buf = ctrl.transport().dma().alloc(512).unwrap();
    qp.read(&ns, Lba(u64::MAX), 1, buf, ()).unwrap();
    assert_eq!(wait_one(&mut qp).status, Status::LBA_OUT_OF_RANGE, "overflowing slba + nlb");
}

#[test]
fn bad_opcode_namespace_and_prps_get_their_statuses() {
    let (_emu, ctrl, ns) = setup(4 << 20, EmuConfig::default());
    let mut qp = ctrl.alloc_io_qpair::<&str>(8, 0).unwrap();
    let buf = ctrl.transport().dma().alloc(4096).unwrap();
    let good = buf.iova().0;
    let cases = [
        (Sqe { opcode: 0x7f, nsid: 1, ..Sqe::default() }, Status::INVALID_OPCODE, "opcode"),
        (Sqe { opcode: 0x02, nsid: 9, prp1: good, ..Sqe::default() }, Status::INVALID_NAMESPACE, "namespace"),
        (Sqe { opcode: 0x02, nsid: 1, prp1: good + 2, ..Sqe::default() }, Status::INVALID_PRP_OFFSET, "misaligned prp1"),
        (Sqe { opcode: 0x02, nsid: 1, prp1: 0x1000, ..Sqe::default() }, Status::DATA_TRANSFER_ERROR, "foreign memory"),
        // 8 blocks from the middle of a page end in the next page: PRP2 must be page aligned.
        (Sqe { opcode: 0x02, nsid: 1, prp1: good + 2048, prp2: good + 8, cdw12: 7, ..Sqe::default() }, Status::INVALID_PRP_OFFSET, "misaligned prp2"),
        // More than MDTS (1 MiB): 4096 blocks of 512 bytes = 2 MiB.
        (Sqe { opcode: 0x02, nsid: 1, prp1: good, cdw12: 4095, ..Sqe::default() }, Status::INVALID_FIELD, "mdts"),
    ];
    for (sqe, want, what) in cases {
        // SAFETY: every PRP here is either inside `buf` (4 KiB, alive until
        // the end of the test and not touched by the host meanwhile) or
        // outside the DMA pool, which the emulated device refuses; no case
        // transfers more than `buf` holds except "mdts", which the device
        // rejects before any transfer.
        unsafe { qp.submit(sqe, None, what) }.unwrap();
        let c = wait_one(&mut qp);
        assert_eq!(c.status, want, "{what}");
        assert_eq!(c.cookie, what);
    }
    // Requests the typed builders refuse never reach the device (byte
    // ranges become blocks in `chaining::device_blocks`, tested there).
    let small = ctrl.transport().dma().alloc(512).unwrap();
    let rej = qp.read(&ns, Lba(0), 2, small, "small").unwrap_err();
    assert!(matches!(rej.error, QueueError::BufferTooSmall { .. }));
    let b = ctrl.transport().dma().alloc(512).unwrap();
    assert!(matches!(qp.read(&ns, Lba(0), 0, b, "zero").unwrap_err().error, QueueError::ZeroBlocks));
}

#[test]
fn injected_media_error_fails_only_that_range() {
    let (emu, ctrl, ns) = setup(1 << 20, EmuConfig::default());
    emu.inject_fault(10..11, Status::UNRECOVERED_READ_ERROR);
    let mut qp = ctrl.alloc_io_qpair::<u64>(8, 0).unwrap();
    for lba in [9u64, 10, 11] {
        let buf = ctrl.transport().dma().alloc(512).unwrap();
        qp.read(&ns, Lba(lba), 1, buf, lba).unwrap();
        let c = wait_one(&mut qp);
        let want = if lba == 10 { Status::UNRECOVERED_READ_ERROR } else { Status::SUCCESS };
        assert_eq!(c.status, want, "lba {lba}");
    }
    emu.clear_faults();
}

#[test]
fn latency_model_delays_completions_until_due() {
    let cfg = EmuConfig { latency: Latency::Fixed(Duration::from_millis(20)), ..EmuConfig::default() };
    let (_emu, ctrl, ns) = setup(1 << 20, cfg);
    let mut qp = ctrl.alloc_io_qpair::<()>(8, 0).unwrap();
    let buf = ctrl.transport().dma().alloc(512).unwrap();
    let t0 = Instant::now();
    qp.read(&ns, Lba(0), 1, buf, ()).unwrap();
    assert_eq!(qp.process_completions(0, |_, _| {}).unwrap(), 0, "not due yet");
    let c = wait_one(&mut qp);
    assert!(c.status.is_success());
    assert!(t0.elapsed() >= Duration::from_millis(20), "completed after {:?}", t0.elapsed());
}

#[test]
fn file_backed_namespace_persists_writes() {
    let dir = std::env::temp_dir().join(format!("nvme-it-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("disk.img");
    {
        let emu = Arc::new(EmulatedController::new(Backing::file(&path, Some(2 << 20)).unwrap(), EmuConfig { block_size: 4096, ..EmuConfig::default() }).unwrap());
        let ctrl = Controller::attach(emu).unwrap();
        let ns = ctrl.namespace(1).unwrap();
        assert_eq!(ns.block_size, 4096);
        let mut qp = ctrl.alloc_io_qpair::<()>(8, 0).unwrap();
        let mut buf = ctrl.transport().dma().alloc(8192).unwrap();
        buf.write(0, &[0xabu8; 8192]);
        qp.write(&ns, Lba(3), 2, buf, ()).unwrap();
        assert!(wait_one(&mut qp).status.is_success());
        qp.flush(&ns, ()).unwrap();
        assert!(wait_one(&mut qp).status.is_success());
    }
    let bytes = std::fs::read(&path).unwrap();
    assert!(bytes[3 * 4096..5 * 4096].iter().all(|&b| b == 0xab));
    assert!(bytes[..3 * 4096].iter().all(|&b| b == 0));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn admin_rejects_bad_queue_creation() {
    let (_emu, ctrl, _ns) = setup(1 << 20, EmuConfig { io_queues: 2, ..EmuConfig::default() });
    let ring = ctrl.transport().dma().alloc(4096).unwrap();
    let create_cq = |qid: u32, size: u32, flags: u32, prp1: u64| Sqe { opcode: 0x05, prp1, cdw10: qid | ((size - 1) << 16), cdw11: flags, ..Sqe::default() };
    // SAFETY: each command below is refused by the device before it uses its
    // address (the test checks the refusal); `ring` outlives them all.
    let admin = |sqe: Sqe| unsafe { ctrl.admin_raw(sqe, None) };
    let status = |r: Result<(u32, Option<DmaBuf>), nvme::CtrlError>| match r {
        Err(nvme::CtrlError::AdminFailed { status, .. }) => status,
        other => panic!("expected an admin failure, got {other:?}"),
    };
    assert_eq!(status(admin(create_cq(0, 8, 1, ring.iova().0))), Status::INVALID_QUEUE_ID);
    assert_eq!(status(admin(create_cq(3, 8, 1, ring.iova().0))), Status::INVALID_QUEUE_ID);
    assert_eq!(status(admin(create_cq(1, 1, 1, ring.iova().0))), Status::INVALID_QUEUE_SIZE);
    assert_eq!(status(admin(create_cq(1, 8, 0, ring.iova().0))), Status::INVALID_FIELD);
    assert_eq!(status(admin(create_cq(1, 8, 1, ring.iova().0 + 64))), Status::INVALID_PRP_OFFSET);
    // An SQ whose CQ does not exist.
    let sq = Sqe { opcode: 0x01, prp1: ring.iova().0, cdw10: 1 | (7 << 16), cdw11: 1 | (2 << 16), ..Sqe::default() };
    assert_eq!(status(admin(sq)), Status::CQ_INVALID);
    assert_eq!(status(admin(Sqe { opcode: 0x7e, ..Sqe::default() })), Status::INVALID_OPCODE);
}

#[test]
fn queue_ids_are_recycled_when_queue_pairs_drop() {
    let (_emu, ctrl, ns) = setup(1 << 20, EmuConfig { io_queues: 2, ..EmuConfig::default() });
    let a = ctrl.alloc_io_qpair::<()>(8, 0).unwrap();
    let b = ctrl.alloc_io_qpair::<()>(8, 0).unwrap();
    assert!(matches!(ctrl.alloc_io_qpair::<()>(8, 0), Err(nvme::CtrlError::NoQueues { granted: 2 })));
    drop(a);
    let mut c = ctrl.alloc_io_qpair::<()>(8, 0).unwrap();
    let buf = ctrl.transport().dma().alloc(512).unwrap();
    c.read(&ns, Lba(0), 1, buf, ()).unwrap();
    assert!(wait_one(&mut c).status.is_success(), "recreated queue works");
    drop(b);
    assert!(matches!(ctrl.alloc_io_qpair::<()>(1, 0), Err(nvme::CtrlError::BadDepth { .. })));
}

#[test]
fn bring_up_fails_cleanly_on_a_controller_that_never_gets_ready() {
    // A transport whose CSTS never shows ready: bring-up must time out with a
    // clear error, not hang or panic.
    #[derive(Debug)]
    struct Dead(nvme::DmaPool);
    impl Transport for Dead {
        fn name(&self) -> String {
            "dead".into()
        }
        fn read32(&self, off: u32) -> u32 {
            match off {
                0 => 0xff,   // MQES 256
                4 => 1 << 5, // CSS NVM (bit 37), TO = 0 (500 ms minimum wait)
                _ => 0,
            }
        }
        fn write32(&self, _: u32, _: u32) {}
        fn dma(&self) -> &nvme::DmaPool {
            &self.0
        }
    }
    let t0 = Instant::now();
    let err = Controller::attach(Arc::new(Dead(nvme::DmaPool::new(Default::default())))).unwrap_err();
    assert!(matches!(err, nvme::CtrlError::Timeout { want: "ready", .. }), "{err}");
    assert!(t0.elapsed() < Duration::from_secs(5));
}
