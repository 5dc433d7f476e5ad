//! Failure handling against the emulated controller's fault injection: each
//! injected fault ends its command with a named status and leaves the queue
//! pair usable or cleanly failed (STYLE item 16). Nothing here may hang: every
//! wait is bounded.

use nvme::emu::{Backing, CompletionFault, EmuConfig, EmulatedController};
use nvme::{Completion, Controller, CtrlError, IoQueuePair, Lba, Namespace, QueueError, QueueFailure, Status};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_millis(50);
/// Bound on every wait in these tests.
const WAIT: Duration = Duration::from_secs(5);

fn setup(io_queues: u16) -> (Arc<EmulatedController>, Controller, Namespace) {
    let emu = Arc::new(EmulatedController::new(Backing::memory(1 << 20).unwrap(), EmuConfig { io_queues, ..EmuConfig::default() }).unwrap());
    let ctrl = Controller::attach(emu.clone()).expect("bring-up");
    let ns = ctrl.namespace(1).unwrap();
    (emu, ctrl, ns)
}

fn qpair(ctrl: &Controller, depth: u16) -> IoQueuePair<u64> {
    let mut qp = ctrl.alloc_io_qpair::<u64>(depth, 0).unwrap();
    qp.set_command_timeout(TIMEOUT);
    qp
}

fn read(ctrl: &Controller, qp: &mut IoQueuePair<u64>, ns: &Namespace, lba: u64) {
    let buf = ctrl.transport().dma().alloc(512).unwrap();
    qp.read(ns, Lba(lba), 1, buf, lba).unwrap();
}

/// Polls until `n` completions arrived, the queue pair failed, or WAIT passed.
fn collect(qp: &mut IoQueuePair<u64>, n: usize) -> (Vec<Completion<u64>>, Option<QueueError>) {
    let t0 = Instant::now();
    let mut got = Vec::new();
    while got.len() < n {
        if let Err(e) = qp.process_completions(0, |_, c| got.push(c)) {
            return (got, Some(e));
        }
        assert!(t0.elapsed() < WAIT, "no end within {WAIT:?}: got {} of {n}", got.len());
    }
    (got, None)
}

/// Polls until `done(qp)` holds (bounded).
fn poll_until(qp: &mut IoQueuePair<u64>, mut done: impl FnMut(&IoQueuePair<u64>) -> bool) -> Option<QueueError> {
    let t0 = Instant::now();
    while !done(qp) {
        if let Err(e) = qp.process_completions(0, |_, c| panic!("unexpected completion {c:?}")) {
            return Some(e);
        }
        assert!(t0.elapsed() < WAIT, "condition not reached within {WAIT:?}");
    }
    None
}

#[test]
fn a_dropped_completion_times_out_and_the_queue_stays_usable() {
    let (emu, ctrl, ns) = setup(4);
    emu.inject_completion_fault(5..6, CompletionFault::Drop);
    let mut qp = qpair(&ctrl, 8);
    let t0 = Instant::now();
    read(&ctrl, &mut qp, &ns, 5);
    let (got, err) = collect(&mut qp, 1);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(got[0].status, Status::HOST_ABORTED);
    assert_eq!(got[0].cookie, 5);
    assert!(got[0].buf.is_none(), "the buffer stays with the queue pair: the device may still write it");
    assert!(t0.elapsed() >= TIMEOUT);
    // The lost command keeps its slot (the device never answered, nor the abort).
    assert_eq!((qp.in_flight(), qp.abandoned()), (1, 1));
    for lba in [6u64, 7] {
        read(&ctrl, &mut qp, &ns, lba);
        let (got, err) = collect(&mut qp, 1);
        assert!(err.is_none());
        assert!(got[0].status.is_success(), "the queue pair still works: {}", got[0].status);
    }
    assert_eq!(qp.failure(), None);
}

