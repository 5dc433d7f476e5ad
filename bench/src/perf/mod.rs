//! `sfbench perf`: raw I/O on one device, SPDK perf's way, with the kernel
//! path beside our driver. Engines: `spdk-style` (our driver, run to
//! completion: each thread polls its own queue pair), `io_uring` and `psync`
//! (the kernel path, O_DIRECT). Every engine uses the same device (see
//! [`target`]); each point prints IOPS, MiB/s, latency percentiles and CPU
//! time per I/O (the emulated controller's own share shown apart).
//!
//! Must not know about: chains, storage functions, databases.

pub mod chart;
mod kernel;
mod ops;
mod rusage;
mod spdk;
mod stats;
mod target;

use crate::bed::{self, BedChoice};
use crate::engine::uring::{UringOptions, SLOTS_MAX};
use crate::engine::Wait;
use anyhow::{bail, Context, Result};
use nvme::{DmaPool, Latency, PoolOptions};
use ops::{OpGen, Pattern, Shape};
use serde::{Deserialize, Serialize};
use stats::{PerfResult, ThreadStats};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

/// Default bytes of the scratch device the run makes.
const SCRATCH_BYTES: u64 = 256 << 20;
/// Most threads of one point.
const THREADS_MAX: u32 = 64;
/// Largest I/O (one DMA chunk; the emulated controller's MDTS is 1 MiB).
const IO_SIZE_MAX: u64 = 1 << 20;
/// Runs of at least this many seconds print a progress line per second.
const PROGRESS_MIN_SECS: f64 = 3.0;

const HELP: &str = "\
Examples:
  sfbench perf -q 32 -o 4096 -w randread -t 10               # all engines, a fresh zram device (as root)
  sfbench perf -q 1,8,32 -o 4k -w randread -t 5 -L --json perf.json --charts out/
  sfbench perf -q 32 -w randrw -M 70 -c 2 --engines spdk-style,io_uring
  sfbench perf -w randread --verify -t 2                     # write pass, read pass comparing content, then the run
  sfbench perf --dev /dev/nvme1n1 -q 32 -w randread          # the kernel path and the emulated controller over your device
  sfbench perf --pci 0000:01:00.0 --dev /dev/nvme2n1 ...     # our driver on a bound controller, the kernel on its twin

Engines:
  spdk-style  our driver: each thread owns an NVMe queue pair and polls it, run to completion
  io_uring    the kernel's asynchronous path, O_DIRECT; fixed buffers and a registered file by default,
              --sqpoll and --iopoll on request (IOPOLL needs a polled NVMe block device)
  psync       pread/pwrite, O_DIRECT, one I/O at a time per thread (-q does not apply)
  aio         NOT BUILT: crates.io has no well-kept Linux AIO crate (libaio 0.0.1 is an empty
              placeholder, aio-bindings 0.1.2 is unmaintained bindgen output from 2018); io_uring is
              the kernel's maintained asynchronous interface

Device (the same for every engine): as root, a fresh zram device (loop over /dev/shm as fallback)
with no file system, filled with incompressible bytes, removed at exit; the kernel engines do
O_DIRECT I/O on it, our driver runs on the emulated NVMe controller over the same bytes (O_DIRECT;
with --device-latency a memory snapshot plus the model). Without root: a file in a temporary
directory, labelled. CPU time per I/O is user + system time of the whole process (getrusage) over
the measured seconds; the emulated controller's own time is measured and shown apart.";

/// Engines of `perf`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EngineKind {
    /// Our driver, run to completion (a queue pair per thread).
    #[value(name = "spdk-style")]
    SpdkStyle,
    /// Kernel io_uring, O_DIRECT.
    #[value(name = "io_uring", alias = "io-uring")]
    IoUring,
    /// Kernel pread/pwrite, O_DIRECT.
    Psync,
    /// Linux AIO: not built (see --help).
    Aio,
}

impl EngineKind {
    pub fn name(self) -> &'static str {
        match self {
            EngineKind::SpdkStyle => "spdk-style",
            EngineKind::IoUring => "io_uring",
            EngineKind::Psync => "psync",
            EngineKind::Aio => "aio",
        }
    }
}

