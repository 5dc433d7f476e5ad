//! The four engines, each driven by client threads through [`Client`]:
//! `pread` and `io_uring` (the kernel path, one system call or one
//! submission per hop) and `user-chain` / `bpf-chain` (the userspace driver
//! with the native or the BPF storage function).

pub mod chain;
pub mod kernel;
mod uring;

use crate::workload::{Answer, Gen, Op};
use anyhow::Result;
use std::time::{Duration, Instant};

/// The engines `run` compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EngineKind {
    /// Kernel: O_DIRECT pread, one system call per hop (the read() baseline).
    Pread,
    /// Kernel: io_uring, one submission per hop.
    IoUring,
    /// Userspace driver, the traversal as a Rust closure in the completion path.
    UserChain,
    /// Userspace driver, the verified BPF program in the completion path.
    BpfChain,
}

impl EngineKind {
    pub const ALL: [EngineKind; 4] = [EngineKind::Pread, EngineKind::IoUring, EngineKind::UserChain, EngineKind::BpfChain];
    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Pread => "pread",
            EngineKind::IoUring => "io_uring",
            EngineKind::UserChain => "user-chain",
            EngineKind::BpfChain => "bpf-chain",
        }
    }
    pub fn is_kernel(self) -> bool {
        matches!(self, EngineKind::Pread | EngineKind::IoUring)
    }
}

/// What a client thread measured.
#[derive(Debug, Default)]
pub struct Recorder {
    pub lat_ns: Vec<u64>,
    pub hops: u64,
    /// Every `sample_every`-th operation with its answer, checked afterwards.
    pub samples: Vec<(Op, Answer)>,
    pub sample_every: u64,
    seen: u64,
}

impl Recorder {
    pub fn new(sample_every: u64) -> Recorder {
        Recorder { sample_every: sample_every.max(1), ..Recorder::default() }
    }
    pub fn record(&mut self, op: Op, answer: Answer, hops: u32, lat: Duration) {
        self.lat_ns.push(u64::try_from(lat.as_nanos()).unwrap_or(u64::MAX));
        self.hops += u64::from(hops);
        if self.seen % self.sample_every == 0 {
            self.samples.push((op, answer));
        }
        self.seen += 1;
    }
}

/// One client thread's connection to an engine.
pub trait Client {
    /// Runs operations from `gen`, `qd` at a time where the engine can,
    /// until `until`, recording each.
    fn run_until(&mut self, gen: &mut Gen, qd: usize, until: Instant, rec: &mut Recorder) -> Result<()>;
}

/// Waits (spinning, for precision) until `start + model`: the device model
/// applied to a kernel read that completed sooner.
pub fn pad_to(start: Instant, model: Duration) {
    if model.is_zero() {
        return;
    }
    while start.elapsed() < model {
        std::hint::spin_loop();
    }
}
