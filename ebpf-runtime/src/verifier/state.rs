//! The abstract machine state at one instruction, and the subsumption test
//! used for pruning: a state already proven safe at an instruction covers a
//! new one when every concrete state of the new one is one of the old.
//!
//! Besides registers and stack, a state holds relations between scalar
//! values learned from comparisons of two registers ([`Fact`]): clang
//! compares the same two registers twice in a row (once per value it
//! selects), and without the relation the second comparison would fork
//! paths that cannot happen.

use super::branch::Cmp;
use super::regs::{Ptr, PtrKind, Reg, REG_COUNT};
use super::scalar::Scalar;
use super::stack::{Byte, Slot, Stack};

/// Relations kept per state; the oldest is forgotten first.
pub const FACTS_MAX: usize = 8;

/// `value(a) <cmp> value(b)` (64-bit) holds on this path, for the scalar
/// values with ids `a` and `b`, learned from comparing registers `ra` and
/// `rb`. Values never change, so the relation stays true; it is kept only
/// while `ra` and `rb` still hold those values, because one that outlived
/// its registers through copies (clang's running minimum and maximum)
/// would make states at a loop head differ forever and defeat pruning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fact {
    pub a: u32,
    pub cmp: Cmp,
    pub b: u32,
    pub ra: u8,
    pub rb: u8,
}

/// Registers, stack and relations of the current frame, and the callers'
/// frames (bpf-to-bpf calls, `calls.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    pub regs: [Reg; REG_COUNT],
    pub stack: Stack,
    pub facts: Vec<Fact>,
    pub frames: Vec<super::calls::Frame>,
}

impl State {
    /// The entry state: r1 = context, r10 = frame pointer, the rest unset.
    pub fn entry() -> State {
        let mut regs = [Reg::NotInit; REG_COUNT];
        regs[1] = Reg::Ptr(Ptr::new(PtrKind::Ctx));
        regs[10] = Reg::Ptr(Ptr::new(PtrKind::Stack));
        State { regs, stack: Stack::default(), facts: Vec::new(), frames: Vec::new() }
    }

    /// Whether the registers of `f` still hold its values.
    fn valid(&self, f: &Fact) -> bool {
        let holds = |r: u8, id: u32| matches!(self.regs[usize::from(r)], Reg::Scalar(s) if s.id == id);
        holds(f.ra, f.a) && holds(f.rb, f.b)
    }

    /// What the facts say about `value(a) <cmp> value(b)`.
    pub fn holds(&self, a: u32, cmp: Cmp, b: u32) -> Option<bool> {
        self.facts.iter().filter(|f| self.valid(f)).find_map(|f| {
            if (f.a, f.b) == (a, b) {
                f.cmp.implies(cmp)
            } else if (f.a, f.b) == (b, a) {
                f.cmp.swapped().implies(cmp)
            } else {
                None
            }
        })
    }

    /// Records a relation, forgetting those about values no longer held
    /// and, past [`FACTS_MAX`], the oldest.
    pub fn add_fact(&mut self, f: Fact) {
        self.drop_stale_facts();
        if self.facts.len() >= FACTS_MAX {
            self.facts.remove(0);
        }
        self.facts.push(f);
    }

    /// The ids held by registers and spills (scalars and nullable pointers).
    fn held_ids(&self) -> IdCount {
        let mut c = IdCount::default();
        let mut note = |r: &Reg| match r {
            Reg::Scalar(s) => c.add(s.id),
            Reg::Ptr(p) => c.add(p.id),
            Reg::NotInit => {}
        };
        self.regs.iter().for_each(&mut note);
        self.stack.for_each_held(note);
        c
    }

    /// Puts a state about to be stored in its most general form: drops the
    /// facts about values it no longer holds, and the scalar ids that only
    /// one register holds and no fact names (they constrain nothing, and
    /// would make pruning demand the same sharing in the new state).
    pub fn canonicalize(&mut self) {
        self.drop_stale_facts();
        let has_id = |r: &Reg| matches!(r, Reg::Scalar(s) if s.id != 0);
        if self.facts.is_empty() && !self.regs.iter().any(has_id) && !self.stack.any_held(has_id) {
            return;
        }
        let held = self.held_ids();
        let facts = &self.facts;
        let singular = |id: u32| id != 0 && held.count(id) == 1 && !facts.iter().any(|f| f.a == id || f.b == id);
        let clear = |r: &mut Reg| {
            if let Reg::Scalar(s) = r {
                if singular(s.id) {
                    s.id = 0;
                }
            }
        };
        let mut regs = self.regs;
        regs.iter_mut().for_each(clear);
        self.regs = regs;
        self.stack.for_each_spill(clear);
        self.stack.for_each_narrow(|v| {
            if singular(v.id) {
                v.id = 0;
            }
        });
    }

    /// Forgets the facts whose registers no longer hold their values.
    fn drop_stale_facts(&mut self) {
        if self.facts.iter().any(|f| !self.valid(f)) {
            let facts = std::mem::take(&mut self.facts);
            self.facts = facts.into_iter().filter(|f| self.valid(f)).collect();
        }
    }

    /// Whether both states describe the same concrete states.
    pub fn same_as(&self, other: &State) -> bool {
        self.subsumes_live(other, u16::MAX) && other.subsumes_live(self, u16::MAX)
    }

