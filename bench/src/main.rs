//! `sfbench`: the command-line front of the storage-function engine. It sets
//! up the host, runs the demo and (as the bench work lands) builds databases
//! and compares the kernel path with the userspace engines.
//!
//! Must not know about: the internals of the other crates beyond their
//! public API.

mod demo;
#[allow(dead_code)]
mod results;
mod setup;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "sfbench", version, about = "Userspace storage-function engine: kernel-bypass NVMe + verified eBPF, benchmarked against the kernel path")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Write a file's worth of data through the emulated NVMe controller, read
    /// it back, check every byte, and print IOPS and latency.
    Demo(demo::Args),
    /// Reserve hugepages for DMA memory (like SPDK's `setup.sh HUGEMEM=...`),
    /// or show what is reserved.
    Setup(setup::Args),
}

fn main() {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Demo(a) => demo::run(a),
        Cmd::Setup(a) => setup::run(a),
    };
    if let Err(e) = r {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
