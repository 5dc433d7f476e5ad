//! `xrp-bpf`: verify a storage function, run it on a data block, or serve as a
//! bpf_conformance plugin.
//!
//! ```text
//! xrp-bpf sections PROG.o
//! xrp-bpf verify PROG.o [--section S] [--data-size N]
//! xrp-bpf run PROG.o [--section S] --data FILE [--scratch FILE] [--scratch-out FILE] [--interp]
//! xrp-bpf conformance-plugin [MEMORY_HEX] [--elf] [--jit]   (program as hex on stdin)
//! ```

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};
use ebpf_runtime::context::{FANOUT_MAX, SCRATCH_SIZE};
use ebpf_runtime::{conformance, gate, loader, with_causes, Engine, Instance, Program};

/// Data block size `verify` assumes unless told (one 4 KiB block).
const DATA_SIZE_DEFAULT: u32 = 4096;
/// Scratch bytes `run` prints.
const SCRATCH_SHOWN: usize = 64;

#[derive(Parser, Debug)]
#[command(name = "xrp-bpf", about = "Verify and run XRP-style BPF storage functions")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// List the program sections of an object.
    Sections { object: PathBuf },
    /// Verify a program: verdict, instruction count, states, time.
    Verify {
        object: PathBuf,
        /// Program section (default: the only or first one).
        #[arg(long)]
        section: Option<String>,
        /// Bytes of the data block the program reads.
        #[arg(long, default_value_t = DATA_SIZE_DEFAULT)]
        data_size: u32,
    },
    /// Verify and run a program once on a data block.
    Run {
        object: PathBuf,
        #[arg(long)]
        section: Option<String>,
        /// The data block (its length is the verified data size).
        #[arg(long)]
        data: PathBuf,
        /// Initial scratch (at most 4096 bytes, zero-padded).
        #[arg(long)]
        scratch: Option<PathBuf>,
        /// Write the scratch after the call to this file.
        #[arg(long)]
        scratch_out: Option<PathBuf>,
        /// Use the interpreter instead of the JIT.
        #[arg(long)]
        interp: bool,
    },
    /// bpf_conformance plugin: program as hex on stdin, memory as hex argument;
    /// prints r0 in hex, or the error on stderr with a non-zero exit.
    ConformancePlugin {
        /// Initial memory, base16.
        memory: Option<String>,
        /// The program is an ELF object.
        #[arg(long)]
        elf: bool,
        /// Use the JIT instead of the interpreter.
        #[arg(long)]
        jit: bool,
    },
}

/// Prints helper output (`bpf_trace_printk`) to stderr.
struct StderrLog;

impl log::Log for StderrLog {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= log::Level::Info
    }
    fn log(&self, r: &log::Record) {
        if self.enabled(r.metadata()) {
            eprintln!("[{}] {}", r.target(), r.args());
        }
    }
    fn flush(&self) {}
}

static LOGGER: StderrLog = StderrLog;

fn read(path: &PathBuf) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn load(object: &PathBuf, section: Option<&str>) -> Result<Program, String> {
    Program::load(&read(object)?, section).map_err(|e| format!("{}: {}", object.display(), with_causes(&e)))
}

fn main() -> ExitCode {
    // Only fails if a logger is already set, which nothing else does here.
    let _ = log::set_logger(&LOGGER).map(|()| log::set_max_level(log::LevelFilter::Info));
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Sections { object } => sections(&object),
        Command::Verify { object, section, data_size } => verify(&object, section.as_deref(), data_size),
        Command::Run { object, section, data, scratch, scratch_out, interp } => run(&object, section.as_deref(), &data, scratch.as_ref(), scratch_out.as_ref(), interp),
        Command::ConformancePlugin { memory, elf, jit } => plugin(memory.as_deref(), elf, jit),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn sections(object: &PathBuf) -> Result<(), String> {
    for s in loader::program_sections(&read(object)?).map_err(|e| with_causes(&e))? {
        println!("{s}");
    }
    Ok(())
}

fn verify(object: &PathBuf, section: Option<&str>, data_size: u32) -> Result<(), String> {
    let prog = load(object, section)?;
    let start = Instant::now();
    let verdict = gate::verify(&prog, data_size);
    let took = start.elapsed();
    match verdict {
        Ok(stats) => {
            println!(
                "accepted: section {} ({} insns), {} insns processed, {} states (peak {}), {:.3} ms",
                prog.section,
                stats.insns,
                stats.insns_processed,
                stats.states,
                stats.peak_states,
                took.as_secs_f64() * 1e3
            );
            Ok(())
        }
        Err(e) => Err(format!("rejected: section {} ({} insns): {}", prog.section, prog.insns.len(), with_causes(&e))),
    }
}

fn run(object: &PathBuf, section: Option<&str>, data: &PathBuf, scratch: Option<&PathBuf>, scratch_out: Option<&PathBuf>, interp: bool) -> Result<(), String> {
    let prog = load(object, section)?;
    let mut block = read(data)?;
    let data_size = u32::try_from(block.len()).map_err(|_| "data file larger than 4 GiB".to_string())?;
    let mut scratch_buf = vec![0u8; SCRATCH_SIZE];
    if let Some(path) = scratch {
        let s = read(path)?;
        if s.len() > SCRATCH_SIZE {
            return Err(format!("{}: {} bytes; the scratch holds at most {SCRATCH_SIZE}", path.display(), s.len()));
        }
        scratch_buf[..s.len()].copy_from_slice(&s);
    }
    let engine = if interp { Engine::Interpreter } else { Engine::Jit };
    let inst = Instance::new(&prog, data_size, engine).map_err(|e| with_causes(&e))?;
    let out = inst.run(&mut block, &mut scratch_buf).map_err(|e| with_causes(&e))?;
    println!("r0 = {:#x} ({})", out.ret, i64::from_le_bytes(out.ret.to_le_bytes()));
    println!("done = {}", out.ctx.done);
    for i in 0..FANOUT_MAX {
        if out.ctx.next_addr[i] != 0 || out.ctx.size[i] != 0 {
            println!("next_addr[{i}] = {:#x} size[{i}] = {}", out.ctx.next_addr[i], out.ctx.size[i]);
        }
    }
    let shown: Vec<String> = scratch_buf[..SCRATCH_SHOWN].iter().map(|b| format!("{b:02x}")).collect();
    println!("scratch[0..{SCRATCH_SHOWN}] = {}", shown.join(" "));
    if let Some(path) = scratch_out {
        std::fs::write(path, &scratch_buf).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}

fn plugin(memory: Option<&str>, elf: bool, jit: bool) -> Result<(), String> {
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input).map_err(|e| format!("cannot read stdin: {e}"))?;
    let args = conformance::PluginArgs { memory: memory.map(str::to_string), elf, jit };
    // SAFETY: the plugin runs the program it is given on purpose, as the
    // conformance runner's plugins do; the interpreter checks every access,
    // `--jit` runs the trusted vector unchecked (the documented contract).
    let r0 = unsafe { conformance::plugin(&args, &input) }?;
    println!("{r0:x}");
    Ok(())
}
