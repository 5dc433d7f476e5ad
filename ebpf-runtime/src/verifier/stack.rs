//! The 512-byte stack of one frame, tracked per 8-byte slot: either bytes
//! that are uninitialised or hold plain data, or a spilled register (kept
//! whole so that a pointer or a bounded scalar survives a spill and fill),
//! or plain bytes of which one naturally aligned 1-, 2- or 4-byte field
//! holds a known scalar (clang spills 32-bit values that way).

use super::regs::Reg;
use super::scalar::Scalar;
use std::rc::Rc;

/// Bytes of stack below r10.
pub const STACK_SIZE: i64 = 512;
const SLOT: i64 = 8;

/// The state of one byte that is not part of a spill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Byte {
    Invalid,
    Misc,
}

/// One 8-byte slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    Bytes([Byte; 8]),
    Spill(Reg),
    /// Plain bytes where `size` bytes at byte `at` hold `value` (which fits
    /// in them, so a zero-extending load of that field gives it back).
    Narrow {
        bytes: [Byte; 8],
        at: u8,
        size: u8,
        value: Scalar,
    },
}

impl Slot {
    /// The slot as plain bytes, if it holds no spilled register.
    pub fn as_bytes(&self) -> Option<[Byte; 8]> {
        match self {
            Slot::Bytes(b) => Some(*b),
            Slot::Narrow { bytes, at, size, .. } => {
                let mut b = *bytes;
                for x in &mut b[usize::from(*at)..usize::from(*at + *size)] {
                    *x = Byte::Misc;
                }
                Some(b)
            }
            Slot::Spill(_) => None,
        }
    }
}

const EMPTY: Slot = Slot::Bytes([Byte::Invalid; 8]);

/// Why a stack read failed (the caller adds the instruction).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StackFault {
    Uninit,
    PartialSpill,
}

/// One frame's stack. Slot 0 covers r10-8..r10; only slots ever written are
/// stored, the rest are uninitialised. The slots are shared between the
/// states copied from one another until one of them writes (states are
/// copied at every branch and stored state, written far less often).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Stack {
    slots: Rc<Vec<Slot>>,
}

/// Slot index and byte index within it of the byte at r10+`off` (`off` < 0).
fn locate(off: i64) -> (usize, usize) {
    let slot = (-off - 1) / SLOT;
    let byte = off + SLOT * (slot + 1);
    // Both are small and non-negative: -512 <= off < 0 is checked by callers.
    (usize::try_from(slot).unwrap_or(usize::MAX), usize::try_from(byte).unwrap_or(0))
}

impl Stack {
    fn slot(&self, i: usize) -> Slot {
        self.slots.get(i).copied().unwrap_or(EMPTY)
    }

    fn slot_mut(&mut self, i: usize) -> &mut Slot {
        let slots = Rc::make_mut(&mut self.slots);
        if slots.len() <= i {
            slots.resize(i + 1, EMPTY);
        }
        &mut slots[i]
    }

    /// Records a store of `size` bytes at r10+`off` (in bounds). `value` is
    /// the stored register: kept whole for an aligned 8-byte store, kept as
    /// a narrow field for an aligned smaller store of a scalar that fits.
    /// Bytes below r10 down to the deepest slot ever written.
    pub fn depth(&self) -> i64 {
        i64::try_from(self.slots.len()).unwrap_or(i64::MAX).saturating_mul(SLOT)
    }

    pub fn write(&mut self, off: i64, size: u32, value: Option<Reg>) {
        let aligned = off.rem_euclid(i64::from(size)) == 0;
        if let (Some(reg), 8, true) = (value, size, aligned) {
            let (slot, _) = locate(off);
            *self.slot_mut(slot) = Slot::Spill(reg);
            return;
        }
        for b in off..off + i64::from(size) {
            let (slot, byte) = locate(b);
            let s = self.slot_mut(slot);
            if let Slot::Spill(reg) = *s {
                // Overwriting part of a spilled pointer: the rest is no
                // longer a pointer and must not be readable as data.
                let rest = if matches!(reg, Reg::Ptr(_)) { Byte::Invalid } else { Byte::Misc };
                *s = Slot::Bytes([rest; 8]);
            }
            if let Some(bytes) = s.as_bytes() {
                *s = Slot::Bytes(bytes);
            }
            if let Slot::Bytes(bytes) = s {
                bytes[byte] = Byte::Misc;
            }
        }
        if let (Some(Reg::Scalar(v)), true, 1 | 2 | 4) = (value, aligned, size) {
            if v.umax < 1u64 << (8 * size) {
                let (slot, at) = locate(off);
                let s = self.slot_mut(slot);
                if let Slot::Bytes(bytes) = *s {
                    // Both fit: at < 8 and size <= 4.
                    let (at, size) = (u8::try_from(at).unwrap_or(0), u8::try_from(size).unwrap_or(0));
                    *s = Slot::Narrow { bytes, at, size, value: v };
                }
            }
        }
    }

