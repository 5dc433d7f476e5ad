//! What a perf point measured: a latency histogram per thread (merged),
//! I/O counts, the process's CPU time over the measured span (getrusage:
//! user + system, every thread of the process including io_uring's kernel
//! workers), the emulated device's own time, and the printed table.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Highest latency the histogram holds (ns); longer ones are clamped to it.
pub const LAT_MAX_NS: u64 = 60_000_000_000;
/// Significant decimal digits of the histogram (0.1 % resolution).
const LAT_DIGITS: u8 = 3;

/// A latency histogram in nanoseconds.
pub fn histogram() -> Histogram<u64> {
    // 1 ns .. 60 s at 3 digits: valid bounds, cannot fail.
    Histogram::new_with_bounds(1, LAT_MAX_NS, LAT_DIGITS).expect("valid histogram bounds")
}

/// What one thread counted.
#[derive(Debug)]
pub struct ThreadStats {
    pub reads: u64,
    pub writes: u64,
    /// Reads whose content was compared with the verify pattern.
    pub verified: u64,
    pub lat: Histogram<u64>,
}

impl ThreadStats {
    pub fn new() -> ThreadStats {
        ThreadStats { reads: 0, writes: 0, verified: 0, lat: histogram() }
    }
    pub fn ios(&self) -> u64 {
        self.reads + self.writes
    }
    /// Records one I/O of `ns` nanoseconds.
    #[inline]
    pub fn record(&mut self, write: bool, ns: u64) {
        if write {
            self.writes += 1;
        } else {
            self.reads += 1;
        }
        self.lat.saturating_record(ns.clamp(1, LAT_MAX_NS));
    }
    pub fn merge(&mut self, o: &ThreadStats) {
        self.reads += o.reads;
        self.writes += o.writes;
        self.verified += o.verified;
        // Same bounds on both sides: adding cannot fail.
        self.lat.add(&o.lat).expect("histograms with the same bounds");
    }
}

/// One measured point, as printed and written to JSON.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PerfResult {
    /// "spdk-style", "io_uring" or "psync".
    pub engine: String,
    /// How the engine ran ("sqpoll, fixed buffers, registered file", ...).
    pub how: String,
    /// What it read and wrote.
    pub device: String,
    pub pattern: String,
    pub read_pct: u8,
    pub io_size: u64,
    pub qd: u32,
    pub threads: u32,
    pub seconds: f64,
    pub ios: u64,
    pub reads: u64,
    pub writes: u64,
    pub iops: f64,
    pub mib_per_sec: f64,
    pub lat_avg_us: f64,
    pub lat_min_us: f64,
    pub lat_max_us: f64,
    pub lat_p50_us: f64,
    pub lat_p90_us: f64,
    pub lat_p99_us: f64,
    pub lat_p999_us: f64,
    pub lat_p9999_us: f64,
    /// CPU time of the process per I/O (user + system, every thread), ns.
    pub cpu_ns_per_io: f64,
    /// Of that, the emulated controller's own work (fetching commands,
    /// moving data, posting completions): the share of the polling threads'
    /// wall time spent inside its service calls, applied to `cpu_ns_per_io`;
    /// 0 for the kernel engines and a PCIe controller.
    pub device_ns_per_io: f64,
    /// `cpu_ns_per_io - device_ns_per_io`: the host software's cost.
    pub host_ns_per_io: f64,
    /// 1e9 / host_ns_per_io: I/Os per second one core of host software does.
    pub iops_per_core: f64,
    /// CPU seconds the process got per second of the run (2.0 = two cores
    /// busy): on a shared machine, how much of the asked-for parallelism it had.
    #[serde(default)]
    pub cores_used: f64,
    /// Device model ("none", "optane (3.2 us per 4 KiB)") and whether it is modelled.
    pub device_model: String,
    pub modelled: bool,
    /// Reads compared with the verify pattern during the timed run.
    pub verified_reads: u64,
    /// Latency histogram: (bucket upper bound in us, I/Os in the bucket), ascending.
    pub histogram: Vec<(f64, u64)>,
}

/// Summarises merged thread stats into a result.
#[allow(clippy::too_many_arguments)]
pub fn summarise(st: &ThreadStats, secs: f64, cpu: Duration, device: Duration, io_size: u64) -> PerfResult {
    let ios = st.ios();
    let n = ios.max(1) as f64;
    let us = |ns: u64| ns as f64 / 1000.0;
    let q = |p: f64| us(st.lat.value_at_quantile(p));
    let cpu_ns = cpu.as_nanos() as f64 / n;
    let dev_ns = device.as_nanos() as f64 / n;
    let host = (cpu_ns - dev_ns).max(0.0);
    let histogram = st.lat.iter_log(250, 1.25).filter(|v| v.count_since_last_iteration() > 0).map(|v| (us(v.value_iterated_to()), v.count_since_last_iteration())).collect();
    PerfResult {
        engine: String::new(),
        how: String::new(),
        device: String::new(),
        pattern: String::new(),
        read_pct: 0,
        io_size,
        qd: 0,
        threads: 0,
        seconds: secs,
        ios,
        reads: st.reads,
        writes: st.writes,
        iops: ios as f64 / secs,
        mib_per_sec: ios as f64 * io_size as f64 / secs / f64::from(1u32 << 20),
        lat_avg_us: st.lat.mean() / 1000.0,
        lat_min_us: us(st.lat.min()),
        lat_max_us: us(st.lat.max()),
        lat_p50_us: q(0.5),
        lat_p90_us: q(0.9),
        lat_p99_us: q(0.99),
        lat_p999_us: q(0.999),
        lat_p9999_us: q(0.9999),
        cpu_ns_per_io: cpu_ns,
        device_ns_per_io: dev_ns,
        host_ns_per_io: host,
        iops_per_core: if host > 0.0 { 1e9 / host } else { 0.0 },
        cores_used: cpu.as_secs_f64() / secs,
        device_model: String::new(),
        modelled: false,
        verified_reads: st.verified,
        histogram,
    }
}

