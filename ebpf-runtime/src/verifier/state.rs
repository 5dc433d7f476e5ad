//! The abstract machine state at one instruction, and the subsumption test
//! used for pruning: a state already proven safe at an instruction covers a
//! new one when every concrete state of the new one is one of the old.

use super::regs::{Ptr, PtrKind, Reg, REG_COUNT};
use super::scalar::Scalar;
use super::stack::{Byte, Slot, Stack};

/// Registers and stack of the current frame, and the callers' frames
/// (bpf-to-bpf calls, `calls.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    pub regs: [Reg; REG_COUNT],
    pub stack: Stack,
    pub frames: Vec<super::calls::Frame>,
}

impl State {
    /// The entry state: r1 = context, r10 = frame pointer, the rest unset.
    pub fn entry() -> State {
        let mut regs = [Reg::NotInit; REG_COUNT];
        regs[1] = Reg::Ptr(Ptr::new(PtrKind::Ctx));
        regs[10] = Reg::Ptr(Ptr::new(PtrKind::Stack));
        State { regs, stack: Stack::default(), frames: Vec::new() }
    }

    /// Bytes this state occupies: inline size plus owned heap buffers.
    pub fn bytes(&self) -> usize {
        std::mem::size_of::<State>()
            + self.stack.heap_bytes()
            + self.frames.iter().map(|f| std::mem::size_of_val(f) + f.stack.heap_bytes()).sum::<usize>()
    }

    /// Whether `self` (explored, proven safe) covers `new`.
    #[cfg(test)]
    pub fn subsumes(&self, new: &State) -> bool {
        self.subsumes_live(new, u16::MAX)
    }

    /// Whether `self` covers `new` with the registers outside `live` (bit i
    /// = ri) treated as dead in `new`, i.e. as never read again.
    pub fn subsumes_live(&self, new: &State, live: u16) -> bool {
        // Callers' frames must be identical (calls.rs: not pruned across).
        if self.frames != new.frames {
            return false;
        }
        let mut ids = IdMap::default();
        self.regs
            .iter()
            .zip(new.regs.iter())
            .enumerate()
            .all(|(r, (o, n))| live & (1 << r) == 0 || reg_subsumes(o, n, &mut ids))
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
        // Unset in the old state but live (a helper may read an unset
        // optional argument): only an unset register behaves the same. A
        // scalar or a pointer here would reach the helper instead, and a
        // pointer would leak (issue 15). Dead registers never get here.
        (Reg::NotInit, Reg::NotInit) => true,
        (Reg::NotInit, _) => false,
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
    let bytes_cover = |ob: [Byte; 8], nb: [Byte; 8]| ob.iter().zip(nb.iter()).all(|(o, n)| *o == Byte::Invalid || *n == Byte::Misc);
    match (old, new) {
        (Slot::Spill(o), Slot::Spill(n)) => reg_subsumes(o, n, ids),
        (Slot::Spill(Reg::Scalar(s)), n) => {
            *s == Scalar::unknown() && n.as_bytes().is_some_and(|b| b.iter().all(|x| *x == Byte::Misc))
        }
        (Slot::Spill(_), _) => false,
        (o, Slot::Spill(n)) => {
            // A spilled scalar reads like plain bytes, except an old narrow
            // field would have read back a narrower value.
            let narrow_precise =
                matches!(o, Slot::Narrow { size, value, .. } if *value != Scalar::bits(u32::from(*size) * 8));
            o.as_bytes().is_some_and(|b| b.iter().all(|x| *x == Byte::Invalid))
                || (matches!(n, Reg::Scalar(_)) && !narrow_precise)
        }
        (
            Slot::Narrow { bytes: ob, at: oa, size: os, value: ov },
            Slot::Narrow { bytes: nb, at: na, size: ns, value: nv },
        ) if oa == na && os == ns => {
            ov.contains(nv) && bytes_cover(*ob, *nb) && old.as_bytes().zip(new.as_bytes()).is_some_and(|(o, n)| bytes_cover(o, n))
        }
        (Slot::Narrow { size, value, .. }, n) => {
            *value == Scalar::bits(u32::from(*size) * 8)
                && old.as_bytes().zip(n.as_bytes()).is_some_and(|(o, n)| bytes_cover(o, n))
        }
        (o, n) => o.as_bytes().zip(n.as_bytes()).is_some_and(|(o, n)| bytes_cover(o, n)),
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
    fn uninit_in_old_state_covers_only_uninit() {
        let old = State::entry();
        let mut new = State::entry();
        assert!(old.subsumes(&new));
        new.regs[3] = Reg::constant(1);
        assert!(!old.subsumes(&new));
        assert!(!new.subsumes(&old));
        new.regs[3] = Reg::Ptr(Ptr::new(PtrKind::Data));
        assert!(!old.subsumes(&new));
        // A dead register is not compared at all.
        assert!(old.subsumes_live(&new, !(1 << 3)));
    }

    #[test]
    fn narrow_field_is_not_covered_by_a_wider_spill() {
        let mut old = State::entry();
        let mut new = State::entry();
        old.stack.write(-8, 4, Some(Reg::Scalar(Scalar::urange(0, 9))));
        new.stack.write(-8, 8, Some(Reg::unknown()));
        assert!(!old.subsumes(&new));
        let mut wider = State::entry();
        wider.stack.write(-8, 4, Some(Reg::Scalar(Scalar::urange(0, 99))));
        assert!(wider.subsumes(&old));
        assert!(!old.subsumes(&wider));
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
