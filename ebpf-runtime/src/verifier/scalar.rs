//! Abstract scalars: unsigned and signed 64-bit ranges plus known bits, and
//! their transfer functions for the ALU. Every function returns a sound
//! over-approximation of the concrete results (as rbpf computes them).
//!
//! 32-bit subregister bounds are derived on demand ([`Scalar::trunc32`])
//! instead of being stored: an ALU32 operation is computed on the truncated
//! operands and its result truncated again, which is exact modulo 2^32.
//! The one exception is `lo32..=hi32`, a bound on the low 32 bits that only
//! a JMP32 comparison can teach when the 64-bit value does not fit in 32
//! bits (so that `if w3 < 100` followed by `w3 = w3` keeps the bound).
//!
//! `id` names the concrete value (Linux's scalar ids): two scalars with the
//! same non-zero id in one state hold the same value, so what a comparison
//! teaches about one holds for the other (`find_equal_scalars`). Every
//! operation that may change the value returns id 0; one that returns its
//! operand unchanged (`*self`) keeps it, which is right because the value
//! is the same. `==` compares every field, ids included: to compare the
//! sets of values use [`Scalar::contains`] and [`Scalar::same_set`].
//!
//! The casts in this module reinterpret bit patterns on purpose.
#![allow(clippy::cast_possible_wrap, clippy::cast_sign_loss, clippy::cast_possible_truncation)]

use super::tnum::Tnum;

const U32_MAX: u64 = 0xffff_ffff;

/// A set of 64-bit values: `umin..=umax` ∩ `smin..=smax` ∩ `tnum` ∩ {v:
/// `lo32 <= v as u32 <= hi32`}, and the identity of the value (`id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scalar {
    pub umin: u64,
    pub umax: u64,
    pub smin: i64,
    pub smax: i64,
    pub tnum: Tnum,
    pub lo32: u32,
    pub hi32: u32,
    pub id: u32,
}

impl Scalar {
    pub fn unknown() -> Scalar {
        Scalar { umin: 0, umax: u64::MAX, smin: i64::MIN, smax: i64::MAX, tnum: Tnum::UNKNOWN, lo32: 0, hi32: u32::MAX, id: 0 }
    }

    pub fn constant(v: u64) -> Scalar {
        Scalar { umin: v, umax: v, smin: v as i64, smax: v as i64, tnum: Tnum::constant(v), lo32: 0, hi32: u32::MAX, id: 0 }
    }

    /// Whether both hold exactly the same values (ids aside).
    pub fn same_set(&self, other: &Scalar) -> bool {
        self.contains(other) && other.contains(self)
    }

    /// Whether the low-32-bit bound says anything.
    fn has_sub32(&self) -> bool {
        self.lo32 != 0 || self.hi32 != u32::MAX
    }

    /// The same set with the low 32 bits also within `lo..=hi`; `None` if
    /// empty.
    pub fn with_sub32(mut self, lo: u64, hi: u64) -> Option<Scalar> {
        self.lo32 = self.lo32.max(u32::try_from(lo.min(U32_MAX)).unwrap_or(u32::MAX));
        self.hi32 = self.hi32.min(u32::try_from(hi.min(U32_MAX)).unwrap_or(u32::MAX));
        if self.lo32 > self.hi32 {
            return None;
        }
        self.normalize()
    }

    /// Unsigned range `min..=max`.
    pub fn urange(min: u64, max: u64) -> Scalar {
        Scalar { umin: min, umax: max, ..Scalar::unknown() }.norm()
    }

    pub fn as_const(&self) -> Option<u64> {
        if self.umin == self.umax {
            Some(self.umin)
        } else {
            None
        }
    }

