//! Which results go into which chart: pure functions from [`RunResult`]s to
//! [`LineChart`]s, so the choices are tested without drawing anything.

use std::collections::{BTreeMap, BTreeSet};

use crate::results::RunResult;

/// The engines in the order the issue lists them; legends and colours follow
/// it, other engine names come after, alphabetically.
pub(crate) const ENGINES: [&str; 4] = ["pread", "io_uring", "user-chain", "bpf-chain"];

/// A CDF gets a log x axis when its latencies span more than this factor.
const LOG_AXIS_SPAN: f64 = 10.0;

/// One chart, ready to draw.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LineChart {
    /// File name without extension.
    pub file_stem: String,
    pub title: String,
    /// What was measured: workload, threads, queue depth, device model.
    pub subtitle: String,
    pub x_label: &'static str,
    pub y_label: &'static str,
    pub x_axis: XAxis,
    /// Dots on the measured points (sweeps); CDFs are plain curves.
    pub markers: bool,
    /// Legend in the upper left (else lower right).
    pub legend_upper_left: bool,
    /// Y axis from zero to at least this value.
    pub y_min_top: f64,
    /// One per engine, in [`ENGINES`] order; none is empty.
    pub series: Vec<Series>,
}

/// How the x axis is laid out.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum XAxis {
    /// Linear, a tick at each measured value (depths, thread counts).
    Ticks(Vec<f64>),
    Linear,
    Log,
}

/// One engine's line: finite points, ascending in x.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Series {
    pub engine: String,
    /// Legend text: the engine, and for the kernel engines what they read
    /// through ("pread: ext4 on /dev/zram1, O_DIRECT").
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

/// Every chart the results allow, in file order.
pub(crate) fn charts(results: &[RunResult]) -> Vec<LineChart> {
    let mut out = Vec::new();
    out.extend(latency_vs_depth(results));
    out.extend(throughput_vs_threads(results));
    out.extend(latency_cdfs(results));
    out
}

/// Average latency against depth, at the lowest (threads, qd) measured for
/// the first workload (in [`workloads`] order) with two or more depths.
pub(crate) fn latency_vs_depth(results: &[RunResult]) -> Option<LineChart> {
    workloads(results).into_iter().find_map(|w| {
        let (threads, qd) = base_point(results, w)?;
        let pts: Vec<&RunResult> = results.iter().filter(|r| r.workload == w && r.threads == threads && r.qd == qd).collect();
        let mut series = sweep(&pts, |r| r.depth, |r| r.lat_avg_us);
        let ticks = distinct_x(&series);
        series.extend(floor_series(&pts, &ticks));
        (ticks.len() >= 2).then(|| LineChart {
            file_stem: "latency_vs_depth".into(),
            title: "Lookup latency vs B+-tree depth".into(),
            subtitle: subtitle(&format!("{w}, {}, qd {qd}", threads_text(threads)), &pts),
            x_label: "tree depth (device reads per operation)",
            y_label: "average latency (us)",
            x_axis: XAxis::Ticks(ticks),
            markers: true,
            legend_upper_left: true,
            y_min_top: 0.0,
            series,
        })
    })
}

/// Operations per second against client threads, at the deepest depth with
/// two or more thread counts, lowest qd, for the first workload that has one.
pub(crate) fn throughput_vs_threads(results: &[RunResult]) -> Option<LineChart> {
    workloads(results).into_iter().find_map(|w| {
        let of_w: Vec<&RunResult> = results.iter().filter(|r| r.workload == w).collect();
        let qd = of_w.iter().map(|r| r.qd).min()?;
        let depths: BTreeSet<u32> = of_w.iter().map(|r| r.depth).collect();
        depths.into_iter().rev().find_map(|depth| {
            let pts: Vec<&RunResult> = of_w.iter().copied().filter(|r| r.depth == depth && r.qd == qd).collect();
            let series = sweep(&pts, |r| r.threads, |r| r.ops_per_sec);
            let ticks = distinct_x(&series);
            (ticks.len() >= 2).then(|| LineChart {
                file_stem: "throughput_vs_threads".into(),
                title: "Throughput vs client threads".into(),
                subtitle: subtitle(&format!("{w}, depth {depth}, qd {qd}"), &pts),
                x_label: "client threads",
                y_label: "operations per second",
                x_axis: XAxis::Ticks(ticks),
                markers: true,
                legend_upper_left: false,
                y_min_top: 0.0,
                series,
            })
        })
    })
}

