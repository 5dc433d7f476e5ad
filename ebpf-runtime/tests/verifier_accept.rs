//! Realistic storage functions the verifier must accept.

mod verifier_common;
use ebpf_runtime::insn::*;
use verifier_common::programs::*;
use verifier_common::*;

#[test]
fn minimal_program_is_accepted() {
    let s = accept(&Asm::new().ret0().build());
    assert_eq!(s.insns, 2);
    assert_eq!(s.insns_processed, 2);
}

#[test]
fn btree_node_search_is_accepted() {
    let s = accept(&btree_search());
    assert!(s.insns_processed > 100, "the loop must have been walked: {s:?}");
}

#[test]
fn filter_reduce_loop_is_accepted() {
    let s = accept(&filter_reduce());
    assert!(s.insns_processed >= 512 * 8, "every iteration is walked: {s:?}");
}

#[test]
fn map_lookup_with_null_check_is_accepted() {
    accept(&map_lookup());
}

#[test]
fn map_update_and_delete_with_stack_key_and_value() {
    accept(
        &Asm::new()
            .st(DW, R10, -8, 7) // key (8 bytes for the hash map)
            .st(DW, R10, -16, 1) // value
            .ld_map(R1, 2)
            .movr(R2, R10)
            .alu(ALU_ADD, R2, -8)
            .movr(R3, R10)
            .alu(ALU_ADD, R3, -16)
            .mov(R4, 0)
            .call(helper_id::MAP_UPDATE_ELEM)
            .ld_map(R1, 2)
            .movr(R2, R10)
            .alu(ALU_ADD, R2, -8)
            .call(helper_id::MAP_DELETE_ELEM)
            .call(helper_id::KTIME_GET_NS)
            .exit()
            .build(),
    );
}

#[test]
fn trace_printk_with_format_on_stack() {
    accept(
        &Asm::new()
            .st(DW, R10, -8, 0x0a6425) // "%d\n\0"
            .movr(R1, R10)
            .alu(ALU_ADD, R1, -8)
            .mov(R2, 4)
            .mov(R3, 42)
            .call(helper_id::TRACE_PRINTK)
            .exit()
            .build(),
    );
}

#[test]
fn spilled_pointer_is_restored_by_an_aligned_fill() {
    accept(&Asm::new().ldx(DW, R2, R1, 0).stx(DW, R10, R2, -16).ldx(DW, R3, R10, -16).ldx(DW, R0, R3, 4088).exit().build());
}

#[test]
fn spilled_scalar_keeps_its_bounds() {
    accept(
        &Asm::new()
            .ldx(DW, R2, R1, 0)
            .ldx(B, R3, R2, 0) // 0..=255
            .stx(DW, R10, R3, -8)
            .ldx(DW, R4, R10, -8)
            .alur(ALU_ADD, R2, R4)
            .ldx(DW, R0, R2, 3800)
            .exit()
            .build(),
    );
}

#[test]
fn bounds_check_then_variable_access() {
    accept(&Asm::new().ldx(DW, R2, R1, 0).ldx(DW, R3, R2, 0).jmp(JMP_JGT, R3, 4088, "out").alur(ALU_ADD, R2, R3).ldx(DW, R0, R2, 0).exit().label("out").ret0().build());
}

#[test]
fn jmp32_bound_on_a_32_bit_value() {
    accept(&Asm::new().ldx(DW, R2, R1, 272).ldx(W, R3, R2, 0).jmp32(JMP_JGT, R3, 4095, "out").alur(ALU_ADD, R2, R3).ldx(B, R0, R2, 0).exit().label("out").ret0().build());
}

#[test]
fn alu32_results_are_bounded_by_masks() {
    accept(&Asm::new().ldx(DW, R2, R1, 0).ldx(DW, R3, R2, 0).mov32r(R4, R3).alu32(ALU_AND, R4, 0xff8).alur(ALU_ADD, R2, R4).ldx(DW, R0, R2, 0).exit().build());
}

#[test]
fn division_and_modulo_by_zero_are_allowed() {
    // rbpf defines x / 0 = 0 and x % 0 = x, as Linux does.
    accept(&Asm::new().mov(R0, 10).mov(R2, 0).alur(ALU_DIV, R0, R2).alur(ALU_MOD, R0, R2).alu32r(ALU_MOD, R0, R2).exit().build());
}

