//! Rejections by the static pass: one test per kind.

mod verifier_common;
use ebpf_runtime::insn::*;
use ebpf_runtime::verifier::{Limits, VerifyError};
use verifier_common::*;

fn raw(opc: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn { opc, dst, src, off, imm }
}

#[test]
fn empty_program() {
    assert!(matches!(check(&[]), Err(VerifyError::EmptyProgram { .. })));
}

#[test]
fn too_long() {
    let mut p = vec![raw(CLASS_ALU64 | ALU_MOV, 0, 0, 0, 0); 9];
    p.push(raw(CLASS_JMP | JMP_EXIT, 0, 0, 0, 0));
    let e = check_with(&p, Limits { prog_len_max: 8, ..Limits::default() }).unwrap_err();
    assert!(matches!(e, VerifyError::TooLong { len: 10, max: 8, .. }), "{e}");
}

#[test]
fn unknown_opcode() {
    let e = reject(&Asm::new().raw(raw(0xff, 0, 0, 0, 0)).ret0().build(), "unknown opcode 0xff (insn 0)");
    assert!(matches!(e, VerifyError::UnknownOpcode { insn: 0, opc: 0xff }));
    // NEG with a register source does not exist.
    reject(&Asm::new().raw(raw(CLASS_ALU64 | ALU_NEG | SRC_X, 0, 1, 0, 0)).ret0().build(), "unknown opcode");
}

#[test]
fn malformed_atomics_are_refused() {
    // imm 0x02 is no atomic operation; 8- and 16-bit atomics do not exist.
    let p = Asm::new().st(DW, R10, -8, 0).raw(raw(CLASS_STX | MODE_ATOMIC | SIZE_DW, 10, 1, -8, 0x02)).ret0().build();
    reject(&p, "reserved field imm (atomic operation)");
    let p = Asm::new().st(DW, R10, -8, 0).raw(raw(CLASS_STX | MODE_ATOMIC | SIZE_B, 10, 1, -8, 0)).ret0().build();
    reject(&p, "unknown opcode");
}

#[test]
fn legacy_packet_loads_are_refused_by_name() {
    reject(&Asm::new().raw(raw(CLASS_LD | MODE_ABS | SIZE_W, 0, 0, 0, 0)).exit().build(), "legacy packet access");
    reject(&Asm::new().raw(raw(CLASS_LD | MODE_IND | SIZE_B, 0, 1, 0, 0)).exit().build(), "legacy packet access");
}

#[test]
fn division_offsets_other_than_signed_are_refused() {
    // off = 1 is sdiv/smod; any other offset is a reserved field.
    let bad = raw(CLASS_ALU64 | ALU_DIV | SRC_K, 0, 0, 2, 3);
    reject(&Asm::new().mov(R0, 1).raw(bad).exit().build(), "reserved field off");
}

#[test]
fn malformed_cpu_v4_forms_are_refused() {
    // movsx widths: 8/16/32 in ALU64, 8/16 in ALU32.
    let movsx = raw(CLASS_ALU | ALU_MOV | SRC_X, 0, 1, 32, 0);
    reject(&Asm::new().mov(R1, 1).raw(movsx).exit().build(), "reserved field off");
    // There is no 8-byte sign-extending load, and no register form of bswap.
    reject(&Asm::new().raw(raw(CLASS_LDX | MODE_MEMSX | SIZE_DW, 0, 1, 0, 0)).exit().build(), "unknown opcode 0x99");
    reject(&Asm::new().mov(R0, 1).raw(raw(CLASS_ALU64 | ALU_END | SRC_X, 0, 0, 0, 64)).exit().build(), "unknown opcode 0xdf");
    // gotol keeps its target in imm; off must be zero.
    reject(&Asm::new().raw(raw(CLASS_JMP32 | JMP_JA, 0, 0, 1, 0)).ret0().build(), "reserved field off");
}

