//! What each I/O of a perf job is: read or write, and where. Offsets are
//! sequential, uniform random, or Zipf-distributed over the job's region, in
//! units of the I/O size; the read/write mix is drawn per I/O. Also the
//! verification pattern: every block written by a verify pass carries bytes
//! derived from its offset and a seed, so a later read can check them.

use anyhow::{bail, Result};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};

/// SPDK perf's `-w` patterns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pattern {
    /// Sequential reads.
    Read,
    /// Uniform random reads.
    Randread,
    /// Sequential writes.
    Write,
    /// Uniform random writes.
    Randwrite,
    /// Sequential, reads and writes mixed by -M.
    Rw,
    /// Random, reads and writes mixed by -M.
    Randrw,
}

impl Pattern {
    pub fn name(self) -> &'static str {
        match self {
            Pattern::Read => "read",
            Pattern::Randread => "randread",
            Pattern::Write => "write",
            Pattern::Randwrite => "randwrite",
            Pattern::Rw => "rw",
            Pattern::Randrw => "randrw",
        }
    }
    pub fn is_random(self) -> bool {
        matches!(self, Pattern::Randread | Pattern::Randwrite | Pattern::Randrw)
    }
    pub fn is_mixed(self) -> bool {
        matches!(self, Pattern::Rw | Pattern::Randrw)
    }
    /// Percentage of reads, given -M for the mixed patterns.
    pub fn read_pct(self, mix: Option<u8>) -> u8 {
        match self {
            Pattern::Read | Pattern::Randread => 100,
            Pattern::Write | Pattern::Randwrite => 0,
            Pattern::Rw | Pattern::Randrw => mix.unwrap_or(50),
        }
    }
}

/// One I/O.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Io {
    pub write: bool,
    /// Byte offset in the device (region base included).
    pub offset: u64,
}

/// The shape of a job, shared by its threads.
#[derive(Debug, Clone)]
pub struct Shape {
    /// Bytes per I/O.
    pub io_size: u64,
    /// Byte offset of the region's start on the device.
    pub base: u64,
    /// Bytes of the region (a multiple of `io_size`).
    pub region: u64,
    pub pattern: Pattern,
    pub read_pct: u8,
    /// Zipf theta (-F), for the random patterns.
    pub zipf: Option<f64>,
}

impl Shape {
    /// I/O units in the region.
    pub fn units(&self) -> u64 {
        self.region / self.io_size
    }
}

/// Draws the I/Os of one thread, deterministically from a seed.
pub struct OpGen {
    shape: Shape,
    rng: SmallRng,
    zipf: Option<Zipf<f64>>,
    /// Next sequential unit, and the end of this thread's slice in `once` mode.
    next: u64,
    end: u64,
    once: Option<bool>,
}

impl OpGen {
    /// Timed I/Os of thread `t` of `threads`: sequential patterns start at
    /// the thread's share of the region and wrap around.
    pub fn timed(shape: &Shape, t: u32, threads: u32, seed: u64) -> Result<OpGen> {
        let units = shape.units();
        let zipf = match shape.zipf {
            Some(theta) if shape.pattern.is_random() => match Zipf::new(units as f64, theta) {
                Ok(z) => Some(z),
                Err(e) => bail!("-F {theta}: {e}"),
            },
            _ => None,
        };
        let start = units * u64::from(t) / u64::from(threads.max(1));
        Ok(OpGen { shape: shape.clone(), rng: SmallRng::seed_from_u64(seed ^ (u64::from(t) << 32)), zipf, next: start, end: units, once: None })
    }

    /// Every unit of thread `t`'s slice of the region exactly once, in order,
    /// all writes (`write`) or all reads: a verify pass.
    pub fn once(shape: &Shape, t: u32, threads: u32, write: bool) -> OpGen {
        let units = shape.units();
        let n = u64::from(threads.max(1));
        let start = units * u64::from(t) / n;
        let end = units * (u64::from(t) + 1) / n;
        OpGen { shape: shape.clone(), rng: SmallRng::seed_from_u64(0), zipf: None, next: start, end, once: Some(write) }
    }