    /// Tightens all views against each other; `None` if the set is empty.
    pub fn normalize(mut self) -> Option<Scalar> {
        for _ in 0..2 {
            self.umin = self.umin.max(self.tnum.umin());
            self.umax = self.umax.min(self.tnum.umax());
            self.smin = self.smin.max(self.tnum.smin());
            self.smax = self.smax.min(self.tnum.smax());
            if self.umin > self.umax || self.smin > self.smax {
                return None;
            }
            // Signed range within one sign half: it orders like the unsigned one.
            if self.smin >= 0 || self.smax < 0 {
                self.umin = self.umin.max(self.smin as u64);
                self.umax = self.umax.min(self.smax as u64);
            }
            // Unsigned range within one sign half: it orders like the signed one.
            if self.umax <= i64::MAX as u64 || self.umin > i64::MAX as u64 {
                self.smin = self.smin.max(self.umin as i64);
                self.smax = self.smax.min(self.umax as i64);
            }
            if self.umin > self.umax || self.smin > self.smax {
                return None;
            }
            if self.has_sub32() {
                if self.umax <= U32_MAX {
                    // The value is its low 32 bits: one range bounds both.
                    self.umin = self.umin.max(u64::from(self.lo32));
                    self.umax = self.umax.min(u64::from(self.hi32));
                    if self.umin > self.umax {
                        return None;
                    }
                    self.lo32 = 0;
                    self.hi32 = u32::MAX;
                } else if self.lo32 > self.hi32 {
                    return None;
                }
            }
            self.tnum = self.tnum.intersect(Tnum::range(self.umin, self.umax))?;
        }
        Some(self)
    }

    /// Normalises a result known to be non-empty (it contains the concrete
    /// value of every execution reaching it); falls back to "unknown" so that
    /// a bug here can only lose precision, never soundness.
    fn norm(self) -> Scalar {
        self.normalize().unwrap_or_else(Scalar::unknown)
    }

    /// Whether every value of `other` is a value of `self`.
    pub fn contains(&self, other: &Scalar) -> bool {
        self.umin <= other.umin
            && other.umax <= self.umax
            && self.smin <= other.smin
            && other.smax <= self.smax
            && self.tnum.contains(&other.tnum)
            && (!self.has_sub32() || {
                let t = other.trunc32();
                u64::from(self.lo32) <= t.umin && t.umax <= u64::from(self.hi32)
            })
    }

    /// The low 32 bits, zero-extended.
    pub fn trunc32(&self) -> Scalar {
        if self.umax <= U32_MAX {
            return *self;
        }
        let mut r = Scalar { tnum: self.tnum.cast32(), ..Scalar::urange(0, U32_MAX) };
        if self.umin >> 32 == self.umax >> 32 {
            // One upper half for all values: the low halves keep their order.
            r.umin = self.umin & U32_MAX;
            r.umax = self.umax & U32_MAX;
        }
        r.umin = r.umin.max(u64::from(self.lo32));
        r.umax = r.umax.min(u64::from(self.hi32));
        r.normalize().unwrap_or_else(|| Scalar::urange(0, U32_MAX))
    }

    /// Zero-extended values fitting in `bits` bits.
    pub fn bits(bits: u32) -> Scalar {
        if bits >= 64 {
            Scalar::unknown()
        } else {
            Scalar::urange(0, (1u64 << bits) - 1)
        }
    }

    /// Sign-extends the low `bits` bits (8, 16 or 32) to 64 bits.
    pub fn sext(&self, bits: u32) -> Scalar {
        let half = 1u64 << (bits - 1);
        if let Some(v) = self.as_const() {
            let low = v & ((half << 1) - 1);
            return Scalar::constant(if low >= half { low | !((half << 1) - 1) } else { low });
        }
        if self.umax < half {
            return *self;
        }
        let h = half as i64;
        Scalar { smin: -h, smax: h - 1, ..Scalar::unknown() }.norm()
    }

    pub fn add(&self, b: &Scalar) -> Scalar {
        let mut r = Scalar::unknown();
        if let (Some(lo), Some(hi)) = (self.umin.checked_add(b.umin), self.umax.checked_add(b.umax)) {
            r.umin = lo;
            r.umax = hi;
        }
        if let (Some(lo), Some(hi)) = (self.smin.checked_add(b.smin), self.smax.checked_add(b.smax)) {
            r.smin = lo;
            r.smax = hi;
        }
        r.tnum = self.tnum.add(b.tnum);
        r.norm()
    }

