//! Differential fuzzer for the verifier (issue 3, item 9): generates random
//! but plausible storage functions, verifies them, and runs every accepted
//! one in our interpreter, which checks the start and end of each memory
//! access against the regions the program may reach. An access error (or a
//! panic, or a hang) of an accepted program is a verifier bug. Stable Rust,
//! time-bounded and deterministic from the seed:
//!
//! ```text
//! cargo run --release -p ebpf-runtime --example difffuzz -- --seconds 60 --seed 1
//! ```
//!
//! Every region (data block, scratch, each map value) lives inside a
//! guard-padded buffer, so even an access the interpreter wrongly let
//! through would land in our own padding. The helpers are the fuzzer's own
//! (`helper_lookup` hands out chosen map values), through the interpreter's
//! helper hook.
//!
//! Leaks (issue 15): the generator also tries to get a pointer out (into an
//! unset `trace_printk` argument through pruning, scratch, a context field,
//! a map value, the return value). Every content runs twice, with the
//! program's buffers (data block, scratch, map values, context) at two
//! different addresses; what the user can read afterwards (r0, the scratch,
//! the context's writable fields, the map values, the scalar helper
//! arguments) must be the same both times. A difference is a failure: it
//! depends on an address. (An earlier net searched the outputs for values
//! near a buffer's address; it caught coincidences that depended on where
//! the allocator put things, so it now only names the value in a report.)
//! Before fuzzing, two canaries (unverified programs that leak the data
//! block's address) must be caught, so the net is known to work.
//!
//! Caps (issue 15): every 20 000th program (and the first) is instead a
//! path-explosion shape (`tests/verifier_common/explode.rs`: branch fans,
//! nested data-dependent ifs, loops whose states never converge); it must
//! be accepted or refused by a cap, within the wall-time cap (plus slack)
//! and with the counted memory below its cap.
#![allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_possible_wrap)]
// (the generator reinterprets random bits as offsets and immediates on purpose)

#[path = "../tests/verifier_common/mod.rs"]
mod verifier_common;

use ebpf_runtime::context::{CTX_SIZE, OFF_DATA, OFF_SCRATCH};
use ebpf_runtime::insn::{self, *};
use ebpf_runtime::interp::{self, Area};
use ebpf_runtime::verifier::{verify, Env, Limits};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use verifier_common::explode;
use verifier_common::*;

/// Bytes of padding around every region the program may reach.
const GUARD: usize = 256;
/// A value this close to a region's host address counts as a leak (a
/// leaked pointer is a region's address plus an offset the verifier
/// allowed, so a page of slack either side covers it).
const LEAK_SLACK: u64 = 1 << 12;
/// Every this many programs, one is a path-explosion shape.
const EXPLOSION_EVERY: u64 = 20_000;
/// How far past the wall-time cap a verification may end (the clock is
/// read every `TIME_CHECK_INTERVAL` units of work, and the VM is shared).
const EXPLOSION_TIME_SLACK: Duration = Duration::from_millis(500);
/// Data contents tried per accepted program.
const CONTENTS_PER_PROG: u64 = 3;
/// Wall-clock limit for all runs of one program (the verifier bounds loops,
/// this only guards against a verifier bug that lets one run forever).
const RUN_TIMEOUT: Duration = Duration::from_secs(5);
const SCRATCH_SIZE: u32 = 4096;

/// SplitMix64: ten lines, and the sequence for a seed never changes with a
/// dependency's version, which keeps reported seeds reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }
}

// ---- program generation ----------------------------------------------------

const SCALARS: [u8; 6] = [R0, R1, R2, R3, R4, R5];
const SIZES: [u8; 4] = [B, H, W, DW];

fn size_bytes(size: u8) -> i64 {
    match size {
        B => 1,
        H => 2,
        W => 4,
        _ => 8,
    }
}

/// r6 = ctx, r7 = data, r8 = scratch, r9 = a map value, r10 = stack.
struct Gen<'r> {
    rng: &'r mut Rng,
    asm: Asm,
    labels: u32,
    data_size: i64,
}

