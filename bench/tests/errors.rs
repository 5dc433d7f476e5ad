//! Every error is said once, in the user's words, and names the fix: one
//! test per CLI error path checks the exact text (no repeated clause).

mod common;

use common::{clang, sfbench};
use std::path::{Path, PathBuf};
use std::process::Output;

/// The `error: ...` line of a failed run.
fn error_line(o: &Output) -> String {
    assert!(!o.status.success(), "expected a failure:\n{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!err.contains("panicked"), "a panic:\n{err}");
    err.lines().find(|l| l.starts_with("error")).unwrap_or_else(|| panic!("no error line in:\n{err}")).to_string()
}

/// The whole stderr of a failed run (for messages of several lines).
fn stderr(o: &Output) -> String {
    assert!(!o.status.success(), "expected a failure:\n{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!err.contains("panicked"), "a panic:\n{err}");
    err
}

/// No clause of the message appears twice.
fn said_once(line: &str) {
    let parts: Vec<&str> = line.split(": ").map(str::trim).filter(|p| p.len() > 3).collect();
    for (i, p) in parts.iter().enumerate() {
        assert!(!parts[i + 1..].contains(p), "\"{p}\" is said twice in: {line}");
    }
}

/// The error line of `args`, checked to be said once.
fn error_of(args: &[&str]) -> String {
    let e = error_line(&sfbench(args));
    said_once(&e);
    e
}

fn tmp(tag: &str) -> PathBuf {
    common::tmp("errors", tag)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A program that sets `done`: accepted at any data size.
const GOOD_PROG: &str = "#include \"xrp.h\"\nSEC(\"xrp\") int f(struct bpf_xrp *ctx) { ctx->done = 1; return 0; }\nLICENSE(\"GPL\");\n";

/// A 4096-byte file of zeros (a data file for byop).
fn data_file(d: &Path) -> PathBuf {
    let f = d.join("data.bin");
    std::fs::write(&f, vec![0u8; 4096]).unwrap();
    f
}

/// The clap error for an invalid value: its usage lines and the hint.
fn clap_invalid(value: &str, flag: &str, why: &str) -> String {
    format!("error: invalid value '{value}' for '{flag}': {why}\n\nFor more information, try '--help'.\n")
}

#[test]
fn mkdb_into_a_missing_directory_says_the_cause_once() {
    let e = error_of(&["mkdb", "--out", "/proc/nope/db.sfe", "--keys", "10"]);
    assert_eq!(e, "error: creating /proc/nope: No such file or directory (os error 2)");
}

#[test]
fn a_missing_database_names_the_command_that_makes_one() {
    let e = error_of(&["run", "--db", "/nonexistent/db.sfe", "--seconds", "0.1"]);
    assert_eq!(e, "error: opening the database /nonexistent/db.sfe (make one with sfbench mkdb): No such file or directory (os error 2)");
}

#[test]
fn a_missing_file_of_numbers_names_the_command_that_makes_one() {
    let e = error_of(&["run", "--nums", "/nonexistent/nums.bin", "--workload", "filter"]);
    assert_eq!(e, "error: reading /nonexistent/nums.bin (make one with sfbench mknums): No such file or directory (os error 2)");
}

#[test]
fn a_file_of_numbers_of_a_partial_block_is_refused() {
    let d = tmp("nums");
    let f = d.join("nums.bin");
    std::fs::write(&f, vec![1u8; 1000]).unwrap();
    let e = error_of(&["run", "--nums", s(&f), "--workload", "filter"]);
    assert_eq!(e, format!("error: {}: 1000 bytes is not a positive multiple of 4096; remake it with sfbench mknums", f.display()));
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_corrupt_database_is_blamed_on_the_file_and_names_the_command() {
    let d = tmp("corrupt");
    let short = d.join("short.sfe");
    std::fs::write(&short, vec![0u8; 100]).unwrap();
    let e = error_of(&["run", "--db", s(&short)]);
    assert_eq!(e, format!("error: {}: corrupt database: file shorter than a superblock; rebuild it with sfbench mkdb", short.display()));
    let magic = d.join("magic.sfe");
    std::fs::write(&magic, vec![7u8; 8192]).unwrap();
    let e = error_of(&["run", "--db", s(&magic)]);
    assert_eq!(e, format!("error: {}: not a database made by sfbench mkdb (bad magic 0x7070707 at offset 0); rebuild it with sfbench mkdb", magic.display()));
    // A real database cut short: the root node is past the end.
    let db = d.join("db.sfe");
    let o = sfbench(&["mkdb", "--out", s(&db), "--keys", "3000", "--keys-per-node", "8"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let bytes = std::fs::read(&db).unwrap();
    let root = u64::from_le_bytes(bytes[8..16].try_into().unwrap());
    let cut = d.join("cut.sfe");
    std::fs::write(&cut, &bytes[..4096]).unwrap();
    let e = error_of(&["run", "--db", s(&cut)]);
    assert_eq!(e, format!("error: {}: corrupt database: root offset {root} outside the 4096-byte file; rebuild it with sfbench mkdb", cut.display()));
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn byop_on_a_file_that_is_not_elf_says_so_once() {
    let d = tmp("notelf");
    let prog = d.join("prog.o");
    std::fs::write(&prog, b"this is not an object file\n").unwrap();
    let file = data_file(&d);
    let e = error_of(&["byop", "--prog", s(&prog), "--file", s(&file)]);
    assert_eq!(e, format!("error: {}: loading the BPF object: not a valid ELF object: Invalid ELF header size or alignment", prog.display()));
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn byop_names_the_sections_an_object_has() {
    let d = tmp("section");
    let prog = d.join("prog.o");
    clang(GOOD_PROG, &prog);
    let file = data_file(&d);
    let e = error_of(&["byop", "--prog", s(&prog), "--file", s(&file), "--section", "nope"]);
    assert_eq!(e, format!("error: {}: loading the BPF object: no program section `nope`; the object has: xrp", prog.display()));
    // An object with no program at all.
    let data_only = d.join("data.o");
    clang("int answer = 42;\n", &data_only);
    let e = error_of(&["byop", "--prog", s(&data_only), "--file", s(&file)]);
    assert_eq!(
        e,
        format!("error: {}: loading the BPF object: the object has no program section (a function in SEC(\"...\")) and no global function in .text", data_only.display())
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn byop_shows_a_verifier_rejection_once_with_the_data_size_that_works() {
    let d = tmp("verifier");
    let prog = d.join("bad.o");
    clang("#include \"xrp.h\"\nSEC(\"xrp\") int f(struct bpf_xrp *ctx) { ctx->done = 1; return ctx->data[5000]; }\nLICENSE(\"GPL\");\n", &prog);
    let file = data_file(&d);
    let err = stderr(&sfbench(&["byop", "--prog", s(&prog), "--file", s(&file)]));
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    said_once(lines[0]);
    let head = format!("error: {}: verifier rejected the program: invalid access to data block off=5000 size=1 (insn ", prog.display());
    assert!(lines[0].starts_with(&head), "{err}");
    assert_eq!(lines[1], "the verifier accepts it at --data-size 5120 (the smallest multiple of 512 that holds what it reads): run with --data-size 5120");
    // Past the largest data size, it says a larger one does not help.
    let far = d.join("far.o");
    clang("#include \"xrp.h\"\nSEC(\"xrp\") int f(struct bpf_xrp *ctx) { ctx->done = 1; return ctx->data[70000]; }\nLICENSE(\"GPL\");\n", &far);
    let err = stderr(&sfbench(&["byop", "--prog", s(&far), "--file", s(&file)]));
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    said_once(lines[0]);
    assert!(lines[0].starts_with(&format!("error: {}: verifier rejected the program: invalid access to data block off=70000 size=1 (insn ", far.display())), "{err}");
    assert_eq!(lines[1], "(a larger --data-size does not help: it is rejected at 65536 too)");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn byop_refuses_reads_outside_the_file_and_bad_sizes_with_the_valid_range() {
    let d = tmp("offsets");
    let prog = d.join("prog.o");
    clang(GOOD_PROG, &prog);
    let file = data_file(&d);
    let (p, f) = (s(&prog), s(&file));
    let cases: [(&[&str], String); 9] = [
        (&["--offset", "4096"], format!("--offset 4096 --size 4096 reads past the end of {f} (4096 bytes)")),
        (&["--offset", "512"], format!("--offset 512 --size 4096 reads past the end of {f} (4096 bytes)")),
        (&["--offset", "18446744073709551104", "--size", "512"], format!("--offset 18446744073709551104 --size 512 reads past the end of {f} (4096 bytes)")),
        (&["--offset", "100"], "--offset 100: must be a multiple of 512".to_string()),
        (&["--size", "0"], "--size 0: must be a positive multiple of 512 (the device block)".to_string()),
        (&["--data-size", "100"], "--data-size 100: must be a positive multiple of 512 up to 65536".to_string()),
        (&["--data-size", "131072"], "--data-size 131072: must be a positive multiple of 512 up to 65536".to_string()),
        (&["--hops-max", "0"], "--hops-max 0: must be between 1 and 1048576".to_string()),
        (&["--size", "8192"], "--size 8192 is larger than --data-size 4096 (the block the program is verified for); raise --data-size or lower --size".to_string()),
    ];
    for (extra, want) in cases {
        let mut args = vec!["byop", "--prog", p, "--file", f];
        args.extend_from_slice(extra);
        assert_eq!(error_of(&args), format!("error: {want}"), "{extra:?}");
    }
    // A file shorter than one block.
    let tiny = d.join("tiny.bin");
    std::fs::write(&tiny, b"abc").unwrap();
    assert_eq!(error_of(&["byop", "--prog", p, "--file", s(&tiny)]), format!("error: {} holds 3 bytes: less than one 512-byte block", tiny.display()));
    // Scratch larger than the scratch.
    let big = d.join("scratch.bin");
    std::fs::write(&big, vec![0u8; 5000]).unwrap();
    assert_eq!(
        error_of(&["byop", "--prog", p, "--file", f, "--scratch-in", s(&big)]),
        format!("error: --scratch-in {}: 5000 bytes; the scratch holds at most 4096", big.display())
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn byop_missing_inputs_are_said_once() {
    let d = tmp("byop-missing");
    let prog = d.join("prog.o");
    clang(GOOD_PROG, &prog);
    let file = data_file(&d);
    assert_eq!(error_of(&["byop", "--prog", "/nonexistent/p.o", "--file", s(&file)]), "error: reading /nonexistent/p.o: No such file or directory (os error 2)");
    assert_eq!(error_of(&["byop", "--prog", s(&prog), "--file", "/nonexistent/db"]), "error: opening /nonexistent/db: No such file or directory (os error 2)");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn report_on_a_missing_or_corrupt_results_file() {
    let d = tmp("report");
    assert_eq!(error_of(&["report", "--input", "/nonexistent/r.json"]), "error: cannot read benchmark results from /nonexistent/r.json: No such file or directory (os error 2)");
    let bad = d.join("r.json");
    std::fs::write(&bad, "not json").unwrap();
    assert_eq!(
        error_of(&["report", "--input", s(&bad)]),
        format!("error: {} is not a results file written by `sfbench run` (JSON with command, machine, results): expected ident at line 1 column 2", bad.display())
    );
    std::fs::write(&bad, "{\"command\": \"x\"}").unwrap();
    assert_eq!(
        error_of(&["report", "--input", s(&bad)]),
        format!("error: {} is not a results file written by `sfbench run` (JSON with command, machine, results): missing field `machine` at line 1 column 16", bad.display())
    );
    std::fs::write(&bad, "{\"kind\": \"perf\", \"command\": \"x\"}").unwrap();
    assert_eq!(error_of(&["report", "--input", s(&bad)]), format!("error: {} is not a results file written by `sfbench perf`: missing field `machine`", bad.display()));
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn perf_bad_options_are_refused_with_the_valid_range() {
    let cases: [(&[&str], &str); 9] = [
        (&["-o", "1000"], "-o 1000: the I/O size must be a multiple of the block size (512 bytes or the device's logical block)"),
        (&["-o", "2M"], "-o 2097152: at most 1048576 bytes per I/O"),
        (&["-q", "0"], "-q 0: give a queue depth from 1 to 4095 (a queue pair of the emulated controller holds at most 4095 I/Os)"),
        (&["-q", "0", "--engines", "psync"], "-q 0: give a queue depth of 1 or more"),
        (&["-q", "4096"], "-q 4096: give a queue depth from 1 to 4095 (a queue pair of the emulated controller holds at most 4095 I/Os)"),
        (&["-q", "5000", "--engines", "io_uring"], "-q 5000: give a queue depth from 1 to 4096 (an io_uring ring here holds at most 4096 I/Os)"),
        (&["-c", "0"], "-c/--threads 0: give 1 to 64 threads"),
        (&["-w", "randrw"], "-w randrw needs -M, the read percentage (0-100)"),
        (&["-w", "randread", "-F", "0"], "-F 0: the Zipf theta must be above 0"),
    ];
    for (args, want) in cases {
        let mut v = vec!["perf"];
        v.extend_from_slice(args);
        assert_eq!(error_of(&v), format!("error: {want}"), "{args:?}");
    }
    let err = stderr(&sfbench(&["perf", "-w", "sideways"]));
    assert_eq!(
        err,
        "error: invalid value 'sideways' for '--pattern <PATTERN>'\n  [possible values: read, randread, write, randwrite, rw, randrw]\n\nFor more information, try '--help'.\n"
    );
    assert_eq!(stderr(&sfbench(&["perf", "-t", "inf"])), clap_invalid("inf", "--time <TIME>", "give seconds above 0, at most 86400"));
    assert_eq!(stderr(&sfbench(&["perf", "-t", "0"])), clap_invalid("0", "--time <TIME>", "give seconds above 0, at most 86400"));
    assert_eq!(stderr(&sfbench(&["perf", "-o", "lots"])), clap_invalid("lots", "--io-size <IO_SIZE>", "\"lots\": expected bytes such as 4096, 4k or 1MiB"));
}

#[test]
fn setup_refuses_a_bad_pci_address_with_the_form_it_takes() {
    let want = "error: \"zz\" is not a PCI address; write it as domain:bus:device.function, e.g. 0000:01:00.0 (see lspci -D)";
    assert_eq!(error_of(&["setup", "--bind", "zz"]), want);
    assert_eq!(error_of(&["setup", "--reset", "zz"]), want);
    assert_eq!(
        error_of(&["setup", "--bind", "0000:ff:1f.7"]),
        "error: PCI device 0000:ff:1f.7 not found (/sys/bus/pci/devices/0000:ff:1f.7 does not exist); list devices with `lspci -D` and pass the full address like 0000:01:00.0"
    );
    // Our driver on a controller that is not there, or not an address.
    assert_eq!(
        error_of(&["perf", "--pci", "0000:ff:1f.7", "--engines", "spdk-style", "-t", "0.1"]),
        "error: PCI device 0000:ff:1f.7 not found (/sys/bus/pci/devices/0000:ff:1f.7 does not exist); list devices with `lspci -D` and pass the full address like 0000:01:00.0"
    );
    assert_eq!(error_of(&["perf", "--pci", "zz", "--engines", "spdk-style", "-t", "0.1"]), want);
}

#[test]
fn mkdb_and_mknums_refuse_nonsense_sizes_with_the_valid_range() {
    let d = tmp("mkdb");
    let out = d.join("db.sfe");
    let o = s(&out);
    assert_eq!(error_of(&["mkdb", "--out", o, "--keys", "0"]), "error: --keys 0: give 1 or more keys");
    assert_eq!(error_of(&["mkdb", "--out", o, "--keys", "10", "--node-size", "1000"]), "error: --node-size 1000: give 4096 or 512 (the sizes the bundled programs are built for)");
    assert_eq!(error_of(&["mkdb", "--out", o, "--keys", "10", "--keys-per-node", "1"]), "error: --keys-per-node 1: give 2 to 255 for 4096-byte nodes");
    assert_eq!(error_of(&["mkdb", "--out", o, "--keys", "10", "--node-size", "512", "--keys-per-node", "32"]), "error: --keys-per-node 32: give 2 to 31 for 512-byte nodes");
    assert_eq!(error_of(&["mknums", "--out", s(&d.join("n.bin")), "--mib", "0"]), "error: --mib 0: give 1 or more MiB");
    assert_eq!(
        error_of(&["mkdb", "--out", o, "--keys", "18446744073709551615"]),
        "error: --keys 18446744073709551615: give at most 17112760320 keys at 255 keys per node (the builder holds at most 67108864 leaves)"
    );
    assert!(!out.exists());
    // The most keys the builder takes need about 257 GiB of 4 KiB nodes:
    // more than a RAM file system holds, so the run stops before writing.
    let shm = Path::new("/dev/shm").join(format!("sfbench-errors-{}.sfe", std::process::id()));
    let e = error_of(&["mkdb", "--out", s(&shm), "--keys", "17112760320"]);
    assert!(e.starts_with("error: --keys 17112760320: the database needs 257.0 GiB and /dev/shm has "), "{e}");
    assert!(e.ends_with(" GiB free; give fewer keys or another --out"), "{e}");
    assert!(!shm.exists());
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn unknown_engine_and_workload_names_list_the_known_ones() {
    assert_eq!(
        stderr(&sfbench(&["run", "--db", "x.sfe", "--engines", "pread,warp"])),
        "error: invalid value 'warp' for '--engines <ENGINES>'\n  [possible values: pread, io-uring, user-chain, bpf-chain]\n\nFor more information, try '--help'.\n"
    );
    assert_eq!(
        stderr(&sfbench(&["run", "--db", "x.sfe", "--workload", "sort"])),
        "error: invalid value 'sort' for '--workload <WORKLOAD>'\n  [possible values: lookup-uniform, lookup-zipf, range, filter]\n\nFor more information, try '--help'.\n"
    );
    assert_eq!(
        stderr(&sfbench(&["perf", "--engines", "spdk"])),
        "error: invalid value 'spdk' for '--engines <ENGINES>'\n  [possible values: spdk-style, io_uring, psync, aio]\n\n  tip: a similar value exists: 'spdk-style'\n\nFor more information, try '--help'.\n"
    );
    assert_eq!(
        stderr(&sfbench(&["run", "--db", "x.sfe", "--device-latency", "warp"])),
        clap_invalid("warp", "--device-latency <DEVICE_LATENCY>", "device latency \"warp\": expected none, optane, nand, or microseconds such as 3.2")
    );
}

#[test]
fn nonsense_numbers_are_refused_with_the_valid_range() {
    for (args, value, flag, why) in [
        (&["run", "--db", "x.sfe", "--qd", "0"][..], "0", "--qd <QD>", "0 is not in 1..=256"),
        (&["run", "--db", "x.sfe", "--qd", "100000"][..], "100000", "--qd <QD>", "100000 is not in 1..=256"),
        (&["run", "--db", "x.sfe", "--reactors", "0"][..], "0", "--reactors <REACTORS>", "0 is not in 1..=64"),
        (&["run", "--db", "x.sfe", "--threads", "0"][..], "0", "--threads <THREADS>", "0 is not in 1..=4096"),
        (&["run", "--db", "x.sfe", "--threads", "1,5000"][..], "5000", "--threads <THREADS>", "5000 is not in 1..=4096"),
        (&["run", "--db", "x.sfe", "--range-keys", "0"][..], "0", "--range-keys <RANGE_KEYS>", "0 is not in 1..=1000000"),
        (&["run", "--db", "x.sfe", "--range-keys", "18446744073709551615"][..], "18446744073709551615", "--range-keys <RANGE_KEYS>", "18446744073709551615 is not in 1..=1000000"),
        (&["run", "--db", "x.sfe", "--seconds", "inf"][..], "inf", "--seconds <SECONDS>", "give seconds above 0, at most 86400"),
        (&["run", "--db", "x.sfe", "--seconds", "NaN"][..], "NaN", "--seconds <SECONDS>", "give seconds above 0, at most 86400"),
        (&["run", "--db", "x.sfe", "--warmup=-1"][..], "-1", "--warmup <WARMUP>", "give seconds from 0 to 86400"),
        (&["suite", "--threads", "1,0"][..], "0", "--threads <THREADS>", "0 is not in 1..=4096"),
        (&["suite", "--seconds", "1e300"][..], "1e300", "--seconds <SECONDS>", "give seconds above 0, at most 86400"),
        (&["suite", "--scan-qd", "0"][..], "0", "--scan-qd <SCAN_QD>", "0 is not in 1..=256"),
    ] {
        assert_eq!(stderr(&sfbench(args)), clap_invalid(value, flag, why), "{args:?}");
    }
    assert_eq!(error_of(&["demo", "--qd", "0"]), "error: --qd 0: give 1 to 1024");
    assert_eq!(error_of(&["demo", "--qd", "2000"]), "error: --qd 2000: give 1 to 1024");
    assert_eq!(error_of(&["demo", "--io-size", "100"]), "error: --io-size 100: give a positive multiple of 4096");
}
