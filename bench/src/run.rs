//! `sfbench run`: one workload on one data file, on every engine asked for,
//! at every client-thread count asked for; answers checked against the
//! reference traversal; a table, JSON and charts.

use crate::engine::chain::{self, ChainClient};
use crate::engine::kernel::{self, Access, PreadClient, UringClient};
use crate::engine::{Client, EngineKind, Recorder};
use crate::results::{Report, RunResult};
use crate::workload::{self, Data, Gen, Kind};
use anyhow::{bail, Context, Result};
use chaining::btree::Superblock;
use nvme::{DmaPool, Latency, PoolOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Database made by `sfbench mkdb` (lookup and range workloads).
    #[arg(long, required_unless_present = "nums")]
    pub db: Option<PathBuf>,
    /// File of u64 made by `sfbench mknums` (filter workload).
    #[arg(long)]
    pub nums: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "lookup-uniform")]
    pub workload: Kind,
    /// Engines to compare, comma separated.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "pread,io-uring,user-chain,bpf-chain")]
    pub engines: Vec<EngineKind>,
    /// Client thread counts to measure, comma separated (more than cores is fine).
    #[arg(long, value_delimiter = ',', default_value = "1")]
    pub threads: Vec<u32>,
    /// Operations in flight per client thread (userspace engines; the kernel engines run one at a time per thread).
    #[arg(long, default_value_t = 1)]
    pub qd: u32,
    /// Seconds measured per point.
    #[arg(long, default_value_t = 3.0)]
    pub seconds: f64,
    /// Seconds of warm-up per point (not measured).
    #[arg(long, default_value_t = 0.5)]
    pub warmup: f64,
    /// Device model for every engine: none, optane (3.2 us per 4 KiB), nand (80 us), or microseconds.
    /// Kernel engines get it as a calibrated wait after each read (and read through the page cache);
    /// the emulated controller applies it to each command. Figures are then labelled modelled.
    #[arg(long, default_value = "none", value_parser = Latency::parse)]
    pub device_latency: Latency,
    /// Keys per range scan.
    #[arg(long, default_value_t = 100)]
    pub range_keys: u64,
    /// Reactor threads of the userspace engines (one queue pair each).
    #[arg(long, default_value_t = 1)]
    pub reactors: usize,
    /// io_uring: IOPOLL (needs a polled NVMe block device and O_DIRECT).
    #[arg(long)]
    pub iopoll: bool,
    /// io_uring: SQPOLL (a kernel thread polls the submission queue).
    #[arg(long)]
    pub sqpoll: bool,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Check one operation in this many against the reference traversal.
    #[arg(long, default_value_t = 64)]
    pub check_every: u64,
    /// Userspace engines use this PCIe NVMe controller (bound to vfio-pci or
    /// uio_pci_generic with `sfbench setup --bind`) instead of the emulated
    /// one; its namespace 1 must hold the same database image as --db, which
    /// the kernel engines read (e.g. a block device of another controller).
    #[arg(long, value_name = "BDF")]
    pub pci: Option<String>,
    /// Write the results as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Render charts into this directory.
    #[arg(long)]
    pub charts: Option<PathBuf>,
}

/// The data file of a run, opened and checked once.
pub struct Prepared {
    pub path: PathBuf,
    pub data: Data,
    /// The whole file, for the filter reference.
    nums: Option<Vec<u8>>,
    /// Tree depth (0 for a file of numbers).
    pub depth: u32,
}

pub fn prepare(args: &Args) -> Result<Prepared> {
    if args.workload.is_tree() {
        let Some(path) = args.db.clone() else { bail!("workload {} needs --db (make one with sfbench mkdb)", args.workload.name()) };
        let f = std::fs::File::open(&path).with_context(|| format!("opening the database {} (make one with sfbench mkdb)", path.display()))?;
        let sb = Superblock::read(&f).with_context(|| format!("{}", path.display()))?;
        Ok(Prepared { path, depth: sb.depth as u32, data: Data::Tree(sb), nums: None })
    } else {
        let Some(path) = args.nums.clone() else { bail!("workload filter needs --nums (make one with sfbench mknums)") };
        let bytes = std::fs::read(&path).with_context(|| format!("reading {} (make one with sfbench mknums)", path.display()))?;
        if bytes.is_empty() || bytes.len() % chaining::filter::BLOCK != 0 {
            bail!("{}: {} bytes is not a positive multiple of 4096; remake it with sfbench mknums", path.display(), bytes.len());
        }
        Ok(Prepared { path, depth: 0, data: Data::Nums(bytes.len() as u64), nums: Some(bytes) })
    }
}

