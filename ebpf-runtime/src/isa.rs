//! Instruction names for messages, and the structural check every program
//! passes before either engine (interpreter or JIT) sees it: known opcodes,
//! valid registers, complete `lddw`s, jump and call targets inside the
//! program and never inside an `lddw`, a last slot that leaves. The whole ISA
//! v4 of RFC 9669 is accepted (signed division, `movsx`, `bswap`, `gotol`,
//! sign-extending loads, atomics, local calls in both directions, `callx`);
//! the legacy packet loads and kfunc calls are not.
//! Structural only: safety of memory accesses is the verifier's job.

// Program counters are below PROG_SLOTS_MAX (i16::MAX): the casts between
// usize and i64 in jump arithmetic cannot wrap or truncate.
#![allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap, clippy::cast_sign_loss)]

use crate::insn::{self, Insn};

/// Longest program the engines accept, in slots (every slot is reachable
/// with the 16-bit offset of an ordinary jump).
pub const PROG_SLOTS_MAX: usize = i16::MAX as usize;

/// Why the engine cannot run a program.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IsaError {
    #[error("empty program: a program needs at least an `exit`")]
    Empty,
    #[error("program has {slots} instruction slots; the engine runs at most {max}")]
    TooLong { slots: usize, max: usize },
    #[error("{name} (opcode {opc:#04x}, insn {pc}) is not supported by the execution engines{hint}")]
    Unsupported { name: &'static str, opc: u8, pc: usize, hint: &'static str },
    #[error("unknown opcode {opc:#04x} (insn {pc})")]
    UnknownOpcode { opc: u8, pc: usize },
    #[error("invalid register r{reg} (insn {pc}): registers are r0..r10 and r10 is read-only")]
    BadRegister { reg: u8, pc: usize },
    #[error("lddw at insn {pc} has no valid second slot")]
    IncompleteLddw { pc: usize },
    #[error("{what} at insn {pc} targets insn {target}, outside the program or inside an lddw")]
    BadTarget { what: &'static str, pc: usize, target: i64 },
    #[error("invalid {what} immediate {imm} (insn {pc})")]
    BadImmediate { what: &'static str, imm: i32, pc: usize },
    #[error("last instruction (insn {pc}) is not `exit` or a jump")]
    FallsOffEnd { pc: usize },
}

/// The mnemonic of one slot, for messages (`add32`, `ldxdw`, `sdiv64`, ...).
pub fn name(insn: &Insn) -> &'static str {
    let opc = insn.opc;
    match insn.class() {
        insn::CLASS_ALU | insn::CLASS_ALU64 => alu_name(insn),
        insn::CLASS_JMP | insn::CLASS_JMP32 => jmp_name(insn),
        insn::CLASS_LD => match opc {
            insn::OP_LDDW => "lddw",
            _ if opc & 0xe0 == insn::MODE_ABS => "ldabs",
            _ if opc & 0xe0 == insn::MODE_IND => "ldind",
            _ => "ld (unknown mode)",
        },
        insn::CLASS_LDX => match (opc & 0xe0, opc & 0x18) {
            (insn::MODE_MEM, insn::SIZE_B) => "ldxb",
            (insn::MODE_MEM, insn::SIZE_H) => "ldxh",
            (insn::MODE_MEM, insn::SIZE_W) => "ldxw",
            (insn::MODE_MEM, _) => "ldxdw",
            (insn::MODE_MEMSX, insn::SIZE_B) => "ldxsb",
            (insn::MODE_MEMSX, insn::SIZE_H) => "ldxsh",
            (insn::MODE_MEMSX, insn::SIZE_W) => "ldxsw",
            _ => "ldx (unknown mode)",
        },
        insn::CLASS_ST => match (opc & 0xe0, opc & 0x18) {
            (insn::MODE_MEM, insn::SIZE_B) => "stb",
            (insn::MODE_MEM, insn::SIZE_H) => "sth",
            (insn::MODE_MEM, insn::SIZE_W) => "stw",
            (insn::MODE_MEM, _) => "stdw",
            _ => "st (unknown mode)",
        },
        _ => match (opc & 0xe0, opc & 0x18) {
            (insn::MODE_MEM, insn::SIZE_B) => "stxb",
            (insn::MODE_MEM, insn::SIZE_H) => "stxh",
            (insn::MODE_MEM, insn::SIZE_W) => "stxw",
            (insn::MODE_MEM, _) => "stxdw",
            (insn::MODE_ATOMIC, _) => atomic_name(insn.imm),
            _ => "stx (unknown mode)",
        },
    }
}

