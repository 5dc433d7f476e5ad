//! Helper-call rejections: argument types, key/value memory, leaks.

mod verifier_common;
use ebpf_runtime::insn::*;
use ebpf_runtime::verifier::VerifyError;
use verifier_common::*;

/// `key` set up at r10-8 (8 bytes, initialised), r2 pointing to it.
fn with_key() -> Asm {
    Asm::new().st(DW, R10, -8, 0).movr(R2, R10).alu(ALU_ADD, R2, -8)
}

#[test]
fn map_argument_must_be_a_map_handle() {
    let p = with_key().mov(R1, 0).call(helper_id::MAP_LOOKUP_ELEM).ret0().build();
    let e = reject(&p, "R1 type=scalar expected=map_ptr for helper map_lookup_elem");
    assert!(matches!(e, VerifyError::HelperArg { insn: 4, reg: 1, .. }));
    let p = with_key().call(helper_id::MAP_LOOKUP_ELEM).ret0().build();
    reject(&p, "R1 type=ctx expected=map_ptr");
}

#[test]
fn key_must_be_a_pointer_to_memory() {
    let p = Asm::new().ld_map(R1, 0).mov(R2, 0).call(helper_id::MAP_LOOKUP_ELEM).ret0().build();
    reject(&p, "R2 type=scalar expected=pointer to key for helper map_lookup_elem");
    let p = Asm::new().ld_map(R1, 0).movr(R2, R1).call(helper_id::MAP_LOOKUP_ELEM).ret0().build();
    reject(&p, "R2 type=map_ptr expected=pointer to key");
}

#[test]
fn key_must_be_initialised() {
    let p = Asm::new().ld_map(R1, 2).movr(R2, R10).alu(ALU_ADD, R2, -8).call(helper_id::MAP_LOOKUP_ELEM).ret0().build();
    reject(&p, "invalid read from stack off=-8 size=8 (insn 4)");
    // The hash map's key is 8 bytes: 4 initialised bytes are not enough.
    let p = Asm::new().st(W, R10, -8, 0).ld_map(R1, 2).movr(R2, R10).alu(ALU_ADD, R2, -8).call(helper_id::MAP_DELETE_ELEM).ret0().build();
    reject(&p, "invalid read from stack off=-8 size=8");
}

#[test]
fn key_must_be_in_bounds() {
    // 4 bytes of key needed at the last 2 bytes of the block.
    let p = Asm::new().ldx(DW, R2, R1, 0).alu(ALU_ADD, R2, 4094).ld_map(R1, 0).call(helper_id::MAP_LOOKUP_ELEM).ret0().build();
    reject(&p, "invalid access to data block off=4094 size=4");
}

#[test]
fn value_must_cover_value_size() {
    // map 0 has 16-byte values; only 8 bytes are initialised.
    let p = with_key()
        .st(W, R10, -12, 0)
        .st(DW, R10, -24, 0)
        .ld_map(R1, 0)
        .movr(R2, R10)
        .alu(ALU_ADD, R2, -12)
        .movr(R3, R10)
        .alu(ALU_ADD, R3, -24)
        .mov(R4, 0)
        .call(helper_id::MAP_UPDATE_ELEM)
        .ret0()
        .build();
    reject(&p, "invalid read from stack off=-24 size=16");
}

#[test]
fn spilled_pointer_in_a_value_is_a_leak() {
    let p = Asm::new()
        .st(DW, R10, -8, 0)
        .stx(DW, R10, R1, -16)
        .ld_map(R1, 2)
        .movr(R2, R10)
        .alu(ALU_ADD, R2, -8)
        .movr(R3, R10)
        .alu(ALU_ADD, R3, -16)
        .mov(R4, 0)
        .call(helper_id::MAP_UPDATE_ELEM)
        .ret0()
        .build();
    let e = reject(&p, "pointer leak: helper map_update_elem would read a spilled pointer from stack off=-16");
    assert!(matches!(e, VerifyError::PointerLeakStackArg { .. }));
}

#[test]
fn scalar_argument_must_not_be_a_pointer() {
    let p = Asm::new()
        .st(DW, R10, -8, 0)
        .st(DW, R10, -16, 0)
        .movr(R4, R1)
        .ld_map(R1, 2)
        .movr(R2, R10)
        .alu(ALU_ADD, R2, -8)
        .movr(R3, R10)
        .alu(ALU_ADD, R3, -16)
        .call(helper_id::MAP_UPDATE_ELEM)
        .ret0()
        .build();
    let e = reject(&p, "pointer leak: R4 passes a ctx pointer to helper map_update_elem");
    assert!(matches!(e, VerifyError::PointerLeakHelper { reg: 4, .. }));
}

#[test]
fn scalar_argument_must_be_initialised() {
    let p = Asm::new()
        .st(DW, R10, -8, 0)
        .st(DW, R10, -16, 0)
        .ld_map(R1, 2)
        .movr(R2, R10)
        .alu(ALU_ADD, R2, -8)
        .movr(R3, R10)
        .alu(ALU_ADD, R3, -16)
        .call(helper_id::MAP_UPDATE_ELEM)
        .ret0()
        .build();
    reject(&p, "R4 !read_ok");
}

#[test]
fn trace_printk_size_must_be_constant() {
    let p = Asm::new().st(DW, R10, -8, 0).ldx(W, R2, R1, 8).movr(R1, R10).alu(ALU_ADD, R1, -8).call(helper_id::TRACE_PRINTK).exit().build();
    reject(&p, "R2 type=scalar expected=constant size > 0 for helper trace_printk");
}

#[test]
fn trace_printk_must_not_print_pointers() {
    let p = Asm::new()
        .st(DW, R10, -8, 0x7025) // "%p"
        .movr(R3, R1)
        .movr(R1, R10)
        .alu(ALU_ADD, R1, -8)
        .mov(R2, 3)
        .call(helper_id::TRACE_PRINTK)
        .exit()
        .build();
    reject(&p, "pointer leak: R3 passes a ctx pointer to helper trace_printk");
}

#[test]
fn trace_printk_format_must_be_in_bounds() {
    let p = Asm::new().st(DW, R10, -8, 0).movr(R1, R10).alu(ALU_ADD, R1, -8).mov(R2, 16).call(helper_id::TRACE_PRINTK).exit().build();
    reject(&p, "invalid access to stack off=-8 size=16");
}

#[test]
fn null_check_refines_copies_of_the_pointer() {
    // r6 is a copy made before the check; it is usable after checking r0.
    let p =
        with_key().ld_map(R1, 0).alu(ALU_ADD, R2, 4).call(helper_id::MAP_LOOKUP_ELEM).movr(R6, R0).jmp(JMP_JNE, R0, 0, "ok").ret0().label("ok").ldx(DW, R0, R6, 8).exit().build();
    accept(&p);
    // ...and on the null side it is the scalar 0, not a pointer.
    let p =
        with_key().ld_map(R1, 0).alu(ALU_ADD, R2, 4).call(helper_id::MAP_LOOKUP_ELEM).movr(R6, R0).jmp(JMP_JNE, R0, 0, "ok").ldx(DW, R0, R6, 8).exit().label("ok").ret0().build();
    reject(&p, "R6 invalid mem access 'scalar'");
}
