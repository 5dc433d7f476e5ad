//! The interpreter and the JIT agree on random verified programs: r0, the
//! data block, the scratch, the context and r0-r9 (seeded, a few seconds;
//! `examples/jitfuzz.rs` is the long run).

mod jit_common;

use jit_common::*;

/// Programs per test run (fixed seed, deterministic).
const PROGRAMS: usize = 1500;

#[test]
fn interpreter_and_jit_agree_on_random_programs() {
    let mut rng = Rng(0x5eed_0011);
    let (mut accepted, mut failures) = (0, Vec::new());
    let mut rejections = std::collections::BTreeMap::new();
    for n in 0..PROGRAMS {
        let prog = generate(&mut rng);
        match check(&prog, &mut rng, 2) {
            Verdict::Rejected(why) => {
                let kind: String = why.split(" (insn").next().unwrap_or(&why).chars().filter(|c| !c.is_ascii_digit()).collect();
                *rejections.entry(kind).or_insert(0) += 1;
            }
            Verdict::Agree => accepted += 1,
            Verdict::Differ(why) => failures.push(format!("program {n}: {why}\n{}", dump(&prog))),
        }
    }
    println!("{accepted} of {PROGRAMS} programs accepted and compared");
    assert!(failures.is_empty(), "{} of {PROGRAMS} programs differ; first:\n{}", failures.len(), failures[0]);
    // The generator is meant to produce mostly accepted programs: a test
    // that compares nothing must not pass.
    assert!(accepted * 2 > PROGRAMS, "only {accepted} of {PROGRAMS} programs were accepted; rejections: {rejections:#?}");
}
