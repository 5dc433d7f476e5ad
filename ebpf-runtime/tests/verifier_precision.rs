//! Precision items of issue 15: what clang emits every day and the
//! verifier must follow. Each acceptance has a control that must still be
//! refused, so the test fails if precision is bought with soundness.

mod verifier_common;
use ebpf_runtime::insn::*;
use ebpf_runtime::verifier::VerifyError;
use verifier_common::*;

/// r7 = data block; r2 = an unknown u64 from it.
fn block() -> Asm {
    Asm::new().ldx(DW, R7, R1, 0).ldx(DW, R2, R7, 0)
}

/// Bounds learned on a copy carry to the register it was copied from
/// (Linux's register ids, `find_equal_scalars`).
#[test]
fn bounds_carry_to_copies() {
    let p = block().movr(R3, R2).jmp(JMP_JGT, R3, 4088, "out").alur(ALU_ADD, R7, R2).ldx(DW, R0, R7, 0).exit().label("out").ret0().build();
    accept(&p);
    // Also through a spill and fill of the copy.
    let p =
        block().movr(R3, R2).stx(DW, R10, R3, -8).ldx(DW, R4, R10, -8).jmp(JMP_JGT, R4, 4088, "out").alur(ALU_ADD, R7, R2).ldx(DW, R0, R7, 0).exit().label("out").ret0().build();
    accept(&p);
    // Control: a copy that was changed is another value.
    let p = block().movr(R3, R2).alu(ALU_ADD, R3, 0).jmp(JMP_JGT, R3, 4088, "out").alur(ALU_ADD, R7, R2).ldx(DW, R0, R7, 0).exit().label("out").ret0().build();
    reject(&p, "R7 pointer arithmetic with an unbounded scalar");
    // Control: the other side of the comparison learns the other bound.
    let p = block().movr(R3, R2).jmp(JMP_JLE, R3, 4088, "out").alur(ALU_ADD, R7, R2).ldx(DW, R0, R7, 0).exit().label("out").ret0().build();
    reject(&p, "unbounded scalar");
}

/// Comparing a value with its own copy is decided, not forked.
#[test]
fn a_value_compared_with_its_copy_is_decided() {
    let p = block()
        .movr(R3, R2)
        .jmpr(JMP_JGT, R2, R3, "never")
        .ret0()
        .label("never")
        .ldx(DW, R0, R7, 4096) // out of bounds, but unreachable
        .exit()
        .build();
    accept(&p);
    let p = block().ldx(DW, R3, R7, 8).jmpr(JMP_JGT, R2, R3, "maybe").ret0().label("maybe").ldx(DW, R0, R7, 4096).exit().build();
    reject(&p, "invalid access to data block off=4096 size=8");
}

/// The comparison clang repeats (once per value it selects): the second
/// outcome follows from the first, so the mixed paths, on which r6 would
/// index past the block, are never walked.
#[test]
fn a_repeated_comparison_follows_the_first() {
    let prog = |second: u8| {
        block()
            .ldx(DW, R8, R7, 8)
            .mov(R6, 0)
            .jmpr(JMP_JGT, R8, R2, "t1")
            .mov(R6, 4000)
            .label("t1")
            .jmpr(second, R8, R2, "t2")
            .ret0()
            .label("t2")
            .alur(ALU_ADD, R7, R6)
            .ldx(DW, R0, R7, 96)
            .exit()
            .build()
    };
    // `r8 > r2` twice: the second is taken exactly when the first was
    // (r6 = 0 there).
    accept(&prog(JMP_JGT));
    // Control: `r8 >= r2` is not implied by `!(r8 > r2)`, so r6 = 4000
    // reaches the access.
    reject(&prog(JMP_JGE), "invalid access to data block off=4096 size=8");
    // The relation is forgotten once a register is written.
    let p = block()
        .ldx(DW, R8, R7, 8)
        .mov(R6, 0)
        .jmpr(JMP_JGT, R8, R2, "t1")
        .mov(R6, 4000)
        .label("t1")
        .ldx(DW, R8, R7, 16)
        .jmpr(JMP_JGT, R8, R2, "t2")
        .ret0()
        .label("t2")
        .alur(ALU_ADD, R7, R6)
        .ldx(DW, R0, R7, 96)
        .exit()
        .build();
    reject(&p, "invalid access to data block off=4096 size=8");
}

