//! `sfbench suite`: the main job, XRP's experiment on this machine. As root
//! it makes a RAM-backed kernel block device with ext4 on it (see
//! [`crate::bed`]) and writes the databases there as files, one of them
//! fragmented; the kernel engines read them with O_DIRECT through ext4 and
//! the block layer, the userspace engines read the same device's bytes
//! through the files' extents. It runs point lookups on all four engines at
//! depths 1, 3 and 6 (the shape of XRP's Table 3), a client-thread sweep at
//! depth 6, a range scan (XRP's other workload) and filter-reduce over a file
//! (the e2BPF thesis's experiment), checks every engine's answers, prints the
//! table and the targets met or not, and writes JSON and charts.

use crate::bed::{Bed, BedChoice};
use crate::engine::chain::{Mode, NsChoice};
use crate::engine::{EngineKind, Wait};
use crate::results::{Report, RunResult};
use crate::run::{self, Args as RunArgs};
use crate::workload::Kind;
use anyhow::{Context, Result};
use nvme::Latency;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
#[command(after_help = "As root the suite makes a zram device (or a loop device over /dev/shm), puts ext4 on it, \
runs everything on files there and removes it all on exit (also on Ctrl-C). Without root it runs on plain \
files through the page cache and says so in the table.")]
pub struct Args {
    /// Directory for results.json, the charts and (without a block device) the data files.
    #[arg(long, default_value = "out")]
    pub out: PathBuf,
    /// Seconds measured per point.
    #[arg(long, default_value_t = 1.5, value_parser = run::parse_seconds)]
    pub seconds: f64,
    /// Seconds of warm-up per point (not measured).
    #[arg(long, default_value_t = 0.3, value_parser = run::parse_warmup)]
    pub warmup: f64,
    /// Device model applied to every engine (none, optane, nand, or microseconds).
    #[arg(long, default_value = "optane", value_parser = Latency::parse)]
    pub device_latency: Latency,
    /// Client thread counts of the sweep at depth 6.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8", value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub threads: Vec<u32>,
    /// Where the data files live: auto (zram as root, else a loop device, else plain files),
    /// zram, loop, or files (plain files in --out, read through the page cache).
    #[arg(long, value_enum, default_value = "auto")]
    pub bed: BedChoice,
    /// Userspace engines: inline (run to completion), reactor, or auto (inline up to one client per core).
    #[arg(long, value_enum, default_value = "auto")]
    pub mode: Mode,
    /// Kernel engines under the device model: spin, sleep, or auto (spin up to one thread per core).
    #[arg(long, value_enum, default_value = "auto")]
    pub wait: Wait,
    /// Operations in flight per client thread for the range scan and filter-reduce (io_uring and
    /// the userspace engines; pread runs one at a time).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub scan_qd: u32,
}

/// Node size of every database: zram's sectors are 4 KiB, so O_DIRECT reads are too.
const NODE_BYTES: usize = 4096;
/// Keys per node: small, so a deep tree comes from few keys (XRP's depth-6 shape).
const KEYS_PER_NODE: usize = 8;
/// (depth, keys) with 8 keys per node: 8^(d-1) < keys <= 8^d.
const DEPTHS: [(u32, u64); 3] = [(1, 8), (3, 500), (6, 40_000)];
/// Size of the filter-reduce file.
const NUMS_MIB: u64 = 4;
/// Size of the scratch block device.
const BED_BYTES: u64 = 256 << 20;
/// Hugepage memory the runs need: DMA memory (queue buffers and rings), and
/// the userspace engines' snapshot of the device under a model.
const DMA_BYTES: u64 = 64 << 20;

