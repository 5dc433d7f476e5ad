//! Translation cost for a file with 10,000 extents (XRP's in-kernel lookup:
//! 96 ns). Run: `cargo bench -p fs-extents --bench translate -- --warm-up-time 1 --measurement-time 3`.

use criterion::{criterion_group, criterion_main, Criterion};
use fs_extents::{ChangeStamp, DevOffset, Extent, ExtentKind, ExtentMap, FileId, FileOffset, Registry, TenantId};
use std::hint::black_box;
use std::sync::Arc;

const EXTENTS: u64 = 10_000;
const BLOCK_BYTES: u64 = 4096;
/// Blocks per extent; physical placement is scattered so no two merge.
const EXTENT_BLOCKS: u64 = 4;
const OFFSETS: usize = 4096;

fn xorshift(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

fn map() -> ExtentMap {
    let len = EXTENT_BLOCKS * BLOCK_BYTES;
    let extents = (0..EXTENTS)
        .map(|i| Extent {
            logical: FileOffset(i * len),
            // Reverse order on the device: every extent is its own run.
            physical: DevOffset((EXTENTS - i) * 2 * len),
            len,
            kind: ExtentKind::Written,
        })
        .collect();
    ExtentMap::new(extents, EXTENTS * len, BLOCK_BYTES, ChangeStamp::default()).expect("valid extents")
}

fn bench(c: &mut Criterion) {
    let m = map();
    assert_eq!(m.extents().len(), usize::try_from(EXTENTS).expect("fits"));
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let offsets: Vec<FileOffset> = (0..OFFSETS).map(|_| FileOffset((xorshift(&mut x) % (EXTENTS * EXTENT_BLOCKS)) * BLOCK_BYTES)).collect();
    let mut i = 0usize;
    c.bench_function("translate_4k_random_10k_extents", |b| {
        b.iter(|| {
            i = (i + 1) % OFFSETS;
            black_box(m.translate(black_box(offsets[i]), BLOCK_BYTES))
        })
    });
    c.bench_function("translate_4k_same_offset_10k_extents", |b| b.iter(|| black_box(m.translate(black_box(FileOffset(5_000 * EXTENT_BLOCKS * BLOCK_BYTES)), BLOCK_BYTES))));
}

/// What a chain pays per hop besides translation: the version check on the
/// handle it holds; and once per chain: the access-checked lookup.
fn bench_registry(c: &mut Criterion) {
    let r = Registry::new();
    for t in 0..16 {
        r.add_tenant(TenantId(t));
    }
    let files: Vec<FileId> = (0..256).map(|_| r.add_file(Arc::new(map_small())).expect("room")).collect();
    for (i, f) in files.iter().enumerate() {
        r.grant(TenantId(u32::try_from(i % 16).expect("small")), *f).expect("known");
    }
    let snap = r.snapshot();
    let (t, f) = (TenantId(5), files[5]);
    c.bench_function("registry_snapshot_lookup", |b| b.iter(|| black_box(snap.lookup(black_box(t), black_box(f))).is_ok()));
    let handle = snap.lookup(t, f).expect("granted");
    c.bench_function("handle_is_current", |b| b.iter(|| black_box(&handle).is_current()));
}

fn map_small() -> ExtentMap {
    ExtentMap::new(vec![], 4096, BLOCK_BYTES, ChangeStamp::default()).expect("empty map")
}

criterion_group!(benches, bench, bench_registry);
criterion_main!(benches);