/// A latency CDF per depth of the first workload that has any CDF, at its
/// lowest (threads, qd); one curve per engine (the first result where a point
/// was measured twice).
pub(crate) fn latency_cdfs(results: &[RunResult]) -> Vec<LineChart> {
    for w in workloads(results) {
        let Some((threads, qd)) = base_point(results, w) else {
            continue;
        };
        let pts: Vec<&RunResult> = results.iter().filter(|r| r.workload == w && r.threads == threads && r.qd == qd).collect();
        let depths: BTreeSet<u32> = pts.iter().map(|r| r.depth).collect();
        let charts: Vec<LineChart> = depths
            .into_iter()
            .filter_map(|depth| {
                let at: Vec<&RunResult> = pts.iter().copied().filter(|r| r.depth == depth).collect();
                cdf_chart(&at, &format!("{w}, depth {depth}, {}, qd {qd}", threads_text(threads))).map(|c| LineChart { file_stem: format!("latency_cdf_depth{depth}"), ..c })
            })
            .collect();
        if !charts.is_empty() {
            return charts;
        }
    }
    Vec::new()
}

fn cdf_chart(at: &[&RunResult], what: &str) -> Option<LineChart> {
    let mut by_engine: BTreeMap<(usize, &str), Vec<(f64, f64)>> = BTreeMap::new();
    for r in at {
        let points: Vec<(f64, f64)> = r.cdf.iter().copied().filter(|(x, y)| x.is_finite() && y.is_finite()).collect();
        if !points.is_empty() {
            by_engine.entry(engine_key(&r.engine)).or_insert(points);
        }
    }
    let xs = || by_engine.values().flatten().map(|p| p.0);
    let lo = xs().filter(|x| *x > 0.0).fold(f64::INFINITY, f64::min);
    let hi = xs().fold(f64::NEG_INFINITY, f64::max);
    let log = lo.is_finite() && hi / lo > LOG_AXIS_SPAN;
    let series: Vec<Series> = by_engine
        .into_iter()
        .map(|((_, engine), mut points)| {
            if log {
                points.retain(|p| p.0 > 0.0);
            }
            points.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
            Series { label: legend(engine, at), engine: engine.to_string(), points }
        })
        .filter(|s| !s.points.is_empty())
        .collect();
    (!series.is_empty()).then(|| LineChart {
        file_stem: String::new(),
        title: "Latency CDF".into(),
        subtitle: subtitle(what, at),
        x_label: if log { "latency (us, log scale)" } else { "latency (us)" },
        y_label: "fraction of operations at or below",
        x_axis: if log { XAxis::Log } else { XAxis::Linear },
        markers: false,
        legend_upper_left: false,
        y_min_top: 1.0,
        series,
    })
}

/// Workloads present, lookup-uniform first, then other lookups, then the
/// rest, each group alphabetical.
pub(crate) fn workloads(results: &[RunResult]) -> Vec<&str> {
    let set: BTreeSet<(u8, &str)> = results
        .iter()
        .map(|r| {
            let w = r.workload.as_str();
            let rank = match w {
                "lookup-uniform" => 0,
                _ if w.starts_with("lookup") => 1,
                _ => 2,
            };
            (rank, w)
        })
        .collect();
    set.into_iter().map(|(_, w)| w).collect()
}

