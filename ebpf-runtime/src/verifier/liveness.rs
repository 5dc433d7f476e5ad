//! Register liveness (a backward dataflow over the control-flow graph): a
//! register that every path from an instruction writes before reading it is
//! dead there, so stored states forget it and pruning is not defeated by
//! leftovers such as a loaded byte that was already tested.

use super::helpers;
use crate::insn::*;

/// Registers read and written by one instruction (bit i = ri).
fn uses_defs(ins: &Insn) -> (u16, u16) {
    let bit = |r: u8| 1u16.checked_shl(u32::from(r)).unwrap_or(0);
    let x = ins.opc & SRC_X != 0;
    let op = ins.opc & 0xf0;
    match ins.class() {
        CLASS_ALU | CLASS_ALU64 => {
            let src = if x && op != ALU_END { bit(ins.src) } else { 0 };
            let dst = if op == ALU_MOV { 0 } else { bit(ins.dst) };
            (src | dst, bit(ins.dst))
        }
        CLASS_LDX => (bit(ins.src), bit(ins.dst)),
        CLASS_ST => (bit(ins.dst), 0),
        CLASS_STX => (bit(ins.dst) | bit(ins.src), 0),
        CLASS_LD => (0, bit(ins.dst)),
        _ => match op {
            JMP_JA => (0, 0),
            JMP_EXIT => (bit(0), 0),
            // A local call passes r1-r5 (we do not know how many it reads).
            JMP_CALL if ins.src == CALL_LOCAL => (0b11_1110, 0b11_1111),
            JMP_CALL => {
                let nargs = helpers::proto(ins.imm).map_or(5, |p| p.args.len());
                let uses = (1..=nargs).fold(0u16, |m, r| m | bit(u8::try_from(r).unwrap_or(0)));
                (uses, 0b11_1111)
            }
            _ => (bit(ins.dst) | if x { bit(ins.src) } else { 0 }, 0),
        },
    }
}

/// Live-in sets per instruction, iterated to a fixpoint.
pub fn live_in(prog: &[Insn], succs: &[[Option<usize>; 2]], second: &[bool]) -> Vec<u16> {
    let ud: Vec<(u16, u16)> = prog.iter().map(uses_defs).collect();
    let mut live = vec![0u16; prog.len()];
    let mut changed = true;
    while changed {
        changed = false;
        for pc in (0..prog.len()).rev() {
            if second[pc] {
                continue;
            }
            let out = succs[pc].iter().flatten().fold(0u16, |m, t| m | live[*t]);
            let (uses, defs) = ud[pc];
            let new = uses | (out & !defs);
            if new != live[pc] {
                live[pc] = new;
                changed = true;
            }
        }
    }
    live
}
