//! Running a verified program through rbpf: the interpreter (the reference,
//! bounds-checked by rbpf) or the x86-64 JIT (no runtime checks: the verifier
//! is the only gate).
//!
//! Memory a program sees during one call (see docs/runtime.md):
//! - r1 = the context (rbpf's `mbuff`), a [`Region`] owned by the instance;
//! - `ctx.data` = the caller's data block (rbpf's `mem`), no copy;
//! - `ctx.scratch`: with the JIT the caller's scratch buffer itself; with the
//!   interpreter a per-instance scratch [`Region`] registered once with rbpf
//!   as allowed memory, into which the caller's scratch is copied before the
//!   call and from which it is copied back after (rbpf can only add allowed
//!   ranges, never remove them, so a per-call address cannot be registered);
//! - map values and globals: [`Region`]s owned by the instance, registered
//!   once; `lddw` of a global becomes its host address, `lddw` of a map handle
//!   becomes the map's index, which the helpers check.

use crate::context::{XrpContext, CTX_SIZE, SCRATCH_SIZE};
use crate::gate::{self, GateError, VerifyReport};
use crate::helpers;
use crate::insn::{self, Insn};
use crate::isa::{self, IsaError};
use crate::jit_mem::ExecMemory;
use crate::loader::Program;
use crate::maps::{Map, MapError, UpdateFlag};
use crate::region::Region;

/// Which rbpf engine executes the program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// rbpf's interpreter: slower, checks every memory access against the
    /// known regions (start address only; see docs/runtime.md).
    Interpreter,
    /// rbpf's x86-64 JIT (x86-64 only).
    Jit,
}

/// Errors of instance creation and of a call.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    #[error("verifier rejected the program: {0}")]
    Rejected(#[from] GateError),
    #[error(transparent)]
    Map(#[from] MapError),
    #[error("program cannot run on this engine: {0}")]
    Isa(#[from] IsaError),
    #[error("map index {index} in lddw at insn {pc} is not below the {maps} maps of the program")]
    BadMapIndex { pc: usize, index: i32, maps: usize },
    #[error("rbpf: {0}")]
    Rbpf(String),
    #[error("JIT memory: {0}")]
    JitMemory(std::io::Error),
    #[error("the JIT ran out of code space (an rbpf assertion); use the interpreter for this program")]
    JitOverflow,
    #[error("the JIT runs on x86-64 only; use the interpreter on this machine")]
    JitUnsupported,
    #[error("data block of {got} bytes; the program was verified for {expected} bytes")]
    DataTooSmall { got: usize, expected: u32 },
    #[error("scratch of {got} bytes; it must be exactly {SCRATCH_SIZE} bytes")]
    ScratchSize { got: usize },
}

/// The result of one call: r0 and the context as the program left it.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    pub ret: u64,
    pub ctx: XrpContext,
}

/// A verified program ready to run, with its maps.
///
/// Field order is drop order: `vm` borrows `code` (see `new`), so it goes first.
pub struct Instance {
    vm: rbpf::EbpfVmMbuff<'static>,
    jit_memory: Option<ExecMemory>,
    code: Box<[u8]>,
    maps: Vec<Map>,
    ctx: Region,
    scratch: Region,
    engine: Engine,
    data_size: u32,
    report: VerifyReport,
}

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance")
            .field("engine", &self.engine)
            .field("insns", &(self.code.len() / insn::INSN_SIZE))
            .field("maps", &self.maps.len())
            .field("data_size", &self.data_size)
            .finish()
    }
}

impl Instance {
    /// Verifies `program` for data blocks of `data_size` bytes, allocates its
    /// maps, relocates it to host addresses and prepares `engine`.
    pub fn new(program: &Program, data_size: u32, engine: Engine) -> Result<Instance, VmError> {
        let report = gate::verify(program, data_size)?;
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
            .collect::<Result<Vec<_>, MapError>>()?;
        let insns = relocate(&program.insns, &maps)?;
        let mut inst = Instance::build(insns, maps, engine, data_size)?;
        inst.report = report;
        Ok(inst)
    }