#[derive(clap::Args, Debug, Clone)]
#[command(after_help = HELP)]
pub struct Args {
    /// -q: I/Os in flight per thread (queue depth); a comma-separated list sweeps them.
    #[arg(short = 'q', long = "qd", value_delimiter = ',', default_value = "32")]
    pub qd: Vec<u32>,
    /// -o: I/O size in bytes (4096, 4k, 128KiB); a multiple of the device's logical block.
    #[arg(short = 'o', long = "io-size", default_value = "4096", value_parser = parse_bytes)]
    pub io_size: u64,
    /// -w: I/O pattern.
    #[arg(short = 'w', long = "pattern", value_enum, default_value = "randread")]
    pub pattern: Pattern,
    /// -M: read percentage of rw/randrw (0-100).
    #[arg(short = 'M', long = "rwmixread", value_parser = clap::value_parser!(u8).range(0..=100))]
    pub mix: Option<u8>,
    /// -t: seconds measured per point.
    #[arg(short = 't', long = "time", default_value_t = 5.0, value_parser = crate::run::parse_seconds)]
    pub time: f64,
    /// -a: seconds of warm-up per point (not measured).
    #[arg(short = 'a', long = "warmup", default_value_t = 0.5, value_parser = crate::run::parse_warmup)]
    pub warmup: f64,
    /// -F: Zipf theta for the random patterns (offsets drawn with Zipf's law instead of uniformly).
    #[arg(short = 'F', long = "zipf")]
    pub zipf: Option<f64>,
    /// -c: threads, each with its own queue pair (spdk-style) or ring (io_uring); a count, not
    /// SPDK's core mask; a comma-separated list sweeps them.
    #[arg(short = 'c', long = "threads", value_delimiter = ',', default_value = "1")]
    pub threads: Vec<u32>,
    /// Engines, comma separated: spdk-style, io_uring, psync (aio is not built: see below).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "spdk-style,io_uring,psync")]
    pub engines: Vec<EngineKind>,
    /// io_uring: IORING_SETUP_IOPOLL (polled completions; needs a polled NVMe block device).
    #[arg(long)]
    pub iopoll: bool,
    /// io_uring: IORING_SETUP_SQPOLL (a kernel thread polls the submission ring; its CPU time is counted).
    #[arg(long)]
    pub sqpoll: bool,
    /// io_uring: plain READ/WRITE instead of fixed (registered) buffers.
    #[arg(long)]
    pub no_fixed_buffers: bool,
    /// io_uring: the file descriptor instead of a registered file.
    #[arg(long)]
    pub no_registered_files: bool,
    /// -L: print the latency histogram of every point (as SPDK perf's -LL); percentiles are always printed.
    #[arg(short = 'L', action = clap::ArgAction::Count)]
    pub latency: u8,
    /// Your own block device or file instead of a fresh scratch device (with --pci: the kernel
    /// engines' device, e.g. the same drive before binding or a twin controller).
    #[arg(long, value_name = "PATH")]
    pub dev: Option<PathBuf>,
    /// Our driver on this PCIe NVMe controller (bound with `sfbench setup --bind`), namespace 1.
    #[arg(long, value_name = "BDF")]
    pub pci: Option<String>,
    /// Allow writes to --pci or a --dev block device (they destroy its data); refused anyway when
    /// a file system on it is mounted.
    #[arg(long)]
    pub allow_write: bool,
    /// Bytes of the device the I/Os cover, from offset 0 (default: 256 MiB for the scratch device,
    /// else the whole device).
    #[arg(long, value_parser = parse_bytes)]
    pub size: Option<u64>,
    /// The scratch device: auto (zram, else loop, else a file), zram, loop, or files.
    #[arg(long, value_enum, default_value = "auto")]
    pub bed: BedChoice,
    /// Device model for every engine: none, optane (3.2 us per 4 KiB), nand (80 us), or microseconds.
    /// Our driver then serves a memory snapshot and completes each command this long after fetching
    /// it; the kernel engines wait this long after the kernel returns each I/O. Labelled MODELLED.
    #[arg(long, default_value = "none", value_parser = Latency::parse)]
    pub device_latency: Latency,
    /// Without a device model, our driver's emulated controller serves a memory snapshot of the
    /// device instead of reading it with O_DIRECT: its work per I/O is then one memory copy (a real
    /// device's DMA costs the host nothing). The kernel engines still use the device itself.
    #[arg(long)]
    pub emu_snapshot: bool,
    /// How the kernel engines wait out a modelled device time: spin, sleep, or auto.
    #[arg(long, value_enum, default_value = "auto")]
    pub wait: Wait,
    /// Before each engine's run: write every block of the region with a pattern, read it all back
    /// and compare; the timed run then writes the pattern and checks every read.
    #[arg(long)]
    pub verify: bool,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Write the results as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Render charts (IOPS and CPU ns per I/O by engine and queue depth) into this directory.
    #[arg(long)]
    pub charts: Option<PathBuf>,
}

