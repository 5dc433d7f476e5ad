//! bpf-to-bpf calls (clang emits them for `__noinline` and large functions):
//! the functions of a program, their structure, and the frames of the
//! abstract state.
//!
//! As in Linux: a callee gets r1-r5 from its caller, fresh r0 and r6-r9, and
//! its own stack (r10); on `exit` the caller's registers and stack come back,
//! r0 holds the callee's result and r1-r5 are clobbered. At most
//! [`FRAMES_MAX`] frames (the program included), and the stack bytes of all
//! frames of a call chain together stay within [`COMBINED_STACK_MAX`] (what
//! Linux allows; our engines give each frame 512 bytes regardless).
//!
//! What we do not model, and so refuse: a pointer to the caller's stack
//! passed to a callee, and a callee returning a pointer to its own stack.
//! Frames are compared exactly when states are pruned.

use super::error::VerifyError;
use super::regs::{Ptr, PtrKind, Reg, REG_COUNT};
use super::stack::{Stack, STACK_SIZE};
use super::state::State;
use crate::insn::*;

/// Deepest call chain, program included (Linux's `MAX_CALL_FRAMES`).
pub const FRAMES_MAX: usize = 8;
/// Stack bytes of all frames of a call chain together (Linux's `MAX_BPF_STACK`).
pub const COMBINED_STACK_MAX: i64 = STACK_SIZE;

/// A caller waiting for its callee: where it resumes, its registers and stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub ret_pc: usize,
    pub regs: [Reg; REG_COUNT],
    pub stack: Stack,
}

/// The target of the local call at `pc`, if it is one.
pub fn call_target(prog: &[Insn], pc: usize) -> Option<i64> {
    let i = &prog[pc];
    (i.opc == CLASS_JMP | JMP_CALL && i.src == CALL_LOCAL).then(|| i64::try_from(pc).unwrap_or(i64::MAX) + 1 + i64::from(i.imm))
}

/// First slot of every function: 0 and each local call target, sorted.
pub fn function_starts(prog: &[Insn], second: &[bool]) -> Vec<usize> {
    let mut starts = vec![0];
    for pc in (0..prog.len()).filter(|pc| !second[*pc]) {
        if let Some(t) = call_target(prog, pc).and_then(|t| usize::try_from(t).ok()) {
            starts.push(t);
        }
    }
    starts.sort_unstable();
    starts.dedup();
    starts
}

/// Every jump stays inside its function, and every function ends with an
/// `exit` or `ja` (no falling into the next one).
pub fn check_functions(prog: &[Insn], second: &[bool], starts: &[usize]) -> Result<(), VerifyError> {
    for (k, &start) in starts.iter().enumerate() {
        let end = starts.get(k + 1).copied().unwrap_or(prog.len());
        for pc in (start..end).filter(|pc| !second[*pc]) {
            let i = &prog[pc];
            let class = i.class();
            let op = i.opc & 0xf0;
            if (class == CLASS_JMP || class == CLASS_JMP32) && op != JMP_CALL && op != JMP_EXIT {
                let t = i64::try_from(pc).unwrap_or(i64::MAX) + 1 + super::structure::jump_offset(i);
                if t < i64::try_from(start).unwrap_or(0) || t >= i64::try_from(end).unwrap_or(i64::MAX) {
                    return Err(VerifyError::Call { insn: pc, what: "jump out of its function" });
                }
            }
        }
        let last = (start..end).rev().find(|pc| !second[*pc]).unwrap_or(start);
        let leaves = matches!(prog[last].opc, o if o == CLASS_JMP | JMP_EXIT || o == CLASS_JMP | JMP_JA || o == CLASS_JMP32 | JMP_JA);
        if !leaves {
            return Err(VerifyError::Call { insn: last, what: "function falls through into the next one" });
        }
    }
    Ok(())
}

fn stack_bytes(st: &State) -> i64 {
    st.frames.iter().map(|f| f.stack.depth()).sum::<i64>() + st.stack.depth()
}

fn check_combined(st: &State, insn: usize) -> Result<(), VerifyError> {
    let bytes = stack_bytes(st);
    if bytes > COMBINED_STACK_MAX {
        return Err(VerifyError::CombinedStack { insn, bytes, max: COMBINED_STACK_MAX });
    }
    Ok(())
}

/// The local call at `pc` to `target`: pushes the caller's frame.
pub fn enter(st: &mut State, pc: usize, ret_pc: usize) -> Result<(), VerifyError> {
    if st.frames.len() + 1 >= FRAMES_MAX {
        return Err(VerifyError::CallDepth { insn: pc, max: FRAMES_MAX });
    }
    check_combined(st, pc)?;
    let mut regs = [Reg::NotInit; REG_COUNT];
    for (new, old) in regs[1..=5].iter_mut().zip(&st.regs[1..=5]) {
        match *old {
            Reg::Ptr(p) if p.kind == PtrKind::Stack => return Err(VerifyError::Call { insn: pc, what: "a pointer to the caller's stack as an argument is not supported" }),
            v => *new = v,
        }
    }
    regs[10] = Reg::Ptr(Ptr::new(PtrKind::Stack));
    let caller = Frame { ret_pc, regs: st.regs, stack: std::mem::take(&mut st.stack) };
    st.frames.push(caller);
    st.regs = regs;
    Ok(())
}

/// `exit` at `pc` inside a callee: back to the caller; returns where it
/// resumes. `None` if `st` is in the program's own frame.
pub fn leave(st: &mut State, pc: usize) -> Result<Option<usize>, VerifyError> {
    if st.frames.is_empty() {
        return Ok(None);
    }
    let r0 = match st.regs[0] {
        Reg::NotInit => return Err(VerifyError::UninitR0AtExit { insn: pc }),
        Reg::Ptr(p) if p.kind == PtrKind::Stack => return Err(VerifyError::Call { insn: pc, what: "returning a pointer to the callee's stack" }),
        r => r,
    };
    check_combined(st, pc)?;
    let caller = st.frames.pop().ok_or(VerifyError::Call { insn: pc, what: "no caller" })?;
    st.regs = caller.regs;
    st.stack = caller.stack;
    st.regs[0] = r0;
    for r in &mut st.regs[1..=5] {
        *r = Reg::NotInit;
    }
    Ok(Some(caller.ret_pc))
}
