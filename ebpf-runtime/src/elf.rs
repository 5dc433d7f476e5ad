//! Reading a relocatable BPF object (`clang -target bpf -O2 -c`) with the
//! `object` crate: code sections with their relocations, the license, legacy
//! map definitions (`SEC("maps")`, `struct bpf_map_def`) and global data
//! sections. Linking them into one program is `loader.rs`'s job.
//!
//! Everything is length-checked: `object` validates the headers and tables,
//! and every offset we take from the file is checked against its section
//! before use. BTF-defined maps (`SEC(".maps")`, libbpf style) are read from
//! the `.BTF` section (`btf.rs`), which clang emits with `-g`.

use object::read::elf::ElfFile64;
use object::{Object, ObjectKind, ObjectSection, ObjectSymbol, RelocationFlags, RelocationTarget, SectionKind, SymbolSection};

use crate::insn::{self, Insn};
use crate::map_spec::{MapKind, MapSpec};

/// Largest code section, in instruction slots (Linux's limit for privileged programs is 1M; ours is what rbpf runs).
pub const SECTION_SLOTS_MAX: usize = crate::isa::PROG_SLOTS_MAX;
/// Largest global data section, in bytes.
pub const GLOBAL_BYTES_MAX: u64 = 1 << 20;
/// Most maps (declared plus globals) in one object.
pub const MAPS_MAX: usize = 64;
/// Size of the legacy `struct bpf_map_def` without and with `map_flags`.
const MAP_DEF_MIN: usize = 16;

/// Why an object cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    #[error("not a valid ELF object")]
    Parse(#[from] object::Error),
    #[error("not a BPF object (machine {0:?}); build with `clang -target bpf`")]
    NotBpf(object::Architecture),
    #[error("big-endian BPF objects are not supported; build with `-target bpf` or `-target bpfel`")]
    BigEndian,
    #[error("not a relocatable object ({0:?}); pass the `.o` from `clang -c`")]
    NotRelocatable(ObjectKind),
    #[error("section `{section}` is {size} bytes, not a whole number of instructions")]
    PartialInsn { section: String, size: u64 },
    #[error("section `{section}` has {slots} instruction slots; at most {max} are supported")]
    SectionTooLong { section: String, slots: u64, max: usize },
    #[error("global section `{section}` is {size} bytes; at most {max} are supported")]
    GlobalTooLarge { section: String, size: u64, max: u64 },
    #[error("more than {max} maps (including global data sections)")]
    TooManyMaps { max: usize },
    #[error("map `{name}`: definition at offset {offset} does not fit section `maps` ({size} bytes)")]
    MapDefOutOfRange { name: String, offset: u64, size: usize },
    #[error("map `{name}`: type {map_type} is not supported; use BPF_MAP_TYPE_HASH (1) or BPF_MAP_TYPE_ARRAY (2)")]
    MapType { name: String, map_type: u32 },
    #[error("BTF-defined maps (SEC(\".maps\")) need the .BTF section: build with `clang -g`, or declare maps with BPF_MAP_DEF (SEC(\"maps\"))")]
    BtfMissing,
    #[error("map `{0}` in .maps has no BTF description")]
    BtfMapUnknown(String),
    #[error(transparent)]
    Btf(#[from] crate::btf::BtfError),
    #[error("license section is not a valid string")]
    License,
    #[error("section `{section}`: relocation at offset {offset:#x}: {reason}")]
    BadRelocation { section: String, offset: u64, reason: String },
}

/// Where a relocation points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelocTarget {
    /// `lddw` of a map handle: index into [`ElfObject::maps`].
    Map(usize),
    /// `lddw` of a global's address: map index and byte offset in its value.
    Global { map: usize, offset: u64 },
    /// `call` of a local function: code section index (into
    /// [`ElfObject::code`]) and instruction slot in it.
    Code { section: usize, slot: u64 },
}

/// A relocation of one instruction slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reloc {
    pub slot: usize,
    pub target: RelocTarget,
}

/// One executable section.
#[derive(Debug, Clone)]
pub struct CodeSection {
    pub name: String,
    pub insns: Vec<Insn>,
    pub relocs: Vec<Reloc>,
    /// Global functions defined in the section: (slot, name), by slot.
    pub global_funcs: Vec<(usize, String)>,
}

/// A map the object declares, with its initial value (globals only).
#[derive(Debug, Clone)]
pub struct MapDecl {
    pub spec: MapSpec,
    pub init: Option<Vec<u8>>,
}

/// What a BPF object holds, before linking.
#[derive(Debug, Clone)]
pub struct ElfObject {
    pub code: Vec<CodeSection>,
    pub maps: Vec<MapDecl>,
    pub license: Option<String>,
}

fn is_global_section(name: &str) -> bool {
    [".rodata", ".data", ".bss"].iter().any(|p| name == *p || name.starts_with(&format!("{p}.")))
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(b)
}

