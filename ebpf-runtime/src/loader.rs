//! Linking one program out of a BPF object: pick its section, append the
//! `.text` subprograms it calls, and rewrite relocated instructions into the
//! form the verifier reads:
//!
//! - map handle: `lddw dst, map` with `src = PSEUDO_MAP_IDX`, `imm` = map index;
//! - global address: `lddw` with `src = PSEUDO_MAP_IDX_VALUE`, `imm` = map
//!   index of the section's single-entry array map, second slot `imm` = offset;
//! - local call: `call` with `src = 1`, `imm` = target - (pc + 1);
//! - helper call: `call` with `src = 0`, `imm` = Linux helper id (unchanged).

use crate::elf::{ElfError, ElfObject, RelocTarget};
use crate::insn::{self, Insn};
use crate::isa::{self, IsaError};
use crate::map_spec::MapSpec;

/// Name of the section holding subprograms (non-inlined functions).
pub const TEXT_SECTION: &str = ".text";

/// Why a program cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Elf(#[from] ElfError),
    #[error("the object has no program section (a function in SEC(\"...\")) and no global function in .text")]
    NoProgram,
    #[error("the program is the global function `{name}` in .text, at slot {slot}; it must be the first function of .text (or put it in a SEC(\"...\"))")]
    TextEntryNotFirst { name: String, slot: usize },
    #[error("no program section `{name}`; the object has: {available}")]
    NoSuchSection { name: String, available: String },
    #[error("section `{from}` calls into section `{to}`; only calls into .text are supported")]
    CrossSectionCall { from: String, to: String },
    #[error("local call at insn {pc} targets slot {slot} of `{section}`, which has {len} slots")]
    CallOutOfRange { pc: usize, slot: u64, section: String, len: usize },
    #[error("linked program is too long ({slots} slots; at most {max})")]
    TooLong { slots: usize, max: usize },
    #[error("program cannot run on this engine")]
    Isa(#[from] IsaError),
}

/// A map of a loaded program: what it declares and, for globals, the bytes
/// its single value starts with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramMap {
    pub spec: MapSpec,
    pub init: Option<Vec<u8>>,
}

/// A linked, relocated program in the verifier's form (see the module doc).
#[derive(Debug, Clone)]
pub struct Program {
    /// The ELF section it came from.
    pub section: String,
    /// Contents of the `license` section, if any.
    pub license: Option<String>,
    /// Instructions, with pseudo `lddw`s for maps and globals.
    pub insns: Vec<Insn>,
    /// Maps in handle order (declared maps, then global sections).
    pub maps: Vec<ProgramMap>,
}

impl Program {
    /// Map specs in handle order, as the verifier's `Env` wants them.
    pub fn map_specs(&self) -> Vec<MapSpec> {
        self.maps.iter().map(|m| m.spec.clone()).collect()
    }

    /// Loads the program in section `section`, or, with `None`, the only or
    /// first program section. An object without program sections whose
    /// `.text` starts with a global function (as the bpf_conformance ELF
    /// vectors are built) has that function as its program, as libbpf
    /// accepts.
    pub fn load(object: &[u8], section: Option<&str>) -> Result<Program, LoadError> {
        let obj = ElfObject::parse(object)?;
        let programs: Vec<usize> = (0..obj.code.len()).filter(|i| obj.code[*i].name != TEXT_SECTION).collect();
        let main = match section {
            None if programs.is_empty() => text_entry(&obj)?,
            None => programs[0],
            Some(name) => *programs.iter().find(|i| obj.code[**i].name == name).ok_or_else(|| LoadError::NoSuchSection {
                name: name.to_string(),
                available: programs.iter().map(|i| obj.code[*i].name.as_str()).collect::<Vec<_>>().join(", "),
            })?,
        };
        link(&obj, main)
    }
}

