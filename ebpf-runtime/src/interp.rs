//! The interpreter: the reference semantics of the eBPF ISA (RFC 9669, ISA
//! v4) in our own code. It is what conformance, fuzzing and `--interp` run,
//! and what the JIT is compared against.
//!
//! It trusts nothing: every load, store and atomic is checked against the
//! start *and* end of one region the program may touch (context, data block,
//! scratch, its stack frames, map values and globals), map helper arguments
//! are checked the same way before the helper runs, and a map handle must be
//! one of the program's maps. A program that would break a check ends with an
//! [`InterpError`] naming the instruction.
//!
//! Registers at entry: r1 = the context (or the conformance memory), r10 =
//! the frame pointer, every other register 0. Calls to a local function give
//! the callee a fresh 512-byte frame (r10 moves down by [`STACK_BYTES`]),
//! r1-r5 as arguments and r0, r6-r9 zero, and keep the caller's r6-r9 (saved
//! here, as the callee-saved registers of the ABI); at most [`FRAMES_MAX`]
//! frames, as Linux.

// Registers are u64 bit patterns; the ISA reinterprets them as signed or
// narrower values per instruction, which is what these casts do.
#![allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap, clippy::cast_sign_loss)]

use crate::helpers;
use crate::insn::{self, helper_id, Insn};
use crate::maps::Map;
use crate::progmem::{self, AtomicOp};

/// Bytes of stack per frame (Linux's `MAX_BPF_STACK`).
pub const STACK_BYTES: usize = 512;
/// Deepest call chain, main program included (Linux's `MAX_CALL_FRAMES`).
pub const FRAMES_MAX: usize = 8;
/// Most instructions one run executes before it is stopped. Verified
/// programs end long before (the verifier bounds every path); the limit is
/// there for unverified programs (conformance, fuzzing, `run_unverified`).
pub const INSNS_PER_RUN_MAX: u64 = 1 << 26;

/// Why a run stopped without `exit` from the main program.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InterpError {
    #[error("insn {pc}: {kind} of {size} bytes at {addr:#x} is outside every region the program may access")]
    OutOfBounds { pc: usize, kind: &'static str, addr: u64, size: usize },
    #[error("insn {pc}: {kind} of {size} bytes at {addr:#x} is in read-only memory")]
    ReadOnly { pc: usize, kind: &'static str, addr: u64, size: usize },
    #[error("insn {pc}: atomic of {size} bytes at {addr:#x} is not aligned")]
    Misaligned { pc: usize, addr: u64, size: usize },
    #[error("insn {pc}: unknown helper {id}")]
    UnknownHelper { pc: usize, id: i64 },
    #[error("insn {pc}: r1 = {handle:#x} is not a map of this program")]
    BadMapHandle { pc: usize, handle: u64 },
    #[error("insn {pc}: more than {FRAMES_MAX} nested calls")]
    CallDepth { pc: usize },
    #[error("insn {pc}: opcode {opc:#04x} is not an instruction")]
    BadInstruction { pc: usize, opc: u8 },
    #[error("insn {pc}: jump or call to {target}, outside the program")]
    BadTarget { pc: usize, target: i64 },
    #[error("stopped after {INSNS_PER_RUN_MAX} instructions")]
    TooLong,
}

/// A range of host memory the program may access.
#[derive(Debug, Clone, Copy)]
pub struct Area {
    pub start: u64,
    pub len: u64,
    pub writable: bool,
}

impl Area {
    fn contains(&self, addr: u64, size: usize) -> bool {
        addr >= self.start && addr.checked_add(size as u64).is_some_and(|end| end <= self.start + self.len)
    }
}

/// A host replacement for the helpers (fuzzers use it to hand out chosen
/// map values): `(helper id, r1..r5) -> r0`.
pub type HelperHook<'a> = &'a dyn Fn(i64, [u64; 5]) -> u64;

/// What one run may touch besides its own stack.
pub struct Env<'a> {
    /// Context, data block, scratch, map values, globals.
    pub areas: &'a [Area],
    /// The program's maps: a map handle is the address of one of them.
    pub maps: &'a [Map],
    /// If set, called instead of the built-in helpers.
    pub helper_hook: Option<HelperHook<'a>>,
}