/// Parses 4096, 4k, 4KiB, 1M, 1MiB (powers of two).
fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_lowercase();
    let (num, mul) = match t.trim_end_matches("ib").trim_end_matches('b') {
        x if x.ends_with('k') => (x.trim_end_matches('k').to_string(), 1u64 << 10),
        x if x.ends_with('m') => (x.trim_end_matches('m').to_string(), 1 << 20),
        x if x.ends_with('g') => (x.trim_end_matches('g').to_string(), 1 << 30),
        x => (x.to_string(), 1),
    };
    num.parse::<u64>().ok().and_then(|n| n.checked_mul(mul)).ok_or_else(|| format!("{s:?}: expected bytes such as 4096, 4k or 1MiB"))
}

/// One thread's engine connection.
pub trait Worker {
    /// Runs I/Os from `gen` (all of it, or until `stop`), waits for the ones
    /// in flight, recording each in `st`. With `verify`, writes carry the
    /// pattern of that seed and every read is compared with it.
    fn run(&mut self, gen: &mut OpGen, stop: &AtomicBool, st: &mut ThreadStats, verify: Option<u64>, progress: &AtomicU64) -> Result<()>;
    /// Makes completed writes durable (NVMe Flush, fdatasync).
    fn flush(&mut self) -> Result<()>;
}

/// The JSON of a perf run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PerfReport {
    /// Always "perf" (tells `sfbench report` what it reads).
    pub kind: String,
    pub command: String,
    pub machine: String,
    pub results: Vec<PerfResult>,
}