pub fn run(args: Args) -> Result<()> {
    let p = prepare(&args)?;
    let mut results = Vec::new();
    for &t in &args.threads {
        for &e in &args.engines {
            results.push(measure(&args, &p, e, t)?);
        }
    }
    print_table(&results);
    let report = Report { command: std::env::args().collect::<Vec<_>>().join(" "), machine: machine(), results };
    finish(&report, args.json.as_deref(), args.charts.as_deref())
}

/// Size of a file or block device (a block device's metadata says 0).
pub fn size_of(f: &std::fs::File) -> std::io::Result<u64> {
    use std::io::{Seek, SeekFrom};
    let mut f = f;
    f.seek(SeekFrom::End(0))
}

/// `Superblock::read` checks the root against the file's metadata length,
/// which is 0 for a block device: give it a sparse temporary file with the
/// device's first block and the device's size instead.
/// Writes JSON and charts where asked.
pub fn finish(report: &Report, json: Option<&Path>, charts: Option<&Path>) -> Result<()> {
    if let Some(j) = json {
        if let Some(dir) = j.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(j, serde_json::to_vec_pretty(report)?).with_context(|| format!("writing {}", j.display()))?;
        println!("results: {}", j.display());
    }
    if let Some(dir) = charts {
        for path in crate::report::render(report, dir)? {
            println!("chart: {}", path.display());
        }
    }
    Ok(())
}

/// Measures one engine at one thread count.
pub fn measure(args: &Args, p: &Prepared, engine: EngineKind, threads: u32) -> Result<RunResult> {
    let model = args.device_latency;
    let threads = threads.max(1);
    let qd = if engine.is_kernel() { 1 } else { args.qd.max(1) };
    let pool = DmaPool::new(PoolOptions { limit_bytes: 64 << 20, allow_fallback: true });
    // Kernel engines: O_DIRECT without a model (the host's device); with a
    // model, the page cache stands in for a fast device and the model adds
    // the device time.
    let want_direct = model.is_none();
    let note;
    let chain_engine = if engine.is_kernel() {
        let (_, access, n) = kernel::open(&p.path, want_direct)?;
        note = n;
        if access == Access::Buffered && !model.is_none() {
            // Warm the page cache so every read is a memory copy plus the model.
            std::fs::read(&p.path)?;
        }
        None
    } else {
        let e = chain::start(engine, args.workload, &p.data, &p.path, model, args.reactors, args.pci.as_deref())?;
        note = Some(e.note.clone());
        Some(Arc::new(e))
    };
    let make_client = |_: u32| -> Result<Box<dyn Client>> {
        Ok(match engine {
            EngineKind::Pread => Box::new(PreadClient::new(kernel::open(&p.path, want_direct)?.0, args.workload, &p.data, model, &pool)?),
            EngineKind::IoUring => Box::new(UringClient::new(kernel::open(&p.path, want_direct)?.0, args.workload, &p.data, model, &pool, args.iopoll, args.sqpoll)?),
            _ => Box::new(ChainClient::new(chain_engine.clone().context("userspace engine not started")?)),
        })
    };
    let warm = Duration::from_secs_f64(args.warmup.max(0.0));
    let span = Duration::from_secs_f64(args.seconds.max(0.05));
    let recs: Vec<Result<(Recorder, Duration)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let make_client = &make_client;
                s.spawn(move || -> Result<(Recorder, Duration)> {
                    let mut client = make_client(t)?;
                    let mut gen = Gen::new(args.workload, &p.data, args.range_keys, args.seed.wrapping_add(u64::from(t) * 0x9e37))?;
                    client.run_until(&mut gen, qd as usize, Instant::now() + warm, &mut Recorder::new(u64::MAX))?;
                    let mut rec = Recorder::new(args.check_every);
                    let t0 = Instant::now();
                    client.run_until(&mut gen, qd as usize, t0 + span, &mut rec)?;
                    Ok((rec, t0.elapsed()))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(anyhow::anyhow!("client thread panicked")))).collect()
    });
    drop(chain_engine);
    let mut lat = Vec::new();
    let mut hops = 0u64;
    let mut samples = Vec::new();
    let mut secs: f64 = 0.0;
    for r in recs {
        let (rec, el) = r.with_context(|| format!("{} with {threads} threads", engine.name()))?;
        lat.extend(rec.lat_ns);
        hops += rec.hops;
        samples.extend(rec.samples);
        secs = secs.max(el.as_secs_f64());
    }
    if lat.is_empty() {
        bail!("{}: no operation finished in {:.1} s; raise --seconds", engine.name(), args.seconds);
    }
    check(engine, p, &samples)?;
    if let Some(n) = note {
        eprintln!("note: {} — {n}", engine.name());
    }
    Ok(summarise(engine, args, p, threads, qd, lat, hops, secs))
}

