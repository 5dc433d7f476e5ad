//! The chaining engine: start a chain of dependent reads with one request,
//! run the storage function on every completion in the poll, and resubmit
//! what it asks for on the same queue pair, with no return to the
//! application in between (XRP's resubmission, in user space).
//!
//! [`ChainQueue`] is one queue pair's chains driven from one thread;
//! [`Engine`] runs one reactor thread per queue pair and takes chains from
//! any number of client threads through bounded queues. The native baseline
//! (user-chain) is the same traversal as a Rust closure, sharing everything
//! else, so the cost of BPF is measured alone.
//!
//! Must not know about: how a transport works inside (it uses `nvme`'s queue
//! pairs, `fs-extents`' translation and `ebpf-runtime`'s instances).

pub mod addr;
pub mod function;
pub mod queue;
pub mod reactor;
pub mod request;
pub mod status;
pub mod tenant;

pub use addr::{device_blocks, BlockError, DeviceBlocks};
pub use function::{Function, NativeFn};
pub use queue::{ChainError, ChainLimits, ChainQueue, Footprint, QueueConfig, QueueStats, Refused, BACKLOG_PER_TENANT_MAX, CHAINS_IN_FLIGHT_MAX};
pub use reactor::{Engine, EngineConfig, EngineError, EngineRefused, FunctionFactory};
pub use request::{ChainRequest, ProgId, FANOUT_MAX, HOPS_MAX_DEFAULT, SCRATCH_SIZE};
pub use status::{ChainOutcome, ChainStatus};
pub use tenant::TenantConfig;
