//! The kernel path: the same per-block logic (the native storage function)
//! driven by `pread` or `io_uring`, one read per hop, with the device model
//! applied as a calibrated wait after each read.

use super::uring::Uring;
use super::{pad_to, Client, Recorder};
use crate::workload::{self, Data, Gen, Kind};
use anyhow::{bail, Context, Result};
use chaining::Function;
use fs_extents::{FileId, TenantId};
use nvme::{DmaBuf, Latency};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::time::Instant;

/// How the kernel engines open the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// O_DIRECT: every read goes to the device.
    Direct,
    /// Through the page cache (the file system refused O_DIRECT, or a device
    /// model is applied and the page cache stands in for a fast device).
    Buffered,
}

/// Opens `path` for the kernel engines; says what it used.
pub fn open(path: &Path, want_direct: bool) -> Result<(File, Access, Option<String>)> {
    if want_direct {
        match OpenOptions::new().read(true).custom_flags(libc::O_DIRECT).open(path) {
            Ok(f) => return Ok((f, Access::Direct, None)),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                let f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
                let note = format!("{}: the file system does not support O_DIRECT; kernel engines read through the page cache", path.display());
                return Ok((f, Access::Buffered, Some(note)));
            }
            Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
        }
    }
    let f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    Ok((f, Access::Buffered, None))
}

/// State shared by the two kernel clients: the function and its buffers.
struct Walker {
    func: Function,
    data: Data,
    block: DmaBuf,
    scratch: Vec<u8>,
    model: Latency,
}

impl Walker {
    fn new(kind: Kind, data: &Data, model: Latency, pool: &nvme::DmaPool) -> Result<Walker> {
        // A DMA buffer is simply a 4 KiB-aligned buffer here, as O_DIRECT needs.
        let block = pool.alloc(4096).context("allocating an aligned read buffer")?;
        Ok(Walker { func: workload::native_function(kind, data), data: data.clone(), block, scratch: vec![0; chaining::SCRATCH_SIZE], model })
    }

    /// Runs one operation: `read(offset, len, buf)` performs each hop's read.
    fn walk(&mut self, op: workload::Op, mut read: impl FnMut(u64, &mut [u8]) -> Result<()>) -> Result<(workload::Answer, u32)> {
        let req = workload::request(op, &self.data, TenantId(0), FileId(0), chaining::ProgId(0));
        self.scratch.fill(0);
        self.scratch[..req.scratch.len()].copy_from_slice(&req.scratch);
        let (mut off, mut len) = (req.offset, u64::from(req.size));
        let mut hops = 0u32;
        loop {
            if len == 0 || len > 4096 {
                bail!("the function asked for a read of {len} bytes");
            }
            let start = Instant::now();
            let buf = &mut self.block.as_mut_slice()[..len as usize];
            read(off, buf)?;
            pad_to(start, self.model.for_bytes(len));
            hops += 1;
            if hops > 1 << 20 {
                bail!("operation did not finish within 2^20 reads");
            }
            let (ret, ctx) = self.func.call(self.block.as_mut_slice(), &mut self.scratch).map_err(anyhow::Error::msg)?;
            if ret != 0 {
                bail!("storage function returned {ret} at hop {hops}: corrupt database?");
            }
            if ctx.done != 0 {
                break;
            }
            match (0..chaining::FANOUT_MAX).find(|&i| ctx.size[i] != 0) {
                Some(i) => (off, len) = (ctx.next_addr[i], ctx.size[i]),
                None => break,
            }
        }
        Ok((workload::answer(op, &self.scratch), hops))
    }
}

/// `pread`: one system call per hop.
pub struct PreadClient {
    file: File,
    w: Walker,
}

impl PreadClient {
    pub fn new(file: File, kind: Kind, data: &Data, model: Latency, pool: &nvme::DmaPool) -> Result<PreadClient> {
        Ok(PreadClient { file, w: Walker::new(kind, data, model, pool)? })
    }
}

impl Client for PreadClient {
    fn run_until(&mut self, gen: &mut Gen, _qd: usize, until: Instant, rec: &mut Recorder) -> Result<()> {
        while Instant::now() < until {
            let op = gen.next_op();
            let t0 = Instant::now();
            let file = &self.file;
            let (ans, hops) = self.w.walk(op, |off, buf| file.read_exact_at(buf, off).with_context(|| format!("pread of {} bytes at {off}", buf.len())))?;
            rec.record(op, ans, hops, t0.elapsed());
        }
        Ok(())
    }
}

/// `io_uring`: one submission per hop (QD 1 per client thread).
pub struct UringClient {
    ring: Uring,
    w: Walker,
}

impl UringClient {
    pub fn new(file: File, kind: Kind, data: &Data, model: Latency, pool: &nvme::DmaPool, iopoll: bool, sqpoll: bool) -> Result<UringClient> {
        Ok(UringClient { ring: Uring::new(file, iopoll, sqpoll)?, w: Walker::new(kind, data, model, pool)? })
    }
}

impl Client for UringClient {
    fn run_until(&mut self, gen: &mut Gen, _qd: usize, until: Instant, rec: &mut Recorder) -> Result<()> {
        while Instant::now() < until {
            let op = gen.next_op();
            let t0 = Instant::now();
            let ring = &mut self.ring;
            let (ans, hops) = self.w.walk(op, |off, buf| ring.read(off, buf))?;
            rec.record(op, ans, hops, t0.elapsed());
        }
        Ok(())
    }
}