impl Gen<'_> {
    fn label(&mut self) -> String {
        self.labels += 1;
        format!("l{}", self.labels)
    }

    fn emit(&mut self, f: impl FnOnce(Asm) -> Asm) {
        let a = std::mem::take(&mut self.asm);
        self.asm = f(a);
    }

    /// A base register and the size of what it points to (stack: negative).
    fn base(&mut self) -> (u8, i64) {
        match self.rng.below(10) {
            0..=3 => (R7, self.data_size),
            4..=6 => (R8, i64::from(SCRATCH_SIZE)),
            7 => (R9, 16),
            8 => (R10, -512),
            _ => (R6, CTX_SIZE as i64),
        }
    }

    /// An offset for an access of `n` bytes into a region of `len` bytes,
    /// biased toward the edges.
    fn offset(&mut self, len: i64, n: i64) -> i16 {
        let (lo, hi) = if len < 0 { (len, -n) } else { (0, len - n) };
        let o = match self.rng.below(10) {
            0..=6 => self.rng.range(lo, hi.max(lo)),
            7 => hi + self.rng.range(-8, 8),
            8 => lo + self.rng.range(-8, 8),
            _ => self.rng.range(lo - 600, hi + 600),
        };
        o.clamp(i64::from(i16::MIN), i64::from(i16::MAX)) as i16
    }

    fn scalar(&mut self) -> u8 {
        self.rng.pick(&SCALARS)
    }

    fn access(&mut self) {
        let (base, len) = self.base();
        let size = self.rng.pick(&SIZES);
        let off = self.offset(len, size_bytes(size));
        let r = self.scalar();
        let sx = size != DW && self.rng.chance(20);
        match self.rng.below(3) {
            0 if sx => self.emit(|a| a.raw(Insn { opc: CLASS_LDX | MODE_MEMSX | size, dst: r, src: base, off, imm: 0 })),
            0 => self.emit(|a| a.ldx(size, r, base, off)),
            1 => {
                let imm = self.rng.range(-5, 5) as i32;
                self.emit(|a| a.st(size, base, off, imm));
            }
            _ => self.emit(|a| a.stx(size, base, r, off)),
        }
    }

    fn ctx_access(&mut self) {
        let off = if self.rng.chance(80) { self.rng.pick(&[0, 8, 16, 24, 136, 144, 264, 272]) as i16 } else { self.rng.range(-8, 288) as i16 };
        let size = if !self.rng.chance(85) {
            self.rng.pick(&SIZES)
        } else if off == 8 {
            W
        } else {
            DW
        };
        let r = self.scalar();
        match self.rng.below(3) {
            0 => self.emit(|a| a.ldx(size, r, R6, off)),
            1 => self.emit(|a| a.st(size, R6, off, 1)),
            _ => self.emit(|a| a.stx(size, R6, r, off)),
        }
    }

    /// Load an index, bound it (compare or mask), add it to a base, access.
    fn bounded_index(&mut self) {
        let (base, len) = self.base();
        let idx = self.scalar();
        let mut ptr = self.scalar();
        while ptr == idx {
            ptr = self.scalar();
        }
        let src = self.rng.pick(&[R7, R8]);
        let lsize = self.rng.pick(&SIZES);
        let loff = self.offset(256, size_bytes(lsize));
        let size = self.rng.pick(&SIZES);
        let span = len.abs();
        let bound = (span - size_bytes(size) + self.rng.range(-4, 4)).max(0) as i32;
        let skip = self.label();
        let op = self.rng.pick(&[JMP_JGT, JMP_JGE, JMP_JSGT]);
        let mask = self.rng.pick(&[0xff, 0x7ff, 0xff8, 0xfff, 0x1ff]);
        let use_mask = self.rng.chance(30);
        let use32 = self.rng.chance(25);
        let off = self.offset(16, size_bytes(size));
        let load = self.rng.chance(60);
        self.emit(|a| {
            let a = a.ldx(lsize, idx, src, loff);
            let a = if use_mask {
                if use32 {
                    a.alu32(ALU_AND, idx, mask)
                } else {
                    a.alu(ALU_AND, idx, mask)
                }
            } else if use32 {
                a.jmp32(op, idx, bound, &skip)
            } else {
                a.jmp(op, idx, bound, &skip)
            };
            let a = a.movr(ptr, base).alur(ALU_ADD, ptr, idx);
            let a = if load { a.ldx(size, idx, ptr, off) } else { a.stx(size, ptr, idx, off) };
            a.label(&skip)
        });
    }

    /// Load a value, transform it with a few ALU ops, bound it with one or
    /// two random comparisons (64- or 32-bit, signed or not, against an
    /// immediate or a register), then use it as an offset.
    fn compound_index(&mut self) {
        let (base, len) = self.base();
        let idx = self.scalar();
        let mut other = self.scalar();
        while other == idx {
            other = self.scalar();
        }
        let src = self.rng.pick(&[R7, R8]);
        let lsize = self.rng.pick(&SIZES);
        let loff = self.offset(256, size_bytes(lsize));
        let mut a = std::mem::take(&mut self.asm).ldx(lsize, idx, src, loff);
        let span = len.abs();
        for _ in 0..self.rng.range(0, 3) {
            let op = self.rng.pick(&[ALU_ADD, ALU_SUB, ALU_MUL, ALU_DIV, ALU_MOD, ALU_AND, ALU_OR, ALU_XOR, ALU_LSH, ALU_RSH, ALU_ARSH, ALU_NEG]);
            let shift = matches!(op, ALU_LSH | ALU_RSH | ALU_ARSH);
            let imm = if shift {
                self.rng.range(0, 31)
            } else if self.rng.chance(50) {
                self.rng.pick(&[span - 8, span - 4, span - 1, span, span / 2, 8, 1]) + self.rng.range(-2, 2)
            } else {
                self.rng.range(-70, 4100)
            } as i32;
            let imm = if op == ALU_NEG { 0 } else { imm };
            a = match self.rng.below(5) {
                0 => a.alu32(op, idx, imm),
                4 => a.raw(Insn { opc: CLASS_ALU64 | ALU_MOV | SRC_X, dst: idx, src: idx, off: self.rng.pick(&[8, 16, 32]), imm: 0 }),
                1 if op != ALU_NEG => a.ldx(B, other, src, self.rng.range(0, 255) as i16).alur(op, idx, other),
                _ => a.alu(op, idx, imm),
            };
        }
        let skip = self.label();
        let edges = [span - 8, span - 4, span - 1, span, 0, 1, 8, -1, span / 2];
        let checks: Vec<(u8, i32)> = if self.rng.chance(50) {
            // Two-sided: an upper and a lower bound, in random forms.
            let hi = (self.rng.pick(&edges) + self.rng.range(-2, 2)) as i32;
            let lo = (self.rng.pick(&edges) + self.rng.range(-2, 2)) as i32;
            vec![(self.rng.pick(&[JMP_JGT, JMP_JGE, JMP_JSGT, JMP_JSGE]), hi), (self.rng.pick(&[JMP_JLT, JMP_JLE, JMP_JSLT, JMP_JSLE]), lo)]
        } else {
            let op = self.rng.pick(&[JMP_JGT, JMP_JGE, JMP_JLT, JMP_JLE, JMP_JSGT, JMP_JSGE, JMP_JSLT, JMP_JSLE, JMP_JEQ, JMP_JNE, JMP_JSET]);
            vec![(op, (self.rng.pick(&edges) + self.rng.range(-2, 2)) as i32)]
        };
        for (op, bound) in checks {
            a = match self.rng.below(4) {
                0 => a.jmp32(op, idx, bound, &skip),
                1 => a.mov(other, bound).jmpr(op, idx, other, &skip),
                2 => a.mov(other, bound).jmp32r(op, idx, other, &skip),
                _ => a.jmp(op, idx, bound, &skip),
            };
        }
        if self.rng.chance(30) {
            // Through the stack: a spill of the bounded index, read back with
            // a possibly different size or offset.
            let ssize = self.rng.pick(&SIZES);
            let slot = -8 * self.rng.range(1, 8) as i16;
            let soff = slot + if self.rng.chance(70) { 0 } else { self.rng.range(0, 7) as i16 };
            let rsize = if self.rng.chance(70) { ssize } else { self.rng.pick(&SIZES) };
            let roff = if self.rng.chance(70) { soff } else { slot + self.rng.range(0, 7) as i16 };
            let fill = self.rng.pick(&[0, -1, 0x1000, 0x7fff_ffff, 1 << 16]);
            a = a.st(DW, R10, slot, fill).stx(ssize, R10, idx, soff).ldx(rsize, idx, R10, roff);
        }
        let size = self.rng.pick(&SIZES);
        let off = self.rng.range(-8, 8) as i16;
        a = a.movr(other, base);
        a = if self.rng.chance(30) {
            // From the end backwards: ptr = base + K - idx.
            let k = (self.rng.pick(&edges) + self.rng.range(-2, 2)) as i32;
            a.alu(ALU_ADD, other, k).alur(ALU_SUB, other, idx)
        } else {
            a.alur(ALU_ADD, other, idx)
        };
        a = if self.rng.chance(60) { a.ldx(size, idx, other, off) } else { a.stx(size, other, idx, off) };
        self.asm = a.label(&skip);
    }

    fn alu(&mut self) {
        if self.rng.chance(15) {
            // CPU v4 forms the runtime lowers: movsx and bswap.
            let (dst, src) = (self.scalar(), self.scalar());
            let i = if self.rng.chance(50) {
                let is64 = self.rng.chance(60);
                let off = if is64 { self.rng.pick(&[8, 16, 32]) } else { self.rng.pick(&[8, 16]) };
                let class = if is64 { CLASS_ALU64 } else { CLASS_ALU };
                Insn { opc: class | ALU_MOV | SRC_X, dst, src, off, imm: 0 }
            } else {
                Insn { opc: CLASS_ALU64 | ALU_END, dst, src: 0, off: 0, imm: self.rng.pick(&[16, 32, 64]) }
            };
            self.emit(|a| a.raw(i));
            return;
        }
        let op = self.rng.pick(&[ALU_ADD, ALU_SUB, ALU_MUL, ALU_DIV, ALU_OR, ALU_AND, ALU_LSH, ALU_RSH, ALU_NEG, ALU_MOD, ALU_XOR, ALU_MOV, ALU_ARSH]);
        let dst = self.scalar();
        let is_shift = matches!(op, ALU_LSH | ALU_RSH | ALU_ARSH);
        let imm = if is_shift { self.rng.range(0, 31) as i32 } else { self.rng.range(-300, 5000) as i32 };
        let x = op != ALU_NEG && self.rng.chance(40);
        let src = self.scalar();
        let is32 = self.rng.chance(35);
        self.emit(|a| match (x, is32) {
            (true, true) => a.alu32r(op, dst, src),
            (true, false) => a.alur(op, dst, src),
            (false, true) => a.alu32(op, dst, if op == ALU_NEG { 0 } else { imm }),
            (false, false) => a.alu(op, dst, if op == ALU_NEG { 0 } else { imm }),
        });
    }

    fn pointer_arith(&mut self) {
        let (base, len) = self.base();
        let p = self.scalar();
        let k = i32::from(self.offset(len, 1));
        let size = self.rng.pick(&SIZES);
        let off = self.rng.range(-8, 8) as i16;
        let sub = self.rng.chance(30);
        self.emit(|a| {
            let a = a.movr(p, base);
            let a = if sub { a.alu(ALU_SUB, p, -k) } else { a.alu(ALU_ADD, p, k) };
            a.ldx(size, p, p, off)
        });
    }

    fn stack_spill(&mut self) {
        let slot = -8 * self.rng.range(1, 64) as i16;
        let ptr = self.rng.pick(&[R6, R7, R8, R9, R10]);
        let r = self.scalar();
        let size = if self.rng.chance(80) { DW } else { self.rng.pick(&SIZES) };
        let off = self.rng.range(0, 16) as i16;
        let data = self.rng.chance(40);
        self.emit(|a| {
            let a = if data { a.stx(DW, R10, r, slot) } else { a.stx(DW, R10, ptr, slot) };
            let a = a.ldx(size, r, R10, slot);
            if data {
                a
            } else {
                a.ldx(B, r, r, off)
            }
        });
    }

    fn lookup(&mut self) {
        let map = self.rng.pick(&[0, 0, 1, 2]);
        let key = self.rng.range(0, 3) as i32;
        let size = self.rng.pick(&SIZES);
        let len = if map == 0 { 16 } else { 8 };
        let off = self.offset(len, size_bytes(size));
        let skip = self.label();
        let check = self.rng.chance(92);
        let keep = self.rng.chance(50);
        self.emit(|a| {
            let a = a.st(DW, R10, -8, key).movr(R2, R10).alu(ALU_ADD, R2, -8).ld_map(R1, map);
            let a = a.call(insn::helper_id::MAP_LOOKUP_ELEM);
            let a = if check { a.jmp(JMP_JEQ, R0, 0, &skip) } else { a };
            let a = a.ldx(size, R1, R0, off);
            let a = if keep { a.movr(R9, R0) } else { a };
            a.label(&skip).mov(R0, 0).mov(R1, 0).mov(R2, 0).mov(R3, 0).mov(R4, 0).mov(R5, 0)
        });
    }

    fn counted_loop(&mut self) {
        let (base, len) = self.base();
        let c = self.rng.pick(&[R0, R1, R2]);
        let t = self.rng.pick(&[R3, R4, R5]);
        let step = self.rng.pick(&[1, 1, 2, 4, 8]);
        let scale = self.rng.pick(&[0, 1, 2, 3]);
        let size = self.rng.pick(&SIZES);
        let n = ((len.abs() >> scale) + self.rng.range(-3, 3)).clamp(1, 700) as i32;
        let n = if self.rng.chance(50) { n } else { self.rng.range(1, 64) as i32 };
        let off = self.rng.range(-4, 4) as i16;
        let op = self.rng.pick(&[JMP_JLT, JMP_JLE, JMP_JNE, JMP_JSLT]);
        let head = self.label();
        self.emit(|a| a.mov(c, 0).label(&head).movr(t, c).alu(ALU_LSH, t, scale).alur(ALU_ADD, t, base).ldx(size, t, t, off).alu(ALU_ADD, c, step).jmp(op, c, n, &head).mov(t, 0));
    }

    fn branch_over(&mut self) {
        let r = self.scalar();
        let op = self.rng.pick(&[JMP_JEQ, JMP_JNE, JMP_JGT, JMP_JLT, JMP_JSET, JMP_JSGT, JMP_JSLE]);
        let imm = self.rng.range(-10, 300) as i32;
        let skip = self.label();
        let is32 = self.rng.chance(30);
        self.emit(|a| if is32 { a.jmp32(op, r, imm, &skip) } else { a.jmp(op, r, imm, &skip) });
        self.snippet(false);
        self.emit(|a| a.label(&skip));
    }

    fn misc_call(&mut self) {
        if self.rng.chance(50) {
            self.emit(|a| a.call(insn::helper_id::KTIME_GET_NS));
        } else {
            let n = self.rng.range(1, 16) as i32;
            self.emit(|a| a.st(DW, R10, -16, 0x000a_6425).st(DW, R10, -8, 0).movr(R1, R10).alu(ALU_ADD, R1, -16).mov(R2, n).call(insn::helper_id::TRACE_PRINTK));
        }
        self.emit(|a| a.mov(R1, 0).mov(R2, 0).mov(R3, 0).mov(R4, 0).mov(R5, 0));
    }

    /// Tries to get a pointer out through one channel, often behind a
    /// branch whose first-explored side leaves the register unset (after a
    /// call) or a scalar, so that only pruning could let it through.
    fn leak_attempt(&mut self) {
        let ptr = self.rng.pick(&[R6, R7, R8, R9, R10]);
        let reg = self.rng.pick(&[R3, R4, R5]);
        let sink = self.rng.below(6);
        let join = self.label();
        let side = self.label();
        let via_join = self.rng.chance(80);
        let scalar_first = self.rng.chance(30);
        let off = self.rng.range(0, 100) as i16;
        self.emit(|a| {
            // A call leaves r1-r5 unset.
            let mut a = a.call(insn::helper_id::KTIME_GET_NS).ldx(B, R0, R7, off);
            if via_join {
                a = a.jmp(JMP_JNE, R0, 0, &side);
                a = if scalar_first { a.mov(reg, 1) } else { a };
                a = a.ja(&join).label(&side).movr(reg, ptr).label(&join);
            } else {
                a = a.movr(reg, ptr);
            }
            a = match sink {
                0 | 1 => a.st(DW, R10, -32, 0x000a_7025).movr(R1, R10).alu(ALU_ADD, R1, -32).mov(R2, 4).call(insn::helper_id::TRACE_PRINTK),
                2 => a.stx(DW, R8, reg, 64),
                3 => a.stx(DW, R6, reg, 24),
                4 => a.stx(DW, R9, reg, 8),
                _ => a.movr(R0, reg).exit(),
            };
            a.mov(R0, 0).mov(R1, 0).mov(R2, 0).mov(R3, 0).mov(R4, 0).mov(R5, 0)
        });
    }

    fn snippet(&mut self, allow_branch: bool) {
        if self.rng.chance(4) {
            self.leak_attempt();
            return;
        }
        match self.rng.below(if allow_branch { 14 } else { 12 }) {
            0 | 1 => self.access(),
            10 | 11 => self.compound_index(),
            2 => self.ctx_access(),
            3 | 4 => self.bounded_index(),
            5 => self.alu(),
            6 => self.pointer_arith(),
            7 => self.stack_spill(),
            8 => self.lookup(),
            9 => self.misc_call(),
            12 => self.counted_loop(),
            _ => self.branch_over(),
        }
    }
}

