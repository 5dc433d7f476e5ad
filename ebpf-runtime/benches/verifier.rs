//! Verification time of realistic programs (the verifier's share of load
//! time): `cargo bench -p ebpf-runtime --bench verifier`. The instruction
//! vectors of `tests/verifier_common/programs.rs`, then clang-built objects
//! (`clang -target bpf -O2`, default CPU, as workloads/build.rs builds the
//! bundled programs): every `bpf/*.c` and the issue-15 binary search in
//! `tests/verifier_c/`. Needs clang (scripts/install-deps.sh).

#[path = "../tests/verifier_common/mod.rs"]
mod verifier_common;

use criterion::{criterion_group, criterion_main, Criterion};
use ebpf_runtime::loader::Program;
use ebpf_runtime::verifier::{verify, Env, Limits};
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use verifier_common::{maps, programs};

/// Builds `src` with clang at the default CPU and loads it.
fn clang_program(src: &Path, flags: &[&str]) -> Program {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::env::temp_dir().join(format!("verifier-bench-{}-{}.o", std::process::id(), src.file_stem().and_then(|s| s.to_str()).unwrap_or("prog")));
    let status = Command::new("clang")
        .args(["-target", "bpf", "-O2", "-g0", "-c", "-I"])
        .arg(root.join("../bpf/include"))
        .args(flags)
        .arg(src)
        .arg("-o")
        .arg(&out)
        .status()
        .expect("clang is needed for the verifier bench: run scripts/install-deps.sh");
    assert!(status.success(), "clang failed on {}", src.display());
    let bytes = std::fs::read(&out).expect("object written");
    let _ = std::fs::remove_file(&out);
    Program::load(&bytes, None).expect("loads")
}

fn bench(c: &mut Criterion) {
    let maps = maps();
    let env = Env { maps: &maps, data_size: 4096, scratch_size: 4096, limits: Limits::default() };
    let cases = [("btree_search", programs::btree_search()), ("filter_reduce_512", programs::filter_reduce()), ("map_lookup", programs::map_lookup())];
    for (name, prog) in &cases {
        c.bench_function(&format!("verify/{name}"), |b| b.iter(|| verify(black_box(prog), &env).expect("accepted")));
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bpf: PathBuf = root.join("../bpf");
    let clang_cases: [(&str, PathBuf, &[&str]); 6] = [
        ("bsearch512", root.join("tests/verifier_c/bsearch512.c"), &[]),
        ("btree_lookup_4k", bpf.join("btree_lookup.c"), &[]),
        ("btree_lookup_512", bpf.join("btree_lookup.c"), &["-DSFE_BT_NODE_SIZE=512"]),
        ("range_sum_4k", bpf.join("range_sum.c"), &[]),
        ("range_sum_512", bpf.join("range_sum.c"), &["-DSFE_BT_NODE_SIZE=512"]),
        ("filter_reduce", bpf.join("filter_reduce.c"), &[]),
    ];
    for (name, src, flags) in &clang_cases {
        let prog = clang_program(src, flags);
        let maps = prog.map_specs();
        let env = Env { maps: &maps, data_size: 4096, scratch_size: 4096, limits: Limits::default() };
        c.bench_function(&format!("verify/clang/{name}"), |b| {
            b.iter(|| verify(black_box(&prog.insns), &env).expect("accepted"));
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
