//! Static checks before abstract interpretation (Linux's `check_cfg` and
//! the opcode checks): known opcodes only, reserved fields zero, registers
//! in range, r10 never written, complete `lddw`s, jump targets in range and
//! not into an `lddw`, every instruction reachable, no falling off the end.
//! The opcode set is CPU v1-v4 (`bswap`, `gotol`, `movsx`, sign-extending
//! loads, signed division, atomics); `callx`, kfuncs and legacy packet
//! loads are refused by name.

use super::error::VerifyError;
use super::helpers;
use super::Env;
use crate::insn::*;

/// What the static pass learned about the control flow.
#[derive(Debug, Clone)]
pub struct Cfg {
    /// Instructions where states are stored and compared (jump targets and
    /// the fall-through of conditional jumps).
    pub prune_point: Vec<bool>,
    /// Whether some jump goes backwards (a loop).
    pub has_back_edge: bool,
    /// Per instruction, the registers (bit i = ri) that may be read before
    /// being written on some path starting there.
    pub live_in: Vec<u16>,
}

/// Runs every static check.
pub fn check(prog: &[Insn], env: &Env) -> Result<Cfg, VerifyError> {
    let len = prog.len();
    if len == 0 {
        return Err(VerifyError::EmptyProgram { insn: 0 });
    }
    if len > env.limits.prog_len_max {
        return Err(VerifyError::TooLong { insn: env.limits.prog_len_max, len, max: env.limits.prog_len_max });
    }
    // Second slots of lddw are not instructions.
    let mut second = vec![false; len];
    let mut pc = 0;
    while pc < len {
        if prog[pc].opc == OP_LDDW {
            if pc + 1 >= len {
                return Err(VerifyError::BadLddw { insn: pc });
            }
            second[pc + 1] = true;
            pc += 2;
        } else {
            pc += 1;
        }
    }
    let mut succs: Vec<[Option<usize>; 2]> = vec![[None, None]; len];
    let mut prune_point = vec![false; len];
    let mut has_back_edge = false;
    for pc in 0..len {
        if second[pc] {
            continue;
        }
        let ins = &prog[pc];
        check_insn(prog, pc, env)?;
        let next = if ins.opc == OP_LDDW { pc + 2 } else { pc + 1 };
        let class = ins.class();
        let op = ins.opc & 0xf0;
        let is_jmp = class == CLASS_JMP || class == CLASS_JMP32;
        let fall = (next < len).then_some(next);
        let s = if is_jmp && op == JMP_EXIT {
            [None, None]
        } else if is_jmp && op != JMP_CALL {
            let target = i64::try_from(pc).unwrap_or(i64::MAX) + 1 + jump_offset(ins);
            let t = usize::try_from(target).ok().filter(|t| *t < len).ok_or(VerifyError::JumpOutOfRange { insn: pc, target })?;
            if second[t] {
                return Err(VerifyError::JumpIntoLddw { insn: pc, target: t });
            }
            has_back_edge |= t <= pc;
            prune_point[t] = true;
            if op == JMP_JA {
                [Some(t), None]
            } else {
                if next >= len {
                    return Err(VerifyError::FallsOffEnd { insn: pc });
                }
                prune_point[next] = true;
                [Some(t), fall]
            }
        } else {
            if next >= len {
                return Err(VerifyError::FallsOffEnd { insn: pc });
            }
            [fall, None]
        };
        succs[pc] = s;
    }
    // Local calls: the target must be an instruction; the callee is
    // reachable through the call (the call's own successor is pc + 1).
    let mut callee = vec![None; len];
    for pc in (0..len).filter(|pc| !second[*pc]) {
        if let Some(target) = super::calls::call_target(prog, pc) {
            let t = usize::try_from(target).ok().filter(|t| *t < len).ok_or(VerifyError::JumpOutOfRange { insn: pc, target })?;
            if second[t] {
                return Err(VerifyError::JumpIntoLddw { insn: pc, target: t });
            }
            callee[pc] = Some(t);
        }
    }
    super::calls::check_functions(prog, &second, &super::calls::function_starts(prog, &second))?;
    // Reachability from the entry.
    let mut seen = vec![false; len];
    let mut work = vec![0usize];
    seen[0] = true;
    while let Some(pc) = work.pop() {
        for t in succs[pc].iter().flatten().chain(callee[pc].iter()) {
            if !seen[*t] {
                seen[*t] = true;
                work.push(*t);
            }
        }
    }
    if let Some(pc) = (0..len).find(|pc| !seen[*pc] && !second[*pc]) {
        return Err(VerifyError::Unreachable { insn: pc });
    }
    let live_in = super::liveness::live_in(prog, &succs, &second);
    Ok(Cfg { prune_point, has_back_edge, live_in })
}

