//! The bpf_conformance test vectors (`../shared/conformance/tests/*.data`):
//! parsing one file and running a program the way that project's plugins do
//! (r1 = the memory, r2 = its length, no verifier, no maps). Shared by the
//! test harness (`tests/conformance.rs`) and the CLI's `conformance-plugin`.

use crate::asm;
use crate::insn::{self, Insn};
use crate::loader::Program;
use crate::vm::{self, Engine};
use crate::with_causes;

/// One test vector.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TestCase {
    /// The `-- asm` section.
    pub asm: String,
    /// The `-- raw` section, if any: the expected encoding of `asm`.
    pub raw: Option<Vec<Insn>>,
    /// The `-- mem` section (initial memory), empty if absent.
    pub mem: Vec<u8>,
    /// The `-- result` section: expected r0.
    pub result: Option<u64>,
    /// The `-- error` section: expected error text (the run must fail).
    pub error: Option<String>,
}

/// A vector file that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("bad hex byte `{0}` in -- mem")]
    Mem(String),
    #[error("bad -- result value `{0}`")]
    Result(String),
    #[error("bad -- raw slot `{0}`")]
    Raw(String),
    #[error("no -- asm section")]
    NoAsm,
}

/// Parses the text of one `.data` file.
pub fn parse(text: &str) -> Result<TestCase, ParseError> {
    let mut case = TestCase::default();
    let mut section = "";
    let mut has_asm = false;
    let mut raw = Vec::new();
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("-- ") {
            section = name.trim();
            has_asm |= section == "asm";
            continue;
        }
        match section {
            "asm" => {
                case.asm.push_str(line);
                case.asm.push('\n');
            }
            "mem" => {
                for b in line.split_whitespace() {
                    case.mem.push(u8::from_str_radix(b, 16).map_err(|_| ParseError::Mem(b.to_string()))?);
                }
            }
            "result" if !line.trim().is_empty() => {
                let t = line.trim();
                let v = t.strip_prefix("0x").map_or_else(|| t.parse::<u64>().ok(), |h| u64::from_str_radix(h, 16).ok());
                case.result = Some(v.ok_or_else(|| ParseError::Result(t.to_string()))?);
            }
            "raw" if !line.trim().is_empty() => {
                let t = line.trim();
                let v = u64::from_str_radix(t.trim_start_matches("0x"), 16).map_err(|_| ParseError::Raw(t.to_string()))?;
                // The vectors write a slot as one little-endian u64.
                raw.push(Insn::decode(v.to_le_bytes()));
            }
            "error" if !line.trim().is_empty() => {
                let e = case.error.get_or_insert_with(String::new);
                e.push_str(line.trim());
            }
            _ => {}
        }
    }
    if !has_asm {
        return Err(ParseError::NoAsm);
    }
    if !raw.is_empty() {
        case.raw = Some(raw);
    }
    Ok(case)
}

/// Runs `prog` on `mem` as a conformance plugin does: r1 = `mem`, r2 = its
/// length (set by a `mov r2, len` slot put in front of the program, which
/// changes no relative offset; instruction numbers in error messages count
/// that slot, so they are one more than in the vector). Errors are returned
/// as text; a panic inside the engine is caught and reported as an error.
///
/// # Safety
/// With [`Engine::Jit`] the program runs unverified and unchecked
/// ([`vm::jit_unverified`]): it must be a trusted program (a conformance
/// vector) that stays inside `mem` and its stack.
pub unsafe fn run(prog: &[Insn], mem: &mut [u8], engine: Engine) -> Result<u64, String> {
    let len = i32::try_from(mem.len()).map_err(|_| "memory larger than 2 GiB".to_string())?;
    let mut full = Vec::with_capacity(prog.len() + 1);
    full.push(Insn { opc: insn::CLASS_ALU64 | insn::ALU_MOV, dst: 2, src: 0, off: 0, imm: len });
    full.extend_from_slice(prog);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: the caller's contract (trusted program).
        unsafe { vm::run_unverified(&full, mem, engine) }
    }));
    match result {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(with_causes(&e)),
        Err(_) => Err("the engine panicked".to_string()),
    }
}