pub fn run(a: Args) -> Result<()> {
    crate::bed::install_signal_handler();
    if a.threads.contains(&0) {
        anyhow::bail!("--threads: 0 client threads; give 1 or more");
    }
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let mut bed = Bed::new(a.bed, BED_BYTES, &a.out)?;
    bed.reserve_hugepages(DMA_BYTES + if a.device_latency.is_none() { 0 } else { BED_BYTES });
    let stage = a.out.join("staging");
    std::fs::create_dir_all(&stage).with_context(|| format!("creating {}", stage.display()))?;
    let base = RunArgs {
        db: None,
        nums: None,
        workload: Kind::LookupUniform,
        engines: EngineKind::ALL.to_vec(),
        threads: vec![1],
        qd: 1,
        seconds: a.seconds,
        warmup: a.warmup,
        device_latency: a.device_latency,
        wait: a.wait,
        mode: a.mode,
        namespace: NsChoice::Auto,
        page_cache: !bed.has_device(),
        range_keys: 100,
        reactors: 1,
        iopoll: false,
        sqpoll: false,
        seed: 1,
        check_every: 64,
        pci: None,
        json: None,
        charts: None,
    };
    let mut results: Vec<RunResult> = Vec::new();
    let mut deepest = None;
    for (depth, keys) in DEPTHS {
        let staged = stage.join(format!("db-depth{depth}.sfe"));
        let sb = crate::mkdb::run(crate::mkdb::Args { out: staged.clone(), keys, node_size: NODE_BYTES, keys_per_node: Some(KEYS_PER_NODE), seed: 42 })?;
        anyhow::ensure!(sb.depth == u64::from(depth), "built depth {} instead of {depth}", sb.depth);
        // The deeper databases are fragmented, so their chains cross extents.
        let db = bed.place(&staged, &format!("db-depth{depth}.sfe"), depth > 1)?;
        let args = RunArgs { db: Some(db.clone()), ..base.clone() };
        let p = run::prepare(&args)?;
        for e in EngineKind::ALL {
            let r = run::measure(&args, &p, e, 1)?;
            eprintln!("  depth {depth} {:<10} avg {:>8.2} us  {}", e.name(), r.lat_avg_us, r.how);
            results.push(r);
        }
        deepest = Some(db);
    }
    let deepest = deepest.context("no database built")?;
    let args = RunArgs { db: Some(deepest.clone()), ..base.clone() };
    let p = run::prepare(&args)?;
    for &t in a.threads.iter().filter(|&&t| t != 1) {
        for e in EngineKind::ALL {
            let r = run::measure(&args, &p, e, t)?;
            eprintln!("  {t} threads {:<10} {:>10.0} ops/s  {}", e.name(), r.ops_per_sec, r.how);
            results.push(r);
        }
    }
    // XRP's other workload: range scans over the depth-6 database.
    let args = RunArgs { db: Some(deepest), workload: Kind::Range, qd: a.scan_qd, ..base.clone() };
    let p = run::prepare(&args)?;
    for e in EngineKind::ALL {
        let r = run::measure(&args, &p, e, 1)?;
        eprintln!("  range {:<10} avg {:>8.2} us ({:.1} reads per scan)", e.name(), r.lat_avg_us, r.hops as f64 / r.ops.max(1) as f64);
        results.push(r);
    }
    // The thesis's experiment: filter-reduce over a file on the same file system.
    let staged = stage.join("nums.bin");
    crate::mkdb::nums(crate::mkdb::NumsArgs { out: staged.clone(), mib: NUMS_MIB, seed: 42 })?;
    let nums = bed.place(&staged, "nums.bin", true)?;
    let args = RunArgs { db: None, nums: Some(nums), workload: Kind::Filter, qd: a.scan_qd, ..base.clone() };
    let p = run::prepare(&args)?;
    for e in EngineKind::ALL {
        let r = run::measure(&args, &p, e, 1)?;
        eprintln!("  filter {:<10} avg {:>8.2} ms", e.name(), r.lat_avg_us / 1000.0);
        results.push(r);
    }
    if bed.has_device() {
        // The staged copies are not what was measured; the bed's copies go with the device.
        let _ = std::fs::remove_dir_all(&stage);
    }
    println!("\nbed: {}{}", bed.label, bed.fallback.as_ref().map(|f| format!(" (FALLBACK: {f})")).unwrap_or_default());
    run::print_table(&results);
    targets(&results, a.device_latency);
    let report = Report { command: std::env::args().collect::<Vec<_>>().join(" "), machine: run::machine(), results };
    write_out(&report, &a.out)?;
    drop(bed);
    Ok(())
}

