//! ISA v4 and bpf-to-bpf calls in the verifier (issue 11): atomics where
//! Linux allows them, signed division, calls with a frame per function;
//! each rejection names the instruction and the reason.

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
    let head = Asm::new().st(W, R10, -4, 0).movr(R2, R10).alu(ALU_ADD, R2, -4).ld_map(R1, 0).call(1).jmp(JMP_JEQ, R0, 0, "null");
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
    let p = Asm::new().st(DW, R10, -8, 0).mov(R3, 0).raw(atomic(DW, 10, 3, -8, 0x01)).ldx(DW, R2, R1, 0).alur(ALU_ADD, R2, R3).ldx(B, R0, R2, 0).exit().build();
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

/// `call local` to the slot `target` from slot `at`.
fn call_local(at: usize, target: usize) -> Insn {
    let rel = i64::try_from(target).unwrap() - i64::try_from(at).unwrap() - 1;
    raw(CLASS_JMP | JMP_CALL, 0, CALL_LOCAL, 0, i32::try_from(rel).unwrap())
}

#[test]
fn local_call_keeps_the_callers_registers_and_stack() {
    // main: r6 = 8 (a safe offset), stack[-8] = 0; call f; the data block
    // read at r6 is in bounds only if r6 is still 8; stack[-8] still
    // initialised. f: uses r6 and its own stack[-8] freely.
    let mut p = Asm::new()
        .mov(R6, 8)
        .st(DW, R10, -8, 0)
        .ldx(DW, R7, R1, 0) // r7 = data (512 bytes)
        .mov(R1, 3)
        .build();
    p.push(call_local(p.len(), 10));
    p.extend(
        Asm::new()
            .alur(ALU_ADD, R7, R6)
            .ldx(DW, R0, R7, 496) // 8 + 496 + 8 = 512: in bounds
            .ldx(DW, R2, R10, -8)
            .alur(ALU_ADD, R0, R2)
            .exit()
            .build(),
    );
    assert_eq!(p.len(), 10);
    // f(r1): r6 = 100000; stack[-8] = r1; r0 = stack[-8] + r6.
    p.extend(Asm::new().mov(R6, 100_000).stx(DW, R10, R1, -8).ldx(DW, R0, R10, -8).alur(ALU_ADD, R0, R6).exit().build());
    check_data_size(&p, 512).unwrap();
    // The control: main's own r6 = 100000 (f's = 8) is refused at the load,
    // so the acceptance above rests on the caller's r6 surviving the call.
    let mut swapped = p.clone();
    swapped[0] = raw(CLASS_ALU64 | ALU_MOV, 6, 0, 0, 100_000);
    swapped[10] = raw(CLASS_ALU64 | ALU_MOV, 6, 0, 0, 8);
    let e = check_data_size(&swapped, 512).unwrap_err().to_string();
    assert!(e.contains("data block"), "{e}");
}

#[test]
fn local_call_clobbers_r1_to_r5_and_needs_r0() {
    let mut p = Asm::new().mov(R1, 1).build();
    p.push(call_local(1, 4));
    p.extend(Asm::new().movr(R0, R1).exit().build()); // 2, 3
    p.extend(Asm::new().ret0().build()); // f: 4, 5
    reject(&p, "R1 !read_ok (insn 2)");
    let mut p = Vec::new();
    p.push(call_local(0, 2));
    p.extend(Asm::new().exit().build()); // 1
    p.extend(Asm::new().exit().build()); // f: 2, r0 unset
    reject(&p, "R0 !read_ok at exit (insn 2)");
}

#[test]
fn stack_pointers_do_not_cross_frames() {
    let mut p = Asm::new().st(DW, R10, -8, 0).movr(R1, R10).build(); // 0, 1
    p.push(call_local(2, 4));
    p.extend(Asm::new().exit().build()); // 3
    p.extend(Asm::new().ret0().build()); // f: 4, 5
    reject(&p, "bpf-to-bpf call: a pointer to the caller's stack as an argument is not supported (insn 2)");
    let mut p = vec![call_local(0, 3)];
    p.extend(Asm::new().ret0().build()); // 1, 2
    p.extend(Asm::new().movr(R0, R10).exit().build()); // f: 3, 4
    reject(&p, "returning a pointer to the callee's stack (insn 4)");
}

#[test]
fn call_depth_and_combined_stack_are_limited() {
    // f calls itself: the ninth frame is refused.
    let mut p = vec![call_local(0, 3)];
    p.extend(Asm::new().ret0().build()); // 1, 2
    p.push(call_local(3, 3)); // f: 3
    p.extend(Asm::new().ret0().build()); // 4, 5
    reject(&p, "the call chain is deeper than 8 frames (insn 3)");
    // main uses 512 bytes of stack, f 8 more.
    let mut p = Asm::new().st(DW, R10, -512, 0).build(); // 0
    p.push(call_local(1, 4));
    p.extend(Asm::new().ret0().build()); // 2, 3
    p.extend(Asm::new().st(DW, R10, -8, 0).ret0().build()); // f: 4, 5, 6
    reject(&p, "combined stack of the call chain is 520 bytes, more than 512 (insn 6)");
    // Each alone is fine.
    let mut p = Asm::new().st(DW, R10, -256, 0).build();
    p.push(call_local(1, 4));
    p.extend(Asm::new().ret0().build());
    p.extend(Asm::new().st(DW, R10, -256, 0).ret0().build());
    accept(&p);
}

#[test]
fn jumps_stay_in_their_function() {
    let mut p = vec![call_local(0, 3)];
    p.extend(Asm::new().ret0().build()); // 1, 2
    p.push(raw(CLASS_JMP | JMP_JA, 0, 0, -3, 0)); // f: 3 jumps to 1
    reject(&p, "bpf-to-bpf call: jump out of its function (insn 3)");
}
