//! The four engines, each driven by client threads through [`Client`]:
//! `pread` and `io_uring` (the kernel path, one system call or one
//! submission per hop) and `user-chain` / `bpf-chain` (the userspace driver
//! with the native or the BPF storage function).

pub mod chain;
pub mod kernel;
pub mod uring;

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

/// How the kernel engines wait out the modelled device time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Wait {
    /// Spin while kernel threads are at most the cores, sleep otherwise.
    Auto,
    /// Spin: a lower bound for the kernel (no interrupt, no wake-up charged).
    Spin,
    /// Sleep on a high-resolution timer (timer slack at its minimum), as a
    /// blocked reader does: the CPU goes to other threads; the wake-up is charged.
    Sleep,
}

impl Wait {
    pub fn name(self) -> &'static str {
        match self {
            Wait::Auto => "auto",
            Wait::Spin => "spin",
            Wait::Sleep => "sleep",
        }
    }

    /// The mode that runs for `threads` kernel threads.
    pub fn resolve(self, threads: u32) -> Wait {
        match self {
            Wait::Auto if threads as usize <= chain::cores() => Wait::Spin,
            Wait::Auto => Wait::Sleep,
            w => w,
        }
    }
}

/// Sets this thread's timer slack to 1 ns, so a sleep ends when asked
/// (the default slack adds 50 us).
pub fn set_timer_slack_min() {
    // SAFETY: PR_SET_TIMERSLACK takes a plain integer and only affects this thread.
    let r = unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0 as libc::c_ulong, 0 as libc::c_ulong, 0 as libc::c_ulong) };
    if r != 0 {
        eprintln!("warning: PR_SET_TIMERSLACK: {}", std::io::Error::last_os_error());
    }
}
