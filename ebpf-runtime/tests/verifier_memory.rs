//! Memory rejections: regions, bounds, stack initialisation, spills, the
//! context's field rules, read-only maps. One test per kind.

mod verifier_common;
use ebpf_runtime::insn::*;
use ebpf_runtime::verifier::VerifyError;
use verifier_common::*;

#[test]
fn load_through_a_scalar() {
    let e = reject(&Asm::new().mov(R2, 4096).ldx(DW, R0, R2, 0).exit().build(), "R2 invalid mem access 'scalar' (insn 1)");
    assert!(matches!(e, VerifyError::InvalidMemAccess { insn: 1, reg: 2, .. }));
}

#[test]
fn load_through_a_map_handle() {
    reject(&Asm::new().ld_map(R2, 0).ldx(DW, R0, R2, 0).exit().build(), "R2 invalid mem access 'map_ptr'");
}

#[test]
fn map_value_must_be_null_checked() {
    let p = Asm::new().st(W, R10, -4, 0).movr(R2, R10).alu(ALU_ADD, R2, -4).ld_map(R1, 0).call(helper_id::MAP_LOOKUP_ELEM).ldx(DW, R0, R0, 0).exit().build();
    reject(&p, "R0 invalid mem access 'map_value_or_null'");
}

#[test]
fn data_block_out_of_bounds() {
    let p = Asm::new().ldx(DW, R2, R1, 0).ldx(DW, R0, R2, 4092).exit().build();
    let e = reject(&p, "invalid access to data block off=4092 size=8 (insn 1)");
    assert!(matches!(e, VerifyError::OutOfBounds { insn: 1, off: 4092, size: 8, .. }));
    let p = Asm::new().ldx(DW, R2, R1, 0).ldx(B, R0, R2, -1).exit().build();
    reject(&p, "invalid access to data block off=-1 size=1");
}

#[test]
fn scratch_and_map_value_out_of_bounds() {
    let p = Asm::new().ldx(DW, R2, R1, 272).st(W, R2, 4094, 0).ret0().build();
    reject(&p, "invalid access to scratch off=4094 size=4");
    let p = Asm::new().ld_map_value(R2, 0, 12).ldx(DW, R0, R2, 0).exit().build();
    reject(&p, "invalid access to map_value off=12 size=8");
}

#[test]
fn variable_offset_is_checked_at_its_maximum() {
    // r3 in 0..=4095 after the check; an 8-byte load at r2 + r3 may run past the end.
    let p = Asm::new().ldx(DW, R2, R1, 0).ldx(DW, R3, R2, 0).jmp(JMP_JGT, R3, 4095, "out").alur(ALU_ADD, R2, R3).ldx(DW, R0, R2, 0).exit().label("out").ret0().build();
    reject(&p, "invalid access to data block off=4095 size=8 (insn 4)");
}

#[test]
fn unbounded_offset_is_refused_at_the_arithmetic() {
    let p = Asm::new().ldx(DW, R2, R1, 0).ldx(DW, R3, R2, 0).alur(ALU_ADD, R2, R3).ldx(B, R0, R2, 0).exit().build();
    reject(&p, "R2 pointer arithmetic with an unbounded scalar");
}

#[test]
fn negative_variable_offset() {
    // r3 in -8..=8 (signed): the lowest address is before the block.
    let p = Asm::new()
        .ldx(DW, R2, R1, 0)
        .ldx(DW, R3, R2, 0)
        .jmp(JMP_JSGT, R3, 8, "out")
        .jmp(JMP_JSLT, R3, -8, "out")
        .alur(ALU_ADD, R2, R3)
        .ldx(B, R0, R2, 0)
        .exit()
        .label("out")
        .ret0()
        .build();
    reject(&p, "invalid access to data block off=-8 size=1");
}

#[test]
fn variable_stack_access() {
    let p = Asm::new().ldx(DW, R2, R1, 0).ldx(B, R3, R2, 0).alu(ALU_AND, R3, 7).movr(R4, R10).alu(ALU_ADD, R4, -16).alur(ALU_ADD, R4, R3).st(B, R4, 0, 1).ret0().build();
    reject(&p, "R4 variable offset stack access prohibited");
}

#[test]
fn variable_ctx_access() {
    let p = Asm::new().ldx(DW, R2, R1, 0).ldx(B, R3, R2, 0).alu(ALU_AND, R3, 8).movr(R4, R1).alur(ALU_ADD, R4, R3).ldx(DW, R0, R4, 16).exit().build();
    reject(&p, "R4 variable offset ctx access prohibited");
}

