//! The on-disk B+-tree format (the Rust side of `bpf/include/sfe_btree.h`;
//! a test checks the constants against the header), a builder that writes a
//! database, an independent reference traversal that reads the file with
//! plain `pread`s, and the native (user-chain) storage functions.
//! See docs/format.md.

use chaining::Function;
use ebpf_runtime::XrpContext;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;

pub const MAGIC: u32 = 0x5442_4653;
pub const KIND_INNER: u8 = 1;
pub const KIND_LEAF: u8 = 2;
pub const KIND_SUPER: u8 = 3;
pub const HDR: usize = 16;

/// Keys (and values) a node of `node_size` bytes holds.
pub const fn fanout(node_size: usize) -> usize {
    (node_size - HDR) / 16
}
pub const fn vals_off(node_size: usize) -> usize {
    HDR + 8 * fanout(node_size)
}

/// Node sizes the bundled programs are built for.
pub const NODE_SIZES: [usize; 2] = [4096, 512];
/// The deepest tree the format allows (a level is a byte in a node's header;
/// 2-key nodes reach 2^64 keys well before this).
pub const DEPTH_MAX: u64 = 64;
/// How many leaf entries the builder reserves room for up front.
const LEVEL_RESERVE_MAX: usize = 1 << 20;
/// Most leaves [`build`] makes: it keeps 16 bytes per leaf in memory while
/// it builds the level above (1 GiB at this maximum), and the file is at
/// least this many nodes (256 GiB of 4 KiB nodes).
pub const LEAVES_MAX: u64 = 1 << 26;

/// Most keys [`build`] takes at `per` keys per leaf.
pub const fn keys_max(per: usize) -> u64 {
    LEAVES_MAX * per as u64
}

// Scratch words of the three workloads (sfe_btree.h).
pub const LK_KEY: usize = 0;
pub const LK_VALUE: usize = 1;
pub const LK_FOUND: usize = 2;
pub const LK_NODES: usize = 3;
pub const RS_LO: usize = 0;
pub const RS_HI: usize = 1;
pub const RS_SUM: usize = 2;
pub const RS_COUNT: usize = 3;
pub const RS_NODES: usize = 4;
/// What a program returns for a block that is not a valid node.
pub const ERR_BAD_NODE: u64 = 1;

/// Errors reading a database.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// The caller's context says whether it was reading or writing.
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error("not a B+-tree database of this format (bad magic {found:#x} at offset {offset}); rebuild it with btree::build_file")]
    BadMagic { offset: u64, found: u32 },
    #[error("corrupt database: {0}; rebuild it with btree::build_file")]
    Corrupt(String),
    /// What [`build`] was asked for cannot be built.
    #[error("cannot build that database: {0}")]
    Unbuildable(String),
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}
/// The little-endian u64 at byte `o` of `b`.
pub fn u64_at(b: &[u8], o: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[o..o + 8]);
    u64::from_le_bytes(x)
}

/// The superblock (node 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Superblock {
    pub root: u64,
    pub keys: u64,
    /// Levels including the leaves.
    pub depth: u64,
    pub node_size: u64,
    pub seed: u64,
}

impl Superblock {
    /// Bytes of a node: 512 or 4096 (checked by [`Superblock::read`]; a
    /// superblock made by hand with another size is treated as 4096).
    pub fn node_len(&self) -> usize {
        match usize::try_from(self.node_size) {
            Ok(n) if NODE_SIZES.contains(&n) => n,
            _ => NODE_SIZES[0],
        }
    }

