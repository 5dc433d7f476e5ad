//! The C test programs of `bpf/tests`, built with clang: loaded, verified
//! and run on the interpreter and the JIT, which must agree.

// Test code: sizes and offsets are small; casts are checked by the assertions.
#![allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap, clippy::cast_sign_loss)]

mod common;

use ebpf_runtime::context::SCRATCH_SIZE;
use ebpf_runtime::{Engine, Instance, Outcome, Program};

const BLOCK: usize = 4096;

fn instance(name: &str, engine: Engine) -> Instance {
    let obj = common::read(&common::build_c(name));
    let prog = Program::load(&obj, None).unwrap_or_else(|e| panic!("{name}: {e}"));
    Instance::new(&prog, BLOCK as u32, engine).unwrap_or_else(|e| panic!("{name} on {engine:?}: {e}"))
}

fn engines() -> Vec<Engine> {
    vec![Engine::Interpreter, Engine::Jit]
}

/// A B+-tree node: keys 10, 20, ..., 2550 at 0; values key+1 at 2048.
fn node() -> Vec<u8> {
    let mut b = vec![0u8; BLOCK];
    for i in 0..255usize {
        let k = (i as u64 + 1) * 10;
        b[i * 8..i * 8 + 8].copy_from_slice(&k.to_le_bytes());
        b[2048 + i * 8..2048 + i * 8 + 8].copy_from_slice(&(k + 1).to_le_bytes());
    }
    b
}

fn run(inst: &mut Instance, data: &mut [u8], key: u64) -> (Outcome, Vec<u8>) {
    let mut scratch = vec![0u8; SCRATCH_SIZE];
    scratch[..8].copy_from_slice(&key.to_le_bytes());
    let out = inst.run(data, &mut scratch).unwrap();
    (out, scratch)
}

fn word(b: &[u8], i: usize) -> u64 {
    u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().unwrap())
}

#[test]
fn node_search_finds_keys_and_children_on_both_engines() {
    let mut data = node();
    for engine in engines() {
        let mut inst = instance("node_search", engine);
        // Exact hit: value returned, chain done.
        let (out, s) = run(&mut inst, &mut data, 1230);
        assert_eq!((out.ret, out.ctx.done, word(&s, 1), word(&s, 2)), (0, 1, 1231, 122), "{engine:?}");
        // Miss between keys: next read is the child at the first greater key.
        let (out, s) = run(&mut inst, &mut data, 1235);
        assert_eq!((out.ctx.done, out.ctx.next_addr[0], out.ctx.size[0], word(&s, 2)), (0, 1241, 4096, 123), "{engine:?}");
        // Beyond the last key.
        let (out, s) = run(&mut inst, &mut data, 99_999);
        assert_eq!((out.ctx.done, word(&s, 2)), (1, 255), "{engine:?}");
    }
}

#[test]
fn interpreter_and_jit_agree_on_every_key() {
    if !cfg!(target_arch = "x86_64") {
        return;
    }
    let mut data = node();
    let mut interp = instance("node_search", Engine::Interpreter);
    let mut jit = instance("node_search", Engine::Jit);
    for key in (0..2600).step_by(7) {
        let (a, sa) = run(&mut interp, &mut data, key);
        let (b, sb) = run(&mut jit, &mut data, key);
        assert_eq!((a.ret, a.ctx.done, a.ctx.next_addr, a.ctx.size), (b.ret, b.ctx.done, b.ctx.next_addr, b.ctx.size), "key {key}");
        assert_eq!(sa, sb, "scratch differs for key {key}");
    }
}