/// The table, SPDK perf's columns plus CPU time per I/O.
pub fn print_table(results: &[PerfResult]) {
    let Some(r0) = results.first() else { return };
    println!("\n{} {} B, read {} %, device model {}{}", r0.pattern, r0.io_size, r0.read_pct, r0.device_model, if r0.modelled { " (MODELLED device time)" } else { "" });
    let mut devices: Vec<(&str, &str)> = results.iter().map(|r| (r.engine.as_str(), r.device.as_str())).collect();
    devices.dedup();
    for (e, d) in devices {
        println!("  {e}: {d}");
    }
    println!(
        "{:<11} {:>3} {:>5} {:>10} {:>8} {:>8} {:>8} {:>9} {:>8} {:>8} {:>8} {:>9} {:>9} {:>8} {:>8} {:>8} {:>10} {:>5}",
        "engine", "thr", "qd", "IOPS", "MiB/s", "avg us", "min us", "max us", "p50", "p90", "p99", "p99.9", "p99.99", "cpu ns", "dev ns", "host ns", "IOPS/core", "cores"
    );
    for r in results {
        let dev = if r.device_ns_per_io > 0.0 { format!("{:.0}", r.device_ns_per_io) } else { "-".into() };
        println!(
            "{:<11} {:>3} {:>5} {:>10.0} {:>8.1} {:>8.2} {:>8.2} {:>9.2} {:>8.2} {:>8.2} {:>8.2} {:>9.2} {:>9.2} {:>8.0} {:>8} {:>8.0} {:>10.0} {:>5.2}  {}",
            r.engine,
            r.threads,
            r.qd,
            r.iops,
            r.mib_per_sec,
            r.lat_avg_us,
            r.lat_min_us,
            r.lat_max_us,
            r.lat_p50_us,
            r.lat_p90_us,
            r.lat_p99_us,
            r.lat_p999_us,
            r.lat_p9999_us,
            r.cpu_ns_per_io,
            dev,
            r.host_ns_per_io,
            r.iops_per_core,
            r.cores_used,
            r.how
        );
    }
    println!("cpu ns: user + system CPU time of the process per I/O (all its threads, io_uring's kernel workers included); dev ns: the emulated controller's share of it (the share of the polling threads' time spent inside it; a real device does that work in hardware); host ns = cpu - dev; IOPS/core = 1e9 / host ns; cores: CPU seconds the process got per second.");
}

/// The -L histogram of one point, as SPDK perf's -LL prints it: each
/// non-empty bucket with its range, cumulative share and count.
pub fn print_histogram(r: &PerfResult) {
    println!("\nlatency histogram: {} qd {} threads {} ({} I/Os)", r.engine, r.qd, r.threads, r.ios);
    println!("{:>24} {:>10} {:>12}", "range (us)", "cumulative", "I/Os");
    let total = r.histogram.iter().map(|b| b.1).sum::<u64>().max(1);
    let mut lo = 0.0;
    let mut cum = 0u64;
    for &(hi, n) in &r.histogram {
        cum += n;
        println!("{:>10.3} - {:>10.3} {:>9.4}% {:>12}", lo, hi, cum as f64 * 100.0 / total as f64, n);
        lo = hi;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_of_known_latencies() {
        let mut st = ThreadStats::new();
        for i in 1..=1000u64 {
            st.record(i % 4 == 0, i * 1000);
        }
        let r = summarise(&st, 2.0, Duration::from_millis(4), Duration::from_millis(1), 4096);
        assert_eq!(r.ios, 1000);
        assert_eq!(r.writes, 250);
        assert!((r.iops - 500.0).abs() < 1e-9);
        assert!((r.lat_p50_us - 500.0).abs() < 1.0, "{}", r.lat_p50_us);
        assert!((r.lat_p99_us - 990.0).abs() < 1.5, "{}", r.lat_p99_us);
        assert!((r.lat_min_us - 1.0).abs() < 0.01 && (r.lat_max_us - 1000.0).abs() < 1.0);
        assert!((r.cpu_ns_per_io - 4000.0).abs() < 1e-6);
        assert!((r.host_ns_per_io - 3000.0).abs() < 1e-6);
        assert!((r.cores_used - 0.002).abs() < 1e-9);
        assert_eq!(r.histogram.iter().map(|b| b.1).sum::<u64>(), 1000);
        assert!(r.histogram.windows(2).all(|w| w[0].0 < w[1].0));
    }
}
