//! Resource caps (issue 15): hostile programs built to blow up the walk are
//! refused by a named cap, with the instruction reached, never by running
//! out of memory or time. The tests assert the refusal and the cap, not
//! timing: the time cap is exercised with a zero budget.

mod verifier_common;
use ebpf_runtime::insn::*;
use ebpf_runtime::verifier::{Limits, VerifyError, MEM_MAX_BYTES, PENDING_MAX, TIME_MAX};
use std::time::Duration;
use verifier_common::explode::{self, Rng};
use verifier_common::*;

/// A loop that leaves one unexplored branch behind per iteration and never
/// repeats its state: the pending stack grows by one per iteration.
fn pending_grower(spills: i16) -> Vec<Insn> {
    let mut a = Asm::new().ldx(DW, R6, R1, 0);
    for i in 1..=spills {
        a = a.st(DW, R10, -8 * i, i32::from(i));
    }
    a.mov(R7, 0).label("loop").ldx(B, R2, R6, 0).jmp(JMP_JEQ, R2, 0, "side").alu(ALU_ADD, R7, 1).jmp(JMP_JLT, R7, 1_000_000, "loop").label("side").ret0().build()
}

#[test]
fn pending_branches_are_capped_at_8192() {
    assert_eq!(PENDING_MAX, 8192);
    let e = check(&pending_grower(0)).unwrap_err();
    assert!(matches!(e, VerifyError::PendingCap { cap: 8192, insn: 3 }), "{e}");
    assert_eq!(e.to_string(), "program too complex: more than 8192 pending branches to explore (insn 3)");
    // The same with every stack slot spilled (the fattest states): still
    // the pending cap, within the default memory cap.
    let e = check(&pending_grower(64)).unwrap_err();
    assert!(matches!(e, VerifyError::PendingCap { cap: 8192, .. }), "{e}");
    // A lower cap is honoured too.
    let limits = Limits { pending_max: 100, ..Limits::default() };
    let e = check_with(&pending_grower(0), limits).unwrap_err();
    assert!(matches!(e, VerifyError::PendingCap { cap: 100, .. }), "{e}");
}

#[test]
fn verifier_memory_is_capped() {
    assert_eq!(MEM_MAX_BYTES, 256 << 20);
    let limits = Limits { mem_max_bytes: 1 << 20, ..Limits::default() };
    let e = check_with(&pending_grower(64), limits).unwrap_err();
    assert!(matches!(e, VerifyError::MemoryCap { cap_bytes: 1_048_576, .. }), "{e}");
    assert!(e.to_string().starts_with("program too complex: verifier memory cap of 1048576 bytes exceeded (insn "));
    // What is counted is what is held: an accepted program reports a peak
    // below the cap, and more states held means more bytes.
    let small = accept(&programs::map_lookup());
    let big = accept(&programs::btree_search());
    assert!(small.peak_mem_bytes > 0 && small.peak_mem_bytes < big.peak_mem_bytes, "{small:?} {big:?}");
}

#[test]
fn verification_time_is_capped() {
    assert_eq!(TIME_MAX, Duration::from_secs(1));
    let limits = Limits { time_max: Duration::ZERO, ..Limits::default() };
    let e = check_with(&pending_grower(0), limits).unwrap_err();
    assert!(matches!(e, VerifyError::TimeCap { cap_ms: 0, .. }), "{e}");
    assert!(e.to_string().starts_with("program too complex: verification time cap of 0 ms exceeded (insn "));
    // A program done within the first clock check is not affected.
    accept(&programs::map_lookup());
    check_with(&programs::map_lookup(), limits).expect("done before the first clock check");
}

#[test]
fn states_per_instruction_are_capped() {
    // A counted loop with two data-dependent branches per iteration: every
    // iteration stores a new, different state (the counter) at the
    // instructions it passes. With room for two states per instruction,
    // the third iteration is refused.
    let mut a = Asm::new().ldx(DW, R2, R1, 0).ldx(B, R4, R2, 0).ldx(B, R5, R2, 1).mov(R3, 0).label("loop");
    for _ in 0..8 {
        a = a.mov(R0, 0);
    }
    let p = a.jmp(JMP_JEQ, R4, 1, "s1").label("s1").jmp(JMP_JEQ, R5, 1, "s2").label("s2").alu(ALU_ADD, R3, 1).jmp(JMP_JLT, R3, 100, "loop").ret0().build();
    let limits = Limits { states_per_insn_max: 2, ..Limits::default() };
    let e = check_with(&p, limits).unwrap_err();
    let VerifyError::StatesPerInsnCap { cap: 2, insn } = e else { panic!("{e}") };
    assert_eq!(e.to_string(), format!("program too complex: more than 2 states stored at insn {insn}"));
    accept(&p);
}

/// Whether `e` is one of the refusals that end a walk that grew too big.
fn is_cap(e: &VerifyError) -> bool {
    matches!(
        e,
        VerifyError::TooComplex { .. }
            | VerifyError::LoopCap { .. }
            | VerifyError::PendingCap { .. }
            | VerifyError::StatesPerInsnCap { .. }
            | VerifyError::MemoryCap { .. }
            | VerifyError::TimeCap { .. }
    )
}

/// The fuzzer's path-explosion generators, a few seeds of each: every
/// program is accepted within the caps or refused by one of them.
#[test]
fn path_explosion_shapes_end_within_the_caps() {
    let limits = Limits::default();
    for seed in 0..4 {
        for (name, gen) in [("branch_fan", explode::branch_fan as fn(&mut Rng) -> Vec<Insn>), ("nested_ifs", explode::nested_ifs), ("diverging_loop", explode::diverging_loop)] {
            let p = gen(&mut Rng(seed));
            assert!(p.len() <= limits.prog_len_max, "{name} seed {seed}: {} insns", p.len());
            match check_with(&p, limits) {
                Ok(s) => {
                    assert!(s.peak_mem_bytes <= limits.mem_max_bytes, "{name} seed {seed}: {s:?}");
                    assert!(s.peak_pending <= limits.pending_max as u64, "{name} seed {seed}: {s:?}");
                }
                Err(e) => assert!(is_cap(&e), "{name} seed {seed}: refused by {e}, not a cap"),
            }
        }
    }
}
