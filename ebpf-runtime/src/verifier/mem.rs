//! Loads, stores and helper memory arguments: every access is proven inside
//! its region for every possible offset, stack reads only of initialised
//! bytes, context accesses only to legal fields, and no pointer is written
//! anywhere but a stack slot (a spill).

use super::ctx;
use super::error::VerifyError;
use super::regs::{Ptr, PtrKind, Reg};
use super::scalar::Scalar;
use super::stack::{StackFault, STACK_SIZE};
use super::state::State;
use super::Env;

/// The pointer in register `reg`, or the error for using a non-pointer.
fn base(st: &State, insn: usize, reg: u8) -> Result<Ptr, VerifyError> {
    match st.regs[usize::from(reg)] {
        Reg::NotInit => Err(VerifyError::UninitRegister { insn, reg }),
        Reg::Ptr(p) if !matches!(p.kind, PtrKind::MapHandle(_) | PtrKind::MapValueOrNull(_)) => Ok(p),
        ref other => Err(VerifyError::InvalidMemAccess { insn, reg, kind: other.type_name() }),
    }
}

/// Size in bytes of a bounded region, or `None` for ctx and stack.
fn region_size(env: &Env, kind: PtrKind) -> Option<u32> {
    match kind {
        PtrKind::Data => Some(env.data_size),
        PtrKind::Scratch => Some(env.scratch_size),
        PtrKind::MapValue(m) => env.maps.get(usize::try_from(m).ok()?).map(|m| m.value_size),
        _ => None,
    }
}

/// Checks `size` bytes at `p + off` against a bounded region.
fn check_bounds(env: &Env, insn: usize, reg: u8, p: &Ptr, off: i64, size: u32) -> Result<(), VerifyError> {
    let region = p.kind.name();
    let Some(limit) = region_size(env, p.kind) else {
        return Err(VerifyError::InvalidMemAccess { insn, reg, kind: region });
    };
    if p.var.smin < -super::regs::PTR_OFF_MAX || p.var.smax > super::regs::PTR_OFF_MAX {
        return Err(VerifyError::UnboundedAccess { insn, reg, region });
    }
    // No overflow: |p.off|, |off| and |var| are all below 2^30.
    let (lo, hi) = (p.off + off + p.var.smin, p.off + off + p.var.smax);
    if lo < 0 {
        return Err(VerifyError::OutOfBounds { insn, region, off: lo, size });
    }
    if hi + i64::from(size) > i64::from(limit) {
        return Err(VerifyError::OutOfBounds { insn, region, off: hi, size });
    }
    Ok(())
}

/// Constant offset of a stack or ctx pointer plus `off`; variable ones are refused.
fn const_off(insn: usize, reg: u8, p: &Ptr, off: i64) -> Result<i64, VerifyError> {
    match p.var.as_const() {
        #[allow(clippy::cast_possible_wrap)] // |var| <= PTR_OFF_MAX, checked at the arithmetic
        Some(v) => Ok(p.off + v as i64 + off),
        None => Err(VerifyError::VariableOffset { insn, reg, region: p.kind.name() }),
    }
}

fn stack_range(insn: usize, off: i64, size: u32) -> Result<(), VerifyError> {
    if off < -STACK_SIZE || off + i64::from(size) > 0 {
        return Err(VerifyError::OutOfBounds { insn, region: "stack", off, size });
    }
    Ok(())
}

fn stack_fault(insn: usize, off: i64, size: u32, f: StackFault) -> VerifyError {
    match f {
        StackFault::Uninit => VerifyError::UninitStackRead { insn, off, size },
        StackFault::PartialSpill => VerifyError::PartialSpill { insn, off, size },
    }
}

/// What a load of `size` bytes of plain data yields (zero-extended).
fn data_value(size: u32) -> Reg {
    Reg::Scalar(Scalar::bits(size * 8))
}

/// `dst = *(size *)(reg + off)`: checks the access and returns the loaded
/// value (sign-extended from `size` bytes when `sx`, CPU v4 `ldxs`).
pub fn load(env: &Env, st: &State, insn: usize, reg: u8, off: i16, size: u32, sx: bool) -> Result<Reg, VerifyError> {
    let p = base(st, insn, reg)?;
    let off = i64::from(off);
    let plain = if sx { Reg::Scalar(Scalar::unknown().sext(size * 8)) } else { data_value(size) };
    match p.kind {
        PtrKind::Ctx => {
            let o = const_off(insn, reg, &p, off)?;
            let f = ctx::field(o, size, false).filter(|_| !sx).ok_or(VerifyError::CtxAccess { insn, off: o, size, write: false })?;
            Ok(ctx::load(f))
        }
        PtrKind::Stack if p.var.as_const().is_none() => {
            // A variable offset (as Linux allows for reads): every byte the
            // access may touch must be in the frame and initialised plain
            // data, never part of a spilled pointer; the value is unknown.
            #[allow(clippy::cast_possible_wrap)] // |var| <= PTR_OFF_MAX, checked at the arithmetic
            let (lo, hi) = (p.off + off + p.var.smin, p.off + off + p.var.smax);
            stack_range(insn, lo, size)?;
            stack_range(insn, hi, size)?;
            let span = u32::try_from(hi - lo).unwrap_or(u32::MAX).saturating_add(size);
            st.stack.check_data(lo, span).map_err(|f| stack_fault(insn, lo, span, f))?;
            Ok(plain)
        }
        PtrKind::Stack => {
            let o = const_off(insn, reg, &p, off)?;
            stack_range(insn, o, size)?;
            match st.stack.read(o, size) {
                Ok(Some(Reg::Scalar(v))) if sx => Ok(Reg::Scalar(v.sext(size * 8))),
                Ok(Some(spilled)) => Ok(spilled),
                Ok(None) => Ok(plain),
                Err(f) => Err(stack_fault(insn, o, size, f)),
            }
        }
        _ => {
            check_bounds(env, insn, reg, &p, off, size)?;
            Ok(plain)
        }
    }
}

