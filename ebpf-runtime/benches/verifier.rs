//! Verification time of realistic programs (the verifier's share of load
//! time): `cargo bench -p ebpf-runtime --bench verifier`.

#[path = "../tests/verifier_common/mod.rs"]
mod verifier_common;

use criterion::{criterion_group, criterion_main, Criterion};
use ebpf_runtime::verifier::{verify, Env, Limits};
use std::hint::black_box;
use verifier_common::{maps, programs};

fn bench(c: &mut Criterion) {
    let maps = maps();
    let env = Env { maps: &maps, data_size: 4096, scratch_size: 4096, limits: Limits::default() };
    let cases = [
        ("btree_search", programs::btree_search()),
        ("filter_reduce_512", programs::filter_reduce()),
        ("map_lookup", programs::map_lookup()),
    ];
    for (name, prog) in &cases {
        c.bench_function(&format!("verify/{name}"), |b| b.iter(|| verify(black_box(prog), &env).expect("accepted")));
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