fn alu_name(insn: &Insn) -> &'static str {
    let is64 = insn.class() == insn::CLASS_ALU64;
    let pick = |a: &'static str, b: &'static str| if is64 { a } else { b };
    let signed = insn.off == 1;
    match insn.opc & 0xf0 {
        insn::ALU_ADD => pick("add64", "add32"),
        insn::ALU_SUB => pick("sub64", "sub32"),
        insn::ALU_MUL => pick("mul64", "mul32"),
        insn::ALU_DIV if signed => pick("sdiv64", "sdiv32"),
        insn::ALU_DIV => pick("div64", "div32"),
        insn::ALU_OR => pick("or64", "or32"),
        insn::ALU_AND => pick("and64", "and32"),
        insn::ALU_LSH => pick("lsh64", "lsh32"),
        insn::ALU_RSH => pick("rsh64", "rsh32"),
        insn::ALU_NEG => pick("neg64", "neg32"),
        insn::ALU_MOD if signed => pick("smod64", "smod32"),
        insn::ALU_MOD => pick("mod64", "mod32"),
        insn::ALU_XOR => pick("xor64", "xor32"),
        insn::ALU_MOV if insn.off != 0 => pick("movsx64", "movsx32"),
        insn::ALU_MOV => pick("mov64", "mov32"),
        insn::ALU_ARSH => pick("arsh64", "arsh32"),
        insn::ALU_END if is64 => "bswap",
        insn::ALU_END if insn.opc & insn::SRC_X != 0 => "be",
        insn::ALU_END => "le",
        _ => "alu (unknown operation)",
    }
}

fn jmp_name(insn: &Insn) -> &'static str {
    let is32 = insn.class() == insn::CLASS_JMP32;
    let pick = |a: &'static str, b: &'static str| if is32 { b } else { a };
    match insn.opc & 0xf0 {
        insn::JMP_JA => pick("ja", "gotol"),
        insn::JMP_JEQ => pick("jeq", "jeq32"),
        insn::JMP_JGT => pick("jgt", "jgt32"),
        insn::JMP_JGE => pick("jge", "jge32"),
        insn::JMP_JSET => pick("jset", "jset32"),
        insn::JMP_JNE => pick("jne", "jne32"),
        insn::JMP_JSGT => pick("jsgt", "jsgt32"),
        insn::JMP_JSGE => pick("jsge", "jsge32"),
        insn::JMP_CALL if insn.opc & insn::SRC_X != 0 => "callx",
        insn::JMP_CALL => "call",
        insn::JMP_EXIT => "exit",
        insn::JMP_JLT => pick("jlt", "jlt32"),
        insn::JMP_JLE => pick("jle", "jle32"),
        insn::JMP_JSLT => pick("jslt", "jslt32"),
        insn::JMP_JSLE => pick("jsle", "jsle32"),
        _ => "jmp (unknown operation)",
    }
}

fn atomic_name(imm: i32) -> &'static str {
    match imm {
        0x00 => "lock add",
        0x01 => "lock fetch add",
        0x40 => "lock or",
        0x41 => "lock fetch or",
        0x50 => "lock and",
        0x51 => "lock fetch and",
        0xa0 => "lock xor",
        0xa1 => "lock fetch xor",
        0xe1 => "lock xchg",
        0xf1 => "lock cmpxchg",
        _ => "lock (unknown operation)",
    }
}

/// Checks that the engines can run `prog` (relocated: no pseudo `lddw`).
/// Structural only (no memory safety).
pub fn check_program(prog: &[Insn]) -> Result<(), IsaError> {
    check(prog, false)
}