#[test]
fn a_late_completion_is_aborted_and_its_slot_comes_back() {
    let (emu, ctrl, ns) = setup(4);
    // Far later than the deadline: only the Abort can bring it back in time.
    emu.inject_completion_fault(5..6, CompletionFault::Delay(Duration::from_secs(30)));
    emu.inject_completion_fault(9..10, CompletionFault::Delay(Duration::from_millis(5)));
    let mut qp = qpair(&ctrl, 8);
    read(&ctrl, &mut qp, &ns, 9);
    let (got, _) = collect(&mut qp, 1);
    assert!(got[0].status.is_success(), "a delay within the deadline is only a delay");
    read(&ctrl, &mut qp, &ns, 5);
    let (got, err) = collect(&mut qp, 1);
    assert!(err.is_none());
    assert_eq!(got[0].status, Status::HOST_ABORTED);
    // The emulated controller answers the Abort by posting the held
    // completion at once; the abandoned slot and its buffer are released.
    assert!(poll_until(&mut qp, |q| q.in_flight() == 0).is_none());
    assert_eq!(qp.abandoned(), 0);
    read(&ctrl, &mut qp, &ns, 6);
    assert!(collect(&mut qp, 1).0[0].status.is_success());
}

#[test]
fn a_duplicate_completion_fails_the_queue_pair_even_after_its_slot_is_reused() {
    let (emu, ctrl, ns) = setup(4);
    emu.inject_completion_fault(5..6, CompletionFault::Duplicate);
    let mut qp = qpair(&ctrl, 8);
    read(&ctrl, &mut qp, &ns, 5);
    read(&ctrl, &mut qp, &ns, 7);
    let pool = ctrl.transport().dma().clone();
    let mut got = Vec::new();
    let mut err = None;
    let t0 = Instant::now();
    while err.is_none() {
        let r = qp.process_completions(0, |sub, c| {
            if c.cookie == 5 {
                // Reuses the slot the duplicate names (with a new generation).
                sub.read(&ns, Lba(8), 1, pool.alloc(512).unwrap(), 8).unwrap();
            }
            got.push((c.cookie, c.status));
        });
        err = r.err();
        assert!(t0.elapsed() < WAIT);
    }
    assert!(matches!(err, Some(QueueError::Failed { reason: QueueFailure::BogusCompletion { .. }, .. })), "{err:?}");
    assert_eq!(got[0], (5, Status::SUCCESS));
    got.sort_by_key(|(cookie, _)| *cookie);
    assert_eq!(got, vec![(5, Status::SUCCESS), (7, Status::HOST_PATH_ERROR), (8, Status::HOST_PATH_ERROR)], "the rest end with the failure");
    // Cleanly failed: submissions are refused, polls report the failure.
    let rej = qp.read(&ns, Lba(1), 1, ctrl.transport().dma().alloc(512).unwrap(), 1).unwrap_err();
    assert!(matches!(rej.error, QueueError::Failed { .. }));
    assert!(rej.buf.is_some(), "a refused request comes back whole");
    assert!(matches!(qp.process_completions(0, |_, _| {}), Err(QueueError::Failed { .. })));
    assert!(rej.error.to_string().contains("not in flight"), "{}", rej.error);
}

#[test]
fn a_corrupted_completion_fails_the_queue_pair() {
    let (emu, ctrl, ns) = setup(4);
    emu.inject_completion_fault(5..6, CompletionFault::CorruptCid);
    let mut qp = qpair(&ctrl, 8);
    read(&ctrl, &mut qp, &ns, 5);
    let (got, err) = collect(&mut qp, 1);
    assert!(matches!(err, Some(QueueError::Failed { reason: QueueFailure::BogusCompletion { .. }, .. })), "{err:?}");
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].cookie, got[0].status), (5, Status::HOST_PATH_ERROR));
    assert!(qp.failure().is_some());
    // The controller itself is fine: a new queue pair works.
    emu.clear_faults();
    let mut fresh = qpair(&ctrl, 8);
    read(&ctrl, &mut fresh, &ns, 5);
    assert!(collect(&mut fresh, 1).0[0].status.is_success());
}