    /// The next I/O; None when a verify pass has covered its slice.
    #[inline]
    pub fn next_io(&mut self) -> Option<Io> {
        let s = &self.shape;
        if let Some(write) = self.once {
            if self.next >= self.end {
                return None;
            }
            let unit = self.next;
            self.next += 1;
            return Some(Io { write, offset: s.base + unit * s.io_size });
        }
        let units = self.end;
        let unit = if !s.pattern.is_random() {
            let u = self.next;
            self.next = if u + 1 >= units { 0 } else { u + 1 };
            u
        } else if let Some(z) = &self.zipf {
            // Zipf draws 1..=units (as f64): a positive whole number below 2^53.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let k = z.sample(&mut self.rng) as u64;
            // The most popular unit is 0.
            k.saturating_sub(1).min(units - 1)
        } else {
            self.rng.random_range(0..units)
        };
        let write = match s.read_pct {
            100 => false,
            0 => true,
            p => self.rng.random_range(0..100u8) >= p,
        };
        Some(Io { write, offset: s.base + unit * s.io_size })
    }
}

/// splitmix64: a cheap, well-mixed function of one word.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The verify pattern of the bytes at device offset `offset`: each 8-byte
/// word is a function of its own device offset and `seed`, so a block read
/// from the wrong place, or left stale, does not match.
pub fn fill(buf: &mut [u8], offset: u64, seed: u64) {
    for (i, w) in buf.chunks_exact_mut(8).enumerate() {
        w.copy_from_slice(&mix(seed ^ (offset + 8 * i as u64)).to_le_bytes());
    }
}

/// Checks `buf` against the pattern [`fill`] writes at `offset`; the first
/// bad word's device offset on a mismatch.
pub fn check(buf: &[u8], offset: u64, seed: u64) -> Result<(), u64> {
    for (i, w) in buf.chunks_exact(8).enumerate() {
        let at = offset + 8 * i as u64;
        if w != mix(seed ^ at).to_le_bytes() {
            return Err(at);
        }
    }
    Ok(())
}

/// Fills `buf` with incompressible bytes (what the write benchmarks write:
/// a RAM-backed device that compresses, like zram, gains nothing).
pub fn fill_random(buf: &mut [u8], seed: u64) {
    let mut rng = SmallRng::seed_from_u64(seed);
    rng.fill(buf);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(pattern: Pattern) -> Shape {
        Shape { io_size: 4096, base: 8192, region: 4096 * 10, pattern, read_pct: pattern.read_pct(Some(30)), zipf: None }
    }

    #[test]
    fn sequential_wraps_and_stays_in_region() {
        let mut g = OpGen::timed(&shape(Pattern::Read), 0, 1, 1).unwrap();
        let offs: Vec<u64> = (0..12).map(|_| g.next_io().unwrap().offset).collect();
        assert_eq!(offs[0], 8192);
        assert_eq!(offs[9], 8192 + 9 * 4096);
        assert_eq!(offs[10], 8192);
        assert!(offs.iter().all(|&o| !g.next_io().unwrap().write && o >= 8192));
    }

    #[test]
    fn random_mixed_and_zipf_stay_in_region_with_the_mix() {
        let mut s = shape(Pattern::Randrw);
        let mut g = OpGen::timed(&s, 1, 2, 7).unwrap();
        let ios: Vec<Io> = (0..10_000).map(|_| g.next_io().unwrap()).collect();
        assert!(ios.iter().all(|io| io.offset >= 8192 && io.offset < 8192 + 40960 && io.offset % 4096 == 0));
        let writes = ios.iter().filter(|i| i.write).count();
        assert!((6500..7500).contains(&writes), "{writes} writes of 10000 at 30 % reads");
        s.zipf = Some(1.2);
        let mut z = OpGen::timed(&s, 0, 1, 7).unwrap();
        let first = (0..10_000).filter(|_| z.next_io().unwrap().offset == 8192).count();
        assert!(first > 3000, "unit 0 drawn {first} times of 10000 with theta 1.2");
    }

    #[test]
    fn once_covers_every_unit_exactly_once_across_threads() {
        let s = shape(Pattern::Randread);
        let mut seen = Vec::new();
        for t in 0..3 {
            let mut g = OpGen::once(&s, t, 3, true);
            while let Some(io) = g.next_io() {
                assert!(io.write);
                seen.push(io.offset);
            }
        }
        seen.sort_unstable();
        assert_eq!(seen, (0..10).map(|u| 8192 + u * 4096).collect::<Vec<_>>());
    }

    #[test]
    fn pattern_detects_wrong_offset_and_seed() {
        let mut b = vec![0u8; 4096];
        fill(&mut b, 4096, 5);
        assert_eq!(check(&b, 4096, 5), Ok(()));
        assert_eq!(check(&b, 8192, 5), Err(8192));
        assert_eq!(check(&b, 4096, 6), Err(4096));
        b[100] ^= 1;
        assert_eq!(check(&b, 4096, 5), Err(4096 + 96));
    }
}