    /// Reads `size` bytes at r10+`off` (in bounds): the spilled register for
    /// an aligned 8-byte read of a spill, otherwise `None` for plain data.
    pub fn read(&self, off: i64, size: u32) -> Result<Option<Reg>, StackFault> {
        if size == 8 && off.rem_euclid(SLOT) == 0 {
            if let Slot::Spill(reg) = self.slot(locate(off).0) {
                return match reg {
                    Reg::NotInit => Err(StackFault::Uninit),
                    reg => Ok(Some(reg)),
                };
            }
        }
        let (slot, byte) = locate(off);
        if let Slot::Narrow { at, size: n, value, .. } = self.slot(slot) {
            if usize::from(at) == byte && u32::from(n) == size {
                return Ok(Some(Reg::Scalar(value)));
            }
        }
        self.check_data(off, size)?;
        Ok(None)
    }

    /// Checks that `size` bytes at r10+`off` are initialised plain data
    /// (spilled scalars count; spilled pointers do not).
    pub fn check_data(&self, off: i64, size: u32) -> Result<(), StackFault> {
        for b in off..off + i64::from(size) {
            let (slot, byte) = locate(b);
            match self.slot(slot) {
                Slot::Spill(Reg::Ptr(_)) => return Err(StackFault::PartialSpill),
                Slot::Spill(Reg::NotInit) => return Err(StackFault::Uninit),
                Slot::Spill(Reg::Scalar(_)) => {}
                other => {
                    if other.as_bytes().is_some_and(|bytes| bytes[byte] == Byte::Invalid) {
                        return Err(StackFault::Uninit);
                    }
                }
            }
        }
        Ok(())
    }

    /// Bytes of heap this stack owns (slots shared with other states are
    /// counted in each).
    pub fn heap_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Slot>()
    }

    /// Applies `f` to every spilled register (null-check propagation).
    pub fn for_each_spill(&mut self, mut f: impl FnMut(&mut Reg)) {
        if !self.slots.iter().any(|s| matches!(s, Slot::Spill(_))) {
            return;
        }
        for s in Rc::make_mut(&mut self.slots) {
            if let Slot::Spill(reg) = s {
                f(reg);
            }
        }
    }

    /// Applies `f` to the value of every narrow field.
    pub fn for_each_narrow(&mut self, mut f: impl FnMut(&mut Scalar)) {
        if !self.slots.iter().any(|s| matches!(s, Slot::Narrow { .. })) {
            return;
        }
        for s in Rc::make_mut(&mut self.slots) {
            if let Slot::Narrow { value, .. } = s {
                f(value);
            }
        }
    }

    /// Whether `f` holds for some spilled register or narrow field's value.
    pub fn any_held(&self, f: impl Fn(&Reg) -> bool) -> bool {
        self.slots.iter().any(|s| match s {
            Slot::Spill(reg) => f(reg),
            Slot::Narrow { value, .. } => f(&Reg::Scalar(*value)),
            Slot::Bytes(_) => false,
        })
    }

    /// Calls `f` on every spilled register and narrow field's value.
    pub fn for_each_held(&self, mut f: impl FnMut(&Reg)) {
        for s in self.slots.iter() {
            match s {
                Slot::Spill(reg) => f(reg),
                Slot::Narrow { value, .. } => f(&Reg::Scalar(*value)),
                Slot::Bytes(_) => {}
            }
        }
    }

    /// Pairs of (old, new) slots over the union of both stacks.
    pub fn zip<'a>(&'a self, other: &'a Stack) -> impl Iterator<Item = (Slot, Slot)> + 'a {
        let n = self.slots.len().max(other.slots.len());
        (0..n).map(move |i| (self.slot(i), other.slot(i)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spill_and_fill_round_trip() {
        let mut s = Stack::default();
        s.write(-8, 8, Some(Reg::constant(7)));
        assert_eq!(s.read(-8, 8), Ok(Some(Reg::constant(7))));
        assert_eq!(s.read(-4, 4), Ok(None));
    }

    #[test]
    fn uninitialised_bytes_fail() {
        let mut s = Stack::default();
        s.write(-16, 4, None);
        assert_eq!(s.read(-16, 4), Ok(None));
        assert_eq!(s.read(-16, 8), Err(StackFault::Uninit));
        assert_eq!(s.read(-200, 1), Err(StackFault::Uninit));
    }

    #[test]
    fn narrow_scalar_store_reads_back_exactly() {
        let mut s = Stack::default();
        s.write(-8, 4, Some(Reg::Scalar(Scalar::urange(0, 255))));
        assert_eq!(s.read(-8, 4), Ok(Some(Reg::Scalar(Scalar::urange(0, 255)))));
        assert_eq!(s.read(-8, 2), Ok(None));
        assert_eq!(s.read(-4, 4), Err(StackFault::Uninit));
        // Any other store into the slot forgets the field's value.
        s.write(-6, 1, None);
        assert_eq!(s.read(-8, 4), Ok(None));
        // A value that does not fit its bytes is not kept.
        s.write(-16, 2, Some(Reg::Scalar(Scalar::urange(0, 70_000))));
        assert_eq!(s.read(-16, 2), Ok(None));
    }

    #[test]
    fn partial_overwrite_of_pointer_spill_invalidates_rest() {
        use super::super::regs::{Ptr, PtrKind};
        let mut s = Stack::default();
        s.write(-8, 8, Some(Reg::Ptr(Ptr::new(PtrKind::Ctx))));
        assert_eq!(s.check_data(-8, 4), Err(StackFault::PartialSpill));
        s.write(-8, 2, None);
        assert_eq!(s.read(-8, 2), Ok(None));
        assert_eq!(s.read(-6, 2), Err(StackFault::Uninit));
    }
}
