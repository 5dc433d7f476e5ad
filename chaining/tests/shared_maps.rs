//! One compiled program and its maps shared by every reactor thread: a
//! counter that each chain bumps with `__sync_fetch_and_add` counts every
//! chain, whichever reactor ran it, and the host reads it from its own
//! handle on the instance.

mod common;

use chaining::{ChainRequest, ChainStatus, Engine, EngineConfig, Function, ProgId};
use common::*;
use ebpf_runtime::vm::Engine as VmEngine;
use fs_extents::FileOffset;
use std::path::PathBuf;
use std::sync::Arc;

/// `bpf/tests/counter.c`, built with clang.
fn counter_object() -> Vec<u8> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = std::env::temp_dir().join(format!("chaining-counter-{}.o", std::process::id()));
    let ok = std::process::Command::new("clang")
        .args(["-target", "bpf", "-O2", "-mcpu=v3", "-g0", "-I"])
        .arg(root.join("bpf/include"))
        .arg("-c")
        .arg(root.join("bpf/tests/counter.c"))
        .arg("-o")
        .arg(&out)
        .status()
        .expect("clang (run scripts/install-deps.sh)");
    assert!(ok.success(), "clang failed on bpf/tests/counter.c");
    std::fs::read(&out).unwrap()
}

#[test]
fn maps_are_shared_across_reactors() {
    let f = fixture("shared-maps", 2_000, 512, 31, 1);
    for engine in [VmEngine::Jit, VmEngine::Interpreter] {
        let (factory, inst) = Function::bpf_factory(&counter_object(), None, 512, engine).unwrap();
        let cfg = EngineConfig { reactors: 2, channel_capacity: 8, ..EngineConfig::default() };
        let chains = Arc::new(Engine::start(f.ctrl.clone(), f.registry.clone(), vec![factory], cfg).unwrap());
        let (threads, per_thread) = (6u64, 40u64);
        let clients: Vec<_> = (0..threads)
            .map(|_| {
                let (chains, db, root) = (chains.clone(), f.db, f.db_sb.root);
                std::thread::spawn(move || {
                    for _ in 0..per_thread {
                        let o = chains.run(ChainRequest::new(T1, db, FileOffset(root), 512, ProgId(0))).unwrap();
                        assert_eq!(o.status, ChainStatus::Done);
                    }
                })
            })
            .collect();
        for c in clients {
            c.join().unwrap();
        }
        // Per-reactor copies would leave the host's instance at 0.
        let v = inst.map("counter").unwrap().get(&0u32.to_le_bytes()).unwrap().unwrap();
        assert_eq!(u64::from_le_bytes(v.try_into().unwrap()), threads * per_thread, "{engine:?}");
    }
}
