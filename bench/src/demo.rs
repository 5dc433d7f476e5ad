//! `sfbench demo`: the foundation's end-to-end check. Writes a pattern through
//! the emulated controller, reads it back at queue depth N, checks every
//! byte, and reports IOPS and latency percentiles.

use anyhow::{bail, Context, Result};
use nvme::{Backing, Controller, EmuConfig, EmulatedController, Latency, Lba};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Size of the data to write and read back, in MiB.
    #[arg(long, default_value_t = 64)]
    size_mib: u64,
    /// Back the namespace with this file instead of memory.
    #[arg(long)]
    file: Option<PathBuf>,
    /// Device latency model: none, optane (3.2 us / 4 KiB), nand (80 us), or microseconds.
    #[arg(long, default_value = "none", value_parser = Latency::parse)]
    latency: Latency,
    /// Commands in flight.
    #[arg(long, default_value_t = 32)]
    qd: u16,
    /// Bytes per I/O (a multiple of 4096).
    #[arg(long, default_value_t = 4096)]
    io_size: u32,
}

pub fn run(a: Args) -> Result<()> {
    if a.io_size == 0 || a.io_size % 4096 != 0 {
        bail!("--io-size {}: give a positive multiple of 4096", a.io_size);
    }
    if a.qd == 0 || a.qd > 1024 {
        bail!("--qd {}: give 1 to 1024", a.qd);
    }
    let bytes = a.size_mib.checked_mul(1 << 20).context("--size-mib too large")?;
    if bytes < u64::from(a.io_size) {
        bail!("--size-mib must hold at least one I/O");
    }
    let backing = match &a.file {
        None => Backing::memory(bytes).context("allocating the in-memory namespace")?,
        Some(p) => Backing::file(p, Some(bytes)).with_context(|| format!("opening {}", p.display()))?,
    };
    let cfg = EmuConfig { block_size: 4096, latency: a.latency, ..EmuConfig::default() };
    let emu = Arc::new(EmulatedController::new(backing, cfg)?);
    let ctrl = Controller::attach(emu).context("bringing up the emulated controller")?;
    let ns = ctrl.namespace(1)?;
    let ios = bytes / u64::from(a.io_size);
    let nlb = a.io_size / ns.block_size;
    println!("controller: {} ({}), namespace 1: {} blocks of {} B, latency model: {}", ctrl.identify().model(), ctrl.transport().name(), ns.blocks, ns.block_size, a.latency);
    let pool = ctrl.transport().dma().clone();
    let mut qp = ctrl.alloc_io_qpair::<(u64, Instant)>(a.qd.saturating_add(1).max(2), 0)?;
    let mut bufs = Vec::new();
    for _ in 0..a.qd {
        bufs.push(pool.alloc(a.io_size as usize)?);
    }
    let io_size = a.io_size as usize;
    let pattern = |io: u64| -> Vec<u8> {
        let mut block = vec![0u8; io_size];
        for (i, chunk) in block.chunks_mut(8).enumerate() {
            chunk.copy_from_slice(&(io.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ i as u64).to_le_bytes());
        }
        block
    };
    for phase in ["write", "read"] {
        let mut lat: Vec<Duration> = Vec::with_capacity(usize::try_from(ios).unwrap_or(0).min(1 << 24));
        let mut next = 0u64;
        let mut done = 0u64;
        let mut bad = 0u64;
        let start = Instant::now();
        while done < ios {
            while next < ios {
                let Some(mut buf) = bufs.pop() else { break };
                let lba = Lba(next * u64::from(nlb));
                let r = if phase == "write" {
                    buf.write(0, &pattern(next));
                    qp.write(&ns, lba, nlb, buf, (next, Instant::now()))
                } else {
                    qp.read(&ns, lba, nlb, buf, (next, Instant::now()))
                };
                if let Err(rej) = r {
                    bail!("submitting {phase} {next}: {}", rej.error);
                }
                next += 1;
            }
            let mut failure = None;
            qp.process_completions(0, |_, c| {
                lat.push(c.cookie.1.elapsed());
                done += 1;
                if !c.status.is_success() {
                    failure.get_or_insert(format!("{phase} of I/O {} failed: {}", c.cookie.0, c.status));
                }
                if let Some(b) = c.buf {
                    if phase == "read" && b.to_vec() != pattern(c.cookie.0) {
                        bad += 1;
                    }
                    bufs.push(b);
                }
            })?;
            if let Some(f) = failure {
                bail!(f);
            }
        }
        let el = start.elapsed();
        lat.sort_unstable();
        let pct = |p: f64| lat[crate::run::rank(lat.len(), p)];
        println!(
            "{phase:>5}: {ios} x {} KiB in {:.3} s: {:.0} IOPS, {:.1} MiB/s; latency p50 {:.1} us, p99 {:.1} us, max {:.1} us (timing includes making and checking the data)",
            a.io_size / 1024,
            el.as_secs_f64(),
            ios as f64 / el.as_secs_f64(),
            (ios * u64::from(a.io_size)) as f64 / el.as_secs_f64() / f64::from(1u32 << 20),
            pct(0.5).as_secs_f64() * 1e6,
            pct(0.99).as_secs_f64() * 1e6,
            lat[lat.len() - 1].as_secs_f64() * 1e6,
        );
        if bad > 0 {
            bail!("{bad} of {ios} blocks read back differ from what was written");
        }
    }
    println!("check: all {ios} blocks read back match what was written");
    Ok(())
}