/// `.text` as the program when it starts with a global function.
fn text_entry(obj: &ElfObject) -> Result<usize, LoadError> {
    let text = obj.code.iter().position(|c| c.name == TEXT_SECTION).ok_or(LoadError::NoProgram)?;
    match obj.code[text].global_funcs.first() {
        None => Err(LoadError::NoProgram),
        Some((0, _)) => Ok(text),
        Some((slot, name)) => Err(LoadError::TextEntryNotFirst { name: name.clone(), slot: *slot }),
    }
}

/// Names of the program sections of an object, in file order.
pub fn program_sections(object: &[u8]) -> Result<Vec<String>, LoadError> {
    let obj = ElfObject::parse(object)?;
    Ok(obj.code.into_iter().map(|c| c.name).filter(|n| n != TEXT_SECTION).collect())
}

fn link(obj: &ElfObject, main: usize) -> Result<Program, LoadError> {
    let text = obj.code.iter().position(|c| c.name == TEXT_SECTION);
    // Which sections go in: main, then .text if anything (transitively) calls it.
    let calls_text = |sec: usize| obj.code[sec].relocs.iter().any(|r| matches!(r.target, RelocTarget::Code { section, .. } if Some(section) == text));
    let mut parts = vec![main];
    if let Some(t) = text {
        if t != main && calls_text(main) {
            parts.push(t);
        }
    }
    let mut base = vec![None; obj.code.len()];
    let mut insns = Vec::new();
    for &p in &parts {
        base[p] = Some(insns.len());
        insns.extend_from_slice(&obj.code[p].insns);
    }
    if insns.len() > isa::PROG_SLOTS_MAX {
        return Err(LoadError::TooLong { slots: insns.len(), max: isa::PROG_SLOTS_MAX });
    }
    for &p in &parts {
        let sec = &obj.code[p];
        let start = base[p].unwrap_or(0);
        for r in &sec.relocs {
            let pc = start + r.slot;
            match r.target {
                RelocTarget::Map(map) => set_lddw(&mut insns, pc, insn::PSEUDO_MAP_IDX, map, 0),
                RelocTarget::Global { map, offset } => set_lddw(&mut insns, pc, insn::PSEUDO_MAP_IDX_VALUE, map, offset),
                RelocTarget::Code { section, slot } => {
                    let target_sec = &obj.code[section];
                    let Some(target_base) = base[section] else {
                        return Err(LoadError::CrossSectionCall { from: sec.name.clone(), to: target_sec.name.clone() });
                    };
                    let out_of_range = || LoadError::CallOutOfRange { pc, slot, section: target_sec.name.clone(), len: target_sec.insns.len() };
                    let slot_idx = usize::try_from(slot).ok().filter(|s| *s < target_sec.insns.len()).ok_or_else(out_of_range)?;
                    // Both indices are below PROG_SLOTS_MAX (checked above): they fit i32.
                    let to_i32 = |v: usize| i32::try_from(v).map_err(|_| LoadError::TooLong { slots: v, max: isa::PROG_SLOTS_MAX });
                    insns[pc].imm = to_i32(target_base + slot_idx)? - to_i32(pc + 1)?;
                }
            }
        }
    }
    isa::check_loaded(&insns)?;
    Ok(Program {
        section: obj.code[main].name.clone(),
        license: obj.license.clone(),
        insns,
        maps: obj.maps.iter().map(|m| ProgramMap { spec: m.spec.clone(), init: m.init.clone() }).collect(),
    })
}

/// Rewrites the lddw at `pc` (its second slot exists: checked when reading relocations).
fn set_lddw(insns: &mut [Insn], pc: usize, src: u8, map: usize, offset: u64) {
    insns[pc].src = src;
    // Map indices are below elf::MAPS_MAX and offsets below GLOBAL_BYTES_MAX:
    // both fit in i32, the fallback is never taken.
    insns[pc].imm = i32::try_from(map).unwrap_or(i32::MAX);
    insns[pc + 1].imm = i32::try_from(offset).unwrap_or(i32::MAX);
}