fn generate(rng: &mut Rng, data_size: u32) -> Vec<Insn> {
    let mut g = Gen { rng, asm: Asm::new(), labels: 0, data_size: i64::from(data_size) };
    g.emit(|a| {
        a.movr(R6, R1)
            .ldx(DW, R7, R6, OFF_DATA as i16)
            .ldx(DW, R8, R6, OFF_SCRATCH as i16)
            .ld_map_value(R9, 0, 0)
            .mov(R0, 0)
            .mov(R1, 0)
            .ldx(DW, R2, R7, 0)
            .ldx(W, R3, R8, 8)
            .ldx(B, R4, R7, 100)
            .mov(R5, 7)
    });
    let n = g.rng.range(1, 8);
    for _ in 0..n {
        g.snippet(true);
    }
    if g.rng.chance(90) {
        let v = g.rng.range(0, 3) as i32;
        g.emit(|a| a.mov(R0, v));
    }
    let mut prog = std::mem::take(&mut g.asm).exit().build();
    // Now and then, break one instruction outright (the verifier must reject
    // or handle it, never panic).
    if rng.chance(5) {
        let i = rng.below(prog.len() as u64) as usize;
        let bits = rng.next();
        match rng.below(4) {
            0 => prog[i].opc = bits as u8,
            1 => prog[i].off = bits as i16,
            2 => prog[i].imm = bits as i32,
            _ => {
                prog[i].dst = (bits & 0xf) as u8;
                prog[i].src = ((bits >> 4) & 0xf) as u8;
            }
        }
    }
    prog
}