impl std::fmt::Debug for Env<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env").field("areas", &self.areas).field("maps", &self.maps.len()).field("helper_hook", &self.helper_hook.is_some()).finish()
    }
}

struct Frame {
    ret_pc: usize,
    saved: [u64; 4],
}

struct Machine<'a> {
    reg: [u64; 11],
    env: &'a Env<'a>,
    stack_base: u64,
    depth: usize,
}

/// Runs `prog` with r1 = `r1` and returns r0. Every access is checked
/// against `env.areas` and the run's own stack.
///
/// # Safety
/// Each area of `env` must be memory valid for reads (and, if `writable`,
/// writes) for the whole call, not accessed through Rust references
/// meanwhile: the interpreter trusts the areas it is given, nothing else.
pub unsafe fn run(prog: &[Insn], env: &Env<'_>, r1: u64) -> Result<u64, InterpError> {
    let mut stack = vec![0u64; FRAMES_MAX * STACK_BYTES / 8];
    // The stack is reached only through this address from here on.
    let stack_base = stack.as_mut_ptr() as u64;
    let mut m = Machine { reg: [0; 11], env, stack_base, depth: 0 };
    m.reg[1] = r1;
    m.reg[10] = m.frame_top();
    let r = m.exec(prog);
    drop(stack);
    r
}

fn sx32(imm: i32) -> u64 {
    i64::from(imm) as u64
}

fn lddw_value(prog: &[Insn], pc: usize) -> u64 {
    let lo = u64::from(prog[pc].imm as u32);
    let hi = prog.get(pc + 1).map_or(0, |n| u64::from(n.imm as u32));
    lo | (hi << 32)
}

