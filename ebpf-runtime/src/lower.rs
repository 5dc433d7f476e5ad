//! Rewriting a checked program into instructions rbpf 0.4.1 runs correctly
//! on both engines, so that the interpreter and the JIT execute the same code
//! with the ISA's meaning. Each rewrite is exact on a little-endian host.
//!
//! Around rbpf bugs:
//! - `mov32 dst, src`: the JIT emits a 64-bit move (keeps the upper half);
//!   becomes `mov64 dst, src; and32 dst, -1` (a 32-bit x86 `and` zero-extends).
//! - `le16`/`le32`: the JIT emits nothing; become `and64 dst, 0xffff` and
//!   `and32 dst, -1`.
//! - `neg64`: the interpreter negates with an overflow check (panics on
//!   INT64_MIN in debug builds); becomes `xor64 dst, -1; add64 dst, 1`.
//! - `jeq/jne/jgt/jge/jlt/jle dst, K` with K < 0: the interpreter zero-extends
//!   K instead of sign-extending it. Becomes `xor64 dst, -1` (dst = !dst) and
//!   the mirrored compare against `!K`, which is non-negative (`!` reverses
//!   unsigned order), then `xor64 dst, -1` on the fall-through path and in a
//!   trampoline appended after the program on the taken path, which then
//!   jumps to the original target.
//!
//! ISA v4 instructions rbpf lacks that v3 expresses exactly:
//! - `bswapN` is `beN`; `gotol` is `ja` when the offset fits 16 bits;
//! - `movsx dst, src` (from n bits) is `mov64 dst, src; lsh64 dst, 64-n;
//!   arsh64 dst, 64-n` (plus `and32 dst, -1` in the 32-bit class);
//! - `ldxsN dst, [src+off]` is `ldxN` then the same two shifts.
//!
//! Jump offsets and local-call immediates are recomputed for the new layout.

// Program counters are below PROG_SLOTS_MAX (i16::MAX): casts between usize
// and i64 in offset arithmetic cannot wrap or truncate.
#![allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap, clippy::cast_sign_loss)]

use crate::insn::{self, Insn};
use crate::isa::{IsaError, BSWAP, GOTOL, PROG_SLOTS_MAX};

const _: () = assert!(cfg!(target_endian = "little"), "BPF programs are little-endian; the lowering assumes a little-endian host");

/// Where a rewritten jump or call must point once the layout is known.
enum Fix {
    /// `off` of slot `at` to the new position of old slot `old`.
    Off { at: usize, old: usize },
    /// `imm` of slot `at` (local call) to the new position of old slot `old`.
    Imm { at: usize, old: usize },
    /// `off` of slot `at` to new slot `new`.
    OffNew { at: usize, new: usize },
}

fn and32_all(dst: u8) -> Insn {
    Insn { opc: insn::CLASS_ALU | insn::ALU_AND | insn::SRC_K, dst, src: 0, off: 0, imm: -1 }
}

fn not64(dst: u8) -> Insn {
    Insn { opc: insn::CLASS_ALU64 | insn::ALU_XOR | insn::SRC_K, dst, src: 0, off: 0, imm: -1 }
}

fn mov64(dst: u8, src: u8) -> Insn {
    Insn { opc: insn::CLASS_ALU64 | insn::ALU_MOV | insn::SRC_X, dst, src, off: 0, imm: 0 }
}

/// Sign-extends the low `bits` of `dst` to 64 bits with two shifts.
fn push_sign_extend(out: &mut Vec<Insn>, dst: u8, bits: i32) {
    let shift = 64 - bits;
    out.push(Insn { opc: insn::CLASS_ALU64 | insn::ALU_LSH | insn::SRC_K, dst, src: 0, off: 0, imm: shift });
    out.push(Insn { opc: insn::CLASS_ALU64 | insn::ALU_ARSH | insn::SRC_K, dst, src: 0, off: 0, imm: shift });
}

/// The mirrored unsigned compare for `!dst` against `!K`.
fn mirrored(op: u8) -> Option<u8> {
    Some(match op {
        insn::JMP_JEQ => insn::JMP_JEQ,
        insn::JMP_JNE => insn::JMP_JNE,
        insn::JMP_JGT => insn::JMP_JLT,
        insn::JMP_JGE => insn::JMP_JLE,
        insn::JMP_JLT => insn::JMP_JGT,
        insn::JMP_JLE => insn::JMP_JGE,
        _ => return None,
    })
}