    pub fn sub(&self, b: &Scalar) -> Scalar {
        let mut r = Scalar::unknown();
        if self.umin >= b.umax {
            r.umin = self.umin - b.umax;
            r.umax = self.umax - b.umin;
        }
        if let (Some(lo), Some(hi)) = (self.smin.checked_sub(b.smax), self.smax.checked_sub(b.smin)) {
            r.smin = lo;
            r.smax = hi;
        }
        r.tnum = self.tnum.sub(b.tnum);
        r.norm()
    }

    pub fn mul(&self, b: &Scalar) -> Scalar {
        let mut r = Scalar::unknown();
        if self.umax <= U32_MAX && b.umax <= U32_MAX {
            r.umin = self.umin * b.umin;
            r.umax = self.umax * b.umax;
        }
        r.tnum = self.tnum.mul(b.tnum);
        r.norm()
    }

    pub fn and(&self, b: &Scalar) -> Scalar {
        let mut r = Scalar { tnum: self.tnum.and(b.tnum), ..Scalar::unknown() };
        r.umax = self.umax.min(b.umax);
        if self.smin >= 0 && b.smin >= 0 {
            r.smin = 0;
            r.smax = self.smax.min(b.smax);
        }
        r.norm()
    }

    pub fn or(&self, b: &Scalar) -> Scalar {
        let mut r = Scalar { tnum: self.tnum.or(b.tnum), ..Scalar::unknown() };
        r.umin = self.umin.max(b.umin);
        r.norm()
    }

    pub fn xor(&self, b: &Scalar) -> Scalar {
        Scalar { tnum: self.tnum.xor(b.tnum), ..Scalar::unknown() }.norm()
    }

    /// Left shift by a constant below the width.
    pub fn lsh(&self, k: u32) -> Scalar {
        let mut r = Scalar { tnum: self.tnum.lshift(k), ..Scalar::unknown() };
        if self.umax.leading_zeros() >= k {
            r.umin = self.umin << k;
            r.umax = self.umax << k;
        }
        r.norm()
    }

    /// Logical right shift by a constant below 64.
    pub fn rsh(&self, k: u32) -> Scalar {
        Scalar { umin: self.umin >> k, umax: self.umax >> k, tnum: self.tnum.rshift(k), ..Scalar::unknown() }.norm()
    }

    /// Arithmetic right shift by a constant below 64.
    pub fn arsh(&self, k: u32) -> Scalar {
        Scalar { smin: self.smin >> k, smax: self.smax >> k, tnum: self.tnum.arshift(k), ..Scalar::unknown() }.norm()
    }

    /// Unsigned division as rbpf defines it: x / 0 = 0.
    pub fn div(&self, b: &Scalar) -> Scalar {
        if b.as_const() == Some(0) {
            return Scalar::constant(0);
        }
        if b.umin == 0 {
            return Scalar::urange(0, self.umax);
        }
        Scalar::urange(self.umin / b.umax, self.umax / b.umin)
    }

    /// Unsigned modulo as rbpf defines it in 64 bits: x % 0 = x.
    pub fn rem(&self, b: &Scalar) -> Scalar {
        if b.as_const() == Some(0) {
            return *self;
        }
        if b.umin == 0 {
            return Scalar::urange(0, self.umax);
        }
        Scalar::urange(0, self.umax.min(b.umax - 1))
    }