/// `r <<= 32; r >>= 32` on a value that fits in 32 bits leaves it, and its
/// copies, as they were: clang's zero extension at the default CPU.
#[test]
fn shift_pair_zero_extension_keeps_the_value() {
    let p = Asm::new()
        .ldx(DW, R7, R1, 0)
        .ldx(W, R2, R7, 0)
        .movr(R3, R2)
        .alu(ALU_LSH, R3, 32)
        .alu(ALU_RSH, R3, 32)
        .jmp(JMP_JGT, R3, 4088, "out")
        .alur(ALU_ADD, R7, R2)
        .ldx(DW, R0, R7, 0)
        .exit()
        .label("out")
        .ret0()
        .build();
    accept(&p);
    // Control: on a 64-bit value the pair truncates: the copy is another value.
    let p = Asm::new()
        .ldx(DW, R7, R1, 0)
        .ldx(DW, R2, R7, 0)
        .movr(R3, R2)
        .alu(ALU_LSH, R3, 32)
        .alu(ALU_RSH, R3, 32)
        .jmp(JMP_JGT, R3, 4088, "out")
        .alur(ALU_ADD, R7, R2)
        .ldx(DW, R0, R7, 0)
        .exit()
        .label("out")
        .ret0()
        .build();
    reject(&p, "unbounded scalar");
}

/// A 32-bit bound, then an explicit zero extension (`w3 = w3`), then
/// pointer arithmetic: the bound survives (issue 15).
#[test]
fn zero_extension_keeps_a_32_bit_bound() {
    let prog = |zext: bool| {
        let a = Asm::new().ldx(DW, R7, R1, 0).ldx(DW, R3, R7, 0).jmp32(JMP_JGT, R3, 4088, "out");
        let a = if zext { a.mov32r(R3, R3) } else { a };
        a.alur(ALU_ADD, R7, R3).ldx(DW, R0, R7, 0).exit().label("out").ret0().build()
    };
    accept(&prog(true));
    // Control: without the zero extension the upper 32 bits are unknown.
    reject(&prog(false), "unbounded scalar");
    // Control: the bound is exact, not one more.
    let p =
        Asm::new().ldx(DW, R7, R1, 0).ldx(DW, R3, R7, 0).jmp32(JMP_JGT, R3, 4089, "out").mov32r(R3, R3).alur(ALU_ADD, R7, R3).ldx(DW, R0, R7, 0).exit().label("out").ret0().build();
    reject(&p, "invalid access to data block off=4089 size=8");
}

/// `r2` = r10 - 16 + (data[0] & 7): a read of 8 bytes at a variable offset
/// of initialised stack.
fn variable_stack_read(init: &[i16], size: u8) -> Vec<Insn> {
    let mut a = Asm::new().ldx(DW, R7, R1, 0);
    for off in init {
        a = a.st(DW, R10, *off, 7);
    }
    a.ldx(B, R3, R7, 0).alu(ALU_AND, R3, 7).movr(R2, R10).alu(ALU_ADD, R2, -16).alur(ALU_ADD, R2, R3).ldx(size, R0, R2, 0).exit().build()
}

#[test]
fn variable_offset_stack_reads_of_initialised_bytes() {
    // Bytes -16..-1 are read by an 8-byte load at -16 + 0..=7.
    accept(&variable_stack_read(&[-16, -8], DW));
    accept(&variable_stack_read(&[-16, -8], B));
    // Control: byte -1 is not initialised.
    let mut p = variable_stack_read(&[-16], DW);
    reject(&p, "invalid read from stack off=-16 size=15");
    p = variable_stack_read(&[-16, -8], DW);
    // Control: past the frame (offsets -7..=0 for 8 bytes reach r10 + 8).
    let last = p.len() - 2;
    p[last].off = 9;
    reject(&p, "invalid access to stack off=-7 size=8");
    // Control: a spilled pointer in range is never read as data.
    let p = Asm::new()
        .ldx(DW, R7, R1, 0)
        .st(DW, R10, -16, 7)
        .stx(DW, R10, R7, -8)
        .ldx(B, R3, R7, 0)
        .alu(ALU_AND, R3, 7)
        .movr(R2, R10)
        .alu(ALU_ADD, R2, -16)
        .alur(ALU_ADD, R2, R3)
        .ldx(DW, R0, R2, 0)
        .exit()
        .build();
    let e = reject(&p, "invalid partial access to a spilled pointer");
    assert!(matches!(e, VerifyError::PartialSpill { .. }));
    // Writes at a variable stack offset stay refused (see verifier_memory).
}
