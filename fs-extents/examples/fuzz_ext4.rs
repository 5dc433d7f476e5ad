//! Timed fuzzing of the ext4 reader: `fuzz_ext4 <seconds> [seed]`. Exits
//! non-zero (a panic) on the first mutant that crashes the reader; prints
//! the seed and iteration so the mutant can be replayed.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/fuzz_support/mod.rs"]
mod fuzz_support;

use fuzz_support::{corpus, one, Rng, Stats};
use std::time::{Duration, Instant};

fn main() {
    let mut args = std::env::args().skip(1);
    let seconds: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(30);
    let seed: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(0x5EED_0002);
    let t = common::TempDir::new("fuzz-example");
    let mut c = corpus(t.path());
    let mut rng = Rng(seed | 1);
    let mut stats = Stats::default();
    let end = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < end {
        for _ in 0..100 {
            one(&mut c, &mut rng, &mut stats);
        }
    }
    println!("fuzz_ext4: seed {seed:#x}, {seconds} s: {stats:?}");
}
