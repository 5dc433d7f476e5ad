//! The bundled storage functions, built from `bpf/*.c` by `build.rs`.

/// Point lookup, 4 KiB nodes.
pub const BTREE_LOOKUP_4K: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/btree_lookup_4k.o"));
/// Point lookup, 512-byte nodes.
pub const BTREE_LOOKUP_512: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/btree_lookup_512.o"));
/// Range scan with SUM, 4 KiB nodes.
pub const RANGE_SUM_4K: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/range_sum_4k.o"));
/// Range scan with SUM, 512-byte nodes.
pub const RANGE_SUM_512: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/range_sum_512.o"));
/// Filter-reduce over a file of u64.
pub const FILTER_REDUCE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/filter_reduce.o"));

/// Every bundled object with its name.
pub const ALL: &[(&str, &[u8])] = &[
    ("btree_lookup_4k", BTREE_LOOKUP_4K),
    ("btree_lookup_512", BTREE_LOOKUP_512),
    ("range_sum_4k", RANGE_SUM_4K),
    ("range_sum_512", RANGE_SUM_512),
    ("filter_reduce", FILTER_REDUCE),
];

/// The lookup program for a node size.
pub fn lookup(node_size: usize) -> &'static [u8] {
    if node_size == 512 {
        BTREE_LOOKUP_512
    } else {
        BTREE_LOOKUP_4K
    }
}

/// The range-sum program for a node size.
pub fn range_sum(node_size: usize) -> &'static [u8] {
    if node_size == 512 {
        RANGE_SUM_512
    } else {
        RANGE_SUM_4K
    }
}
