//! The eBPF runtime of the storage-function engine: it loads relocatable BPF
//! objects built by `clang -target bpf -O2`, proves them safe with a verifier
//! of its own (modelled on the Linux verifier, for one program type: the
//! XRP-style storage function), and runs them through `rbpf`.
//!
//! Must not know about: NVMe, queue pairs, files or extents. The chaining
//! engine hands it a data block, a scratch buffer and a context; it hands back
//! the program's verdict.
//!
//! Entry points: [`loader::Program::load`] (ELF to relocated program),
//! [`vm::Instance::new`] (verify, allocate maps, JIT) and
//! [`vm::Instance::run`] (one call on a data block and a scratch).

pub mod asm;
pub mod btf;
pub mod conformance;
pub mod context;
pub mod elf;
pub mod gate;
pub mod helpers;
pub mod insn;
pub mod isa;
#[cfg(target_arch = "x86_64")]
mod jit_abi;
pub mod jit_mem;
pub mod loader;
pub mod lower;
pub mod map_spec;
pub mod maps;
pub mod region;
pub mod verifier;
pub mod vm;

pub use context::XrpContext;
pub use loader::Program;
pub use vm::{Engine, Instance, Outcome};
