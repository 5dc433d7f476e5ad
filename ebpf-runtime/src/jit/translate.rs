//! One BPF function to Cranelift IR: a `FunctionBuilder`, a `Variable` per
//! register, a block per jump target (and per fall-through after a
//! conditional jump), and one method per instruction class. The ISA's edge
//! cases are spelled out where they are lowered: division by zero, INT_MIN /
//! -1, shift amounts past the width, 32-bit results zero-extended, `le` on a
//! little-endian host.

// Registers are u64 bit patterns; immediates are reinterpreted per the ISA.
#![allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap, clippy::cast_sign_loss)]

use std::ops::Range;

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{
    types, AbiParam, AtomicRmwOp, Block, Endianness, Function, InstBuilder, MemFlagsData, SigRef, Signature, StackSlotData, StackSlotKind, Type, UserFuncName, Value,
};
use cranelift_codegen::isa::{CallConv, TargetFrontendConfig};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext, Variable};

use super::JitError;
use crate::helpers;
use crate::insn::{self, Insn};
use crate::interp::STACK_BYTES;

const I64: Type = types::I64;
const I32: Type = types::I32;

/// Memory accesses of programs: little-endian whatever the host, possibly
/// unaligned (the ISA allows it), never assumed not to fault.
fn mem_flags() -> MemFlagsData {
    MemFlagsData::new().with_endianness(Endianness::Little)
}

/// `(r1, r2, r3, r4, r5) -> r0`, every BPF function and helper.
fn bpf_signature(call_conv: CallConv, args: usize) -> Signature {
    let mut sig = Signature::new(call_conv);
    sig.params.extend(std::iter::repeat_n(AbiParam::new(I64), args));
    sig.returns.push(AbiParam::new(I64));
    sig
}

struct Translator<'a> {
    b: FunctionBuilder<'a>,
    regs: [Variable; 11],
    prog: &'a [Insn],
    range: Range<usize>,
    /// The block starting at each pc of the function that is a jump target
    /// or follows a conditional jump.
    blocks: Vec<Option<Block>>,
    starts: &'a [usize],
    table_addr: u64,
    sig_five: SigRef,
    sig_six: SigRef,
}

/// Translates the BPF function occupying `range` of `prog`.
pub(super) fn function(
    prog: &[Insn],
    range: Range<usize>,
    starts: &[usize],
    table_addr: u64,
    call_conv: CallConv,
    frontend: TargetFrontendConfig,
    fctx: &mut FunctionBuilderContext,
) -> Result<Function, JitError> {
    let index = starts.iter().position(|&s| s == range.start).unwrap_or(0);
    let mut func = Function::with_name_signature(UserFuncName::user(0, index as u32), bpf_signature(call_conv, 5));
    let sig_five = func.import_signature(bpf_signature(call_conv, 5));
    let sig_six = func.import_signature(bpf_signature(call_conv, 6));
    let mut b = FunctionBuilder::new(&mut func, fctx);
    let regs: [Variable; 11] = std::array::from_fn(|_| b.declare_var(I64));
    let blocks = vec![None; range.len()];
    let mut t = Translator { b, regs, prog, range, blocks, starts, table_addr, sig_five, sig_six };
    t.make_blocks()?;
    t.entry();
    t.body()?;
    t.b.seal_all_blocks();
    t.b.finalize(frontend);
    Ok(func)
}

