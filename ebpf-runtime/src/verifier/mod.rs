//! The load-time verifier: proves a program safe before it runs, modelled on
//! the Linux verifier for one program type, the XRP storage function.
//!
//! Two passes. [`structure`] checks opcodes, fields, jump targets and
//! reachability. Then an abstract interpreter walks every path depth-first
//! ([`engine`]), tracking for each register whether it is uninitialised, a
//! scalar (ranges and known bits, [`scalar`], [`tnum`]) or a pointer into
//! one region ([`regs`]), plus the stack ([`stack`]). States are stored at
//! jump targets and a path is cut when a stored, fully explored state
//! covers it ([`state`]); a loop ends when its states stop being covered by
//! their ancestors, i.e. when it terminates within the processed-instruction
//! cap. See `docs/verifier.md` for what is tracked and what is refused.

mod alu;
mod branch;
mod budget;
mod calls;
mod ctx;
mod engine;
mod error;
mod helpers;
mod liveness;
mod mem;
mod regs;
mod scalar;
mod stack;
mod state;
mod structure;
mod tnum;

pub use budget::TIME_CHECK_INTERVAL;
pub use error::VerifyError;

use crate::insn::Insn;
use crate::map_spec::MapSpec;
use std::time::Duration;

/// Programs longer than this many slots are refused.
pub const PROG_LEN_MAX: usize = 4096;
/// Instructions the abstract interpreter may process over all paths.
pub const INSNS_PROCESSED_MAX: u64 = 1_000_000;
/// States stored for pruning over the whole run (each is about 1 KiB);
/// beyond it no more are stored (the other caps still bound the walk).
pub const STATES_MAX: u64 = 32_768;
/// States stored at one instruction; one more refuses the program.
pub const STATES_PER_INSN_MAX: usize = 1024;
/// Paths waiting on the pending stack (one per unexplored side of a
/// branch); one more refuses the program. Linux's
/// `BPF_COMPLEXITY_LIMIT_JMP_SEQ` is the same 8192.
pub const PENDING_MAX: usize = 8192;
/// Bytes of verifier state held at one time (see `budget.rs` for what is
/// counted); past it the program is refused.
pub const MEM_MAX_BYTES: u64 = 256 << 20;
/// Wall time one verification may take.
pub const TIME_MAX: Duration = Duration::from_secs(1);

/// The verifier's budgets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest program accepted, in instruction slots.
    pub prog_len_max: usize,
    /// Cap on instructions processed over all paths (loops count per iteration).
    pub insns_processed_max: u64,
    /// Cap on states stored for pruning (beyond it, no more are stored).
    pub states_max: u64,
    /// Cap on states stored at one instruction (refuses past it).
    pub states_per_insn_max: usize,
    /// Cap on paths waiting to be explored (refuses past it).
    pub pending_max: usize,
    /// Cap on bytes of verifier state held at one time (refuses past it).
    pub mem_max_bytes: u64,
    /// Cap on wall time (refuses past it; checked every
    /// [`budget::TIME_CHECK_INTERVAL`] units of work).
    pub time_max: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            prog_len_max: PROG_LEN_MAX,
            insns_processed_max: INSNS_PROCESSED_MAX,
            states_max: STATES_MAX,
            states_per_insn_max: STATES_PER_INSN_MAX,
            pending_max: PENDING_MAX,
            mem_max_bytes: MEM_MAX_BYTES,
            time_max: TIME_MAX,
        }
    }
}

/// What the program runs against.
#[derive(Debug, Clone)]
pub struct Env<'a> {
    /// The object's maps; index = the map index in `lddw` with
    /// `PSEUDO_MAP_IDX` / `PSEUDO_MAP_IDX_VALUE`.
    pub maps: &'a [MapSpec],
    /// Bytes readable and writable at `ctx->data` (the block).
    pub data_size: u32,
    /// Bytes readable and writable at `ctx->scratch`.
    pub scratch_size: u32,
    pub limits: Limits,
}

/// What verification cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Instruction slots in the program.
    pub insns: usize,
    /// Instructions processed over all paths.
    pub insns_processed: u64,
    /// States stored for pruning.
    pub states: u64,
    /// Most states stored at one time.
    pub peak_states: u64,
    /// Most paths waiting on the pending stack at one time.
    pub peak_pending: u64,
    /// Most bytes of verifier state held at one time (as counted against
    /// [`Limits::mem_max_bytes`]).
    pub peak_mem_bytes: u64,
}

/// Verifies `prog` (already relocated by the loader) against `env`.
pub fn verify(prog: &[Insn], env: &Env) -> Result<Stats, VerifyError> {
    let cfg = structure::check(prog, env)?;
    engine::Engine::new(prog, env, cfg).run()
}
