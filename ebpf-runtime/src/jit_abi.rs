//! Helper entry points for rbpf's JIT, which calls helpers with the stack
//! misaligned: its prologue leaves `rsp` 16-byte aligned before its own
//! internal `call`, so at a helper's entry `rsp` is aligned to 16 instead of
//! 16 + 8 as the System V ABI requires. Any helper that uses aligned SSE
//! spills (formatting, hashing) then faults. Each trampoline here realigns
//! the stack, calls the real helper (C ABI) and restores it.
//!
//! x86-64 only (the JIT is); the interpreter calls the plain helpers.

#![cfg(target_arch = "x86_64")]

use crate::helpers;

macro_rules! trampolines {
    ($($tramp:ident => $c_fn:ident => $helper:path),* $(,)?) => {
        $(
            extern "C" fn $c_fn(a: u64, b: u64, c: u64, d: u64, e: u64) -> u64 {
                $helper(a, b, c, d, e)
            }
            std::arch::global_asm!(
                concat!(".globl ", stringify!($tramp)),
                concat!(stringify!($tramp), ":"),
                "push rbp",
                "mov rbp, rsp",
                "and rsp, -16",
                "call {f}",
                "mov rsp, rbp",
                "pop rbp",
                "ret",
                f = sym $c_fn,
            );
        )*
        extern "C" {
            $(fn $tramp(a: u64, b: u64, c: u64, d: u64, e: u64) -> u64;)*
        }
    };
}

trampolines! {
    xrp_jit_map_lookup_elem => c_map_lookup_elem => helpers::map_lookup_elem,
    xrp_jit_map_update_elem => c_map_update_elem => helpers::map_update_elem,
    xrp_jit_map_delete_elem => c_map_delete_elem => helpers::map_delete_elem,
    xrp_jit_ktime_get_ns => c_ktime_get_ns => helpers::ktime_get_ns,
    xrp_jit_trace_printk => c_trace_printk => helpers::trace_printk,
}

type CHelper = unsafe extern "C" fn(u64, u64, u64, u64, u64) -> u64;

fn as_rbpf(f: CHelper) -> rbpf::Helper {
    // SAFETY: the returned pointer is registered only with rbpf's JIT, which
    // calls helpers with the System V C convention (args in rdi, rsi, rdx,
    // rcx, r8; result in rax) — the convention the trampoline implements.
    // Rust code never calls it through the `fn` type.
    unsafe { std::mem::transmute::<CHelper, rbpf::Helper>(f) }
}

/// The helper table for rbpf's JIT: (Linux id, trampoline).
pub fn table() -> [(i32, rbpf::Helper); 5] {
    use crate::insn::helper_id as id;
    [
        (id::MAP_LOOKUP_ELEM, as_rbpf(xrp_jit_map_lookup_elem)),
        (id::MAP_UPDATE_ELEM, as_rbpf(xrp_jit_map_update_elem)),
        (id::MAP_DELETE_ELEM, as_rbpf(xrp_jit_map_delete_elem)),
        (id::KTIME_GET_NS, as_rbpf(xrp_jit_ktime_get_ns)),
        (id::TRACE_PRINTK, as_rbpf(xrp_jit_trace_printk)),
    ]
}
