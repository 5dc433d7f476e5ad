//! An assembler for the text syntax of the bpf_conformance test vectors
//! (`mov32 %r0, 1`, `ldxdw %r0, [%r1+8]`, `lock fetch add [%r10-8], %r1`,
//! `jne %r0, 0x10, label`, `call local f`, labels `name:`, `#` comments).
//!
//! Our own rather than rbpf's `assembler`: rbpf's takes registers without
//! `%`, has no labels and no ISA v4 mnemonics (sdiv, movsx, ldxs*, bswap,
//! atomics, ja32, callx), all of which the vectors use. This one encodes every
//! instruction of RFC 9669, including those the engine then refuses by name
//! (`isa.rs`), so that such a test fails with "not supported" rather than a
//! syntax error.

// An assembler turns numbers into instruction fields bit for bit: the
// two's-complement casts between widths are intended (ranges are checked
// where a value must fit).
#![allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap, clippy::cast_sign_loss)]

use std::collections::HashMap;

use crate::insn::{self, Insn};

/// A line the assembler cannot encode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}: `{text}`")]
pub struct AsmError {
    pub line: usize,
    pub text: String,
    pub reason: String,
}

struct Line<'a> {
    no: usize,
    text: &'a str,
    mnemonic: String,
    operands: Vec<String>,
}

/// Assembles `source` into instruction slots.
pub fn assemble(source: &str) -> Result<Vec<Insn>, AsmError> {
    // Pass 1: labels and slot positions.
    let mut labels = HashMap::new();
    let mut lines = Vec::new();
    let mut pc = 0usize;
    for (i, raw) in source.lines().enumerate() {
        let text = raw.split('#').next().unwrap_or("").trim();
        if text.is_empty() {
            continue;
        }
        if let Some(label) = text.strip_suffix(':') {
            labels.insert(label.trim().to_string(), pc);
            continue;
        }
        let (mut mnemonic, rest) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
        let mut rest = rest.trim().to_string();
        let mut full = mnemonic.to_string();
        // Two-word mnemonics: `lock [fetch] op`, `call local`.
        if mnemonic == "lock" || mnemonic == "call" {
            let words: Vec<&str> = rest.splitn(3, char::is_whitespace).collect();
            let take = match (mnemonic, words.first().copied()) {
                ("lock", Some("fetch")) => 2,
                ("lock", _) => 1,
                ("call", Some("local")) => 1,
                _ => 0,
            };
            if take > 0 {
                full = format!("{mnemonic} {}", words[..take].join(" "));
                rest = words[take..].join(" ");
            }
        }
        mnemonic = &full;
        let operands: Vec<String> = if rest.is_empty() { Vec::new() } else { rest.split(',').map(|s| s.trim().to_string()).collect() };
        pc += if mnemonic == "lddw" { 2 } else { 1 };
        lines.push(Line { no: i + 1, text, mnemonic: mnemonic.to_string(), operands });
    }
    // The vectors jump to `exit` without defining it: it names the first
    // `exit` instruction at or after the jump.
    let mut exits = Vec::new();
    let mut at = 0;
    for l in &lines {
        if l.mnemonic == "exit" {
            exits.push(at);
        }
        at += if l.mnemonic == "lddw" { 2 } else { 1 };
    }
    // Pass 2: encode.
    let mut out = Vec::with_capacity(pc);
    for l in &lines {
        let err = |reason: &str| AsmError { line: l.no, text: l.text.to_string(), reason: reason.to_string() };
        let here = out.len();
        let target = |s: &str| -> Result<i64, String> {
            if let Some(&t) = labels.get(s) {
                return Ok(t as i64 - (here as i64 + 1));
            }
            if s == "exit" {
                if let Some(&t) = exits.iter().find(|e| **e >= here) {
                    return Ok(t as i64 - (here as i64 + 1));
                }
            }
            parse_int(s).ok_or_else(|| format!("unknown label or offset `{s}`"))
        };
        encode(l, &mut out, &target).map_err(|r| err(&r))?;
    }
    Ok(out)
}

fn parse_int(s: &str) -> Option<i64> {
    let s = s.trim();
    let (neg, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let v = match body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok()?,
        None => body.parse::<u64>().ok()?,
    };
    // Two's complement: `0xffffffffffffffff` and `-1` are the same bits.
    let v = v as i64;
    Some(if neg { v.wrapping_neg() } else { v })
}