// ---- execution ---------------------------------------------------------------

/// A region with guard padding on both sides.
struct Region {
    buf: Vec<u8>,
    len: usize,
}

impl Region {
    fn new(len: usize) -> Region {
        Region { buf: vec![0xa5; len + 2 * GUARD], len }
    }
    fn bytes(&self) -> &[u8] {
        &self.buf[GUARD..GUARD + self.len]
    }
    fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.buf[GUARD..GUARD + self.len]
    }
    fn addr(&self) -> u64 {
        self.bytes().as_ptr() as u64
    }
}

// The helper hook is a plain closure: the map values it hands out and the
// choice of null or not live in statics, set before each run.
static MAP_VALUE: [AtomicU64; 4] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];
static LOOKUPS: AtomicU64 = AtomicU64::new(0);
static LOOKUP_SALT: AtomicU64 = AtomicU64::new(0);
static CLOCK: AtomicU64 = AtomicU64::new(0);

/// map_lookup_elem: r1 is the map handle (index + 1). Returns null or the
/// value of the map (map 0: one of two entries), deterministically per run.
fn helper_lookup(map: u64) -> u64 {
    let n = LOOKUPS.fetch_add(1, Ordering::Relaxed) ^ LOOKUP_SALT.load(Ordering::Relaxed);
    let slot = match (map, n % 3) {
        (_, 0) => return 0,
        (1, 1) => 0,
        (1, _) => 1,
        (2, _) => 2,
        (3, _) => 3,
        _ => return 0,
    };
    MAP_VALUE[slot].load(Ordering::Relaxed)
}

