//! `sfbench`: the command-line front of the storage-function engine. It sets
//! up the host, builds databases, and compares the kernel path (pread,
//! io_uring) with the userspace engines (user-chain, bpf-chain) on the same
//! data, with the same per-block logic.
//!
//! Must not know about: the internals of the other crates beyond their
//! public API.

mod bed;
mod byop;
mod demo;
mod engine;
mod mkdb;
mod perf;
mod report;
mod results;
mod run;
mod setup;
mod suite;
mod workload;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "sfbench",
    version,
    about = "Userspace storage-function engine: kernel-bypass NVMe + verified eBPF, benchmarked against the kernel path",
    after_help = "Start with `sfbench suite` (the whole comparison on the emulated controller, about a minute).\n\
                  Then: `sfbench mkdb --out db.sfe --keys 1000000` and `sfbench run --db db.sfe --device-latency optane`.\n\
                  Raw I/O, SPDK perf style: `sfbench perf -q 32 -o 4096 -w randread -t 10 -L`."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// The main job: B+-tree lookups at depths 1, 3 and 6 on all four engines,
    /// a client-thread sweep, a table, results.json and charts.
    Suite(suite::Args),
    /// Run one workload on the engines and thread counts you choose.
    Run(run::Args),
    /// Raw I/O benchmark in SPDK perf's terms: our driver (spdk-style) against io_uring and psync
    /// on the same device; IOPS, latency percentiles, CPU time per I/O.
    Perf(perf::Args),
    /// Build a B+-tree key-value database (the format the bundled programs read).
    Mkdb(mkdb::Args),
    /// Write a file of u64 values for the filter workload.
    Mknums(mkdb::NumsArgs),
    /// Bring your own program: run an XRP-style BPF object against a file.
    Byop(byop::Args),
    /// Render charts (SVG and PNG) from the JSON results of a run.
    Report(report::Args),
    /// Write data through the emulated NVMe controller, read it back, check
    /// every byte, and print IOPS and latency.
    Demo(demo::Args),
    /// Reserve hugepages for DMA memory (like SPDK's `setup.sh HUGEMEM=...`),
    /// or show what is reserved.
    Setup(setup::Args),
}

fn main() {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Suite(a) => suite::run(a),
        Cmd::Run(a) => run::run(a),
        Cmd::Perf(a) => perf::run(a),
        Cmd::Mkdb(a) => mkdb::run(a).map(|_| ()),
        Cmd::Mknums(a) => mkdb::nums(a),
        Cmd::Byop(a) => byop::run(a),
        Cmd::Report(a) => report::run(a),
        Cmd::Demo(a) => demo::run(a),
        Cmd::Setup(a) => setup::run(a),
    };
    if let Err(e) = r {
        // `{:#}`: the message and its causes, "a: b: c". Each error type
        // says a cause in its message or as its source, never both, so the
        // chain says everything once.
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
