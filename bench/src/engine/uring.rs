//! The one place the benchmark touches io_uring's unsafe submission API. The
//! ring owns its buffers, so no buffer can be freed or reused while the
//! kernel may still read or write it: a slot's buffer is handed out only
//! while the slot is idle, and dropping the ring first waits for every I/O in
//! flight (or, if the kernel will not say they are done, leaks the buffers).
//! Optionally the buffers are registered with the kernel (fixed buffers:
//! `READ_FIXED`/`WRITE_FIXED`, no page pinning per I/O) and so is the file
//! (no file table look-up per I/O).

use anyhow::{bail, Context, Result};
use io_uring::{opcode, types, IoUring};
use nvme::{DmaBuf, DmaPool};
use std::fs::File;
use std::os::unix::io::AsRawFd;

/// Most I/Os in flight on one ring.
pub const SLOTS_MAX: usize = 4096;
/// How long an SQPOLL kernel thread polls an idle ring before it sleeps (ms).
const SQPOLL_IDLE_MS: u32 = 2000;

/// How a ring is set up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UringOptions {
    /// IORING_SETUP_IOPOLL: completions are polled from the device (polled NVMe queues only).
    pub iopoll: bool,
    /// IORING_SETUP_SQPOLL: a kernel thread polls the submission queue.
    pub sqpoll: bool,
    /// Register the buffers (READ_FIXED / WRITE_FIXED).
    pub fixed_buffers: bool,
    /// Register the file (IOSQE_FIXED_FILE).
    pub fixed_file: bool,
}

/// Direction of one I/O.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    Read,
    Write,
}

pub struct Uring {
    // Field order is drop order: the ring (and its registrations) goes before the buffers.
    ring: IoUring,
    file: File,
    bufs: Vec<DmaBuf>,
    busy: Vec<bool>,
    in_flight: usize,
    opts: UringOptions,
}

impl Uring {
    /// A ring over `file` with `slots` read buffers of `buf_len` bytes (4 KiB aligned, as O_DIRECT needs).
    pub fn new(file: File, iopoll: bool, sqpoll: bool, slots: usize, buf_len: usize, pool: &DmaPool) -> Result<Uring> {
        Uring::with_options(file, UringOptions { iopoll, sqpoll, ..UringOptions::default() }, slots, buf_len, pool)
    }

    /// A ring over `file` set up as `opts` says, with `slots` buffers of
    /// `buf_len` bytes (4 KiB aligned, as O_DIRECT needs).
    pub fn with_options(file: File, opts: UringOptions, slots: usize, buf_len: usize, pool: &DmaPool) -> Result<Uring> {
        if slots == 0 || slots > SLOTS_MAX {
            bail!("io_uring: {slots} I/Os in flight; 1 to {SLOTS_MAX}");
        }
        let mut b = IoUring::builder();
        if opts.iopoll {
            b.setup_iopoll();
        }
        if opts.sqpoll {
            b.setup_sqpoll(SQPOLL_IDLE_MS);
        }
        let entries = u32::try_from(slots)?.next_power_of_two();
        let ring = b.build(entries).context("creating an io_uring (kernel too old, or io_uring disabled by sysctl kernel.io_uring_disabled?)")?;
        let bufs = (0..slots).map(|_| pool.alloc(buf_len).context("allocating an aligned I/O buffer")).collect::<Result<Vec<_>>>()?;
        let mut u = Uring { ring, file, bufs, busy: vec![false; slots], in_flight: 0, opts };
        if opts.fixed_buffers {
            let iov: Vec<libc::iovec> = u.bufs.iter_mut().map(|b| libc::iovec { iov_base: b.as_mut_ptr().cast(), iov_len: b.len() }).collect();
            // SAFETY: every iovec is a live buffer owned by `u.bufs`, which
            // is dropped only after the ring (field order; Drop waits for
            // I/Os in flight first), so the registration never outlives them.
            unsafe { u.ring.submitter().register_buffers(&iov) }.context("io_uring: registering fixed buffers (RLIMIT_MEMLOCK too low? try --no-fixed-buffers)")?;
        }
        if opts.fixed_file {
            u.ring.submitter().register_files(&[u.file.as_raw_fd()]).context("io_uring: registering the file (try --no-registered-files)")?;
        }
        Ok(u)
    }