/// Scalar helper arguments seen in the current run (flags, printed values).
static HELPER_ARGS: std::sync::Mutex<Vec<u64>> = std::sync::Mutex::new(Vec::new());

fn record_args(args: &[u64]) {
    if let Ok(mut v) = HELPER_ARGS.lock() {
        v.extend_from_slice(args);
    }
}

/// Rewrites map references as the loader would: handles become index + 1,
/// global-data addresses the address of the map's value plus the offset.
fn relocate(prog: &[Insn], values: &[u64; 4]) -> Vec<Insn> {
    let mut p = prog.to_vec();
    let mut i = 0;
    while i + 1 < p.len() {
        if p[i].opc == OP_LDDW {
            let v = match p[i].src {
                PSEUDO_MAP_IDX => Some(p[i].imm as u64 + 1),
                PSEUDO_MAP_IDX_VALUE => {
                    let slot = match p[i].imm {
                        0 => 0,
                        1 => 2,
                        _ => 3,
                    };
                    Some(values[slot] + p[i + 1].imm as u64)
                }
                _ => None,
            };
            if let Some(v) = v {
                p[i].src = 0;
                p[i].imm = v as u32 as i32;
                p[i + 1].imm = (v >> 32) as u32 as i32;
            }
            i += 2;
        } else {
            i += 1;
        }
    }
    p
}

