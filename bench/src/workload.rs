//! Workloads: what one operation asks, what it answers, how keys are drawn,
//! and the reference each engine's answers are checked against.

use anyhow::{bail, Result};
use chaining::{ChainRequest, Function, ProgId};
use fs_extents::{FileId, FileOffset, TenantId};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};
use workloads::btree::{self, Superblock};
use workloads::filter::{self, Reduced};

/// The workloads `run` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// Point lookups, keys drawn uniformly.
    LookupUniform,
    /// Point lookups, keys drawn from a Zipf distribution (s = 0.99).
    LookupZipf,
    /// Range scans with SUM over `--range-keys` consecutive keys.
    Range,
    /// Filter-reduce (SUM/COUNT/MIN/MAX of values in a range) over a file of u64.
    Filter,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::LookupUniform => "lookup-uniform",
            Kind::LookupZipf => "lookup-zipf",
            Kind::Range => "range",
            Kind::Filter => "filter",
        }
    }
    pub fn is_tree(self) -> bool {
        self != Kind::Filter
    }
}

/// One operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Lookup(u64),
    Range(u64, u64),
    Filter(u64, u64),
}

/// What an operation answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Lookup(Option<u64>),
    Range { sum: u64, count: u64 },
    Filter(Reduced),
}

/// The data a workload runs on.
#[derive(Debug, Clone)]
pub enum Data {
    Tree(Superblock),
    /// A file of u64 of this many bytes.
    Nums(u64),
}

impl Data {
    /// Block size of every read.
    pub fn block(&self) -> u32 {
        match self {
            Data::Tree(sb) => node_bytes(sb),
            Data::Nums(_) => filter::BLOCK_BYTES,
        }
    }
}

/// Bytes of a database's node: 512 or 4096 (`Superblock::read` checks), so it fits u32.
fn node_bytes(sb: &Superblock) -> u32 {
    u32::try_from(sb.node_size).unwrap_or(u32::MAX)
}

/// Draws operations, deterministically from a seed.
pub struct Gen {
    kind: Kind,
    rng: SmallRng,
    keys: u64,
    zipf: Option<Zipf<f64>>,
    range_keys: u64,
}

impl Gen {
    pub fn new(kind: Kind, data: &Data, range_keys: u64, seed: u64) -> Result<Gen> {
        let keys = match data {
            Data::Tree(sb) => sb.keys,
            Data::Nums(_) => 1,
        };
        let zipf = match kind {
            Kind::LookupZipf => Some(Zipf::new(keys as f64, 0.99).map_err(|e| anyhow::anyhow!("zipf over {keys} keys: {e}"))?),
            _ => None,
        };
        if kind.is_tree() != matches!(data, Data::Tree(_)) {
            bail!("workload {} needs a {}", kind.name(), if kind.is_tree() { "database made by sfbench mkdb" } else { "file of u64 made by sfbench mknums" });
        }
        Ok(Gen { kind, rng: SmallRng::seed_from_u64(seed), keys, zipf, range_keys: range_keys.max(1) })
    }

    pub fn next_op(&mut self) -> Op {
        match self.kind {
            Kind::LookupUniform => {
                // One in eight lookups asks for an absent key (odd numbers are never stored).
                let i = self.rng.random_range(0..self.keys);
                Op::Lookup(btree::key_at(i) + u64::from(self.rng.random_range(0..8u32) == 0))
            }
            Kind::LookupZipf => {
                let z = self.zipf.as_ref().map_or(1.0, |z| z.sample(&mut self.rng));
                // Zipf samples lie in [1, keys]; scatter the popular ranks over the key space.
                // Zipf samples are whole numbers in [1, keys]: the cast is exact.
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                let rank = (z as u64).saturating_sub(1) % self.keys;
                Op::Lookup(btree::key_at(rank.wrapping_mul(0x9e37_79b9) % self.keys))
            }
            Kind::Range => {
                let i = self.rng.random_range(0..self.keys);
                Op::Range(btree::key_at(i), btree::key_at(i + self.range_keys - 1))
            }
            Kind::Filter => {
                let lo = self.rng.random_range(0..500_000u64);
                Op::Filter(lo, lo + 250_000)
            }
        }
    }
}