/// `*(size *)(reg + off) = value`: checks the access and records it.
pub fn store(env: &Env, st: &mut State, insn: usize, reg: u8, off: i16, size: u32, value: Reg) -> Result<(), VerifyError> {
    let p = base(st, insn, reg)?;
    let off = i64::from(off);
    let is_ptr = matches!(value, Reg::Ptr(_));
    match p.kind {
        PtrKind::Ctx => {
            let o = const_off(insn, reg, &p, off)?;
            ctx::field(o, size, true).ok_or(VerifyError::CtxAccess { insn, off: o, size, write: true })?;
            if is_ptr {
                return Err(VerifyError::PointerLeakStore { insn, region: "ctx" });
            }
            Ok(())
        }
        PtrKind::Stack => {
            let o = const_off(insn, reg, &p, off)?;
            stack_range(insn, o, size)?;
            let whole_slot = size == 8 && o.rem_euclid(8) == 0;
            if is_ptr && !whole_slot {
                return Err(VerifyError::PartialSpill { insn, off: o, size });
            }
            st.stack.write(o, size, Some(value));
            Ok(())
        }
        kind => {
            if let PtrKind::MapValue(m) = kind {
                if let Some(spec) = env.maps.get(usize::try_from(m).unwrap_or(usize::MAX)) {
                    if spec.read_only {
                        return Err(VerifyError::ReadOnlyMap { insn, map: spec.name.clone() });
                    }
                }
            }
            check_bounds(env, insn, reg, &p, off, size)?;
            if is_ptr {
                return Err(VerifyError::PointerLeakStore { insn, region: kind.name() });
            }
            Ok(())
        }
    }
}

/// A helper reads `size` bytes at the pointer in `reg`: they must be in
/// bounds, initialised, and (on the stack) hold no spilled pointer.
pub fn helper_read(env: &Env, st: &State, insn: usize, reg: u8, size: u32, helper: &'static str, expected: &'static str) -> Result<(), VerifyError> {
    let r = st.regs[usize::from(reg)];
    let p = match r {
        Reg::NotInit => return Err(VerifyError::UninitRegister { insn, reg }),
        Reg::Ptr(p) if matches!(p.kind, PtrKind::Stack | PtrKind::Data | PtrKind::Scratch | PtrKind::MapValue(_)) => p,
        other => return Err(VerifyError::HelperArg { insn, reg, helper, got: other.type_name(), expected }),
    };
    if p.kind == PtrKind::Stack {
        let o = const_off(insn, reg, &p, 0)?;
        stack_range(insn, o, size)?;
        return st.stack.check_data(o, size).map_err(|f| match f {
            StackFault::PartialSpill => VerifyError::PointerLeakStackArg { insn, helper, off: o },
            StackFault::Uninit => VerifyError::UninitStackRead { insn, off: o, size },
        });
    }
    check_bounds(env, insn, reg, &p, 0, size)
}

/// `BPF_ATOMIC` of `size` (4 or 8) bytes at `dst + off`, with `src` the
/// operand. Allowed on the stack (initialised data, not a spilled pointer),
/// writable map values and the scratch; never on the context or the data
/// block (Linux refuses atomics on ctx and packet memory too). The address
/// must be a multiple of `size` from the region's 8-byte aligned base, and
/// the operand a scalar (an atomic store of a pointer would leak it).
/// Returns the value the old contents give a register (fetch forms, xchg,
/// cmpxchg): any value of the width.
pub fn atomic(env: &Env, st: &mut State, insn: usize, dst: u8, off: i16, size: u32, src: Reg) -> Result<Reg, VerifyError> {
    let p = base(st, insn, dst)?;
    let off = i64::from(off);
    if let Reg::Ptr(q) = src {
        return Err(VerifyError::PointerLeakStore { insn, region: q.kind.name() });
    }
    let why = |why| VerifyError::AtomicAccess { insn, reg: dst, region: p.kind.name(), why };
    match p.kind {
        PtrKind::Ctx | PtrKind::Data => return Err(why("only the stack, map values and the scratch allow atomics")),
        PtrKind::Stack => {
            let o = const_off(insn, dst, &p, off)?;
            stack_range(insn, o, size)?;
            if o.rem_euclid(i64::from(size)) != 0 {
                return Err(why("misaligned"));
            }
            st.stack.check_data(o, size).map_err(|f| stack_fault(insn, o, size, f))?;
            st.stack.write(o, size, None);
        }
        kind => {
            if let PtrKind::MapValue(m) = kind {
                if env.maps.get(usize::try_from(m).unwrap_or(usize::MAX)).is_some_and(|spec| spec.read_only) {
                    return Err(why("the map is read-only"));
                }
            }
            check_bounds(env, insn, dst, &p, off, size)?;
            let o = const_off(insn, dst, &p, off).map_err(|_| why("the offset must be a known constant (alignment)"))?;
            if o.rem_euclid(i64::from(size)) != 0 {
                return Err(why("misaligned"));
            }
        }
    }
    Ok(data_value(size))
}
