//! `sfbench suite`: the main job. Builds B+-trees of depth 1, 3 and 6 (512-byte
//! nodes, 8 keys per node, as small as the depths allow), runs point lookups
//! on all four engines at each depth (the shape of XRP's Table 3), then a
//! client-thread sweep at depth 6; prints the table, writes JSON and charts,
//! and reports the target ratios.

use crate::engine::EngineKind;
use crate::results::{Report, RunResult};
use crate::run::{self, Args as RunArgs};
use crate::workload::Kind;
use anyhow::{Context, Result};
use nvme::Latency;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Directory for the databases, results.json and the charts.
    #[arg(long, default_value = "out")]
    pub out: PathBuf,
    /// Seconds measured per point.
    #[arg(long, default_value_t = 2.0)]
    pub seconds: f64,
    /// Device model applied to every engine (none, optane, nand, or microseconds).
    #[arg(long, default_value = "optane", value_parser = Latency::parse)]
    pub device_latency: Latency,
    /// Client thread counts of the sweep at depth 6.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8")]
    pub threads: Vec<u32>,
}

/// (depth, keys) with 8 keys per 512-byte node: 8^(d-1) < keys <= 8^d.
const DEPTHS: [(u32, u64); 3] = [(1, 8), (3, 500), (6, 40_000)];

pub fn run(a: Args) -> Result<()> {
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let mut results: Vec<RunResult> = Vec::new();
    let base = RunArgs {
        db: None,
        nums: None,
        workload: Kind::LookupUniform,
        engines: EngineKind::ALL.to_vec(),
        threads: vec![1],
        qd: 1,
        seconds: a.seconds,
        warmup: 0.3,
        device_latency: a.device_latency,
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
    for (depth, keys) in DEPTHS {
        let db = a.out.join(format!("db-depth{depth}.sfe"));
        let sb = crate::mkdb::run(crate::mkdb::Args { out: db.clone(), keys, node_size: 512, keys_per_node: Some(8), seed: 42 })?;
        anyhow::ensure!(sb.depth == u64::from(depth), "built depth {} instead of {depth}", sb.depth);
        let args = RunArgs { db: Some(db), ..base.clone() };
        let p = run::prepare(&args)?;
        for e in EngineKind::ALL {
            let r = run::measure(&args, &p, e, 1)?;
            eprintln!("  depth {depth} {:<10} avg {:>8.2} us", e.name(), r.lat_avg_us);
            results.push(r);
        }
    }
    let deepest = a.out.join(format!("db-depth{}.sfe", DEPTHS[2].0));
    let args = RunArgs { db: Some(deepest), ..base.clone() };
    let p = run::prepare(&args)?;
    for &t in a.threads.iter().filter(|&&t| t != 1) {
        for e in EngineKind::ALL {
            let r = run::measure(&args, &p, e, t)?;
            eprintln!("  {t} threads {:<10} {:>10.0} ops/s", e.name(), r.ops_per_sec);
            results.push(r);
        }
    }
    run::print_table(&results);
    targets(&results, a.device_latency);
    let report = Report { command: std::env::args().collect::<Vec<_>>().join(" "), machine: run::machine(), results };
    run::finish(&report, Some(&a.out.join("results.json")), Some(&a.out))
}

/// The targets, computed from this run.
fn targets(results: &[RunResult], model: Latency) {
    let at = |engine: &str, depth: u32, threads: u32| results.iter().find(|r| r.engine == engine && r.depth == depth && r.threads == threads);
    let limit_us = model.for_bytes(512).as_secs_f64() * 1e6 * 6.0;
    println!();
    if let (Some(bpf), Some(pread)) = (at("bpf-chain", 6, 1), at("pread", 6, 1)) {
        if limit_us > 0.0 {
            println!("depth 6: bpf-chain {:.2} us = {:.3}x the modelled limit of {:.1} us (target <= 1.07x)", bpf.lat_avg_us, bpf.lat_avg_us / limit_us, limit_us);
        }
        println!("depth 6: pread / bpf-chain average latency = {:.2}x (target >= 2x)", pread.lat_avg_us / bpf.lat_avg_us);
        if let Some(user) = at("user-chain", 6, 1) {
            println!("depth 6: bpf-chain / user-chain average latency = {:.3}x", bpf.lat_avg_us / user.lat_avg_us);
        }
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
    for e in ["bpf-chain", "pread"] {
        let pts: Vec<&RunResult> = results.iter().filter(|r| r.engine == e && r.depth == 6).collect();
        let peak = pts.iter().map(|r| r.ops_per_sec).fold(0.0, f64::max);
        if let Some(r) = pts.iter().find(|r| r.threads == 4 * cores) {
            println!("{e}: {} client threads (4x cores): {:.0} ops/s = {:.0}% of the peak {:.0} ops/s (target >= 90%)", r.threads, r.ops_per_sec, 100.0 * r.ops_per_sec / peak, peak);
        }
    }
}