    /// The file the ring reads and writes.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Number of slots (buffers).
    pub fn slots(&self) -> usize {
        self.bufs.len()
    }

    /// Slot `i`'s buffer (idle slots only).
    pub fn buf_mut(&mut self, i: usize) -> &mut DmaBuf {
        assert!(!self.busy[i], "slot {i} has a read in flight");
        &mut self.bufs[i]
    }

    /// Queues a read of `len` bytes at `off` into slot `i`'s buffer (sent at the next [`Uring::wait`]).
    pub fn push_read(&mut self, i: usize, off: u64, len: usize) -> Result<()> {
        self.push(i, Dir::Read, off, len)
    }

    /// Queues a read into, or a write from, slot `i`'s buffer (`len` bytes at `off`).
    pub fn push(&mut self, i: usize, dir: Dir, off: u64, len: usize) -> Result<()> {
        assert!(!self.busy[i], "slot {i} has an I/O in flight");
        if len > self.bufs[i].len() {
            bail!("an I/O of {len} bytes with a {}-byte buffer", self.bufs[i].len());
        }
        let len32 = u32::try_from(len).context("I/O too large")?;
        let ptr = self.bufs[i].as_mut_ptr();
        // Slots are at most SLOTS_MAX, which fits u16 (the fixed-buffer index).
        let idx = u16::try_from(i).context("slot index")?;
        let sqe = match (self.opts.fixed_file, self.opts.fixed_buffers, dir) {
            (true, true, Dir::Read) => opcode::ReadFixed::new(types::Fixed(0), ptr, len32, idx).offset(off).build(),
            (true, true, Dir::Write) => opcode::WriteFixed::new(types::Fixed(0), ptr, len32, idx).offset(off).build(),
            (true, false, Dir::Read) => opcode::Read::new(types::Fixed(0), ptr, len32).offset(off).build(),
            (true, false, Dir::Write) => opcode::Write::new(types::Fixed(0), ptr, len32).offset(off).build(),
            (false, true, Dir::Read) => opcode::ReadFixed::new(types::Fd(self.file.as_raw_fd()), ptr, len32, idx).offset(off).build(),
            (false, true, Dir::Write) => opcode::WriteFixed::new(types::Fd(self.file.as_raw_fd()), ptr, len32, idx).offset(off).build(),
            (false, false, Dir::Read) => opcode::Read::new(types::Fd(self.file.as_raw_fd()), ptr, len32).offset(off).build(),
            (false, false, Dir::Write) => opcode::Write::new(types::Fd(self.file.as_raw_fd()), ptr, len32).offset(off).build(),
        };
        let sqe = sqe.user_data(i as u64);
        // SAFETY: the buffer belongs to `self.bufs[i]`, which lives as long
        // as the ring and is not handed out while `busy[i]` (set below, cleared
        // only when its completion is reaped); Drop waits for every I/O in
        // flight or leaks the buffers. The fd stays open with `self.file`;
        // fixed buffer `idx` and fixed file 0 were registered in `with_options`.
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
                err.get_or_insert_with(|| anyhow::anyhow!("io_uring returned a completion for slot {i}, which has no I/O in flight"));
                continue;
            };
            *b = false;
            self.in_flight -= 1;
            let res = cqe.result();
            if res < 0 {
                let e = std::io::Error::from_raw_os_error(-res);
                err.get_or_insert_with(|| {
                    if res == -libc::EOPNOTSUPP {
                        anyhow::anyhow!("io_uring I/O: {e} (IOPOLL needs a polled NVMe block device opened with O_DIRECT; drop --iopoll)")
                    } else {
                        anyhow::anyhow!("io_uring I/O: {e}")
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
            eprintln!("warning: io_uring: {} I/Os never completed; leaking their buffers", self.in_flight);
            std::mem::forget(std::mem::take(&mut self.bufs));
        }
    }
}
