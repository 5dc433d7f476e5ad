//! Helpers shared by the `sfbench` end-to-end tests.

// Each test binary uses its own subset.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs the `sfbench` binary under test.
pub fn sfbench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sfbench")).args(args).output().expect("run sfbench")
}

/// A fresh directory for one test, named after the test binary and `tag`.
pub fn tmp(binary: &str, tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sfbench-{binary}-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A BPF object compiled from `src` with the repository's headers.
pub fn clang(src: &str, out: &Path) {
    let inc = concat!(env!("CARGO_MANIFEST_DIR"), "/../bpf/include");
    let c = out.with_extension("c");
    std::fs::write(&c, src).unwrap();
    let o = Command::new("clang")
        .args(["-target", "bpf", "-O2", "-I", inc, "-c"])
        .arg(&c)
        .arg("-o")
        .arg(out)
        .output()
        .expect("clang must be installed: run bash scripts/install-deps.sh");
    assert!(o.status.success(), "clang: {}", String::from_utf8_lossy(&o.stderr));
}
