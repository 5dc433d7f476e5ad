//! `sfbench run`: one workload on one data file, on every engine asked for,
//! at every client-thread count asked for; answers checked against the
//! reference traversal; a table, JSON and charts.

use crate::engine::chain::{self, Mode, NsChoice};
use crate::engine::kernel::{self, Access, Model, PreadClient, UringClient};
use crate::engine::{Client, EngineKind, Recorder, Wait};
use crate::results::{Report, RunResult};
use crate::workload::{self, Data, Gen, Kind};
use anyhow::{bail, Context, Result};
use nvme::{DmaPool, Latency, PoolOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use workloads::btree::{FormatError, Superblock};

/// Most keys one range scan may cover: its reads stay far below the
/// chain's hop limit even at 2 keys per node.
const RANGE_KEYS_MAX: u64 = 1_000_000;
/// Longest span a seconds flag takes (a day): more is a typo, and past
/// `Duration`'s range it could not be timed at all.
pub const SECONDS_MAX: f64 = 86_400.0;

/// Parses a measured span: above 0 seconds, at most [`SECONDS_MAX`].
pub fn parse_seconds(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(x) if x > 0.0 && x <= SECONDS_MAX => Ok(x),
        _ => Err(format!("give seconds above 0, at most {SECONDS_MAX}")),
    }
}

/// Parses a warm-up span: 0 seconds or more, at most [`SECONDS_MAX`].
pub fn parse_warmup(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(x) if (0.0..=SECONDS_MAX).contains(&x) => Ok(x),
        _ => Err(format!("give seconds from 0 to {SECONDS_MAX}")),
    }
}

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
    #[arg(long, value_delimiter = ',', default_value = "1", value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub threads: Vec<u32>,
    /// Operations in flight per client thread (userspace engines and io_uring; pread runs one at a time).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub qd: u32,
    /// Seconds measured per point.
    #[arg(long, default_value_t = 3.0, value_parser = parse_seconds)]
    pub seconds: f64,
    /// Seconds of warm-up per point (not measured).
    #[arg(long, default_value_t = 0.5, value_parser = parse_warmup)]
    pub warmup: f64,
    /// Device model for every engine: none, optane (3.2 us per 4 KiB), nand (80 us), or microseconds.
    /// Each read costs its engine's real software plus this device time: the kernel engines wait it
    /// out after their real read returns (see --wait), the emulated controller posts the completion
    /// this long after it fetched the command. Figures are then labelled modelled.
    #[arg(long, default_value = "none", value_parser = Latency::parse)]
    pub device_latency: Latency,
    /// How the kernel engines wait out the modelled device time: spin (no wake-up charged: a lower
    /// bound for the kernel), sleep (a high-resolution timer sleep, as a blocked reader; the CPU goes
    /// to other threads), or auto (spin while kernel threads are at most the cores, else sleep).
    #[arg(long, value_enum, default_value = "auto")]
    pub wait: Wait,
    /// How the userspace engines' client threads reach their queue pairs: inline (each thread owns
    /// a queue pair and polls it: run to completion, no hand-off), reactor (reactor threads own the
    /// queue pairs, clients hand chains over and wait), or auto (inline while client threads are at
    /// most the cores, else reactor).
    #[arg(long, value_enum, default_value = "auto")]
    pub mode: Mode,
    /// What the userspace engines read for the data file: device (the block device under it,
    /// through the file's extents from FIEMAP, checked against our ext4 reader), file (the file
    /// itself as the namespace, no file system on the path), or auto (device when it can be read,
    /// which needs root; else file, with a note).
    #[arg(long, value_enum, default_value = "auto")]
    pub namespace: NsChoice,
    /// Kernel engines read through a warm page cache instead of O_DIRECT (the fallback when no
    /// block device of ours is in use).
    #[arg(long)]
    pub page_cache: bool,
    /// Keys per range scan (at most 1000000).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=RANGE_KEYS_MAX))]
    pub range_keys: u64,
    /// Reactor threads of the userspace engines in reactor mode (one queue pair each).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub reactors: u64,
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
    /// "ext4 on /dev/zram1": the file system and device the kernel engines read through.
    pub fs_label: String,
}

