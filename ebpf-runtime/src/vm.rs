//! A verified program ready to run on one of our two engines: the
//! interpreter (`interp.rs`, every access checked, the reference) or the
//! Cranelift JIT (`jit/`, no run-time checks: the verifier is the gate).
//!
//! An [`Instance`] is compiled once and is `Send + Sync`: every thread runs
//! the same code on the same maps, and the host reads and writes those maps
//! while programs run (see `maps.rs`). Per call, the caller's context, data
//! block and scratch are handed to the program as they are (r1 = the
//! context, whose `data` and `scratch` fields hold the buffers' addresses);
//! nothing is copied. Each call has its own stack (the JIT's frames live on
//! the calling thread's stack, the interpreter's in a buffer per call).
//!
//! After verification the pseudo `lddw`s are relocated: a map handle
//! becomes the address of the [`Map`] object (what the helpers take, as in
//! Linux), a global's address the host address of its bytes plus the offset.

use crate::context::{XrpContext, CTX_SIZE, SCRATCH_SIZE};
use crate::gate::{self, GateError, VerifyReport};
use crate::insn::{self, Insn};
use crate::interp::{self, Area, InterpError};
use crate::isa::{self, IsaError};
use crate::jit::{self, JitCode, JitError};
use crate::loader::Program;
use crate::maps::{Map, MapError, UpdateFlag};

/// Which engine executes the program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// Our interpreter: slower, checks every memory access against the
    /// start and end of a region the program may access.
    Interpreter,
    /// Our Cranelift JIT, for the host ISA.
    Jit,
}