impl Machine<'_> {
    fn frame_top(&self) -> u64 {
        self.stack_base + ((FRAMES_MAX - self.depth) * STACK_BYTES) as u64
    }

    /// Checks `addr..addr+size` against the regions; stack accesses may
    /// reach the current frame and its callers' frames (a callee may be
    /// handed a pointer into its caller's stack), never a deeper one.
    fn check(&self, pc: usize, kind: &'static str, addr: u64, size: usize, write: bool) -> Result<(), InterpError> {
        let stack = Area { start: self.frame_top() - STACK_BYTES as u64, len: ((self.depth + 1) * STACK_BYTES) as u64, writable: true };
        let area = std::iter::once(&stack).chain(self.env.areas).find(|a| a.contains(addr, size));
        match area {
            None => Err(InterpError::OutOfBounds { pc, kind, addr, size }),
            Some(a) if write && !a.writable => Err(InterpError::ReadOnly { pc, kind, addr, size }),
            Some(_) => Ok(()),
        }
    }

    fn load(&self, pc: usize, addr: u64, size: usize) -> Result<u64, InterpError> {
        self.check(pc, "load", addr, size, false)?;
        // SAFETY: `addr..addr+size` lies in a region of this run (checked),
        // alive for the run and accessed by Rust only through progmem.
        Ok(unsafe { progmem::load(addr, size) })
    }

    fn store(&self, pc: usize, addr: u64, size: usize, v: u64) -> Result<(), InterpError> {
        self.check(pc, "store", addr, size, true)?;
        // SAFETY: as in `load`, and the region is writable (checked).
        unsafe { progmem::store(addr, size, v) };
        Ok(())
    }

    fn exec(&mut self, prog: &[Insn]) -> Result<u64, InterpError> {
        let mut frames: Vec<Frame> = Vec::with_capacity(FRAMES_MAX);
        let mut pc = 0usize;
        let mut count = 0u64;
        loop {
            count += 1;
            if count > INSNS_PER_RUN_MAX {
                return Err(InterpError::TooLong);
            }
            let Some(&i) = prog.get(pc) else { return Err(InterpError::BadTarget { pc, target: pc as i64 }) };
            let mut next = pc + 1;
            match i.class() {
                insn::CLASS_ALU64 => self.alu64(pc, &i)?,
                insn::CLASS_ALU => self.alu32(pc, &i)?,
                insn::CLASS_LD => {
                    if i.opc != insn::OP_LDDW || pc + 1 >= prog.len() {
                        return Err(InterpError::BadInstruction { pc, opc: i.opc });
                    }
                    self.reg[usize::from(i.dst)] = lddw_value(prog, pc);
                    next = pc + 2;
                }
                insn::CLASS_LDX => self.ldx(pc, &i)?,
                insn::CLASS_ST | insn::CLASS_STX => self.st(pc, &i)?,
                _ => {
                    let op = i.opc & 0xf0;
                    if i.class() == insn::CLASS_JMP && op == insn::JMP_EXIT {
                        match frames.pop() {
                            None => return Ok(self.reg[0]),
                            Some(f) => {
                                self.reg[6..10].copy_from_slice(&f.saved);
                                self.depth -= 1;
                                self.reg[10] = self.frame_top();
                                next = f.ret_pc;
                            }
                        }
                    } else if i.class() == insn::CLASS_JMP && op == insn::JMP_CALL {
                        if i.src == insn::CALL_LOCAL && i.opc & insn::SRC_X == 0 {
                            if frames.len() + 1 >= FRAMES_MAX {
                                return Err(InterpError::CallDepth { pc });
                            }
                            let target = pc as i64 + 1 + i64::from(i.imm);
                            if target < 0 || target as usize >= prog.len() {
                                return Err(InterpError::BadTarget { pc, target });
                            }
                            frames.push(Frame { ret_pc: pc + 1, saved: [self.reg[6], self.reg[7], self.reg[8], self.reg[9]] });
                            // The callee starts with r0 and r6-r9 zero, as
                            // in the JIT: nothing of the caller's leaks in.
                            self.reg[0] = 0;
                            self.reg[6..10].fill(0);
                            self.depth += 1;
                            self.reg[10] = self.frame_top();
                            next = target as usize;
                        } else {
                            // callx: the helper id is in register `dst`.
                            let id = if i.opc & insn::SRC_X != 0 { self.reg[usize::from(i.dst)] as i64 } else { i64::from(i.imm) };
                            self.reg[0] = self.helper(pc, id)?;
                        }
                    } else {
                        next = self.jump(pc, &i)?;
                    }
                }
            }
            pc = next;
        }
    }

    /// The operand: `src` register or the immediate sign-extended to 64 bits.
    fn operand64(&self, i: &Insn) -> u64 {
        if i.opc & insn::SRC_X != 0 {
            self.reg[usize::from(i.src)]
        } else {
            sx32(i.imm)
        }
    }

    fn alu64(&mut self, pc: usize, i: &Insn) -> Result<(), InterpError> {
        let d = usize::from(i.dst);
        let a = self.reg[d];
        let b = self.operand64(i);
        let signed = i.off == 1;
        self.reg[d] = match i.opc & 0xf0 {
            insn::ALU_ADD => a.wrapping_add(b),
            insn::ALU_SUB => a.wrapping_sub(b),
            insn::ALU_MUL => a.wrapping_mul(b),
            // Division by zero gives 0; INT_MIN / -1 wraps to INT_MIN.
            insn::ALU_DIV if signed => {
                if b == 0 {
                    0
                } else {
                    (a as i64).wrapping_div(b as i64) as u64
                }
            }
            insn::ALU_DIV => a.checked_div(b).unwrap_or(0),
            insn::ALU_OR => a | b,
            insn::ALU_AND => a & b,
            // Shift amounts are taken modulo the width.
            insn::ALU_LSH => a.wrapping_shl((b & 63) as u32),
            insn::ALU_RSH => a.wrapping_shr((b & 63) as u32),
            insn::ALU_NEG => (a as i64).wrapping_neg() as u64,
            // Modulo by zero leaves the dividend; INT_MIN % -1 is 0.
            insn::ALU_MOD if signed => {
                if b == 0 {
                    a
                } else {
                    (a as i64).wrapping_rem(b as i64) as u64
                }
            }
            insn::ALU_MOD => a.checked_rem(b).unwrap_or(a),
            insn::ALU_XOR => a ^ b,
            insn::ALU_MOV => match (i.opc & insn::SRC_X != 0, i.off) {
                (true, 8) => i64::from(b as u8 as i8) as u64,
                (true, 16) => i64::from(b as u16 as i16) as u64,
                (true, 32) => i64::from(b as u32 as i32) as u64,
                _ => b,
            },
            insn::ALU_ARSH => ((a as i64) >> (b & 63)) as u64,
            // bswap16/32/64: unconditional byte swap, zero-extended.
            insn::ALU_END => match i.imm {
                16 => u64::from((a as u16).swap_bytes()),
                32 => u64::from((a as u32).swap_bytes()),
                64 => a.swap_bytes(),
                _ => return Err(InterpError::BadInstruction { pc, opc: i.opc }),
            },
            _ => return Err(InterpError::BadInstruction { pc, opc: i.opc }),
        };
        Ok(())
    }

    fn alu32(&mut self, pc: usize, i: &Insn) -> Result<(), InterpError> {
        let d = usize::from(i.dst);
        let a = self.reg[d] as u32;
        let b = if i.opc & insn::SRC_X != 0 { self.reg[usize::from(i.src)] as u32 } else { i.imm as u32 };
        let signed = i.off == 1;
        let r: u32 = match i.opc & 0xf0 {
            insn::ALU_ADD => a.wrapping_add(b),
            insn::ALU_SUB => a.wrapping_sub(b),
            insn::ALU_MUL => a.wrapping_mul(b),
            insn::ALU_DIV if signed => {
                if b == 0 {
                    0
                } else {
                    (a as i32).wrapping_div(b as i32) as u32
                }
            }
            insn::ALU_DIV => a.checked_div(b).unwrap_or(0),
            insn::ALU_OR => a | b,
            insn::ALU_AND => a & b,
            insn::ALU_LSH => a.wrapping_shl(b & 31),
            insn::ALU_RSH => a.wrapping_shr(b & 31),
            insn::ALU_NEG => (a as i32).wrapping_neg() as u32,
            insn::ALU_MOD if signed => {
                if b == 0 {
                    a
                } else {
                    (a as i32).wrapping_rem(b as i32) as u32
                }
            }
            insn::ALU_MOD => a.checked_rem(b).unwrap_or(a),
            insn::ALU_XOR => a ^ b,
            insn::ALU_MOV => match (i.opc & insn::SRC_X != 0, i.off) {
                (true, 8) => i32::from(b as u8 as i8) as u32,
                (true, 16) => i32::from(b as u16 as i16) as u32,
                _ => b,
            },
            insn::ALU_ARSH => ((a as i32) >> (b & 31)) as u32,
            insn::ALU_END => {
                // le: to little-endian (the host order: truncate); be: swap.
                let v = self.reg[d];
                let to_be = i.opc & insn::SRC_X != 0;
                self.reg[d] = match (i.imm, to_be) {
                    (16, false) => v & 0xffff,
                    (32, false) => v & 0xffff_ffff,
                    (64, false) => v,
                    (16, true) => u64::from((v as u16).swap_bytes()),
                    (32, true) => u64::from((v as u32).swap_bytes()),
                    (64, true) => v.swap_bytes(),
                    _ => return Err(InterpError::BadInstruction { pc, opc: i.opc }),
                };
                return Ok(());
            }
            _ => return Err(InterpError::BadInstruction { pc, opc: i.opc }),
        };
        // 32-bit results are zero-extended into the 64-bit register.
        self.reg[d] = u64::from(r);
        Ok(())
    }

    fn ldx(&mut self, pc: usize, i: &Insn) -> Result<(), InterpError> {
        let size = size_of_opc(i.opc);
        let addr = self.reg[usize::from(i.src)].wrapping_add(i64::from(i.off) as u64);
        let v = self.load(pc, addr, size)?;
        self.reg[usize::from(i.dst)] = match (i.opc & 0xe0, size) {
            (insn::MODE_MEM, _) => v,
            (insn::MODE_MEMSX, 1) => i64::from(v as u8 as i8) as u64,
            (insn::MODE_MEMSX, 2) => i64::from(v as u16 as i16) as u64,
            (insn::MODE_MEMSX, 4) => i64::from(v as u32 as i32) as u64,
            _ => return Err(InterpError::BadInstruction { pc, opc: i.opc }),
        };
        Ok(())
    }

    fn st(&mut self, pc: usize, i: &Insn) -> Result<(), InterpError> {
        let size = size_of_opc(i.opc);
        let addr = self.reg[usize::from(i.dst)].wrapping_add(i64::from(i.off) as u64);
        match (i.class(), i.opc & 0xe0) {
            (insn::CLASS_ST, insn::MODE_MEM) => self.store(pc, addr, size, sx32(i.imm)),
            (insn::CLASS_STX, insn::MODE_MEM) => self.store(pc, addr, size, self.reg[usize::from(i.src)]),
            (insn::CLASS_STX, insn::MODE_ATOMIC) if size == 4 || size == 8 => self.atomic(pc, i, addr, size),
            _ => Err(InterpError::BadInstruction { pc, opc: i.opc }),
        }
    }

    /// `BPF_ATOMIC`: add/or/and/xor (with `BPF_FETCH`: old value into src),
    /// xchg (old value into src), cmpxchg (compare with r0, old value into
    /// r0). 32-bit forms zero-extend the value they load into a register.
    fn atomic(&mut self, pc: usize, i: &Insn, addr: u64, size: usize) -> Result<(), InterpError> {
        const FETCH: i32 = 0x01;
        let s = usize::from(i.src);
        let op = match i.imm & !FETCH {
            0x00 => AtomicOp::Add,
            0x40 => AtomicOp::Or,
            0x50 => AtomicOp::And,
            0xa0 => AtomicOp::Xor,
            0xe0 if i.imm & FETCH != 0 => AtomicOp::Xchg,
            0xf0 if i.imm & FETCH != 0 => AtomicOp::Cmpxchg { expected: self.reg[0] },
            _ => return Err(InterpError::BadInstruction { pc, opc: i.opc }),
        };
        self.check(pc, "atomic", addr, size, true)?;
        if addr % size as u64 != 0 {
            return Err(InterpError::Misaligned { pc, addr, size });
        }
        // SAFETY: inside a writable region of this run, aligned (checked).
        let old = unsafe { progmem::atomic(addr, size, op, self.reg[s]) };
        match op {
            AtomicOp::Cmpxchg { .. } => self.reg[0] = old,
            _ if i.imm & FETCH != 0 => self.reg[s] = old,
            _ => {}
        }
        Ok(())
    }

    fn jump(&self, pc: usize, i: &Insn) -> Result<usize, InterpError> {
        let op = i.opc & 0xf0;
        let is32 = i.class() == insn::CLASS_JMP32;
        let (rel, taken) = if op == insn::JMP_JA {
            // gotol (JMP32 class) has its offset in imm.
            (if is32 { i64::from(i.imm) } else { i64::from(i.off) }, true)
        } else {
            let (a, b) = if is32 {
                let b = if i.opc & insn::SRC_X != 0 { self.reg[usize::from(i.src)] as u32 } else { i.imm as u32 };
                (u64::from(self.reg[usize::from(i.dst)] as u32), u64::from(b))
            } else {
                (self.reg[usize::from(i.dst)], self.operand64(i))
            };
            // Signed compares see the operands at their width.
            let (sa, sb) = if is32 { (i64::from(a as u32 as i32), i64::from(b as u32 as i32)) } else { (a as i64, b as i64) };
            let taken = match op {
                insn::JMP_JEQ => a == b,
                insn::JMP_JNE => a != b,
                insn::JMP_JGT => a > b,
                insn::JMP_JGE => a >= b,
                insn::JMP_JLT => a < b,
                insn::JMP_JLE => a <= b,
                insn::JMP_JSET => a & b != 0,
                insn::JMP_JSGT => sa > sb,
                insn::JMP_JSGE => sa >= sb,
                insn::JMP_JSLT => sa < sb,
                insn::JMP_JSLE => sa <= sb,
                _ => return Err(InterpError::BadInstruction { pc, opc: i.opc }),
            };
            (i64::from(i.off), taken)
        };
        if !taken {
            return Ok(pc + 1);
        }
        let target = pc as i64 + 1 + rel;
        usize::try_from(target).map_err(|_| InterpError::BadTarget { pc, target })
    }

    /// Calls helper `id` with r1..r5 after checking its arguments as the
    /// verifier would have.
    fn helper(&self, pc: usize, id: i64) -> Result<u64, InterpError> {
        let [_, r1, r2, r3, r4, r5, ..] = self.reg;
        if let Some(hook) = self.env.helper_hook {
            return Ok(hook(id, [r1, r2, r3, r4, r5]));
        }
        let map = || self.env.maps.iter().find(|m| std::ptr::from_ref::<Map>(m) as u64 == r1).ok_or(InterpError::BadMapHandle { pc, handle: r1 });
        // Copies `len` bytes of program memory after checking them.
        let bytes = |addr: u64, len: usize, f: &mut dyn FnMut(&[u8])| -> Result<(), InterpError> {
            self.check(pc, "helper argument", addr, len, false)?;
            // SAFETY: checked to lie in a region of this run.
            unsafe { progmem::with_bytes(addr, len, |b| f(b)) };
            Ok(())
        };
        let mut out = 0;
        match i32::try_from(id).unwrap_or(-1) {
            helper_id::MAP_LOOKUP_ELEM => {
                let m = map()?;
                bytes(r2, m.spec().key_size as usize, &mut |k| out = helpers::lookup(m, k))?;
            }
            helper_id::MAP_UPDATE_ELEM => {
                let m = map()?;
                let mut key = Vec::new();
                bytes(r2, m.spec().key_size as usize, &mut |k| key = k.to_vec())?;
                bytes(r3, m.spec().value_size as usize, &mut |v| out = helpers::update(m, &key, v, r4))?;
            }
            helper_id::MAP_DELETE_ELEM => {
                let m = map()?;
                bytes(r2, m.spec().key_size as usize, &mut |k| out = helpers::delete(m, k))?;
            }
            helper_id::KTIME_GET_NS => out = helpers::ktime_get_ns(),
            helper_id::TRACE_PRINTK => {
                let len = usize::try_from(r2).unwrap_or(usize::MAX).min(helpers::TRACE_FMT_BYTES_MAX);
                bytes(r1, len, &mut |f| out = helpers::printk(f, [r3, r4, r5]))?;
            }
            _ => return Err(InterpError::UnknownHelper { pc, id }),
        }
        Ok(out)
    }
}

fn size_of_opc(opc: u8) -> usize {
    match opc & 0x18 {
        insn::SIZE_B => 1,
        insn::SIZE_H => 2,
        insn::SIZE_W => 4,
        _ => 8,
    }
}
