//! Malformed and hostile objects: every one yields an error, never a panic.

// Test code: sizes and offsets are small; casts are checked by the assertions.
#![allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap, clippy::cast_sign_loss)]

mod common;

use ebpf_runtime::elf::ElfError;
use ebpf_runtime::loader::LoadError;
use ebpf_runtime::Program;
use object::{Object, ObjectSection};

fn object(name: &str) -> Vec<u8> {
    common::read(&common::build_c(name))
}

/// File offset and size of section `name`.
fn section(obj: &[u8], name: &str) -> (usize, usize) {
    let file = object::File::parse(obj).unwrap();
    let s = file.section_by_name(name).unwrap_or_else(|| panic!("no section {name}"));
    let (off, size) = s.file_range().unwrap();
    (off as usize, size as usize)
}

/// File offset of the section header table and the entry size.
fn shdr(obj: &[u8], index: usize) -> usize {
    let shoff = u64::from_le_bytes(obj[0x28..0x30].try_into().unwrap()) as usize;
    shoff + index * 64
}

fn index_of(obj: &[u8], name: &str) -> usize {
    let file = object::File::parse(obj).unwrap();
    file.section_by_name(name).unwrap().index().0
}

#[test]
fn every_truncation_is_an_error() {
    let obj = object("map_user");
    for len in 0..obj.len() {
        assert!(Program::load(&obj[..len], None).is_err(), "truncated to {len} bytes loaded");
    }
    assert!(Program::load(&obj, None).is_ok());
}