/// The buffers one run of a program sees: the data block, the scratch and
/// the map values, and the program relocated to those map values.
struct Placement {
    data: Region,
    scratch: Region,
    values: [Region; 4],
    code: Vec<Insn>,
}

impl Placement {
    fn new(prog: &[Insn], data_size: u32) -> Placement {
        let values = [Region::new(16), Region::new(16), Region::new(8), Region::new(8)];
        let code = relocate(prog, &[values[0].addr(), values[1].addr(), values[2].addr(), values[3].addr()]);
        Placement { data: Region::new(data_size as usize), scratch: Region::new(SCRATCH_SIZE as usize), values, code }
    }
    fn regions(&self) -> impl Iterator<Item = &Region> {
        [&self.data, &self.scratch].into_iter().chain(self.values.iter())
    }
    fn regions_mut(&mut self) -> impl Iterator<Item = &mut Region> {
        [&mut self.data, &mut self.scratch].into_iter().chain(self.values.iter_mut())
    }
}

/// What a run hands back to the user: r0, the scalar helper arguments, the
/// scratch and map values, and the context's fields other than the two
/// pointers the host put there. (The data block is the program's input and
/// written freely.)
#[derive(PartialEq, Debug)]
struct Observed {
    r0: u64,
    helper_args: Vec<u64>,
    returned: Vec<Vec<u8>>,
    ctx_fields: Vec<u8>,
}

/// Runs an accepted program on several contents, each twice from the same
/// bytes: once in each of two placements of its buffers (different
/// addresses). A run is deterministic, so the two must hand back the same
/// things; a difference means something the user can read depends on where
/// the buffers are: an address (or part of one) leaked.
fn execute(prog: &[Insn], data_size: u32, seed: u64) -> Result<u64, String> {
    let mut rng = Rng(seed);
    let mut placements = [Placement::new(prog, data_size), Placement::new(prog, data_size)];
    let mut runs = 0;
    for _ in 0..CONTENTS_PER_PROG {
        for r in placements[0].regions_mut() {
            let len = r.len;
            for w in r.bytes_mut().chunks_mut(8) {
                let v = match rng.below(6) {
                    0 | 1 => rng.below(2 * len as u64 + 16),
                    2 => (rng.below(len as u64 + 16) as i64).wrapping_neg() as u64,
                    3 => (1u64 << rng.below(64)).wrapping_add(rng.range(-2, 2) as u64),
                    _ => rng.next(),
                };
                let n = w.len();
                w.copy_from_slice(&v.to_le_bytes()[..n]);
            }
        }
        let salt = rng.next();
        // Programs write to the regions: every run starts from the same bytes.
        let snapshot: Vec<Vec<u8>> = placements[0].regions().map(|r| r.bytes().to_vec()).collect();
        let mut seen = Vec::new();
        for (pass, pl) in placements.iter_mut().enumerate() {
            for (r, saved) in pl.regions_mut().zip(&snapshot) {
                r.bytes_mut().copy_from_slice(saved);
            }
            seen.push(run_placed(pl, salt).map_err(|e| format!("pass {pass}: {e}"))?);
            runs += 1;
        }
        let [(a, ctx_a), (b, _)] = [&seen[0], &seen[1]];
        if a != b {
            // Name the value, when it is near one of the first run's buffers.
            let hint = match check_leaks(a.r0, &placements[0].regions().collect::<Vec<_>>(), ctx_a) {
                Err(e) => format!(": {e}"),
                Ok(()) => String::new(),
            };
            return Err(format!("what the program hands back depends on where its buffers are (an address leaked){hint}\n  first placement:  {a:?}\n  second placement: {b:?}"));
        }
    }
    Ok(runs)
}