/// The same check on a loaded program, whose map and global `lddw`s still
/// carry the pseudo sources `PSEUDO_MAP_IDX`/`PSEUDO_MAP_IDX_VALUE`.
pub fn check_loaded(prog: &[Insn]) -> Result<(), IsaError> {
    check(prog, true)
}

fn check(prog: &[Insn], pseudo: bool) -> Result<(), IsaError> {
    if prog.is_empty() {
        return Err(IsaError::Empty);
    }
    if prog.len() > PROG_SLOTS_MAX {
        return Err(IsaError::TooLong { slots: prog.len(), max: PROG_SLOTS_MAX });
    }
    // Second slots of lddw: no jump may land there.
    let mut second_slot = vec![false; prog.len()];
    let mut pc = 0;
    while pc < prog.len() {
        if prog[pc].opc == insn::OP_LDDW {
            let next = prog.get(pc + 1).ok_or(IsaError::IncompleteLddw { pc })?;
            if next.opc != 0 || next.dst != 0 || next.src != 0 || next.off != 0 {
                return Err(IsaError::IncompleteLddw { pc });
            }
            second_slot[pc + 1] = true;
            pc += 2;
        } else {
            pc += 1;
        }
    }
    let target_ok = |t: i64| t >= 0 && (t as usize) < prog.len() && !second_slot[t as usize];
    let mut pc = 0;
    while pc < prog.len() {
        let i = &prog[pc];
        check_one(i, pc, pseudo)?;
        let class = i.class();
        if class == insn::CLASS_JMP || class == insn::CLASS_JMP32 {
            let op = i.opc & 0xf0;
            if op == insn::JMP_CALL && i.src == insn::CALL_LOCAL && i.opc & insn::SRC_X == 0 {
                let target = pc as i64 + 1 + i64::from(i.imm);
                if !target_ok(target) {
                    return Err(IsaError::BadTarget { what: "local call", pc, target });
                }
            } else if op != insn::JMP_CALL && op != insn::JMP_EXIT {
                // gotol (JMP32 class ja) carries its offset in imm.
                let rel = if i.opc == GOTOL { i64::from(i.imm) } else { i64::from(i.off) };
                let target = pc as i64 + 1 + rel;
                if !target_ok(target) {
                    return Err(IsaError::BadTarget { what: "jump", pc, target });
                }
            }
        }
        pc += if i.opc == insn::OP_LDDW { 2 } else { 1 };
    }
    let last_pc = prog.len() - 1;
    let last = &prog[last_pc];
    // Execution must never run past the last slot.
    let leaves = matches!(last.opc, EXIT | JA | GOTOL);
    if second_slot[last_pc] || !leaves {
        return Err(IsaError::FallsOffEnd { pc: last_pc });
    }
    Ok(())
}

/// `movsx` forms: 32-bit class from 8/16 bits, 64-bit class from 8/16/32.
pub(crate) fn is_movsx(i: &Insn) -> bool {
    match i.class() {
        insn::CLASS_ALU => matches!(i.off, 8 | 16),
        _ => matches!(i.off, 8 | 16 | 32),
    }
}

fn unsupported(i: &Insn, pc: usize, hint: &'static str) -> IsaError {
    IsaError::Unsupported { name: name(i), opc: i.opc, pc, hint }
}

fn check_regs(i: &Insn, pc: usize, writes_dst: bool) -> Result<(), IsaError> {
    if i.src > 10 {
        return Err(IsaError::BadRegister { reg: i.src, pc });
    }
    if i.dst > 10 || (writes_dst && i.dst == 10) {
        return Err(IsaError::BadRegister { reg: i.dst, pc });
    }
    Ok(())
}

pub(crate) const GOTOL: u8 = insn::CLASS_JMP32 | insn::JMP_JA;
pub(crate) const JA: u8 = insn::CLASS_JMP | insn::JMP_JA;
const EXIT: u8 = insn::CLASS_JMP | insn::JMP_EXIT;
pub(crate) const BSWAP: u8 = insn::CLASS_ALU64 | insn::ALU_END;

