//! ISA v4 in the verifier (issue 11): atomics where Linux allows them, and
//! signed division; each rejection names the instruction and the reason.

mod verifier_common;
use ebpf_runtime::insn::*;
use verifier_common::*;

fn raw(opc: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn { opc, dst, src, off, imm }
}

fn atomic(size: u8, dst: u8, src: u8, off: i16, op: i32) -> Insn {
    raw(CLASS_STX | MODE_ATOMIC | size, dst, src, off, op)
}

/// r0 = lookup(map 0, key 0 on the stack), null-checked: a map value
/// pointer for `body`, then `return 0`.
fn with_map_value(body: impl FnOnce(Asm) -> Asm) -> Vec<Insn> {
    let head = Asm::new()
        .st(W, R10, -4, 0)
        .movr(R2, R10)
        .alu(ALU_ADD, R2, -4)
        .ld_map(R1, 0)
        .call(1)
        .jmp(JMP_JEQ, R0, 0, "null");
    body(head).label("null").ret0().build()
}

#[test]
fn atomics_on_stack_map_value_and_scratch_are_accepted() {
    // Every operation, 32 and 64 bits, on an initialised stack slot; the
    // fetch forms and xchg write src, cmpxchg writes r0.
    for op in [0x00, 0x01, 0x40, 0x41, 0x50, 0x51, 0xa0, 0xa1, 0xe1, 0xf1] {
        for size in [W, DW] {
            let p = Asm::new().st(DW, R10, -8, 0).mov(R1, 1).mov(R0, 0).raw(atomic(size, 10, 1, -8, op)).ret0().build();
            accept(&p);
        }
    }
    // __sync_fetch_and_add on a map value.
    accept(&with_map_value(|a| a.mov(R1, 1).raw(atomic(DW, 0, 1, 8, 0x01))));
    // On the scratch (ctx->scratch at offset 272).
    accept(&Asm::new().ldx(DW, R2, R1, 272).mov(R3, 5).raw(atomic(W, 2, 3, 4092, 0x00)).ret0().build());
}

#[test]
fn atomic_results_are_unknown_values() {
    // After a fetch the source register holds what memory held: unknown,
    // so it cannot serve as an offset without a bounds check.
    let p = Asm::new()
        .st(DW, R10, -8, 0)
        .mov(R3, 0)
        .raw(atomic(DW, 10, 3, -8, 0x01))
        .ldx(DW, R2, R1, 0)
        .alur(ALU_ADD, R2, R3)
        .ldx(B, R0, R2, 0)
        .exit()
        .build();
    reject(&p, "unbounded");
}

#[test]
fn atomics_on_ctx_and_data_block_are_refused() {
    let p = Asm::new().mov(R2, 1).raw(atomic(DW, 1, 2, 16, 0x00)).ret0().build();
    reject(&p, "R1 atomic operation on ctx prohibited: only the stack, map values and the scratch allow atomics (insn 1)");
    let p = Asm::new().ldx(DW, R3, R1, 0).mov(R2, 1).raw(atomic(W, 3, 2, 0, 0x00)).ret0().build();
    reject(&p, "atomic operation on data block prohibited");
}

#[test]
fn atomics_misaligned_out_of_bounds_read_only_or_leaking_are_refused() {
    let p = Asm::new().st(DW, R10, -16, 0).st(DW, R10, -8, 0).mov(R1, 1).raw(atomic(DW, 10, 1, -12, 0x00)).ret0().build();
    reject(&p, "misaligned (insn 3)");
    let p = Asm::new().ld_map_value(R2, 0, 4).mov(R3, 1).raw(atomic(DW, 2, 3, 0, 0x00)).ret0().build();
    reject(&p, "misaligned");
    let p = Asm::new().ldx(DW, R2, R1, 272).mov(R3, 5).raw(atomic(DW, 2, 3, 4092, 0x00)).ret0().build();
    reject(&p, "invalid access to scratch");
    // Uninitialised stack.
    let p = Asm::new().mov(R1, 1).raw(atomic(DW, 10, 1, -8, 0x00)).ret0().build();
    reject(&p, "invalid read from stack");
    // The .rodata map (index 1) is read-only.
    let p = Asm::new().ld_map_value(R2, 1, 0).mov(R3, 1).raw(atomic(DW, 2, 3, 0, 0x00)).ret0().build();
    reject(&p, "the map is read-only");
    // A pointer operand would be stored into memory.
    let p = Asm::new().st(DW, R10, -8, 0).movr(R2, R10).raw(atomic(DW, 10, 2, -8, 0xe1)).ret0().build();
    reject(&p, "pointer leak");
    // cmpxchg reads r0.
    let p = Asm::new().st(DW, R10, -8, 0).mov(R1, 1).raw(atomic(DW, 10, 1, -8, 0xf1)).ret0().build();
    reject(&p, "R0 !read_ok");
}

#[test]
fn signed_division_is_accepted_with_an_unknown_result() {
    let sdiv = raw(CLASS_ALU64 | ALU_DIV | SRC_K, 0, 0, 1, -3);
    let smod32 = raw(CLASS_ALU | ALU_MOD | SRC_X, 0, 1, 1, 0);
    accept(&Asm::new().mov(R0, -7).raw(sdiv).mov(R1, 0).raw(smod32).exit().build());
    // The quotient is not tracked: used as an offset it needs a check.
    let p = Asm::new().ldx(DW, R2, R1, 0).mov(R3, 100).raw(raw(CLASS_ALU64 | ALU_DIV | SRC_K, 3, 0, 1, 7)).alur(ALU_ADD, R2, R3).ldx(B, R0, R2, 0).exit().build();
    reject(&p, "unbounded");
}
