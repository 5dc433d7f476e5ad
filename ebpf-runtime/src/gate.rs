//! The one place the runtime calls the verifier: every program passes here
//! before it is made executable (`vm.rs`), and the CLI's `verify` reports
//! what it returns. Kept small so the verifier's interface is used once.

use crate::context::SCRATCH_SIZE;
use crate::loader::Program;
use crate::verifier::{self, Env, Limits};

/// What the verifier reports about an accepted program.
pub type VerifyReport = verifier::Stats;

/// A rejection, with the verifier's message (Linux style, naming the insn).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct GateError(#[from] pub verifier::VerifyError);

/// Verifies `program` for a data block of `data_size` bytes and the 4 KiB
/// scratch, with the verifier's default limits.
pub fn verify(program: &Program, data_size: u32) -> Result<VerifyReport, GateError> {
    let maps = program.map_specs();
    #[allow(clippy::cast_possible_truncation)] // 4096, checked below
    const SCRATCH_BYTES: u32 = SCRATCH_SIZE as u32;
    const _: () = assert!(SCRATCH_BYTES as usize == SCRATCH_SIZE);
    let env = Env { maps: &maps, data_size, scratch_size: SCRATCH_BYTES, limits: Limits::default() };
    Ok(verifier::verify(&program.insns, &env)?)
}
