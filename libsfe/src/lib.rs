//! libsfe: XRP's interface as a C library over the userspace engine.
//!
//! An application opens an engine on the device its files live on, loads a
//! storage function from an ELF object (the verifier's message when it is
//! rejected), and calls `sfe_read_xrp(engine, fd, buf, count, offset, prog,
//! scratch)` with the semantics of XRP's `read_xrp` system call: a chain of
//! reads starting at `offset` of the open file `fd` (translated through the
//! file's extents), the program run on every block, until it sets `done`;
//! scratch in and out, the last block in `buf`. Every calling thread gets a
//! queue pair of its own and runs its chains to completion on it. The
//! asynchronous form (`sfe_submit_xrp`, `sfe_poll`) keeps several chains in
//! flight on the calling thread.
//!
//! The C header is `include/sfe.h` (made by cbindgen from [`ffi`]; a test
//! checks it is current). The preload shim that runs XRP applications
//! unchanged is the `libsfe-xrp` crate, built on this one.
//!
//! Must not know about: the `sfbench` CLI.

pub mod engine;
pub mod error;
pub mod ffi;
mod files;

pub use engine::{Engine, Options};
pub use error::{Error, SfeStatus};
