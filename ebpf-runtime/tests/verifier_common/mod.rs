//! A tiny assembler for verifier tests: instructions by name, jumps to
//! labels, and a standard environment (maps, a 4 KiB block, 4 KiB scratch).
#![allow(dead_code)]
// The assembler reinterprets bit patterns (immediates, offsets) on purpose.
#![allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]

pub mod explode;
pub mod programs;

use ebpf_runtime::insn::*;
use ebpf_runtime::map_spec::{MapKind, MapSpec};
use ebpf_runtime::verifier::{verify, Env, Limits, Stats, VerifyError};

pub const R0: u8 = 0;
pub const R1: u8 = 1;
pub const R2: u8 = 2;
pub const R3: u8 = 3;
pub const R4: u8 = 4;
pub const R5: u8 = 5;
pub const R6: u8 = 6;
pub const R7: u8 = 7;
pub const R8: u8 = 8;
pub const R9: u8 = 9;
pub const R10: u8 = 10;

pub const B: u8 = SIZE_B;
pub const H: u8 = SIZE_H;
pub const W: u8 = SIZE_W;
pub const DW: u8 = SIZE_DW;

/// Map 0: array, 4-byte key, 16-byte value. Map 1: `.rodata`, read-only,
/// 8-byte value. Map 2: hash, 8-byte key, 8-byte value.
pub fn maps() -> Vec<MapSpec> {
    vec![
        MapSpec { name: "arr".into(), kind: MapKind::Array, key_size: 4, value_size: 16, max_entries: 4, read_only: false },
        MapSpec { name: ".rodata".into(), kind: MapKind::Array, key_size: 4, value_size: 8, max_entries: 1, read_only: true },
        MapSpec { name: "hash".into(), kind: MapKind::Hash, key_size: 8, value_size: 8, max_entries: 64, read_only: false },
    ]
}

pub fn check_with(prog: &[Insn], limits: Limits) -> Result<Stats, VerifyError> {
    let maps = maps();
    let env = Env { maps: &maps, data_size: 4096, scratch_size: 4096, limits };
    verify(prog, &env)
}

/// Verifies against a data block of `data_size` bytes.
pub fn check_data_size(prog: &[Insn], data_size: u32) -> Result<Stats, VerifyError> {
    let maps = maps();
    let env = Env { maps: &maps, data_size, scratch_size: 4096, limits: Limits::default() };
    verify(prog, &env)
}

pub fn check(prog: &[Insn]) -> Result<Stats, VerifyError> {
    check_with(prog, Limits::default())
}

/// Asserts acceptance, printing the error otherwise.
pub fn accept(prog: &[Insn]) -> Stats {
    match check(prog) {
        Ok(s) => s,
        Err(e) => panic!("expected acceptance, got: {e}"),
    }
}

/// Asserts rejection with a message containing `needle`; returns the error.
pub fn reject(prog: &[Insn], needle: &str) -> VerifyError {
    match check(prog) {
        Ok(_) => panic!("expected rejection containing {needle:?}, but the program was accepted"),
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains(needle), "expected {needle:?} in {msg:?}");
            e
        }
    }
}

/// A program under construction.
#[derive(Default)]
pub struct Asm {
    insns: Vec<Insn>,
    labels: Vec<(String, usize)>,
    fixups: Vec<(usize, String)>,
}

fn ins(opc: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn { opc, dst, src, off, imm }
}

impl Asm {
    pub fn new() -> Asm {
        Asm::default()
    }

    pub fn raw(mut self, i: Insn) -> Asm {
        self.insns.push(i);
        self
    }

    pub fn label(mut self, name: &str) -> Asm {
        self.labels.push((name.into(), self.insns.len()));
        self
    }

