//! Differential testing of the JIT against the interpreter (issue 11, item
//! 7): a generator of random programs the verifier can accept (every ALU
//! operation of ISA v4, signed division, movsx, byte swaps, sign-extending
//! loads, stack and scratch atomics, forward jumps of every kind), and a
//! comparison of the two engines on every accepted one: r0, the data block,
//! the scratch, the context, and the registers r0-r5, r8, r9 (stored into the scratch
//! by a common epilogue that every path reaches). Shared by
//! `examples/jitfuzz.rs` (long runs) and `tests/jit_differential.rs`.
#![allow(dead_code, clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_possible_wrap)]

use ebpf_runtime::context::SCRATCH_SIZE;
use ebpf_runtime::insn::*;
use ebpf_runtime::{Engine, Instance, Program, XrpContext};

/// Data block size the programs are verified for.
pub const DATA_SIZE: u32 = 512;
/// Scratch bytes where the epilogue stores r0-r5, r8, r9 (r6, r7 hold pointers).
pub const REGS_AT: i16 = (SCRATCH_SIZE - 80) as i16;
/// Stack slots the prologue initialises (r10 - 8 .. r10 - 8 * SLOTS).
const SLOTS: i16 = 8;
/// Body instructions per program, at most.
const BODY_MAX: u64 = 40;

/// xorshift64*: deterministic from the seed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }
    /// Interesting 64-bit values: edges, small, random.
    pub fn value(&mut self) -> u64 {
        match self.below(6) {
            0 => self.pick(&[0, 1, u64::MAX, i64::MIN as u64, i64::MAX as u64, 0x8000_0000, 0xffff_ffff, 0x7fff_ffff]),
            1 => self.below(16),
            2 => (self.below(16) as i64).wrapping_neg() as u64,
            _ => self.next(),
        }
    }
}

fn ins(opc: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn { opc, dst, src, off, imm }
}

/// Registers the body computes with (r6 = scratch, r7 = data block are
/// pointers the body never overwrites).
const REGS: [u8; 8] = [0, 1, 2, 3, 4, 5, 8, 9];

/// One random program: prologue, `BODY_MAX` random instructions at most,
/// epilogue storing the computed registers into the scratch, `exit`.
pub fn generate(rng: &mut Rng) -> Vec<Insn> {
    let mut p = vec![
        ins(CLASS_LDX | SIZE_DW | MODE_MEM, 6, 1, 272, 0), // r6 = ctx->scratch
        ins(CLASS_LDX | SIZE_DW | MODE_MEM, 7, 1, 0, 0),   // r7 = ctx->data
    ];
    for r in REGS {
        let v = rng.value();
        p.push(ins(OP_LDDW, r, 0, 0, v as u32 as i32));
        p.push(ins(0, 0, 0, 0, (v >> 32) as u32 as i32));
    }
    for k in 1..=SLOTS {
        p.push(ins(CLASS_STX | SIZE_DW | MODE_MEM, 10, rng.pick(&REGS), -8 * k, 0));
    }
    let n = 1 + rng.below(BODY_MAX) as usize;
    let body_start = p.len();
    // Body slots are generated one instruction each (no lddw in the body), so
    // a forward jump from body slot i may target any slot up to the epilogue.
    for i in 0..n {
        let left = (n - i - 1) as i16; // slots after this one in the body
        p.push(body_insn(rng, left));
    }
    debug_assert_eq!(p.len(), body_start + n);
    for (k, r) in REGS.into_iter().enumerate() {
        p.push(ins(CLASS_STX | SIZE_DW | MODE_MEM, 6, r, REGS_AT + 8 * k as i16, 0));
    }
    p.push(ins(CLASS_JMP | JMP_EXIT, 0, 0, 0, 0));
    p
}

