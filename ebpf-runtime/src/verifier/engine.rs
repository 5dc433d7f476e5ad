//! The abstract interpreter: a depth-first walk over all paths with state
//! pruning at jump targets, loop detection and the processed-instruction cap.

use super::alu;
use super::branch::{refine, Cmp};
use super::budget::Budget;
use super::error::VerifyError;
use super::helpers::{self, Arg, Ret};
use super::mem;
use super::regs::{Ptr, PtrKind, Reg};
use super::scalar::Scalar;
use super::state::{Fact, State};
use super::structure::Cfg;
use super::{Env, Stats};
use crate::insn::*;

/// A path being explored: where it is, its state, the bytes charged to the
/// budget for it when it was created, and the work done on it since it last
/// stored a state (instructions, conditional jumps).
struct Path {
    pc: usize,
    /// Boxed: the pending stack grows to thousands of paths in a long
    /// loop, and moving states as it grows cost more than the allocation.
    st: Box<State>,
    bytes: usize,
    since_store: (u32, u32),
}

/// A path stores its state at a prune point only after this many
/// instructions and conditional jumps since it last did (Linux stores on
/// the same condition, 8 and 2): a state stored at every prune point costs
/// a copy each time and seldom prunes more. Every prune point still
/// compares with what is stored.
const STORE_AFTER_INSNS: u32 = 8;
const STORE_AFTER_JUMPS: u32 = 2;

/// The walk over all paths of one program.
pub struct Engine<'a> {
    prog: &'a [Insn],
    env: &'a Env<'a>,
    cfg: Cfg,
    explored: Vec<Vec<Explored>>,
    /// Stored states not yet fully explored, with the pending-stack height
    /// when they were stored (non-decreasing from bottom to top).
    open: Vec<(usize, u32)>,
    /// Per stored-state id: all its paths have been explored.
    complete: Vec<bool>,
    stored: u64,
    next_state_id: u32,
    /// Last id given to a value (scalar copies, lookup results); one
    /// namespace for both, as pruning maps them together.
    next_id: u32,
    stats: Stats,
    budget: Budget,
}

/// A stored state and how useful it has been.
struct Explored {
    id: u32,
    st: State,
    hits: u32,
    misses: u32,
}

impl Explored {
    /// Bytes charged to the budget while it is stored.
    fn bytes(&self) -> usize {
        std::mem::size_of::<Explored>() + self.st.bytes() - std::mem::size_of::<State>()
    }
}

/// Bytes charged per stored state for the bookkeeping of its completion:
/// its flag in `complete` (kept for the whole run) and its `open` entry.
const OPEN_ENTRY_BYTES: usize = std::mem::size_of::<(usize, u32)>();

/// A stored state that failed this many more times than it helped
/// (`misses > hits * MISS_RATIO + MISS_SLACK`) is dropped, as Linux does:
/// it keeps the lists short where states never repeat, e.g. at the head
/// of a loop whose counter differs in every iteration.
const MISS_RATIO: u32 = 3;
const MISS_SLACK: u32 = 3;

enum Flow {
    Continue,
    End,
}

/// The feasible sides of a conditional jump.
enum Sides {
    /// Both: the taken side's state (the current one is the fall-through's),
    /// boxed as it goes on the pending stack.
    Both(Box<State>),
    Taken,
    Fall,
    Neither,
}

/// What one side of a conditional jump teaches: refined operands (register
/// and value) and the relation that holds.
struct Edit {
    src: Option<(u8, Scalar)>,
    dst: Option<(u8, Scalar)>,
    fact: Option<Fact>,
}

impl Edit {
    fn apply(self, st: &mut State) {
        if let Some((r, v)) = self.src {
            set_equal_scalars(st, r, v);
        }
        if let Some((r, v)) = self.dst {
            set_equal_scalars(st, r, v);
        }
        if let Some(f) = self.fact {
            st.add_fact(f);
        }
    }
}

fn read(st: &State, insn: usize, reg: u8) -> Result<Reg, VerifyError> {
    match st.regs[usize::from(reg)] {
        Reg::NotInit => Err(VerifyError::UninitRegister { insn, reg }),
        r => Ok(r),
    }
}

