//! Tests of `report`: which charts a report yields, and that the files
//! written are real SVGs and PNGs.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::select::{self, XAxis};
use super::{default_out_dir, render, run, Args};
use crate::results::{Report, RunResult};

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("sfbench-report-{}-{n}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("temp dir");
        Self(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const DEVICE: &str = "optane (3.2 us per 4 KiB)";

/// A point whose numbers grow with depth and threads; the CDF spans
/// `lat / spread .. lat * spread`.
fn point(engine: &str, workload: &str, depth: u32, threads: u32, spread: f64) -> RunResult {
    let per_hop = match engine {
        "pread" => 9.0,
        "io_uring" => 8.0,
        "user-chain" => 3.6,
        _ => 3.4,
    };
    let lat = per_hop * f64::from(depth.max(1));
    let ops_per_sec = f64::from(threads.min(4)) * 1e6 / lat;
    let cdf = (0..=20)
        .map(|i| {
            let f = f64::from(i) / 20.0;
            (lat / spread * spread.powf(2.0 * f), f)
        })
        .collect();
    RunResult {
        engine: engine.into(),
        workload: workload.into(),
        depth,
        threads,
        qd: 1,
        ops: 10_000,
        hops: 10_000 * u64::from(depth),
        seconds: 1.0,
        ops_per_sec,
        hops_per_sec: ops_per_sec * f64::from(depth),
        lat_avg_us: lat,
        lat_p50_us: lat,
        lat_p99_us: lat * 2.0,
        lat_p999_us: lat * 3.0,
        sw_us_per_hop: per_hop - 3.2,
        device_model: DEVICE.into(),
        modelled: true,
        cdf,
        how: String::new(),
        device: String::new(),
        device_us_per_read: 0.0,
    }
}

fn report(results: Vec<RunResult>) -> Report {
    Report { command: "sfbench run".into(), machine: "test".into(), results }
}

/// Depths 1-4 at one thread, threads 1-8 at depth 4, for all four engines.
fn full_report() -> Report {
    let mut rs = Vec::new();
    for e in select::ENGINES {
        for d in 1..=4 {
            rs.push(point(e, "lookup-uniform", d, 1, 4.0));
        }
        for t in [2, 4, 8] {
            rs.push(point(e, "lookup-uniform", 4, t, 4.0));
        }
    }
    report(rs)
}

fn names(paths: &[PathBuf]) -> Vec<String> {
    paths.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect()
}

fn assert_png(path: &Path) {
    let bytes = std::fs::read(path).unwrap();
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "{} has no PNG signature", path.display());
    let img = image::load_from_memory_with_format(&bytes, image::ImageFormat::Png).unwrap_or_else(|e| panic!("{} does not decode: {e}", path.display()));
    assert_eq!((img.width(), img.height()), (1024, 640));
    // Not blank: the lines and text put more than the background colour in.
    let rgb = img.to_rgb8();
    let coloured = rgb.pixels().filter(|p| p.0 != [255, 255, 255]).count();
    assert!(coloured > 5_000, "{} is nearly blank ({coloured} non-white pixels)", path.display());
}

#[test]
fn full_report_renders_every_chart_as_svg_and_png() {
    let dir = TempDir::new("full");
    let out = dir.0.join("charts"); // created by render
    let paths = render(&full_report(), &out).unwrap();
    let mut expected = vec!["latency_vs_depth", "throughput_vs_threads"].into_iter().map(String::from).collect::<Vec<_>>();
    expected.extend((1..=4).map(|d| format!("latency_cdf_depth{d}")));
    let expected: Vec<String> = expected.iter().flat_map(|s| [format!("{s}.svg"), format!("{s}.png")]).collect();
    assert_eq!(names(&paths), expected);
    for p in &paths {
        assert!(p.starts_with(&out));
        assert!(std::fs::metadata(p).unwrap().len() > 0, "{} is empty", p.display());
        if p.extension().unwrap() == "png" {
            assert_png(p);
        } else {
            let svg = std::fs::read_to_string(p).unwrap();
            assert!(svg.starts_with("<svg"), "{} is not an SVG", p.display());
            for e in select::ENGINES {
                // plotters writes each text element's content on a line of its own.
                assert!(svg.lines().any(|l| l.trim() == e), "{} does not name {e}", p.display());
            }
        }
    }
    let depth_svg = std::fs::read_to_string(out.join("latency_vs_depth.svg")).unwrap();
    assert!(depth_svg.contains("modelled device: optane (3.2 us per 4 KiB)"));
    assert!(depth_svg.contains("lookup-uniform, 1 client thread, qd 1"));
}

#[test]
fn a_single_point_renders_no_sweep_and_no_error() {
    let dir = TempDir::new("single");
    let paths = render(&report(vec![point("bpf-chain", "lookup-uniform", 3, 1, 4.0)]), &dir.0).unwrap();
    assert_eq!(names(&paths), ["latency_cdf_depth3.svg", "latency_cdf_depth3.png"]);
    assert!(!dir.0.join("latency_vs_depth.svg").exists());
    assert!(!dir.0.join("throughput_vs_threads.png").exists());
}

#[test]
fn an_empty_report_renders_nothing() {
    let dir = TempDir::new("empty");
    let out = dir.0.join("new");
    assert!(render(&report(Vec::new()), &out).unwrap().is_empty());
    assert!(out.is_dir());
}

#[test]
fn non_finite_numbers_are_left_out_not_drawn() {
    let mut rs = full_report().results;
    for r in rs.iter_mut().filter(|r| r.engine == "pread") {
        r.lat_avg_us = f64::NAN;
        r.ops_per_sec = f64::INFINITY;
        r.cdf = vec![(f64::NAN, 0.5)];
    }
    let charts = select::charts(&rs);
    assert_eq!(charts.len(), 6);
    for c in &charts {
        assert!(c.series.iter().all(|s| s.engine != "pread"), "{} draws pread", c.file_stem);
    }
    let dir = TempDir::new("nan");
    assert_eq!(render(&report(rs), &dir.0).unwrap().len(), 12);
}

#[test]
fn depth_chart_uses_lowest_threads_and_qd_and_averages_repeats() {
    let mut rs = vec![point("pread", "lookup-uniform", 1, 2, 4.0), point("pread", "lookup-uniform", 2, 2, 4.0), point("pread", "lookup-uniform", 3, 4, 4.0)];
    let mut repeat = point("pread", "lookup-uniform", 2, 2, 4.0);
    repeat.lat_avg_us += 2.0;
    rs.push(repeat);
    let c = select::latency_vs_depth(&rs).unwrap();
    assert_eq!(c.x_axis, XAxis::Ticks(vec![1.0, 2.0]));
    assert_eq!(c.series[0].points, vec![(1.0, 9.0), (2.0, 19.0)]);
    assert!(c.subtitle.starts_with("lookup-uniform, 2 client threads, qd 1"));
}

#[test]
fn another_lookup_workload_is_charted_when_uniform_is_absent() {
    let rs: Vec<RunResult> = [1, 2].into_iter().flat_map(|d| [point("bpf-chain", "filter", d, 1, 4.0), point("bpf-chain", "lookup-zipf", d, 1, 4.0)]).collect();
    assert_eq!(select::workloads(&rs), ["lookup-zipf", "filter"]);
    let c = select::latency_vs_depth(&rs).unwrap();
    assert!(c.subtitle.starts_with("lookup-zipf,"));
}

#[test]
fn throughput_chart_takes_the_deepest_depth_with_a_thread_sweep() {
    let rs = vec![
        point("io_uring", "lookup-uniform", 6, 1, 4.0), // deepest, but no sweep
        point("io_uring", "lookup-uniform", 4, 1, 4.0),
        point("io_uring", "lookup-uniform", 4, 8, 4.0),
        point("io_uring", "lookup-uniform", 2, 1, 4.0),
        point("io_uring", "lookup-uniform", 2, 2, 4.0),
    ];
    let c = select::throughput_vs_threads(&rs).unwrap();
    assert!(c.subtitle.starts_with("lookup-uniform, depth 4, qd 1"), "{}", c.subtitle);
    assert_eq!(c.x_axis, XAxis::Ticks(vec![1.0, 8.0]));
}

#[test]
fn cdf_axis_is_logarithmic_only_past_a_decade() {
    let wide = select::latency_cdfs(&[point("pread", "lookup-uniform", 1, 1, 4.0)]);
    assert_eq!(wide[0].x_axis, XAxis::Log); // 16x span
    let narrow = select::latency_cdfs(&[point("pread", "lookup-uniform", 1, 1, 2.0)]);
    assert_eq!(narrow[0].x_axis, XAxis::Linear); // 4x span
    let mut r = point("pread", "lookup-uniform", 1, 1, 2.0);
    r.cdf.clear();
    assert!(select::latency_cdfs(&[r]).is_empty());
}

#[test]
fn unmodelled_device_is_labelled_as_such() {
    let mut r = point("pread", "lookup-uniform", 1, 1, 4.0);
    r.modelled = false;
    r.device_model = "Samsung 980".into();
    let c = &select::latency_cdfs(&[r])[0];
    assert!(!c.subtitle.contains("modelled"));
    assert!(c.subtitle.ends_with("| device: Samsung 980"), "{}", c.subtitle);
}

#[test]
fn malformed_json_is_an_error_naming_the_file() {
    let dir = TempDir::new("bad");
    let input = dir.0.join("results.json");
    std::fs::write(&input, "{\"command\": \"sfbench run\", \"results\": [").unwrap();
    let err = run(Args { input: input.clone(), out: None }).unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains(&input.display().to_string()), "{msg}");
    assert!(msg.contains("not a results file"), "{msg}");
}