/// Checks sampled answers against the reference traversal; fails loudly.
fn check(engine: EngineKind, p: &Prepared, samples: &[(workload::Op, workload::Answer)]) -> Result<()> {
    let f = std::fs::File::open(&p.path)?;
    for (op, got) in samples {
        let want = workload::reference(*op, &p.data, &f, p.nums.as_deref())?;
        if *got != want {
            bail!("ANSWER MISMATCH: {} answered {got:?} for {op:?}; the reference traversal says {want:?}", engine.name());
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn summarise(engine: EngineKind, args: &Args, p: &Prepared, threads: u32, qd: u32, mut lat: Vec<u64>, hops: u64, secs: f64) -> RunResult {
    lat.sort_unstable();
    let n = lat.len();
    let us = |ns: u64| ns as f64 / 1000.0;
    let pct = |q: f64| us(lat[((n as f64 * q) as usize).min(n - 1)]);
    let avg = lat.iter().map(|&x| x as f64).sum::<f64>() / n as f64 / 1000.0;
    let hops_per_op = hops as f64 / n as f64;
    let model_us = args.device_latency.for_bytes(u64::from(p.data.block())).as_secs_f64() * 1e6;
    let cdf = (1..=100).map(|i| (pct(i as f64 / 100.0), i as f64 / 100.0)).collect();
    RunResult {
        engine: engine.name().to_string(),
        workload: args.workload.name().to_string(),
        depth: p.depth,
        threads,
        qd,
        ops: n as u64,
        hops,
        seconds: secs,
        ops_per_sec: n as f64 / secs,
        hops_per_sec: hops as f64 / secs,
        lat_avg_us: avg,
        lat_p50_us: pct(0.5),
        lat_p99_us: pct(0.99),
        lat_p999_us: pct(0.999),
        sw_us_per_hop: (avg - model_us * hops_per_op) / hops_per_op.max(1.0),
        device_model: args.device_latency.to_string(),
        modelled: !args.device_latency.is_none(),
        cdf,
    }
}

pub fn print_table(results: &[RunResult]) {
    if let Some(r) = results.first() {
        println!("\nworkload {}, device: {}{}", r.workload, r.device_model, if r.modelled { " (MODELLED device time)" } else { "" });
    }
    println!("{:<11} {:>5} {:>7} {:>3} {:>10} {:>10} {:>9} {:>9} {:>9} {:>9} {:>10}", "engine", "depth", "threads", "qd", "ops/s", "hops/s", "avg us", "p50 us", "p99 us", "p99.9 us", "sw us/hop");
    for r in results {
        println!(
            "{:<11} {:>5} {:>7} {:>3} {:>10.0} {:>10.0} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>10.3}",
            r.engine, r.depth, r.threads, r.qd, r.ops_per_sec, r.hops_per_sec, r.lat_avg_us, r.lat_p50_us, r.lat_p99_us, r.lat_p999_us, r.sw_us_per_hop
        );
    }
}

/// CPU model, cores and kernel of this machine.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split(':').nth(1)).map(|m| m.trim().to_string()))
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").map(|s| s.trim().to_string()).unwrap_or_default();
    format!("{cpu}, {cores} cores, Linux {kernel}")
}