fn reg(s: &str) -> Result<u8, String> {
    s.strip_prefix("%r").and_then(|n| n.parse::<u8>().ok()).filter(|n| *n <= 10).ok_or_else(|| format!("`{s}` is not a register %r0..%r10"))
}

/// A 32-bit immediate: accepts the i32 range and the u32 range (as bits).
fn imm32(s: &str) -> Result<i32, String> {
    let v = parse_int(s).ok_or_else(|| format!("`{s}` is not a number"))?;
    if let Ok(i) = i32::try_from(v) {
        return Ok(i);
    }
    u32::try_from(v).map(|u| u as i32).map_err(|_| format!("immediate `{s}` does not fit 32 bits"))
}

/// `[%rN+off]` / `[%rN-off]` / `[%rN]`.
fn mem(s: &str) -> Result<(u8, i16), String> {
    let inner = s.strip_prefix('[').and_then(|x| x.strip_suffix(']')).ok_or_else(|| format!("`{s}` is not a memory operand [%rN+off]"))?;
    let split = inner.find(['+', '-']);
    let (r, off) = match split {
        Some(at) => (&inner[..at], parse_int(&inner[at..]).ok_or_else(|| format!("bad offset in `{s}`"))?),
        None => (inner, 0),
    };
    let off = i16::try_from(off).map_err(|_| format!("offset in `{s}` does not fit 16 bits"))?;
    Ok((reg(r.trim())?, off))
}

fn ins(opc: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn { opc, dst, src, off, imm }
}

fn alu_op(name: &str) -> Option<(u8, i16)> {
    Some(match name {
        "add" => (insn::ALU_ADD, 0),
        "sub" => (insn::ALU_SUB, 0),
        "mul" => (insn::ALU_MUL, 0),
        "div" => (insn::ALU_DIV, 0),
        "sdiv" => (insn::ALU_DIV, 1),
        "or" => (insn::ALU_OR, 0),
        "and" => (insn::ALU_AND, 0),
        "lsh" => (insn::ALU_LSH, 0),
        "rsh" => (insn::ALU_RSH, 0),
        "mod" => (insn::ALU_MOD, 0),
        "smod" => (insn::ALU_MOD, 1),
        "xor" => (insn::ALU_XOR, 0),
        "mov" => (insn::ALU_MOV, 0),
        "arsh" => (insn::ALU_ARSH, 0),
        _ => return None,
    })
}

fn jmp_op(name: &str) -> Option<u8> {
    Some(match name {
        "jeq" => insn::JMP_JEQ,
        "jgt" => insn::JMP_JGT,
        "jge" => insn::JMP_JGE,
        "jset" => insn::JMP_JSET,
        "jne" => insn::JMP_JNE,
        "jsgt" => insn::JMP_JSGT,
        "jsge" => insn::JMP_JSGE,
        "jlt" => insn::JMP_JLT,
        "jle" => insn::JMP_JLE,
        "jslt" => insn::JMP_JSLT,
        "jsle" => insn::JMP_JSLE,
        _ => return None,
    })
}

fn size_of_suffix(s: &str) -> Option<u8> {
    Some(match s {
        "b" => insn::SIZE_B,
        "h" => insn::SIZE_H,
        "w" => insn::SIZE_W,
        "dw" => insn::SIZE_DW,
        _ => return None,
    })
}