    /// Reads and checks the superblock of a database file.
    pub fn read(file: &std::fs::File) -> Result<Superblock, FormatError> {
        let mut b = [0u8; 512];
        file.read_exact_at(&mut b, 0).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                FormatError::Corrupt("file shorter than a superblock".into())
            } else {
                FormatError::Io(e)
            }
        })?;
        let magic = u32_at(&b, 0);
        if magic != MAGIC || b[4] != KIND_SUPER {
            return Err(FormatError::BadMagic { offset: 0, found: magic });
        }
        let sb = Superblock { root: u64_at(&b, 8), keys: u64_at(&b, HDR), depth: u64_at(&b, HDR + 8), node_size: u64_at(&b, HDR + 16), seed: u64_at(&b, HDR + 24) };
        if !usize::try_from(sb.node_size).is_ok_and(|n| NODE_SIZES.contains(&n)) {
            return Err(FormatError::Corrupt(format!("node size {} is not 4096 or 512", sb.node_size)));
        }
        if sb.depth == 0 || sb.depth > DEPTH_MAX {
            return Err(FormatError::Corrupt(format!("depth {} is not between 1 and {DEPTH_MAX}", sb.depth)));
        }
        // Seek, not metadata: a block device's metadata length is 0.
        let len = io::Seek::seek(&mut &*file, io::SeekFrom::End(0))?;
        if sb.root == 0 || sb.root % sb.node_size != 0 || sb.root >= len {
            return Err(FormatError::Corrupt(format!("root offset {} outside the {len}-byte file", sb.root)));
        }
        if sb.depth == 0 || sb.depth > 64 {
            return Err(FormatError::Corrupt(format!("depth {}", sb.depth)));
        }
        Ok(sb)
    }
}

/// The value stored under `key` by the builder for a given seed: anyone can
/// check an answer without the database.
pub fn value_of(key: u64, seed: u64) -> u64 {
    let mut x = key ^ seed.rotate_left(17) ^ 0x9e37_79b9_7f4a_7c15;
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x
}

/// The `i`-th key of a database of `n` keys: spread out so lookups of absent
/// keys (odd numbers) are possible.
pub fn key_at(i: u64) -> u64 {
    i * 2 + 2
}

/// Writes a database of `n` keys (`key_at(0..n)`, values `value_of`) with
/// at most `max_keys` keys per node. Calls `progress(leaves_written)`.
pub fn build<W: Write>(out: &mut W, n: u64, node_size: usize, max_keys: usize, seed: u64, mut progress: impl FnMut(u64)) -> Result<Superblock, FormatError> {
    let f = fanout(node_size);
    if !NODE_SIZES.contains(&node_size) {
        return Err(FormatError::Unbuildable(format!("{node_size}-byte nodes; the node size is 4096 or 512")));
    }
    let per = max_keys.clamp(2, f);
    if n == 0 {
        return Err(FormatError::Unbuildable("a database needs at least one key".into()));
    }
    if n > keys_max(per) {
        return Err(FormatError::Unbuildable(format!("{n} keys at {per} per leaf; at most {} (LEAVES_MAX leaves)", keys_max(per))));
    }
    let mut node = vec![0u8; node_size];
    // Node 0 is the superblock, written last by the caller's seek... we
    // write a placeholder and return the real one for `write_superblock`.
    out.write_all(&node)?;
    let mut next_off = node_size as u64;
    let leaves = n.div_ceil(per as u64);
    let mut level: Vec<(u64, u64)> = Vec::with_capacity(usize::try_from(leaves).unwrap_or(LEVEL_RESERVE_MAX).min(LEVEL_RESERVE_MAX));
    let mut i = 0u64;
    for leaf in 0..leaves {
        let cnt = usize::try_from(n - i).unwrap_or(usize::MAX).min(per);
        node.fill(0);
        let off = next_off;
        let next = if leaf + 1 < leaves { off + node_size as u64 } else { 0 };
        write_header(&mut node, KIND_LEAF, 0, cnt, next);
        for k in 0..cnt {
            let key = key_at(i + k as u64);
            node[HDR + 8 * k..HDR + 8 * k + 8].copy_from_slice(&key.to_le_bytes());
            let vo = vals_off(node_size) + 8 * k;
            node[vo..vo + 8].copy_from_slice(&value_of(key, seed).to_le_bytes());
        }
        level.push((key_at(i), off));
        out.write_all(&node)?;
        next_off += node_size as u64;
        i += cnt as u64;
        if leaf % 4096 == 0 {
            progress(leaf);
        }
    }
    progress(leaves);
    let mut depth = 1u64;
    while level.len() > 1 {
        let mut up = Vec::with_capacity(level.len().div_ceil(per));
        for chunk in level.chunks(per) {
            node.fill(0);
            let level = u8::try_from(depth).map_err(|_| FormatError::Corrupt(format!("a tree deeper than {DEPTH_MAX} levels")))?;
            write_header(&mut node, KIND_INNER, level, chunk.len(), 0);
            for (k, (key, child)) in chunk.iter().enumerate() {
                node[HDR + 8 * k..HDR + 8 * k + 8].copy_from_slice(&key.to_le_bytes());
                let vo = vals_off(node_size) + 8 * k;
                node[vo..vo + 8].copy_from_slice(&child.to_le_bytes());
            }
            up.push((chunk[0].0, next_off));
            out.write_all(&node)?;
            next_off += node_size as u64;
        }
        level = up;
        depth += 1;
    }
    Ok(Superblock { root: level[0].1, keys: n, depth, node_size: node_size as u64, seed })
}