fn check_one(i: &Insn, pc: usize, pseudo: bool) -> Result<(), IsaError> {
    let opc = i.opc;
    match i.class() {
        insn::CLASS_ALU | insn::CLASS_ALU64 => {
            let op = opc & 0xf0;
            if op > insn::ALU_END {
                return Err(IsaError::UnknownOpcode { opc, pc });
            }
            let is64 = i.class() == insn::CLASS_ALU64;
            if op == insn::ALU_END {
                if is64 && opc != BSWAP {
                    return Err(IsaError::UnknownOpcode { opc, pc });
                }
                if !matches!(i.imm, 16 | 32 | 64) {
                    return Err(IsaError::BadImmediate { what: "byte swap width", imm: i.imm, pc });
                }
            } else if op == insn::ALU_MOV && opc & insn::SRC_X != 0 && is_movsx(i) {
                // movsx
            } else if (op == insn::ALU_DIV || op == insn::ALU_MOD) && i.off == 1 {
                // sdiv, smod
            } else if i.off != 0 {
                return Err(IsaError::BadImmediate { what: "ALU offset", imm: i32::from(i.off), pc });
            }
            if op == insn::ALU_NEG && opc & insn::SRC_X != 0 {
                return Err(IsaError::UnknownOpcode { opc, pc });
            }
            check_regs(i, pc, true)
        }
        insn::CLASS_JMP | insn::CLASS_JMP32 => {
            let op = opc & 0xf0;
            let is32 = i.class() == insn::CLASS_JMP32;
            match op {
                insn::JMP_JA if is32 && (opc != GOTOL || i.off != 0) => Err(IsaError::UnknownOpcode { opc, pc }),
                insn::JMP_JA if is32 => Ok(()),
                insn::JMP_JA if opc & insn::SRC_X != 0 => Err(IsaError::UnknownOpcode { opc, pc }),
                insn::JMP_CALL | insn::JMP_EXIT if is32 => Err(IsaError::UnknownOpcode { opc, pc }),
                // callx: the helper id is in `dst`.
                insn::JMP_CALL if opc & insn::SRC_X != 0 => check_regs(i, pc, false),
                insn::JMP_CALL if i.src == insn::CALL_HELPER || i.src == insn::CALL_LOCAL => Ok(()),
                insn::JMP_CALL => Err(unsupported(i, pc, " (kfunc calls are not supported)")),
                insn::JMP_EXIT if opc & insn::SRC_X != 0 => Err(IsaError::UnknownOpcode { opc, pc }),
                _ if op > insn::JMP_JSLE => Err(IsaError::UnknownOpcode { opc, pc }),
                _ => check_regs(i, pc, false),
            }
        }
        insn::CLASS_LD => match opc & 0xe0 {
            insn::MODE_IMM if opc == insn::OP_LDDW => {
                // Pseudo sources must have been rewritten before execution.
                let is_pseudo = i.src == insn::PSEUDO_MAP_IDX || i.src == insn::PSEUDO_MAP_IDX_VALUE;
                if i.src != 0 && !(pseudo && is_pseudo) {
                    return Err(IsaError::BadImmediate { what: "lddw source (unrelocated pseudo lddw)", imm: i32::from(i.src), pc });
                }
                check_regs(i, pc, true)
            }
            insn::MODE_ABS | insn::MODE_IND => Err(unsupported(i, pc, " (legacy packet access)")),
            _ => Err(IsaError::UnknownOpcode { opc, pc }),
        },
        insn::CLASS_LDX => match opc & 0xe0 {
            insn::MODE_MEM => check_regs(i, pc, true),
            insn::MODE_MEMSX if opc & 0x18 != insn::SIZE_DW => check_regs(i, pc, true),
            _ => Err(IsaError::UnknownOpcode { opc, pc }),
        },
        insn::CLASS_ST => match opc & 0xe0 {
            insn::MODE_MEM => check_regs(i, pc, false),
            _ => Err(IsaError::UnknownOpcode { opc, pc }),
        },
        _ => match opc & 0xe0 {
            insn::MODE_MEM => check_regs(i, pc, false),
            insn::MODE_ATOMIC if opc & 0x18 == insn::SIZE_W || opc & 0x18 == insn::SIZE_DW => {
                if !matches!(i.imm, 0x00 | 0x01 | 0x40 | 0x41 | 0x50 | 0x51 | 0xa0 | 0xa1 | 0xe1 | 0xf1) {
                    return Err(IsaError::BadImmediate { what: "atomic operation", imm: i.imm, pc });
                }
                check_regs(i, pc, false)
            }
            _ => Err(IsaError::UnknownOpcode { opc, pc }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ins(opc: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
        Insn { opc, dst, src, off, imm }
    }
    const EXIT: Insn = Insn { opc: 0x95, dst: 0, src: 0, off: 0, imm: 0 };

    #[test]
    fn accepts_v3_program() {
        let p = [ins(0xb7, 0, 0, 0, 1), ins(0x15, 0, 0, 1, 0), ins(0x07, 0, 0, 0, 1), EXIT];
        assert_eq!(check_program(&p), Ok(()));
    }

    #[test]
    fn accepts_v4_and_names_it() {
        let p = [ins(0x3f, 0, 1, 1, 0), ins(0xdb, 10, 1, -8, 0xf1), ins(0xd7, 0, 0, 0, 16), ins(0xbf, 0, 1, 8, 0), ins(0x8d, 2, 0, 0, 0), EXIT];
        assert_eq!(check_program(&p), Ok(()));
        assert_eq!(name(&p[0]), "sdiv64");
        assert_eq!(name(&p[1]), "lock cmpxchg");
        // A backward local call is fine.
        let p = [ins(0x05, 0, 0, 1, 0), EXIT, ins(0x85, 0, 1, -3, 0), EXIT];
        assert_eq!(check_program(&p), Ok(()));
        // Bad atomic operation, ALU offset, and legacy packet loads.
        assert!(matches!(check_program(&[ins(0xdb, 10, 1, -8, 0x02), EXIT]), Err(IsaError::BadImmediate { .. })));
        assert!(matches!(check_program(&[ins(0x3f, 0, 1, 2, 0), EXIT]), Err(IsaError::BadImmediate { .. })));
        assert!(check_program(&[ins(0x20, 0, 0, 0, 0), EXIT]).unwrap_err().to_string().starts_with("ldabs "));
    }

    #[test]
    fn last_slot_must_leave() {
        // A conditional jump last can fall off the end.
        let p = [ins(0xb7, 0, 0, 0, 0), ins(0x15, 0, 0, -2, 1)];
        assert!(matches!(check_program(&p), Err(IsaError::FallsOffEnd { pc: 1 })));
        let p = [ins(0xb7, 0, 0, 0, 0), EXIT, ins(0x05, 0, 0, -3, 0)];
        assert_eq!(check_program(&p), Ok(()));
    }

    #[test]
    fn rejects_structural_errors() {
        assert_eq!(check_program(&[]), Err(IsaError::Empty));
        assert!(matches!(check_program(&[ins(0x05, 0, 0, 5, 0), EXIT]), Err(IsaError::BadTarget { .. })));
        assert!(matches!(check_program(&[ins(0x18, 0, 0, 0, 1)]), Err(IsaError::IncompleteLddw { pc: 0 })));
        assert!(matches!(check_program(&[ins(0xb7, 10, 0, 0, 1), EXIT]), Err(IsaError::BadRegister { reg: 10, .. })));
        assert!(matches!(check_program(&[ins(0xff, 0, 0, 0, 0), EXIT]), Err(IsaError::UnknownOpcode { .. })));
        assert!(matches!(check_program(&[ins(0xb7, 0, 0, 0, 0)]), Err(IsaError::FallsOffEnd { .. })));
        // A jump into the second slot of an lddw.
        let p = [ins(0x05, 0, 0, 1, 0), ins(0x18, 0, 0, 0, 1), Insn::default(), EXIT];
        assert!(matches!(check_program(&p), Err(IsaError::BadTarget { target: 2, .. })));
    }
}
