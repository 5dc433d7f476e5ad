//! Path-explosion shapes (issue 15): programs built to make the verifier's
//! walk blow up, shared by the caps tests and the differential fuzzer.
//! Every generator is deterministic from its seed and stays within the
//! 4096-slot program limit.
#![allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap, clippy::cast_sign_loss)]

use super::*;
use ebpf_runtime::insn::*;

/// SplitMix64, as in the fuzzer: a seed gives the same program forever.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }
}

/// r6 = ctx, r7 = data block, r8 = scratch; `spills` stack slots filled with
/// spilled scalars (fatter states make every copy and compare dearer).
fn prologue(spills: i64) -> Asm {
    let mut a = Asm::new().movr(R6, R1).ldx(DW, R7, R6, 0).ldx(DW, R8, R6, 272);
    for i in 1..=spills {
        a = a.st(DW, R10, (-8 * i) as i16, i as i32);
    }
    a
}

/// A fan of `n` independent data-dependent branches, each giving a live
/// register a different bit: 2^n distinct states at the end, none covering
/// another.
pub fn branch_fan(rng: &mut Rng) -> Vec<Insn> {
    let n = rng.range(16, 400);
    let spills = rng.range(0, 64);
    let mut a = prologue(spills).mov(R0, 0).mov(R9, 0);
    for i in 0..n {
        let l = format!("f{i}");
        let off = (i % 4000) as i16;
        let bit = 1i32 << (i % 31);
        a = a.ldx(B, R2, R7, off).jmp(JMP_JEQ, R2, rng.range(0, 255) as i32, &l).alu(ALU_XOR, R9, bit).label(&l);
        if rng.below(3) == 0 {
            a = a.alu(ALU_ADD, R0, 1);
        }
    }
    a.stx(DW, R8, R9, 0).exit().build()
}

/// `depth` nested ifs on data, each side of each level setting a live
/// register to a different constant before the next level.
pub fn nested_ifs(rng: &mut Rng) -> Vec<Insn> {
    let depth = rng.range(10, 24);
    let spills = rng.range(0, 64);
    let mut a = prologue(spills).mov(R0, 0).mov(R9, 0);
    for i in 0..depth {
        let (t, j) = (format!("t{i}"), format!("j{i}"));
        a = a
            .ldx(DW, R2, R7, (8 * i) as i16)
            .jmpr(JMP_JGT, R2, R9, &t)
            .alu(ALU_ADD, R9, rng.range(1, 1000) as i32)
            .ja(&j)
            .label(&t)
            .alu(ALU_MUL, R9, 3)
            .alu(ALU_ADD, R9, rng.range(1, 1000) as i32)
            .label(&j);
    }
    a.stx(DW, R8, R9, 0).exit().build()
}

/// A loop whose state never repeats (a counter, and a data-dependent side
/// branch each iteration that leaves a path pending): it ends only after
/// `trip` iterations, far more than any cap allows.
pub fn diverging_loop(rng: &mut Rng) -> Vec<Insn> {
    let spills = rng.range(0, 64);
    let trip = rng.range(100_000, 10_000_000) as i32;
    let step = rng.range(1, 7) as i32;
    prologue(spills)
        .mov(R9, 0)
        .label("loop")
        .ldx(B, R2, R7, 0)
        .jmp(JMP_JEQ, R2, rng.range(0, 255) as i32, "side")
        .alu(ALU_ADD, R9, step)
        .jmp(JMP_JLT, R9, trip, "loop")
        .ret0()
        .label("side")
        .alu(ALU_ADD, R9, 1)
        .stx(DW, R8, R9, 0)
        .ret0()
        .build()
}

/// One of the shapes above, picked by the seed.
pub fn any(rng: &mut Rng) -> Vec<Insn> {
    match rng.below(3) {
        0 => branch_fan(rng),
        1 => nested_ifs(rng),
        _ => diverging_loop(rng),
    }
}
