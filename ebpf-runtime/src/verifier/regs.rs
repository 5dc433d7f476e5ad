//! Register states: uninitialised, scalar, or one of the pointer kinds a
//! storage function can hold. A pointer is `base + off + var`, where `off` is
//! a constant and `var` a scalar that is the sum of all variable offsets
//! added to it.

use super::scalar::Scalar;

/// Number of registers (r0-r10).
pub const REG_COUNT: usize = 11;
/// Largest constant or variable offset a pointer may carry (as Linux's
/// `BPF_MAX_VAR_OFF`): keeps every bound computation far from overflow.
pub const PTR_OFF_MAX: i64 = 1 << 29;

/// What a pointer points to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PtrKind {
    /// The 280-byte XRP context.
    Ctx,
    /// The data block (`ctx->data`), `Env::data_size` bytes.
    Data,
    /// The scratch buffer (`ctx->scratch`), `Env::scratch_size` bytes.
    Scratch,
    /// The 512-byte stack below r10.
    Stack,
    /// A map handle (map index); only for helpers.
    MapHandle(u32),
    /// A value of the map with this index.
    MapValue(u32),
    /// A value of the map with this index, or null: null-check before use.
    MapValueOrNull(u32),
}

impl PtrKind {
    /// Linux-style name, used in messages.
    pub fn name(self) -> &'static str {
        match self {
            PtrKind::Ctx => "ctx",
            PtrKind::Data => "data block",
            PtrKind::Scratch => "scratch",
            PtrKind::Stack => "stack",
            PtrKind::MapHandle(_) => "map_ptr",
            PtrKind::MapValue(_) => "map_value",
            PtrKind::MapValueOrNull(_) => "map_value_or_null",
        }
    }
}

/// A pointer register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ptr {
    pub kind: PtrKind,
    /// Constant offset from the base.
    pub off: i64,
    /// Variable offset from the base (constant 0 when there is none).
    pub var: Scalar,
    /// Identity shared by copies of one `MapValueOrNull`, so that a null
    /// check refines all of them; 0 otherwise.
    pub id: u32,
}

impl Ptr {
    pub fn new(kind: PtrKind) -> Ptr {
        Ptr { kind, off: 0, var: Scalar::constant(0), id: 0 }
    }
}

/// The abstract value of one register (or spilled stack slot).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reg {
    NotInit,
    Scalar(Scalar),
    Ptr(Ptr),
}

impl Reg {
    pub fn unknown() -> Reg {
        Reg::Scalar(Scalar::unknown())
    }

    pub fn constant(v: u64) -> Reg {
        Reg::Scalar(Scalar::constant(v))
    }

    /// Short type name for messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Reg::NotInit => "uninit",
            Reg::Scalar(_) => "scalar",
            Reg::Ptr(p) => p.kind.name(),
        }
    }
}
