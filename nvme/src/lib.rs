//! User-space NVMe driver with the API shape of SPDK's: attach a controller,
//! find its namespaces, create I/O queue pairs, submit reads and writes that
//! carry a cookie and own their buffer, and reap completions with
//! `process_completions(max)`, which never blocks.
//!
//! Layout: `spec` (the spec's structures), `ring` and `prp` (pure queue
//! arithmetic), `dma` (DMA memory; the only `unsafe` besides transports),
//! `queue` (queue pairs, shared by every transport), `controller` (bring-up
//! state machine), `transport` (the trait) and `emu` (the in-process
//! emulated controller, the embedded default device).
//!
//! Must not know about: eBPF, files, chains.

pub mod addr;
mod clock;
pub mod controller;
pub mod dma;
pub mod emu;
pub mod error;
pub mod pci;
pub mod prp;
pub mod queue;
pub mod ring;
pub mod setup;
pub mod spec;
pub mod transport;

pub use addr::{Iova, Lba};
pub use controller::{Controller, IoQueuePair, State};
pub use dma::{DmaBuf, DmaPool, PoolOptions};
pub use emu::{Backing, CompletionFault, EmuConfig, EmulatedController, Latency};
pub use error::{CtrlError, QueueError, QueueFailure, Rejected};
pub use queue::{Completion, Namespace, QueuePair, Submitter, COMMAND_TIMEOUT_DEFAULT};
pub use spec::Status;
pub use transport::Transport;

// Spec structures are little-endian and written by plain copies.
const _: () = assert!(cfg!(target_endian = "little"), "the driver supports little-endian hosts only");
