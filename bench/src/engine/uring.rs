//! The one place the benchmark touches io_uring's unsafe submission API. The
//! ring owns its read buffers, so no buffer can be freed or reused while the
//! kernel may still write it: a slot's buffer is handed out only while the
//! slot is idle, and dropping the ring first waits for every read in flight
//! (or, if the kernel will not say they are done, leaks the buffers).

use anyhow::{bail, Context, Result};
use io_uring::{opcode, types, IoUring};
use nvme::{DmaBuf, DmaPool};
use std::fs::File;
use std::os::unix::io::AsRawFd;

/// Most reads in flight on one ring.
pub const SLOTS_MAX: usize = 256;

pub struct Uring {
    ring: IoUring,
    file: File,
    bufs: Vec<DmaBuf>,
    busy: Vec<bool>,
    in_flight: usize,
}

impl Uring {
    /// A ring over `file` with `slots` read buffers of `buf_len` bytes (4 KiB aligned, as O_DIRECT needs).
    pub fn new(file: File, iopoll: bool, sqpoll: bool, slots: usize, buf_len: usize, pool: &DmaPool) -> Result<Uring> {
        if slots == 0 || slots > SLOTS_MAX {
            bail!("io_uring: {slots} reads in flight; 1 to {SLOTS_MAX}");
        }
        let mut b = IoUring::builder();
        if iopoll {
            b.setup_iopoll();
        }
        if sqpoll {
            b.setup_sqpoll(2000);
        }
        let entries = u32::try_from(slots)?.next_power_of_two();
        let ring = b.build(entries).context("creating an io_uring (kernel too old, or io_uring disabled by sysctl kernel.io_uring_disabled?)")?;
        let bufs = (0..slots).map(|_| pool.alloc(buf_len).context("allocating an aligned read buffer")).collect::<Result<Vec<_>>>()?;
        Ok(Uring { ring, file, bufs, busy: vec![false; slots], in_flight: 0 })
    }

    /// Slot `i`'s buffer (idle slots only).
    pub fn buf_mut(&mut self, i: usize) -> &mut DmaBuf {
        assert!(!self.busy[i], "slot {i} has a read in flight");
        &mut self.bufs[i]
    }

    /// Queues a read of `len` bytes at `off` into slot `i`'s buffer (sent at the next [`Uring::wait`]).
    pub fn push_read(&mut self, i: usize, off: u64, len: usize) -> Result<()> {
        assert!(!self.busy[i], "slot {i} has a read in flight");
        if len > self.bufs[i].len() {
            bail!("a read of {len} bytes into a {}-byte buffer", self.bufs[i].len());
        }
        let len32 = u32::try_from(len).context("read too large")?;
        let ptr = self.bufs[i].as_mut_ptr();
        let sqe = opcode::Read::new(types::Fd(self.file.as_raw_fd()), ptr, len32).offset(off).build().user_data(i as u64);
        // SAFETY: the buffer belongs to `self.bufs[i]`, which lives as long
        // as the ring and is not handed out while `busy[i]` (set below, cleared
        // only when its completion is reaped); Drop waits for every read in
        // flight or leaks the buffers. The fd stays open with `self.file`.
        unsafe { self.ring.submission().push(&sqe) }.map_err(|_| anyhow::anyhow!("io_uring submission queue full"))?;
        self.busy[i] = true;
        self.in_flight += 1;
        Ok(())
    }

    /// Reads in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Submits what is queued and waits for at least `min` completions;
    /// appends `(slot, bytes read)` for each one reaped.
    pub fn wait(&mut self, min: usize, out: &mut Vec<(usize, usize)>) -> Result<()> {
        self.ring.submit_and_wait(min.min(self.in_flight)).context("io_uring_enter")?;
        let mut err = None;
        for cqe in self.ring.completion() {
            let i = usize::try_from(cqe.user_data()).unwrap_or(usize::MAX);
            let Some(b) = self.busy.get_mut(i).filter(|b| **b) else {
                err.get_or_insert_with(|| anyhow::anyhow!("io_uring returned a completion for slot {i}, which has no read in flight"));
                continue;
            };
            *b = false;
            self.in_flight -= 1;
            let res = cqe.result();
            if res < 0 {
                let e = std::io::Error::from_raw_os_error(-res);
                err.get_or_insert_with(|| {
                    if res == -libc::EOPNOTSUPP {
                        anyhow::anyhow!("io_uring read: {e} (IOPOLL needs a polled NVMe block device opened with O_DIRECT; drop --iopoll)")
                    } else {
                        anyhow::anyhow!("io_uring read: {e}")
                    }
                });
                continue;
            }
            // res >= 0 checked above.
            out.push((i, usize::try_from(res).unwrap_or(0)));
        }
        match err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl Drop for Uring {
    fn drop(&mut self) {
        // Every read in flight must end before its buffer is freed.
        let mut got = Vec::new();
        for _ in 0..1000 {
            if self.in_flight == 0 {
                return;
            }
            got.clear();
            // Errors of reads nobody waits for any more do not matter here.
            let _ = self.wait(1, &mut got);
        }
        if self.in_flight > 0 {
            eprintln!("warning: io_uring: {} reads never completed; leaking their buffers", self.in_flight);
            std::mem::forget(std::mem::take(&mut self.bufs));
        }
    }
}
