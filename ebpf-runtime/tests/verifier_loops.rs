//! Loops and path limits: bounded loops accepted within the cap, loops that
//! cannot be shown to end rejected.

mod verifier_common;
use ebpf_runtime::insn::*;
use ebpf_runtime::verifier::{Limits, VerifyError};
use verifier_common::*;

fn counted_loop(n: i32) -> Vec<Insn> {
    Asm::new().mov(R0, 0).label("loop").alu(ALU_ADD, R0, 1).jmp(JMP_JLT, R0, n, "loop").exit().build()
}

#[test]
fn bounded_loop_is_accepted() {
    let s = accept(&counted_loop(100));
    assert!(s.insns_processed >= 200, "{s:?}");
}

#[test]
fn infinite_loop_is_detected() {
    let p = Asm::new().mov(R0, 0).label("loop").ja("loop").build();
    let e = reject(&p, "infinite loop detected at insn 1");
    assert!(matches!(e, VerifyError::InfiniteLoop { insn: 1 }));
}

#[test]
fn loop_without_progress_on_unknown_data_is_refused() {
    // Loops until a byte of the block is zero: the block never changes, so
    // the state at the loop head repeats.
    let p = Asm::new().ldx(DW, R2, R1, 0).label("loop").ldx(B, R3, R2, 0).jmp(JMP_JNE, R3, 0, "loop").ret0().build();
    reject(&p, "infinite loop detected");
}

#[test]
fn loop_with_shrinking_range_is_walked_not_refused() {
    // r3 in 0..=10 counts up to 10: the head's later states are covered by
    // the first one (a narrower range) but differ, so the walk goes on and
    // the loop is accepted once it ends.
    let p = Asm::new().ldx(DW, R2, R1, 0).ldx(B, R3, R2, 0).jmp(JMP_JGT, R3, 10, "out").label("loop").alu(ALU_ADD, R3, 1).jmp(JMP_JLT, R3, 10, "loop").label("out").ret0().build();
    accept(&p);
}

#[test]
fn loop_longer_than_the_cap() {
    let limits = Limits { insns_processed_max: 1000, ..Limits::default() };
    let e = check_with(&counted_loop(10_000), limits).unwrap_err();
    assert!(matches!(e, VerifyError::LoopCap { cap: 1000, .. }), "{e}");
    assert!(e.to_string().starts_with("back-edge loop exceeds the processed-instruction cap of 1000 (insn "));
    // The same loop is fine with the default cap of 1 000 000.
    accept(&counted_loop(10_000));
}

#[test]
fn too_many_paths_without_loops() {
    // 12 independent branches: 4096 paths, but all states at each join are
    // different (r0 counts the taken branches in a different bit each).
    let mut a = Asm::new().mov(R0, 0).ldx(DW, R2, R1, 0).ldx(DW, R3, R2, 0);
    for i in 0..12 {
        let l = format!("j{i}");
        a = a.jmp(JMP_JSET, R3, 1 << i, &l).alu(ALU_OR, R0, 1 << i).label(&l);
    }
    let p = a.exit().build();
    let limits = Limits { insns_processed_max: 2000, ..Limits::default() };
    let e = check_with(&p, limits).unwrap_err();
    assert!(matches!(e, VerifyError::TooComplex { cap: 2000, .. }), "{e}");
    accept(&p);
}

#[test]
fn pruning_cuts_equivalent_paths() {
    // 30 branches, each on a freshly loaded byte: both sides of each branch
    // leave the same live state (the byte and r4 are dead at the join), so
    // the second path reaching each join is pruned and the work stays linear.
    let mut a = Asm::new().mov(R0, 0).ldx(DW, R2, R1, 0);
    for i in 0..30 {
        let l = format!("j{i}");
        a = a.ldx(B, R3, R2, i).jmp(JMP_JSET, R3, 1, &l).mov(R4, 0).label(&l).mov(R4, 1);
    }
    let s = accept(&a.exit().build());
    assert!(s.insns_processed < 400, "{s:?}");
    assert!(s.states > 0 && s.peak_states <= s.states);
}
