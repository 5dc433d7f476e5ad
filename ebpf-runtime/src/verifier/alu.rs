//! ALU and ALU64 instructions: scalar transfer functions, pointer
//! arithmetic (add/sub of bounded scalars only), and the 32-bit forms.
//!
//! Shift amounts: an immediate out of range is refused by the static pass;
//! a register amount not proven below the width gives an unknown result
//! (rbpf and the x86 JIT mask the amount, so any value is possible).

use super::error::VerifyError;
use super::regs::{Ptr, PtrKind, Reg, PTR_OFF_MAX};
use super::scalar::Scalar;
use super::state::State;
use crate::insn::*;

const U32_MAX: u64 = 0xffff_ffff;

fn op_name(op: u8) -> &'static str {
    match op {
        ALU_ADD => "+",
        ALU_SUB => "-",
        ALU_MUL => "*",
        ALU_DIV => "/",
        ALU_OR => "|",
        ALU_AND => "&",
        ALU_LSH => "<<",
        ALU_RSH => ">>",
        ALU_NEG => "neg",
        ALU_MOD => "%",
        ALU_XOR => "^",
        ALU_ARSH => "s>>",
        ALU_END => "bswap",
        _ => "?",
    }
}

fn read(st: &State, insn: usize, reg: u8) -> Result<Reg, VerifyError> {
    match st.regs[usize::from(reg)] {
        Reg::NotInit => Err(VerifyError::UninitRegister { insn, reg }),
        r => Ok(r),
    }
}

/// Executes one ALU/ALU64 instruction on `st`. `last_id` is the last value
/// id given out: a 64-bit copy of a non-constant scalar shares an id with
/// its source (given now if it had none), as in Linux.
pub fn step(st: &mut State, ins: &Insn, insn: usize, last_id: &mut u32) -> Result<(), VerifyError> {
    let is64 = ins.class() == CLASS_ALU64;
    let op = ins.opc & 0xf0;
    let dst = ins.dst;
    if op == ALU_MOV && ins.off != 0 {
        // movsx (CPU v4, checked by the static pass): dst = (s<off>) src.
        let bits = u32::from(ins.off.unsigned_abs());
        let r = match read(st, insn, ins.src)? {
            Reg::Scalar(a) if is64 => a.sext(bits),
            Reg::Scalar(a) => a.sext(bits).trunc32(),
            _ => return Err(VerifyError::PointerArith { insn, reg: ins.src, op: "movsx" }),
        };
        st.regs[usize::from(dst)] = Reg::Scalar(r);
        return Ok(());
    }
    if op == ALU_END {
        // Byte order conversion; opcode bit 0x08 selects to_be (a swap on
        // our little-endian hosts), otherwise to_le (a truncation).
        let r = match read(st, insn, dst)? {
            // ALU64 END is bswap (CPU v4): always a swap.
            Reg::Scalar(a) => a.endian(ins.imm.unsigned_abs(), is64 || ins.opc & SRC_X != 0),
            _ => return Err(VerifyError::PointerArith { insn, reg: dst, op: op_name(op) }),
        };
        st.regs[usize::from(dst)] = Reg::Scalar(r);
        return Ok(());
    }
    #[allow(clippy::cast_sign_loss)] // the immediate is sign-extended to 64 bits, as rbpf does
    let imm = Scalar::constant(i64::from(ins.imm) as u64);
    let src = if ins.opc & SRC_X != 0 { read(st, insn, ins.src)? } else { Reg::Scalar(imm) };

    let result = if op == ALU_MOV {
        match src {
            Reg::Scalar(s) if !is64 => Reg::Scalar(s.trunc32()),
            Reg::Scalar(mut s) if ins.opc & SRC_X != 0 && s.as_const().is_none() => {
                if s.id == 0 {
                    *last_id += 1;
                    s.id = *last_id;
                    st.regs[usize::from(ins.src)] = Reg::Scalar(s);
                }
                Reg::Scalar(s)
            }
            Reg::Ptr(p) if !is64 => return Err(VerifyError::PointerAlu32 { insn, reg: ins.src, kind: p.kind.name() }),
            r => r,
        }
    } else {
        let d = read(st, insn, dst)?;
        match (d, src) {
            (Reg::Scalar(_), Reg::Scalar(_)) if ins.off == 1 => Reg::Scalar(signed_div(is64)),
            (Reg::Scalar(a), Reg::Scalar(b)) => {
                let r = if is64 { scalar64(op, &a, &b) } else { scalar32(op, &a, &b) };
                Reg::Scalar(r)
            }
            (Reg::Ptr(p), _) | (_, Reg::Ptr(p)) if !is64 => {
                let reg = if matches!(d, Reg::Ptr(_)) { dst } else { ins.src };
                return Err(VerifyError::PointerAlu32 { insn, reg, kind: p.kind.name() });
            }
            (Reg::Ptr(p), Reg::Scalar(s)) if op == ALU_ADD || op == ALU_SUB => Reg::Ptr(ptr_add(p, &s, op == ALU_SUB, insn, dst)?),
            (Reg::Scalar(s), Reg::Ptr(p)) if op == ALU_ADD => Reg::Ptr(ptr_add(p, &s, false, insn, ins.src)?),
            (Reg::Ptr(_), _) => return Err(VerifyError::PointerArith { insn, reg: dst, op: op_name(op) }),
            _ => return Err(VerifyError::PointerArith { insn, reg: ins.src, op: op_name(op) }),
        }
    };
    st.regs[usize::from(dst)] = result;
    Ok(())
}