    fn build(insns: Vec<Insn>, maps: Vec<Map>, engine: Engine, data_size: u32) -> Result<Instance, VmError> {
        isa::check_program(&insns)?;
        let insns = crate::lower::lower_for_rbpf(&insns)?;
        if engine == Engine::Jit && !cfg!(target_arch = "x86_64") {
            return Err(VmError::JitUnsupported);
        }
        let code: Box<[u8]> = insn::encode_all(&insns).into_boxed_slice();
        // SAFETY: `code` is a heap allocation owned by the instance and never
        // mutated or moved out of its box; `vm` is declared before `code`, so
        // it is dropped first and never outlives the bytes it borrows.
        let prog: &'static [u8] = unsafe { std::slice::from_raw_parts(code.as_ptr(), code.len()) };
        let mut vm = rbpf::EbpfVmMbuff::new(None).map_err(rbpf_err)?;
        // rbpf's own verifier is private; ours (the structural ISA check, run
        // again here on every program rbpf is given) replaces it.
        vm.set_verifier(isa::rbpf_verifier).map_err(rbpf_err)?;
        vm.set_program(prog).map_err(rbpf_err)?;
        register_helpers(&mut vm, engine)?;
        let scratch = Region::zeroed(SCRATCH_SIZE);
        vm.register_allowed_memory(scratch.range());
        for m in &maps {
            vm.register_allowed_memory(m.values().range());
        }
        let jit_memory = match engine {
            Engine::Jit => Some(jit_compile(&mut vm, insns.len())?),
            Engine::Interpreter => None,
        };
        Ok(Instance { vm, jit_memory, code, maps, ctx: Region::zeroed(CTX_SIZE), scratch, engine, data_size, report: VerifyReport::default() })
    }

    /// What the verifier reported when the instance was made.
    pub fn report(&self) -> VerifyReport {
        self.report
    }

    /// Whether the JIT code sits in read-execute (never writable) memory.
    /// `false` for the interpreter.
    pub fn jit_sealed(&self) -> bool {
        self.jit_memory.as_ref().is_some_and(ExecMemory::is_sealed)
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
    /// `scratch` (exactly [`SCRATCH_SIZE`] bytes, updated in place).
    pub fn run(&mut self, data: &mut [u8], scratch: &mut [u8]) -> Result<Outcome, VmError> {
        if data.len() < self.data_size as usize {
            return Err(VmError::DataTooSmall { got: data.len(), expected: self.data_size });
        }
        if scratch.len() != SCRATCH_SIZE {
            return Err(VmError::ScratchSize { got: scratch.len() });
        }
        let scratch_addr = match self.engine {
            Engine::Jit => scratch.as_mut_ptr() as u64,
            Engine::Interpreter => {
                self.scratch.write(0, scratch).expect("scratch region is SCRATCH_SIZE bytes");
                self.scratch.addr()
            }
        };
        let ctx = XrpContext { data: data.as_mut_ptr() as u64, scratch: scratch_addr, ..XrpContext::default() };
        self.ctx.write_ctx(&ctx).expect("context region is CTX_SIZE bytes");
        // Programs without maps call no map helper: skip the thread-local.
        let _maps = (!self.maps.is_empty()).then(|| helpers::install_maps(&self.maps));
        // SAFETY: the context region is CTX_SIZE bytes, owned by `self` and
        // alive for the whole call; no other reference to its bytes exists
        // while rbpf holds this one (the host touches it only through
        // `Region::read`/`write`, before and after the call).
        let mbuff: &'static mut [u8] = unsafe { std::slice::from_raw_parts_mut(self.ctx.addr() as *mut u8, CTX_SIZE) };
        let ret = match self.engine {
            Engine::Interpreter => self.vm.execute_program(data, mbuff).map_err(rbpf_err)?,
            // SAFETY: the program passed our verifier for data blocks of
            // `data_size` bytes (checked above), a context of CTX_SIZE bytes,
            // the scratch of SCRATCH_SIZE bytes (checked above) and the maps
            // this instance owns; so every access the JIT code makes stays in
            // those regions, which outlive the call.
            Engine::Jit => unsafe { self.vm.execute_program_jit(data, mbuff) }.map_err(rbpf_err)?,
        };
        if self.engine == Engine::Interpreter {
            self.scratch.read(0, scratch).expect("scratch region is SCRATCH_SIZE bytes");
        }
        let ctx = self.ctx.read_ctx().expect("context region is CTX_SIZE bytes");
        Ok(Outcome { ret, ctx })
    }
}

/// rbpf's `no_std` error type has only `Debug`.
fn rbpf_err(e: rbpf::lib::Error) -> VmError {
    VmError::Rbpf(format!("{e:?}"))
}

/// JIT-compiles into W^X memory: rbpf writes the code while the mapping is
/// read-write, then it becomes read-execute. rbpf asserts (panics) when code
/// outruns the memory; that is caught and reported.
fn jit_compile(vm: &mut rbpf::EbpfVmMbuff<'static>, slots: usize) -> Result<ExecMemory, VmError> {
    let mut exec = ExecMemory::for_program(slots).map_err(VmError::JitMemory)?;
    // SAFETY: the instance keeps `exec` alive and drops `vm` (which holds
    // the slice) first; rbpf writes only during `jit_compile`, before `seal`.
    let mem = unsafe { exec.as_static_mut() };
    vm.set_jit_exec_memory(mem).map_err(rbpf_err)?;
    let compiled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| vm.jit_compile()));
    match compiled {
        Ok(r) => r.map_err(rbpf_err)?,
        Err(_) => return Err(VmError::JitOverflow),
    }
    exec.seal().map_err(VmError::JitMemory)?;
    Ok(exec)
}

