//! The eBPF runtime of the storage-function engine: it loads relocatable BPF
//! objects built by `clang -target bpf -O2`, proves them safe with a verifier
//! of its own (modelled on the Linux verifier, for one program type: the
//! XRP-style storage function), and runs them through `rbpf`.
//!
//! Must not know about: NVMe, queue pairs, files or extents. The chaining
//! engine hands it a data block, a scratch buffer and a context; it hands back
//! the program's verdict.

pub mod context;
pub mod insn;
pub mod map_spec;
pub mod verifier;