/// The relative target of a jump: `imm` for `gotol` (JMP32 JA), else `off`.
pub fn jump_offset(ins: &Insn) -> i64 {
    if ins.class() == CLASS_JMP32 && ins.opc & 0xf0 == JMP_JA {
        i64::from(ins.imm)
    } else {
        i64::from(ins.off)
    }
}

fn reg_ok(insn: usize, reg: u8) -> Result<(), VerifyError> {
    if reg > 10 {
        return Err(VerifyError::InvalidRegister { insn, reg });
    }
    Ok(())
}

fn dst_writable(insn: usize, reg: u8) -> Result<(), VerifyError> {
    reg_ok(insn, reg)?;
    if reg == 10 {
        return Err(VerifyError::FramePointerWrite { insn });
    }
    Ok(())
}

fn zero(insn: usize, v: i64, field: &'static str) -> Result<(), VerifyError> {
    if v != 0 {
        return Err(VerifyError::ReservedField { insn, field });
    }
    Ok(())
}

fn unknown(insn: usize, opc: u8) -> VerifyError {
    VerifyError::UnknownOpcode { insn, opc }
}

fn unsupported(insn: usize, what: &'static str) -> VerifyError {
    VerifyError::Unsupported { insn, what }
}

fn check_insn(prog: &[Insn], pc: usize, env: &Env) -> Result<(), VerifyError> {
    let ins = &prog[pc];
    let (opc, class, op) = (ins.opc, ins.class(), ins.opc & 0xf0);
    match class {
        CLASS_ALU | CLASS_ALU64 => check_alu(ins, pc),
        CLASS_LDX => {
            match opc & 0xe0 {
                MODE_MEM => {}
                MODE_MEMSX if opc & 0x18 != SIZE_DW => {}
                _ => return Err(unknown(pc, opc)),
            }
            dst_writable(pc, ins.dst)?;
            reg_ok(pc, ins.src)?;
            zero(pc, i64::from(ins.imm), "imm")
        }
        CLASS_ST => {
            if opc & 0xe0 != MODE_MEM {
                return Err(unknown(pc, opc));
            }
            reg_ok(pc, ins.dst)?;
            zero(pc, i64::from(ins.src), "src")
        }
        CLASS_STX => {
            match opc & 0xe0 {
                MODE_MEM => {}
                MODE_ATOMIC => return check_atomic(ins, pc),
                _ => return Err(unknown(pc, opc)),
            }
            reg_ok(pc, ins.dst)?;
            reg_ok(pc, ins.src)?;
            zero(pc, i64::from(ins.imm), "imm")
        }
        CLASS_LD => {
            if matches!(opc & 0xe0, MODE_ABS | MODE_IND) {
                return Err(unsupported(pc, "legacy packet access (BPF_LD_ABS/BPF_LD_IND)"));
            }
            if opc != OP_LDDW {
                return Err(unknown(pc, opc));
            }
            check_lddw(prog, pc, env)
        }
        _ => check_jmp(ins, pc, class, op),
    }
}

fn check_alu(ins: &Insn, pc: usize) -> Result<(), VerifyError> {
    let (opc, op) = (ins.opc, ins.opc & 0xf0);
    let x = opc & SRC_X != 0;
    if op > ALU_END {
        return Err(unknown(pc, opc));
    }
    if op == ALU_END {
        if ins.class() == CLASS_ALU64 && x {
            return Err(unknown(pc, opc));
        }
        dst_writable(pc, ins.dst)?;
        zero(pc, i64::from(ins.src), "src")?;
        zero(pc, i64::from(ins.off), "off")?;
        if !matches!(ins.imm, 16 | 32 | 64) {
            return Err(VerifyError::BadEndianWidth { insn: pc, imm: ins.imm });
        }
        return Ok(());
    }
    let movsx_widths: &[i16] = if ins.class() == CLASS_ALU64 { &[8, 16, 32] } else { &[8, 16] };
    if op == ALU_MOV && x && movsx_widths.contains(&ins.off) {
        // movsx (CPU v4): sign-extends the low `off` bits of src.
        dst_writable(pc, ins.dst)?;
        reg_ok(pc, ins.src)?;
        return zero(pc, i64::from(ins.imm), "imm");
    }
    // sdiv/smod (CPU v4): off = 1.
    let signed_div = matches!(op, ALU_DIV | ALU_MOD) && ins.off == 1;
    if ins.off != 0 && !signed_div {
        return Err(VerifyError::ReservedField { insn: pc, field: "off" });
    }
    if op == ALU_NEG {
        if x {
            return Err(unknown(pc, opc));
        }
        zero(pc, i64::from(ins.src), "src")?;
        zero(pc, i64::from(ins.imm), "imm")?;
        return dst_writable(pc, ins.dst);
    }
    dst_writable(pc, ins.dst)?;
    if x {
        reg_ok(pc, ins.src)?;
        zero(pc, i64::from(ins.imm), "imm")
    } else {
        zero(pc, i64::from(ins.src), "src")?;
        if matches!(op, ALU_LSH | ALU_RSH | ALU_ARSH) {
            let width: u32 = if ins.class() == CLASS_ALU64 { 64 } else { 32 };
            if ins.imm < 0 || ins.imm.unsigned_abs() >= width {
                return Err(VerifyError::InvalidShift { insn: pc, amount: i64::from(ins.imm), width });
            }
        }
        Ok(())
    }
}