/// One run of the program in `pl` (its regions already hold the contents).
fn run_placed(pl: &mut Placement, salt: u64) -> Result<(Observed, [u8; CTX_SIZE]), String> {
    for (slot, v) in MAP_VALUE.iter().zip(&pl.values) {
        slot.store(v.addr(), Ordering::Relaxed);
    }
    let mut c = [0u8; CTX_SIZE];
    c[OFF_DATA..OFF_DATA + 8].copy_from_slice(&pl.data.addr().to_le_bytes());
    c[OFF_SCRATCH..OFF_SCRATCH + 8].copy_from_slice(&pl.scratch.addr().to_le_bytes());
    let c_addr = c.as_mut_ptr() as u64;
    let mut areas = vec![Area { start: c_addr, len: CTX_SIZE as u64, writable: true }];
    for r in pl.regions() {
        areas.push(Area { start: r.addr(), len: r.len as u64, writable: true });
    }
    if let Ok(mut v) = HELPER_ARGS.lock() {
        v.clear();
    }
    LOOKUPS.store(0, Ordering::Relaxed);
    LOOKUP_SALT.store(salt, Ordering::Relaxed);
    CLOCK.store(0, Ordering::Relaxed);
    let hook = |id: i64, a: [u64; 5]| match i32::try_from(id) {
        Ok(insn::helper_id::MAP_LOOKUP_ELEM) => helper_lookup(a[0]),
        Ok(insn::helper_id::KTIME_GET_NS) => CLOCK.fetch_add(1000, Ordering::Relaxed),
        // What it would print.
        Ok(insn::helper_id::TRACE_PRINTK) => {
            record_args(&[a[2], a[3], a[4]]);
            0
        }
        // The flags, and the first 8 bytes of the value (every
        // fuzzer map value is 8 or 16 bytes), where they are readable.
        Ok(insn::helper_id::MAP_UPDATE_ELEM) => {
            let v = areas.iter().find(|r| r.start <= a[2] && a[2].saturating_add(8) <= r.start + r.len).map(|_| {
                // SAFETY: the 8 bytes lie inside one of this run's
                // live buffers (checked just above); read_unaligned
                // needs no alignment.
                unsafe { std::ptr::read_unaligned(a[2] as *const u64) }
            });
            record_args(&[v.unwrap_or(0), a[3]]);
            0
        }
        _ => 0,
    };
    let env = interp::Env { areas: &areas, maps: &[], helper_hook: Some(&hook) };
    // SAFETY: every area is a live buffer of this function (context,
    // regions), not otherwise used during the run.
    let r0 = unsafe { interp::run(&pl.code, &env, c_addr) }.map_err(|e| e.to_string())?;
    let helper_args = HELPER_ARGS.lock().map(|v| v.clone()).unwrap_or_default();
    let returned = pl.regions().skip(1).map(|r| r.bytes().to_vec()).collect();
    let ctx_fields = [&c[OFF_DATA + 8..OFF_SCRATCH], &c[OFF_SCRATCH + 8..]].concat();
    Ok((Observed { r0, helper_args, returned, ctx_fields }, c))
}

/// Names a value the user can read (r0, the scalar helper arguments, any 8
/// bytes of scratch or a map value, the context's writable fields) that lies
/// within a page of one of the run's buffers, for a report. Not a verdict:
/// such a value can be a coincidence of where the allocator put things (CI
/// once reported one for a program that writes nothing back); whether an
/// address leaked is decided by running in two placements (`execute`).
fn check_leaks(r0: u64, regions: &[&Region], ctx: &[u8; CTX_SIZE]) -> Result<(), String> {
    let names = ["the data block", "the scratch", "map value 0", "map value 1", "map value 2", "map value 3"];
    let mut areas: Vec<(&str, u64, u64)> = regions.iter().zip(names).map(|(r, n)| (n, r.addr(), r.len as u64)).collect();
    areas.push(("the context", ctx.as_ptr() as u64, CTX_SIZE as u64));
    let near = |v: u64| areas.iter().find(|&&(_, a, len)| v.wrapping_sub(a.wrapping_sub(LEAK_SLACK)) < len + 2 * LEAK_SLACK);
    let word = |w: &[u8]| u64::from_le_bytes(w.try_into().unwrap_or([0; 8]));
    let mut seen: Vec<(&str, u64)> = vec![("r0", r0)];
    if let Ok(v) = HELPER_ARGS.lock() {
        seen.extend(v.iter().map(|x| ("a helper argument", *x)));
    }
    // regions[0] is the data block (the program's input, written freely);
    // the rest (scratch, map values) go back to the user.
    for r in &regions[1..] {
        seen.extend(r.bytes().windows(8).map(|w| ("scratch or a map value", word(w))));
    }
    seen.extend(ctx[8..OFF_SCRATCH].windows(8).map(|w| ("a context field", word(w))));
    match seen.iter().find_map(|&(name, v)| near(v).map(|area| (name, v, area))) {
        Some((name, v, (area, a, _))) => Err(format!("host address {v:#x} (near {area} at {a:#x}) leaked into {name}")),
        None => Ok(()),
    }
}

/// A path-explosion program must end within the caps.
fn check_explosion(prog: &[Insn], maps: &[ebpf_runtime::map_spec::MapSpec]) -> Result<String, String> {
    let limits = Limits::default();
    let env = Env { maps, data_size: 4096, scratch_size: SCRATCH_SIZE, limits };
    let start = Instant::now();
    let verdict = verify(prog, &env);
    let took = start.elapsed();
    if took > limits.time_max + EXPLOSION_TIME_SLACK {
        return Err(format!("verification took {took:?}, over the {:?} cap", limits.time_max));
    }
    match verdict {
        Ok(s) if s.peak_mem_bytes <= limits.mem_max_bytes => Ok("accepted".into()),
        Ok(s) => Err(format!("accepted with {} bytes held, over the cap", s.peak_mem_bytes)),
        Err(e) => {
            let kind = format!("{e:?}");
            let kind = kind.split([' ', '{']).next().unwrap_or("?").to_string();
            let caps = ["TooComplex", "LoopCap", "PendingCap", "StatesPerInsnCap", "MemoryCap", "TimeCap"];
            if caps.contains(&kind.as_str()) {
                Ok(kind)
            } else {
                Err(format!("refused by {e}, not by a cap"))
            }
        }
    }
}

// ---- driver ------------------------------------------------------------------

struct Args {
    seconds: u64,
    seed: u64,
    max_programs: u64,
}

