//! Runtime benchmarks: call overhead of an empty program, a B+-tree node
//! search over a 4 KiB block (JIT, interpreter, native Rust), and load time
//! (parse + verify + JIT) of each bundled program (`bpf/*.c`) and test
//! program (`bpf/tests/*.c`).
//!
//! `cargo bench -p ebpf-runtime --bench runtime -- --warm-up-time 1 --measurement-time 3`
//! Needs clang (scripts/install-deps.sh): the programs are built at start.

// Test code: sizes and offsets are small; casts are checked by the assertions.
#![allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap, clippy::cast_sign_loss)]

use std::hint::black_box;
use std::path::PathBuf;
use std::process::Command;

use criterion::{criterion_group, criterion_main, Criterion};
use ebpf_runtime::context::SCRATCH_SIZE;
use ebpf_runtime::{Engine, Instance, Program, XrpContext};

const BLOCK: usize = 4096;
const NODE_KEYS: usize = 255;
const VALUES_OFF: usize = 2048;
/// Sources under `bpf/`: the bundled storage functions and the test programs.
const PROGRAMS: [&str; 10] =
    ["btree_lookup", "range_sum", "filter_reduce", "tests/empty", "tests/node_search", "tests/map_user", "tests/globals", "tests/calls", "tests/counter", "tests/alias"];

fn build(name: &str) -> Vec<u8> {
    build_path(&format!("tests/{name}"))
}

fn build_path(name: &str) -> Vec<u8> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = std::env::temp_dir().join(format!("ebpf-runtime-bench-{}-{}.o", name.replace('/', "-"), std::process::id()));
    let status = Command::new("clang")
        .args(["-target", "bpf", "-O2", "-g0", "-mcpu=v3", "-I"])
        .arg(root.join("bpf/include"))
        .arg("-c")
        .arg(root.join("bpf").join(format!("{name}.c")))
        .arg("-o")
        .arg(&out)
        .status()
        .expect("clang is needed for the benchmarks: run scripts/install-deps.sh");
    assert!(status.success(), "clang failed on {name}.c");
    std::fs::read(&out).expect("read object")
}

fn node() -> Vec<u8> {
    let mut b = vec![0u8; BLOCK];
    for i in 0..NODE_KEYS {
        let k = (i as u64 + 1) * 10;
        b[i * 8..i * 8 + 8].copy_from_slice(&k.to_le_bytes());
        b[VALUES_OFF + i * 8..VALUES_OFF + i * 8 + 8].copy_from_slice(&(k + 1).to_le_bytes());
    }
    b
}

fn word(b: &[u8], i: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[i * 8..i * 8 + 8]);
    u64::from_le_bytes(w)
}

/// The same step as bpf/tests/node_search.c, in Rust.
fn native_node_search(data: &[u8], scratch: &mut [u8], ctx: &mut XrpContext) -> u64 {
    let key = word(scratch, 0);
    let (mut lo, mut hi) = (0usize, NODE_KEYS);
    for _ in 0..8 {
        let mid = (lo + hi) >> 1;
        if mid >= NODE_KEYS {
            break;
        }
        if word(data, mid) < key {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if lo >= NODE_KEYS {
        scratch[16..24].copy_from_slice(&(NODE_KEYS as u64).to_le_bytes());
        ctx.done = 1;
        return 0;
    }
    scratch[16..24].copy_from_slice(&(lo as u64).to_le_bytes());
    let value = word(&data[VALUES_OFF..], lo);
    if word(data, lo) == key {
        scratch[8..16].copy_from_slice(&value.to_le_bytes());
        ctx.done = 1;
        return 0;
    }
    ctx.next_addr[0] = value;
    ctx.size[0] = BLOCK as u64;
    0
}

fn engines() -> Vec<(&'static str, Engine)> {
    vec![("jit", Engine::Jit), ("interpreter", Engine::Interpreter)]
}

fn call_overhead(c: &mut Criterion) {
    let prog = Program::load(&build("empty"), None).expect("load empty");
    let mut g = c.benchmark_group("empty_call");
    for (name, engine) in engines() {
        let inst = Instance::new(&prog, BLOCK as u32, engine).expect("instance");
        let mut data = vec![0u8; BLOCK];
        let mut scratch = vec![0u8; SCRATCH_SIZE];
        g.bench_function(name, |b| b.iter(|| inst.run(black_box(&mut data), &mut scratch).expect("run").ret));
        // The fast path: the caller's context reused, nothing reset or copied.
        let mut ctx = XrpContext::default();
        g.bench_function(format!("{name}_reused_ctx"), |b| b.iter(|| inst.call(&mut ctx, black_box(&mut data), &mut scratch).expect("run")));
    }
    g.finish();
}

fn node_search(c: &mut Criterion) {
    let prog = Program::load(&build("node_search"), None).expect("load node_search");
    let mut data = node();
    let mut scratch = vec![0u8; SCRATCH_SIZE];
    // A miss in the middle of the node: full search, child pointer written.
    scratch[..8].copy_from_slice(&1235u64.to_le_bytes());
    let mut g = c.benchmark_group("node_search");
    for (name, engine) in engines() {
        let inst = Instance::new(&prog, BLOCK as u32, engine).expect("instance");
        let out = inst.run(&mut data, &mut scratch).expect("run");
        assert_eq!(out.ctx.next_addr[0], 1241, "program result");
        g.bench_function(name, |b| b.iter(|| inst.run(black_box(&mut data), &mut scratch).expect("run").ret));
        // The program's own cost: the context is the caller's, reused (the
        // miss path writes the same fields every time).
        let mut ctx = XrpContext::default();
        g.bench_function(format!("{name}_reused_ctx"), |b| b.iter(|| inst.call(&mut ctx, black_box(&mut data), &mut scratch).expect("run")));
    }
    let mut ctx = XrpContext::default();
    assert_eq!((native_node_search(&data, &mut scratch, &mut ctx), ctx.next_addr[0]), (0, 1241));
    g.bench_function("native", |b| {
        b.iter(|| {
            let mut ctx = XrpContext::default();
            native_node_search(black_box(&data), &mut scratch, &mut ctx) + ctx.next_addr[0]
        })
    });
    g.finish();
}

fn load_time(c: &mut Criterion) {
    let mut g = c.benchmark_group("load_parse_verify_jit");
    g.sample_size(10);
    for name in PROGRAMS {
        let engine = Engine::Jit;
        let obj = build_path(name);
        // calls.c uses bpf-to-bpf calls, which the verifier does not take yet.
        let prog = Program::load(&obj, None).expect("load");
        if Instance::new(&prog, BLOCK as u32, engine).is_err() {
            eprintln!("load_parse_verify_jit/{name}: skipped, the verifier rejects it");
            continue;
        }
        g.bench_function(name, |b| {
            b.iter(|| {
                let prog = Program::load(black_box(&obj), None).expect("load");
                Instance::new(&prog, BLOCK as u32, engine).expect("instance")
            })
        });
    }
    g.finish();
}

criterion_group!(benches, call_overhead, node_search, load_time);
criterion_main!(benches);