#[test]
fn controller_fatal_status_fails_the_queue_pair_and_admin_commands_promptly() {
    let (emu, ctrl, ns) = setup(4);
    let mut qp = qpair(&ctrl, 8);
    assert!(!ctrl.is_failed());
    emu.set_fatal();
    assert!(ctrl.is_failed());
    let t0 = Instant::now();
    read(&ctrl, &mut qp, &ns, 5);
    let (got, err) = collect(&mut qp, 1);
    assert!(matches!(err, Some(QueueError::Failed { reason: QueueFailure::ControllerFatal { .. }, .. })), "{err:?}");
    assert_eq!(got[0].status, Status::HOST_PATH_ERROR);
    // Admin commands see CSTS.CFS at once instead of waiting out their timeout.
    let e = ctrl.alloc_io_qpair::<u64>(8, 0).unwrap_err();
    assert!(matches!(e, CtrlError::Fatal { .. }), "{e}");
    drop(qp);
    assert!(t0.elapsed() < Duration::from_secs(2), "nothing waited for the dead controller: {:?}", t0.elapsed());
}

#[test]
fn a_controller_that_answers_nothing_fails_the_queue_pair() {
    let (emu, ctrl, ns) = setup(4);
    emu.inject_completion_fault(0..u64::MAX, CompletionFault::Drop);
    // One lost command and silence afterwards: failed after the abort grace.
    let mut qp = qpair(&ctrl, 8);
    read(&ctrl, &mut qp, &ns, 1);
    let (got, _) = collect(&mut qp, 1);
    assert_eq!(got[0].status, Status::HOST_ABORTED);
    let err = poll_until(&mut qp, |_| false);
    assert!(matches!(err, Some(QueueError::Failed { reason: QueueFailure::Unresponsive { .. }, .. })), "{err:?}");
    // Every slot lost: failed at once.
    let mut qp = qpair(&ctrl, 4);
    for lba in 0..3 {
        read(&ctrl, &mut qp, &ns, lba);
    }
    let (got, err) = collect(&mut qp, 3);
    assert!(matches!(err, Some(QueueError::Failed { reason: QueueFailure::Unresponsive { .. }, .. })), "{err:?}");
    assert!(got.iter().all(|c| c.status == Status::HOST_ABORTED));
}

#[test]
fn buffers_the_device_may_still_write_are_leaked_not_freed() {
    let (emu, ctrl, ns) = setup(4);
    let pool = ctrl.transport().dma().clone();
    // Healthy: after a confirmed deletion the buffer returns to the pool
    // (the free list is last-in first-out).
    let mut qp = ctrl.alloc_io_qpair::<u64>(8, 0).unwrap();
    let buf = pool.alloc(4096).unwrap();
    let iova = buf.iova();
    emu.inject_completion_fault(3..4, CompletionFault::Drop);
    qp.set_command_timeout(TIMEOUT);
    qp.read(&ns, Lba(3), 1, buf, 3).unwrap();
    assert_eq!(collect(&mut qp, 1).0[0].status, Status::HOST_ABORTED);
    drop(qp);
    let again: Vec<_> = (0..8).map(|_| pool.alloc(4096).unwrap()).collect();
    assert!(again.iter().any(|b| b.iova() == iova), "deleted queue: its buffers are free again");
    drop(again);
    // Dead controller: deletion cannot be confirmed, so nothing is freed.
    let mut qp = ctrl.alloc_io_qpair::<u64>(8, 0).unwrap();
    qp.set_command_timeout(TIMEOUT);
    let buf = pool.alloc(4096).unwrap();
    let iova = buf.iova();
    qp.read(&ns, Lba(3), 1, buf, 3).unwrap();
    emu.set_fatal();
    let (_, err) = collect(&mut qp, 1);
    assert!(err.is_some());
    drop(qp);
    let again: Vec<_> = (0..64).map(|_| pool.alloc(4096).unwrap()).collect();
    assert!(again.iter().all(|b| b.iova() != iova), "a buffer the device may own is never handed out again");
}