#[test]
fn callx_kfuncs_and_malformed_local_calls_are_refused() {
    // The caller falls through into the callee at slot 2.
    let local = raw(CLASS_JMP | JMP_CALL, 0, CALL_LOCAL, 0, 1);
    reject(&Asm::new().raw(local).ret0().ret0().build(), "bpf-to-bpf call: function falls through into the next one (insn 1)");
    // A call to no instruction.
    let local = raw(CLASS_JMP | JMP_CALL, 0, CALL_LOCAL, 0, 9);
    reject(&Asm::new().raw(local).ret0().build(), "jump out of range");
    let callx = raw(CLASS_JMP | JMP_CALL | SRC_X, 1, 0, 0, 0);
    reject(&Asm::new().raw(callx).ret0().build(), "indirect call");
    let kfunc = raw(CLASS_JMP | JMP_CALL, 0, 2, 0, 1);
    reject(&Asm::new().raw(kfunc).ret0().build(), "kfunc call");
}

#[test]
fn reserved_fields_must_be_zero() {
    let e = reject(&Asm::new().raw(raw(CLASS_ALU64 | ALU_ADD | SRC_K, 0, 3, 0, 1)).ret0().build(), "reserved field src");
    assert_eq!(e.insn(), 0);
    reject(&Asm::new().mov(R0, 0).raw(raw(CLASS_JMP | JMP_EXIT, 0, 0, 0, 1)).build(), "reserved field imm");
    reject(&Asm::new().raw(raw(CLASS_ALU64 | ALU_ADD | SRC_K, 0, 0, 4, 1)).ret0().build(), "reserved field off");
}

#[test]
fn invalid_register() {
    reject(&Asm::new().mov(11, 0).ret0().build(), "invalid register r11");
}

#[test]
fn frame_pointer_is_read_only() {
    reject(&Asm::new().alu(ALU_ADD, R10, 8).ret0().build(), "frame pointer is read only");
    reject(&Asm::new().ldx(DW, R10, R1, 0).ret0().build(), "frame pointer is read only");
}

#[test]
fn jump_out_of_range() {
    let p = vec![raw(CLASS_JMP | JMP_JA, 0, 0, 5, 0), raw(CLASS_JMP | JMP_EXIT, 0, 0, 0, 0)];
    reject(&p, "jump out of range from insn 0 to 6");
    let p = vec![raw(CLASS_JMP | JMP_JA, 0, 0, -3, 0), raw(CLASS_JMP | JMP_EXIT, 0, 0, 0, 0)];
    reject(&p, "jump out of range from insn 0 to -2");
}

#[test]
fn jump_into_the_middle_of_lddw() {
    let p = vec![raw(CLASS_JMP | JMP_JA, 0, 0, 1, 0), raw(OP_LDDW, 0, 0, 0, 1), raw(0, 0, 0, 0, 0), raw(CLASS_JMP | JMP_EXIT, 0, 0, 0, 0)];
    reject(&p, "jump into the middle of ldimm64 from insn 0 to 2");
}

#[test]
fn incomplete_or_malformed_lddw() {
    reject(&[raw(OP_LDDW, 0, 0, 0, 1)], "invalid ldimm64");
    let p = vec![raw(OP_LDDW, 0, 0, 0, 1), raw(0x07, 0, 0, 0, 0), raw(CLASS_JMP | JMP_EXIT, 0, 0, 0, 0)];
    reject(&p, "invalid ldimm64");
}

#[test]
fn map_index_out_of_range() {
    reject(&Asm::new().ld_map(R1, 3).ret0().build(), "map index 3 out of range: the object has 3 maps");
}

#[test]
fn unrelocated_map_reference() {
    let p = vec![raw(OP_LDDW, 1, PSEUDO_MAP_FD, 0, 3), raw(0, 0, 0, 0, 0), raw(CLASS_JMP | JMP_EXIT, 0, 0, 0, 0)];
    reject(&p, "unrelocated map reference src=1");
}

#[test]
fn unknown_lddw_source() {
    let p = vec![raw(OP_LDDW, 1, 4, 0, 0), raw(0, 0, 0, 0, 0), raw(CLASS_JMP | JMP_EXIT, 0, 0, 0, 0)];
    reject(&p, "unknown ldimm64 source 4");
}