fn old_target(pc: usize, rel: i64) -> Result<usize, IsaError> {
    let t = pc as i64 + 1 + rel;
    usize::try_from(t).map_err(|_| IsaError::BadTarget { what: "jump", pc, target: t })
}

/// Rewrites `prog` (which passed [`crate::isa::check_program`]) as the module doc says.
pub fn lower_for_rbpf(prog: &[Insn]) -> Result<Vec<Insn>, IsaError> {
    let mut out = Vec::with_capacity(prog.len() + prog.len() / 8);
    let mut new_pc = Vec::with_capacity(prog.len() + 1);
    let mut fixes = Vec::new();
    // (dst, old target) of each trampoline to append.
    let mut trampolines: Vec<(u8, usize, usize)> = Vec::new();
    let mut second_slot = false;
    for (pc, i) in prog.iter().enumerate() {
        new_pc.push(out.len());
        if second_slot {
            second_slot = false;
            out.push(*i);
            continue;
        }
        second_slot = i.opc == insn::OP_LDDW;
        let op = i.opc & 0xf0;
        let class = i.class();
        match i.opc {
            o if o == insn::CLASS_ALU | insn::ALU_MOV | insn::SRC_X && i.off == 0 => {
                if i.dst != i.src {
                    out.push(mov64(i.dst, i.src));
                }
                out.push(and32_all(i.dst));
            }
            o if o == insn::CLASS_ALU | insn::ALU_END | insn::SRC_K && i.imm == 16 => {
                out.push(Insn { opc: insn::CLASS_ALU64 | insn::ALU_AND | insn::SRC_K, dst: i.dst, src: 0, off: 0, imm: 0xffff });
            }
            o if o == insn::CLASS_ALU | insn::ALU_END | insn::SRC_K && i.imm == 32 => out.push(and32_all(i.dst)),
            o if o == insn::CLASS_ALU64 | insn::ALU_NEG => {
                out.push(not64(i.dst));
                out.push(Insn { opc: insn::CLASS_ALU64 | insn::ALU_ADD | insn::SRC_K, dst: i.dst, src: 0, off: 0, imm: 1 });
            }
            BSWAP => out.push(Insn { opc: insn::CLASS_ALU | insn::ALU_END | insn::SRC_X, ..*i }),
            GOTOL => {
                fixes.push(Fix::Off { at: out.len(), old: old_target(pc, i64::from(i.imm))? });
                out.push(Insn { opc: insn::CLASS_JMP | insn::JMP_JA, dst: 0, src: 0, off: 0, imm: 0 });
            }
            _ if op == insn::ALU_MOV && i.opc & insn::SRC_X != 0 && i.off != 0 && (class == insn::CLASS_ALU || class == insn::CLASS_ALU64) => {
                // movsx (checked: off is 8, 16 or 32).
                if i.dst != i.src {
                    out.push(mov64(i.dst, i.src));
                }
                push_sign_extend(&mut out, i.dst, i32::from(i.off));
                if class == insn::CLASS_ALU {
                    out.push(and32_all(i.dst));
                }
            }
            o if o & 0xe7 == insn::CLASS_LDX | insn::MODE_MEMSX => {
                let (size, bits) = match o & 0x18 {
                    insn::SIZE_B => (insn::SIZE_B, 8),
                    insn::SIZE_H => (insn::SIZE_H, 16),
                    _ => (insn::SIZE_W, 32),
                };
                out.push(Insn { opc: insn::CLASS_LDX | insn::MODE_MEM | size, ..*i });
                push_sign_extend(&mut out, i.dst, bits);
            }
            _ if class == insn::CLASS_JMP && i.opc & insn::SRC_X == 0 && i.imm < 0 && mirrored(op).is_some() => {
                let target = old_target(pc, i64::from(i.off))?;
                out.push(not64(i.dst));
                let at = out.len();
                // !K = -K - 1 is in 0..=i32::MAX for K in i32::MIN..0.
                let not_k = !i.imm;
                out.push(Insn { opc: insn::CLASS_JMP | mirrored(op).unwrap_or(op), dst: i.dst, src: 0, off: 0, imm: not_k });
                out.push(not64(i.dst));
                trampolines.push((i.dst, target, at));
            }
            _ if class == insn::CLASS_JMP || class == insn::CLASS_JMP32 => {
                if op == insn::JMP_CALL && i.src == insn::CALL_LOCAL {
                    fixes.push(Fix::Imm { at: out.len(), old: old_target(pc, i64::from(i.imm))? });
                } else if op != insn::JMP_CALL && op != insn::JMP_EXIT {
                    fixes.push(Fix::Off { at: out.len(), old: old_target(pc, i64::from(i.off))? });
                }
                out.push(*i);
            }
            _ => out.push(*i),
        }
    }
    new_pc.push(out.len());
    for (dst, target, from) in trampolines {
        fixes.push(Fix::OffNew { at: from, new: out.len() });
        out.push(not64(dst));
        fixes.push(Fix::Off { at: out.len(), old: target });
        out.push(Insn { opc: insn::CLASS_JMP | insn::JMP_JA, dst: 0, src: 0, off: 0, imm: 0 });
    }
    if out.len() > PROG_SLOTS_MAX {
        return Err(IsaError::TooLong { slots: out.len(), max: PROG_SLOTS_MAX });
    }
    let too_far = |at: usize| IsaError::TooLong { slots: at, max: PROG_SLOTS_MAX };
    for fix in fixes {
        let (at, new) = match fix {
            Fix::Off { at, old } | Fix::Imm { at, old } => (at, *new_pc.get(old).ok_or(IsaError::BadTarget { what: "jump", pc: at, target: old as i64 })?),
            Fix::OffNew { at, new } => (at, new),
        };
        let rel = new as i64 - (at as i64 + 1);
        match fix {
            Fix::Imm { .. } => out[at].imm = i32::try_from(rel).map_err(|_| too_far(at))?,
            _ => out[at].off = i16::try_from(rel).map_err(|_| too_far(at))?,
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asm::assemble;
    use crate::isa::check_engine;

    #[test]
    fn expands_mov32_and_fixes_offsets() {
        let p = assemble("jeq %r0, 0, +2\nmov32 %r1, %r2\nle16 %r1\nexit").unwrap();
        let l = lower_for_rbpf(&p).unwrap();
        assert_eq!(l.len(), 5);
        assert_eq!(l[0].off, 3, "jump over the expanded mov32");
        assert_eq!((l[1].opc, l[2].opc, l[2].imm), (0xbf, 0x54, -1));
        assert_eq!((l[3].opc, l[3].imm), (0x57, 0xffff));
        let p = assemble("mov32 %r1, %r2\nja -2\nexit").unwrap();
        assert_eq!(lower_for_rbpf(&p).unwrap()[2].off, -3, "backward jump across an expansion");
    }

    #[test]
    fn negative_unsigned_compare_uses_a_trampoline() {
        let p = assemble("jgt %r1, -2, t\nmov %r0, 0\nexit\nt:\nmov %r0, 1\nexit").unwrap();
        let l = lower_for_rbpf(&p).unwrap();
        assert_eq!(check_engine(&l), Ok(()));
        // not, jlt !(-2)=1 -> trampoline, not, ...; trampoline: not, ja t.
        assert_eq!((l[0].opc, l[1].opc, l[1].imm, l[2].opc), (0xa7, 0xa5, 1, 0xa7));
        let tramp = (2 + i64::from(l[1].off)) as usize;
        assert_eq!(tramp, l.len() - 2);
        assert_eq!(l[tramp].opc, 0xa7);
        let t = (tramp as i64 + 2 + i64::from(l[tramp + 1].off)) as usize;
        assert_eq!(l[t], Insn { opc: 0xb7, dst: 0, src: 0, off: 0, imm: 1 });
    }

    #[test]
    fn v4_forms_become_v3() {
        let p = assemble("bswap32 %r0\nmovsx832 %r1, %r2\nldxsh %r3, [%r10-2]\nja32 +0\nneg %r4\nexit").unwrap();
        let l = lower_for_rbpf(&p).unwrap();
        assert_eq!(check_engine(&l), Ok(()));
        assert_eq!(l.len(), 1 + 4 + 3 + 1 + 2 + 1);
    }
}
