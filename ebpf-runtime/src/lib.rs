//! The eBPF runtime of the storage-function engine: it loads relocatable BPF
//! objects built by `clang -target bpf -O2`, proves them safe with a verifier
//! of its own (modelled on the Linux verifier, for one program type: the
//! XRP-style storage function), and runs them on an engine of its own: a
//! checked interpreter (the reference semantics of the eBPF ISA, RFC 9669)
//! or a JIT that lowers eBPF to Cranelift IR.
//!
//! Must not know about: NVMe, queue pairs, files or extents. The chaining
//! engine hands it a data block, a scratch buffer and a context; it hands back
//! the program's verdict.
//!
//! Entry points: [`loader::Program::load`] (ELF to relocated program),
//! [`vm::Instance::new`] (verify, allocate maps, compile) and
//! [`vm::Instance::run`] / [`vm::Instance::call`] (one call on a data block
//! and a scratch; an `Instance` is `Send + Sync`, shared by every thread).

pub mod asm;
pub mod btf;
pub mod conformance;
pub mod context;
pub mod elf;
pub mod gate;
pub mod helpers;
pub mod insn;
pub mod interp;
pub mod isa;
pub mod jit;
pub mod jit_mem;
pub mod loader;
pub mod map_spec;
pub mod maps;
mod progmem;
pub mod region;
pub mod verifier;
pub mod vm;

pub use context::XrpContext;
pub use loader::Program;
pub use vm::{Engine, Instance, Outcome};

/// An error and its causes on one line ("a: b: c"), for an error that
/// travels as text (a chain's status, a plugin's answer, a C caller's last
/// error). Every error type of the workspace says a cause either in its
/// message or as its source, never both, so nothing here is repeated.
pub fn with_causes(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}
