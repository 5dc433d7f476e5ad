//! Why the verifier refused a program. Every variant names the instruction
//! (`insn`, the slot index) and prints in the style of the Linux verifier's
//! log, with the fix where there is an obvious one.

use thiserror::Error;

/// A rejection. `insn` is the index of the offending instruction slot.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum VerifyError {
    // ---- structure -------------------------------------------------------
    #[error("program is empty: a program needs at least an exit (insn {insn})")]
    EmptyProgram { insn: usize },
    #[error("program of {len} insns exceeds the limit of {max} (insn {insn})")]
    TooLong { insn: usize, len: usize, max: usize },
    #[error("unknown opcode {opc:#04x} (insn {insn})")]
    UnknownOpcode { insn: usize, opc: u8 },
    #[error("{what} is not supported (insn {insn})")]
    Unsupported { insn: usize, what: &'static str },
    #[error("bpf-to-bpf call: {what} (insn {insn})")]
    Call { insn: usize, what: &'static str },
    #[error("the call chain is deeper than {max} frames (insn {insn})")]
    CallDepth { insn: usize, max: usize },
    #[error("combined stack of the call chain is {bytes} bytes, more than {max} (insn {insn})")]
    CombinedStack { insn: usize, bytes: i64, max: i64 },
    #[error("reserved field {field} must be zero (insn {insn})")]
    ReservedField { insn: usize, field: &'static str },
    #[error("invalid register r{reg}: registers are r0-r10 (insn {insn})")]
    InvalidRegister { insn: usize, reg: u8 },
    #[error("frame pointer is read only: r10 cannot be written (insn {insn})")]
    FramePointerWrite { insn: usize },
    #[error("jump out of range from insn {insn} to {target}")]
    JumpOutOfRange { insn: usize, target: i64 },
    #[error("jump into the middle of ldimm64 from insn {insn} to {target}")]
    JumpIntoLddw { insn: usize, target: usize },
    #[error("invalid ldimm64: the second slot is missing or malformed (insn {insn})")]
    BadLddw { insn: usize },
    #[error("map index {index} out of range: the object has {count} maps (insn {insn})")]
    InvalidMapIndex { insn: usize, index: i32, count: usize },
    #[error("unrelocated map reference src={src}: the loader must rewrite it to a map index (insn {insn})")]
    UnrelocatedMap { insn: usize, src: u8 },
    #[error("unknown ldimm64 source {src} (insn {insn})")]
    BadLddwSource { insn: usize, src: u8 },
    #[error("global data offset {offset} outside the {size}-byte value of map {map} (insn {insn})")]
    GlobalOffset { insn: usize, map: usize, offset: i64, size: u32 },
    #[error("unknown helper {id} (insn {insn})")]
    UnknownHelper { insn: usize, id: i32 },
    #[error("invalid byte swap width {imm}: must be 16, 32 or 64 (insn {insn})")]
    BadEndianWidth { insn: usize, imm: i32 },
    #[error("invalid shift {amount} for a {width}-bit operation (insn {insn})")]
    InvalidShift { insn: usize, amount: i64, width: u32 },
    #[error("unreachable insn {insn}")]
    Unreachable { insn: usize },
    #[error("program falls off its end after insn {insn}: end with exit or a jump")]
    FallsOffEnd { insn: usize },

    // ---- registers -------------------------------------------------------
    #[error("R{reg} !read_ok (insn {insn})")]
    UninitRegister { insn: usize, reg: u8 },
    #[error("R0 !read_ok at exit (insn {insn})")]
    UninitR0AtExit { insn: usize },
    #[error("pointer leak: R0 holds a {kind} pointer at exit (insn {insn})")]
    PointerLeakReturn { insn: usize, kind: &'static str },
    #[error("pointer leak: storing a pointer to {region} (insn {insn})")]
    PointerLeakStore { insn: usize, region: &'static str },
    #[error("pointer leak: R{reg} passes a {kind} pointer to helper {helper} (insn {insn})")]
    PointerLeakHelper { insn: usize, reg: u8, kind: &'static str, helper: &'static str },
    #[error("pointer leak: helper {helper} would read a spilled pointer from stack off={off} (insn {insn})")]
    PointerLeakStackArg { insn: usize, helper: &'static str, off: i64 },
    #[error("R{reg} pointer arithmetic with {op} operator prohibited (insn {insn})")]
    PointerArith { insn: usize, reg: u8, op: &'static str },
    #[error("R{reg} pointer arithmetic on {kind} prohibited, null-check it first (insn {insn})")]
    PointerArithOnNull { insn: usize, reg: u8, kind: &'static str },
    #[error("R{reg} pointer arithmetic with an unbounded scalar: bounds-check the offset first (insn {insn})")]
    PointerArithUnbounded { insn: usize, reg: u8 },
    #[error("R{reg} 32-bit operation on a {kind} pointer prohibited (insn {insn})")]
    PointerAlu32 { insn: usize, reg: u8, kind: &'static str },
    #[error("R{reg} pointer comparison prohibited: only map_value_or_null against 0 (insn {insn})")]
    PointerCompare { insn: usize, reg: u8 },

    // ---- memory ----------------------------------------------------------
    #[error("R{reg} atomic operation on {region} prohibited: {why} (insn {insn})")]
    AtomicAccess { insn: usize, reg: u8, region: &'static str, why: &'static str },
    #[error("R{reg} invalid mem access '{kind}' (insn {insn})")]
    InvalidMemAccess { insn: usize, reg: u8, kind: &'static str },
    #[error("invalid access to {region} off={off} size={size} (insn {insn})")]
    OutOfBounds { insn: usize, region: &'static str, off: i64, size: u32 },
    #[error("R{reg} unbounded memory access to {region}: bounds-check the offset first (insn {insn})")]
    UnboundedAccess { insn: usize, reg: u8, region: &'static str },
    #[error("R{reg} variable offset {region} access prohibited: use a constant offset (insn {insn})")]
    VariableOffset { insn: usize, reg: u8, region: &'static str },
    #[error("invalid read from stack off={off} size={size} (insn {insn})")]
    UninitStackRead { insn: usize, off: i64, size: u32 },
    #[error("invalid partial access to a spilled pointer at stack off={off} size={size} (insn {insn})")]
    PartialSpill { insn: usize, off: i64, size: u32 },
    #[error("invalid ctx access off={off} size={size}{} (insn {insn})", if *.write { " (write)" } else { "" })]
    CtxAccess { insn: usize, off: i64, size: u32, write: bool },
    #[error("write into read-only map '{map}' (insn {insn})")]
    ReadOnlyMap { insn: usize, map: String },

    // ---- helpers ---------------------------------------------------------
    #[error("R{reg} type={got} expected={expected} for helper {helper} (insn {insn})")]
    HelperArg { insn: usize, reg: u8, helper: &'static str, got: &'static str, expected: &'static str },

    // ---- paths -----------------------------------------------------------
    #[error("infinite loop detected at insn {insn}: the loop state repeats without progress")]
    InfiniteLoop { insn: usize },
    #[error("back-edge loop exceeds the processed-instruction cap of {cap} (insn {insn})")]
    LoopCap { insn: usize, cap: u64 },
    #[error("program too complex: {cap} instructions processed without finishing all paths (insn {insn})")]
    TooComplex { insn: usize, cap: u64 },
    #[error("program too complex: more than {cap} pending branches to explore (insn {insn})")]
    PendingCap { insn: usize, cap: usize },
    #[error("program too complex: more than {cap} states stored at insn {insn}")]
    StatesPerInsnCap { insn: usize, cap: usize },
    #[error("program too complex: verifier memory cap of {cap_bytes} bytes exceeded (insn {insn})")]
    MemoryCap { insn: usize, cap_bytes: u64 },
    #[error("program too complex: verification time cap of {cap_ms} ms exceeded (insn {insn})")]
    TimeCap { insn: usize, cap_ms: u64 },
}

impl VerifyError {
    /// The instruction the rejection is about.
    pub fn insn(&self) -> usize {
        use VerifyError::*;
        match self {
            EmptyProgram { insn }
            | TooLong { insn, .. }
            | UnknownOpcode { insn, .. }
            | Unsupported { insn, .. }
            | Call { insn, .. }
            | CallDepth { insn, .. }
            | CombinedStack { insn, .. }
            | ReservedField { insn, .. }
            | InvalidRegister { insn, .. }
            | FramePointerWrite { insn }
            | JumpOutOfRange { insn, .. }
            | JumpIntoLddw { insn, .. }
            | BadLddw { insn }
            | InvalidMapIndex { insn, .. }
            | UnrelocatedMap { insn, .. }
            | BadLddwSource { insn, .. }
            | GlobalOffset { insn, .. }
            | UnknownHelper { insn, .. }
            | BadEndianWidth { insn, .. }
            | InvalidShift { insn, .. }
            | Unreachable { insn }
            | FallsOffEnd { insn }
            | UninitRegister { insn, .. }
            | UninitR0AtExit { insn }
            | PointerLeakReturn { insn, .. }
            | PointerLeakStore { insn, .. }
            | PointerLeakHelper { insn, .. }
            | PointerLeakStackArg { insn, .. }
            | PointerArith { insn, .. }
            | PointerArithOnNull { insn, .. }
            | PointerArithUnbounded { insn, .. }
            | PointerAlu32 { insn, .. }
            | PointerCompare { insn, .. }
            | AtomicAccess { insn, .. }
            | InvalidMemAccess { insn, .. }
            | OutOfBounds { insn, .. }
            | UnboundedAccess { insn, .. }
            | VariableOffset { insn, .. }
            | UninitStackRead { insn, .. }
            | PartialSpill { insn, .. }
            | CtxAccess { insn, .. }
            | ReadOnlyMap { insn, .. }
            | HelperArg { insn, .. }
            | InfiniteLoop { insn }
            | LoopCap { insn, .. }
            | TooComplex { insn, .. }
            | PendingCap { insn, .. }
            | StatesPerInsnCap { insn, .. }
            | MemoryCap { insn, .. }
            | TimeCap { insn, .. } => *insn,
        }
    }
}