fn size_of(opc: u8) -> u32 {
    match opc & 0x18 {
        SIZE_B => 1,
        SIZE_H => 2,
        SIZE_W => 4,
        _ => 8,
    }
}

fn reg_no(i: usize) -> u8 {
    // Helper argument registers are r1-r5.
    u8::try_from(i).unwrap_or(u8::MAX)
}

impl<'a> Engine<'a> {
    pub fn new(prog: &'a [Insn], env: &'a Env<'a>, cfg: Cfg) -> Engine<'a> {
        Engine {
            prog,
            env,
            cfg,
            explored: (0..prog.len()).map(|_| Vec::new()).collect(),
            open: Vec::new(),
            complete: Vec::new(),
            stored: 0,
            next_state_id: 0,
            next_id: 0,
            stats: Stats { insns: prog.len(), ..Stats::default() },
            budget: Budget::new(env.limits),
        }
    }

    pub fn run(mut self) -> Result<Stats, VerifyError> {
        let st = State::entry();
        let bytes = st.bytes() + std::mem::size_of::<Path>();
        self.budget.charge(bytes, 0)?;
        let mut pending = vec![Path { pc: 0, st: Box::new(st), bytes, since_store: (STORE_AFTER_INSNS, STORE_AFTER_JUMPS) }];
        while let Some(mut cur) = pending.pop() {
            self.finish_below(pending.len());
            loop {
                self.budget.tick(cur.pc)?;
                self.stats.insns_processed += 1;
                let cap = self.env.limits.insns_processed_max;
                if self.stats.insns_processed > cap {
                    let insn = cur.pc;
                    return Err(if self.cfg.has_back_edge { VerifyError::LoopCap { insn, cap } } else { VerifyError::TooComplex { insn, cap } });
                }
                cur.since_store.0 = cur.since_store.0.saturating_add(1);
                if self.cfg.prune_point[cur.pc] && self.visit(&mut cur, pending.len())? {
                    break;
                }
                match self.step(&mut cur, &mut pending)? {
                    Flow::Continue => {}
                    Flow::End => break,
                }
            }
            self.budget.refund(cur.bytes);
        }
        self.stats.peak_mem_bytes = self.budget.peak_bytes();
        Ok(self.stats)
    }

    /// A path was just popped from index `popped` of the pending stack: every
    /// stored state whose descendants all sat at or above that index (it was
    /// stored when the stack was taller) has now been fully explored.
    /// (Depth-first order guarantees a state's descendants are exactly its
    /// own continuation plus the paths pushed above it.)
    fn finish_below(&mut self, popped: usize) {
        while let Some(&(height, id)) = self.open.last() {
            if height <= popped {
                break;
            }
            self.open.pop();
            self.budget.refund(OPEN_ENTRY_BYTES);
            if let Some(c) = self.complete.get_mut(id as usize) {
                *c = true;
            }
        }
    }

    /// At a prune point: `true` if a fully explored stored state covers the
    /// path (cut it); otherwise the state is stored. A covering state that is
    /// still open is an ancestor: the path went around a loop back to it.
    fn visit(&mut self, cur: &mut Path, pending_len: usize) -> Result<bool, VerifyError> {
        let pc = cur.pc;
        let live = self.cfg.live_in[pc];
        let masked = || {
            let mut m: State = (*cur.st).clone();
            for (r, reg) in m.regs.iter_mut().enumerate() {
                if live & (1 << r) == 0 {
                    *reg = Reg::NotInit;
                }
            }
            m.canonicalize();
            m
        };
        let mut i = 0;
        while i < self.explored[pc].len() {
            self.budget.tick(pc)?;
            let e = &mut self.explored[pc][i];
            if e.st.subsumes_live(&cur.st, live) {
                if self.complete.get(e.id as usize).copied().unwrap_or(true) {
                    e.hits += 1;
                    return Ok(true);
                }
                // Covered by a state on its own path: the loop came back to
                // where it was. Identical means it never makes progress;
                // otherwise walk on (the cap bounds a loop that never ends).
                if e.st.same_as(&masked()) {
                    return Err(VerifyError::InfiniteLoop { insn: pc });
                }
            }
            e.misses += 1;
            if e.misses > e.hits * MISS_RATIO + MISS_SLACK {
                let gone = self.explored[pc].swap_remove(i);
                self.budget.refund(gone.bytes());
                self.stored -= 1;
            } else {
                i += 1;
            }
        }
        let (insns, jumps) = cur.since_store;
        if insns >= STORE_AFTER_INSNS && jumps >= STORE_AFTER_JUMPS && self.stored < self.env.limits.states_max {
            cur.since_store = (0, 0);
            let cap = self.env.limits.states_per_insn_max;
            if self.explored[pc].len() >= cap {
                return Err(VerifyError::StatesPerInsnCap { insn: pc, cap });
            }
            let id = self.next_state_id;
            self.next_state_id = self.next_state_id.wrapping_add(1);
            let e = Explored { id, st: masked(), hits: 0, misses: 0 };
            self.budget.charge(e.bytes() + 1 + OPEN_ENTRY_BYTES, pc)?;
            self.explored[pc].push(e);
            self.stored += 1;
            self.stats.states += 1;
            self.stats.peak_states = self.stats.peak_states.max(self.stored);
            self.open.push((pending_len, id));
            self.complete.push(false);
        }
        Ok(false)
    }

    fn step(&mut self, cur: &mut Path, pending: &mut Vec<Path>) -> Result<Flow, VerifyError> {
        let pc = cur.pc;
        let ins = self.prog[pc];
        let st = &mut cur.st;
        match ins.class() {
            CLASS_ALU | CLASS_ALU64 => {
                if self.zero_extension_pair(st, pc, &ins) {
                    self.stats.insns_processed += 1;
                    cur.pc += 2;
                    return Ok(Flow::Continue);
                }
                alu::step(st, &ins, pc, &mut self.next_id)?;
            }
            CLASS_LDX => {
                let sx = ins.opc & 0xe0 == MODE_MEMSX;
                let v = mem::load(self.env, st, pc, ins.src, ins.off, size_of(ins.opc), sx)?;
                st.regs[usize::from(ins.dst)] = v;
            }
            CLASS_ST => {
                #[allow(clippy::cast_sign_loss)] // sign-extended immediate, as stored
                let v = Reg::constant(i64::from(ins.imm) as u64);
                mem::store(self.env, st, pc, ins.dst, ins.off, size_of(ins.opc), v)?;
            }
            CLASS_STX if ins.opc & 0xe0 == MODE_ATOMIC => {
                let v = read(st, pc, ins.src)?;
                if ins.imm == 0xf1 {
                    read(st, pc, 0)?; // cmpxchg compares with r0
                }
                let old = mem::atomic(self.env, st, pc, ins.dst, ins.off, size_of(ins.opc), v)?;
                match ins.imm {
                    0xf1 => st.regs[0] = old,
                    imm if imm & 0x01 != 0 => st.regs[usize::from(ins.src)] = old,
                    _ => {}
                }
            }
            CLASS_STX => {
                let v = read(st, pc, ins.src)?;
                mem::store(self.env, st, pc, ins.dst, ins.off, size_of(ins.opc), v)?;
            }
            CLASS_LD => {
                let next = self.prog[pc + 1];
                let map = u32::try_from(ins.imm).unwrap_or(u32::MAX);
                st.regs[usize::from(ins.dst)] = match ins.src {
                    PSEUDO_MAP_IDX => Reg::Ptr(Ptr::new(PtrKind::MapHandle(map))),
                    PSEUDO_MAP_IDX_VALUE => Reg::Ptr(Ptr { off: i64::from(next.imm), ..Ptr::new(PtrKind::MapValue(map)) }),
                    _ => {
                        let lo = u64::from(u32::from_le_bytes(ins.imm.to_le_bytes()));
                        let hi = u64::from(u32::from_le_bytes(next.imm.to_le_bytes()));
                        Reg::constant(lo | (hi << 32))
                    }
                };
                cur.pc += 2;
                return Ok(Flow::Continue);
            }
            _ => return self.jump(cur, pending, ins),
        }
        cur.pc += 1;
        Ok(Flow::Continue)
    }

    /// `r <<= 32; r >>= 32` (or `s>>= 32`), clang's zero (sign) extension
    /// of a 32-bit value without ALU32, on a scalar that already fits: the
    /// pair leaves the value as it is, so it keeps its bounds and its id
    /// (a later comparison of `r` then bounds the register it was copied
    /// from). Applies only when no jump lands between the two.
    fn zero_extension_pair(&self, st: &State, pc: usize, ins: &Insn) -> bool {
        let shl = CLASS_ALU64 | ALU_LSH | SRC_K;
        if ins.opc != shl || ins.imm != 32 || pc + 1 >= self.prog.len() || self.cfg.prune_point[pc + 1] {
            return false;
        }
        let next = self.prog[pc + 1];
        let fits = match st.regs[usize::from(ins.dst)] {
            Reg::Scalar(s) if next.opc == CLASS_ALU64 | ALU_RSH | SRC_K => s.umax <= u64::from(u32::MAX),
            Reg::Scalar(s) if next.opc == CLASS_ALU64 | ALU_ARSH | SRC_K => s.umax <= 0x7fff_ffff,
            _ => false,
        };
        fits && next.dst == ins.dst && next.imm == 32 && next.src == 0 && next.off == 0
    }

    /// Gives the scalar in `reg` an id if it has none (before a comparison
    /// that records a fact about it); returns the id.
    fn ensure_id(&mut self, st: &mut State, reg: u8) -> u32 {
        if let Reg::Scalar(s) = &mut st.regs[usize::from(reg)] {
            if s.id == 0 {
                self.next_id += 1;
                s.id = self.next_id;
            }
            return s.id;
        }
        0
    }

    fn target(pc: usize, ins: &Insn) -> usize {
        // In range: checked by the static pass.
        usize::try_from(i64::try_from(pc).unwrap_or(0) + 1 + super::structure::jump_offset(ins)).unwrap_or(0)
    }

    fn target_call(pc: usize, ins: &Insn) -> usize {
        // In range: checked by the static pass.
        usize::try_from(i64::try_from(pc).unwrap_or(0) + 1 + i64::from(ins.imm)).unwrap_or(0)
    }

    fn jump(&mut self, cur: &mut Path, pending: &mut Vec<Path>, ins: Insn) -> Result<Flow, VerifyError> {
        let pc = cur.pc;
        let op = ins.opc & 0xf0;
        match op {
            JMP_JA => {
                cur.pc = Self::target(pc, &ins);
                return Ok(Flow::Continue);
            }
            JMP_EXIT => {
                if let Some(ret_pc) = super::calls::leave(&mut cur.st, pc)? {
                    cur.pc = ret_pc;
                    return Ok(Flow::Continue);
                }
                return match cur.st.regs[0] {
                    Reg::NotInit => Err(VerifyError::UninitR0AtExit { insn: pc }),
                    Reg::Ptr(p) => Err(VerifyError::PointerLeakReturn { insn: pc, kind: p.kind.name() }),
                    Reg::Scalar(_) => Ok(Flow::End),
                };
            }
            JMP_CALL if ins.src == CALL_LOCAL => {
                super::calls::enter(&mut cur.st, pc, pc + 1)?;
                cur.pc = Self::target_call(pc, &ins);
                return Ok(Flow::Continue);
            }
            JMP_CALL => {
                self.call(&mut cur.st, pc, ins.imm)?;
                cur.pc += 1;
                return Ok(Flow::Continue);
            }
            _ => {}
        }
        let cmp = Cmp::of_op(op).ok_or(VerifyError::UnknownOpcode { insn: pc, opc: ins.opc })?;
        let facts = self.fact_operands(&mut cur.st, &ins);
        let sides = self.branch(&mut cur.st, pc, &ins, cmp, facts)?;
        let target = Self::target(pc, &ins);
        match sides {
            Sides::Both(t) => {
                let cap = self.env.limits.pending_max;
                if pending.len() >= cap {
                    return Err(VerifyError::PendingCap { insn: pc, cap });
                }
                let bytes = t.bytes() + std::mem::size_of::<Path>();
                self.budget.charge(bytes, pc)?;
                cur.since_store.1 = cur.since_store.1.saturating_add(1);
                pending.push(Path { pc: target, st: t, bytes, since_store: cur.since_store });
                self.stats.peak_pending = self.stats.peak_pending.max(u64::try_from(pending.len()).unwrap_or(u64::MAX));
                cur.pc += 1;
            }
            Sides::Taken => cur.pc = target,
            Sides::Fall => cur.pc += 1,
            Sides::Neither => return Ok(Flow::End),
        }
        Ok(Flow::Continue)
    }

    /// For a 64-bit comparison of two registers holding non-constant
    /// scalars, the ids of both values (given now if they had none), so the
    /// outcome can be recorded as a [`Fact`]; `None` otherwise.
    fn fact_operands(&mut self, st: &mut State, ins: &Insn) -> Option<(u32, u32)> {
        if ins.class() != CLASS_JMP || ins.opc & SRC_X == 0 || ins.src == ins.dst {
            return None;
        }
        let varies = |r: &Reg| matches!(r, Reg::Scalar(s) if s.as_const().is_none());
        if !varies(&st.regs[usize::from(ins.dst)]) || !varies(&st.regs[usize::from(ins.src)]) {
            return None;
        }
        Some((self.ensure_id(st, ins.dst), self.ensure_id(st, ins.src)))
    }

    /// Which sides of a conditional jump are feasible. `st` becomes the
    /// state of the side the walk continues on (the fall-through when both
    /// are feasible; the taken side's state is returned). `facts`: the ids
    /// of both operands when the outcome is to be recorded.
    fn branch(&mut self, st: &mut State, pc: usize, ins: &Insn, cmp: Cmp, facts: Option<(u32, u32)>) -> Result<Sides, VerifyError> {
        let is32 = ins.class() == CLASS_JMP32;
        let x = ins.opc & SRC_X != 0;
        let d = read(st, pc, ins.dst)?;
        let s = if x { read(st, pc, ins.src)? } else { Reg::constant(0) };
        match (d, s) {
            (Reg::Scalar(a), s) if !matches!(s, Reg::Ptr(_)) => {
                let b = match s {
                    Reg::Scalar(b) if x => b,
                    _ => imm_operand(ins.imm, is32, cmp),
                };
                // One value against itself (the same register, or copies):
                // the outcome is known and teaches nothing.
                if x && (ins.src == ins.dst || (a.id != 0 && a.id == b.id)) {
                    if let Some(t) = Cmp::Eq.implies(cmp) {
                        return Ok(if t { Sides::Taken } else { Sides::Fall });
                    }
                }
                // A relation this path already learned decides it.
                if let Some((ia, ib)) = facts {
                    if let Some(t) = st.holds(ia, cmp, ib) {
                        return Ok(if t { Sides::Taken } else { Sides::Fall });
                    }
                }
                let side = |c: Cmp| -> Option<Edit> {
                    let (a2, b2, exact) = if is32 { refine32(c, a, b, x)? } else { refine(c, a, b).map(|(p, q)| (p, q, true))? };
                    // Between two non-constant registers, a refinement that
                    // leaves a register nearly unknown is dropped: it buys no
                    // proof but makes states differ and defeats pruning.
                    let both_vary = x && a.as_const().is_none() && b.as_const().is_none();
                    let keep = |s: &Scalar| !(both_vary && is_wide(s));
                    Some(Edit {
                        src: (exact && x && ins.src != ins.dst && keep(&b2)).then_some((ins.src, b2)),
                        dst: (exact && !(x && ins.src == ins.dst) && keep(&a2)).then_some((ins.dst, a2)),
                        fact: facts.map(|(a, b)| Fact { a, cmp: c, b, ra: ins.dst, rb: ins.src }),
                    })
                };
                Ok(match (side(cmp), side(cmp.negate())) {
                    (Some(t), Some(f)) => {
                        let mut taken = Box::new(st.clone());
                        t.apply(&mut taken);
                        f.apply(st);
                        Sides::Both(taken)
                    }
                    (Some(t), None) => {
                        t.apply(st);
                        Sides::Taken
                    }
                    (None, Some(f)) => {
                        f.apply(st);
                        Sides::Fall
                    }
                    (None, None) => Sides::Neither,
                })
            }
            (Reg::Ptr(p), Reg::Scalar(z)) if !is32 && z.as_const() == Some(0) && matches!(cmp, Cmp::Eq | Cmp::Ne) && (x || ins.imm == 0) => {
                let PtrKind::MapValueOrNull(m) = p.kind else {
                    // Other pointers are never null.
                    return Ok(if cmp == Cmp::Eq { Sides::Fall } else { Sides::Taken });
                };
                let mut other = Box::new(st.clone());
                let (null, nonnull) = if cmp == Cmp::Eq { (&mut *other, &mut *st) } else { (&mut *st, &mut *other) };
                set_null(null, p.id, None);
                set_null(nonnull, p.id, Some(m));
                // `other` is the taken side: null on `== 0`, non-null on `!= 0`.
                Ok(Sides::Both(other))
            }
            (Reg::Ptr(_), _) => Err(VerifyError::PointerCompare { insn: pc, reg: ins.dst }),
            _ => Err(VerifyError::PointerCompare { insn: pc, reg: ins.src }),
        }
    }

    fn call(&mut self, st: &mut State, pc: usize, id: i32) -> Result<(), VerifyError> {
        let proto = helpers::proto(id).ok_or(VerifyError::UnknownHelper { insn: pc, id })?;
        let helper = proto.name;
        let mut map: Option<usize> = None;
        for (i, arg) in proto.args.iter().enumerate() {
            let reg = reg_no(i + 1);
            let r = st.regs[i + 1];
            let spec = map.and_then(|m| self.env.maps.get(m));
            match arg {
                Arg::Map => match r {
                    Reg::Ptr(Ptr { kind: PtrKind::MapHandle(m), .. }) => map = usize::try_from(m).ok(),
                    Reg::NotInit => return Err(VerifyError::UninitRegister { insn: pc, reg }),
                    other => return Err(VerifyError::HelperArg { insn: pc, reg, helper, got: other.type_name(), expected: "map_ptr" }),
                },
                Arg::Key | Arg::Value => {
                    let (size, what) = match (arg, spec) {
                        (Arg::Key, Some(s)) => (s.key_size, "pointer to key"),
                        (_, Some(s)) => (s.value_size, "pointer to value"),
                        // The map argument always comes first and is checked.
                        (_, None) => (0, "pointer"),
                    };
                    mem::helper_read(self.env, st, pc, reg, size, helper, what)?;
                }
                Arg::Scalar | Arg::OptScalar => match r {
                    Reg::NotInit if *arg == Arg::OptScalar => {}
                    Reg::NotInit => return Err(VerifyError::UninitRegister { insn: pc, reg }),
                    Reg::Ptr(p) => return Err(VerifyError::PointerLeakHelper { insn: pc, reg, kind: p.kind.name(), helper }),
                    Reg::Scalar(_) => {}
                },
                Arg::Mem => {
                    let size_reg = reg + 1;
                    let size = match st.regs[i + 2] {
                        Reg::Scalar(s) => s.as_const().filter(|v| *v > 0).and_then(|v| u32::try_from(v).ok()),
                        _ => None,
                    };
                    let Some(size) = size else {
                        return Err(VerifyError::HelperArg { insn: pc, reg: size_reg, helper, got: st.regs[i + 2].type_name(), expected: "constant size > 0" });
                    };
                    mem::helper_read(self.env, st, pc, reg, size, helper, "pointer to memory")?;
                }
                Arg::ConstSize => {}
            }
        }
        for r in &mut st.regs[1..=5] {
            *r = Reg::NotInit;
        }
        st.regs[0] = match (proto.ret, map) {
            (Ret::MapValueOrNull, Some(m)) => {
                self.next_id += 1;
                let kind = PtrKind::MapValueOrNull(u32::try_from(m).unwrap_or(u32::MAX));
                Reg::Ptr(Ptr { id: self.next_id, ..Ptr::new(kind) })
            }
            _ => Reg::Scalar(Scalar::unknown()),
        };
        Ok(())
    }
}

/// Puts the refined scalar `v` in `reg` and in every register and spill
/// holding the same value (same non-zero id): Linux's `find_equal_scalars`.
fn set_equal_scalars(st: &mut State, reg: u8, v: Scalar) {
    st.regs[usize::from(reg)] = Reg::Scalar(v);
    if v.id != 0 {
        st.for_each_reg(|r| {
            if matches!(r, Reg::Scalar(s) if s.id == v.id) {
                *r = Reg::Scalar(v);
            }
        });
    }
}

/// After a null check of the pointer with `id`: null (`None`) makes every
/// copy the scalar 0, non-null (`Some(map)`) makes them map value pointers.
fn set_null(st: &mut State, id: u32, map: Option<u32>) {
    st.for_each_reg(|r| {
        if let Reg::Ptr(p) = r {
            if matches!(p.kind, PtrKind::MapValueOrNull(_)) && p.id == id {
                *r = match map {
                    None => Reg::constant(0),
                    Some(m) => Reg::Ptr(Ptr { kind: PtrKind::MapValue(m), id: 0, ..*p }),
                };
            }
        }
    });
}

/// Whether `s` still spans more than half of the 64-bit space both as
/// unsigned and as signed values.
fn is_wide(s: &Scalar) -> bool {
    const HALF: u128 = 1 << 63;
    let uspan = u128::from(s.umax - s.umin);
    let sspan = (i128::from(s.smax) - i128::from(s.smin)).unsigned_abs();
    uspan > HALF && sspan > HALF
}

/// The immediate operand of a conditional jump as the runtime compares it:
/// JMP sign-extends to 64 bits; JMP32 compares 32 bits (as u32, or as i32
/// for signed comparisons, which refine32 maps onto non-negative values).
#[allow(clippy::cast_sign_loss)] // deliberate sign extension of the immediate
fn imm_operand(imm: i32, is32: bool, cmp: Cmp) -> Scalar {
    if is32 && !cmp.is_signed() {
        Scalar::constant(u64::from(u32::from_le_bytes(imm.to_le_bytes())))
    } else {
        Scalar::constant(i64::from(imm) as u64)
    }
}

/// JMP32 on scalars. When both operands are known to fit in the compared
/// 32 bits (non-negative i32 for signed comparisons), the 64-bit refinement
/// is exact. Otherwise only feasibility is decided, on the low 32 bits, and
/// the registers are left as they are (`exact` = false).
fn refine32(cmp: Cmp, a: Scalar, b: Scalar, x: bool) -> Option<(Scalar, Scalar, bool)> {
    let lim: u64 = if cmp.is_signed() { 0x7fff_ffff } else { 0xffff_ffff };
    if a.umax <= lim && (!x || b.umax <= lim) {
        return refine(cmp, a, b).map(|(p, q)| (p, q, true));
    }
    let (ta, tb) = (a.trunc32(), b.trunc32());
    // Unsigned: the truncations are the compared values. Signed: only when
    // both are non-negative as i32 do they order like their u64 values.
    // What is learned bounds the low 32 bits of each register (so that a
    // later `w = w` keeps it).
    if !cmp.is_signed() || (ta.umax <= lim && tb.umax <= lim) {
        let (ta2, tb2) = refine(cmp, ta, tb)?;
        let a2 = a.with_sub32(ta2.umin, ta2.umax)?;
        let b2 = if x { b.with_sub32(tb2.umin, tb2.umax)? } else { b };
        return Some((a2, b2, true));
    }
    Some((a, b, false))
}