/// How an operation starts: its first read and its initial scratch. The
/// chain engines wrap it in a `ChainRequest`; the kernel engines use it as is.
#[derive(Debug, Clone)]
pub struct Start {
    pub offset: FileOffset,
    pub size: u32,
    /// Initial scratch words (the rest of the scratch is zero).
    pub scratch: Vec<u8>,
}

fn words(w: &[(usize, u64)]) -> Vec<u8> {
    let n = w.iter().map(|&(i, _)| i + 1).max().unwrap_or(0);
    let mut s = vec![0u8; n * 8];
    for &(i, v) in w {
        s[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
    }
    s
}

/// The first read and scratch of an operation.
pub fn start(op: Op, data: &Data) -> Start {
    match (op, data) {
        (Op::Lookup(k), Data::Tree(sb)) => Start { offset: FileOffset(sb.root), size: node_bytes(sb), scratch: words(&[(btree::LK_KEY, k)]) },
        (Op::Range(lo, hi), Data::Tree(sb)) => Start { offset: FileOffset(sb.root), size: node_bytes(sb), scratch: words(&[(btree::RS_LO, lo), (btree::RS_HI, hi)]) },
        (Op::Filter(lo, hi), Data::Nums(size)) => Start { offset: FileOffset(0), size: filter::BLOCK_BYTES, scratch: words(&filter::scratch_words(lo, hi, *size)) },
        // Gen::new refuses mismatched workloads and data.
        _ => unreachable!("operation does not fit the data"),
    }
}

/// The chain request for an operation.
pub fn request(op: Op, data: &Data, tenant: TenantId, file: FileId, prog: ProgId) -> ChainRequest {
    let s = start(op, data);
    ChainRequest { scratch: s.scratch, ..ChainRequest::new(tenant, file, s.offset, s.size, prog) }
}

/// Reads the answer out of a finished chain's scratch.
pub fn answer(op: Op, s: &[u8]) -> Answer {
    let w = |i: usize| btree::u64_at(s, i * 8);
    match op {
        Op::Lookup(_) => Answer::Lookup((w(btree::LK_FOUND) == 1).then(|| w(btree::LK_VALUE))),
        Op::Range(..) => Answer::Range { sum: w(btree::RS_SUM), count: w(btree::RS_COUNT) },
        Op::Filter(..) => Answer::Filter(filter::result(s)),
    }
}

/// The native storage function for a workload (user-chain, and the per-block
/// logic of the kernel engines).
pub fn native_function(kind: Kind, data: &Data) -> Function {
    let ns = data.block() as usize;
    match kind {
        Kind::LookupUniform | Kind::LookupZipf => btree::native_lookup(ns),
        Kind::Range => btree::native_range_sum(ns),
        Kind::Filter => filter::native(),
    }
}

/// The bundled BPF object for a workload.
pub fn bpf_object(kind: Kind, data: &Data) -> &'static [u8] {
    let ns = data.block() as usize;
    match kind {
        Kind::LookupUniform | Kind::LookupZipf => workloads::programs::lookup(ns),
        Kind::Range => workloads::programs::range_sum(ns),
        Kind::Filter => workloads::programs::FILTER_REDUCE,
    }
}

/// The reference answer: an independent traversal of the file with plain reads.
pub fn reference(op: Op, data: &Data, file: &std::fs::File, nums: Option<&[u8]>) -> Result<Answer> {
    Ok(match (op, data) {
        (Op::Lookup(k), Data::Tree(sb)) => Answer::Lookup(btree::reference_lookup(file, sb, k)?.0),
        (Op::Range(lo, hi), Data::Tree(sb)) => {
            let (sum, count) = btree::reference_range_sum(file, sb, lo, hi)?;
            Answer::Range { sum, count }
        }
        (Op::Filter(lo, hi), Data::Nums(_)) => Answer::Filter(filter::reference(nums.unwrap_or(&[]), lo, hi)),
        _ => bail!("operation does not fit the data"),
    })
}
