//! Access rules for the XRP context (`context.rs`): which fields a program
//! may read or write, at which exact offsets and sizes.

use super::regs::{Ptr, PtrKind, Reg};
use super::scalar::Scalar;
use crate::context::{CTX_SIZE, FANOUT_MAX, OFF_DATA, OFF_DONE, OFF_NEXT_ADDR, OFF_SCRATCH, OFF_SIZE};

/// A context field an access may touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CtxField {
    /// `char *data`: read-only, 8 bytes.
    Data,
    /// `int done`: read/write, 4 bytes.
    Done,
    /// `next_addr[i]` or `size[i]`: read/write, 8 bytes, aligned.
    Slot,
    /// `char *scratch`: read-only, 8 bytes.
    Scratch,
}

/// The field at `off` for an access of `size` bytes, if that access is legal.
pub fn field(off: i64, size: u32, write: bool) -> Option<CtxField> {
    let off = usize::try_from(off).ok()?;
    let size = usize::try_from(size).ok()?;
    let slots_end = OFF_SIZE + 8 * FANOUT_MAX;
    let f = match (off, size) {
        (OFF_DATA, 8) => CtxField::Data,
        (OFF_SCRATCH, 8) => CtxField::Scratch,
        (OFF_DONE, 4) => CtxField::Done,
        (o, 8) if (OFF_NEXT_ADDR..slots_end).contains(&o) && (o - OFF_NEXT_ADDR) % 8 == 0 => CtxField::Slot,
        _ => return None,
    };
    debug_assert!(off + size <= CTX_SIZE);
    if write && matches!(f, CtxField::Data | CtxField::Scratch) {
        return None;
    }
    Some(f)
}

/// What a load of `f` puts in the destination register.
pub fn load(f: CtxField) -> Reg {
    match f {
        CtxField::Data => Reg::Ptr(Ptr::new(PtrKind::Data)),
        CtxField::Scratch => Reg::Ptr(Ptr::new(PtrKind::Scratch)),
        CtxField::Done => Reg::Scalar(Scalar::bits(32)),
        CtxField::Slot => Reg::unknown(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_have_exact_offsets_and_sizes() {
        assert_eq!(field(0, 8, false), Some(CtxField::Data));
        assert_eq!(field(0, 8, true), None);
        assert_eq!(field(8, 4, true), Some(CtxField::Done));
        assert_eq!(field(8, 8, false), None);
        assert_eq!(field(12, 4, false), None);
        assert_eq!(field(16, 8, true), Some(CtxField::Slot));
        assert_eq!(field(264, 8, true), Some(CtxField::Slot));
        assert_eq!(field(20, 8, false), None);
        assert_eq!(field(272, 8, false), Some(CtxField::Scratch));
        assert_eq!(field(272, 8, true), None);
        assert_eq!(field(280, 8, false), None);
        assert_eq!(field(-8, 8, false), None);
    }
}
