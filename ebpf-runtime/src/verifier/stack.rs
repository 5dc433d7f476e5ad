//! The 512-byte stack of one frame, tracked per 8-byte slot: either bytes
//! that are uninitialised or hold plain data, or a spilled register (kept
//! whole so that a pointer or a bounded scalar survives a spill and fill).

use super::regs::Reg;

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
}

const EMPTY: Slot = Slot::Bytes([Byte::Invalid; 8]);

/// Why a stack read failed (the caller adds the instruction).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StackFault {
    Uninit,
    PartialSpill,
}

/// One frame's stack. Slot 0 covers r10-8..r10; only slots ever written are
/// stored, the rest are uninitialised.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Stack {
    slots: Vec<Slot>,
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
        if self.slots.len() <= i {
            self.slots.resize(i + 1, EMPTY);
        }
        &mut self.slots[i]
    }

    /// Records a store of `size` bytes at r10+`off` (in bounds). `spill` is
    /// the stored register when the store is a whole aligned 8-byte slot.
    pub fn write(&mut self, off: i64, size: u32, spill: Option<Reg>) {
        if let (Some(reg), 8, 0) = (spill, size, off.rem_euclid(SLOT)) {
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
            if let Slot::Bytes(bytes) = s {
                bytes[byte] = Byte::Misc;
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
                Slot::Bytes(bytes) => {
                    if bytes[byte] == Byte::Invalid {
                        return Err(StackFault::Uninit);
                    }
                }
            }
        }
        Ok(())
    }

    /// Applies `f` to every spilled register (null-check propagation).
    pub fn for_each_spill(&mut self, mut f: impl FnMut(&mut Reg)) {
        for s in &mut self.slots {
            if let Slot::Spill(reg) = s {
                f(reg);
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