fn write_header(node: &mut [u8], kind: u8, level: u8, nkeys: usize, next: u64) {
    node[0..4].copy_from_slice(&MAGIC.to_le_bytes());
    node[4] = kind;
    node[5] = level;
    // Callers pass at most `fanout(node_size)` keys, which is at most 255.
    let nkeys = u16::try_from(nkeys).expect("a node holds at most 255 keys");
    node[6..8].copy_from_slice(&nkeys.to_le_bytes());
    node[8..16].copy_from_slice(&next.to_le_bytes());
}

/// The superblock node's bytes.
pub fn superblock_bytes(sb: &Superblock) -> Vec<u8> {
    let mut node = vec![0u8; sb.node_len()];
    write_header(&mut node, KIND_SUPER, 0, 0, sb.root);
    for (i, v) in [sb.keys, sb.depth, sb.node_size, sb.seed].iter().enumerate() {
        node[HDR + 8 * i..HDR + 8 * i + 8].copy_from_slice(&v.to_le_bytes());
    }
    node
}

/// Builds a database into `path` (created or truncated).
pub fn build_file(path: &std::path::Path, n: u64, node_size: usize, max_keys: usize, seed: u64, progress: impl FnMut(u64)) -> Result<Superblock, FormatError> {
    let file = std::fs::File::create(path)?;
    let mut w = io::BufWriter::with_capacity(1 << 20, &file);
    let sb = build(&mut w, n, node_size, max_keys, seed, progress)?;
    w.flush()?;
    drop(w);
    file.write_all_at(&superblock_bytes(&sb), 0)?;
    file.sync_all()?;
    Ok(sb)
}

/// A node read for the reference traversal.
struct NodeView {
    kind: u8,
    n: usize,
    next: u64,
    buf: Vec<u8>,
    vals: usize,
}

impl NodeView {
    fn read(file: &std::fs::File, off: u64, node_size: usize) -> Result<NodeView, FormatError> {
        let mut buf = vec![0u8; node_size];
        file.read_exact_at(&mut buf, off)?;
        let magic = u32_at(&buf, 0);
        if magic != MAGIC {
            return Err(FormatError::BadMagic { offset: off, found: magic });
        }
        let n = usize::from(u16_at(&buf, 6));
        if n == 0 || n > fanout(node_size) {
            return Err(FormatError::Corrupt(format!("node at {off} holds {n} keys")));
        }
        Ok(NodeView { kind: buf[4], n, next: u64_at(&buf, 8), vals: vals_off(node_size), buf })
    }
    fn key(&self, i: usize) -> u64 {
        u64_at(&self.buf, HDR + 8 * i)
    }
    fn val(&self, i: usize) -> u64 {
        u64_at(&self.buf, self.vals + 8 * i)
    }
    /// Number of keys <= `key` (linear: independent of the programs' binary search).
    fn rank(&self, key: u64) -> usize {
        (0..self.n).take_while(|&i| self.key(i) <= key).count()
    }
}

