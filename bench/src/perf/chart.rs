//! Charts of a perf run: IOPS and CPU time per I/O against queue depth, a
//! line per engine, at each thread count measured. For our driver the CPU
//! line is the host's share (the emulated device's own time subtracted; a
//! real device spends it in hardware), with the total drawn beside it.

use super::stats::PerfResult;
use super::PerfReport;
use crate::report::{self, LineChart, Series, XAxis};
use anyhow::{Context, Result};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Reads `path` as a perf report, or None when it is some other results file.
pub fn load_if_perf(path: &Path) -> Result<Option<PerfReport>> {
    // Unreadable or not JSON: the general loader reports that.
    let Ok(text) = std::fs::read_to_string(path) else { return Ok(None) };
    let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else { return Ok(None) };
    if v.get("kind").and_then(|k| k.as_str()) != Some("perf") {
        return Ok(None);
    }
    Ok(Some(serde_json::from_value(v).with_context(|| format!("{} is not a results file written by `sfbench perf`", path.display()))?))
}

/// Every chart the report allows.
pub fn charts(r: &PerfReport) -> Vec<LineChart> {
    let threads: BTreeSet<u32> = r.results.iter().map(|x| x.threads).collect();
    let mut out = Vec::new();
    for t in threads {
        let pts: Vec<&PerfResult> = r.results.iter().filter(|x| x.threads == t).collect();
        let Some(first) = pts.first() else { continue };
        let sub = format!(
            "{} {} B, {} thread{}, device model {}{}",
            first.pattern,
            first.io_size,
            t,
            if t == 1 { "" } else { "s" },
            first.device_model,
            if first.modelled { " (MODELLED)" } else { "" }
        );
        let suffix = if t == 1 { String::new() } else { format!("_t{t}") };
        let iops = series(&pts, |x| Some(x.iops), "");
        let mut cpu = series(&pts, |x| Some(if x.device_ns_per_io > 0.0 { x.host_ns_per_io } else { x.cpu_ns_per_io }), "");
        cpu.extend(series(&pts, |x| (x.device_ns_per_io > 0.0).then_some(x.cpu_ns_per_io), " (with emulated device)"));
        let ticks: Vec<f64> = pts.iter().map(|x| x.qd).collect::<BTreeSet<_>>().into_iter().map(f64::from).collect();
        out.push(LineChart {
            file_stem: format!("perf_iops_vs_qd{suffix}"),
            title: "IOPS vs queue depth".into(),
            subtitle: sub.clone(),
            x_label: "queue depth (I/Os in flight per thread)",
            y_label: "IOPS",
            x_axis: XAxis::Ticks(ticks.clone()),
            markers: true,
            legend_upper_left: true,
            y_min_top: 0.0,
            series: iops,
        });
        out.push(LineChart {
            file_stem: format!("perf_cpu_ns_per_io_vs_qd{suffix}"),
            title: "CPU time per I/O vs queue depth".into(),
            subtitle: format!("{sub}; spdk-style: host share (emulated device time subtracted)"),
            x_label: "queue depth (I/Os in flight per thread)",
            y_label: "CPU ns per I/O (user + system)",
            x_axis: XAxis::Ticks(ticks),
            markers: true,
            legend_upper_left: true,
            y_min_top: 0.0,
            series: cpu,
        });
    }
    out
}

/// One series per engine (`y` None drops a point), named engine + `suffix`.
fn series(pts: &[&PerfResult], y: impl Fn(&PerfResult) -> Option<f64>, suffix: &str) -> Vec<Series> {
    let engines: Vec<&str> = pts.iter().fold(Vec::new(), |mut v, x| {
        if !v.contains(&x.engine.as_str()) {
            v.push(x.engine.as_str());
        }
        v
    });
    engines
        .into_iter()
        .filter_map(|e| {
            let mut points: Vec<(f64, f64)> = pts.iter().filter(|x| x.engine == e).filter_map(|x| y(x).map(|v| (f64::from(x.qd), v))).filter(|p| p.1.is_finite()).collect();
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            // psync runs at QD 1 whatever -q says: one point per queue depth.
            points.dedup_by(|b, a| a.0 == b.0);
            (!points.is_empty()).then(|| Series { engine: format!("{e}{suffix}"), label: format!("{e}{suffix}"), points })
        })
        .collect()
}

/// Renders the charts into `dir`.
pub fn render(r: &PerfReport, dir: &Path) -> Result<Vec<PathBuf>> {
    report::draw_all(&charts(r), dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::perf::stats::{summarise, ThreadStats};
    use std::time::Duration;

    fn point(engine: &str, qd: u32, iops_scale: u64, dev: bool) -> PerfResult {
        let mut st = ThreadStats::new();
        for i in 0..iops_scale {
            st.record(false, 1000 + i);
        }
        let mut r = summarise(&st, 1.0, Duration::from_millis(iops_scale), if dev { Duration::from_micros(iops_scale) } else { Duration::ZERO }, 4096);
        r.engine = engine.into();
        r.qd = qd;
        r.threads = 1;
        r.pattern = "randread".into();
        r
    }

    #[test]
    fn charts_by_qd_with_host_and_total_cpu_for_the_emulated_device() {
        let rep = PerfReport {
            kind: "perf".into(),
            command: "sfbench perf".into(),
            machine: "test".into(),
            results: vec![point("spdk-style", 1, 100, true), point("io_uring", 1, 50, false), point("spdk-style", 32, 400, true), point("io_uring", 32, 80, false)],
        };
        let c = charts(&rep);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].series.len(), 2);
        assert_eq!(c[0].series[0].points, vec![(1.0, 100.0), (32.0, 400.0)]);
        let names: Vec<&str> = c[1].series.iter().map(|s| s.label.as_str()).collect();
        assert_eq!(names, ["spdk-style", "io_uring", "spdk-style (with emulated device)"]);
        // Host share: (100 ms - 100 us) over 100 I/Os = 999 us.
        assert!((c[1].series[0].points[0].1 - 999_000.0).abs() < 1e-3);
        let dir = std::env::temp_dir().join(format!("sfbench-perf-chart-{}", std::process::id()));
        let files = render(&rep, &dir).unwrap();
        assert_eq!(files.len(), 4);
        assert!(files.iter().all(|f| std::fs::metadata(f).unwrap().len() > 1000));
        let j = dir.join("p.json");
        std::fs::write(&j, serde_json::to_vec(&rep).unwrap()).unwrap();
        assert_eq!(load_if_perf(&j).unwrap().unwrap(), rep);
        let _ = std::fs::remove_dir_all(dir);
    }
}
