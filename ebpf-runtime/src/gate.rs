//! The one place the runtime calls the verifier: every program passes here
//! before it is made executable (`vm.rs`), and the CLI's `verify` reports
//! what it returns. Kept small so the verifier's interface is used once.

use crate::loader::Program;

/// What the verifier reports about an accepted program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VerifyReport {
    /// Instruction slots of the program.
    pub insns: usize,
    /// Instructions the abstract interpretation processed.
    pub insns_processed: usize,
    /// Verifier states kept.
    pub states: usize,
    /// Most states kept at once.
    pub peak_states: usize,
}

/// A rejection, with the verifier's message (Linux style, naming the insn).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GateError {
    #[error("{0}")]
    Rejected(String),
    #[error("the verifier is not available in this build; programs cannot be verified or run")]
    Unavailable,
}

/// Verifies `program` for a data block of `data_size` bytes and the 4 KiB scratch.
pub fn verify(program: &Program, data_size: u32) -> Result<VerifyReport, GateError> {
    let _ = (program, data_size);
    Err(GateError::Unavailable)
}