#[test]
fn wrong_machine_endianness_and_type() {
    let obj = object("empty");
    let mut x86 = obj.clone();
    x86[18..20].copy_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    assert!(matches!(Program::load(&x86, None), Err(LoadError::Elf(ElfError::NotBpf(_)))));
    let mut exec = obj.clone();
    exec[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    assert!(matches!(Program::load(&exec, None), Err(LoadError::Elf(ElfError::NotRelocatable(_)))));
    let mut be = obj.clone();
    be[5] = 2; // ELFDATA2MSB: the headers no longer parse or are big-endian
    assert!(Program::load(&be, None).is_err());
    assert!(matches!(Program::load(b"not an elf at all", None), Err(LoadError::Elf(ElfError::Parse(_)))));
}

#[test]
fn sections_out_of_range() {
    let obj = object("globals");
    let mut bad = obj.clone();
    bad[0x28..0x30].copy_from_slice(&u64::MAX.to_le_bytes()); // e_shoff
    assert!(Program::load(&bad, None).is_err());
    // The program section's data beyond the end of the file.
    let mut bad = obj.clone();
    let h = shdr(&obj, index_of(&obj, "xrp"));
    bad[h + 0x18..h + 0x20].copy_from_slice(&(obj.len() as u64 - 4).to_le_bytes()); // sh_offset
    assert!(Program::load(&bad, None).is_err());
    // A program section whose size is not whole instructions.
    let mut bad = obj.clone();
    let size = u64::from_le_bytes(obj[h + 0x20..h + 0x28].try_into().unwrap());
    bad[h + 0x20..h + 0x28].copy_from_slice(&(size - 3).to_le_bytes()); // sh_size
    assert!(matches!(Program::load(&bad, None), Err(LoadError::Elf(ElfError::PartialInsn { .. }))));
}

#[test]
fn bad_relocations() {
    let obj = object("globals");
    let (rel, _) = section(&obj, ".relxrp");
    // r_offset not on an instruction boundary.
    let mut bad = obj.clone();
    bad[rel..rel + 8].copy_from_slice(&3u64.to_le_bytes());
    let e = Program::load(&bad, None).unwrap_err();
    assert!(matches!(e, LoadError::Elf(ElfError::BadRelocation { .. })), "{e}");
    // r_offset past the section.
    let mut bad = obj.clone();
    bad[rel..rel + 8].copy_from_slice(&0x10000u64.to_le_bytes());
    assert!(matches!(Program::load(&bad, None), Err(LoadError::Elf(ElfError::BadRelocation { .. }))));
    // R_BPF_64_64 on slot 0 (not an lddw).
    let mut bad = obj.clone();
    bad[rel..rel + 8].copy_from_slice(&0u64.to_le_bytes());
    let e = Program::load(&bad, None).unwrap_err().to_string();
    assert!(e.contains("not lddw"), "{e}");
    // Unknown relocation type.
    let mut bad = obj.clone();
    bad[rel + 8..rel + 12].copy_from_slice(&7u32.to_le_bytes()); // r_info low half = type
    let e = Program::load(&bad, None).unwrap_err().to_string();
    assert!(e.contains("relocation type 7"), "{e}");
    // Symbol index out of the symbol table.
    let mut bad = obj.clone();
    bad[rel + 12..rel + 16].copy_from_slice(&0xffffu32.to_le_bytes());
    assert!(Program::load(&bad, None).is_err());
}

#[test]
fn unsupported_map_definitions() {
    let obj = object("map_user");
    let (maps, size) = section(&obj, "maps");
    assert_eq!(size, 40, "two legacy map definitions");
    let mut bad = obj.clone();
    bad[maps..maps + 4].copy_from_slice(&27u32.to_le_bytes()); // BPF_MAP_TYPE_RINGBUF
    let e = Program::load(&bad, None).unwrap_err().to_string();
    assert!(e.contains("type 27 is not supported"), "{e}");
    // BTF-defined maps are refused with a pointer to the legacy form.
    let src = std::env::temp_dir().join(format!("btf-maps-{}.c", std::process::id()));
    std::fs::write(
        &src,
        "struct { int (*type)[2]; int (*max_entries)[4]; } m __attribute__((section(\".maps\"), used));\n__attribute__((section(\"xrp\"), used)) int f(void *c) { return 0; }\n",
    )
    .unwrap();
    let out = src.with_extension("o");
    let ok = std::process::Command::new("clang").args(["-target", "bpf", "-O2", "-c"]).arg(&src).arg("-o").arg(&out).status().expect("clang (run scripts/install-deps.sh)");
    assert!(ok.success());
    let e = Program::load(&common::read(&out), None).unwrap_err().to_string();
    assert!(e.contains("BPF_MAP_DEF"), "{e}");
}

/// ISA v4 instructions load (both engines run the whole ISA); an opcode that
/// is no instruction is still refused by name at load time.
#[test]
fn v4_instructions_load_and_bad_opcodes_do_not() {
    let obj = object("empty");
    let (text, _) = section(&obj, "xrp");
    let mut v4 = obj.clone();
    // Slot 0 becomes `sdiv64 r0, 3` (ALU64 div, off = 1).
    v4[text..text + 8].copy_from_slice(&[0x37, 0x00, 0x01, 0x00, 0x03, 0, 0, 0]);
    let p = Program::load(&v4, None).unwrap();
    assert_eq!(ebpf_runtime::isa::name(&p.insns[0]), "sdiv64");
    let mut bad = obj.clone();
    // `div64` with off = 2 is no instruction.
    bad[text..text + 8].copy_from_slice(&[0x37, 0x00, 0x02, 0x00, 0x03, 0, 0, 0]);
    let e = Program::load(&bad, None).unwrap_err();
    // The message names what failed; the cause is its source, said once.
    assert_eq!(e.to_string(), "program cannot run on this engine");
    let cause = std::error::Error::source(&e).expect("the ISA error as the source").to_string();
    assert!(cause.contains("ALU offset"), "{cause}");
}

#[test]
fn no_program_section() {
    let src = std::env::temp_dir().join(format!("noprog-{}.c", std::process::id()));
    std::fs::write(&src, "int x = 1;\n").unwrap();
    let out = src.with_extension("o");
    assert!(std::process::Command::new("clang").args(["-target", "bpf", "-O2", "-c"]).arg(&src).arg("-o").arg(&out).status().expect("clang").success());
    assert!(matches!(Program::load(&common::read(&out), None), Err(LoadError::NoProgram)));
}

/// Corrupted BTF (type and string tables) never panics the map reader.
#[test]
fn corrupted_btf_never_panics() {
    let obj = common::read(&common::build_c_with("btf_maps", &["-g"]));
    let (btf, size) = section(&obj, ".BTF");
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..3000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let mut bad = obj.clone();
        let at = btf + (state % size as u64) as usize;
        bad[at] = (state >> 40) as u8;
        let _ = Program::load(&bad, None);
    }
    // A broken magic is reported as such.
    let mut bad = obj.clone();
    bad[btf] = 0;
    let e = Program::load(&bad, None).unwrap_err().to_string();
    assert!(e.contains("BTF"), "{e}");
}

/// A cheap deterministic fuzz: single-byte corruptions anywhere in the file
/// must load or fail cleanly (cargo-fuzz runs the same property for longer).
#[test]
fn corrupted_bytes_never_panic() {
    let obj = object("map_user");
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..3000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let mut bad = obj.clone();
        let at = (state % obj.len() as u64) as usize;
        bad[at] ^= (state >> 32) as u8 | 1;
        let _ = Program::load(&bad, None);
    }
}