    pub fn mov(self, dst: u8, imm: i32) -> Asm {
        self.raw(ins(CLASS_ALU64 | ALU_MOV | SRC_K, dst, 0, 0, imm))
    }
    pub fn movr(self, dst: u8, src: u8) -> Asm {
        self.raw(ins(CLASS_ALU64 | ALU_MOV | SRC_X, dst, src, 0, 0))
    }
    pub fn mov32(self, dst: u8, imm: i32) -> Asm {
        self.raw(ins(CLASS_ALU | ALU_MOV | SRC_K, dst, 0, 0, imm))
    }
    pub fn mov32r(self, dst: u8, src: u8) -> Asm {
        self.raw(ins(CLASS_ALU | ALU_MOV | SRC_X, dst, src, 0, 0))
    }
    /// 64-bit `dst op= imm`.
    pub fn alu(self, op: u8, dst: u8, imm: i32) -> Asm {
        self.raw(ins(CLASS_ALU64 | op | SRC_K, dst, 0, 0, imm))
    }
    /// 64-bit `dst op= src`.
    pub fn alur(self, op: u8, dst: u8, src: u8) -> Asm {
        self.raw(ins(CLASS_ALU64 | op | SRC_X, dst, src, 0, 0))
    }
    pub fn alu32(self, op: u8, dst: u8, imm: i32) -> Asm {
        self.raw(ins(CLASS_ALU | op | SRC_K, dst, 0, 0, imm))
    }
    pub fn alu32r(self, op: u8, dst: u8, src: u8) -> Asm {
        self.raw(ins(CLASS_ALU | op | SRC_X, dst, src, 0, 0))
    }
    /// `dst = *(size *)(src + off)`.
    pub fn ldx(self, size: u8, dst: u8, src: u8, off: i16) -> Asm {
        self.raw(ins(CLASS_LDX | MODE_MEM | size, dst, src, off, 0))
    }
    /// `*(size *)(dst + off) = imm`.
    pub fn st(self, size: u8, dst: u8, off: i16, imm: i32) -> Asm {
        self.raw(ins(CLASS_ST | MODE_MEM | size, dst, 0, off, imm))
    }
    /// `*(size *)(dst + off) = src`.
    pub fn stx(self, size: u8, dst: u8, src: u8, off: i16) -> Asm {
        self.raw(ins(CLASS_STX | MODE_MEM | size, dst, src, off, 0))
    }
    pub fn lddw(self, dst: u8, v: u64) -> Asm {
        let lo = (v & 0xffff_ffff) as u32 as i32;
        let hi = (v >> 32) as u32 as i32;
        self.raw(ins(OP_LDDW, dst, 0, 0, lo)).raw(ins(0, 0, 0, 0, hi))
    }
    pub fn ld_map(self, dst: u8, map: i32) -> Asm {
        self.raw(ins(OP_LDDW, dst, PSEUDO_MAP_IDX, 0, map)).raw(ins(0, 0, 0, 0, 0))
    }
    pub fn ld_map_value(self, dst: u8, map: i32, off: i32) -> Asm {
        self.raw(ins(OP_LDDW, dst, PSEUDO_MAP_IDX_VALUE, 0, map)).raw(ins(0, 0, 0, 0, off))
    }
    fn jump_to(mut self, i: Insn, label: &str) -> Asm {
        self.fixups.push((self.insns.len(), label.into()));
        self.raw(i)
    }
    /// `if dst op imm goto label` (64-bit).
    pub fn jmp(self, op: u8, dst: u8, imm: i32, label: &str) -> Asm {
        self.jump_to(ins(CLASS_JMP | op | SRC_K, dst, 0, 0, imm), label)
    }
    pub fn jmpr(self, op: u8, dst: u8, src: u8, label: &str) -> Asm {
        self.jump_to(ins(CLASS_JMP | op | SRC_X, dst, src, 0, 0), label)
    }
    pub fn jmp32(self, op: u8, dst: u8, imm: i32, label: &str) -> Asm {
        self.jump_to(ins(CLASS_JMP32 | op | SRC_K, dst, 0, 0, imm), label)
    }
    pub fn jmp32r(self, op: u8, dst: u8, src: u8, label: &str) -> Asm {
        self.jump_to(ins(CLASS_JMP32 | op | SRC_X, dst, src, 0, 0), label)
    }
    pub fn ja(self, label: &str) -> Asm {
        self.jump_to(ins(CLASS_JMP | JMP_JA, 0, 0, 0, 0), label)
    }
    pub fn call(self, helper: i32) -> Asm {
        self.raw(ins(CLASS_JMP | JMP_CALL, 0, 0, 0, helper))
    }
    pub fn exit(self) -> Asm {
        self.raw(ins(CLASS_JMP | JMP_EXIT, 0, 0, 0, 0))
    }
    /// `r0 = 0; exit`.
    pub fn ret0(self) -> Asm {
        self.mov(R0, 0).exit()
    }

    pub fn build(mut self) -> Vec<Insn> {
        for (at, name) in &self.fixups {
            let Some((_, target)) = self.labels.iter().find(|(n, _)| n == name) else {
                panic!("undefined label {name}");
            };
            self.insns[*at].off = i16::try_from(*target as i64 - *at as i64 - 1).expect("jump too far");
        }
        self.insns
    }
}