fn check_lddw(prog: &[Insn], pc: usize, env: &Env) -> Result<(), VerifyError> {
    let (ins, next) = (&prog[pc], &prog[pc + 1]);
    dst_writable(pc, ins.dst)?;
    zero(pc, i64::from(ins.off), "off")?;
    if next.opc != 0 || next.dst != 0 || next.src != 0 || next.off != 0 {
        return Err(VerifyError::BadLddw { insn: pc });
    }
    match ins.src {
        0 => Ok(()),
        PSEUDO_MAP_IDX | PSEUDO_MAP_IDX_VALUE => {
            let map = usize::try_from(ins.imm).ok().filter(|i| *i < env.maps.len()).ok_or(VerifyError::InvalidMapIndex { insn: pc, index: ins.imm, count: env.maps.len() })?;
            if ins.src == PSEUDO_MAP_IDX_VALUE {
                let size = env.maps[map].value_size;
                let offset = i64::from(next.imm);
                if offset < 0 || offset >= i64::from(size) {
                    return Err(VerifyError::GlobalOffset { insn: pc, map, offset, size });
                }
            } else {
                zero(pc, i64::from(next.imm), "imm of the second slot")?;
            }
            Ok(())
        }
        PSEUDO_MAP_FD | PSEUDO_MAP_VALUE => Err(VerifyError::UnrelocatedMap { insn: pc, src: ins.src }),
        src => Err(VerifyError::BadLddwSource { insn: pc, src }),
    }
}

fn check_jmp(ins: &Insn, pc: usize, class: u8, op: u8) -> Result<(), VerifyError> {
    let opc = ins.opc;
    let x = opc & SRC_X != 0;
    match op {
        JMP_JA => {
            if x {
                return Err(unknown(pc, opc));
            }
            zero(pc, i64::from(ins.dst), "dst")?;
            zero(pc, i64::from(ins.src), "src")?;
            if class == CLASS_JMP32 {
                // gotol (CPU v4): the target is in imm.
                zero(pc, i64::from(ins.off), "off")
            } else {
                zero(pc, i64::from(ins.imm), "imm")
            }
        }
        JMP_CALL | JMP_EXIT if class == CLASS_JMP32 => Err(unknown(pc, opc)),
        JMP_CALL => {
            if x {
                return Err(unsupported(pc, "indirect call (BPF_CALLX)"));
            }
            zero(pc, i64::from(ins.dst), "dst")?;
            zero(pc, i64::from(ins.off), "off")?;
            match ins.src {
                CALL_HELPER => {
                    if helpers::proto(ins.imm).is_none() {
                        return Err(VerifyError::UnknownHelper { insn: pc, id: ins.imm });
                    }
                    Ok(())
                }
                // Target and function structure: `check` and calls.rs.
                CALL_LOCAL => Ok(()),
                _ => Err(unsupported(pc, "kfunc call")),
            }
        }
        JMP_EXIT => {
            if x {
                return Err(unknown(pc, opc));
            }
            zero(pc, i64::from(ins.dst), "dst")?;
            zero(pc, i64::from(ins.src), "src")?;
            zero(pc, i64::from(ins.off), "off")?;
            zero(pc, i64::from(ins.imm), "imm")
        }
        0xe0 | 0xf0 => Err(unknown(pc, opc)),
        _ => {
            reg_ok(pc, ins.dst)?;
            if x {
                reg_ok(pc, ins.src)?;
                zero(pc, i64::from(ins.imm), "imm")
            } else {
                zero(pc, i64::from(ins.src), "src")
            }
        }
    }
}

/// `BPF_ATOMIC` (CPU v3): 32- or 64-bit, one of add/or/and/xor (with or
/// without `BPF_FETCH`), xchg or cmpxchg. Where it may point is the memory
/// check's job (`mem::atomic`).
fn check_atomic(ins: &Insn, pc: usize) -> Result<(), VerifyError> {
    if !matches!(ins.opc & 0x18, SIZE_W | SIZE_DW) {
        return Err(unknown(pc, ins.opc));
    }
    if !matches!(ins.imm, 0x00 | 0x01 | 0x40 | 0x41 | 0x50 | 0x51 | 0xa0 | 0xa1 | 0xe1 | 0xf1) {
        return Err(VerifyError::ReservedField { insn: pc, field: "imm (atomic operation)" });
    }
    reg_ok(pc, ins.dst)?;
    reg_ok(pc, ins.src)
}
