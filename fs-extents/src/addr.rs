//! Address spaces: a byte offset in a file and a byte offset on the device the
//! driver reads. They are distinct types so that translation is always a
//! function call, never a raw addition (STYLE item 2); arithmetic is checked.

use std::fmt;

/// A byte offset inside one file (what a storage function puts in `next_addr`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct FileOffset(pub u64);

/// A byte offset on the device the driver reads (a whole disk, or the backing
/// file of a loop device). Divide by the LBA size to get an LBA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct DevOffset(pub u64);

macro_rules! offset_ops {
    ($t:ident) => {
        impl $t {
            /// The raw byte offset.
            #[inline]
            pub const fn get(self) -> u64 {
                self.0
            }

            /// `self + bytes`, or `None` on overflow.
            #[inline]
            pub const fn checked_add(self, bytes: u64) -> Option<Self> {
                match self.0.checked_add(bytes) {
                    Some(v) => Some(Self(v)),
                    None => None,
                }
            }

            /// `self - bytes`, or `None` on underflow.
            #[inline]
            pub const fn checked_sub(self, bytes: u64) -> Option<Self> {
                match self.0.checked_sub(bytes) {
                    Some(v) => Some(Self(v)),
                    None => None,
                }
            }

            /// Bytes from `earlier` to `self`, or `None` if `earlier` is after `self`.
            #[inline]
            pub const fn checked_distance_from(self, earlier: Self) -> Option<u64> {
                self.0.checked_sub(earlier.0)
            }
        }

        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:#x}", self.0)
            }
        }
    };
}

offset_ops!(FileOffset);
offset_ops!(DevOffset);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_is_checked() {
        assert_eq!(FileOffset(10).checked_add(5), Some(FileOffset(15)));
        assert_eq!(FileOffset(u64::MAX).checked_add(1), None);
        assert_eq!(DevOffset(3).checked_sub(4), None);
        assert_eq!(DevOffset(9).checked_distance_from(DevOffset(4)), Some(5));
        assert_eq!(DevOffset(4).checked_distance_from(DevOffset(9)), None);
        assert_eq!(FileOffset(4096).to_string(), "0x1000");
    }
}
