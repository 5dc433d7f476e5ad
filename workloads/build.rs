//! Builds the bundled storage functions in `../bpf/` with clang, into OUT_DIR,
//! so the crate embeds them (`programs.rs`). clang is installed by
//! `scripts/install-deps.sh`.

use std::path::PathBuf;
use std::process::Command;

/// (source, output name, extra clang flags)
const PROGRAMS: &[(&str, &str, &[&str])] = &[
    ("btree_lookup.c", "btree_lookup_4k.o", &[]),
    ("btree_lookup.c", "btree_lookup_512.o", &["-DSFE_BT_NODE_SIZE=512"]),
    ("range_sum.c", "range_sum_4k.o", &[]),
    ("range_sum.c", "range_sum_512.o", &["-DSFE_BT_NODE_SIZE=512"]),
    ("filter_reduce.c", "filter_reduce.o", &[]),
];

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let bpf = manifest.join("../bpf");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang".to_string());
    println!("cargo:rerun-if-changed={}", bpf.join("include").display());
    println!("cargo:rerun-if-env-changed=CLANG");
    for (src, obj, flags) in PROGRAMS {
        println!("cargo:rerun-if-changed={}", bpf.join(src).display());
        let status = Command::new(&clang)
            .args(["-target", "bpf", "-O2", "-g0", "-Wall", "-Werror", "-I"])
            .arg(bpf.join("include"))
            .args(*flags)
            .arg("-c")
            .arg(bpf.join(src))
            .arg("-o")
            .arg(out.join(obj))
            .status();
        match status {
            Ok(s) if s.success() => {}
            Ok(s) => panic!("clang failed ({s}) building bpf/{src}; see the compiler output above"),
            Err(e) => panic!("cannot run `{clang}` ({e}) to build the bundled BPF programs: run `bash scripts/install-deps.sh` (installs clang), or set CLANG"),
        }
    }
}