    /// Bytes this state occupies: inline size plus owned heap buffers.
    pub fn bytes(&self) -> usize {
        std::mem::size_of::<State>() + self.stack.heap_bytes() + self.frames.iter().map(|f| std::mem::size_of_val(f) + f.stack.heap_bytes()).sum::<usize>()
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
        self.regs.iter().zip(new.regs.iter()).enumerate().all(|(r, (o, n))| live & (1 << r) == 0 || reg_subsumes(o, n, &mut ids))
            && self.stack.zip(&new.stack).all(|(o, n)| slot_subsumes(&o, &n, &mut ids))
            && self.facts.iter().all(|f| match (ids.get(f.a), ids.get(f.b)) {
                (Some(a), Some(b)) => new.holds(a, f.cmp, b) == Some(true),
                _ => false,
            })
    }

    /// Applies `f` to every register and spilled register.
    pub fn for_each_reg(&mut self, mut f: impl FnMut(&mut Reg)) {
        for r in &mut self.regs {
            f(r);
        }
        self.stack.for_each_spill(f);
    }
}

/// Distinct ids tracked per comparison or count. A state may hold more
/// (11 registers, 64 spill slots); past this many, a comparison answers
/// "not covered" and a count forgets the id, both of which only lose
/// precision. Kept small: both tables are built for every comparison.
const IDS_MAX: usize = 24;

/// How many registers and spills hold each id.
struct IdCount {
    ids: [(u32, u8); IDS_MAX],
    len: usize,
}

impl Default for IdCount {
    fn default() -> Self {
        IdCount { ids: [(0, 0); IDS_MAX], len: 0 }
    }
}

impl IdCount {
    fn add(&mut self, id: u32) {
        if id == 0 {
            return;
        }
        if let Some(e) = self.ids[..self.len].iter_mut().find(|e| e.0 == id) {
            e.1 = e.1.saturating_add(1);
        } else if self.len < IDS_MAX {
            self.ids[self.len] = (id, 1);
            self.len += 1;
        }
    }

    fn count(&self, id: u32) -> u8 {
        self.ids[..self.len].iter().find(|e| e.0 == id).map_or(0, |e| e.1)
    }
}

/// Ids of the old state mapped to ids of the new one. Where two old
/// registers share an id (the same value, or the same lookup result), the
/// new ones must share one too; the map need not be one-to-one, since a
/// new state knowing more equalities is only more precise. Id 0 is unique
/// on both sides.
struct IdMap {
    pairs: [(u32, u32); IDS_MAX],
    len: usize,
}

impl Default for IdMap {
    fn default() -> Self {
        IdMap { pairs: [(0, 0); IDS_MAX], len: 0 }
    }
}

impl IdMap {
    fn check(&mut self, old: u32, new: u32) -> bool {
        if old == 0 {
            return true;
        }
        if let Some(n) = self.get(old) {
            return n == new && new != 0;
        }
        if new == 0 || self.len == IDS_MAX {
            return false;
        }
        self.pairs[self.len] = (old, new);
        self.len += 1;
        true
    }

    fn get(&self, old: u32) -> Option<u32> {
        self.pairs[..self.len].iter().find(|p| p.0 == old).map(|p| p.1)
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
        (Reg::Scalar(a), Reg::Scalar(b)) => a.contains(b) && ids.check(a.id, b.id),
        (Reg::Ptr(p), Reg::Ptr(q)) => p.kind == q.kind && p.off == q.off && p.var.contains(&q.var) && (!matches!(p.kind, PtrKind::MapValueOrNull(_)) || ids.check(p.id, q.id)),
        _ => false,
    }
}

fn slot_subsumes(old: &Slot, new: &Slot, ids: &mut IdMap) -> bool {
    let bytes_cover = |ob: [Byte; 8], nb: [Byte; 8]| ob.iter().zip(nb.iter()).all(|(o, n)| *o == Byte::Invalid || *n == Byte::Misc);
    match (old, new) {
        (Slot::Spill(o), Slot::Spill(n)) => reg_subsumes(o, n, ids),
        (Slot::Spill(Reg::Scalar(s)), n) => s.id == 0 && s.same_set(&Scalar::unknown()) && n.as_bytes().is_some_and(|b| b.iter().all(|x| *x == Byte::Misc)),
        (Slot::Spill(_), _) => false,
        (o, Slot::Spill(n)) => {
            // A spilled scalar reads like plain bytes, except an old narrow
            // field would have read back a narrower value.
            let narrow_precise = matches!(o, Slot::Narrow { size, value, .. }
                if value.id != 0 || !value.same_set(&Scalar::bits(u32::from(*size) * 8)));
            o.as_bytes().is_some_and(|b| b.iter().all(|x| *x == Byte::Invalid)) || (matches!(n, Reg::Scalar(_)) && !narrow_precise)
        }
        (Slot::Narrow { bytes: ob, at: oa, size: os, value: ov }, Slot::Narrow { bytes: nb, at: na, size: ns, value: nv }) if oa == na && os == ns => {
            ov.contains(nv) && ids.check(ov.id, nv.id) && bytes_cover(*ob, *nb) && old.as_bytes().zip(new.as_bytes()).is_some_and(|(o, n)| bytes_cover(o, n))
        }
        (Slot::Narrow { size, value, .. }, n) => {
            value.id == 0 && value.same_set(&Scalar::bits(u32::from(*size) * 8)) && old.as_bytes().zip(n.as_bytes()).is_some_and(|(o, n)| bytes_cover(o, n))
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