fn write_out(report: &Report, out: &Path) -> Result<()> {
    run::finish(report, Some(&out.join("results.json")), Some(out))
}

/// One target line: the measured value, the bar, met or not.
fn target(what: &str, value: String, bar: &str, met: bool) {
    println!("{:<62} {:>18}  {:<14} {}", what, value, bar, if met { "met" } else { "NOT MET" });
}

/// The targets, computed from this run.
fn targets(results: &[RunResult], model: Latency) {
    let at =
        |engine: &str, workload: &str, depth: u32, threads: u32| results.iter().find(|r| r.engine == engine && r.workload == workload && r.depth == depth && r.threads == threads);
    let look = |engine: &str, depth: u32, threads: u32| at(engine, "lookup-uniform", depth, threads);
    let l_us = model.for_bytes(NODE_BYTES as u64).as_secs_f64() * 1e6;
    println!("\ntargets (this run):");
    if let Some(bpf) = look("bpf-chain", 6, 1) {
        for k in ["pread", "io_uring"] {
            if let Some(r) = look(k, 6, 1) {
                let x = r.lat_avg_us / bpf.lat_avg_us;
                target(&format!("depth 6: {k} / bpf-chain average latency"), format!("{x:.2}x"), ">= 2.0x", x >= 2.0);
            }
        }
        if l_us > 0.0 {
            let floor = 6.0 * l_us;
            let x = bpf.lat_avg_us / floor;
            target(&format!("depth 6: bpf-chain / device floor (6 x {l_us:.1} us = {floor:.1} us)"), format!("{x:.3}x"), "<= 1.10x", x <= 1.10);
        }
        if let Some(u) = look("user-chain", 6, 1) {
            println!("{:<62} {:>18}", "depth 6: bpf-chain / user-chain average latency (the cost of BPF)", format!("{:.3}x", bpf.lat_avg_us / u.lat_avg_us));
        }
    }
    if let (Some(bpf), Some(pread)) = (look("bpf-chain", 1, 1), look("pread", 1, 1)) {
        target("depth 1: bpf-chain average below pread's", format!("{:.2} vs {:.2} us", bpf.lat_avg_us, pread.lat_avg_us), "below", bpf.lat_avg_us < pread.lat_avg_us);
    }
    if let (Some(bpf), Some(pread)) = (look("bpf-chain", 6, 2), look("pread", 6, 2)) {
        let x = bpf.ops_per_sec / pread.ops_per_sec;
        target("2 client threads: bpf-chain / pread throughput", format!("{x:.2}x"), ">= 1.5x", x >= 1.5);
    }
    let cores = u32::try_from(crate::engine::chain::cores()).unwrap_or(u32::MAX);
    let pts: Vec<&RunResult> = results.iter().filter(|r| r.engine == "bpf-chain" && r.workload == "lookup-uniform" && r.depth == 6).collect();
    let peak = pts.iter().map(|r| r.ops_per_sec).fold(0.0, f64::max);
    if let Some(r) = pts.iter().find(|r| r.threads == 4 * cores) {
        let x = r.ops_per_sec / peak;
        target(&format!("{} client threads (4x cores, {}): bpf-chain / its peak", r.threads, r.how), format!("{:.0}%", 100.0 * x), ">= 90%", x >= 0.9);
    }
    for w in ["range", "filter"] {
        let Some(bpf) = results.iter().find(|r| r.engine == "bpf-chain" && r.workload == w) else { continue };
        for k in ["pread", "io_uring", "user-chain"] {
            if let Some(r) = results.iter().find(|r| r.engine == k && r.workload == w) {
                println!("{:<62} {:>18}", format!("{w}: {k} / bpf-chain average latency (qd {} / {})", r.qd, bpf.qd), format!("{:.2}x", r.lat_avg_us / bpf.lat_avg_us));
            }
        }
    }
}