/// Reference point lookup with plain reads: `(value if found, nodes read)`.
pub fn reference_lookup(file: &std::fs::File, sb: &Superblock, key: u64) -> Result<(Option<u64>, u32), FormatError> {
    let ns = sb.node_len();
    let mut off = sb.root;
    // `Superblock::read` keeps depth at most DEPTH_MAX.
    let levels = u32::try_from(sb.depth.min(DEPTH_MAX)).unwrap_or(0);
    for visited in 1..=levels + 1 {
        let node = NodeView::read(file, off, ns)?;
        let r = node.rank(key);
        match node.kind {
            KIND_LEAF => return Ok(((r > 0 && node.key(r - 1) == key).then(|| node.val(r - 1)), visited)),
            KIND_INNER if r == 0 => return Ok((None, visited)),
            KIND_INNER => off = node.val(r - 1),
            k => return Err(FormatError::Corrupt(format!("node at {off} has kind {k}"))),
        }
    }
    Err(FormatError::Corrupt("deeper than the superblock says".into()))
}

/// Reference range sum over keys in `[lo, hi]`: `(sum, count)`.
pub fn reference_range_sum(file: &std::fs::File, sb: &Superblock, lo: u64, hi: u64) -> Result<(u64, u64), FormatError> {
    let ns = sb.node_len();
    let mut off = sb.root;
    loop {
        let node = NodeView::read(file, off, ns)?;
        if node.kind == KIND_LEAF {
            break;
        }
        let r = node.rank(lo);
        off = node.val(r.saturating_sub(1));
    }
    let (mut sum, mut count) = (0u64, 0u64);
    loop {
        let node = NodeView::read(file, off, ns)?;
        for i in 0..node.n {
            let k = node.key(i);
            if k > hi {
                return Ok((sum, count));
            }
            if k >= lo {
                sum = sum.wrapping_add(node.val(i));
                count += 1;
            }
        }
        if node.next == 0 {
            return Ok((sum, count));
        }
        off = node.next;
    }
}

