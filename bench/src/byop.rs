//! `sfbench byop`: bring your own program. Runs any XRP-style BPF object
//! against any file through the userspace engine and prints the chain's
//! status, so programs written for XRP can be checked here unchanged.

use anyhow::{bail, Context, Result};
use chaining::{ChainQueue, ChainRequest, Function, ProgId, QueueConfig, SCRATCH_SIZE};
use ebpf_runtime::vm::Engine as VmEngine;
use fs_extents::{ChangeStamp, DevOffset, Extent, ExtentKind, ExtentMap, FileOffset, Registry, TenantId};
use nvme::{Backing, Controller, EmuConfig, EmulatedController, Latency};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The BPF object (clang -target bpf -O2 -I bpf/include -c prog.c -o prog.o).
    #[arg(long)]
    pub prog: PathBuf,
    /// Program section (default: the only or first program section).
    #[arg(long)]
    pub section: Option<String>,
    /// The file the chain reads.
    #[arg(long)]
    pub file: PathBuf,
    /// File offset of the first read.
    #[arg(long, default_value_t = 0)]
    pub offset: u64,
    /// Bytes of the first read (a multiple of 512).
    #[arg(long, default_value_t = 4096)]
    pub size: u32,
    /// Block size the program is verified for (ctx->data bytes).
    #[arg(long, default_value_t = 4096)]
    pub data_size: u32,
    /// Initial scratch (up to 4096 bytes).
    #[arg(long)]
    pub scratch_in: Option<PathBuf>,
    /// Where to write the final scratch (4096 bytes).
    #[arg(long)]
    pub scratch_out: Option<PathBuf>,
    #[arg(long, default_value_t = 64)]
    pub hops_max: u32,
    /// Run in the interpreter instead of the JIT.
    #[arg(long)]
    pub interp: bool,
    /// Device model of the emulated controller.
    #[arg(long, default_value = "none", value_parser = Latency::parse)]
    pub device_latency: Latency,
}

pub fn run(a: Args) -> Result<()> {
    let object = std::fs::read(&a.prog).with_context(|| format!("reading {}", a.prog.display()))?;
    let engine = if a.interp { VmEngine::Interpreter } else { VmEngine::Jit };
    let func = Function::bpf(&object, a.section.as_deref(), a.data_size, engine).with_context(|| format!("{} cannot run", a.prog.display()))?;
    let mut bytes = std::fs::read(&a.file).with_context(|| format!("reading {}", a.file.display()))?;
    let len = bytes.len() as u64;
    if len == 0 {
        bail!("{} is empty", a.file.display());
    }
    // The namespace holds the file from byte 0, padded to whole 4 KiB blocks.
    bytes.resize(bytes.len().next_multiple_of(4096), 0);
    let emu = EmulatedController::new(Backing::memory_from(bytes), EmuConfig { block_size: 512, latency: a.device_latency, ..EmuConfig::default() })?;
    let ctrl = Controller::attach(Arc::new(emu))?;
    let registry = Arc::new(Registry::new());
    let tenant = TenantId(1);
    registry.add_tenant(tenant);
    let map = ExtentMap::new(vec![Extent { logical: FileOffset(0), physical: DevOffset(0), len, kind: ExtentKind::Written }], len, 512, ChangeStamp::default())?;
    let file = registry.add_file(Arc::new(map))?;
    registry.grant(tenant, file)?;
    let buf = a.data_size.next_multiple_of(4096).max(4096);
    let mut q = ChainQueue::new(&ctrl, 1, registry, QueueConfig { depth: 64, buf_size: buf, hops_max: a.hops_max })?;
    let prog = q.add_function(func)?;
    debug_assert_eq!(prog, ProgId(0));
    let mut req = ChainRequest::new(tenant, file, a.offset, a.size, prog).with_hops_max(a.hops_max);
    if let Some(p) = &a.scratch_in {
        req.scratch = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
        if req.scratch.len() > SCRATCH_SIZE {
            bail!("{}: {} bytes; the scratch holds at most {SCRATCH_SIZE}", p.display(), req.scratch.len());
        }
    }
    let o = q.run_blocking(req)?;
    println!("status: {}", o.status);
    println!("hops: {} (program runs), reads: {}", o.hops, o.reads);
    let words: Vec<String> = (0..4).map(|i| format!("{:#x}", o.scratch_u64(i))).collect();
    println!("scratch[0..32] as u64: {}", words.join(" "));
    if let Some(p) = &a.scratch_out {
        std::fs::write(p, &o.scratch[..]).with_context(|| format!("writing {}", p.display()))?;
        println!("scratch written to {}", p.display());
    }
    if !o.status.is_done() {
        std::process::exit(2);
    }
    Ok(())
}
