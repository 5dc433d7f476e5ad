//! The workloads the engine is measured on, kept out of the engine: the
//! B+-tree database format, its builder and reference traversal
//! ([`btree`]), filter-reduce over a file of u64 ([`filter`]), the bundled
//! BPF storage functions ([`programs`], built from `bpf/*.c`) and their
//! native Rust twins (the user-chain baseline and the per-block logic of the
//! kernel engines).
//!
//! Must not know about: NVMe internals, how chains are scheduled; it uses
//! `chaining`'s public `Function` and `ChainRequest` only.

pub mod btree;
pub mod filter;
pub mod programs;