    /// `to_be`/`to_le` as rbpf computes them on a little-endian host:
    /// `le` truncates to `width`, `be` byte-swaps the truncated value.
    pub fn endian(&self, width: u32, swap: bool) -> Scalar {
        let mask = if width >= 64 { u64::MAX } else { (1u64 << width) - 1 };
        if let Some(v) = self.as_const() {
            let t = v & mask;
            let r = match (swap, width) {
                (false, _) => t,
                (true, 16) => u64::from((t as u16).swap_bytes()),
                (true, 32) => u64::from((t as u32).swap_bytes()),
                (true, _) => t.swap_bytes(),
            };
            return Scalar::constant(r);
        }
        if !swap && self.umax <= mask {
            return *self;
        }
        if !swap {
            let t = Tnum { value: self.tnum.value & mask, mask: self.tnum.mask & mask };
            return Scalar { tnum: t, ..Scalar::bits(width) }.norm();
        }
        Scalar::bits(width)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_tracks_ranges() {
        let a = Scalar::urange(0, 10).add(&Scalar::constant(5));
        assert_eq!((a.umin, a.umax), (5, 15));
        assert_eq!((a.smin, a.smax), (5, 15));
    }

    #[test]
    fn sub_that_may_wrap_is_unknown_unsigned() {
        let a = Scalar::urange(0, 10).sub(&Scalar::constant(5));
        assert_eq!((a.smin, a.smax), (-5, 5));
        assert_eq!((a.umin, a.umax), (0, u64::MAX));
    }

    #[test]
    fn and_with_mask_bounds_result() {
        let a = Scalar::unknown().and(&Scalar::constant(0xff));
        assert_eq!((a.umin, a.umax), (0, 0xff));
    }

    #[test]
    fn shifts_and_division() {
        let a = Scalar::urange(1, 3).lsh(3);
        assert_eq!((a.umin, a.umax), (8, 24));
        let d = Scalar::urange(10, 100).div(&Scalar::urange(0, 5));
        assert_eq!((d.umin, d.umax), (0, 100));
        assert_eq!(Scalar::constant(7).rem(&Scalar::constant(0)).as_const(), Some(7));
        assert_eq!(Scalar::constant(9).div(&Scalar::constant(0)).as_const(), Some(0));
    }

    #[test]
    fn sext_of_bytes() {
        assert_eq!(Scalar::constant(0x80).sext(8).as_const(), Some(u64::MAX - 127));
        assert_eq!(Scalar::constant(0x17f).sext(8).as_const(), Some(0x7f));
        assert_eq!(Scalar::urange(0, 100).sext(8), Scalar::urange(0, 100));
        let s = Scalar::urange(0, 200).sext(8);
        assert_eq!((s.smin, s.smax), (-128, 127));
    }

    #[test]
    fn trunc32_keeps_low_bits_of_constants() {
        assert_eq!(Scalar::constant(u64::MAX).trunc32().as_const(), Some(0xffff_ffff));
        assert_eq!(Scalar::urange(3, 7).trunc32(), Scalar::urange(3, 7));
        // w = [1, 256] + 0xffff_ffff wraps for every value: [0, 255].
        let w = Scalar::urange(1, 256).add(&Scalar::constant(0xffff_ffff)).trunc32();
        assert_eq!((w.umin, w.umax), (0, 255));
    }

    #[test]
    fn low_32_bit_bound_survives_zero_extension() {
        let s = Scalar::unknown().with_sub32(0, 100).expect("non-empty");
        assert_eq!(s.umax, u64::MAX);
        let w = s.trunc32();
        assert_eq!((w.umin, w.umax), (0, 100));
        assert!(Scalar::unknown().contains(&s));
        assert!(!s.contains(&Scalar::unknown()));
        assert!(s.contains(&Scalar::constant(0x1_0000_0005)));
        assert!(!s.contains(&Scalar::constant(0x1_0000_0065)));
        // Once the value fits in 32 bits, the bound is the range.
        let f = Scalar::urange(50, 1000).with_sub32(0, 100).expect("non-empty");
        assert_eq!((f.umin, f.umax, f.lo32, f.hi32), (50, 100, 0, u32::MAX));
        assert!(Scalar::urange(200, 300).with_sub32(0, 100).is_none());
    }

    #[test]
    fn normalize_finds_empty_sets() {
        let s = Scalar { umin: 5, umax: 4, ..Scalar::unknown() };
        assert!(s.normalize().is_none());
        let s = Scalar { smin: -3, smax: -1, umin: 0, umax: 100, ..Scalar::unknown() };
        assert!(s.normalize().is_none());
    }
}