fn encode(l: &Line, out: &mut Vec<Insn>, target: &dyn Fn(&str) -> Result<i64, String>) -> Result<(), String> {
    let m = l.mnemonic.as_str();
    let ops = &l.operands;
    let want = |n: usize| if ops.len() == n { Ok(()) } else { Err(format!("expected {n} operands, got {}", ops.len())) };
    let off16 = |t: i64| i16::try_from(t).map_err(|_| format!("jump offset {t} does not fit 16 bits"));
    match m {
        "exit" => {
            want(0)?;
            out.push(ins(insn::CLASS_JMP | insn::JMP_EXIT, 0, 0, 0, 0));
        }
        "lddw" => {
            want(2)?;
            let v = parse_int(&ops[1]).ok_or_else(|| format!("`{}` is not a number", ops[1]))?;
            out.push(ins(insn::OP_LDDW, reg(&ops[0])?, 0, 0, v as u32 as i32));
            out.push(ins(0, 0, 0, 0, (v as u64 >> 32) as u32 as i32));
        }
        "ja" | "ja32" => {
            want(1)?;
            let t = target(&ops[0])?;
            if m == "ja" {
                out.push(ins(insn::CLASS_JMP | insn::JMP_JA, 0, 0, off16(t)?, 0));
            } else {
                let t = i32::try_from(t).map_err(|_| "jump offset does not fit 32 bits".to_string())?;
                out.push(ins(insn::CLASS_JMP32 | insn::JMP_JA, 0, 0, 0, t));
            }
        }
        "call" => {
            want(1)?;
            if ops[0].starts_with('%') {
                out.push(ins(insn::CLASS_JMP | insn::JMP_CALL | insn::SRC_X, reg(&ops[0])?, 0, 0, 0));
            } else {
                out.push(ins(insn::CLASS_JMP | insn::JMP_CALL, 0, insn::CALL_HELPER, 0, imm32(&ops[0])?));
            }
        }
        "call local" => {
            want(1)?;
            let t = i32::try_from(target(&ops[0])?).map_err(|_| "call offset does not fit 32 bits".to_string())?;
            out.push(ins(insn::CLASS_JMP | insn::JMP_CALL, 0, insn::CALL_LOCAL, 0, t));
        }
        _ if m.starts_with("lock ") => {
            want(2)?;
            let (name, fetch) = match m.strip_prefix("lock fetch ") {
                Some(n) => (n, 1),
                None => (&m[5..], 0),
            };
            let (name, size) = match name.strip_suffix("32") {
                Some(n) => (n, insn::SIZE_W),
                None => (name, insn::SIZE_DW),
            };
            let op = match name {
                "add" => 0x00,
                "or" => 0x40,
                "and" => 0x50,
                "xor" => 0xa0,
                "xchg" => 0xe1,
                "cmpxchg" => 0xf1,
                _ => return Err("unknown atomic operation".into()),
            };
            let (dst, off) = mem(&ops[0])?;
            out.push(ins(insn::CLASS_STX | insn::MODE_ATOMIC | size, dst, reg(&ops[1])?, off, op | fetch));
        }
        _ => return encode_rest(m, ops, out, target),
    }
    Ok(())
}

