//! `sfbench byop`: bring your own program. Runs any XRP-style BPF object
//! against any file through the userspace engine and prints the chain's
//! status, so programs written for XRP can be checked here unchanged.
//!
//! The file is the emulated controller's namespace, read in place (O_DIRECT
//! where the file system allows it): memory stays flat whatever the file's
//! size.

use anyhow::{bail, Context, Result};
use chaining::{ChainQueue, ChainRequest, Function, ProgId, QueueConfig, SCRATCH_SIZE};
use ebpf_runtime::vm::Engine as VmEngine;
use fs_extents::{ChangeStamp, DevOffset, Extent, ExtentKind, ExtentMap, FileOffset, Registry, TenantId};
use nvme::{Backing, Controller, EmuConfig, EmulatedController, Latency};
use std::path::PathBuf;
use std::sync::Arc;

/// The emulated controller's LBA size: reads are multiples of it.
const BLOCK_BYTES: u32 = 512;
/// The largest block a program may be verified for here.
const DATA_SIZE_MAX: u32 = 64 << 10;
/// The largest hop limit a chain may have (the engine's own cap).
const HOPS_MAX_LIMIT: u32 = 1 << 20;
/// Entries of the queue pair.
const QUEUE_DEPTH: u16 = 64;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The BPF object (clang -target bpf -O2 -I bpf/include -c prog.c -o prog.o).
    #[arg(long)]
    pub prog: PathBuf,
    /// Program section (default: the only or first program section).
    #[arg(long)]
    pub section: Option<String>,
    /// The file the chain reads (any size: it is read in place, not loaded).
    #[arg(long)]
    pub file: PathBuf,
    /// File offset of the first read (a multiple of 512).
    #[arg(long, default_value_t = 0)]
    pub offset: u64,
    /// Bytes of the first read (a multiple of 512, at most --data-size).
    #[arg(long, default_value_t = 4096)]
    pub size: u32,
    /// Block size the program is verified for (ctx->data bytes; a multiple of 512, at most 65536).
    #[arg(long, default_value_t = 4096)]
    pub data_size: u32,
    /// Initial scratch (up to 4096 bytes).
    #[arg(long)]
    pub scratch_in: Option<PathBuf>,
    /// Where to write the final scratch (4096 bytes).
    #[arg(long)]
    pub scratch_out: Option<PathBuf>,
    /// Most reads the chain may make, the first included; the chain ends
    /// "hop limit" past it. XRP's batched programs need thousands (4096 for
    /// a 32-key batch of lookups); at most 1048576.
    #[arg(long, default_value_t = 4096)]
    pub hops_max: u32,
    /// Run in the interpreter instead of the JIT.
    #[arg(long)]
    pub interp: bool,
    /// Device model of the emulated controller.
    #[arg(long, default_value = "none", value_parser = Latency::parse)]
    pub device_latency: Latency,
}

/// Checks the flags before anything runs, so a bad flag is blamed on the flag.
fn check_flags(a: &Args, file_len: u64) -> Result<()> {
    if a.data_size == 0 || a.data_size % BLOCK_BYTES != 0 || a.data_size > DATA_SIZE_MAX {
        bail!("--data-size {}: must be a positive multiple of {BLOCK_BYTES} up to {DATA_SIZE_MAX}", a.data_size);
    }
    if a.size == 0 || a.size % BLOCK_BYTES != 0 {
        bail!("--size {}: must be a positive multiple of {BLOCK_BYTES} (the device block)", a.size);
    }
    if a.size > a.data_size {
        bail!("--size {} is larger than --data-size {} (the block the program is verified for); raise --data-size or lower --size", a.size, a.data_size);
    }
    if a.offset % u64::from(BLOCK_BYTES) != 0 {
        bail!("--offset {}: must be a multiple of {BLOCK_BYTES}", a.offset);
    }
    if a.offset.checked_add(u64::from(a.size)).is_none_or(|end| end > file_len) {
        bail!("--offset {} --size {} reads past the end of {} ({file_len} bytes)", a.offset, a.size, a.file.display());
    }
    if a.hops_max == 0 || a.hops_max > HOPS_MAX_LIMIT {
        bail!("--hops-max {}: must be between 1 and {HOPS_MAX_LIMIT}", a.hops_max);
    }
    Ok(())
}

