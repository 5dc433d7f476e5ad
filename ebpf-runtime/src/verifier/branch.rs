//! Conditional jumps on scalars: which branches are feasible, and what each
//! one teaches about its operands (Linux's `reg_set_min_max`).

use super::scalar::Scalar;
use crate::insn;

/// A comparison that holds on one side of a jump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Sgt,
    Sge,
    Slt,
    Sle,
    Set,
    NotSet,
}

impl Cmp {
    /// The comparison of a conditional jump opcode's operation bits
    /// (`insn::JMP_*`); `None` for JA, CALL and EXIT.
    pub fn of_op(op: u8) -> Option<Cmp> {
        Some(match op {
            insn::JMP_JEQ => Cmp::Eq,
            insn::JMP_JNE => Cmp::Ne,
            insn::JMP_JGT => Cmp::Gt,
            insn::JMP_JGE => Cmp::Ge,
            insn::JMP_JLT => Cmp::Lt,
            insn::JMP_JLE => Cmp::Le,
            insn::JMP_JSGT => Cmp::Sgt,
            insn::JMP_JSGE => Cmp::Sge,
            insn::JMP_JSLT => Cmp::Slt,
            insn::JMP_JSLE => Cmp::Sle,
            insn::JMP_JSET => Cmp::Set,
            _ => return None,
        })
    }

    /// What holds on the fall-through side.
    pub fn negate(self) -> Cmp {
        match self {
            Cmp::Eq => Cmp::Ne,
            Cmp::Ne => Cmp::Eq,
            Cmp::Gt => Cmp::Le,
            Cmp::Ge => Cmp::Lt,
            Cmp::Lt => Cmp::Ge,
            Cmp::Le => Cmp::Gt,
            Cmp::Sgt => Cmp::Sle,
            Cmp::Sge => Cmp::Slt,
            Cmp::Slt => Cmp::Sge,
            Cmp::Sle => Cmp::Sgt,
            Cmp::Set => Cmp::NotSet,
            Cmp::NotSet => Cmp::Set,
        }
    }

    pub fn is_signed(self) -> bool {
        matches!(self, Cmp::Sgt | Cmp::Sge | Cmp::Slt | Cmp::Sle)
    }

    /// The same relation with the operands swapped (`a < b` is `b > a`).
    pub fn swapped(self) -> Cmp {
        match self {
            Cmp::Gt => Cmp::Lt,
            Cmp::Ge => Cmp::Le,
            Cmp::Lt => Cmp::Gt,
            Cmp::Le => Cmp::Ge,
            Cmp::Sgt => Cmp::Slt,
            Cmp::Sge => Cmp::Sle,
            Cmp::Slt => Cmp::Sgt,
            Cmp::Sle => Cmp::Sge,
            c => c,
        }
    }

    /// The orderings of `a` against `b` under which the relation holds
    /// (bit 0: less, bit 1: equal, bit 2: greater), with the order it uses
    /// (`None`: equality, which means the same in both orders; `Some(true)`:
    /// signed). `None` for the bit tests.
    fn orderings(self) -> Option<(u8, Option<bool>)> {
        const LT: u8 = 1;
        const EQ: u8 = 2;
        const GT: u8 = 4;
        Some(match self {
            Cmp::Eq => (EQ, None),
            Cmp::Ne => (LT | GT, None),
            Cmp::Gt => (GT, Some(false)),
            Cmp::Ge => (GT | EQ, Some(false)),
            Cmp::Lt => (LT, Some(false)),
            Cmp::Le => (LT | EQ, Some(false)),
            Cmp::Sgt => (GT, Some(true)),
            Cmp::Sge => (GT | EQ, Some(true)),
            Cmp::Slt => (LT, Some(true)),
            Cmp::Sle => (LT | EQ, Some(true)),
            Cmp::Set | Cmp::NotSet => return None,
        })
    }

    /// Given that `a <self> b` holds, whether `a <q> b` surely holds
    /// (`Some(true)`), surely fails (`Some(false)`), or may go either way.
    pub fn implies(self, q: Cmp) -> Option<bool> {
        let (known, ko) = self.orderings()?;
        let (asked, qo) = q.orderings()?;
        if ko.is_some() && qo.is_some() && ko != qo {
            return None; // an unsigned order says little about the signed one
        }
        if known & !asked == 0 {
            Some(true)
        } else if known & asked == 0 {
            Some(false)
        } else {
            None
        }
    }
}