fn encode_rest(m: &str, ops: &[String], out: &mut Vec<Insn>, target: &dyn Fn(&str) -> Result<i64, String>) -> Result<(), String> {
    let want = |n: usize| if ops.len() == n { Ok(()) } else { Err(format!("expected {n} operands, got {}", ops.len())) };
    let (base, is32) = match m.strip_suffix("32") {
        Some(b) if !b.is_empty() && !b.ends_with("sx16") && !b.ends_with("sx8") => (b, true),
        _ => (m, false),
    };
    if let Some((op, off)) = alu_op(base) {
        want(2)?;
        let class = if is32 { insn::CLASS_ALU } else { insn::CLASS_ALU64 };
        let dst = reg(&ops[0])?;
        if ops[1].starts_with('%') {
            out.push(ins(class | op | insn::SRC_X, dst, reg(&ops[1])?, off, 0));
        } else {
            out.push(ins(class | op, dst, 0, off, imm32(&ops[1])?));
        }
        return Ok(());
    }
    if base == "neg" {
        want(1)?;
        let class = if is32 { insn::CLASS_ALU } else { insn::CLASS_ALU64 };
        out.push(ins(class | insn::ALU_NEG, reg(&ops[0])?, 0, 0, 0));
        return Ok(());
    }
    if let Some(op) = jmp_op(base) {
        want(3)?;
        let class = if is32 { insn::CLASS_JMP32 } else { insn::CLASS_JMP };
        let off = i16::try_from(target(&ops[2])?).map_err(|_| "jump offset does not fit 16 bits".to_string())?;
        let dst = reg(&ops[0])?;
        if ops[1].starts_with('%') {
            out.push(ins(class | op | insn::SRC_X, dst, reg(&ops[1])?, off, 0));
        } else {
            out.push(ins(class | op, dst, 0, off, imm32(&ops[1])?));
        }
        return Ok(());
    }
    // movsx<from><to>: movsx832, movsx1632, movsx864, movsx1664, movsx3264.
    if let Some(widths) = m.strip_prefix("movsx") {
        want(2)?;
        let (from, class) = match widths {
            "832" => (8, insn::CLASS_ALU),
            "1632" => (16, insn::CLASS_ALU),
            "864" => (8, insn::CLASS_ALU64),
            "1664" => (16, insn::CLASS_ALU64),
            "3264" => (32, insn::CLASS_ALU64),
            _ => return Err("unknown movsx width".into()),
        };
        out.push(ins(class | insn::ALU_MOV | insn::SRC_X, reg(&ops[0])?, reg(&ops[1])?, from, 0));
        return Ok(());
    }
    for (prefix, opc) in [
        ("be", insn::CLASS_ALU | insn::ALU_END | insn::SRC_X),
        ("le", insn::CLASS_ALU | insn::ALU_END),
        ("bswap", insn::CLASS_ALU64 | insn::ALU_END),
        ("swap", insn::CLASS_ALU64 | insn::ALU_END),
    ] {
        if let Some(width) = m.strip_prefix(prefix).and_then(|w| w.parse::<i32>().ok()) {
            want(1)?;
            out.push(ins(opc, reg(&ops[0])?, 0, 0, width));
            return Ok(());
        }
    }
    // Loads and stores.
    if let Some(sz) = m.strip_prefix("ldxs").and_then(size_of_suffix) {
        want(2)?;
        let (src, off) = mem(&ops[1])?;
        out.push(ins(insn::CLASS_LDX | insn::MODE_MEMSX | sz, reg(&ops[0])?, src, off, 0));
        return Ok(());
    }
    if let Some(sz) = m.strip_prefix("ldx").and_then(size_of_suffix) {
        want(2)?;
        let (src, off) = mem(&ops[1])?;
        out.push(ins(insn::CLASS_LDX | insn::MODE_MEM | sz, reg(&ops[0])?, src, off, 0));
        return Ok(());
    }
    if let Some(sz) = m.strip_prefix("stx").and_then(size_of_suffix) {
        want(2)?;
        let (dst, off) = mem(&ops[0])?;
        out.push(ins(insn::CLASS_STX | insn::MODE_MEM | sz, dst, reg(&ops[1])?, off, 0));
        return Ok(());
    }
    if let Some(sz) = m.strip_prefix("st").and_then(size_of_suffix) {
        want(2)?;
        let (dst, off) = mem(&ops[0])?;
        out.push(ins(insn::CLASS_ST | insn::MODE_MEM | sz, dst, 0, off, imm32(&ops[1])?));
        return Ok(());
    }
    Err(format!("unknown mnemonic `{m}`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_common_forms() {
        let p = assemble("mov32 %r0, 0xfffffffe\nldxdw %r1, [%r10-8]\nstb [%r1+0x1], 5\nlddw %r2, 0x1122334455667788\njne %r0, %r1, out\nout:\nexit").unwrap();
        assert_eq!(p[0], ins(0xb4, 0, 0, 0, -2));
        assert_eq!(p[1], ins(0x79, 1, 10, -8, 0));
        assert_eq!(p[2], ins(0x72, 1, 0, 1, 5));
        assert_eq!(p[3], ins(0x18, 2, 0, 0, 0x55667788));
        assert_eq!(p[4], ins(0, 0, 0, 0, 0x11223344));
        assert_eq!(p[5], ins(0x5d, 0, 1, 0, 0));
        assert_eq!(p[6].opc, 0x95);
    }

    #[test]
    fn encodes_v4_forms() {
        let p = assemble("sdiv32 %r0, 3\nmovsx1664 %r0, %r1\nlock fetch add32 [%r10-4], %r1\nbswap16 %r0\nldxsh %r0, [%r10-2]\nf:\ncall local f\nja32 f").unwrap();
        assert_eq!(p[0], ins(0x34, 0, 0, 1, 3));
        assert_eq!(p[1], ins(0xbf, 0, 1, 16, 0));
        assert_eq!(p[2], ins(0xc3, 10, 1, -4, 1));
        assert_eq!(p[3], ins(0xd7, 0, 0, 0, 16));
        assert_eq!(p[4], ins(0x89, 0, 10, -2, 0));
        assert_eq!(p[5], ins(0x85, 0, 1, 0, -1));
        assert_eq!(p[6], ins(0x06, 0, 0, 0, -2));
    }

    #[test]
    fn reports_bad_lines() {
        let e = assemble("mov %r0, 1\nfrob %r0\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(assemble("mov %r11, 1").is_err());
        assert!(assemble("ja nowhere").is_err());
        assert!(assemble("mov %r0, 0x1ffffffff").is_err());
    }
}