/// The fewest client threads measured for `workload`, and the lowest queue
/// depth measured with that many threads.
pub(crate) fn base_point(results: &[RunResult], workload: &str) -> Option<(u32, u32)> {
    let of_w = || results.iter().filter(|r| r.workload == workload);
    let threads = of_w().map(|r| r.threads).min()?;
    let qd = of_w().filter(|r| r.threads == threads).map(|r| r.qd).min()?;
    Some((threads, qd))
}

/// One line per engine of `y(r)` against `x(r)`, averaging repeated points
/// and dropping non-finite ones.
fn sweep(pts: &[&RunResult], x: impl Fn(&RunResult) -> u32, y: impl Fn(&RunResult) -> f64) -> Vec<Series> {
    let mut acc: BTreeMap<(usize, &str), BTreeMap<u32, Vec<f64>>> = BTreeMap::new();
    for r in pts {
        let yv = y(r);
        if yv.is_finite() {
            acc.entry(engine_key(&r.engine)).or_default().entry(x(r)).or_default().push(yv);
        }
    }
    acc.into_iter()
        .map(|((_, engine), by_x)| Series { label: legend(engine, pts), engine: engine.to_string(), points: by_x.into_iter().map(|(xv, ys)| (f64::from(xv), mean(&ys))).collect() })
        .collect()
}

/// The legend text of an engine: kernel engines name the file system and
/// device they read through.
fn legend(engine: &str, pts: &[&RunResult]) -> String {
    let dev = pts.iter().find(|r| r.engine == engine).map_or("", |r| r.device.as_str());
    if matches!(engine, "pread" | "io_uring") && !dev.is_empty() {
        format!("{engine}: {dev}")
    } else {
        engine.to_string()
    }
}

/// Name of the series that draws the modelled device time alone.
pub(crate) const FLOOR: &str = "device floor";

/// depth x L at each depth, when device time was modelled.
fn floor_series(pts: &[&RunResult], depths: &[f64]) -> Option<Series> {
    let l = pts.iter().map(|r| r.device_us_per_read).find(|&l| l > 0.0 && l.is_finite())?;
    Some(Series { engine: FLOOR.into(), label: format!("device floor (depth x {l:.1} us)"), points: depths.iter().map(|&d| (d, d * l)).collect() })
}

fn mean(ys: &[f64]) -> f64 {
    // Sums of a handful of repeats: the count is exact in f64.
    #[allow(clippy::cast_precision_loss)]
    let n = ys.len() as f64;
    ys.iter().sum::<f64>() / n
}

/// Sort key putting the known engines first, in [`ENGINES`] order.
fn engine_key(engine: &str) -> (usize, &str) {
    (ENGINES.iter().position(|e| *e == engine).unwrap_or(ENGINES.len()), engine)
}

/// Distinct x values over all series, ascending.
fn distinct_x(series: &[Series]) -> Vec<f64> {
    let mut xs: Vec<f64> = series.iter().flat_map(|s| s.points.iter().map(|p| p.0)).collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    xs
}

fn threads_text(threads: u32) -> String {
    if threads == 1 {
        "1 client thread".into()
    } else {
        format!("{threads} client threads")
    }
}

/// `what`, then the device model: "modelled device: M" when device time was
/// modelled, "device: M" otherwise.
fn subtitle(what: &str, pts: &[&RunResult]) -> String {
    let models = |modelled: bool| -> Vec<&str> {
        let set: BTreeSet<&str> = pts.iter().filter(|r| r.modelled == modelled).map(|r| r.device_model.as_str()).collect();
        set.into_iter().collect()
    };
    let (modelled, real) = (models(true), models(false));
    let mut s = what.to_string();
    if !modelled.is_empty() {
        s.push_str(&format!(" | modelled device: {}", modelled.join(", ")));
    }
    let real: Vec<&str> = real.into_iter().filter(|m| !m.is_empty() && *m != "none").collect();
    if !real.is_empty() {
        s.push_str(&format!(" | device: {}", real.join(", ")));
    }
    s
}
