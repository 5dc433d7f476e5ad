//! Differential fuzzer of the JIT against the interpreter: random programs
//! (the generator of `tests/jit_common`), verified; every accepted one runs
//! on both engines on several random inputs, and r0, the data block, the
//! scratch, the context and the computed registers must be identical.
//! Time-bounded and deterministic from the seed; exits 1 on a difference
//! and prints the program as a regression test input.
//!
//! ```text
//! cargo run --release -p ebpf-runtime --example jitfuzz -- --seconds 30 --seed 1
//! ```

#[path = "../tests/jit_common/mod.rs"]
mod jit_common;

use jit_common::*;
use std::time::{Duration, Instant};

/// Random inputs per accepted program.
const INPUTS_PER_PROG: usize = 4;

fn main() {
    let (mut seconds, mut seed) = (30u64, 1u64);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().and_then(|v| v.parse::<u64>().ok());
        match (flag.as_str(), value) {
            ("--seconds", Some(v)) => seconds = v,
            ("--seed", Some(v)) => seed = v,
            _ => {
                eprintln!("jitfuzz: use --seconds N --seed N");
                std::process::exit(2);
            }
        }
    }
    let start = Instant::now();
    let mut rng = Rng(seed.max(1));
    let (mut generated, mut accepted, mut failures) = (0u64, 0u64, 0u64);
    while start.elapsed() < Duration::from_secs(seconds) {
        let prog = generate(&mut rng);
        generated += 1;
        match check(&prog, &mut rng, INPUTS_PER_PROG) {
            Verdict::Rejected(_) => {}
            Verdict::Agree => accepted += 1,
            Verdict::Differ(why) => {
                failures += 1;
                eprintln!("DIFFERENCE (program {generated}, seed {seed}): {why}\n{}", dump(&prog));
            }
        }
    }
    println!(
        "jitfuzz: seed {seed} ran {:.1}s: {generated} programs, {accepted} accepted and identical on both engines ({INPUTS_PER_PROG} inputs each), {failures} differences",
        start.elapsed().as_secs_f64()
    );
    if failures > 0 {
        std::process::exit(1);
    }
}