/// `p + s` (or `p - s`): only for pointers into memory regions, with the
/// scalar bounded so that offsets stay far from overflow.
fn ptr_add(p: Ptr, s: &Scalar, negate: bool, insn: usize, reg: u8) -> Result<Ptr, VerifyError> {
    match p.kind {
        PtrKind::MapValueOrNull(_) => return Err(VerifyError::PointerArithOnNull { insn, reg, kind: p.kind.name() }),
        PtrKind::MapHandle(_) => return Err(VerifyError::PointerArith { insn, reg, op: "+" }),
        _ => {}
    }
    if s.smin < -PTR_OFF_MAX || s.smax > PTR_OFF_MAX {
        return Err(VerifyError::PointerArithUnbounded { insn, reg });
    }
    let mut q = p;
    if s.smin == s.smax {
        q.off = if negate { p.off - s.smin } else { p.off + s.smin };
        if q.off.abs() > PTR_OFF_MAX {
            return Err(VerifyError::PointerArithUnbounded { insn, reg });
        }
    } else {
        q.var = if negate { p.var.sub(s) } else { p.var.add(s) };
        if q.var.smin < -PTR_OFF_MAX || q.var.smax > PTR_OFF_MAX {
            return Err(VerifyError::PointerArithUnbounded { insn, reg });
        }
    }
    Ok(q)
}

/// Shift amount as a constant below `width`, if it is one.
fn shift_const(b: &Scalar, width: u64) -> Option<u32> {
    b.as_const().filter(|k| *k < width).and_then(|k| u32::try_from(k).ok())
}

fn scalar64(op: u8, a: &Scalar, b: &Scalar) -> Scalar {
    match op {
        ALU_ADD => a.add(b),
        ALU_SUB => a.sub(b),
        ALU_MUL => a.mul(b),
        ALU_DIV => a.div(b),
        ALU_MOD => a.rem(b),
        ALU_OR => a.or(b),
        ALU_AND => a.and(b),
        ALU_XOR => a.xor(b),
        ALU_NEG => Scalar::constant(0).sub(a),
        ALU_LSH | ALU_RSH | ALU_ARSH => match shift_const(b, 64) {
            Some(k) if op == ALU_LSH => a.lsh(k),
            Some(k) if op == ALU_RSH => a.rsh(k),
            Some(k) => a.arsh(k),
            None if b.umax < 64 && op == ALU_RSH => Scalar::urange(0, a.umax >> b.umin),
            None => Scalar::unknown(),
        },
        _ => Scalar::unknown(),
    }
}

/// ALU32: computed on the low 32 bits of both operands, result zero-extended.
fn scalar32(op: u8, a: &Scalar, b: &Scalar) -> Scalar {
    let (ta, tb) = (a.trunc32(), b.trunc32());
    let r = match op {
        // rbpf: a 32-bit modulo by zero leaves all 64 bits of dst unchanged.
        ALU_MOD if tb.umin == 0 => {
            if a.umax <= U32_MAX {
                Scalar::urange(0, a.umax)
            } else {
                Scalar::unknown()
            }
        }
        ALU_NEG => Scalar::constant(0).sub(&ta),
        ALU_ARSH => match shift_const(b, 32) {
            Some(k) if ta.umax <= 0x7fff_ffff => ta.rsh(k),
            Some(k) => {
                let sext = Scalar { tnum: ta.tnum.sext32(), ..Scalar::unknown() }.normalize();
                sext.map_or_else(|| Scalar::bits(32), |s| s.arsh(k))
            }
            None => Scalar::bits(32),
        },
        ALU_LSH | ALU_RSH => match shift_const(b, 32) {
            Some(k) => scalar64(op, &ta, &Scalar::constant(u64::from(k))),
            None if b.umax < 32 && op == ALU_RSH => Scalar::urange(0, ta.umax >> b.umin),
            None => Scalar::bits(32),
        },
        _ => scalar64(op, &ta, &tb),
    };
    if op == ALU_MOD && tb.umin == 0 {
        return r;
    }
    r.trunc32()
}

/// `sdiv`/`smod` (CPU v4): any value of the width. Sound for every input,
/// including the ISA's x / 0 = 0, x % 0 = x and INT_MIN / -1 = INT_MIN;
/// tracking signed quotients precisely is left for when a program needs it.
fn signed_div(is64: bool) -> Scalar {
    if is64 {
        Scalar::unknown()
    } else {
        Scalar::bits(32)
    }
}
