//! The abstract machine state at one instruction, and the subsumption test
//! used for pruning: a state already proven safe at an instruction covers a
//! new one when every concrete state of the new one is one of the old.

use super::regs::{Ptr, PtrKind, Reg, REG_COUNT};
use super::scalar::Scalar;
use super::stack::{Byte, Slot, Stack};

/// Registers and stack of the (single) frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    pub regs: [Reg; REG_COUNT],
    pub stack: Stack,
}

impl State {
    /// The entry state: r1 = context, r10 = frame pointer, the rest unset.
    pub fn entry() -> State {
        let mut regs = [Reg::NotInit; REG_COUNT];
        regs[1] = Reg::Ptr(Ptr::new(PtrKind::Ctx));
        regs[10] = Reg::Ptr(Ptr::new(PtrKind::Stack));
        State { regs, stack: Stack::default() }
    }

    /// Whether `self` (explored, proven safe) covers `new`.
    pub fn subsumes(&self, new: &State) -> bool {
        let mut ids = IdMap::default();
        self.regs.iter().zip(new.regs.iter()).all(|(o, n)| reg_subsumes(o, n, &mut ids))
            && self.stack.zip(&new.stack).all(|(o, n)| slot_subsumes(&o, &n, &mut ids))
    }

    /// Applies `f` to every register and spilled register.
    pub fn for_each_reg(&mut self, mut f: impl FnMut(&mut Reg)) {
        for r in &mut self.regs {
            f(r);
        }
        self.stack.for_each_spill(f);
    }
}

/// A consistent renaming of null-check ids between two states.
#[derive(Default)]
struct IdMap {
    pairs: Vec<(u32, u32)>,
}

impl IdMap {
    fn check(&mut self, old: u32, new: u32) -> bool {
        for &(o, n) in &self.pairs {
            if o == old || n == new {
                return o == old && n == new;
            }
        }
        self.pairs.push((old, new));
        true
    }
}

fn reg_subsumes(old: &Reg, new: &Reg, ids: &mut IdMap) -> bool {
    match (old, new) {
        // Never read on any path from the old state: anything goes.
        (Reg::NotInit, _) => true,
        (Reg::Scalar(a), Reg::Scalar(b)) => a.contains(b),
        (Reg::Ptr(p), Reg::Ptr(q)) => {
            p.kind == q.kind
                && p.off == q.off
                && p.var.contains(&q.var)
                && (!matches!(p.kind, PtrKind::MapValueOrNull(_)) || ids.check(p.id, q.id))
        }
        _ => false,
    }
}

fn slot_subsumes(old: &Slot, new: &Slot, ids: &mut IdMap) -> bool {
    match (old, new) {
        (Slot::Spill(o), Slot::Spill(n)) => reg_subsumes(o, n, ids),
        (Slot::Spill(Reg::Scalar(s)), Slot::Bytes(bytes)) => {
            *s == Scalar::unknown() && bytes.iter().all(|b| *b == Byte::Misc)
        }
        (Slot::Spill(_), Slot::Bytes(_)) => false,
        (Slot::Bytes(ob), Slot::Bytes(nb)) => ob.iter().zip(nb.iter()).all(|(o, n)| *o == Byte::Invalid || *n == Byte::Misc),
        (Slot::Bytes(ob), Slot::Spill(n)) => {
            ob.iter().all(|o| *o == Byte::Invalid) || matches!(n, Reg::Scalar(_))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wider_range_subsumes_narrower() {
        let mut old = State::entry();
        let mut new = State::entry();
        old.regs[2] = Reg::Scalar(Scalar::urange(0, 10));
        new.regs[2] = Reg::Scalar(Scalar::urange(2, 5));
        assert!(old.subsumes(&new));
        assert!(!new.subsumes(&old));
    }

    #[test]
    fn uninit_in_old_state_accepts_anything() {
        let old = State::entry();
        let mut new = State::entry();
        new.regs[3] = Reg::constant(1);
        assert!(old.subsumes(&new));
        assert!(!new.subsumes(&old));
    }

    #[test]
    fn pointer_kinds_must_match() {
        let mut old = State::entry();
        let mut new = State::entry();
        old.regs[2] = Reg::Ptr(Ptr::new(PtrKind::Data));
        new.regs[2] = Reg::Ptr(Ptr::new(PtrKind::Scratch));
        assert!(!old.subsumes(&new));
    }
}
