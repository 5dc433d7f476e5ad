//! The `sfbench` binary end to end: the commands from the README work, and
//! everything a user can get wrong gets a clear error.

mod common;

use common::{clang, sfbench};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn tmp(tag: &str) -> PathBuf {
    common::tmp("cli", tag)
}

fn mkdb(dir: &Path, keys: &str, per: &str) -> String {
    let db = dir.join("db.sfe").to_string_lossy().into_owned();
    let o = sfbench(&["mkdb", "--out", &db, "--keys", keys, "--node-size", "512", "--keys-per-node", per]);
    assert!(o.status.success(), "{}", text(&o));
    db
}

#[test]
fn run_compares_all_four_engines_with_answers_checked() {
    let d = tmp("run");
    let db = mkdb(&d, "3000", "8");
    let json = d.join("r.json").to_string_lossy().into_owned();
    for model in ["none", "optane"] {
        let o = sfbench(&["run", "--db", &db, "--seconds", "0.3", "--warmup", "0.05", "--threads", "1,2", "--device-latency", model, "--check-every", "1", "--json", &json]);
        let t = text(&o);
        assert!(o.status.success(), "{t}");
        for e in ["pread", "io_uring", "user-chain", "bpf-chain"] {
            assert!(t.lines().any(|l| l.starts_with(e)), "{e} missing in:\n{t}");
        }
        if model == "optane" {
            assert!(t.contains("MODELLED"), "{t}");
        }
        let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
        assert_eq!(report["results"].as_array().unwrap().len(), 8);
        assert_eq!(report["results"][0]["depth"], 4);
    }
    // Range scans and QD > 1 on the userspace engines.
    let o = sfbench(&["run", "--db", &db, "--workload", "range", "--range-keys", "50", "--engines", "pread,bpf-chain", "--qd", "4", "--seconds", "0.2", "--warmup", "0"]);
    assert!(o.status.success(), "{}", text(&o));
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn filter_workload_on_a_file_of_numbers() {
    let d = tmp("filter");
    let nums = d.join("nums.bin").to_string_lossy().into_owned();
    let o = sfbench(&["mknums", "--out", &nums, "--mib", "1"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = sfbench(&["run", "--nums", &nums, "--workload", "filter", "--seconds", "0.3", "--warmup", "0", "--check-every", "1"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = sfbench(&["run", "--nums", &nums, "--workload", "lookup-uniform"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("--db"), "{}", text(&o));
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn missing_and_corrupt_databases_are_clear_errors() {
    let d = tmp("bad");
    let o = sfbench(&["run", "--db", "/nonexistent/db.sfe"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("sfbench mkdb"), "{}", text(&o));
    let bad = d.join("bad.sfe");
    std::fs::write(&bad, vec![7u8; 8192]).unwrap();
    let o = sfbench(&["run", "--db", bad.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(text(&o).contains("not a database made by"), "{}", text(&o));
    let o = sfbench(&["mkdb", "--out", d.join("x").to_str().unwrap(), "--keys", "10", "--node-size", "1000"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("4096 or 512"), "{}", text(&o));
    let o = sfbench(&["run", "--db", bad.to_str().unwrap(), "--device-latency", "warp"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("optane"), "{}", text(&o));
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn byop_runs_a_clang_built_program_and_shows_verifier_rejections() {
    let d = tmp("byop");
    let db = mkdb(&d, "2000", "8");
    // An XRP-style lookup compiled here from the repository's source.
    let good = d.join("lookup.o");
    let src = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../bpf/btree_lookup.c")).unwrap();
    clang(&format!("#define SFE_BT_NODE_SIZE 512\n{src}"), &good);
    let scratch_in = d.join("in.bin");
    std::fs::write(&scratch_in, 20u64.to_le_bytes()).unwrap(); // key 20 = key_at(9)
    let scratch_out = d.join("out.bin");
    let root = {
        let f = std::fs::read(&db).unwrap();
        u64::from_le_bytes(f[8..16].try_into().unwrap())
    };
    let o = sfbench(&[
        "byop",
        "--prog",
        good.to_str().unwrap(),
        "--file",
        &db,
        "--offset",
        &root.to_string(),
        "--size",
        "512",
        "--data-size",
        "512",
        "--scratch-in",
        scratch_in.to_str().unwrap(),
        "--scratch-out",
        scratch_out.to_str().unwrap(),
    ]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("status: done"), "{t}");
    let out = std::fs::read(&scratch_out).unwrap();
    assert_eq!(out.len(), 4096);
    assert_eq!(u64::from_le_bytes(out[16..24].try_into().unwrap()), 1, "found");
    // A program that reads past the block is refused with the verifier's words.
    let bad = d.join("bad.o");
    clang("#include \"xrp.h\"\nSEC(\"xrp\") int f(struct bpf_xrp *ctx) { return ctx->data[5000]; }\nLICENSE(\"GPL\");\n", &bad);
    let o = sfbench(&["byop", "--prog", bad.to_str().unwrap(), "--file", &db]);
    assert!(!o.status.success());
    assert!(text(&o).contains("data block"), "{}", text(&o));
    // Not an ELF at all.
    let o = sfbench(&["byop", "--prog", db.as_str(), "--file", &db]);
    assert!(!o.status.success());
    assert!(!text(&o).contains("panicked"), "{}", text(&o));
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn suite_smoke_runs_every_point_and_writes_results() {
    let d = tmp("suite");
    let o = sfbench(&["suite", "--out", d.to_str().unwrap(), "--seconds", "0.1", "--threads", "1,2"]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("pread / bpf-chain"), "{t}");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(d.join("results.json")).unwrap()).unwrap();
    // 3 depths x 4 engines + 1 extra thread count x 4 engines + range and filter x 4 engines.
    assert_eq!(report["results"].as_array().unwrap().len(), 24);
    let _ = std::fs::remove_dir_all(&d);
}

/// Runs sfbench and returns its output and peak resident memory (KiB), from
/// wait4's rusage of that one child.
#[allow(clippy::zombie_processes)] // waited for with wait4, below
fn sfbench_rss(args: &[&str]) -> (Output, u64) {
    use std::os::unix::process::ExitStatusExt;
    let child = Command::new(env!("CARGO_BIN_EXE_sfbench")).args(args).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().expect("run sfbench");
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    use std::io::Read;
    let (mut so, mut se) = (child.stdout.unwrap(), child.stderr.unwrap());
    let t = std::thread::spawn(move || {
        let mut e = Vec::new();
        se.read_to_end(&mut e).unwrap();
        e
    });
    so.read_to_end(&mut out).unwrap();
    err.extend(t.join().unwrap());
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 writes it for our own child.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our child, not yet waited for (Child is never waited on).
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    assert_eq!(rc, pid);
    (Output { status: std::process::ExitStatus::from_raw(status), stdout: out, stderr: err }, u64::try_from(ru.ru_maxrss).unwrap())
}

#[test]
fn byop_reads_a_5_gib_file_in_place_in_flat_memory() {
    let d = tmp("byop-big");
    // A sparse 5 GiB file (on the file system of the temporary directory)
    // with a marker in its last block.
    let big = d.join("big.bin");
    let f = std::fs::File::create(&big).unwrap();
    let len = 5u64 << 30;
    f.set_len(len).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &0x5fe_5fe_5fe_u64.to_le_bytes(), len - 4096).unwrap();
    f.sync_all().unwrap();
    drop(f);
    let prog = d.join("first_word.o");
    clang("#include \"xrp.h\"\nSEC(\"xrp\") int f(struct bpf_xrp *ctx) { *(unsigned long long *)ctx->scratch = *(unsigned long long *)ctx->data; ctx->done = 1; return 0; }\nLICENSE(\"GPL\");\n", &prog);
    let off = (len - 4096).to_string();
    let (o, rss_kib) = sfbench_rss(&["byop", "--prog", prog.to_str().unwrap(), "--file", big.to_str().unwrap(), "--offset", &off]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("status: done") && t.contains("scratch[0..32] as u64: 0x5fe5fe5fe"), "{t}");
    assert!(rss_kib < 100 * 1024, "byop on a 5 GiB file peaked at {rss_kib} KiB resident (want < 100 MiB):\n{t}");
    eprintln!("byop on a sparse 5 GiB file: {rss_kib} KiB peak resident");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn byop_errors_are_said_once_and_blame_the_right_thing() {
    let d = tmp("byop-errors");
    let db = mkdb(&d, "2000", "8");
    let prog = d.join("lookup.o");
    let src = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../bpf/btree_lookup.c")).unwrap();
    clang(&format!("#define SFE_BT_NODE_SIZE 512\n{src}"), &prog);
    let p = prog.to_str().unwrap();
    // --hops-max is explained, with a default that fits XRP's batches.
    let o = sfbench(&["byop", "--help"]);
    let t = text(&o);
    assert!(t.contains("--hops-max") && t.contains("[default: 4096]") && t.contains("hop limit"), "{t}");
    // A bad flag is blamed on the flag, not on the program.
    for (flag, value) in [("--size", "100"), ("--data-size", "1000"), ("--offset", "7"), ("--hops-max", "0")] {
        let o = sfbench(&["byop", "--prog", p, "--file", &db, flag, value]);
        let t = text(&o);
        assert!(!o.status.success(), "{flag} {value}: {t}");
        assert!(t.contains(&format!("{flag} {value}")), "{flag} {value} not blamed: {t}");
        assert!(!t.contains("next_addr") && !t.contains("program"), "{flag} {value} blamed on the program: {t}");
    }
    let o = sfbench(&["byop", "--prog", p, "--file", &db, "--size", "8192", "--data-size", "4096"]);
    assert!(text(&o).contains("--size 8192 is larger than --data-size 4096"), "{}", text(&o));
    // A rejection is said once, and a too-small --data-size says what size is needed.
    let bad = d.join("bad.o");
    clang("#include \"xrp.h\"\nSEC(\"xrp\") int f(struct bpf_xrp *ctx) { ctx->done = 1; return ctx->data[5000]; }\nLICENSE(\"GPL\");\n", &bad);
    let o = sfbench(&["byop", "--prog", bad.to_str().unwrap(), "--file", &db]);
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert_eq!(t.matches("verifier rejected the program").count(), 1, "{t}");
    assert_eq!(t.matches("invalid access to data block").count(), 1, "{t}");
    assert!(t.contains("--data-size 5120"), "{t}");
    // Accepted at that size (the file's 512-byte nodes are read 4096 at a time here).
    let o = sfbench(&["byop", "--prog", bad.to_str().unwrap(), "--file", &db, "--data-size", "5120"]);
    assert!(!text(&o).contains("verifier rejected"), "{}", text(&o));
    // A missing file is said once.
    let o = sfbench(&["byop", "--prog", p, "--file", "/nonexistent/db"]);
    let t = text(&o);
    assert_eq!(t.matches("No such file").count(), 1, "{t}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn perf_runs_every_engine_with_writes_verified() {
    let d = tmp("perf");
    let json = d.join("p.json").to_string_lossy().into_owned();
    let charts = d.join("charts").to_string_lossy().into_owned();
    let o = sfbench(&[
        "perf",
        "-q",
        "1,4",
        "-o",
        "4k",
        "-w",
        "randrw",
        "-M",
        "50",
        "-t",
        "0.3",
        "-a",
        "0.05",
        "--size",
        "16M",
        "--verify",
        "--engines",
        "spdk-style,io_uring,psync",
        "-L",
        "--json",
        &json,
        "--charts",
        &charts,
    ]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    for e in ["spdk-style", "io_uring", "psync"] {
        assert!(t.lines().any(|l| l.starts_with(e)), "{e} missing in:\n{t}");
        assert!(t.contains(&format!("verify: {e} wrote 4096 blocks of 4096 B, read 4096 back: all match")), "{e} not verified:\n{t}");
    }
    assert!(t.contains("latency histogram: spdk-style qd 4"), "{t}");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let rs = report["results"].as_array().unwrap();
    assert_eq!(rs.len(), 6, "3 engines x 2 queue depths");
    for r in rs {
        assert!(r["reads"].as_u64().unwrap() > 0 && r["writes"].as_u64().unwrap() > 0, "{r}");
        assert_eq!(r["reads"], r["verified_reads"], "every timed read is compared: {r}");
        assert!(r["cpu_ns_per_io"].as_f64().unwrap() > 0.0, "{r}");
    }
    assert!(std::path::Path::new(&charts).join("perf_iops_vs_qd.png").exists());
    // The report command renders the same charts from the JSON.
    let o = sfbench(&["report", "--input", &json, "--out", &d.join("again").to_string_lossy()]);
    assert!(o.status.success() && text(&o).contains("perf_cpu_ns_per_io_vs_qd.svg"), "{}", text(&o));
    // A device model: the emulated controller serves a snapshot, the kernel engines wait it out.
    let o = sfbench(&["perf", "-q", "2", "-t", "0.2", "-a", "0", "--size", "16M", "--device-latency", "20", "--verify"]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("MODELLED") && t.contains("memory snapshot"), "{t}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn perf_bad_options_are_clear_errors() {
    let cases: [(&[&str], &str); 9] = [
        (&["-q", "5000", "--engines", "spdk-style"], "give a queue depth from 1 to 4095"),
        (&["-q", "5000", "--engines", "io_uring"], "give a queue depth from 1 to 4096"),
        (&["-o", "1000"], "multiple of the block size"),
        (&["--pci", "0000:00:04.0", "--engines", "spdk-style", "-w", "randwrite"], "--allow-write"),
        (&["--pci", "0000:00:04.0", "--engines", "spdk-style", "-w", "read", "--verify"], "--allow-write"),
        (&["-c", "0"], "give 1 to 64 threads"),
        (&["--engines", "aio"], "no well-kept Linux AIO crate"),
        (&["-w", "randrw"], "needs -M"),
        (&["-w", "read", "-F", "1.1"], "-F applies to the random patterns"),
    ];
    for (args, want) in cases {
        let mut v = vec!["perf"];
        v.extend_from_slice(args);
        let o = sfbench(&v);
        assert!(!o.status.success(), "{args:?} succeeded");
        assert!(text(&o).contains(want), "{args:?}: want {want:?} in:\n{}", text(&o));
    }
    // 512-byte I/Os on a device with 4 KiB logical blocks (zram as root; a file otherwise).
    let o = sfbench(&["perf", "-o", "512", "--size", "16M", "-t", "0.1"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("not a multiple of"), "{}", text(&o));
    // A --dev block device is not written without --allow-write (the check comes before any I/O).
    if std::path::Path::new("/dev/zram0").exists() {
        let o = sfbench(&["perf", "--dev", "/dev/zram0", "-w", "randwrite", "-t", "0.1"]);
        assert!(!o.status.success());
        assert!(text(&o).contains("--allow-write"), "{}", text(&o));
    }
}