pub fn prepare(args: &Args) -> Result<Prepared> {
    if args.workload.is_tree() {
        let Some(path) = args.db.clone() else { bail!("workload {} needs --db (make one with sfbench mkdb)", args.workload.name()) };
        let f = std::fs::File::open(&path).with_context(|| format!("opening the database {} (make one with sfbench mkdb)", path.display()))?;
        let sb = Superblock::read(&f).map_err(|e| database_error(&path, e))?;
        let fs_label = fs_label(&path);
        Ok(Prepared { path, depth: u32::try_from(sb.depth).context("tree depth")?, data: Data::Tree(sb), nums: None, fs_label })
    } else {
        let Some(path) = args.nums.clone() else { bail!("workload filter needs --nums (make one with sfbench mknums)") };
        let bytes = std::fs::read(&path).with_context(|| format!("reading {} (make one with sfbench mknums)", path.display()))?;
        if bytes.is_empty() || bytes.len() % workloads::filter::BLOCK != 0 {
            bail!("{}: {} bytes is not a positive multiple of 4096; remake it with sfbench mknums", path.display(), bytes.len());
        }
        let fs_label = fs_label(&path);
        Ok(Prepared { path, depth: 0, data: Data::Nums(bytes.len() as u64), nums: Some(bytes), fs_label })
    }
}

/// A database that cannot be read, in the CLI's words: the fix is a
/// command (the library names its builder function instead).
fn database_error(path: &Path, e: FormatError) -> anyhow::Error {
    match e {
        FormatError::BadMagic { offset, found } => {
            anyhow::anyhow!("{}: not a database made by sfbench mkdb (bad magic {found:#x} at offset {offset}); rebuild it with sfbench mkdb", path.display())
        }
        FormatError::Corrupt(why) => anyhow::anyhow!("{}: corrupt database: {why}; rebuild it with sfbench mkdb", path.display()),
        FormatError::Io(e) => anyhow::Error::new(e).context(format!("reading the database {}", path.display())),
        e @ FormatError::Unbuildable(_) => anyhow::Error::new(e).context(path.display().to_string()),
    }
}

/// The file system type and device a file lives on ("ext4 on /dev/zram1"),
/// from /proc/self/mountinfo.
pub fn fs_label(path: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(path) else { return "unknown file system".into() };
    let want = format!("{}:{}", libc::major(meta.dev()), libc::minor(meta.dev()));
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    for l in info.lines() {
        let f: Vec<&str> = l.split(' ').collect();
        if f.len() < 5 || f[2] != want {
            continue;
        }
        if let Some(dash) = f.iter().position(|&x| x == "-") {
            if let (Some(fstype), Some(src)) = (f.get(dash + 1), f.get(dash + 2)) {
                return format!("{fstype} on {src}");
            }
        }
    }
    "unknown file system".into()
}

pub fn run(args: Args) -> Result<()> {
    crate::bed::install_signal_handler();
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
    crate::bed::check_interrupted()?;
    if threads == 0 {
        bail!("--threads: 0 client threads; give 1 or more");
    }
    let model = args.device_latency;
    let qd = if engine == EngineKind::Pread { 1 } else { args.qd.max(1) };
    let pool = DmaPool::new(PoolOptions { limit_bytes: 64 << 20, allow_fallback: true });
    let mut notes = Vec::new();
    let (how, device, chain_engine, kmodel, kernel_access) = if engine.is_kernel() {
        let wait = args.wait.resolve(threads);
        let access = if args.page_cache {
            // Warm the page cache, so every read is a memory copy plus the model.
            std::fs::read(&p.path).with_context(|| format!("reading {}", p.path.display()))?;
            Access::Buffered
        } else {
            let (_, access, n) = kernel::open(&p.path)?;
            notes.extend(n);
            access
        };
        let io = if access == Access::Direct { "O_DIRECT" } else { "page cache" };
        let how = if model.is_none() { "-".to_string() } else { format!("wait:{}", wait.name()) };
        (how, format!("{}, {io}", p.fs_label), None, Model { latency: model, wait }, access)
    } else {
        let mode = args.mode.resolve(threads);
        let layout = chain::layout(&p.path, args.namespace)?;
        let reactors = usize::try_from(args.reactors).context("--reactors")?;
        let e = chain::start(engine, args.workload, &p.data, layout, model, mode, reactors, args.pci.as_deref())?;
        notes.push(e.note.clone());
        let device = if args.pci.is_some() { "PCIe NVMe".to_string() } else { format!("emulated NVMe, {}", p.fs_label) };
        (mode.name().to_string(), device, Some(Arc::new(e)), Model { latency: model, wait: Wait::Spin }, Access::Direct)
    };
    let open_kernel = || -> Result<std::fs::File> {
        if kernel_access == Access::Buffered {
            std::fs::File::open(&p.path).with_context(|| format!("opening {}", p.path.display()))
        } else {
            Ok(kernel::open(&p.path)?.0)
        }
    };
    let make_client = |_: u32| -> Result<Box<dyn Client>> {
        Ok(match engine {
            EngineKind::Pread => Box::new(PreadClient::new(open_kernel()?, args.workload, &p.data, kmodel, &pool)?),
            EngineKind::IoUring => Box::new(UringClient::new(open_kernel()?, args.workload, &p.data, kmodel, &pool, args.iopoll, args.sqpoll, qd as usize)?),
            _ => chain_engine.as_ref().context("userspace engine not started")?.client()?,
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
                    crate::bed::check_interrupted()?;
                    let mut rec = Recorder::new(args.check_every);
                    let t0 = Instant::now();
                    client.run_until(&mut gen, qd as usize, t0 + span, &mut rec)?;
                    Ok((rec, t0.elapsed()))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(anyhow::anyhow!("client thread panicked")))).collect()
    });
    if let Some(e) = &chain_engine {
        e.check_unchanged()?;
    }
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
    for n in notes {
        note_once(&format!("note: {} — {n}", engine.name()));
    }
    let mut r = summarise(engine, args, p, threads, qd, lat, hops, secs);
    r.how = how;
    r.device = device;
    Ok(r)
}