#[test]
fn missing_input_is_an_error_naming_the_file() {
    let dir = TempDir::new("missing");
    let input = dir.0.join("nope.json");
    let msg = format!("{:#}", run(Args { input: input.clone(), out: None }).unwrap_err());
    assert!(msg.contains("cannot read benchmark results from") && msg.contains("nope.json"), "{msg}");
}

#[test]
fn run_reads_json_and_writes_next_to_it_by_default() {
    let dir = TempDir::new("run");
    let input = dir.0.join("results.json");
    std::fs::write(&input, serde_json::to_string(&full_report()).unwrap()).unwrap();
    run(Args { input, out: None }).unwrap();
    assert!(dir.0.join("latency_vs_depth.png").is_file());
    assert_eq!(default_out_dir(Path::new("results.json")), PathBuf::from("."));
    assert_eq!(default_out_dir(Path::new("out/r.json")), PathBuf::from("out"));
}

#[test]
fn depth_chart_draws_the_device_floor_and_names_the_kernel_device() {
    let mut rs: Vec<RunResult> = [1, 3, 6].into_iter().flat_map(|d| [point("pread", "lookup-uniform", d, 1, 4.0), point("bpf-chain", "lookup-uniform", d, 1, 4.0)]).collect();
    for r in &mut rs {
        r.device_us_per_read = 3.2;
        if r.engine == "pread" {
            r.device = "ext4 on /dev/zram1, O_DIRECT".into();
        }
    }
    let c = select::latency_vs_depth(&rs).unwrap();
    let floor = c.series.iter().find(|s| s.engine == select::FLOOR).expect("a floor series");
    let want = [(1.0, 3.2), (3.0, 9.6), (6.0, 19.2)];
    assert_eq!(floor.points.len(), want.len());
    for (got, want) in floor.points.iter().zip(want) {
        assert!(got.0 == want.0 && (got.1 - want.1).abs() < 1e-9, "{got:?} vs {want:?}");
    }
    let pread = c.series.iter().find(|s| s.engine == "pread").unwrap();
    assert_eq!(pread.label, "pread: ext4 on /dev/zram1, O_DIRECT");
    let bpf = c.series.iter().find(|s| s.engine == "bpf-chain").unwrap();
    assert_eq!(bpf.label, "bpf-chain");
    // Without a model there is no floor.
    for r in &mut rs {
        r.device_us_per_read = 0.0;
    }
    assert!(select::latency_vs_depth(&rs).unwrap().series.iter().all(|s| s.engine != select::FLOOR));
}