/// Errors of instance creation and of a call.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    #[error("verifier rejected the program")]
    Rejected(#[from] GateError),
    #[error(transparent)]
    Map(#[from] MapError),
    #[error("program cannot run")]
    Isa(#[from] IsaError),
    #[error("map index {index} in lddw at insn {pc} is not below the {maps} maps of the program")]
    BadMapIndex { pc: usize, index: i32, maps: usize },
    #[error("compiling the program (JIT)")]
    Jit(#[from] JitError),
    #[error("the program failed in the interpreter")]
    Interp(#[from] InterpError),
    #[error("data block of {got} bytes; the program was verified for {expected} bytes")]
    DataTooSmall { got: usize, expected: u32 },
    #[error("scratch of {got} bytes; it must be exactly {SCRATCH_SIZE} bytes")]
    ScratchSize { got: usize },
    #[error("scratch at {addr:#x} is not 8-byte aligned, and the program uses atomics (which may target the scratch)")]
    ScratchAlign { addr: u64 },
}

/// The result of one call: r0 and the context as the program left it.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    pub ret: u64,
    pub ctx: XrpContext,
}

#[derive(Debug)]
enum Code {
    Interp(Vec<Insn>),
    Jit(JitCode),
}

/// A verified, relocated, compiled program with its maps. `Send + Sync`:
/// share it (`Arc<Instance>`) between every thread that runs it.
#[derive(Debug)]
pub struct Instance {
    code: Code,
    /// Boxed slice: never reallocated, so each map's address (its handle in
    /// the program) stays valid for the instance's life.
    maps: Box<[Map]>,
    /// Map values and globals, for the interpreter's checks.
    map_areas: Vec<Area>,
    engine: Engine,
    data_size: u32,
    /// The program has atomics: the verifier proved their offsets aligned
    /// from the scratch's base, so the base must be aligned too.
    has_atomics: bool,
    report: VerifyReport,
}

/// Alignment of the scratch buffer a program with atomics needs, in bytes.
const SCRATCH_ALIGN_BYTES: u64 = 8;

impl Instance {
    /// Verifies `program` for data blocks of `data_size` bytes, allocates its
    /// maps, relocates it to host addresses and prepares `engine`.
    pub fn new(program: &Program, data_size: u32, engine: Engine) -> Result<Instance, VmError> {
        let report = gate::verify(program, data_size)?;
        Instance::build(program, data_size, engine, report)
    }

    /// Like [`Instance::new`] without the verifier: for our own trusted test
    /// programs using what the verifier does not accept yet.
    ///
    /// # Safety
    /// With [`Engine::Jit`] nothing checks the program's memory accesses:
    /// it must be trusted to stay inside the context, data block, scratch,
    /// its stack and its maps, and to call helpers with valid arguments.
    /// (The interpreter checks everything, as always.)
    pub unsafe fn new_unverified(program: &Program, data_size: u32, engine: Engine) -> Result<Instance, VmError> {
        Instance::build(program, data_size, engine, VerifyReport::default())
    }

    fn build(program: &Program, data_size: u32, engine: Engine, report: VerifyReport) -> Result<Instance, VmError> {
        let maps = program
            .maps
            .iter()
            .map(|m| {
                let map = Map::new(m.spec.clone())?;
                if let Some(init) = &m.init {
                    map.update(&0u32.to_le_bytes(), init, UpdateFlag::Any)?;
                }
                Ok(map)
            })
            .collect::<Result<Box<[Map]>, MapError>>()?;
        let insns = relocate(&program.insns, &maps)?;
        isa::check_program(&insns)?;
        let code = match engine {
            Engine::Interpreter => Code::Interp(insns),
            Engine::Jit => Code::Jit(jit::compile(&insns)?),
        };
        let map_areas = maps.iter().map(|m| Area { start: m.values().addr(), len: m.values().size() as u64, writable: !m.spec().read_only }).collect();
        let has_atomics = program.insns.iter().any(|i| i.class() == insn::CLASS_STX && i.opc & 0xe0 == insn::MODE_ATOMIC);
        Ok(Instance { code, maps, map_areas, engine, data_size, has_atomics, report })
    }

    /// What the verifier reported when the instance was made.
    pub fn report(&self) -> VerifyReport {
        self.report
    }

    /// Whether the JIT code sits in read-execute (never writable) memory.
    /// `false` for the interpreter.
    pub fn jit_sealed(&self) -> bool {
        matches!(&self.code, Code::Jit(j) if j.sealed())
    }

    /// The engine this instance runs on.
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// The program's maps in handle order (host-side access).
    pub fn maps(&self) -> &[Map] {
        &self.maps
    }

    /// The map named `name` (a declared map's symbol or a global section).
    pub fn map(&self, name: &str) -> Option<&Map> {
        self.maps.iter().find(|m| m.spec().name == name)
    }

    /// Runs the program once on `data` (at least the verified data size) and
    /// `scratch` (exactly [`SCRATCH_SIZE`] bytes, updated in place), with a
    /// fresh context.
    pub fn run(&self, data: &mut [u8], scratch: &mut [u8]) -> Result<Outcome, VmError> {
        let mut ctx = XrpContext::default();
        let ret = self.call(&mut ctx, data, scratch)?;
        Ok(Outcome { ret, ctx })
    }

    /// Runs the program once with the caller's context: `ctx.data` and
    /// `ctx.scratch` are set to `data` and `scratch`, the other fields are
    /// what the caller left there (the program reads and writes them in
    /// place). The fast path: nothing is copied or reset.
    #[inline]
    pub fn call(&self, ctx: &mut XrpContext, data: &mut [u8], scratch: &mut [u8]) -> Result<u64, VmError> {
        if data.len() < self.data_size as usize {
            return Err(VmError::DataTooSmall { got: data.len(), expected: self.data_size });
        }
        if scratch.len() != SCRATCH_SIZE {
            return Err(VmError::ScratchSize { got: scratch.len() });
        }
        ctx.data = data.as_mut_ptr() as u64;
        ctx.scratch = scratch.as_mut_ptr() as u64;
        if self.has_atomics && ctx.scratch % SCRATCH_ALIGN_BYTES != 0 {
            return Err(VmError::ScratchAlign { addr: ctx.scratch });
        }
        let ctx_addr = std::ptr::from_mut(ctx) as u64;
        match &self.code {
            // SAFETY: the program passed our verifier for data blocks of
            // `data_size` bytes (checked above), a context of CTX_SIZE bytes
            // (`ctx`), the scratch of SCRATCH_SIZE bytes (checked above) and
            // the maps this instance owns; so every access the JIT code makes
            // stays in those regions, which outlive the call. The `&mut`s are
            // not used while the program runs.
            Code::Jit(j) => Ok(unsafe { j.call(ctx_addr) }),
            Code::Interp(insns) => {
                let mut areas = Vec::with_capacity(self.map_areas.len() + 3);
                areas.push(Area { start: ctx_addr, len: CTX_SIZE as u64, writable: true });
                areas.push(Area { start: ctx.data, len: data.len() as u64, writable: true });
                areas.push(Area { start: ctx.scratch, len: SCRATCH_SIZE as u64, writable: true });
                areas.extend_from_slice(&self.map_areas);
                let env = interp::Env { areas: &areas, maps: &self.maps, helper_hook: None };
                // SAFETY: the areas are the caller's context, data block and
                // scratch (borrowed for the call, not used meanwhile) and the
                // instance's map regions (alive as long as `self`).
                Ok(unsafe { interp::run(insns, &env, ctx_addr) }?)
            }
        }
    }
}

/// Rewrites the verifier's pseudo `lddw`s into what the engines execute: a
/// map handle becomes the map's address, a global's address its host address.
// Splitting a 64-bit value into the two 32-bit immediates of an lddw is a
// bit-for-bit reinterpretation.
#[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap, clippy::cast_sign_loss)]
fn relocate(insns: &[Insn], maps: &[Map]) -> Result<Vec<Insn>, VmError> {
    let mut out = insns.to_vec();
    let mut pc = 0;
    while pc < out.len() {
        if out[pc].opc == insn::OP_LDDW && pc + 1 < out.len() {
            let src = out[pc].src;
            if src == insn::PSEUDO_MAP_IDX || src == insn::PSEUDO_MAP_IDX_VALUE {
                let index = out[pc].imm;
                let Some(map) = usize::try_from(index).ok().and_then(|i| maps.get(i)) else {
                    return Err(VmError::BadMapIndex { pc, index, maps: maps.len() });
                };
                let value = if src == insn::PSEUDO_MAP_IDX {
                    std::ptr::from_ref(map) as u64
                } else {
                    // The verifier checked the offset against value_size.
                    map.values().addr() + u64::from(out[pc + 1].imm as u32)
                };
                out[pc].src = 0;
                out[pc].imm = value as u32 as i32;
                out[pc + 1].imm = (value >> 32) as u32 as i32;
            }
            pc += 2;
        } else {
            pc += 1;
        }
    }
    Ok(out)
}

/// Runs raw instructions through the interpreter without our verifier (for
/// the conformance suite and fuzzing): no maps, r1 = `mem`. Safe: the
/// interpreter checks every access against `mem` and its own stack.
pub fn interpret_unverified(insns: &[Insn], mem: &mut [u8]) -> Result<u64, VmError> {
    isa::check_program(insns)?;
    let start = mem.as_mut_ptr() as u64;
    let areas = [Area { start, len: mem.len() as u64, writable: true }];
    let env = interp::Env { areas: &areas, maps: &[], helper_hook: None };
    // SAFETY: the one area is `mem`, borrowed for the call and not used
    // meanwhile.
    Ok(unsafe { interp::run(insns, &env, start) }?)
}

/// Compiles raw instructions with the JIT and runs them without our
/// verifier: no maps, r1 = `mem`.
///
/// # Safety
/// The program runs without any memory check: it must come from a trusted
/// source (a conformance test vector) and stay inside `mem` and its stack,
/// since it can read and write any address of the process.
pub unsafe fn jit_unverified(insns: &[Insn], mem: &mut [u8]) -> Result<u64, VmError> {
    isa::check_program(insns)?;
    let code = jit::compile(insns)?;
    // SAFETY: the caller's contract: the program stays in `mem`, which
    // outlives the call.
    Ok(unsafe { code.call(mem.as_mut_ptr() as u64) })
}

/// [`interpret_unverified`] or [`jit_unverified`].
///
/// # Safety
/// With [`Engine::Jit`], the contract of [`jit_unverified`].
pub unsafe fn run_unverified(insns: &[Insn], mem: &mut [u8], engine: Engine) -> Result<u64, VmError> {
    match engine {
        Engine::Interpreter => interpret_unverified(insns, mem),
        // SAFETY: the caller's contract.
        Engine::Jit => unsafe { jit_unverified(insns, mem) },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_are_send_and_sync() {
        fn both<T: Send + Sync>() {}
        both::<Instance>();
    }
}
