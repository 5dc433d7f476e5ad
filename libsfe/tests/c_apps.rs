//! XRP-style applications in C, built with the system compiler, on a
//! database file on ext4 on a RAM-backed block device (a fresh zram or loop
//! device made and removed by the test): the same source linked against
//! libsfe and, unchanged, under `LD_PRELOAD=libsfe_xrp.so`, each answer
//! checked against plain reads; and libsfe's error paths from C. Needs root
//! (the block device and the mount).

use fs_extents::scratch::{Prefer, ScratchFs};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Where cargo put the libraries: target/<profile>, two levels above this test.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent().and_then(Path::parent).expect("target/<profile>/deps/<test>").to_path_buf()
}

fn manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn run(cmd: &mut Command) -> Output {
    let o = cmd.output().unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    o
}

fn must(cmd: &mut Command) -> Output {
    let o = run(cmd);
    assert!(o.status.success(), "{cmd:?} failed:\n{}", text(&o));
    o
}

/// The pkg-config file for the libraries in `lib`, written into `dir`.
fn pc_file(dir: &Path, lib: &Path) {
    let tmpl = std::fs::read_to_string(manifest().join("sfe.pc.in")).expect("sfe.pc.in");
    let inc = manifest().join("include").canonicalize().expect("libsfe/include");
    let pc = tmpl.replace("@PREFIX@", &lib.display().to_string()).replace("@INCLUDEDIR@", &inc.display().to_string()).replace("@LIBDIR@", &lib.display().to_string());
    std::fs::write(dir.join("sfe.pc"), pc).expect("write sfe.pc");
}

fn pkg_config(dir: &Path) -> Vec<String> {
    let o = must(Command::new("pkg-config").args(["--cflags", "--libs", "sfe"]).env("PKG_CONFIG_PATH", dir));
    String::from_utf8_lossy(&o.stdout).split_whitespace().map(String::from).collect()
}

fn bpf(src: &Path, out: &Path) {
    let inc = manifest().join("../bpf/include");
    must(Command::new("clang").args(["-target", "bpf", "-O2", "-DSFE_BT_NODE_SIZE=512", "-I"]).arg(&inc).arg("-c").arg(src).arg("-o").arg(out));
}

struct Built {
    dir: PathBuf,
    app_sfe: PathBuf,
    app_xrp: PathBuf,
    errors: PathBuf,
    lookup: PathBuf,
    range: PathBuf,
    bad: PathBuf,
    shim: PathBuf,
}

/// The preload shim, a separate package: built here (same profile and
/// target directory) when `cargo test -p libsfe` has not built it.
fn shim(lib: &Path) -> PathBuf {
    let so = lib.join("libsfe_xrp.so");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut c = Command::new(cargo);
    c.args(["build", "--offline", "-p", "libsfe-xrp"]).current_dir(manifest());
    if lib.file_name().is_some_and(|p| p == "release") {
        c.arg("--release");
    }
    if let Some(t) = lib.parent() {
        c.env("CARGO_TARGET_DIR", t);
    }
    must(&mut c);
    assert!(so.exists(), "{} missing after building libsfe-xrp", so.display());
    so
}