#[test]
fn map_user_updates_maps_through_helpers() {
    for engine in engines() {
        let mut inst = instance("map_user", engine);
        let mut data = vec![0u8; BLOCK];
        data[..8].copy_from_slice(&0xabcdu64.to_le_bytes());
        for n in 1..=3u64 {
            let (out, _) = run(&mut inst, &mut data, 0);
            assert_eq!((out.ret, out.ctx.done), (n, 1), "{engine:?}");
        }
        let counts = inst.map("counts").expect("map counts");
        assert_eq!(counts.get(&0u32.to_le_bytes()).unwrap(), Some(3u64.to_le_bytes().to_vec()));
        let t = counts.get(&1u32.to_le_bytes()).unwrap().expect("clock slot");
        assert_ne!(t, vec![0u8; 8], "ktime_get_ns result stored");
        let seen = inst.map("seen").expect("map seen");
        // Call n inserts n and deletes n-1: only the last remains.
        assert_eq!(seen.entries(), vec![(3u64.to_le_bytes().to_vec(), 0xabcdu64.to_le_bytes().to_vec())]);
        // Host-side writes are seen by the program.
        counts.update(&0u32.to_le_bytes(), &100u64.to_le_bytes(), ebpf_runtime::maps::UpdateFlag::Any).unwrap();
        let (out, _) = run(&mut inst, &mut data, 0);
        assert_eq!(out.ret, 101);
    }
}

#[test]
fn globals_and_local_calls() {
    for engine in engines() {
        let mut inst = instance("globals", engine);
        let mut data = vec![0u8; BLOCK];
        data[0] = 2; // table[2] = 30
        let (out, s) = run(&mut inst, &mut data, 0);
        assert_eq!((out.ret, word(&s, 0)), (130, 1), "{engine:?}");
        data[0] = 7; // 7 & 3 = 3: table[3] = 40
        let (out, s) = run(&mut inst, &mut data, 0);
        assert_eq!((out.ret, word(&s, 0)), (170, 2), "{engine:?}");
        let data_map = inst.map(".data").expect(".data map");
        assert_eq!(data_map.get(&0u32.to_le_bytes()).unwrap(), Some(170u64.to_le_bytes().to_vec()));
        assert!(inst.map(".bss").is_some());
        assert!(inst.maps().iter().any(|m| m.spec().read_only && m.spec().name.starts_with(".rodata")));
    }
}

#[test]
fn second_section_by_name() {
    let obj = common::read(&common::build_c("globals"));
    assert_eq!(ebpf_runtime::loader::program_sections(&obj).unwrap(), vec!["xrp".to_string(), "xrp/second".to_string()]);
    let prog = Program::load(&obj, Some("xrp/second")).unwrap();
    assert_eq!(prog.section, "xrp/second");
    assert_eq!(prog.license.as_deref(), Some("Dual MIT/GPL"));
    for engine in engines() {
        let mut inst = Instance::new(&prog, BLOCK as u32, engine).unwrap();
        let (out, _) = run(&mut inst, &mut vec![0u8; BLOCK], 0);
        assert_eq!(out.ret, 30, "{engine:?}");
    }
    let err = Program::load(&obj, Some("nope")).unwrap_err().to_string();
    assert!(err.contains("xrp, xrp/second"), "{err}");
}

/// Local calls are linked (from the program section and inside .text),
/// verified and run on both engines.
#[test]
fn local_calls_are_linked_into_text() {
    let obj = common::read(&common::build_c("calls"));
    let prog = Program::load(&obj, None).unwrap();
    let calls: Vec<(usize, i32)> = prog.insns.iter().enumerate().filter(|(_, i)| i.opc == 0x85 && i.src == 1).map(|(pc, i)| (pc, i.imm)).collect();
    assert_eq!(calls.len(), 2, "one call from xrp, one inside .text: {calls:?}");
    for (pc, imm) in &calls {
        let target = (*pc as i64 + 1 + i64::from(*imm)) as usize;
        assert!(target < prog.insns.len() && target > *pc, "call at {pc} targets {target}");
    }
    for engine in engines() {
        let inst = Instance::new(&prog, BLOCK as u32, engine).unwrap();
        let mut ctx = ebpf_runtime::XrpContext::default();
        ctx.next_addr[0] = 7;
        let r = inst.call(&mut ctx, &mut vec![0u8; BLOCK], &mut vec![0u8; SCRATCH_SIZE]).unwrap();
        assert_eq!(r, 18, "{engine:?}");
    }
}