impl Translator<'_> {
    fn get(&mut self, r: u8) -> Value {
        self.b.use_var(self.regs[usize::from(r)])
    }

    fn set(&mut self, r: u8, v: Value) {
        self.b.def_var(self.regs[usize::from(r)], v);
    }

    fn block_at(&mut self, pc: usize) -> Block {
        let i = pc - self.range.start;
        match self.blocks[i] {
            Some(b) => b,
            None => {
                let b = self.b.create_block();
                self.blocks[i] = Some(b);
                b
            }
        }
    }

    /// A block for the function's first slot, every jump target and every
    /// slot after a conditional jump. A jump leaving the function is refused.
    fn make_blocks(&mut self) -> Result<(), JitError> {
        self.block_at(self.range.start);
        let mut pc = self.range.start;
        while pc < self.range.end {
            let i = self.prog[pc];
            let class = i.class();
            let op = i.opc & 0xf0;
            if (class == insn::CLASS_JMP || class == insn::CLASS_JMP32) && op != insn::JMP_CALL && op != insn::JMP_EXIT {
                let rel = if i.opc == crate::isa::GOTOL { i64::from(i.imm) } else { i64::from(i.off) };
                let target = pc as i64 + 1 + rel;
                if target < self.range.start as i64 || target >= self.range.end as i64 {
                    return Err(JitError::Structure { pc, what: "jump out of its function" });
                }
                self.block_at(target as usize);
                if op != insn::JMP_JA && pc + 1 < self.range.end {
                    self.block_at(pc + 1);
                }
            }
            pc += if i.opc == insn::OP_LDDW { 2 } else { 1 };
        }
        Ok(())
    }

    /// Entry state: r1..r5 from the arguments, r0 and r6..r9 zero (so a
    /// register the program never set reads 0), r10 the top of this frame's
    /// own stack slot.
    fn entry(&mut self) {
        let entry = self.b.create_block();
        self.b.append_block_params_for_function_params(entry);
        self.b.switch_to_block(entry);
        let params = self.b.block_params(entry).to_vec();
        for (r, v) in (1u8..=5).zip(params) {
            self.set(r, v);
        }
        let zero = self.b.ins().iconst(I64, 0);
        for r in [0u8, 6, 7, 8, 9] {
            self.set(r, zero);
        }
        let slot = self.b.create_sized_stack_slot(StackSlotData::new(StackSlotKind::ExplicitSlot, STACK_BYTES as u32, 3));
        let fp = self.b.ins().stack_addr(I64, slot, STACK_BYTES as i32);
        self.set(10, fp);
        let first = self.block_at(self.range.start);
        self.b.ins().jump(first, &[]);
    }

    fn body(&mut self) -> Result<(), JitError> {
        let mut pc = self.range.start;
        let mut open = false; // the current block has no terminator yet
        while pc < self.range.end {
            if let Some(block) = self.blocks[pc - self.range.start] {
                if open {
                    self.b.ins().jump(block, &[]);
                }
                self.b.switch_to_block(block);
                open = true;
            } else if !open {
                // Unreachable slots after an exit or a jump.
                let block = self.b.create_block();
                self.b.switch_to_block(block);
                open = true;
            }
            let i = self.prog[pc];
            let mut next = pc + 1;
            match i.class() {
                insn::CLASS_ALU64 => self.alu(&i, true),
                insn::CLASS_ALU => self.alu(&i, false),
                insn::CLASS_LD => {
                    self.lddw(pc);
                    next = pc + 2;
                }
                insn::CLASS_LDX => self.ldx(&i),
                insn::CLASS_ST | insn::CLASS_STX => self.st(&i),
                _ => open = self.jmp(pc, &i)?,
            }
            pc = next;
        }
        if open {
            return Err(JitError::Structure { pc: self.range.end - 1, what: "falls through into the next function" });
        }
        Ok(())
    }

    fn iconst(&mut self, ty: Type, v: i64) -> Value {
        // Cranelift wants narrow constants zero-extended.
        let v = if ty == I32 { i64::from(v as u32) } else { v };
        self.b.ins().iconst(ty, v)
    }

    /// ALU and ALU64. The 32-bit class computes on the low halves and
    /// zero-extends the result.
    fn alu(&mut self, i: &Insn, is64: bool) {
        let op = i.opc & 0xf0;
        if op == insn::ALU_END {
            return self.end(i, is64);
        }
        let ty = if is64 { I64 } else { I32 };
        let mut a = self.get(i.dst);
        let mut b = if i.opc & insn::SRC_X != 0 { self.get(i.src) } else { self.iconst(I64, i64::from(i.imm)) };
        if !is64 {
            a = self.b.ins().ireduce(I32, a);
            b = self.b.ins().ireduce(I32, b);
        }
        let width = i64::from(ty.bits());
        let r = match op {
            insn::ALU_ADD => self.b.ins().iadd(a, b),
            insn::ALU_SUB => self.b.ins().isub(a, b),
            insn::ALU_MUL => self.b.ins().imul(a, b),
            insn::ALU_DIV | insn::ALU_MOD => self.div_mod(ty, a, b, i.off == 1, op == insn::ALU_MOD),
            insn::ALU_OR => self.b.ins().bor(a, b),
            insn::ALU_AND => self.b.ins().band(a, b),
            insn::ALU_XOR => self.b.ins().bxor(a, b),
            // Shift amounts are taken modulo the width (masked explicitly).
            insn::ALU_LSH | insn::ALU_RSH | insn::ALU_ARSH => {
                let mask = self.iconst(ty, width - 1);
                let n = self.b.ins().band(b, mask);
                match op {
                    insn::ALU_LSH => self.b.ins().ishl(a, n),
                    insn::ALU_RSH => self.b.ins().ushr(a, n),
                    _ => self.b.ins().sshr(a, n),
                }
            }
            // Wrapping: -INT_MIN is INT_MIN.
            insn::ALU_NEG => self.b.ins().ineg(a),
            insn::ALU_MOV => match (i.opc & insn::SRC_X != 0, i.off) {
                (true, 8) => self.sign_extend(b, types::I8, ty),
                (true, 16) => self.sign_extend(b, types::I16, ty),
                (true, 32) => self.sign_extend(b, I32, ty),
                _ => b,
            },
            _ => unreachable!("isa::check_program admits no other ALU operation"),
        };
        let r = if is64 { r } else { self.b.ins().uextend(I64, r) };
        self.set(i.dst, r);
    }

    fn sign_extend(&mut self, v: Value, from: Type, to: Type) -> Value {
        let narrow = self.b.ins().ireduce(from, v);
        self.b.ins().sextend(to, narrow)
    }

    /// Division and modulo, the ISA's rules rather than Cranelift's traps:
    /// x / 0 = 0, x % 0 = x; signed INT_MIN / -1 = INT_MIN, INT_MIN % -1 = 0.
    /// The divisor handed to Cranelift is never 0 (nor -1 when signed).
    fn div_mod(&mut self, ty: Type, a: Value, b: Value, signed: bool, is_mod: bool) -> Value {
        let zero = self.iconst(ty, 0);
        let one = self.iconst(ty, 1);
        let b_zero = self.b.ins().icmp(IntCC::Equal, b, zero);
        if !signed {
            let safe = self.b.ins().select(b_zero, one, b);
            let q = if is_mod { self.b.ins().urem(a, safe) } else { self.b.ins().udiv(a, safe) };
            let on_zero = if is_mod { a } else { zero };
            return self.b.ins().select(b_zero, on_zero, q);
        }
        let minus_one = self.iconst(ty, -1);
        let b_m1 = self.b.ins().icmp(IntCC::Equal, b, minus_one);
        let bad = self.b.ins().bor(b_zero, b_m1);
        let safe = self.b.ins().select(bad, one, b);
        let (q, on_m1, on_zero) = if is_mod { (self.b.ins().srem(a, safe), zero, a) } else { (self.b.ins().sdiv(a, safe), self.b.ins().ineg(a), zero) };
        let q = self.b.ins().select(b_m1, on_m1, q);
        self.b.ins().select(b_zero, on_zero, q)
    }

    /// `le`/`be` (ALU class: to little- or big-endian; the host is
    /// little-endian, so `le` truncates and `be` swaps) and `bswap` (ALU64:
    /// always swaps). Results are zero-extended from the width.
    fn end(&mut self, i: &Insn, is64: bool) {
        let v = self.get(i.dst);
        let swap = is64 || i.opc & insn::SRC_X != 0;
        let ty = match i.imm {
            16 => types::I16,
            32 => I32,
            _ => I64,
        };
        let narrow = if ty == I64 { v } else { self.b.ins().ireduce(ty, v) };
        let r = if swap { self.b.ins().bswap(narrow) } else { narrow };
        let r = if ty == I64 { r } else { self.b.ins().uextend(I64, r) };
        self.set(i.dst, r);
    }

    /// `lddw`: the 64-bit immediate of two slots (relocated: map handles and
    /// globals are host addresses by now).
    fn lddw(&mut self, pc: usize) {
        let lo = u64::from(self.prog[pc].imm as u32);
        let hi = u64::from(self.prog[pc + 1].imm as u32);
        let v = self.b.ins().iconst(I64, (lo | (hi << 32)) as i64);
        self.set(self.prog[pc].dst, v);
    }

    fn size(opc: u8) -> u32 {
        match opc & 0x18 {
            insn::SIZE_B => 1,
            insn::SIZE_H => 2,
            insn::SIZE_W => 4,
            _ => 8,
        }
    }

    /// Loads: zero-extending (`ldx`) or sign-extending (`ldxs`).
    fn ldx(&mut self, i: &Insn) {
        let base = self.get(i.src);
        let f = mem_flags();
        let off = i32::from(i.off);
        let signed = i.opc & 0xe0 == insn::MODE_MEMSX;
        let ins = self.b.ins();
        let v = match (Self::size(i.opc), signed) {
            (1, false) => ins.uload8(I64, f, base, off),
            (2, false) => ins.uload16(I64, f, base, off),
            (4, false) => ins.uload32(f, base, off),
            (1, true) => ins.sload8(I64, f, base, off),
            (2, true) => ins.sload16(I64, f, base, off),
            (4, true) => ins.sload32(f, base, off),
            _ => ins.load(I64, f, base, off),
        };
        self.set(i.dst, v);
    }

    /// Stores (`st` immediate, `stx` register) and atomics.
    fn st(&mut self, i: &Insn) {
        if i.opc & 0xe0 == insn::MODE_ATOMIC {
            return self.atomic(i);
        }
        let base = self.get(i.dst);
        let v = if i.class() == insn::CLASS_ST { self.iconst(I64, i64::from(i.imm)) } else { self.get(i.src) };
        let f = mem_flags();
        let off = i32::from(i.off);
        let ins = self.b.ins();
        match Self::size(i.opc) {
            1 => ins.istore8(f, v, base, off),
            2 => ins.istore16(f, v, base, off),
            4 => ins.istore32(f, v, base, off),
            _ => ins.store(f, v, base, off),
        };
    }

    /// `BPF_ATOMIC`, sequentially consistent read-modify-writes: add, or,
    /// and, xor (with `BPF_FETCH` the old value goes to src), xchg (old value
    /// to src), cmpxchg (compares with r0, old value to r0). The 32-bit forms
    /// zero-extend what they load into a register.
    fn atomic(&mut self, i: &Insn) {
        const FETCH: i32 = 0x01;
        let ty = if Self::size(i.opc) == 4 { I32 } else { I64 };
        let base = self.get(i.dst);
        let addr = self.b.ins().iadd_imm_s(base, i64::from(i.off));
        let mut src = self.get(i.src);
        if ty == I32 {
            src = self.b.ins().ireduce(I32, src);
        }
        let f = mem_flags();
        let (old, into) = if i.imm == 0xf1 {
            let mut expected = self.get(0);
            if ty == I32 {
                expected = self.b.ins().ireduce(I32, expected);
            }
            (self.b.ins().atomic_cas(f, addr, expected, src), Some(0))
        } else {
            let op = match i.imm & !FETCH {
                0x00 => AtomicRmwOp::Add,
                0x40 => AtomicRmwOp::Or,
                0x50 => AtomicRmwOp::And,
                0xa0 => AtomicRmwOp::Xor,
                _ => AtomicRmwOp::Xchg, // 0xe1, the only other one isa.rs admits
            };
            let fetch = i.imm & FETCH != 0;
            (self.b.ins().atomic_rmw(ty, f, op, addr, src), fetch.then_some(i.src))
        };
        if let Some(r) = into {
            let old = if ty == I32 { self.b.ins().uextend(I64, old) } else { old };
            self.set(r, old);
        }
    }

    /// Jumps, calls and exit. Returns whether the current block stays open
    /// (calls) or was terminated.
    fn jmp(&mut self, pc: usize, i: &Insn) -> Result<bool, JitError> {
        let op = i.opc & 0xf0;
        let is32 = i.class() == insn::CLASS_JMP32;
        match op {
            insn::JMP_EXIT => {
                let r0 = self.get(0);
                self.b.ins().return_(&[r0]);
                Ok(false)
            }
            insn::JMP_CALL => {
                self.call(pc, i)?;
                Ok(true)
            }
            insn::JMP_JA => {
                let rel = if is32 { i64::from(i.imm) } else { i64::from(i.off) };
                let target = self.block_at((pc as i64 + 1 + rel) as usize);
                self.b.ins().jump(target, &[]);
                Ok(false)
            }
            _ => {
                let ty = if is32 { I32 } else { I64 };
                let mut a = self.get(i.dst);
                // The immediate is sign-extended to 64 bits for 64-bit compares.
                let mut b = if i.opc & insn::SRC_X != 0 { self.get(i.src) } else { self.iconst(I64, i64::from(i.imm)) };
                if is32 {
                    a = self.b.ins().ireduce(ty, a);
                    b = self.b.ins().ireduce(ty, b);
                }
                let cond = if op == insn::JMP_JSET {
                    let and = self.b.ins().band(a, b);
                    self.b.ins().icmp_imm_u(IntCC::NotEqual, and, 0)
                } else {
                    let cc = match op {
                        insn::JMP_JEQ => IntCC::Equal,
                        insn::JMP_JNE => IntCC::NotEqual,
                        insn::JMP_JGT => IntCC::UnsignedGreaterThan,
                        insn::JMP_JGE => IntCC::UnsignedGreaterThanOrEqual,
                        insn::JMP_JLT => IntCC::UnsignedLessThan,
                        insn::JMP_JLE => IntCC::UnsignedLessThanOrEqual,
                        insn::JMP_JSGT => IntCC::SignedGreaterThan,
                        insn::JMP_JSGE => IntCC::SignedGreaterThanOrEqual,
                        insn::JMP_JSLT => IntCC::SignedLessThan,
                        insn::JMP_JSLE => IntCC::SignedLessThanOrEqual,
                        _ => unreachable!("isa::check_program admits no other jump"),
                    };
                    self.b.ins().icmp(cc, a, b)
                };
                let taken = self.block_at((pc as i64 + 1 + i64::from(i.off)) as usize);
                if pc + 1 >= self.range.end {
                    return Err(JitError::Structure { pc, what: "conditional jump falls through into the next function" });
                }
                let fall = self.block_at(pc + 1);
                self.b.ins().brif(cond, taken, &[], fall, &[]);
                Ok(false)
            }
        }
    }

    /// Helper calls (direct, at the helper's address, platform C ABI), local
    /// calls (through the function table) and `callx` (helper id in `dst`).
    fn call(&mut self, pc: usize, i: &Insn) -> Result<(), JitError> {
        let args: Vec<Value> = (1u8..=5).map(|r| self.get(r)).collect();
        let call = if i.opc & insn::SRC_X != 0 {
            let id = self.get(i.dst);
            let callx: unsafe extern "C" fn(u64, u64, u64, u64, u64, u64) -> u64 = helpers::call_by_id;
            let f = self.b.ins().iconst(I64, callx as usize as i64);
            let mut all = vec![id];
            all.extend(args);
            self.b.ins().call_indirect(self.sig_six, f, &all)
        } else if i.src == insn::CALL_LOCAL {
            let target = (pc as i64 + 1 + i64::from(i.imm)) as usize;
            let k = self.starts.iter().position(|&s| s == target).ok_or(JitError::Structure { pc, what: "call to no function" })?;
            let table = self.b.ins().iconst(I64, self.table_addr as i64);
            // The table is written once before the first call, read-only after.
            let f = self.b.ins().load(I64, MemFlagsData::trusted().with_readonly(), table, (k * 8) as i32);
            self.b.ins().call_indirect(self.sig_five, f, &args)
        } else {
            let f = helpers::by_id(i64::from(i.imm)).ok_or(JitError::Structure { pc, what: "call of an unknown helper" })?;
            let f = self.b.ins().iconst(I64, f as usize as i64);
            self.b.ins().call_indirect(self.sig_five, f, &args)
        };
        let r0 = self.b.inst_results(call)[0];
        self.set(0, r0);
        Ok(())
    }
}