/// Refines `a` and `b` under `a <cmp> b` (64-bit); `None` if it cannot hold.
pub fn refine(cmp: Cmp, a: Scalar, b: Scalar) -> Option<(Scalar, Scalar)> {
    let (mut a, mut b) = (a, b);
    match cmp {
        Cmp::Eq => {
            let t = Scalar {
                umin: a.umin.max(b.umin),
                umax: a.umax.min(b.umax),
                smin: a.smin.max(b.smin),
                smax: a.smax.min(b.smax),
                tnum: a.tnum.intersect(b.tnum)?,
                lo32: a.lo32.max(b.lo32),
                hi32: a.hi32.min(b.hi32),
                id: 0,
            };
            if t.lo32 > t.hi32 {
                return None;
            }
            let t = t.normalize()?;
            return Some((Scalar { id: a.id, ..t }, Scalar { id: b.id, ..t }));
        }
        Cmp::Ne => {
            if let (Some(x), Some(y)) = (a.as_const(), b.as_const()) {
                return if x == y { None } else { Some((a, b)) };
            }
            if let Some(c) = b.as_const() {
                a = exclude(a, c)?;
            } else if let Some(c) = a.as_const() {
                b = exclude(b, c)?;
            }
        }
        Cmp::Gt => {
            a.umin = a.umin.max(b.umin.checked_add(1)?);
            b.umax = b.umax.min(a.umax.checked_sub(1)?);
        }
        Cmp::Ge => {
            a.umin = a.umin.max(b.umin);
            b.umax = b.umax.min(a.umax);
        }
        Cmp::Lt => return refine(Cmp::Gt, b, a).map(|(y, x)| (x, y)),
        Cmp::Le => return refine(Cmp::Ge, b, a).map(|(y, x)| (x, y)),
        Cmp::Sgt => {
            a.smin = a.smin.max(b.smin.checked_add(1)?);
            b.smax = b.smax.min(a.smax.checked_sub(1)?);
        }
        Cmp::Sge => {
            a.smin = a.smin.max(b.smin);
            b.smax = b.smax.min(a.smax);
        }
        Cmp::Slt => return refine(Cmp::Sgt, b, a).map(|(y, x)| (x, y)),
        Cmp::Sle => return refine(Cmp::Sge, b, a).map(|(y, x)| (x, y)),
        Cmp::Set => {
            if let Some(c) = b.as_const() {
                if a.tnum.umax() & c == 0 {
                    return None;
                }
                if c.is_power_of_two() {
                    a.tnum.value |= c;
                    a.tnum.mask &= !c;
                }
            }
        }
        Cmp::NotSet => {
            if let Some(c) = b.as_const() {
                if a.tnum.value & c != 0 {
                    return None;
                }
                a.tnum.mask &= !c;
            }
        }
    }
    Some((a.normalize()?, b.normalize()?))
}

/// `a` without the single value `c` (only the ends of a range can move).
fn exclude(mut a: Scalar, c: u64) -> Option<Scalar> {
    if a.as_const() == Some(c) {
        return None;
    }
    if a.umin == c {
        a.umin += 1;
    } else if a.umax == c {
        a.umax -= 1;
    }
    #[allow(clippy::cast_possible_wrap)] // reinterpreting the bit pattern as signed
    let s = c as i64;
    if a.smin == s {
        a.smin += 1;
    } else if a.smax == s {
        a.smax -= 1;
    }
    a.normalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsigned_less_than_bounds_both_sides() {
        let (a, _) = refine(Cmp::Lt, Scalar::unknown(), Scalar::constant(255)).expect("feasible");
        assert_eq!((a.umin, a.umax), (0, 254));
        let (a, _) = refine(Cmp::Lt.negate(), Scalar::unknown(), Scalar::constant(255)).expect("feasible");
        assert_eq!(a.umin, 255);
    }

    #[test]
    fn impossible_branches_are_none() {
        assert!(refine(Cmp::Gt, Scalar::urange(0, 4), Scalar::constant(10)).is_none());
        assert!(refine(Cmp::Eq, Scalar::constant(1), Scalar::constant(2)).is_none());
        assert!(refine(Cmp::Ne, Scalar::constant(3), Scalar::constant(3)).is_none());
        assert!(refine(Cmp::Set, Scalar::constant(4), Scalar::constant(3)).is_none());
    }

    #[test]
    fn signed_compare_refines_signed_range() {
        let (a, _) = refine(Cmp::Sge, Scalar::unknown(), Scalar::constant(0)).expect("feasible");
        assert_eq!((a.smin, a.umax), (0, i64::MAX as u64));
    }

    #[test]
    fn relations_imply_relations() {
        assert_eq!(Cmp::Gt.implies(Cmp::Gt), Some(true));
        assert_eq!(Cmp::Gt.implies(Cmp::Ge), Some(true));
        assert_eq!(Cmp::Gt.implies(Cmp::Ne), Some(true));
        assert_eq!(Cmp::Gt.implies(Cmp::Le), Some(false));
        assert_eq!(Cmp::Gt.implies(Cmp::Eq), Some(false));
        assert_eq!(Cmp::Ge.implies(Cmp::Gt), None);
        assert_eq!(Cmp::Le.implies(Cmp::Gt), Some(false));
        assert_eq!(Cmp::Eq.implies(Cmp::Sge), Some(true));
        assert_eq!(Cmp::Gt.implies(Cmp::Sgt), None);
        assert_eq!(Cmp::Sgt.implies(Cmp::Ne), Some(true));
        assert_eq!(Cmp::Set.implies(Cmp::Set), None);
        assert_eq!(Cmp::Gt.swapped(), Cmp::Lt);
    }

    #[test]
    fn not_equal_trims_range_end() {
        let (a, _) = refine(Cmp::Ne, Scalar::urange(0, 8), Scalar::constant(0)).expect("feasible");
        assert_eq!(a.umin, 1);
    }
}