#[test]
fn global_data_offset_outside_value() {
    reject(&Asm::new().ld_map_value(R1, 1, 8).ret0().build(), "global data offset 8 outside the 8-byte value");
}

#[test]
fn unknown_helper() {
    let e = reject(&Asm::new().call(77).exit().build(), "unknown helper 77 (insn 0)");
    assert!(matches!(e, VerifyError::UnknownHelper { insn: 0, id: 77 }));
}

#[test]
fn bad_byte_swap_width() {
    let p = Asm::new().mov(R0, 1).raw(raw(CLASS_ALU | ALU_END, 0, 0, 0, 24)).exit().build();
    reject(&p, "invalid byte swap width 24");
}

#[test]
fn immediate_shift_out_of_range_is_refused() {
    reject(&Asm::new().mov(R0, 1).alu(ALU_LSH, R0, 64).exit().build(), "invalid shift 64 for a 64-bit operation");
    reject(&Asm::new().mov(R0, 1).alu32(ALU_RSH, R0, 32).exit().build(), "invalid shift 32 for a 32-bit operation");
    reject(&Asm::new().mov(R0, 1).alu(ALU_ARSH, R0, -1).exit().build(), "invalid shift -1");
}

#[test]
fn unreachable_instruction() {
    let e = reject(&Asm::new().ret0().ret0().build(), "unreachable insn 2");
    assert_eq!(e.insn(), 2);
}

#[test]
fn falling_off_the_end() {
    reject(&Asm::new().mov(R0, 0).build(), "falls off its end after insn 0");
    reject(&Asm::new().mov(R0, 0).label("x").jmp(JMP_JEQ, R0, 0, "x").build(), "falls off its end after insn 1");
}

/// Arbitrary instruction streams (seeded, reproducible) never make the
/// verifier panic, and every rejection names an instruction of the program.
#[test]
fn random_instruction_streams_are_handled() {
    let mut x: u64 = 0x1234_5678_9abc_def0;
    let mut next = || {
        // xorshift64: a fixed, dependency-free sequence.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut accepted = 0;
    for _ in 0..20_000 {
        let len = usize::try_from(next() % 24 + 1).expect("small");
        let mut p: Vec<Insn> = (0..len)
            .map(|_| {
                let b = next().to_le_bytes();
                Insn::decode(b)
            })
            .collect();
        // Mostly valid opcodes with sane fields, so that the walk runs.
        const OPS: [u8; 24] = [0x07, 0x0f, 0x17, 0x1f, 0x27, 0x2f, 0x37, 0x47, 0x57, 0x5f, 0x67, 0x77, 0x87, 0x97, 0xa7, 0xb7, 0xbf, 0xc7, 0x04, 0xb4, 0xbc, 0x15, 0x55, 0x05];
        for i in p.iter_mut() {
            if next() % 4 != 0 {
                i.opc = OPS[usize::try_from(next() % 24).expect("small")];
                i.dst %= 6;
                i.src = if i.opc & SRC_X != 0 { i.src % 6 } else { 0 };
                i.off = if i.class() == CLASS_JMP { i.off.rem_euclid(4) } else { 0 };
                i.imm = if i.opc & SRC_X != 0 && i.class() != CLASS_JMP { 0 } else { i.imm % 64 };
            }
        }
        let mut init: Vec<Insn> = (0..6).map(|r| Insn { opc: CLASS_ALU64 | ALU_MOV, dst: r, imm: 1, ..Insn::default() }).collect();
        init.append(&mut p);
        let mut p = init;
        p.push(Insn { opc: CLASS_JMP | JMP_EXIT, ..Insn::default() });
        match check(&p) {
            Ok(_) => accepted += 1,
            Err(e) => assert!(e.insn() <= p.len(), "{e} names an insn outside the program"),
        }
    }
    // Some random programs are valid (e.g. a lone `mov r0, imm; exit`).
    assert!(accepted > 0);
}
