//! The JIT: eBPF lowered to Cranelift IR (`translate.rs`), compiled for the
//! host ISA that `cranelift-native` detects, placed in our own W^X pages
//! (`jit_mem.rs`).
//!
//! Each BPF function (the main program and every target of a local call)
//! becomes one Cranelift function with the platform's C calling convention,
//! `(r1, r2, r3, r4, r5) -> r0`, and its own 512-byte stack slot (r10 points
//! at its end), so every frame has its own stack and r6-r9 of the caller are
//! preserved by construction. Local calls go through a table of function
//! addresses filled after placement; helpers are called directly at their
//! address. Nothing is relocated: the code is position-independent apart
//! from absolute addresses it holds as constants. No run-time checks: the
//! verifier is the gate (the interpreter is the checked engine).

// Program counters are below isa::PROG_SLOTS_MAX: casts between usize and
// i64 in jump arithmetic cannot wrap or truncate.
#![allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap, clippy::cast_sign_loss)]

mod translate;

use std::sync::OnceLock;

use cranelift_codegen::control::ControlPlane;
use cranelift_codegen::isa::OwnedTargetIsa;
use cranelift_codegen::settings::{self, Configurable};

use crate::insn::{self, Insn};
use crate::jit_mem::ExecMemory;

/// Alignment of each function in the code pages, in bytes.
const FUNC_ALIGN_BYTES: usize = 16;

/// Why a program could not be compiled.
#[derive(Debug, thiserror::Error)]
pub enum JitError {
    #[error("the JIT does not support this host: {0}")]
    Host(String),
    #[error("insn {pc}: {what}")]
    Structure { pc: usize, what: &'static str },
    #[error("Cranelift: {0}")]
    Codegen(String),
    #[error("mapping or protecting the JIT's code pages")]
    Memory(#[from] std::io::Error),
}

/// A compiled program: its code pages and the table of its functions.
#[derive(Debug)]
pub(crate) struct JitCode {
    mem: ExecMemory,
    /// Address of each BPF function, read by local calls in the code. Filled
    /// once before the first call, never changed after.
    _table: Box<[u64]>,
    entry: u64,
}

/// The main program's entry as the host calls it.
type Entry = unsafe extern "C" fn(u64, u64, u64, u64, u64) -> u64;

impl JitCode {
    /// Runs the program with r1 = `r1` (r2..r5 are 0, as the ISA's entry
    /// state and issue 15 require) and returns r0.
    ///
    /// # Safety
    /// Every memory access the program makes must be valid: the program was
    /// verified for the memory `r1` leads to (context, data block, scratch,
    /// maps), which must outlive the call; or it is a trusted unverified
    /// program (conformance) given memory it stays inside.
    #[inline]
    pub(crate) unsafe fn call(&self, r1: u64) -> u64 {
        // SAFETY: `entry` is the start of function 0, compiled with the
        // platform C calling convention and this signature, in sealed
        // executable memory owned by self.
        let f = unsafe { std::mem::transmute::<usize, Entry>(self.entry as usize) };
        // SAFETY: the caller's contract on the program's memory accesses.
        unsafe { f(r1, 0, 0, 0, 0) }
    }

    /// Whether the code sits in read-execute (never writable) memory.
    pub(crate) fn sealed(&self) -> bool {
        self.mem.is_sealed()
    }
}

/// The host ISA, built once per process.
fn host_isa() -> Result<OwnedTargetIsa, JitError> {
    static ISA: OnceLock<Result<OwnedTargetIsa, String>> = OnceLock::new();
    let isa = ISA.get_or_init(|| {
        let mut flags = settings::builder();
        for (k, v) in [("opt_level", "speed"), ("unwind_info", "false"), ("enable_verifier", if cfg!(debug_assertions) { "true" } else { "false" })] {
            flags.set(k, v).map_err(|e| e.to_string())?;
        }
        let builder = cranelift_native::builder().map_err(str::to_string)?;
        builder.finish(settings::Flags::new(flags)).map_err(|e| e.to_string())
    });
    isa.clone().map_err(JitError::Host)
}

/// First slot of each BPF function: 0 and every local call target, sorted.
fn function_starts(prog: &[Insn]) -> Vec<usize> {
    let mut starts = vec![0];
    for (pc, i) in prog.iter().enumerate() {
        if i.opc == insn::CLASS_JMP | insn::JMP_CALL && i.src == insn::CALL_LOCAL {
            let t = pc as i64 + 1 + i64::from(i.imm);
            if let Ok(t) = usize::try_from(t) {
                starts.push(t);
            }
        }
    }
    starts.sort_unstable();
    starts.dedup();
    starts
}

/// Compiles a program that passed `isa::check_program` (and, unless it is a
/// trusted conformance vector, the verifier).
pub(crate) fn compile(prog: &[Insn]) -> Result<JitCode, JitError> {
    let isa = host_isa()?;
    let starts = function_starts(prog);
    let mut table = vec![0u64; starts.len()].into_boxed_slice();
    let table_addr = table.as_ptr() as u64;
    let mut codes = Vec::with_capacity(starts.len());
    let mut fctx = cranelift_frontend::FunctionBuilderContext::new();
    for (k, &start) in starts.iter().enumerate() {
        let end = starts.get(k + 1).copied().unwrap_or(prog.len());
        let func = translate::function(prog, start..end, &starts, table_addr, isa.default_call_conv(), isa.frontend_config(), &mut fctx)?;
        let mut ctx = cranelift_codegen::Context::for_function(func);
        let code = ctx.compile(&*isa, &mut ControlPlane::default()).map_err(|e| JitError::Codegen(format!("function at insn {start}: {:?}", e.inner)))?;
        if !code.buffer.relocs().is_empty() {
            return Err(JitError::Codegen(format!("function at insn {start}: unexpected relocations")));
        }
        codes.push(code.code_buffer().to_vec());
    }
    let mut offsets = Vec::with_capacity(codes.len());
    let mut len = 0usize;
    for c in &codes {
        len = len.next_multiple_of(FUNC_ALIGN_BYTES);
        offsets.push(len);
        len += c.len();
    }
    let mut mem = ExecMemory::with_len(len)?;
    for (c, &off) in codes.iter().zip(&offsets) {
        mem.write(off, c)?;
    }
    mem.seal()?;
    for (slot, &off) in table.iter_mut().zip(&offsets) {
        *slot = mem.addr(off);
    }
    let entry = mem.addr(offsets[0]);
    Ok(JitCode { mem, _table: table, entry })
}
