//! The main job's test bed end to end: as root, a zram (or loop) device with
//! ext4 made by the run, every engine's answers checked through the files'
//! extents, and nothing left mounted or attached afterwards, also when the
//! run is interrupted; without root, the labelled fallback.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn sfbench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sfbench"))
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").ok().and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0"))).unwrap_or(false)
}

/// Skips a root-only test, or fails it when CI demands it.
fn need_root() -> bool {
    if is_root() {
        return true;
    }
    assert!(std::env::var("FS_EXTENTS_REQUIRE_MOUNT").as_deref() != Ok("1"), "FS_EXTENTS_REQUIRE_MOUNT=1 but not root");
    eprintln!("SKIPPED: needs root (block devices and mounts)");
    false
}

fn tmp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sfbench-bed-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The device and mount point a run reported making ("bed: ext4 on zram
/// (/dev/zram1, 256 MiB) mounted on /run/sfe-scratch/123-0").
fn made(t: &str) -> (String, String) {
    let l = t.lines().find(|l| l.starts_with("bed: ext4 on") && l.contains(" mounted on ")).unwrap_or_else(|| panic!("no bed line in:\n{t}"));
    let dev = l.split('(').nth(1).and_then(|r| r.split(',').next()).unwrap().to_string();
    let mnt = l.rsplit(" mounted on ").next().unwrap().to_string();
    (dev, mnt)
}

/// Whether a device or mount a run made is still there (other processes'
/// devices are not looked at: tests elsewhere may make their own).
fn still_there((dev, mnt): &(String, String)) -> Option<String> {
    let name = dev.trim_start_matches("/dev/");
    let mounted = std::fs::read_to_string("/proc/self/mounts").unwrap().lines().any(|l| l.split(' ').nth(1) == Some(mnt.as_str()));
    if mounted {
        return Some(format!("{mnt} is still mounted"));
    }
    if Path::new(mnt).exists() {
        return Some(format!("{mnt} still exists"));
    }
    let attached = if name.starts_with("loop") {
        std::fs::read_to_string(format!("/sys/block/{name}/loop/backing_file")).is_ok_and(|b| b.contains("sfe-scratch"))
    } else {
        Path::new(&format!("/sys/block/{name}")).exists() && std::fs::read_to_string(format!("/sys/block/{name}/disksize")).is_ok_and(|s| s.trim() != "0")
    };
    attached.then(|| format!("{dev} is still attached"))
}

/// The suite, small: two thread counts, short points.
fn suite_args(out: &Path) -> Vec<String> {
    ["suite", "--out", &out.to_string_lossy(), "--seconds", "0.15", "--warmup", "0.05", "--threads", "1,2", "--scan-qd", "2"].iter().map(|s| s.to_string()).collect()
}

// Tests that make devices run one at a time (each makes and removes its own).
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn suite_on_a_kernel_block_device_checks_every_engine_and_cleans_up() {
    if !need_root() {
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let out = tmp("suite");
    let o = sfbench().args(suite_args(&out)).output().unwrap();
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("bed: ext4 on zram") || t.contains("bed: ext4 on loop"), "no kernel block device:\n{t}");
    assert!(!t.contains("FALLBACK"), "{t}");
    // Every engine ran every workload, with answers checked (a mismatch fails the run).
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap();
    let rows = report["results"].as_array().unwrap();
    for w in ["lookup-uniform", "range", "filter"] {
        for e in ["pread", "io_uring", "user-chain", "bpf-chain"] {
            assert!(rows.iter().any(|r| r["workload"] == w && r["engine"] == e), "{e} {w} missing");
        }
    }
    for r in rows {
        let dev = r["device"].as_str().unwrap();
        assert!(dev.contains("ext4 on /dev/zram") || dev.contains("ext4 on /dev/loop"), "{dev}");
        if r["engine"] == "pread" {
            assert!(dev.ends_with("O_DIRECT"), "{dev}");
        }
        if r["engine"] == "bpf-chain" && r["threads"] == 1 {
            assert_eq!(r["how"], "inline", "one client thread runs to completion");
        }
    }
    // The bypass engines translated through the fragmented files' extents.
    assert!(t.contains("extents on /dev/") && t.contains("the ext4 reader agrees"), "{t}");
    let frag =
        t.lines().filter(|l| l.contains("db-depth6.sfe through")).find_map(|l| l.split(" through ").nth(1)?.split(' ').next()?.parse::<usize>().ok()).expect("the depth-6 note");
    assert!(frag > 1, "the depth-6 database is fragmented: {frag} extents");
    assert!(out.join("latency_vs_depth.svg").exists());
    assert_eq!(still_there(&made(&t)), None, "the suite left a device or mount behind:\n{t}");
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn an_interrupted_suite_unmounts_and_removes_its_device() {
    if !need_root() {
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let out = tmp("sigint");
    let mut args = suite_args(&out);
    args[4] = "3".into(); // long points, so the signal lands mid-measurement
    let mut child = sfbench().args(args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let err = BufReader::new(child.stderr.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for l in err.lines().map_while(Result::ok) {
            if l.starts_with("bed: ext4 on") {
                let _ = tx.send(made(&l));
            }
            all.push_str(&l);
            all.push('\n');
        }
        all
    });
    let bed = rx.recv_timeout(Duration::from_secs(120)).expect("the suite made its device");
    // Let it get into a measurement.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(still_there(&bed).is_some(), "the device is there while the suite runs");
    assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "the suite did not stop within 30 s of Ctrl-C");
        std::thread::sleep(Duration::from_millis(50));
    };
    let t = reader.join().unwrap();
    assert!(!status.success(), "an interrupted run fails:\n{t}");
    assert!(t.contains("interrupted") && t.contains("bed: unmounted and removed"), "{t}");
    assert_eq!(still_there(&bed), None, "the interrupted suite left a device or mount behind:\n{t}");
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn without_root_the_suite_falls_back_and_says_so() {
    let out = tmp("noroot");
    let mut cmd = if is_root() {
        // Drop to nobody for this run (setpriv is util-linux's).
        let _ = Command::new("chmod").args(["-R", "a+rwx", &out.to_string_lossy()]).status();
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", env!("CARGO_BIN_EXE_sfbench")]);
        c
    } else {
        sfbench()
    };
    let o = cmd.args(suite_args(&out)).args(["--threads", "1"]).output().unwrap();
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("bed: NO kernel block device") && t.contains("root"), "{t}");
    assert!(t.contains("bed: page cache, no block device (FALLBACK:"), "{t}");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap();
    for r in report["results"].as_array().unwrap() {
        if r["engine"] == "pread" {
            assert!(r["device"].as_str().unwrap().ends_with("page cache"), "{}", r["device"]);
        }
    }
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn a_file_without_extents_gets_a_clear_error_or_the_file_namespace() {
    // tmpfs has no FIEMAP: --namespace device refuses, auto serves the file itself.
    let d = PathBuf::from("/dev/shm").join(format!("sfbench-noext-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    let db = d.join("db.sfe");
    let o = sfbench().args(["mkdb", "--out", &db.to_string_lossy(), "--keys", "500", "--keys-per-node", "8"]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let base = ["run", "--db", &db.to_string_lossy(), "--engines", "bpf-chain", "--seconds", "0.1", "--warmup", "0"].map(String::from);
    let o = sfbench().args(&base).args(["--namespace", "device"]).output().unwrap();
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(t.contains("FIEMAP") && t.matches("FIEMAP").count() <= 2, "one clear error naming FIEMAP:\n{t}");
    let o = sfbench().args(&base).output().unwrap();
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("namespace = the file itself"), "{t}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_database_that_changes_during_the_run_stops_it() {
    let d = tmp("change");
    let db = d.join("db.sfe");
    let o = sfbench().args(["mkdb", "--out", &db.to_string_lossy(), "--keys", "500", "--keys-per-node", "8"]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let child = sfbench()
        .args(["run", "--db", &db.to_string_lossy(), "--engines", "bpf-chain", "--seconds", "2", "--warmup", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    // Grow the file: its change stamp moves (the blocks already there do not).
    let f = std::fs::OpenOptions::new().append(true).open(&db).unwrap();
    std::io::Write::write_all(&mut &f, &[0u8; 4096]).unwrap();
    drop(f);
    let o = child.wait_with_output().unwrap();
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(t.contains("changed during the run"), "{t}");
    let _ = std::fs::remove_dir_all(&d);
}