fn body_insn(rng: &mut Rng, left: i16) -> Insn {
    let dst = rng.pick(&REGS);
    let src = rng.pick(&REGS);
    let imm = rng.value() as i32;
    match rng.below(10) {
        0..=3 => {
            let class = if rng.below(2) == 0 { CLASS_ALU64 } else { CLASS_ALU };
            let op = rng.pick(&[ALU_ADD, ALU_SUB, ALU_MUL, ALU_DIV, ALU_OR, ALU_AND, ALU_LSH, ALU_RSH, ALU_NEG, ALU_MOD, ALU_XOR, ALU_MOV, ALU_ARSH]);
            let x = rng.below(2) == 0;
            let mut i = ins(class | op | if x { SRC_X } else { SRC_K }, dst, if x { src } else { 0 }, 0, if x { 0 } else { imm });
            if op == ALU_NEG {
                i = ins(class | op, dst, 0, 0, 0);
            }
            if matches!(op, ALU_LSH | ALU_RSH | ALU_ARSH) && !x {
                i.imm = rng.below(if class == CLASS_ALU64 { 64 } else { 32 }) as i32;
            }
            if matches!(op, ALU_DIV | ALU_MOD) && rng.below(2) == 0 {
                i.off = 1; // sdiv / smod
            }
            if op == ALU_MOV && x && rng.below(2) == 0 {
                i.off = if class == CLASS_ALU64 { rng.pick(&[8, 16, 32]) } else { rng.pick(&[8, 16]) };
            }
            i
        }
        4 => {
            // le / be (ALU) or bswap (ALU64).
            let class = if rng.below(3) == 0 { CLASS_ALU64 } else { CLASS_ALU };
            let to_be = class == CLASS_ALU && rng.below(2) == 0;
            ins(class | ALU_END | if to_be { SRC_X } else { 0 }, dst, 0, 0, rng.pick(&[16, 32, 64]))
        }
        5 => {
            // Load from the data block, zero- or sign-extending.
            let size = rng.pick(&[SIZE_B, SIZE_H, SIZE_W, SIZE_DW]);
            let mode = if size != SIZE_DW && rng.below(2) == 0 { MODE_MEMSX } else { MODE_MEM };
            ins(CLASS_LDX | size | mode, dst, 7, rng.below(u64::from(DATA_SIZE) - 8) as i16, 0)
        }
        6 => {
            // Store to the scratch (below the registers' area) or the stack.
            let size = rng.pick(&[SIZE_B, SIZE_H, SIZE_W, SIZE_DW]);
            if rng.below(2) == 0 {
                ins(CLASS_STX | size | MODE_MEM, 6, src, rng.below(REGS_AT as u64 - 8) as i16, 0)
            } else {
                ins(CLASS_STX | SIZE_DW | MODE_MEM, 10, src, -8 * (1 + rng.below(SLOTS as u64) as i16), 0)
            }
        }
        7 => {
            // Atomics on the stack or the scratch, 32 or 64 bits, aligned.
            let size = rng.pick(&[SIZE_W, SIZE_DW]);
            let op = rng.pick(&[0x00, 0x01, 0x40, 0x41, 0x50, 0x51, 0xa0, 0xa1, 0xe1, 0xf1]);
            let (base, off) = if rng.below(2) == 0 { (10, -8 * (1 + rng.below(SLOTS as u64) as i16)) } else { (6, 8 * rng.below((REGS_AT as u64 - 8) / 8) as i16) };
            ins(CLASS_STX | size | MODE_ATOMIC, base, src, off, op)
        }
        8 => {
            // Reload a stack slot.
            ins(CLASS_LDX | SIZE_DW | MODE_MEM, dst, 10, -8 * (1 + rng.below(SLOTS as u64) as i16), 0)
        }
        _ => {
            // Forward conditional jump, 64- or 32-bit, register or immediate.
            let class = if rng.below(2) == 0 { CLASS_JMP } else { CLASS_JMP32 };
            let op = rng.pick(&[JMP_JEQ, JMP_JGT, JMP_JGE, JMP_JSET, JMP_JNE, JMP_JSGT, JMP_JSGE, JMP_JLT, JMP_JLE, JMP_JSLT, JMP_JSLE]);
            let x = rng.below(2) == 0;
            let off = rng.below(left as u64 + 1) as i16;
            ins(class | op | if x { SRC_X } else { SRC_K }, dst, if x { src } else { 0 }, off, if x { 0 } else { imm })
        }
    }
}