#[test]
fn stack_out_of_bounds() {
    reject(&Asm::new().st(DW, R10, -520, 0).ret0().build(), "invalid access to stack off=-520 size=8");
    reject(&Asm::new().st(W, R10, -2, 0).ret0().build(), "invalid access to stack off=-2 size=4");
}

#[test]
fn uninitialised_stack_read() {
    let e = reject(&Asm::new().ldx(DW, R0, R10, -8).exit().build(), "invalid read from stack off=-8 size=8 (insn 0)");
    assert!(matches!(e, VerifyError::UninitStackRead { .. }));
    // Half initialised is not initialised.
    reject(&Asm::new().st(W, R10, -8, 0).ldx(DW, R0, R10, -8).exit().build(), "invalid read from stack off=-8 size=8");
}

#[test]
fn partial_read_of_spilled_pointer() {
    let p = Asm::new().stx(DW, R10, R1, -8).ldx(W, R0, R10, -8).exit().build();
    reject(&p, "invalid partial access to a spilled pointer at stack off=-8 size=4");
}

#[test]
fn partial_spill_of_pointer() {
    reject(&Asm::new().stx(W, R10, R1, -8).ret0().build(), "invalid partial access to a spilled pointer at stack off=-8 size=4");
    reject(&Asm::new().stx(DW, R10, R1, -12).ret0().build(), "spilled pointer at stack off=-12 size=8");
}

#[test]
fn overwriting_part_of_a_spilled_pointer_leaves_no_readable_bytes() {
    let p = Asm::new().stx(DW, R10, R1, -8).st(H, R10, -8, 0).ldx(H, R0, R10, -6).exit().build();
    reject(&p, "invalid read from stack off=-6 size=2");
}

#[test]
fn ctx_padding_and_wrong_sizes() {
    let e = reject(&Asm::new().ldx(W, R0, R1, 12).exit().build(), "invalid ctx access off=12 size=4 (insn 0)");
    assert!(matches!(e, VerifyError::CtxAccess { write: false, .. }));
    reject(&Asm::new().ldx(W, R0, R1, 0).exit().build(), "invalid ctx access off=0 size=4");
    reject(&Asm::new().ldx(DW, R0, R1, 8).exit().build(), "invalid ctx access off=8 size=8");
    reject(&Asm::new().ldx(DW, R0, R1, 20).exit().build(), "invalid ctx access off=20 size=8");
    reject(&Asm::new().ldx(DW, R0, R1, 280).exit().build(), "invalid ctx access off=280 size=8");
    // A constant offset folded into the pointer counts too.
    reject(&Asm::new().alu(ALU_ADD, R1, 4).ldx(W, R0, R1, 8).exit().build(), "invalid ctx access off=12 size=4");
}

#[test]
fn ctx_data_and_scratch_pointers_are_read_only() {
    reject(&Asm::new().st(DW, R1, 0, 0).ret0().build(), "invalid ctx access off=0 size=8 (write)");
    reject(&Asm::new().st(DW, R1, 272, 0).ret0().build(), "invalid ctx access off=272 size=8 (write)");
}

#[test]
fn store_into_read_only_map() {
    let e = reject(&Asm::new().ld_map_value(R2, 1, 0).st(DW, R2, 0, 1).ret0().build(), "write into read-only map '.rodata'");
    assert!(matches!(e, VerifyError::ReadOnlyMap { insn: 2, .. }));
}

#[test]
fn narrow_spill_read_with_another_size_is_unbounded() {
    // The 4-byte field holds 0..=0xff8, but a 2-byte read at +2 is other data.
    let p =
        Asm::new().ldx(DW, R2, R1, 0).ldx(H, R3, R2, 0).alu32(ALU_AND, R3, 0xff8).stx(W, R10, R3, -8).ldx(H, R4, R10, -6).alur(ALU_ADD, R2, R4).ldx(DW, R0, R2, 0).exit().build();
    reject(&p, "invalid access to data block off=65535 size=8");
}

#[test]
fn data_block_size_comes_from_the_environment() {
    let p = Asm::new().ldx(DW, R2, R1, 0).ldx(DW, R0, R2, 504).exit().build();
    assert!(check_data_size(&p, 512).is_ok());
    let p = Asm::new().ldx(DW, R2, R1, 0).ldx(DW, R0, R2, 512).exit().build();
    let e = check_data_size(&p, 512).unwrap_err();
    assert_eq!(e.to_string(), "invalid access to data block off=512 size=8 (insn 1)");
    assert!(check_data_size(&p, 4096).is_ok());
}