/// The smallest data size (a multiple of 512 up to the maximum) at which
/// the verifier accepts the program, when it rejects it at `rejected`.
fn data_size_needed(object: &[u8], section: Option<&str>, rejected: u32) -> Option<u32> {
    let ok = |ds: u32| Function::bpf(object, section, ds, VmEngine::Interpreter).is_ok();
    if !ok(DATA_SIZE_MAX) {
        return None;
    }
    // Acceptance is monotonic in the data size: binary search the blocks.
    let (mut lo, mut hi) = (rejected / BLOCK_BYTES, DATA_SIZE_MAX / BLOCK_BYTES);
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        if ok(mid * BLOCK_BYTES) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Some(hi * BLOCK_BYTES)
}

pub fn run(a: Args) -> Result<()> {
    let object = std::fs::read(&a.prog).with_context(|| format!("reading {}", a.prog.display()))?;
    let backing = Backing::file_read_only(&a.file).with_context(|| format!("opening {}", a.file.display()))?;
    let len = backing.len();
    if len < u64::from(BLOCK_BYTES) {
        bail!("{} holds {len} bytes: less than one {BLOCK_BYTES}-byte block", a.file.display());
    }
    check_flags(&a, len)?;
    let engine = if a.interp { VmEngine::Interpreter } else { VmEngine::Jit };
    let func = match Function::bpf(&object, a.section.as_deref(), a.data_size, engine) {
        Ok(f) => f,
        Err(e) => {
            let mut msg = format!("{}: {}", a.prog.display(), ebpf_runtime::with_causes(&e));
            if matches!(e, chaining::function::FunctionError::Vm(ebpf_runtime::vm::VmError::Rejected(_))) {
                match data_size_needed(&object, a.section.as_deref(), a.data_size) {
                    Some(n) => msg.push_str(&format!(
                        "\nthe verifier accepts it at --data-size {n} (the smallest multiple of {BLOCK_BYTES} that holds what it reads): run with --data-size {n}"
                    )),
                    None => msg.push_str(&format!("\n(a larger --data-size does not help: it is rejected at {DATA_SIZE_MAX} too)")),
                }
            }
            bail!(msg);
        }
    };
    let direct = matches!(&backing, Backing::File(f) if f.is_direct());
    let emu = EmulatedController::new(backing, EmuConfig { block_size: BLOCK_BYTES, latency: a.device_latency, ..EmuConfig::default() })?;
    let ctrl = Controller::attach(Arc::new(emu))?;
    let registry = Arc::new(Registry::new());
    let tenant = TenantId(1);
    registry.add_tenant(tenant);
    // The namespace is the file: one identity extent over its whole blocks.
    let readable = len - len % u64::from(BLOCK_BYTES);
    let map = ExtentMap::new(
        vec![Extent { logical: FileOffset(0), physical: DevOffset(0), len: readable, kind: ExtentKind::Written }],
        readable,
        u64::from(BLOCK_BYTES),
        ChangeStamp::default(),
    )?;
    let file = registry.add_file(Arc::new(map))?;
    registry.grant(tenant, file)?;
    let buf = a.data_size.next_multiple_of(4096);
    let mut q = ChainQueue::new(&ctrl, 1, registry, QueueConfig { depth: QUEUE_DEPTH, buf_size: buf, hops_max: a.hops_max })?;
    let prog = q.add_function(func)?;
    debug_assert_eq!(prog, ProgId(0));
    let mut req = ChainRequest::new(tenant, file, FileOffset(a.offset), a.size, prog).with_hops_max(a.hops_max);
    if let Some(p) = &a.scratch_in {
        req.scratch = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
        if req.scratch.len() > SCRATCH_SIZE {
            bail!("--scratch-in {}: {} bytes; the scratch holds at most {SCRATCH_SIZE}", p.display(), req.scratch.len());
        }
    }
    let o = q.run_blocking(req)?;
    println!("file: {} ({len} bytes, read in place{})", a.file.display(), if direct { ", O_DIRECT" } else { " through the page cache: no O_DIRECT on this file system" });
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