#[test]
fn local_calls_run_unverified_too() {
    let obj = common::read(&common::build_c("calls"));
    let prog = Program::load(&obj, None).unwrap();
    let mut ctx = ebpf_runtime::XrpContext::default();
    ctx.next_addr[0] = 7;
    for engine in engines() {
        let mut mem = ctx.to_bytes().to_vec();
        // SAFETY: our own test program, reading only the context it is given.
        let r = unsafe { ebpf_runtime::vm::run_unverified(&prog.insns, &mut mem, engine) }.unwrap();
        assert_eq!(r, 18, "{engine:?}");
    }
}

#[test]
fn empty_program_and_run_argument_checks() {
    for engine in engines() {
        let mut inst = instance("empty", engine);
        let (out, _) = run(&mut inst, &mut vec![0u8; BLOCK], 0);
        assert_eq!((out.ret, out.ctx.done), (0, 0));
        let err = inst.run(&mut [0u8; 16], &mut [0u8; SCRATCH_SIZE]).unwrap_err();
        assert!(err.to_string().contains("verified for 4096 bytes"), "{err}");
        let err = inst.run(&mut vec![0u8; BLOCK], &mut [0u8; 10]).unwrap_err();
        assert!(err.to_string().contains("exactly 4096"), "{err}");
    }
}

/// W^X: the JIT's code is read-execute, and no mapping of the process is
/// writable and executable at once.
#[test]
fn jit_memory_is_never_writable_and_executable() {
    if !cfg!(target_arch = "x86_64") {
        return;
    }
    let inst = instance("node_search", Engine::Jit);
    assert!(inst.jit_sealed());
    let maps = std::fs::read_to_string("/proc/self/maps").expect("/proc/self/maps");
    let wx: Vec<&str> = maps.lines().filter(|l| l.split_whitespace().nth(1).is_some_and(|p| p.contains('w') && p.contains('x'))).collect();
    assert!(wx.is_empty(), "writable+executable mappings: {wx:?}");
    assert!(!instance("empty", Engine::Interpreter).jit_sealed());
}

/// libbpf-style maps declared through BTF in SEC(".maps").
#[test]
fn btf_defined_maps() {
    let obj = common::read(&common::build_c_with("btf_maps", &["-g"]));
    let prog = Program::load(&obj, None).unwrap();
    let specs = prog.map_specs();
    assert_eq!(specs.len(), 2);
    assert_eq!((specs[0].name.as_str(), specs[0].kind, specs[0].key_size, specs[0].value_size, specs[0].max_entries), ("calls", ebpf_runtime::map_spec::MapKind::Array, 4, 8, 2));
    assert_eq!((specs[1].name.as_str(), specs[1].kind, specs[1].key_size, specs[1].value_size, specs[1].max_entries), ("last", ebpf_runtime::map_spec::MapKind::Hash, 8, 4, 8));
    for engine in engines() {
        let mut inst = Instance::new(&prog, BLOCK as u32, engine).unwrap();
        for n in 1..=2u64 {
            let (out, _) = run(&mut inst, &mut vec![0u8; BLOCK], 0);
            assert_eq!(out.ret, n, "{engine:?}");
        }
        assert_eq!(inst.map("last").unwrap().entries().len(), 2);
    }
    // Without BTF (-g0) the loader says how to fix it.
    let obj = common::read(&common::build_c_with("btf_maps", &["-g0"]));
    let e = Program::load(&obj, None).unwrap_err().to_string();
    assert!(e.contains("clang -g"), "{e}");
}

