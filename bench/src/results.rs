//! What a benchmark run produces: one [`RunResult`] per (engine, workload,
//! depth, threads, queue depth) point, collected in a [`Report`] that is
//! written as JSON and rendered into charts by `report`.

use serde::{Deserialize, Serialize};

/// One measured point.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunResult {
    /// "pread", "io_uring", "user-chain" or "bpf-chain".
    pub engine: String,
    /// "lookup-uniform", "lookup-zipf", "range" or "filter".
    pub workload: String,
    /// Levels of the B+-tree (reads per lookup); 0 for filter-reduce.
    pub depth: u32,
    /// Client threads.
    pub threads: u32,
    /// Operations in flight per client thread.
    pub qd: u32,
    /// Operations measured (after warm-up).
    pub ops: u64,
    /// Device reads they made.
    pub hops: u64,
    pub seconds: f64,
    pub ops_per_sec: f64,
    pub hops_per_sec: f64,
    /// Latency of one operation, microseconds.
    pub lat_avg_us: f64,
    pub lat_p50_us: f64,
    pub lat_p99_us: f64,
    pub lat_p999_us: f64,
    /// (average latency - modelled device time) / hops per operation.
    pub sw_us_per_hop: f64,
    /// The device model ("none", "optane (3.2 us per 4 KiB)", ...).
    pub device_model: String,
    /// Whether device time is modelled (true on the emulated default).
    pub modelled: bool,
    /// Latency CDF: (latency in microseconds, fraction of operations at or below), ascending.
    pub cdf: Vec<(f64, f64)>,
    /// How it ran: "inline" or "reactor" (userspace engines), "wait:spin" or
    /// "wait:sleep" (kernel engines under a device model).
    #[serde(default)]
    pub how: String,
    /// What it read: "ext4 on /dev/zram1, O_DIRECT", "emulated NVMe, ext4 on /dev/zram1", ...
    #[serde(default)]
    pub device: String,
    /// Modelled device time of one read, microseconds (0 without a model).
    #[serde(default)]
    pub device_us_per_read: f64,
}

/// A whole run of `sfbench run` or of the default suite.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Report {
    /// The command line that produced it.
    pub command: String,
    /// Where it ran (CPU model, cores, kernel).
    pub machine: String,
    pub results: Vec<RunResult>,
}
