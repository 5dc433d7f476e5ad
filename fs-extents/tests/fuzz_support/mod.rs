//! A deterministic mutation fuzzer for the ext4 reader, shared by the
//! `fuzz_ext4` test (fixed iteration count) and the `fuzz_ext4` example
//! (runs for a given number of seconds; for CI). Stable Rust, no cargo-fuzz.
//! Mutations target the structures the reader parses: superblock, group
//! descriptors, inode records, extent tree blocks and directory blocks.
#![allow(dead_code)]

use fs_extents::{Ext4, FileOffset};
use std::fs;
use std::path::Path;
use std::process::Command;

/// Files the harness looks up in every mutant.
pub const PATHS: [&str; 4] = ["/f.txt", "/sparse.bin", "/d/g.bin", "/d"];

/// The pristine image and the byte ranges worth mutating.
pub struct Corpus {
    pub image: Vec<u8>,
    pub regions: Vec<(usize, usize)>,
}

/// Builds a small image with a deep-ish extent tree and a nested directory.
pub fn corpus(dir: &Path) -> Corpus {
    let src = dir.join("src");
    fs::create_dir_all(src.join("d")).expect("mkdir");
    fs::write(src.join("f.txt"), vec![7u8; 5000]).expect("write");
    fs::write(src.join("d/g.bin"), vec![9u8; 40000]).expect("write");
    let f = fs::File::create(src.join("sparse.bin")).expect("create");
    for b in (0..1200u64).step_by(2) {
        std::os::unix::fs::FileExt::write_all_at(&f, &[1u8; 4096], b * 4096).expect("write");
    }
    let img = dir.join("fuzz.img");
    let out = Command::new("mkfs.ext4").args(["-F", "-q", "-b", "4096", "-d"]).arg(&src).arg(&img).arg("8M").output().expect("mkfs.ext4 (install e2fsprogs)");
    assert!(out.status.success(), "mkfs.ext4: {}", String::from_utf8_lossy(&out.stderr));
    let image = fs::read(&img).expect("read image");
    let mut regions = vec![(1024, 2048), (4096, 4096 + 256)];
    let fs = Ext4::open(&image).expect("pristine image parses");
    let bs = 4096usize;
    for ino in [2u32, 11, 12, 13, 14, 15, 16] {
        if let Ok(off) = fs.inode_offset(ino) {
            let off = usize::try_from(off).expect("small image");
            regions.push((off, off + 256));
        }
    }
    for path in PATHS {
        let Ok(ino) = fs.lookup(path) else { continue };
        let Ok(inode) = fs.inode(ino) else { continue };
        // Tree blocks (index nodes) and the first data block of directories.
        let mut blocks = Vec::new();
        if let Ok(map) = fs.file_map(path) {
            if let Some(e) = map.extents().first() {
                blocks.push(usize::try_from(e.physical.0).expect("small") / bs);
            }
        } else if inode.is_dir() {
            blocks.push(usize::try_from(u32::from_le_bytes(inode.block[20..24].try_into().expect("4 bytes"))).expect("small"));
        }
        if u16::from_le_bytes([inode.block[6], inode.block[7]]) > 0 {
            blocks.push(usize::try_from(u32::from_le_bytes(inode.block[16..20].try_into().expect("4 bytes"))).expect("small"));
        }
        for b in blocks {
            if (b + 1) * bs <= image.len() {
                regions.push((b * bs, b * bs + bs.min(512)));
            }
        }
    }
    Corpus { image, regions }
}

/// xorshift64*: deterministic, good enough to pick mutations.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).expect("below n")
    }
}

/// Outcome counts, so a run can show it got past the first checks.
#[derive(Debug, Default)]
pub struct Stats {
    pub runs: u64,
    pub opened: u64,
    pub mapped: u64,
    pub errors: u64,
}

/// Parses one image as a user would: open, look up, map, translate.
pub fn exercise(image: &[u8], stats: &mut Stats) {
    stats.runs += 1;
    let fs = match Ext4::open(image) {
        Ok(fs) => fs,
        Err(e) => {
            let _ = e.to_string();
            stats.errors += 1;
            return;
        }
    };
    stats.opened += 1;
    for path in PATHS {
        match fs.file_map(path) {
            Ok(map) => {
                stats.mapped += 1;
                let limit = map.access_limit().0;
                for off in [0, limit / 3, limit.saturating_sub(1), limit, u64::MAX - 1] {
                    let _ = map.translate(FileOffset(off), 4096);
                }
                let n = map.segments(FileOffset(0), limit.max(1)).take(10_000).count();
                assert!(n > 0);
            }
            Err(e) => {
                let _ = e.to_string();
                stats.errors += 1;
            }
        }
    }
    for ino in 1..=20 {
        let _ = fs.extent_map(ino);
    }
}

/// One mutant: applies 1-4 mutations in place, runs the harness, undoes them.
pub fn one(corpus: &mut Corpus, rng: &mut Rng, stats: &mut Stats) {
    let mut undo = Vec::new();
    for _ in 0..=rng.below(4) {
        let (lo, hi) = corpus.regions[rng.below(corpus.regions.len())];
        let at = lo + rng.below(hi - lo);
        let width = [1usize, 2, 4][rng.below(3)].min(corpus.image.len() - at);
        let value: u64 = match rng.below(4) {
            0 => 0,
            1 => u64::MAX,
            2 => rng.next() % 16,
            _ => rng.next(),
        };
        for i in 0..width {
            undo.push((at + i, corpus.image[at + i]));
            corpus.image[at + i] = value.to_le_bytes()[i];
        }
    }
    let len = if rng.below(20) == 0 { rng.below(corpus.image.len()) } else { corpus.image.len() };
    exercise(&corpus.image[..len], stats);
    for (at, old) in undo.into_iter().rev() {
        corpus.image[at] = old;
    }
}