/// The program as the loader would hand it over (no maps).
pub fn program(insns: Vec<Insn>) -> Program {
    Program { section: "jitfuzz".into(), license: None, insns, maps: Vec::new() }
}

/// What one run leaves behind.
#[derive(Debug, PartialEq, Eq)]
pub struct Run {
    pub ret: u64,
    pub data: Vec<u8>,
    pub scratch: Vec<u8>,
    pub ctx: [u8; 280],
}

fn run_on(inst: &Instance, data: &[u8], scratch: &[u64]) -> Result<Run, String> {
    let mut data = data.to_vec();
    let mut words = scratch.to_vec();
    let len = words.len() * 8;
    // SAFETY: `words` is `len` initialised bytes, exclusively borrowed for
    // this view; u8 has no invalid bit patterns. An 8-aligned scratch, as
    // programs with atomics need.
    let s: &mut [u8] = unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), len) };
    let mut ctx = XrpContext::default();
    let ret = inst.call(&mut ctx, &mut data, s).map_err(|e| e.to_string())?;
    // The buffers' addresses differ between runs: compare the rest.
    ctx.data = 0;
    ctx.scratch = 0;
    Ok(Run { ret, data, scratch: s.to_vec(), ctx: ctx.to_bytes() })
}

/// Outcome of one generated program.
pub enum Verdict {
    Rejected(String),
    Agree,
    Differ(String),
}

/// Verifies `insns`; if accepted, runs it on both engines on `inputs`
/// random inputs and compares everything.
pub fn check(insns: &[Insn], rng: &mut Rng, inputs: usize) -> Verdict {
    let prog = program(insns.to_vec());
    let interp = match Instance::new(&prog, DATA_SIZE, Engine::Interpreter) {
        Ok(i) => i,
        Err(e) => return Verdict::Rejected(e.to_string()),
    };
    let jit = match Instance::new(&prog, DATA_SIZE, Engine::Jit) {
        Ok(j) => j,
        Err(e) => return Verdict::Differ(format!("accepted, but the JIT cannot compile it: {e}")),
    };
    for _ in 0..inputs {
        let data: Vec<u8> = (0..DATA_SIZE).map(|_| rng.next() as u8).collect();
        let scratch: Vec<u64> = (0..SCRATCH_SIZE / 8).map(|_| rng.value()).collect();
        let a = run_on(&interp, &data, &scratch);
        let b = run_on(&jit, &data, &scratch);
        match (a, b) {
            (Ok(a), Ok(b)) if a == b => {}
            (Ok(a), Ok(b)) => {
                let regs = |r: &Run| -> Vec<String> {
                    (0..REGS.len()).map(|k| format!("{:#x}", u64::from_le_bytes(r.scratch[REGS_AT as usize + 8 * k..][..8].try_into().unwrap()))).collect()
                };
                return Verdict::Differ(format!("interpreter r0={:#x} regs {:?}; JIT r0={:#x} regs {:?}", a.ret, regs(&a), b.ret, regs(&b)));
            }
            (Err(e), _) => return Verdict::Differ(format!("accepted program failed in the interpreter: {e}")),
            (_, Err(e)) => return Verdict::Differ(format!("JIT call failed: {e}")),
        }
    }
    Verdict::Agree
}

/// A program as Rust source, for a regression test.
pub fn dump(prog: &[Insn]) -> String {
    prog.iter().enumerate().map(|(i, x)| format!("  {i:3}: Insn {{ opc: {:#04x}, dst: {}, src: {}, off: {}, imm: {} }}\n", x.opc, x.dst, x.src, x.off, x.imm)).collect()
}
