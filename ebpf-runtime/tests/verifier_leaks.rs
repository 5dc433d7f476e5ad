//! Pointer leaks (issue 15): no host address may reach a helper argument,
//! the scratch buffer, the data block, a map value, a context field or the
//! return value, on a straight path or through pruning.
//!
//! The pruning variants follow one shape: a branch on a byte of the block
//! whose fall-through side (explored first) leaves the register unset or a
//! scalar, and whose taken side puts a pointer in it; both meet at `join`,
//! where the stored state of the first path must not cover the second.

mod verifier_common;
use ebpf_runtime::insn::*;
use ebpf_runtime::verifier::VerifyError;
use verifier_common::*;

/// A program fragment and the rejection it must get.
type Case = (fn(Asm) -> Asm, &'static str);

/// r6 = ctx, r7 = data, r8 = scratch, r9 = data[0]; "%p\n" at r10-8.
fn prologue() -> Asm {
    Asm::new().movr(R6, R1).ldx(DW, R7, R6, 0).ldx(DW, R8, R6, 272).ldx(B, R9, R7, 0).st(DW, R10, -8, 0x000a_7025)
}

/// Branch: the fall-through runs `first`, the taken side `second`, then
/// both continue at `join`.
fn two_paths(first: impl FnOnce(Asm) -> Asm, second: impl FnOnce(Asm) -> Asm) -> Asm {
    let a = prologue().jmp(JMP_JNE, R9, 0, "second");
    let a = first(a).ja("join").label("second");
    second(a).label("join")
}

/// `trace_printk("%p\n", 4, r3, r4, r5)` with the optional arguments as set.
fn printk(a: Asm) -> Asm {
    a.movr(R1, R10).alu(ALU_ADD, R1, -8).mov(R2, 4).call(helper_id::TRACE_PRINTK).ret0()
}

/// The reproduction: the path with r3 unset is explored first and
/// stored at `join`; the path with the data pointer in r3 used to be pruned
/// there (an unset register matched anything) and printed a host address.
#[test]
fn pruning_does_not_let_a_pointer_into_an_unset_printk_argument() {
    for reg in [R3, R4, R5] {
        for (ptr, kind) in [(R7, "data block"), (R8, "scratch"), (R6, "ctx"), (R10, "stack")] {
            let p = printk(two_paths(|a| a, |a| a.movr(reg, ptr))).build();
            let e = reject(&p, &format!("pointer leak: R{reg} passes a {kind} pointer to helper trace_printk"));
            assert!(matches!(e, VerifyError::PointerLeakHelper { .. }), "{e}");
        }
    }
}

/// The same shape with the pointer on the path explored first: refused too.
#[test]
fn pointer_on_the_first_path_is_refused() {
    let p = printk(two_paths(|a| a.movr(R3, R7), |a| a)).build();
    reject(&p, "pointer leak: R3 passes a data block pointer to helper trace_printk");
}

/// Controls: unset on both paths, or a scalar on the second, is accepted;
/// so is a scalar on the first path and unset on the second.
#[test]
fn unset_or_scalar_printk_arguments_are_accepted() {
    accept(&printk(two_paths(|a| a, |a| a)).build());
    accept(&printk(two_paths(|a| a, |a| a.mov(R3, 7))).build());
    accept(&printk(two_paths(|a| a.ldx(DW, R3, R7, 8), |a| a)).build());
}

/// Scalar helper arguments other than trace_printk's (map_update_elem's
/// flags) through pruning.
#[test]
fn pruning_does_not_let_a_pointer_into_a_scalar_helper_argument() {
    let sink = |a: Asm| {
        a.st(DW, R10, -16, 0).st(DW, R10, -24, 0).ld_map(R1, 2).movr(R2, R10).alu(ALU_ADD, R2, -16).movr(R3, R10).alu(ALU_ADD, R3, -24).call(helper_id::MAP_UPDATE_ELEM).ret0()
    };
    let p = sink(two_paths(|a| a.mov(R4, 0), |a| a.movr(R4, R8))).build();
    reject(&p, "pointer leak: R4 passes a scratch pointer to helper map_update_elem");
}

/// A spilled pointer in memory a helper reads (a map value, a key, the
/// format string), through pruning: the first path spills a scalar.
#[test]
fn pruning_does_not_let_a_spilled_pointer_into_helper_memory() {
    // map_update_elem's value (map 2: 8-byte key and value).
    let update =
        |a: Asm| a.st(DW, R10, -16, 0).ld_map(R1, 2).movr(R2, R10).alu(ALU_ADD, R2, -16).movr(R3, R10).alu(ALU_ADD, R3, -24).mov(R4, 0).call(helper_id::MAP_UPDATE_ELEM).ret0();
    let p = update(two_paths(|a| a.st(DW, R10, -24, 0), |a| a.stx(DW, R10, R7, -24))).build();
    reject(&p, "pointer leak: helper map_update_elem would read a spilled pointer from stack off=-24");
    // map_lookup_elem's key.
    let lookup = |a: Asm| a.ld_map(R1, 2).movr(R2, R10).alu(ALU_ADD, R2, -24).call(helper_id::MAP_LOOKUP_ELEM).ret0();
    let p = lookup(two_paths(|a| a.st(DW, R10, -24, 0), |a| a.stx(DW, R10, R6, -24))).build();
    reject(&p, "pointer leak: helper map_lookup_elem would read a spilled pointer from stack off=-24");
    // trace_printk's format bytes.
    let fmt = |a: Asm| a.movr(R1, R10).alu(ALU_ADD, R1, -24).mov(R2, 8).call(helper_id::TRACE_PRINTK).ret0();
    let p = fmt(two_paths(|a| a.st(DW, R10, -24, 0x25), |a| a.stx(DW, R10, R8, -24))).build();
    reject(&p, "pointer leak: helper trace_printk would read a spilled pointer from stack off=-24");
}

/// Stores of a pointer into every region a user can read, through pruning.
#[test]
fn pruning_does_not_let_a_pointer_into_user_visible_memory() {
    let cases: [Case; 4] = [
        (|a| a.stx(DW, R8, R3, 0).ret0(), "pointer leak: storing a pointer to scratch"),
        (|a| a.stx(DW, R7, R3, 8).ret0(), "pointer leak: storing a pointer to data block"),
        (|a| a.stx(DW, R6, R3, 16).ret0(), "pointer leak: storing a pointer to ctx"),
        (|a| a.ld_map_value(R2, 0, 0).stx(DW, R2, R3, 0).ret0(), "pointer leak: storing a pointer to map_value"),
    ];
    for (sink, msg) in cases {
        let p = sink(two_paths(|a| a.mov(R3, 1), |a| a.movr(R3, R10))).build();
        let e = reject(&p, msg);
        assert!(matches!(e, VerifyError::PointerLeakStore { .. }), "{e}");
    }
    // A pointer written through a spill slot: the first path spills a
    // scalar, the second a pointer; the slot is then read back and stored.
    let p = two_paths(|a| a.st(DW, R10, -16, 5), |a| a.stx(DW, R10, R6, -16)).ldx(DW, R3, R10, -16).stx(DW, R8, R3, 0).ret0().build();
    reject(&p, "pointer leak: storing a pointer to scratch");
    // Part of a spilled pointer read as data is refused on its own.
    let p = two_paths(|a| a.st(DW, R10, -16, 5), |a| a.stx(DW, R10, R6, -16)).ldx(W, R3, R10, -12).stx(W, R8, R3, 0).ret0().build();
    reject(&p, "invalid partial access to a spilled pointer at stack off=-12 size=4");
}

/// The return value, through pruning.
#[test]
fn pruning_does_not_let_a_pointer_into_the_return_value() {
    let p = two_paths(|a| a.mov(R0, 0), |a| a.movr(R0, R7)).exit().build();
    let e = reject(&p, "pointer leak: R0 holds a data block pointer at exit");
    assert!(matches!(e, VerifyError::PointerLeakReturn { .. }));
}

/// Pointer-to-scalar conversions that would let a program compute on an
/// address and then store the result: every one is refused.
#[test]
fn no_operation_turns_a_pointer_into_a_readable_scalar() {
    let ops: [Case; 8] = [
        (|a| a.alur(ALU_SUB, R3, R7), "pointer arithmetic with - operator"),
        (|a| a.alu(ALU_AND, R3, 0xfff), "pointer arithmetic with & operator"),
        (|a| a.alu(ALU_RSH, R3, 12), "pointer arithmetic with >> operator"),
        (|a| a.alu32(ALU_ADD, R3, 0), "32-bit operation on a scratch pointer"),
        (|a| a.mov32r(R3, R3), "32-bit operation on a scratch pointer"),
        (|a| a.alu(ALU_MUL, R3, 1), "pointer arithmetic with * operator"),
        (|a| a.raw(Insn { opc: CLASS_ALU | ALU_END | SRC_X, dst: R3, src: 0, off: 0, imm: 64 }), "bswap"),
        (|a| a.jmp(JMP_JGT, R3, 0x1000, "x").label("x"), "pointer comparison prohibited"),
    ];
    for (op, msg) in ops {
        let p = op(prologue().movr(R3, R8)).stx(DW, R8, R3, 0).ret0().build();
        reject(&p, msg);
    }
}