/// Checks what can be checked before any device is touched.
fn validate(a: &Args) -> Result<()> {
    if a.engines.contains(&EngineKind::Aio) {
        bail!("--engines aio: not built. crates.io has no well-kept Linux AIO crate (libaio 0.0.1 is an empty placeholder, aio-bindings 0.1.2 is unmaintained bindgen output from 2018); use io_uring, the kernel's maintained asynchronous interface");
    }
    if a.engines.is_empty() {
        bail!("--engines: give at least one of spdk-style, io_uring, psync");
    }
    if let Some(t) = a.threads.iter().find(|&&t| t == 0 || t > THREADS_MAX) {
        bail!("-c/--threads {t}: give 1 to {THREADS_MAX} threads");
    }
    // The deepest queue every chosen engine holds, and which one sets it.
    let emu_qd_max = nvme::EmuConfig::default().max_queue_entries.min(u32::from(nvme::controller::IO_DEPTH_MAX)) - 1;
    let uring_qd_max = u32::try_from(SLOTS_MAX).unwrap_or(u32::MAX);
    let mut qd_max = (u32::MAX, "");
    if a.pci.is_none() && a.engines.contains(&EngineKind::SpdkStyle) {
        qd_max = (emu_qd_max, "a queue pair of the emulated controller holds");
    }
    if a.engines.contains(&EngineKind::IoUring) && uring_qd_max < qd_max.0 {
        qd_max = (uring_qd_max, "an io_uring ring here holds");
    }
    if let Some(q) = a.qd.iter().find(|&&q| q == 0 || q > qd_max.0) {
        match qd_max {
            (u32::MAX, _) => bail!("-q {q}: give a queue depth of 1 or more"),
            (max, what) => bail!("-q {q}: give a queue depth from 1 to {max} ({what} at most {max} I/Os)"),
        }
    }
    if a.io_size == 0 || a.io_size % 512 != 0 {
        bail!("-o {}: the I/O size must be a multiple of the block size (512 bytes or the device's logical block)", a.io_size);
    }
    if a.io_size > IO_SIZE_MAX {
        bail!("-o {}: at most {IO_SIZE_MAX} bytes per I/O", a.io_size);
    }
    if a.pattern.is_mixed() && a.mix.is_none() {
        bail!("-w {} needs -M, the read percentage (0-100)", a.pattern.name());
    }
    if let Some(f) = a.zipf {
        if !a.pattern.is_random() {
            bail!("-F applies to the random patterns (randread, randwrite, randrw), not -w {}", a.pattern.name());
        }
        if !(f.is_finite() && f > 0.0) {
            bail!("-F {f}: the Zipf theta must be above 0");
        }
    }
    let writes = a.pattern.read_pct(a.mix) < 100 || a.verify;
    if writes && a.pci.is_some() && !a.allow_write {
        bail!(
            "-w {}{}: writing to the PCIe controller {} destroys the data of its namespace 1; pass --allow-write if you mean it",
            a.pattern.name(),
            if a.verify { " --verify" } else { "" },
            a.pci.as_deref().unwrap_or("")
        );
    }
    let kernel = a.engines.iter().any(|e| matches!(e, EngineKind::IoUring | EngineKind::Psync));
    if a.pci.is_some() && a.dev.is_none() && kernel {
        bail!("--pci: the kernel engines need the same drive's block device too: pass --dev /dev/nvmeXnY (before binding, or a twin controller), or --engines spdk-style");
    }
    if a.pci.is_some() && !a.device_latency.is_none() {
        bail!("--device-latency models an emulated device; a PCIe controller has its own latency: drop one of them");
    }
    Ok(())
}

pub fn run(a: Args) -> Result<()> {
    validate(&a)?;
    bed::install_signal_handler();
    let writes = a.pattern.read_pct(a.mix) < 100 || a.verify;
    let target = match &a.dev {
        Some(p) => target::Target::user(p)?,
        None if a.pci.is_some() => target::Target::none(),
        None => target::Target::fresh(a.bed, a.size.unwrap_or(SCRATCH_BYTES))?,
    };
    if writes && !target.is_ours() && target.path.is_some() {
        if target.is_block_device && !a.allow_write {
            bail!("writing to the block device {} destroys its data; pass --allow-write if you mean it", target.label);
        }
        target.check_not_mounted()?;
    }
    let spdk = a.engines.contains(&EngineKind::SpdkStyle);
    let mut size = a.size.unwrap_or(u64::MAX).min(if target.path.is_some() { target.size } else { u64::MAX });
    let device = if !spdk {
        None
    } else if let Some(bdf) = &a.pci {
        let d = spdk::pci(bdf, writes)?;
        size = size.min(d.ns.capacity_bytes());
        Some(d)
    } else {
        let path = target.path.clone().context("no device for the emulated controller")?;
        let region = size.min(target.size) / a.io_size * a.io_size;
        Some(spdk::emulated(&path, target.block, region, a.device_latency, writes, a.emu_snapshot)?)
    };
    let region = size / a.io_size * a.io_size;
    if region == 0 || size == u64::MAX {
        bail!("the device holds less than one I/O of {} bytes", a.io_size);
    }
    let max_threads = a.threads.iter().copied().max().unwrap_or(1);
    if region / a.io_size < u64::from(max_threads) {
        bail!("--size {size}: fewer I/O units than threads");
    }
    if target.path.is_some() && a.io_size % u64::from(target.block) != 0 {
        bail!("-o {}: not a multiple of {}'s {}-byte logical block", a.io_size, target.label, target.block);
    }
    if let Some(d) = &device {
        if a.io_size % u64::from(d.ns.block_size) != 0 {
            bail!("-o {}: not a multiple of the namespace's {}-byte block", a.io_size, d.ns.block_size);
        }
        if a.io_size > d.ns.max_transfer {
            bail!("-o {}: above the controller's largest transfer of {} bytes", a.io_size, d.ns.max_transfer);
        }
        if let Some(q) = a.qd.iter().find(|&&q| q > d.qd_max()) {
            bail!("-q {q}: above the queue size: a queue pair of this controller holds at most {} commands", d.qd_max());
        }
    }
    let shape = Shape { io_size: a.io_size, base: 0, region, pattern: a.pattern, read_pct: a.pattern.read_pct(a.mix), zipf: a.zipf };
    eprintln!("perf: {} {} B, {} MiB region, device: {}", a.pattern.name(), a.io_size, region >> 20, target.label);
    if let Some(d) = &device {
        eprintln!("perf: spdk-style on {}", d.label);
    }
    let mut results = Vec::new();
    for &threads in &a.threads {
        for &qd in &a.qd {
            for (k, &e) in a.engines.iter().enumerate() {
                bed::check_interrupted()?;
                let seed = a.seed.wrapping_mul(0x9e37_79b9).wrapping_add(k as u64 + 1);
                let mut r = measure(&a, &target, device.as_ref(), &shape, e, threads, qd, seed)?;
                r.device = match e {
                    EngineKind::SpdkStyle => device.as_ref().map_or_else(String::new, |d| d.label.clone()),
                    _ => format!("{}, O_DIRECT", target.label),
                };
                results.push(r);
            }
        }
    }
    stats::print_table(&results);
    if a.latency > 0 {
        for r in &results {
            stats::print_histogram(r);
        }
    }
    let report = PerfReport { kind: "perf".into(), command: std::env::args().collect::<Vec<_>>().join(" "), machine: crate::run::machine(), results };
    if let Some(j) = &a.json {
        if let Some(dir) = j.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(j, serde_json::to_vec_pretty(&report)?).with_context(|| format!("writing {}", j.display()))?;
        println!("results: {}", j.display());
    }
    if let Some(dir) = &a.charts {
        for p in chart::render(&report, dir)? {
            println!("chart: {}", p.display());
        }
    }
    drop(device);
    drop(target);
    Ok(())
}

