//! Bounded, deterministic fuzzing of the ext4 reader on mutated images: no
//! mutant may panic. The longer, timed run is `cargo run --release -p
//! fs-extents --example fuzz_ext4 -- <seconds> [seed]`.

mod common;
#[path = "fuzz_support/mod.rs"]
mod fuzz_support;

use fuzz_support::{corpus, exercise, one, Rng, Stats};

const ITERATIONS: u64 = 3000;

#[test]
fn mutated_images_never_panic() {
    let t = common::TempDir::new("fuzz");
    let mut c = corpus(t.path());
    let pristine = c.image.clone();
    let mut stats = Stats::default();
    exercise(&c.image, &mut stats);
    assert_eq!(stats.mapped, 3, "the pristine image maps its three files (/d is a directory): {stats:?}");
    let mut rng = Rng(0x5EED_0001);
    for _ in 0..ITERATIONS {
        one(&mut c, &mut rng, &mut stats);
    }
    assert_eq!(c.image, pristine, "mutations are undone");
    assert!(stats.errors > ITERATIONS / 10, "mutants are detected: {stats:?}");
    assert!(stats.mapped > ITERATIONS, "many mutants still reach the extent code: {stats:?}");
}