impl ElfObject {
    /// Reads an object; never panics on malformed input.
    pub fn parse(data: &[u8]) -> Result<ElfObject, ElfError> {
        let file = ElfFile64::<object::Endianness>::parse(data)?;
        if file.architecture() != object::Architecture::Bpf {
            return Err(ElfError::NotBpf(file.architecture()));
        }
        if !file.is_little_endian() {
            return Err(ElfError::BigEndian);
        }
        if file.kind() != ObjectKind::Relocatable {
            return Err(ElfError::NotRelocatable(file.kind()));
        }
        let mut license = None;
        let mut maps: Vec<MapDecl> = Vec::new();
        // Map index by (section index, offset of the map's symbol or 0 for globals).
        let mut map_at: Vec<(object::SectionIndex, u64, usize)> = Vec::new();
        let mut code_index: Vec<(object::SectionIndex, usize)> = Vec::new();
        let mut global_sections = Vec::new();
        let mut code = Vec::new();
        let mut btf_maps_section = None;

        for section in file.sections() {
            let name = section.name()?.to_string();
            if name == ".maps" {
                btf_maps_section = Some(section.index());
            } else if name == "license" {
                let raw = section.data()?;
                let raw = raw.split(|b| *b == 0).next().unwrap_or(&[]);
                license = Some(std::str::from_utf8(raw).map_err(|_| ElfError::License)?.to_string());
            } else if name == "maps" {
                let bytes = section.data()?;
                let mut defs: Vec<(u64, String, u64)> = file
                    .symbols()
                    .filter(|s| s.section() == SymbolSection::Section(section.index()))
                    .filter_map(|s| Some((s.address(), s.name().ok()?.to_string(), s.size())))
                    .filter(|(_, n, _)| !n.is_empty())
                    .collect();
                defs.sort();
                for (offset, map_name, sym_size) in defs {
                    let def_len = if sym_size >= 20 { 20 } else { MAP_DEF_MIN };
                    let start = usize::try_from(offset).ok();
                    let def = start.and_then(|s| bytes.get(s..s.checked_add(def_len)?));
                    let Some(def) = def else {
                        return Err(ElfError::MapDefOutOfRange { name: map_name, offset, size: bytes.len() });
                    };
                    let map_type = u32_at(def, 0);
                    let kind = match map_type {
                        1 => MapKind::Hash,
                        2 => MapKind::Array,
                        _ => return Err(ElfError::MapType { name: map_name, map_type }),
                    };
                    let spec = MapSpec { name: map_name, kind, key_size: u32_at(def, 4), value_size: u32_at(def, 8), max_entries: u32_at(def, 12), read_only: false };
                    map_at.push((section.index(), offset, maps.len()));
                    maps.push(MapDecl { spec, init: None });
                }
            } else if is_global_section(&name) && section.size() > 0 {
                global_sections.push(section.index());
            } else if section.kind() == SectionKind::Text && section.size() > 0 {
                let bytes = section.data()?;
                let slots = bytes.len() / insn::INSN_SIZE;
                if slots > SECTION_SLOTS_MAX {
                    return Err(ElfError::SectionTooLong { section: name, slots: slots as u64, max: SECTION_SLOTS_MAX });
                }
                let insns = insn::decode_all(bytes).ok_or(ElfError::PartialInsn { section: name.clone(), size: section.size() })?;
                let mut global_funcs: Vec<(usize, String)> = file
                    .symbols()
                    .filter(|s| s.section() == SymbolSection::Section(section.index()) && s.is_global() && s.kind() == object::SymbolKind::Text)
                    .filter_map(|s| Some((usize::try_from(s.address()).ok()? / insn::INSN_SIZE, s.name().ok()?.to_string())))
                    .collect();
                global_funcs.sort();
                code_index.push((section.index(), code.len()));
                code.push((section.index(), CodeSection { name, insns, relocs: Vec::new(), global_funcs }));
            }
        }
        // BTF-defined maps after legacy ones, by symbol offset.
        if let Some(index) = btf_maps_section {
            let btf = file.section_by_name(".BTF").ok_or(ElfError::BtfMissing)?;
            let defs = crate::btf::maps(btf.data()?)?;
            let mut syms: Vec<(u64, String)> = file
                .symbols()
                .filter(|s| s.section() == SymbolSection::Section(index))
                .filter_map(|s| Some((s.address(), s.name().ok()?.to_string())))
                .filter(|(_, n)| !n.is_empty())
                .collect();
            syms.sort();
            for (offset, map_name) in syms {
                let def = defs.iter().find(|d| d.name == map_name).ok_or_else(|| ElfError::BtfMapUnknown(map_name.clone()))?;
                let kind = match def.map_type {
                    1 => MapKind::Hash,
                    2 => MapKind::Array,
                    t => return Err(ElfError::MapType { name: map_name, map_type: t }),
                };
                let spec = MapSpec { name: map_name, kind, key_size: def.key_size, value_size: def.value_size, max_entries: def.max_entries, read_only: false };
                map_at.push((index, offset, maps.len()));
                maps.push(MapDecl { spec, init: None });
            }
        }
        // Globals after declared maps, in section order.
        for index in global_sections {
            let section = file.section_by_index(index)?;
            let name = section.name()?.to_string();
            let size = section.size();
            if size > GLOBAL_BYTES_MAX {
                return Err(ElfError::GlobalTooLarge { section: name, size, max: GLOBAL_BYTES_MAX });
            }
            let init = if section.kind() == SectionKind::UninitializedData {
                // size <= GLOBAL_BYTES_MAX (checked above): fits usize.
                vec![0u8; usize::try_from(size).unwrap_or(0)]
            } else {
                section.data()?.to_vec()
            };
            let value_size = u32::try_from(init.len()).map_err(|_| ElfError::GlobalTooLarge { section: name.clone(), size, max: GLOBAL_BYTES_MAX })?;
            let spec = MapSpec { read_only: name.starts_with(".rodata"), name, kind: MapKind::Array, key_size: 4, value_size, max_entries: 1 };
            map_at.push((index, 0, maps.len()));
            maps.push(MapDecl { spec, init: Some(init) });
        }
        if maps.len() > MAPS_MAX {
            return Err(ElfError::TooManyMaps { max: MAPS_MAX });
        }
        // Relocations of each code section.
        for (index, sec) in &mut code {
            let section = file.section_by_index(*index)?;
            for (offset, reloc) in section.relocations() {
                let bad = |reason: String| ElfError::BadRelocation { section: sec.name.clone(), offset, reason };
                let RelocationFlags::Elf { r_type } = reloc.flags() else {
                    return Err(bad("not an ELF relocation".into()));
                };
                let slot = usize::try_from(offset / 8).map_err(|_| bad("offset out of range".into()))?;
                if offset % 8 != 0 || slot >= sec.insns.len() {
                    return Err(bad(format!("offset is not an instruction of the section ({} slots)", sec.insns.len())));
                }
                let RelocationTarget::Symbol(sym_index) = reloc.target() else {
                    return Err(bad("target is not a symbol".into()));
                };
                let sym = file.symbol_by_index(sym_index).map_err(|e| bad(format!("bad symbol: {e}")))?;
                let sym_name = sym.name().unwrap_or("?").to_string();
                let SymbolSection::Section(target_sec) = sym.section() else {
                    return Err(bad(format!("symbol `{sym_name}` is not defined in this object (extern symbols and kfuncs are not supported)")));
                };
                let ins = sec.insns[slot];
                let target = if r_type == object::elf::R_BPF_64_64 {
                    if ins.opc != insn::OP_LDDW || slot + 1 >= sec.insns.len() {
                        return Err(bad("R_BPF_64_64 on an instruction that is not lddw".into()));
                    }
                    let global = map_at.iter().find(|(s, _, m)| *s == target_sec && maps[*m].init.is_some());
                    let declared = map_at.iter().find(|(s, off, m)| *s == target_sec && *off == sym.address() && maps[*m].init.is_none());
                    if let Some(&(_, _, map)) = global {
                        // Global: the symbol's offset plus the addend in imm.
                        let offset = sym.address().checked_add(u64::from(u32::from_le_bytes(ins.imm.to_le_bytes()))).ok_or_else(|| bad("offset overflow".into()))?;
                        if offset >= u64::from(maps[map].spec.value_size) {
                            return Err(bad(format!("offset {offset} is outside `{}` ({} bytes)", maps[map].spec.name, maps[map].spec.value_size)));
                        }
                        RelocTarget::Global { map, offset }
                    } else if let Some(&(_, _, map)) = declared {
                        RelocTarget::Map(map)
                    } else {
                        return Err(bad(format!("lddw of `{sym_name}`, which is neither a map nor in .rodata/.data/.bss")));
                    }
                } else if r_type == object::elf::R_BPF_64_32 {
                    if ins.opc != (insn::CLASS_JMP | insn::JMP_CALL) || ins.src != insn::CALL_LOCAL {
                        return Err(bad("R_BPF_64_32 on an instruction that is not a local call".into()));
                    }
                    let Some(&(_, section)) = code_index.iter().find(|(s, _)| *s == target_sec) else {
                        return Err(bad(format!("call of `{sym_name}`, which is not in a code section")));
                    };
                    let base = i64::try_from(sym.address() / 8).map_err(|_| bad("symbol address out of range".into()))?;
                    let t = base + i64::from(ins.imm) + 1;
                    let slot = u64::try_from(t).map_err(|_| bad(format!("call target {t} is before the section start")))?;
                    RelocTarget::Code { section, slot }
                } else {
                    return Err(bad(format!("relocation type {} is not supported in code (expected R_BPF_64_64 or R_BPF_64_32)", r_type.0)));
                };
                sec.relocs.push(Reloc { slot, target });
            }
        }
        Ok(ElfObject { code: code.into_iter().map(|(_, c)| c).collect(), maps, license })
    }
}
