//! The one place the benchmark touches io_uring's unsafe submission API.

use anyhow::{bail, Context, Result};
use io_uring::{opcode, types, IoUring};
use std::fs::File;
use std::os::unix::io::AsRawFd;

pub struct Uring {
    ring: IoUring,
    file: File,
}

impl Uring {
    pub fn new(file: File, iopoll: bool, sqpoll: bool) -> Result<Uring> {
        let mut b = IoUring::builder();
        if iopoll {
            b.setup_iopoll();
        }
        if sqpoll {
            b.setup_sqpoll(2000);
        }
        let ring = b.build(8).context("creating an io_uring (kernel too old, or io_uring disabled by sysctl kernel.io_uring_disabled?)")?;
        Ok(Uring { ring, file })
    }

    /// Reads `buf.len()` bytes at `off`: one submission, one completion.
    pub fn read(&mut self, off: u64, buf: &mut [u8]) -> Result<()> {
        let len = u32::try_from(buf.len()).context("read too large")?;
        let sqe = opcode::Read::new(types::Fd(self.file.as_raw_fd()), buf.as_mut_ptr(), len).offset(off).build().user_data(1);
        // SAFETY: `buf` stays borrowed (alive, not moved) until this function
        // has reaped the completion below, and the fd stays open with `self`.
        unsafe { self.ring.submission().push(&sqe) }.map_err(|_| anyhow::anyhow!("io_uring submission queue full"))?;
        self.ring.submit_and_wait(1).context("io_uring_enter")?;
        let Some(cqe) = self.ring.completion().next() else { bail!("io_uring returned no completion") };
        let res = cqe.result();
        if res < 0 {
            let e = std::io::Error::from_raw_os_error(-res);
            if res == -libc::EOPNOTSUPP {
                bail!("io_uring read: {e} (IOPOLL needs a polled NVMe block device opened with O_DIRECT; drop --iopoll)");
            }
            bail!("io_uring read of {len} bytes at {off}: {e}");
        }
        if res as u32 != len {
            bail!("io_uring read of {len} bytes at {off} returned {res} bytes (file truncated?)");
        }
        Ok(())
    }
}