/// Options of the plugin protocol (bpf_conformance's runner starts a plugin
/// as `PLUGIN [MEMORY_HEX] [PLUGIN_OPTIONS...] [--elf]`, program on stdin).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PluginArgs {
    /// Initial memory, base16 (absent or empty: none).
    pub memory: Option<String>,
    /// stdin holds an ELF object (hex) rather than raw instructions.
    pub elf: bool,
    /// Run on the JIT instead of the interpreter.
    pub jit: bool,
}

impl PluginArgs {
    /// Parses the runner's argument list (without the program name): the
    /// first argument that is not an option is the memory; options are
    /// `--elf`, `--jit`, `--interp`.
    pub fn parse<S: AsRef<str>>(args: &[S]) -> Result<PluginArgs, String> {
        let mut a = PluginArgs::default();
        for arg in args {
            match arg.as_ref() {
                "--elf" => a.elf = true,
                "--jit" => a.jit = true,
                "--interp" => a.jit = false,
                o if o.starts_with("--") => return Err(format!("unknown option {o}; options are --elf, --jit, --interp")),
                m if a.memory.is_none() => a.memory = Some(m.to_string()),
                extra => return Err(format!("unexpected argument `{extra}` after the memory")),
            }
        }
        Ok(a)
    }
}

/// One plugin invocation: decodes the program (`input`, hex: raw slots or,
/// with `--elf`, an object whose program section or leading global `.text`
/// function is run) and the memory, runs it, returns r0.
///
/// # Safety
/// With `--jit` the program runs unchecked, as [`run`] says: the runner must
/// hand over trusted programs (the conformance vectors).
pub unsafe fn plugin(args: &PluginArgs, input: &str) -> Result<u64, String> {
    let bytes = decode_hex(input).map_err(|e| format!("program: {e}"))?;
    let insns = if args.elf {
        let prog = Program::load(&bytes, None).map_err(|e| with_causes(&e))?;
        if !prog.maps.is_empty() {
            return Err("ELF programs with maps or globals are not supported by the plugin".to_string());
        }
        prog.insns
    } else {
        insn::decode_all(&bytes).ok_or("program length is not a multiple of 8 bytes")?
    };
    let mut mem = match args.memory.as_deref() {
        Some(m) => decode_hex(m).map_err(|e| format!("memory: {e}"))?,
        None => Vec::new(),
    };
    let engine = if args.jit { Engine::Jit } else { Engine::Interpreter };
    // SAFETY: the caller's contract.
    unsafe { run(&insns, &mut mem, engine) }
}

/// Assembles a vector's program, checking it against `-- raw` when present.
pub fn program(case: &TestCase) -> Result<Vec<Insn>, String> {
    let prog = asm::assemble(&case.asm).map_err(|e| format!("assembler: {e}"))?;
    if let Some(raw) = &case.raw {
        if *raw != prog {
            return Err(format!("assembler output differs from -- raw: {prog:?} vs {raw:?}"));
        }
    }
    Ok(prog)
}

/// Decodes base16 text (whitespace ignored), as the plugin interface sends it.
pub fn decode_hex(text: &str) -> Result<Vec<u8>, String> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if digits.len() % 2 != 0 {
        return Err("odd number of hex digits".to_string());
    }
    digits
        .chunks_exact(2)
        .map(|p| {
            let s = std::str::from_utf8(p).map_err(|_| "non-ASCII input".to_string())?;
            u8::from_str_radix(s, 16).map_err(|_| format!("bad hex byte `{s}`"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sections() {
        let c = parse("# c\n-- asm\nmov %r0, %r2\nexit\n-- mem\n00 01\nff\n-- result\n0x3\n").unwrap();
        assert_eq!(c.mem, vec![0, 1, 0xff]);
        assert_eq!(c.result, Some(3));
        assert_eq!(program(&c).unwrap().len(), 2);
        assert!(parse("-- result\n1\n").is_err());
        assert!(parse("-- asm\n-- mem\nzz\n").is_err());
    }

    #[test]
    fn hex_decoding() {
        assert_eq!(decode_hex("0a ff\n10").unwrap(), vec![0x0a, 0xff, 0x10]);
        assert!(decode_hex("abc").is_err());
        assert!(decode_hex("zz").is_err());
    }

    #[test]
    fn runs_with_r2_as_length() {
        let prog = asm::assemble("mov %r0, %r2\nexit").unwrap();
        // SAFETY: the interpreter checks every access.
        assert_eq!(unsafe { run(&prog, &mut [0u8; 8], Engine::Interpreter) }, Ok(8));
    }
}
