//! Tristate numbers ("tnums", as in the Linux verifier): for each of the 64
//! bits, known 0, known 1 or unknown. `value` holds the known-1 bits, `mask`
//! the unknown bits; a bit is never set in both.
//!
//! The casts in this module reinterpret bit patterns on purpose.
#![allow(clippy::cast_possible_wrap, clippy::cast_sign_loss)]

/// A set of 64-bit values described by known bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tnum {
    pub value: u64,
    pub mask: u64,
}

impl Tnum {
    /// Every value.
    pub const UNKNOWN: Tnum = Tnum { value: 0, mask: u64::MAX };

    pub fn constant(v: u64) -> Tnum {
        Tnum { value: v, mask: 0 }
    }

    /// The smallest tnum holding every value in `min..=max` (unsigned).
    pub fn range(min: u64, max: u64) -> Tnum {
        let chi = min ^ max;
        let bits = 64 - chi.leading_zeros();
        if bits >= 64 {
            return Tnum::UNKNOWN;
        }
        let delta = (1u64 << bits) - 1;
        Tnum { value: min & !delta, mask: delta }
    }

    pub fn is_const(&self) -> bool {
        self.mask == 0
    }

    pub fn umin(&self) -> u64 {
        self.value
    }

    pub fn umax(&self) -> u64 {
        self.value | self.mask
    }

    pub fn smin(&self) -> i64 {
        (self.value | (self.mask & (1 << 63))) as i64
    }

    pub fn smax(&self) -> i64 {
        (self.value | (self.mask & !(1 << 63))) as i64
    }

    pub fn add(self, b: Tnum) -> Tnum {
        let sm = self.mask.wrapping_add(b.mask);
        let sv = self.value.wrapping_add(b.value);
        let sigma = sm.wrapping_add(sv);
        let chi = sigma ^ sv;
        let mu = chi | self.mask | b.mask;
        Tnum { value: sv & !mu, mask: mu }
    }

    pub fn sub(self, b: Tnum) -> Tnum {
        let dv = self.value.wrapping_sub(b.value);
        let alpha = dv.wrapping_add(self.mask);
        let beta = dv.wrapping_sub(b.mask);
        let chi = alpha ^ beta;
        let mu = chi | self.mask | b.mask;
        Tnum { value: dv & !mu, mask: mu }
    }

    pub fn and(self, b: Tnum) -> Tnum {
        let alpha = self.value | self.mask;
        let beta = b.value | b.mask;
        let v = self.value & b.value;
        Tnum { value: v, mask: alpha & beta & !v }
    }

    pub fn or(self, b: Tnum) -> Tnum {
        let v = self.value | b.value;
        let mu = self.mask | b.mask;
        Tnum { value: v, mask: mu & !v }
    }

    pub fn xor(self, b: Tnum) -> Tnum {
        let v = self.value ^ b.value;
        let mu = self.mask | b.mask;
        Tnum { value: v & !mu, mask: mu }
    }

    /// Products are only tracked exactly for constants; ranges bound the rest.
    pub fn mul(self, b: Tnum) -> Tnum {
        if self.is_const() && b.is_const() {
            Tnum::constant(self.value.wrapping_mul(b.value))
        } else {
            Tnum::UNKNOWN
        }
    }

    /// `shift` must be below 64.
    pub fn lshift(self, shift: u32) -> Tnum {
        Tnum { value: self.value << shift, mask: self.mask << shift }
    }

    /// `shift` must be below 64.
    pub fn rshift(self, shift: u32) -> Tnum {
        Tnum { value: self.value >> shift, mask: self.mask >> shift }
    }

    /// Arithmetic shift; `shift` must be below 64.
    pub fn arshift(self, shift: u32) -> Tnum {
        Tnum { value: ((self.value as i64) >> shift) as u64, mask: ((self.mask as i64) >> shift) as u64 }
    }

    /// The values in both, or `None` if the known bits contradict.
    pub fn intersect(self, b: Tnum) -> Option<Tnum> {
        if (self.value ^ b.value) & !(self.mask | b.mask) != 0 {
            return None;
        }
        let v = self.value | b.value;
        let mu = self.mask & b.mask;
        Some(Tnum { value: v & !mu, mask: mu })
    }

    /// Whether every value of `other` is a value of `self`.
    pub fn contains(&self, other: &Tnum) -> bool {
        if other.mask & !self.mask != 0 {
            return false;
        }
        self.value == other.value & !self.mask
    }

    /// The low 32 bits (zero-extended).
    pub fn cast32(self) -> Tnum {
        Tnum { value: self.value & 0xffff_ffff, mask: self.mask & 0xffff_ffff }
    }

    /// Sign-extends the low 32 bits to 64.
    pub fn sext32(self) -> Tnum {
        let low = self.cast32();
        if low.mask & (1 << 31) != 0 {
            Tnum { value: low.value, mask: low.mask | 0xffff_ffff_0000_0000 }
        } else if low.value & (1 << 31) != 0 {
            Tnum { value: low.value | 0xffff_ffff_0000_0000, mask: low.mask }
        } else {
            low
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_covers_both_ends() {
        let t = Tnum::range(3, 9);
        assert!(t.umin() <= 3 && t.umax() >= 9);
        assert_eq!(Tnum::range(5, 5), Tnum::constant(5));
        assert_eq!(Tnum::range(0, u64::MAX), Tnum::UNKNOWN);
    }

    #[test]
    fn add_of_constants_is_constant() {
        assert_eq!(Tnum::constant(7).add(Tnum::constant(9)), Tnum::constant(16));
        let a = Tnum::range(0, 3).add(Tnum::constant(4));
        assert!(a.contains(&Tnum::constant(4)) && a.contains(&Tnum::constant(7)));
    }

    #[test]
    fn intersect_detects_contradiction() {
        assert_eq!(Tnum::constant(1).intersect(Tnum::constant(2)), None);
        assert_eq!(Tnum::UNKNOWN.intersect(Tnum::constant(2)), Some(Tnum::constant(2)));
    }

    #[test]
    fn sext32_extends_known_sign() {
        assert_eq!(Tnum::constant(0xffff_fffe).sext32(), Tnum::constant(u64::MAX - 1));
        assert_eq!(Tnum::constant(5).sext32(), Tnum::constant(5));
    }
}
