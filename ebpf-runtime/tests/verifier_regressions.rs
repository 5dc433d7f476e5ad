//! Regression tests: programs that exposed a verifier bug or imprecision,
//! kept so it stays fixed. Each says where it came from.

mod verifier_common;
use ebpf_runtime::insn::*;
use verifier_common::*;

/// Mutation testing of the fuzzer: with an off-by-one injected into the
/// JGT refinement (`r > k` taken to mean `r >= k + 2`), difffuzz (seed 9)
/// found programs whose accesses rbpf's interpreter caught out of bounds,
/// within seconds. This is the minimal form: after `r3 > 7`, r3 >= 8, so
/// data + 4103 - r3 reaches offset 4095 and a 2-byte load runs past the block.
#[test]
fn jgt_lower_bound_is_exact() {
    let prog = |size: u8| {
        Asm::new()
            .ldx(DW, R2, R1, 0)
            .ldx(DW, R3, R2, 0)
            .jmp(JMP_JGT, R3, 4095, "out")
            .jmp(JMP_JGT, R3, 7, "use")
            .label("out")
            .ret0()
            .label("use")
            .alu(ALU_ADD, R2, 4103)
            .alur(ALU_SUB, R2, R3)
            .ldx(size, R0, R2, 0)
            .exit()
            .build()
    };
    accept(&prog(B));
    reject(&prog(H), "invalid access to data block off=4095 size=2");
}

/// Found by reading rbpf 0.4.1: a 32-bit modulo by zero leaves all 64 bits
/// of the destination unchanged (interpreter and JIT), where Linux
/// zero-extends. A verifier assuming a 32-bit result would accept this
/// out-of-bounds access when r4 = 0 and r3 is large.
#[test]
fn mod32_by_zero_keeps_the_upper_half() {
    let p = Asm::new()
        .ldx(DW, R2, R1, 0)
        .ldx(DW, R3, R2, 0)
        .ldx(W, R4, R2, 8)
        .alu32r(ALU_MOD, R3, R4)
        .jmp32(JMP_JGT, R3, 4088, "out")
        .alur(ALU_ADD, R2, R3)
        .ldx(DW, R0, R2, 0)
        .exit()
        .label("out")
        .ret0()
        .build();
    reject(&p, "unbounded scalar");
}

/// From bpf/btree_lookup.c built by clang 14: `w7 += -1` on w7 in 1..=256
/// wraps for every value, and the result 0..=255 must stay exact (it was
/// computed through known bits only, and the program was rejected with
/// "invalid access to data block off=4096 size=8").
#[test]
fn alu32_add_that_always_wraps_stays_exact() {
    let p = Asm::new()
        .ldx(DW, R2, R1, 0)
        .ldx(H, R7, R2, 6)
        .jmp32(JMP_JEQ, R7, 0, "out")
        .jmp32(JMP_JGT, R7, 255, "out")
        .alu32(ALU_ADD, R7, -1)
        .alu(ALU_LSH, R7, 3)
        .alu(ALU_ADD, R2, 2056)
        .alur(ALU_ADD, R2, R7)
        .ldx(DW, R0, R2, 0)
        .exit()
        .label("out")
        .ret0()
        .build();
    accept(&p);
}

/// From bpf/filter_reduce.c built by clang 14: a 512-iteration loop keeping
/// min and max with comparisons between two unknown registers. Each
/// comparison used to narrow both registers a little (e.g. to 1..=u64::MAX),
/// so states at the loop head never matched and the walk hit the cap.
#[test]
fn min_max_loop_over_the_block_fits_the_cap() {
    let p = Asm::new()
        .ldx(DW, R4, R1, 0) // data
        .ldx(DW, R6, R1, 272) // scratch
        .ldx(DW, R1, R6, 0) // min
        .ldx(DW, R2, R6, 8) // max
        .mov(R3, 0)
        .label("loop")
        .movr(R0, R4)
        .alur(ALU_ADD, R0, R3)
        .ldx(DW, R0, R0, 0)
        .jmpr(JMP_JGE, R0, R1, "not_min")
        .movr(R1, R0)
        .label("not_min")
        .jmpr(JMP_JLE, R0, R2, "next")
        .movr(R2, R0)
        .label("next")
        .alu(ALU_ADD, R3, 8)
        .jmp(JMP_JNE, R3, 4096, "loop")
        .stx(DW, R6, R1, 0)
        .stx(DW, R6, R2, 8)
        .ret0()
        .build();
    let s = accept(&p);
    assert!(s.insns_processed < 100_000, "{s:?}");
}
