//! The shared-map target of issue 11: two threads each run
//! `bpf/tests/counter.c` (one `__sync_fetch_and_add` on an array-map value
//! per call) 10 million times on one JIT instance; the host then reads
//! exactly 20,000,000. Prints the count and the time per call.
//!
//! ```text
//! cargo run --release -p ebpf-runtime --example counter -- [CALLS_PER_THREAD]
//! ```

use std::sync::Arc;
use std::time::Instant;

use ebpf_runtime::context::SCRATCH_SIZE;
use ebpf_runtime::{Engine, Instance, Program, XrpContext};

const THREADS: u64 = 2;
const CALLS_PER_THREAD: u64 = 10_000_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let calls: u64 = std::env::args().nth(1).map_or(Ok(CALLS_PER_THREAD), |s| s.parse())?;
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let obj = std::env::temp_dir().join(format!("counter-example-{}.o", std::process::id()));
    let ok = std::process::Command::new("clang")
        .args(["-target", "bpf", "-O2", "-mcpu=v3", "-g0", "-I"])
        .arg(root.join("bpf/include"))
        .arg("-c")
        .arg(root.join("bpf/tests/counter.c"))
        .arg("-o")
        .arg(&obj)
        .status()?;
    if !ok.success() {
        return Err("clang failed on bpf/tests/counter.c".into());
    }
    let prog = Program::load(&std::fs::read(&obj)?, None)?;
    let inst = Arc::new(Instance::new(&prog, 4096, Engine::Jit)?);
    let t0 = Instant::now();
    let workers: Vec<_> = (0..THREADS)
        .map(|_| {
            let inst = inst.clone();
            std::thread::spawn(move || -> Result<(), String> {
                let mut data = vec![0u8; 4096];
                // u64 words: an 8-byte aligned scratch, as programs with atomics need.
                let mut words = vec![0u64; SCRATCH_SIZE / 8];
                let scratch: &mut [u8] = words_as_bytes(&mut words);
                let mut ctx = XrpContext::default();
                for _ in 0..calls {
                    inst.call(&mut ctx, &mut data, scratch).map_err(|e| e.to_string())?;
                }
                Ok(())
            })
        })
        .collect();
    for w in workers {
        w.join().map_err(|_| "a worker panicked")??;
    }
    let elapsed = t0.elapsed();
    let v = inst.map("counter").ok_or("no map `counter`")?.get(&0u32.to_le_bytes())?.ok_or("no entry 0")?;
    let count = u64::from_le_bytes(v.try_into().map_err(|_| "value is not 8 bytes")?);
    println!("counter = {count} (expected {}), {:.1} ns per call per thread", THREADS * calls, elapsed.as_nanos() as f64 / calls as f64);
    if count != THREADS * calls {
        return Err("lost increments".into());
    }
    Ok(())
}

fn words_as_bytes(v: &mut [u64]) -> &mut [u8] {
    let len = v.len() * 8;
    // SAFETY: `v` is `len` bytes of initialised memory, exclusively borrowed
    // for the returned lifetime; u8 has no invalid bit patterns.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<u8>(), len) }
}