fn load(name: &str) -> Program {
    let obj = common::read(&common::build_c(name));
    Program::load(&obj, None).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn u64_of(v: Option<Vec<u8>>) -> u64 {
    u64::from_le_bytes(v.expect("present").try_into().expect("8 bytes"))
}

/// One instance, two threads, `__sync_fetch_and_add` on one array-map value:
/// every increment counts (the map is shared and the atomics are real),
/// while the host reads the map concurrently. Both engines.
#[test]
fn atomic_counter_is_exact_across_threads() {
    let prog = load("counter");
    for (engine, per_thread) in [(Engine::Jit, 200_000u64), (Engine::Interpreter, 20_000)] {
        let inst = std::sync::Arc::new(Instance::new(&prog, BLOCK as u32, engine).unwrap());
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let (inst, stop) = (inst.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut last = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let now = u64_of(inst.map("counter").unwrap().get(&0u32.to_le_bytes()).unwrap());
                    assert!(now >= last, "the counter went backwards: {last} then {now}");
                    last = now;
                }
            })
        };
        let workers: Vec<_> = (0..2)
            .map(|_| {
                let inst = inst.clone();
                std::thread::spawn(move || {
                    let mut data = vec![0u8; BLOCK];
                    let mut scratch = vec![0u64; SCRATCH_SIZE / 8];
                    let mut ctx = ebpf_runtime::XrpContext::default();
                    let bytes: &mut [u8] = bytemuck_u64(&mut scratch);
                    for _ in 0..per_thread {
                        assert_eq!(inst.call(&mut ctx, &mut data, bytes).unwrap(), 0);
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        reader.join().unwrap();
        let m = inst.map("counter").unwrap();
        assert_eq!(u64_of(m.get(&0u32.to_le_bytes()).unwrap()), 2 * per_thread, "{engine:?}");
        assert_eq!(u64_of(m.get(&1u32.to_le_bytes()).unwrap()), 4 * per_thread, "{engine:?}");
    }
}

/// `&mut [u64]` as bytes: an 8-byte aligned scratch, as atomics need.
fn bytemuck_u64(v: &mut [u64]) -> &mut [u8] {
    let len = v.len() * 8;
    // SAFETY: `v` is `len` bytes of initialised memory, exclusively borrowed
    // for the returned lifetime; u8 has no invalid bit patterns.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<u8>(), len) }
}

/// `update(m, &k, lookup(m, &k), flags)`: the value aliases its own slot.
#[test]
fn map_update_with_a_value_aliasing_its_slot() {
    let prog = load("alias");
    for engine in engines() {
        let inst = Instance::new(&prog, BLOCK as u32, engine).unwrap();
        let out = inst.run(&mut vec![0u8; BLOCK], &mut vec![0u8; SCRATCH_SIZE]).unwrap();
        assert_eq!(out.ret as u32, (0x1122_3344_5566_7788u64 + 5) as u32, "{engine:?}");
        assert_eq!(u64_of(inst.map("h").unwrap().get(&7u64.to_le_bytes()).unwrap()), 0x1122_3344_5566_7788, "{engine:?}");
    }
}

/// A `__noinline` function: a bpf-to-bpf call whose callee writes its own
/// stack at the same offsets the caller uses; the caller's slot survives.
/// Verified, then run on both engines.
#[test]
fn noinline_callee_has_its_own_frame() {
    let prog = load("noinline");
    let mix = |a: i64, b: i64| a.wrapping_mul(3) + b - (a ^ b) + a.wrapping_add(b);
    for engine in engines() {
        let inst = Instance::new(&prog, BLOCK as u32, engine).unwrap();
        let mut data = vec![0u8; BLOCK];
        for (i, v) in [-1234i64, 99, 0x5555].iter().enumerate() {
            data[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
        }
        let mut scratch = vec![0u8; SCRATCH_SIZE];
        let out = inst.run(&mut data, &mut scratch).unwrap();
        assert_eq!(word(&scratch, 0) as i64, mix(-1234, 99), "{engine:?}");
        assert_eq!(word(&scratch, 1), 0x5555, "{engine:?}: the caller's stack slot was overwritten by the callee");
        assert_eq!(out.ret as i32, mix(-1234, 99) as i32);
    }
}

/// Issue 15: at entry every register but r1 (context) and r10 (frame
/// pointer) is 0 on both engines, so an argument register a program never
/// set reads 0 (here: r0 | r2 | ... | r9 of an unverified program).
#[test]
fn registers_start_at_zero_on_both_engines() {
    let prog = ebpf_runtime::asm::assemble("or %r0, %r2\nor %r0, %r3\nor %r0, %r4\nor %r0, %r5\nor %r0, %r6\nor %r0, %r7\nor %r0, %r8\nor %r0, %r9\nexit").unwrap();
    for engine in engines() {
        let mut mem = [0xffu8; 8];
        // SAFETY: the program touches no memory.
        let r = unsafe { ebpf_runtime::vm::run_unverified(&prog, &mut mem, engine) }.unwrap();
        assert_eq!(r, 0, "{engine:?}");
    }
    // A callee's r0 and r6-r9 start at 0 too (r1-r5 are its arguments).
    let prog = ebpf_runtime::asm::assemble("mov %r6, -1\nmov %r7, -1\nmov %r0, -1\ncall local f\nexit\nf:\nor %r0, %r6\nor %r0, %r7\nor %r0, %r8\nor %r0, %r9\nexit").unwrap();
    for engine in engines() {
        // SAFETY: the program touches no memory.
        let r = unsafe { ebpf_runtime::vm::run_unverified(&prog, &mut [0u8; 8], engine) }.unwrap();
        assert_eq!(r, 0, "{engine:?}");
    }
}

/// Signed division written in C (`bpf/tests/sdiv.c`, clang 19 with
/// `-mcpu=v4`: `sdiv` in 64 and 32 bits): verified, run on both engines,
/// same answers as Rust's truncating division.
#[test]
fn signed_division_in_c_on_both_engines() {
    let root = common::repo_root();
    let out = std::env::temp_dir().join(format!("sdiv-v4-{}.o", std::process::id()));
    let status = std::process::Command::new("clang-19")
        .args(["-target", "bpf", "-O2", "-mcpu=v4", "-g0", "-I"])
        .arg(root.join("bpf/include"))
        .arg("-c")
        .arg(root.join("bpf/tests/sdiv.c"))
        .arg("-o")
        .arg(&out)
        .status()
        .unwrap_or_else(|e| panic!("cannot run clang-19 ({e}): run scripts/install-deps.sh"));
    assert!(status.success());
    let prog = Program::load(&common::read(&out), None).unwrap();
    assert!(prog.insns.iter().any(|i| i.opc & 0xf0 == 0x30 && i.off == 1), "clang emitted no sdiv");
    for (a, b, c, e) in [(-7i64, 2i64, -100i32, 7i32), (7, -2, 100, -7), (i64::MIN + 1, 3, i32::MIN + 1, 2), (5, 0, 5, 0)] {
        let want = [if b == 0 { 0 } else { a / b }, if b == 0 { 0 } else { a % b }, if e == 0 { 0 } else { i64::from(c / e) }, if e == 0 { 0 } else { i64::from(c % e) }];
        for engine in engines() {
            let inst = Instance::new(&prog, BLOCK as u32, engine).unwrap();
            let mut data = vec![0u8; BLOCK];
            for (k, v) in [a, b, i64::from(c), i64::from(e)].iter().enumerate() {
                data[k * 8..k * 8 + 8].copy_from_slice(&v.to_le_bytes());
            }
            let mut scratch = vec![0u8; SCRATCH_SIZE];
            let out = inst.run(&mut data, &mut scratch).unwrap();
            let got: Vec<i64> = (0..4).map(|k| word(&scratch, k) as i64).collect();
            assert_eq!(got, want, "{engine:?} on {a} {b} {c} {e}");
            assert_eq!(out.ret as u32 as i32, want.iter().sum::<i64>() as i32, "{engine:?}");
        }
    }
}