/// Makes thread `t`'s worker for engine `e`.
#[allow(clippy::too_many_arguments)]
fn worker(
    a: &Args,
    target: &target::Target,
    device: Option<&spdk::Device>,
    e: EngineKind,
    qd: u32,
    pool: &DmaPool,
    seed: u64,
    write: bool,
) -> Result<(Box<dyn Worker>, Option<String>)> {
    let model = kernel::Model { latency: a.device_latency, wait: a.wait.resolve(1) };
    Ok(match e {
        EngineKind::SpdkStyle => (Box::new(spdk::SpdkWorker::new(device.context("no controller")?, qd, a.io_size, seed)?), None),
        EngineKind::IoUring | EngineKind::Psync => {
            let path = target.path.as_ref().context("no device for the kernel engines")?;
            let (file, note) = target::open(path, write)?;
            if e == EngineKind::Psync {
                (Box::new(kernel::PsyncWorker::new(file, a.io_size, model, pool, seed)?), note)
            } else {
                let opts = UringOptions { iopoll: a.iopoll, sqpoll: a.sqpoll, fixed_buffers: !a.no_fixed_buffers, fixed_file: !a.no_registered_files };
                (Box::new(kernel::UringWorker::new(file, opts, qd, a.io_size, model, pool, seed)?), note)
            }
        }
        EngineKind::Aio => bail!("aio is not built"),
    })
}

fn how(a: &Args, e: EngineKind, threads: u32) -> String {
    match e {
        EngineKind::SpdkStyle => format!("run to completion, {threads} queue pair{}", if threads == 1 { "" } else { "s" }),
        EngineKind::IoUring => {
            let mut v = Vec::new();
            if !a.no_fixed_buffers {
                v.push("fixed buffers");
            }
            if !a.no_registered_files {
                v.push("registered file");
            }
            if a.sqpoll {
                v.push("sqpoll");
            }
            if a.iopoll {
                v.push("iopoll");
            }
            if v.is_empty() {
                "plain".into()
            } else {
                v.join(", ")
            }
        }
        EngineKind::Psync => "one I/O at a time per thread".into(),
        EngineKind::Aio => String::new(),
    }
}

