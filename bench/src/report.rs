//! `sfbench report`: charts from the results a run wrote (SVG and PNG).
//!
//! The charts the issue asks for, each drawn only when the results hold the
//! data it needs (a chart with one point or no line is skipped, not drawn
//! empty):
//! - `latency_vs_depth`: average latency against B+-tree depth, a line per
//!   engine, at the fewest client threads and the lowest queue depth measured
//!   (1 and 1 in the default suite);
//! - `throughput_vs_threads`: operations per second against client threads, a
//!   line per engine, at the deepest tree that has a thread sweep;
//! - `latency_cdf_depth{N}`: a latency CDF per measured depth, a curve per
//!   engine (log x axis when the latencies span more than a decade).
//!
//! The workload charted is `lookup-uniform` when present, else another lookup
//! workload, else whichever has the data. This module only reads
//! [`Report`]s; it must not know how they were measured.

mod draw;
mod select;
#[cfg(test)]
mod tests;
mod text;

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::results::Report;

pub(crate) use select::{LineChart, Series, XAxis};

/// `sfbench report --input results.json --out DIR`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The JSON file `sfbench run`, `suite` or `perf` wrote.
    #[arg(long, value_name = "PATH")]
    pub input: PathBuf,
    /// Directory for the charts, created if missing (default: the input's
    /// directory).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// Renders every chart the results allow into `out_dir` (created if
/// missing), as SVG and PNG, and returns the paths written. Charts whose data
/// is absent (e.g. only one depth measured) are skipped, not empty.
pub fn render(report: &Report, out_dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    draw_all(&select::charts(&report.results), out_dir)
}

/// Draws `charts` into `out_dir` (created if missing) as SVG and PNG; the
/// paths written.
pub(crate) fn draw_all(charts: &[LineChart], out_dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out_dir).with_context(|| format!("cannot create the chart directory {}", out_dir.display()))?;
    let mut written = Vec::new();
    for chart in charts {
        let svg = out_dir.join(format!("{}.svg", chart.file_stem));
        draw::svg(chart, &svg).with_context(|| format!("cannot write {}", svg.display()))?;
        written.push(svg);
        let png = out_dir.join(format!("{}.png", chart.file_stem));
        draw::png(chart, &png).with_context(|| format!("cannot write {}", png.display()))?;
        written.push(png);
    }
    Ok(written)
}

/// `sfbench report --input results.json --out DIR`: reads the JSON a run
/// wrote and renders it, printing the paths written.
pub fn run(a: Args) -> anyhow::Result<()> {
    let out = a.out.clone().unwrap_or_else(|| default_out_dir(&a.input));
    if let Some(perf) = crate::perf::chart::load_if_perf(&a.input)? {
        for p in crate::perf::chart::render(&perf, &out)? {
            println!("{}", p.display());
        }
        return Ok(());
    }
    let report = load(&a.input)?;
    let written = render(&report, &out)?;
    if written.is_empty() {
        println!(
            "no charts: {} has no series with two or more points (measure several depths or \
             thread counts) and no latency CDF",
            a.input.display()
        );
    }
    for p in &written {
        println!("{}", p.display());
    }
    Ok(())
}

/// Reads and parses a results file, naming the file in every error.
pub fn load(path: &Path) -> anyhow::Result<Report> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read benchmark results from {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a results file written by `sfbench run` (JSON with command, machine, \
             results)",
            path.display()
        )
    })
}

/// The directory holding `input`; `.` for a bare file name.
fn default_out_dir(input: &Path) -> PathBuf {
    match input.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}
