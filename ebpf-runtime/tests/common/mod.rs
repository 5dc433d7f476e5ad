//! Builds the C test programs of `bpf/tests` with clang for the tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Compiles `bpf/tests/<name>.c` into a fresh object and returns its path.
/// Fails (never skips) when clang is missing: CI installs it.
pub fn build_c(name: &str) -> PathBuf {
    build_c_with(name, &["-g0"])
}

/// Like [`build_c`], with extra clang arguments (e.g. `-g` for BTF).
pub fn build_c_with(name: &str, extra: &[&str]) -> PathBuf {
    let root = repo_root();
    let src = root.join("bpf/tests").join(format!("{name}.c"));
    let out_dir = std::env::temp_dir().join(format!("ebpf-runtime-tests-{}", std::process::id()));
    std::fs::create_dir_all(&out_dir).expect("create temp dir");
    let out = out_dir.join(format!("{name}{}.o", extra.join("")));
    let status = Command::new("clang")
        .args(["-target", "bpf", "-O2", "-mcpu=v3"])
        .args(extra)
        .arg("-I")
        .arg(root.join("bpf/include"))
        .arg("-c")
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .status()
        .unwrap_or_else(|e| panic!("cannot run clang ({e}): these tests need clang; run scripts/install-deps.sh"));
    assert!(status.success(), "clang failed on {}", src.display());
    out
}

pub fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
