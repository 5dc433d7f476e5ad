//! Filter-reduce over a file of little-endian u64 (the thesis workload):
//! keep `lo <= x <= hi`, reduce to SUM, COUNT, MIN, MAX. The scratch layout
//! is `sfe_btree.h`'s `SFE_FR_*`.

use crate::btree::u64_at;
use chaining::ChainRequest;
use chaining::Function;
use ebpf_runtime::XrpContext;

pub const FR_LO: usize = 0;
pub const FR_HI: usize = 1;
pub const FR_END: usize = 2;
pub const FR_OFF: usize = 3;
pub const FR_SUM: usize = 4;
pub const FR_COUNT: usize = 5;
pub const FR_MIN: usize = 6;
pub const FR_MAX: usize = 7;
/// Bytes per hop.
pub const BLOCK: usize = 4096;
/// [`BLOCK`] as the u32 a read size is.
pub const BLOCK_BYTES: u32 = 4096;

/// The result of a filter-reduce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reduced {
    pub sum: u64,
    pub count: u64,
    pub min: u64,
    pub max: u64,
}

impl Reduced {
    pub const EMPTY: Reduced = Reduced { sum: 0, count: 0, min: u64::MAX, max: 0 };

    /// Folds one block of words into the aggregate (the native kernel).
    #[inline]
    pub fn fold_block(mut self, block: &[u8], lo: u64, hi: u64) -> Reduced {
        for w in block.chunks_exact(8) {
            let x = u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
            if x >= lo && x <= hi {
                self.sum = self.sum.wrapping_add(x);
                self.count += 1;
                self.min = self.min.min(x);
                self.max = self.max.max(x);
            }
        }
        self
    }
}

/// A chain request for filter-reduce over `[0, file_size)` (a multiple of
/// [`BLOCK`]) of `file`.
pub fn request(base: ChainRequest, lo: u64, hi: u64, file_size: u64) -> ChainRequest {
    scratch_words(lo, hi, file_size).into_iter().fold(base, |r, (i, v)| r.with_u64(i, v))
}

/// The initial scratch words `(index, value)` of a filter-reduce over
/// `[0, file_size)`.
pub fn scratch_words(lo: u64, hi: u64, file_size: u64) -> [(usize, u64); 8] {
    [(FR_LO, lo), (FR_HI, hi), (FR_END, file_size), (FR_OFF, 0), (FR_SUM, 0), (FR_COUNT, 0), (FR_MIN, u64::MAX), (FR_MAX, 0)]
}

/// Reads the aggregate out of a finished chain's scratch.
pub fn result(scratch: &[u8]) -> Reduced {
    Reduced { sum: u64_at(scratch, FR_SUM * 8), count: u64_at(scratch, FR_COUNT * 8), min: u64_at(scratch, FR_MIN * 8), max: u64_at(scratch, FR_MAX * 8) }
}

fn set(s: &mut [u8], i: usize, v: u64) {
    s[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
}

/// The user-chain twin of `filter_reduce.c`.
pub fn native() -> Function {
    Function::native(BLOCK_BYTES, |d: &[u8], s: &mut [u8], ctx: &mut XrpContext| {
        let acc = Reduced { sum: u64_at(s, FR_SUM * 8), count: u64_at(s, FR_COUNT * 8), min: u64_at(s, FR_MIN * 8), max: u64_at(s, FR_MAX * 8) };
        let r = acc.fold_block(&d[..BLOCK], u64_at(s, FR_LO * 8), u64_at(s, FR_HI * 8));
        set(s, FR_SUM, r.sum);
        set(s, FR_COUNT, r.count);
        set(s, FR_MIN, r.min);
        set(s, FR_MAX, r.max);
        let next = u64_at(s, FR_OFF * 8) + BLOCK as u64;
        set(s, FR_OFF, next);
        if next >= u64_at(s, FR_END * 8) {
            ctx.done = 1;
        } else {
            ctx.next_addr[0] = next;
            ctx.size[0] = BLOCK as u64;
        }
        0
    })
}

/// Reference: the aggregate of a whole byte image.
pub fn reference(bytes: &[u8], lo: u64, hi: u64) -> Reduced {
    bytes.chunks(BLOCK).fold(Reduced::EMPTY, |a, b| a.fold_block(b, lo, hi))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scratch_words_match_the_c_header() {
        let h = include_str!("../../bpf/include/sfe_btree.h");
        for (name, v) in [
            ("SFE_FR_LO", FR_LO),
            ("SFE_FR_HI", FR_HI),
            ("SFE_FR_END", FR_END),
            ("SFE_FR_OFF", FR_OFF),
            ("SFE_FR_SUM", FR_SUM),
            ("SFE_FR_COUNT", FR_COUNT),
            ("SFE_FR_MIN", FR_MIN),
            ("SFE_FR_MAX", FR_MAX),
            ("SFE_FR_BLOCK", BLOCK),
        ] {
            let line = h.lines().find(|l| l.starts_with(&format!("#define {name} "))).unwrap();
            assert_eq!(line.split_whitespace().nth(2).unwrap().parse::<usize>().unwrap(), v, "{name}");
        }
    }

    #[test]
    fn fold_filters_and_reduces() {
        let mut b = vec![0u8; 32];
        for (i, x) in [5u64, 10, 15, 20].iter().enumerate() {
            b[i * 8..i * 8 + 8].copy_from_slice(&x.to_le_bytes());
        }
        assert_eq!(reference(&b, 10, 15), Reduced { sum: 25, count: 2, min: 10, max: 15 });
        assert_eq!(reference(&b, 100, 200), Reduced::EMPTY);
    }
}