/// Registers the helpers: plain functions for the interpreter, stack-realigning
/// trampolines for the JIT (see `jit_abi.rs`).
fn register_helpers(vm: &mut rbpf::EbpfVmMbuff<'_>, engine: Engine) -> Result<(), VmError> {
    let table = match engine {
        Engine::Interpreter => helpers::table(),
        #[cfg(target_arch = "x86_64")]
        Engine::Jit => crate::jit_abi::table(),
        #[cfg(not(target_arch = "x86_64"))]
        Engine::Jit => return Err(VmError::JitUnsupported),
    };
    for (id, f) in table {
        // Helper ids are small positive constants.
        vm.register_helper(id.unsigned_abs(), f).map_err(rbpf_err)?;
    }
    Ok(())
}

/// Rewrites the verifier's pseudo `lddw`s into what rbpf executes: a map
/// handle becomes the map's index, a global's address its host address.
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
                let map = usize::try_from(index).ok().and_then(|i| maps.get(i).map(|m| (i, m)));
                let Some((i, map)) = map else {
                    return Err(VmError::BadMapIndex { pc, index, maps: maps.len() });
                };
                let value = if src == insn::PSEUDO_MAP_IDX {
                    i as u64
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

/// Runs raw instructions without our verifier, for the conformance suite:
/// no maps, r1 = `mem` (r2 is set by the caller's program prologue).
///
/// # Safety
/// With [`Engine::Jit`] the program runs without any memory check: it must
/// come from a trusted source (a conformance test vector), since it can read
/// and write any address of the process.
pub unsafe fn run_unverified(insns: &[Insn], mem: &mut [u8], engine: Engine) -> Result<u64, VmError> {
    isa::check_program(insns)?;
    let insns = crate::lower::lower_for_rbpf(insns)?;
    let code = insn::encode_all(&insns);
    // Declared before the VM, so that the VM (which borrows it) drops first.
    let mut exec = match engine {
        Engine::Jit => Some(ExecMemory::for_program(insns.len()).map_err(VmError::JitMemory)?),
        Engine::Interpreter => None,
    };
    let mut vm = rbpf::EbpfVmMbuff::new(None).map_err(rbpf_err)?;
    vm.set_verifier(isa::rbpf_verifier).map_err(rbpf_err)?;
    vm.set_program(&code).map_err(rbpf_err)?;
    register_helpers(&mut vm, engine)?;
    // mbuff = mem, so that r1 points at the memory as in the ubpf harness.
    let mut mbuff = mem.to_vec();
    let ret = match engine {
        Engine::Interpreter => {
            let r = vm.execute_program(&[], &mbuff).map_err(rbpf_err);
            r?
        }
        Engine::Jit => {
            if !cfg!(target_arch = "x86_64") {
                return Err(VmError::JitUnsupported);
            }
            let Some(exec) = exec.as_mut() else { return Err(VmError::JitUnsupported) };
            // SAFETY: `exec` outlives `vm` (declared before it); rbpf writes
            // only before `seal`.
            vm.set_jit_exec_memory(unsafe { exec.as_static_mut() }).map_err(rbpf_err)?;
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| vm.jit_compile())) {
                Ok(r) => r.map_err(rbpf_err)?,
                Err(_) => return Err(VmError::JitOverflow),
            }
            exec.seal().map_err(VmError::JitMemory)?;
            // SAFETY: the caller guarantees the program is trusted (see the
            // function's contract); the buffers outlive the call.
            unsafe { vm.execute_program_jit(&mut [], &mut mbuff) }.map_err(rbpf_err)?
        }
    };
    mem.copy_from_slice(&mbuff);
    Ok(ret)
}