fn args() -> Result<Args, String> {
    let mut a = Args { seconds: 60, seed: 1, max_programs: u64::MAX };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().and_then(|v| v.parse::<u64>().ok()).ok_or(format!("{flag} needs a number"));
        match flag.as_str() {
            "--seconds" => a.seconds = value()?,
            "--seed" => a.seed = value()?,
            "--programs" => a.max_programs = value()?,
            _ => return Err(format!("unknown option {flag}; use --seconds N, --seed N, --programs N")),
        }
    }
    Ok(a)
}

fn dump(prog: &[Insn]) -> String {
    prog.iter().enumerate().map(|(i, x)| format!("  {i:3}: Insn {{ opc: {:#04x}, dst: {}, src: {}, off: {}, imm: {} }}\n", x.opc, x.dst, x.src, x.off, x.imm)).collect()
}

fn main() {
    let args = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("difffuzz: {e}");
            std::process::exit(2);
        }
    };
    let maps = maps();
    // The leak net must be able to fail: a program (never verified) that
    // stores the data block's address into the scratch, and one that
    // returns an address computed from it.
    for (what, tail) in [
        ("stores the data block's address", Asm::new().stx(DW, R8, R7, 0).mov(R0, 0)),
        ("returns the data block's address less 4096", Asm::new().movr(R0, R7).alu(ALU_ADD, R0, -4096)),
    ] {
        let mut canary = Asm::new().movr(R6, R1).ldx(DW, R7, R6, OFF_DATA as i16).ldx(DW, R8, R6, OFF_SCRATCH as i16).build();
        canary.extend(tail.exit().build());
        match execute(&canary, 4096, 1) {
            Err(e) if e.starts_with("what the program hands back depends on where its buffers are") => {}
            other => {
                eprintln!("difffuzz: the leak net missed a program that {what}: {other:?}");
                std::process::exit(1);
            }
        }
    }
    let start = Instant::now();
    let mut rng = Rng(args.seed);
    let (mut generated, mut accepted, mut executed, mut failures) = (0u64, 0u64, 0u64, 0u64);
    let mut rejections = std::collections::BTreeMap::new();
    let mut explosions = 0u64;
    let mut explosion_kinds = std::collections::BTreeMap::new();
    while start.elapsed() < Duration::from_secs(args.seconds) && generated < args.max_programs {
        if generated % EXPLOSION_EVERY == 0 {
            let prog = explode::any(&mut explode::Rng(rng.next()));
            generated += 1;
            explosions += 1;
            match check_explosion(&prog, &maps) {
                Ok(kind) => *explosion_kinds.entry(kind).or_insert(0u64) += 1,
                Err(e) => {
                    failures += 1;
                    eprintln!("FAILURE (program {generated}, path explosion): {e}\n{}", dump(&prog));
                }
            }
            continue;
        }
        let data_size = if rng.chance(50) { 4096 } else { 512 };
        let prog = generate(&mut rng, data_size);
        let run_seed = rng.next();
        generated += 1;
        let env = Env { maps: &maps, data_size, scratch_size: SCRATCH_SIZE, limits: Limits::default() };
        let verdict = std::panic::catch_unwind(|| verify(&prog, &env));
        let verdict = match verdict {
            Ok(v) => v,
            Err(_) => {
                failures += 1;
                eprintln!("FAILURE (program {generated}): the verifier panicked\n{}", dump(&prog));
                continue;
            }
        };
        if let Err(e) = verdict {
            let kind = format!("{e:?}");
            let kind = kind.split([' ', '{']).next().unwrap_or("?").to_string();
            *rejections.entry(kind).or_insert(0u64) += 1;
            continue;
        }
        accepted += 1;
        let (tx, rx) = mpsc::channel();
        let p = prog.clone();
        std::thread::spawn(move || {
            let r = std::panic::catch_unwind(|| execute(&p, data_size, run_seed));
            let _ = tx.send(r);
        });
        let outcome = match rx.recv_timeout(RUN_TIMEOUT) {
            Ok(Ok(Ok(runs))) => {
                executed += runs;
                continue;
            }
            Ok(Ok(Err(e))) => e,
            Ok(Err(_)) => "the interpreter panicked".to_string(),
            Err(_) => format!("no result within {RUN_TIMEOUT:?}: the program may loop forever"),
        };
        failures += 1;
        eprintln!("FAILURE (program {generated}, data_size {data_size}, run seed {run_seed}): {outcome}\n{}", dump(&prog));
        if outcome.starts_with("no result") {
            break; // the stuck thread cannot be stopped; report and exit
        }
    }
    println!(
        "difffuzz: seed {} ran {:.1}s: {generated} programs generated, {accepted} accepted, {executed} runs executed, {failures} failures",
        args.seed,
        start.elapsed().as_secs_f64()
    );
    let mut kinds: Vec<_> = rejections.into_iter().collect();
    kinds.sort_by_key(|k| std::cmp::Reverse(k.1));
    let top: Vec<String> = kinds.iter().take(8).map(|(k, n)| format!("{k} {n}")).collect();
    println!("difffuzz: most frequent rejections: {}", top.join(", "));
    let ex: Vec<String> = explosion_kinds.iter().map(|(k, n)| format!("{k} {n}")).collect();
    println!("difffuzz: {explosions} path-explosion programs ended within the caps: {}", ex.join(", "));
    if failures > 0 {
        std::process::exit(1);
    }
}