#[test]
fn a_reset_brings_a_fatal_controller_back_and_fails_the_old_queue_pairs() {
    let pattern = |lba: u64| -> Vec<u8> { (0..512u64).map(|i| ((lba * 7 + i) % 256).to_le_bytes()[0]).collect() };
    let image: Vec<u8> = (0..2048).flat_map(pattern).collect();
    let emu = Arc::new(EmulatedController::new(Backing::memory_from(image), EmuConfig { io_queues: 2, ..EmuConfig::default() }).unwrap());
    let ctrl = Controller::attach(emu.clone()).expect("bring-up");
    let ns = ctrl.namespace(1).unwrap();
    let mut old = qpair(&ctrl, 8);
    let mut idle = qpair(&ctrl, 8);
    // Both queue ids are taken: no third queue pair.
    assert!(matches!(ctrl.alloc_io_qpair::<u64>(8, 0).unwrap_err(), CtrlError::NoQueues { .. }));
    emu.set_fatal();
    assert!(ctrl.is_failed());
    read(&ctrl, &mut old, &ns, 5);
    assert_eq!(ctrl.resets(), 0);
    ctrl.reset().unwrap();
    assert!(!ctrl.is_failed(), "the reset cleared fatal status");
    assert_eq!(ctrl.resets(), 1);
    // A second user that saw the same failure (before the reset) does not
    // reset again.
    assert!(!ctrl.reset_unless_reset_since(0).unwrap());
    assert_eq!(ctrl.resets(), 1);
    // A failure that needs only a new queue pair, on a healthy controller,
    // resets nothing; one that needs a reset does not reset twice.
    assert!(!ctrl.reset_if_needed(QueueFailure::BogusCompletion { cid: 0 }, 1).unwrap());
    assert!(!ctrl.reset_if_needed(QueueFailure::ControllerFatal { csts: 2 }, 0).unwrap());
    assert_eq!(ctrl.resets(), 1);
    // The old queue pair's command comes back (the device dropped it with
    // its queues), and the pair reports why it failed.
    let (got, err) = collect(&mut old, 1);
    assert!(matches!(err, Some(QueueError::Failed { reason: QueueFailure::ControllerReset, .. })), "{err:?}");
    assert_eq!(got[0].status, Status::HOST_PATH_ERROR);
    assert!(!old.device_may_hold_buffers(), "a reset ended the device's DMA");
    // A pair that had nothing in flight refuses new commands.
    let buf = ctrl.transport().dma().alloc(512).unwrap();
    let rej = idle.read(&ns, Lba(0), 1, buf, 7).unwrap_err();
    assert!(matches!(rej.error, QueueError::Failed { reason: QueueFailure::ControllerReset, .. }), "{}", rej.error);
    assert!(rej.buf.is_some(), "the buffer comes back");
    // Dropping them gives their queue ids back; new pairs read correctly.
    drop(old);
    drop(idle);
    let mut fresh = qpair(&ctrl, 8);
    let mut second = qpair(&ctrl, 8);
    for (qp, lba) in [(&mut fresh, 3u64), (&mut second, 9)] {
        read(&ctrl, qp, &ns, lba);
        let (got, err) = collect(qp, 1);
        assert!(err.is_none(), "{err:?}");
        assert!(got[0].status.is_success());
        let b = got[0].buf.as_ref().unwrap();
        assert_eq!(b.to_vec()[..512], pattern(lba)[..], "block {lba} after the reset");
    }
    // Admin commands work again too.
    drop(fresh);
    assert!(ctrl.alloc_io_qpair::<u64>(8, 0).is_ok());
}