#[test]
fn modulo_bounds_an_index() {
    accept(&Asm::new().ldx(DW, R2, R1, 0).ldx(DW, R3, R2, 0).alu(ALU_MOD, R3, 4089).alur(ALU_ADD, R2, R3).ldx(DW, R0, R2, 0).exit().build());
}

#[test]
fn ctx_slots_done_and_global_data() {
    accept(
        &Asm::new()
            .ldx(W, R2, R1, 8)
            .ldx(DW, R3, R1, 264) // size[15]
            .st(DW, R1, 136, 0) // next_addr[15]
            .stx(W, R1, R2, 8)
            .ld_map_value(R4, 1, 0) // .rodata
            .ldx(DW, R0, R4, 0)
            .ld_map_value(R5, 0, 8)
            .stx(DW, R5, R3, 0)
            .exit()
            .build(),
    );
}

#[test]
fn infeasible_branch_is_not_walked() {
    // r2 = 5: the jump is always taken, so the bad load is dead code that
    // the verifier proves unreachable by value.
    accept(&Asm::new().mov(R2, 5).jmp(JMP_JEQ, R2, 5, "ok").ldx(DW, R0, R2, 0).exit().label("ok").ret0().build());
}

#[test]
fn narrow_spill_of_a_bounded_value_keeps_its_bounds() {
    // clang spills 32-bit values with 4-byte stores.
    accept(
        &Asm::new()
            .ldx(DW, R2, R1, 0)
            .ldx(H, R3, R2, 0)
            .alu32(ALU_AND, R3, 0xff8)
            .stx(W, R10, R3, -4)
            .mov(R3, 0)
            .ldx(W, R4, R10, -4)
            .alur(ALU_ADD, R2, R4)
            .ldx(DW, R0, R2, 0)
            .exit()
            .build(),
    );
}

fn raw(opc: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn { opc, dst, src, off, imm }
}

#[test]
fn cpu_v4_instructions_the_runtime_lowers() {
    // bswap64 of a constant, gotol over a bad instruction, movsx and ldxs.
    let p = Asm::new()
        .mov(R0, 0x100)
        .raw(raw(CLASS_ALU64 | ALU_END, 0, 0, 0, 16)) // bswap16: 0x0001
        .jmp(JMP_JNE, R0, 1, "bad") // never taken if bswap16 was exact
        .raw(raw(CLASS_JMP32 | JMP_JA, 0, 0, 0, 1)) // gotol +1
        .label("bad")
        .ldx(DW, R0, R9, 0) // r9 is uninitialised: must not be walked
        .ldx(DW, R2, R1, 0)
        .raw(raw(CLASS_LDX | MODE_MEMSX | SIZE_B, 3, 2, 0, 0)) // r3 = (s8) data[0]: -128..=127
        .alu(ALU_ADD, R3, 128) // 0..=255
        .alur(ALU_ADD, R2, R3)
        .ldx(DW, R4, R2, 0)
        .raw(raw(CLASS_ALU64 | ALU_MOV | SRC_X, 5, 4, 16, 0)) // r5 = (s16) r4
        .jmp(JMP_JSLT, R5, 0, "out")
        .alu(ALU_AND, R5, 0xff)
        .exit()
        .label("out")
        .ret0()
        .build();
    accept(&p);
}

#[test]
fn sign_extended_values_are_signed_ranges() {
    // (s8) of a byte may be negative: not usable as an offset unchecked.
    let p = Asm::new().ldx(DW, R2, R1, 0).raw(raw(CLASS_LDX | MODE_MEMSX | SIZE_B, 3, 2, 0, 0)).alur(ALU_ADD, R2, R3).ldx(B, R0, R2, 0).exit().build();
    reject(&p, "invalid access to data block off=-128 size=1");
    // ldxs from the context is refused.
    reject(&Asm::new().raw(raw(CLASS_LDX | MODE_MEMSX | SIZE_W, 0, 1, 8, 0)).exit().build(), "invalid ctx access off=8 size=4");
}