/// The index of quantile `q` (0 to 1) in a sorted sample of `n > 0` values.
pub fn rank(n: usize, q: f64) -> usize {
    // `q` is clamped to [0, 1], so the product is a non-negative number below
    // `n` (or NaN, which casts to 0): the casts cannot wrap.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
    let i = (n as f64 * q.clamp(0.0, 1.0)) as usize;
    i.min(n.saturating_sub(1))
}

/// Prints a note the first time it comes up in this process (every point
/// of a run would say the same).
fn note_once(line: &str) {
    static SEEN: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut seen = SEEN.lock().unwrap_or_else(|p| p.into_inner());
    if !seen.iter().any(|s| s == line) {
        eprintln!("{line}");
        seen.push(line.to_string());
    }
}

/// Checks sampled answers against the reference traversal; fails loudly.
fn check(engine: EngineKind, p: &Prepared, samples: &[(workload::Op, workload::Answer)]) -> Result<()> {
    let f = std::fs::File::open(&p.path).with_context(|| format!("opening {} to check answers", p.path.display()))?;
    for (op, got) in samples {
        // A database that went bad under the run is said as at start-up.
        let want = workload::reference(*op, &p.data, &f, p.nums.as_deref()).map_err(|e| match e.downcast::<FormatError>() {
            Ok(fe) => database_error(&p.path, fe),
            Err(e) => e,
        })?;
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
    let pct = |q: f64| us(lat[rank(n, q)]);
    let avg = lat.iter().map(|&x| x as f64).sum::<f64>() / n as f64 / 1000.0;
    let hops_per_op = hops as f64 / n as f64;
    let model_us = args.device_latency.for_bytes(u64::from(p.data.block())).as_secs_f64() * 1e6;
    let cdf = (1..=100u32).map(|i| (pct(f64::from(i) / 100.0), f64::from(i) / 100.0)).collect();
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
        how: String::new(),
        device: String::new(),
        device_us_per_read: model_us,
    }
}

pub fn print_table(results: &[RunResult]) {
    if let Some(r) = results.first() {
        println!("\nworkload {}, device: {}{}", r.workload, r.device_model, if r.modelled { " (MODELLED device time)" } else { "" });
    }
    let mut devices: Vec<&str> = results.iter().map(|r| r.device.as_str()).collect();
    devices.dedup();
    for d in devices {
        let engines: Vec<&str> = results.iter().filter(|r| r.device == d).map(|r| r.engine.as_str()).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
        println!("  {}: {d}", engines.join(", "));
    }
    println!(
        "{:<11} {:<14} {:>5} {:>7} {:>3} {:>10} {:>10} {:>9} {:>9} {:>9} {:>9} {:>10}",
        "engine", "workload", "depth", "threads", "qd", "ops/s", "hops/s", "avg us", "p50 us", "p99 us", "p99.9 us", "sw us/hop"
    );
    for r in results {
        println!(
            "{:<11} {:<14} {:>5} {:>7} {:>3} {:>10.0} {:>10.0} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>10.3}  {}",
            r.engine, r.workload, r.depth, r.threads, r.qd, r.ops_per_sec, r.hops_per_sec, r.lat_avg_us, r.lat_p50_us, r.lat_p99_us, r.lat_p999_us, r.sw_us_per_hop, r.how
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