/// Scratch word `i` of a program's scratch.
fn sw(s: &[u8], i: usize) -> u64 {
    u64_at(s, i * 8)
}
fn set_sw(s: &mut [u8], i: usize, v: u64) {
    s[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
}

/// Keys `<= key` among the node's first `n` keys, by binary search.
fn node_rank(d: &[u8], n: usize, key: u64) -> usize {
    let (mut lo, mut hi) = (0usize, n);
    while lo < hi {
        let mid = (lo + hi) / 2;
        if u64_at(d, HDR + 8 * mid) <= key {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

fn node_header(d: &[u8], node_size: usize) -> Option<(u8, usize)> {
    let n = usize::from(u16_at(d, 6));
    (u32_at(d, 0) == MAGIC && n > 0 && n <= fanout(node_size)).then_some((d[4], n))
}

/// The point lookup as a Rust closure: the user-chain twin of `btree_lookup.c`.
pub fn native_lookup(node_size: usize) -> Function {
    Function::native(u32::try_from(node_size).unwrap_or(u32::MAX), move |d: &[u8], s: &mut [u8], ctx: &mut XrpContext| {
        let Some((kind, n)) = node_header(d, node_size) else { return ERR_BAD_NODE };
        set_sw(s, LK_NODES, sw(s, LK_NODES) + 1);
        let key = sw(s, LK_KEY);
        let r = node_rank(d, n, key);
        let vals = vals_off(node_size);
        match kind {
            KIND_LEAF => {
                let found = r > 0 && u64_at(d, HDR + 8 * (r - 1)) == key;
                set_sw(s, LK_FOUND, u64::from(found));
                if found {
                    set_sw(s, LK_VALUE, u64_at(d, vals + 8 * (r - 1)));
                }
                ctx.done = 1;
            }
            KIND_INNER if r == 0 => {
                set_sw(s, LK_FOUND, 0);
                ctx.done = 1;
            }
            KIND_INNER => {
                ctx.next_addr[0] = u64_at(d, vals + 8 * (r - 1));
                ctx.size[0] = node_size as u64;
            }
            _ => return ERR_BAD_NODE,
        }
        0
    })
}

/// The range scan with SUM as a Rust closure: the twin of `range_sum.c`.
pub fn native_range_sum(node_size: usize) -> Function {
    Function::native(u32::try_from(node_size).unwrap_or(u32::MAX), move |d: &[u8], s: &mut [u8], ctx: &mut XrpContext| {
        let Some((kind, n)) = node_header(d, node_size) else { return ERR_BAD_NODE };
        set_sw(s, RS_NODES, sw(s, RS_NODES) + 1);
        let (lo, hi) = (sw(s, RS_LO), sw(s, RS_HI));
        let vals = vals_off(node_size);
        match kind {
            KIND_INNER => {
                let r = node_rank(d, n, lo);
                ctx.next_addr[0] = u64_at(d, vals + 8 * r.saturating_sub(1));
                ctx.size[0] = node_size as u64;
                0
            }
            KIND_LEAF => {
                let (mut sum, mut count) = (sw(s, RS_SUM), sw(s, RS_COUNT));
                for i in 0..n {
                    let k = u64_at(d, HDR + 8 * i);
                    if k > hi {
                        set_sw(s, RS_SUM, sum);
                        set_sw(s, RS_COUNT, count);
                        ctx.done = 1;
                        return 0;
                    }
                    if k >= lo {
                        sum = sum.wrapping_add(u64_at(d, vals + 8 * i));
                        count += 1;
                    }
                }
                set_sw(s, RS_SUM, sum);
                set_sw(s, RS_COUNT, count);
                let next = u64_at(d, 8);
                if next == 0 {
                    ctx.done = 1;
                } else {
                    ctx.next_addr[0] = next;
                    ctx.size[0] = node_size as u64;
                }
                0
            }
            _ => ERR_BAD_NODE,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_match_the_c_header() {
        let h = include_str!("../../bpf/include/sfe_btree.h");
        let def = |name: &str| -> u64 {
            let line = h.lines().find(|l| l.starts_with(&format!("#define {name} "))).unwrap_or_else(|| panic!("{name} not in header"));
            let v = line.split_whitespace().nth(2).unwrap().trim_end_matches('u');
            if let Some(hex) = v.strip_prefix("0x") {
                u64::from_str_radix(hex, 16).unwrap()
            } else {
                v.parse().unwrap()
            }
        };
        assert_eq!(def("SFE_BT_MAGIC"), u64::from(MAGIC));
        assert_eq!(def("SFE_BT_KIND_INNER"), u64::from(KIND_INNER));
        assert_eq!(def("SFE_BT_KIND_LEAF"), u64::from(KIND_LEAF));
        assert_eq!(def("SFE_BT_KIND_SUPER"), u64::from(KIND_SUPER));
        assert_eq!(def("SFE_BT_HDR"), HDR as u64);
        assert_eq!(def("SFE_LK_KEY"), LK_KEY as u64);
        assert_eq!(def("SFE_LK_VALUE"), LK_VALUE as u64);
        assert_eq!(def("SFE_LK_FOUND"), LK_FOUND as u64);
        assert_eq!(def("SFE_LK_NODES"), LK_NODES as u64);
        assert_eq!(def("SFE_RS_LO"), RS_LO as u64);
        assert_eq!(def("SFE_RS_HI"), RS_HI as u64);
        assert_eq!(def("SFE_RS_SUM"), RS_SUM as u64);
        assert_eq!(def("SFE_RS_COUNT"), RS_COUNT as u64);
        assert_eq!(def("SFE_RS_NODES"), RS_NODES as u64);
        assert_eq!(def("SFE_ERR_BAD_NODE"), ERR_BAD_NODE);
        assert_eq!(fanout(4096), 255);
        assert_eq!(fanout(512), 31);
    }

    #[test]
    fn build_refuses_what_it_cannot_build_before_writing() {
        let mut out = Vec::new();
        for (n, ns, per) in [(0, 4096, 255), (10, 1000, 8), (keys_max(8) + 1, 4096, 8)] {
            let e = build(&mut out, n, ns, per, 1, |_| {}).unwrap_err();
            assert!(matches!(e, FormatError::Unbuildable(_)), "{e}");
        }
        assert!(out.is_empty());
        assert_eq!(
            build(&mut out, u64::MAX, 512, 31, 1, |_| {}).unwrap_err().to_string(),
            format!("cannot build that database: {} keys at 31 per leaf; at most {} (LEAVES_MAX leaves)", u64::MAX, LEAVES_MAX * 31)
        );
    }

    #[test]
    fn build_and_reference_lookup_agree() {
        let dir = std::env::temp_dir().join(format!("sfe-btree-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (ns, per, n) in [(4096usize, 255usize, 10_000u64), (512, 8, 3000), (4096, 2, 1)] {
            let p = dir.join(format!("db-{ns}-{per}"));
            let sb = build_file(&p, n, ns, per, 7, |_| {}).unwrap();
            let f = std::fs::File::open(&p).unwrap();
            assert_eq!(Superblock::read(&f).unwrap(), sb);
            for i in (0..n).step_by(97).chain([n - 1]) {
                let (v, nodes) = reference_lookup(&f, &sb, key_at(i)).unwrap();
                assert_eq!(v, Some(value_of(key_at(i), 7)), "key {i}");
                assert_eq!(u64::from(nodes), sb.depth);
                assert_eq!(reference_lookup(&f, &sb, key_at(i) + 1).unwrap().0, None);
            }
            assert_eq!(reference_lookup(&f, &sb, 0).unwrap().0, None);
            let (sum, count) = reference_range_sum(&f, &sb, key_at(0), key_at(n - 1)).unwrap();
            assert_eq!(count, n);
            assert_eq!(sum, (0..n).fold(0u64, |a, i| a.wrapping_add(value_of(key_at(i), 7))));
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn corrupt_superblocks_are_clear_errors() {
        let dir = std::env::temp_dir().join(format!("sfe-btree-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("bad");
        std::fs::write(&p, vec![0u8; 4096]).unwrap();
        let e = Superblock::read(&std::fs::File::open(&p).unwrap()).unwrap_err();
        assert!(matches!(e, FormatError::BadMagic { .. }), "{e}");
        std::fs::write(&p, b"short").unwrap();
        let e = Superblock::read(&std::fs::File::open(&p).unwrap()).unwrap_err();
        assert!(e.to_string().contains("shorter"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_corrupt_superblock_is_refused_with_the_field_named() {
        let path = std::env::temp_dir().join(format!("sfe-btree-corrupt-{}", std::process::id()));
        let sb = build_file(&path, 100, 512, 8, 1, |_| {}).unwrap();
        let f = std::fs::OpenOptions::new().read(true).write(true).open(&path).unwrap();
        assert_eq!(Superblock::read(&f).unwrap().depth, sb.depth);
        for (off, v, want) in [(HDR + 8, 1000u64, "depth 1000"), (HDR + 8, 0, "depth 0"), (HDR + 16, 1024, "node size 1024")] {
            let mut b = superblock_bytes(&sb);
            b[off..off + 8].copy_from_slice(&v.to_le_bytes());
            f.write_all_at(&b, 0).unwrap();
            let e = Superblock::read(&f).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
        let _ = std::fs::remove_file(&path);
    }
}
