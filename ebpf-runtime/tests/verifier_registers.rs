//! Register rejections: uninitialised reads, pointer arithmetic and
//! comparisons, pointer leaks. One test per kind.

mod verifier_common;
use ebpf_runtime::insn::*;
use ebpf_runtime::verifier::VerifyError;
use verifier_common::*;

#[test]
fn uninitialised_register_read() {
    let e = reject(&Asm::new().movr(R0, R3).exit().build(), "R3 !read_ok (insn 0)");
    assert!(matches!(e, VerifyError::UninitRegister { insn: 0, reg: 3 }));
    reject(&Asm::new().alu(ALU_ADD, R4, 1).ret0().build(), "R4 !read_ok");
    reject(&Asm::new().mov(R0, 0).jmp(JMP_JEQ, R5, 0, "x").label("x").exit().build(), "R5 !read_ok");
}

#[test]
fn helper_call_clobbers_argument_registers() {
    let p = Asm::new().mov(R3, 1).call(helper_id::KTIME_GET_NS).movr(R0, R3).exit().build();
    reject(&p, "R3 !read_ok (insn 2)");
}

#[test]
fn r0_unset_at_exit() {
    let e = reject(&Asm::new().exit().build(), "R0 !read_ok at exit (insn 0)");
    assert!(matches!(e, VerifyError::UninitR0AtExit { insn: 0 }));
    // Only one path sets r0.
    let p = Asm::new().ldx(W, R2, R1, 8).jmp(JMP_JEQ, R2, 0, "x").mov(R0, 0).label("x").exit().build();
    reject(&p, "R0 !read_ok at exit (insn 3)");
}

#[test]
fn pointer_returned_in_r0() {
    reject(&Asm::new().movr(R0, R1).exit().build(), "pointer leak: R0 holds a ctx pointer at exit");
    reject(&Asm::new().movr(R0, R10).exit().build(), "pointer leak: R0 holds a stack pointer at exit");
}

#[test]
fn pointer_stored_into_memory_regions() {
    let p = Asm::new().ldx(DW, R2, R1, 272).stx(DW, R2, R2, 0).ret0().build();
    let e = reject(&p, "pointer leak: storing a pointer to scratch (insn 1)");
    assert!(matches!(e, VerifyError::PointerLeakStore { insn: 1, .. }));
    reject(&Asm::new().ldx(DW, R2, R1, 0).stx(DW, R2, R10, 0).ret0().build(), "storing a pointer to data block");
    reject(&Asm::new().ld_map_value(R2, 0, 0).stx(DW, R2, R1, 0).ret0().build(), "storing a pointer to map_value");
    reject(&Asm::new().stx(DW, R1, R10, 16).ret0().build(), "storing a pointer to ctx");
}

#[test]
fn pointer_multiplication_and_other_operators() {
    let e = reject(&Asm::new().alu(ALU_MUL, R1, 2).ret0().build(), "R1 pointer arithmetic with * operator prohibited");
    assert!(matches!(e, VerifyError::PointerArith { insn: 0, reg: 1, .. }));
    reject(&Asm::new().alu(ALU_AND, R1, 0xff).ret0().build(), "with & operator prohibited");
    reject(&Asm::new().alu(ALU_NEG, R1, 0).ret0().build(), "with neg operator prohibited");
    reject(&Asm::new().ldx(DW, R2, R1, 0).alur(ALU_SUB, R2, R1).ret0().build(), "with - operator prohibited");
    reject(&Asm::new().mov(R2, 1).alur(ALU_SUB, R2, R1).ret0().build(), "R1 pointer arithmetic with - operator");
    reject(&Asm::new().ld_map(R2, 0).alu(ALU_ADD, R2, 8).ret0().build(), "R2 pointer arithmetic with + operator");
}

#[test]
fn pointer_arithmetic_on_nullable_pointer() {
    let p = Asm::new().st(W, R10, -4, 0).movr(R2, R10).alu(ALU_ADD, R2, -4).ld_map(R1, 0).call(helper_id::MAP_LOOKUP_ELEM).alu(ALU_ADD, R0, 8).ret0().build();
    reject(&p, "R0 pointer arithmetic on map_value_or_null prohibited, null-check it first");
}

#[test]
fn huge_constant_offset() {
    reject(&Asm::new().ldx(DW, R2, R1, 0).lddw(R3, 1 << 40).alur(ALU_ADD, R2, R3).ret0().build(), "unbounded scalar");
}

#[test]
fn alu32_on_pointer() {
    let e = reject(&Asm::new().alu32(ALU_ADD, R1, 1).ret0().build(), "R1 32-bit operation on a ctx pointer prohibited");
    assert!(matches!(e, VerifyError::PointerAlu32 { .. }));
    reject(&Asm::new().mov32r(R2, R10).ret0().build(), "R10 32-bit operation on a stack pointer prohibited");
}

#[test]
fn pointer_comparisons() {
    let e = reject(&Asm::new().mov(R0, 0).jmp(JMP_JGT, R1, 5, "x").label("x").exit().build(), "R1 pointer comparison prohibited");
    assert!(matches!(e, VerifyError::PointerCompare { insn: 1, reg: 1 }));
    reject(&Asm::new().mov(R0, 0).jmpr(JMP_JEQ, R0, R1, "x").label("x").exit().build(), "R1 pointer comparison");
    reject(&Asm::new().mov(R0, 0).jmp32(JMP_JEQ, R1, 0, "x").label("x").exit().build(), "R1 pointer comparison");
}

#[test]
fn non_null_pointer_against_zero_is_allowed() {
    // ctx->data is never null: the == 0 side is dead and not walked.
    accept(&Asm::new().ldx(DW, R2, R1, 0).jmp(JMP_JEQ, R2, 0, "x").mov(R0, 0).label("x").exit().build());
}

#[test]
fn register_shift_out_of_range_gives_unknown_result() {
    // The amount (0..=255) may exceed 63: rbpf masks it, so the result is
    // unknown and may not serve as an offset.
    let p = Asm::new().ldx(DW, R2, R1, 0).ldx(B, R3, R2, 0).mov(R4, 1).alur(ALU_RSH, R4, R3).alur(ALU_ADD, R2, R4).ret0().build();
    reject(&p, "unbounded scalar");
    // Proven below the width: the result of a right shift stays bounded.
    let p = Asm::new().ldx(DW, R2, R1, 0).ldx(B, R3, R2, 0).alu(ALU_AND, R3, 7).mov(R4, 4000).alur(ALU_RSH, R4, R3).alur(ALU_ADD, R2, R4).ldx(DW, R0, R2, 0).exit().build();
    accept(&p);
}

#[test]
fn mod32_by_possibly_zero_keeps_high_bits() {
    // rbpf leaves all 64 bits of dst unchanged for a 32-bit modulo by zero,
    // so the result of `w3 %= w4` is not bounded by 32 bits.
    let p = Asm::new().ldx(DW, R2, R1, 0).ldx(DW, R3, R2, 0).ldx(DW, R4, R2, 8).alu32r(ALU_MOD, R3, R4).alur(ALU_ADD, R2, R3).ret0().build();
    reject(&p, "unbounded scalar");
}