fn build(tag: &str) -> Built {
    let target = target_dir();
    // `cargo build` puts libsfe.so in target/<profile>; `cargo test` leaves it in deps/.
    let lib = [target.clone(), target.join("deps")]
        .into_iter()
        .find(|d| d.join("libsfe.so").exists())
        .unwrap_or_else(|| panic!("libsfe.so is in neither {0} nor {0}/deps", target.display()));
    let shim = shim(&target);
    let dir = std::env::temp_dir().join(format!("sfe-c-apps-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let c = manifest().join("tests/c");
    pc_file(&dir, &lib);
    let flags = pkg_config(&dir);
    let b = Built {
        app_sfe: dir.join("xrp_app_sfe"),
        app_xrp: dir.join("xrp_app"),
        errors: dir.join("errors"),
        lookup: dir.join("btree_lookup_512.o"),
        range: dir.join("range_batch.o"),
        bad: dir.join("bad.o"),
        shim,
        dir,
    };
    // (a) linked against libsfe, through its pkg-config file.
    must(Command::new("cc").args(["-O2", "-Wall", "-Werror", "-DUSE_LIBSFE"]).arg(c.join("xrp_app.c")).arg("-o").arg(&b.app_sfe).args(&flags));
    must(Command::new("cc").args(["-O2", "-Wall", "-Werror"]).arg(c.join("errors.c")).arg("-o").arg(&b.errors).args(&flags));
    // (b) as written for XRP, linked against a stock libbpf's loader.
    must(Command::new("cc").args(["-O2", "-Wall", "-Werror", "-shared", "-fPIC"]).arg(c.join("stub_libbpf.c")).arg("-o").arg(b.dir.join("libbpfstub.so")));
    must(
        Command::new("cc")
            .args(["-O2", "-Wall", "-Werror"])
            .arg(c.join("xrp_app.c"))
            .arg("-o")
            .arg(&b.app_xrp)
            .arg(format!("-L{}", b.dir.display()))
            .arg(format!("-Wl,-rpath,{}", b.dir.display()))
            .arg("-lbpfstub"),
    );
    std::fs::write(&b.lookup, workloads::programs::BTREE_LOOKUP_512).unwrap();
    bpf(&c.join("range_batch.c"), &b.range);
    bpf(&c.join("bad.c"), &b.bad);
    b
}

/// A 512-byte-node database of `keys` keys, 8 per node (depth 5 at 20,000).
fn database(fs: &ScratchFs, name: &str, keys: u64) -> PathBuf {
    let db = fs.mount_point().join(name);
    workloads::btree::build_file(&db, keys, 512, 8, 7, |_| {}).expect("build the database");
    db
}

#[test]
fn xrp_app_linked_and_preloaded_answers_match_plain_reads() {
    let b = build("app");
    let fs = ScratchFs::create(64 << 20, Prefer::Any).expect("a scratch ext4 on a RAM-backed block device (root needed)");
    let db = database(&fs, "db.sfe", 20_000);
    fs.sync().unwrap();
    let dev = fs.device().to_path_buf();
    let args = |c: &mut Command| {
        c.arg(&db).arg(&b.lookup).arg(&b.range).arg("400");
    };

    // (a) linked against libsfe.
    let mut c = Command::new(&b.app_sfe);
    args(&mut c);
    let linked = must(c.arg(&dev));
    let linked_out = String::from_utf8_lossy(&linked.stdout).to_string();
    eprintln!("linked: {linked_out}");
    assert!(linked_out.starts_with("ok lookups=400"), "{}", text(&linked));

    // (b) the XRP build without the shim: a stock kernel has no XRP.
    let mut c = Command::new(&b.app_xrp);
    args(&mut c);
    let stock = run(&mut c);
    assert!(!stock.status.success() && text(&stock).contains("Failed to load bpf program"), "{}", text(&stock));

    // (b) unchanged, under the shim: the same answers.
    let mut c = Command::new(&b.app_xrp);
    args(&mut c);
    let pre = must(c.env("LD_PRELOAD", &b.shim).env("SFE_DEVICE", &dev).env("SFE_HUGEMEM", "32"));
    assert_eq!(String::from_utf8_lossy(&pre.stdout), linked_out, "{}", text(&pre));

    // Under the shim without SFE_DEVICE: said clearly, once.
    let mut c = Command::new(&b.app_xrp);
    args(&mut c);
    let no_dev = run(c.env("LD_PRELOAD", &b.shim).env_remove("SFE_DEVICE"));
    let t = text(&no_dev);
    assert!(!no_dev.status.success(), "{t}");
    assert_eq!(t.matches("SFE_DEVICE is not set").count(), 1, "{t}");

    // Under the shim with a program the verifier rejects: the message on stderr.
    let mut c = Command::new(&b.app_xrp);
    let rej = run(c.arg(&db).arg(&b.bad).arg(&b.range).arg("1").env("LD_PRELOAD", &b.shim).env("SFE_DEVICE", &dev));
    assert!(!rej.status.success() && text(&rej).contains("verifier"), "{}", text(&rej));

    fs.close().expect("remove the scratch file system");
    let _ = std::fs::remove_dir_all(&b.dir);
}

#[test]
fn error_paths_from_c() {
    let b = build("errors");
    let fs = ScratchFs::create(64 << 20, Prefer::Any).expect("a scratch ext4 on a RAM-backed block device (root needed)");
    let db = database(&fs, "grow.sfe", 5_000);
    fs.sync().unwrap();
    // A file that is not on the engine's device.
    let other = b.dir.join("elsewhere.bin");
    std::fs::write(&other, vec![0u8; 8192]).unwrap();
    let o = run(Command::new(&b.errors).arg(&db).arg(fs.device()).arg(&b.lookup).arg(&b.bad).arg(&other));
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains("ok errors"), "{}", text(&o));
    fs.close().expect("remove the scratch file system");
    let _ = std::fs::remove_dir_all(&b.dir);
}