/// Measures one engine at one (threads, qd) point.
#[allow(clippy::too_many_arguments)]
fn measure(a: &Args, target: &target::Target, device: Option<&spdk::Device>, shape: &Shape, e: EngineKind, threads: u32, qd: u32, seed: u64) -> Result<PerfResult> {
    let qd = if e == EngineKind::Psync { 1 } else { qd };
    let write = shape.read_pct < 100 || a.verify;
    let verify = a.verify.then_some(seed);
    let per_thread = u64::from(qd) * a.io_size.next_multiple_of(4096) + (4 << 20);
    let pool = DmaPool::new(PoolOptions { limit_bytes: usize::try_from(per_thread * u64::from(threads)).unwrap_or(usize::MAX).next_multiple_of(2 << 20), allow_fallback: true });
    let n = usize::try_from(threads).unwrap_or(1);
    let barrier = Barrier::new(n + 1);
    let warm_stop = AtomicBool::new(false);
    let stop = AtomicBool::new(false);
    let abort = AtomicBool::new(false);
    let progress: Vec<AtomicU64> = (0..n).map(|_| AtomicU64::new(0)).collect();
    let label = format!("{} qd {qd} x{threads}", e.name());
    let verify_counts = (AtomicU64::new(0), AtomicU64::new(0));
    let mut span = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let outs: Vec<Result<(ThreadStats, Option<String>)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (barrier, warm_stop, stop, abort, pool, progress, verify_counts) = (&barrier, &warm_stop, &stop, &abort, &pool, &progress[t as usize], &verify_counts);
                s.spawn(move || -> Result<(ThreadStats, Option<String>)> {
                    // Every thread passes every barrier, also after an error, so none waits forever.
                    let mut failed: Option<anyhow::Error> = None;
                    let made = worker(a, target, device, e, qd, pool, seed ^ (u64::from(t) << 40), write);
                    let (mut w, note) = match made {
                        Ok(x) => (Some(x.0), x.1),
                        Err(err) => {
                            failed = Some(err);
                            (None, None)
                        }
                    };
                    let mut gen = match OpGen::timed(shape, t, threads, seed ^ 0x5eed ^ u64::from(t)) {
                        Ok(g) => Some(g),
                        Err(err) => {
                            if failed.is_none() {
                                failed = Some(err);
                            }
                            None
                        }
                    };
                    let mut step = |f: &mut dyn FnMut(&mut dyn Worker) -> Result<()>| {
                        if failed.is_none() {
                            if let Some(w) = w.as_mut() {
                                if let Err(err) = f(w.as_mut()) {
                                    abort.store(true, Ordering::Relaxed);
                                    failed = Some(err);
                                }
                            }
                        }
                    };
                    if let Some(vs) = verify {
                        step(&mut |w| {
                            let mut st = ThreadStats::new();
                            w.run(&mut OpGen::once(shape, t, threads, true), abort, &mut st, Some(vs), progress)?;
                            w.flush()?;
                            verify_counts.0.fetch_add(st.writes, Ordering::Relaxed);
                            Ok(())
                        });
                        barrier.wait();
                        step(&mut |w| {
                            let mut st = ThreadStats::new();
                            w.run(&mut OpGen::once(shape, t, threads, false), abort, &mut st, Some(vs), progress)?;
                            verify_counts.1.fetch_add(st.verified, Ordering::Relaxed);
                            Ok(())
                        });
                        barrier.wait();
                    }
                    step(&mut |w| match gen.as_mut() {
                        Some(g) => w.run(g, warm_stop, &mut ThreadStats::new(), verify, progress),
                        None => Ok(()),
                    });
                    barrier.wait();
                    let mut st = ThreadStats::new();
                    step(&mut |w| match gen.as_mut() {
                        Some(g) => w.run(g, stop, &mut st, verify, progress),
                        None => Ok(()),
                    });
                    barrier.wait();
                    match failed {
                        Some(err) => Err(err),
                        None => Ok((st, note)),
                    }
                })
            })
            .collect();
        // Infallible: every thread waits at these barriers.
        span = {
            if a.verify {
                barrier.wait();
                barrier.wait();
                let (w, r) = (verify_counts.0.load(Ordering::Relaxed), verify_counts.1.load(Ordering::Relaxed));
                if !abort.load(Ordering::Relaxed) {
                    eprintln!("verify: {} wrote {w} blocks of {} B, read {r} back: all match", e.name(), a.io_size);
                }
            }
            sleep_or_stop(Duration::from_secs_f64(a.warmup), &abort);
            warm_stop.store(true, Ordering::Relaxed);
            barrier.wait();
            let dev0 = device.map_or(Duration::ZERO, |d| d.device_time());
            let cpu0 = rusage::process_cpu().unwrap_or_default();
            let t0 = Instant::now();
            let until = t0 + Duration::from_secs_f64(a.time);
            let mut last = (t0, 0u64);
            while Instant::now() < until && !bed::interrupted() && !abort.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(20).min(until.saturating_duration_since(Instant::now())));
                if a.time >= PROGRESS_MIN_SECS && last.0.elapsed() >= Duration::from_secs(1) {
                    let ios: u64 = progress.iter().map(|p| p.load(Ordering::Relaxed)).sum();
                    let now = Instant::now();
                    eprintln!("perf: {label}: {:>4.0} s {:>12.0} IOPS", (now - t0).as_secs_f64(), (ios - last.1.min(ios)) as f64 / (now - last.0).as_secs_f64());
                    last = (now, ios);
                }
            }
            stop.store(true, Ordering::Relaxed);
            barrier.wait();
            let wall = t0.elapsed();
            let cpu = rusage::process_cpu().unwrap_or_default().saturating_sub(cpu0);
            let dev = device.map_or(Duration::ZERO, |d| d.device_time()).saturating_sub(dev0);
            (wall, cpu, if e == EngineKind::SpdkStyle { dev } else { Duration::ZERO })
        };
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(anyhow::anyhow!("perf thread panicked")))).collect()
    });
    let mut all = ThreadStats::new();
    let mut notes = Vec::new();
    for o in outs {
        let (st, note) = o.with_context(|| format!("{} with {threads} threads at qd {qd}", e.name()))?;
        all.merge(&st);
        notes.extend(note);
    }
    bed::check_interrupted()?;
    notes.dedup();
    for n in notes {
        eprintln!("note: {} — {n}", e.name());
    }
    if all.ios() == 0 {
        bail!("{label}: no I/O completed in {:.1} s", a.time);
    }
    let (wall, cpu, dev) = span;
    // The device's share of the CPU time: the fraction of the polling
    // threads' wall time spent inside the emulated device, applied to the
    // process's CPU time. Both wall times stretch alike when another process
    // takes the core (a shared machine), which CPU time does not.
    let busy = wall.as_secs_f64() * f64::from(threads);
    let share = if busy > 0.0 { (dev.as_secs_f64() / busy).clamp(0.0, 1.0) } else { 0.0 };
    let dev_cpu = cpu.mul_f64(share);
    let mut r = stats::summarise(&all, wall.as_secs_f64(), cpu, dev_cpu, a.io_size);
    r.engine = e.name().into();
    r.how = how(a, e, threads);
    r.pattern = a.pattern.name().into();
    r.read_pct = shape.read_pct;
    r.qd = qd;
    r.threads = threads;
    r.device_model = a.device_latency.to_string();
    r.modelled = !a.device_latency.is_none();
    Ok(r)
}

/// Sleeps `d`, or less when a thread failed.
fn sleep_or_stop(d: Duration, failed: &AtomicBool) {
    let until = Instant::now() + d;
    while Instant::now() < until && !failed.load(Ordering::Relaxed) && !bed::interrupted() {
        std::thread::sleep(Duration::from_millis(10).min(until.saturating_duration_since(Instant::now())));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes_parse() {
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert_eq!(parse_bytes("4k"), Ok(4096));
        assert_eq!(parse_bytes("4KiB"), Ok(4096));
        assert_eq!(parse_bytes("1M"), Ok(1 << 20));
        assert!(parse_bytes("four").is_err());
    }
}
