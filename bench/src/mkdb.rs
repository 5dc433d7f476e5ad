//! `sfbench mkdb` and `sfbench mknums`: the data the benchmark runs on.

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::Write;
use std::path::PathBuf;
use workloads::btree;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Where to write the database (created or replaced).
    #[arg(long)]
    pub out: PathBuf,
    /// Number of keys (keys are 2, 4, 6, ...; values are a hash of key and seed).
    #[arg(long)]
    pub keys: u64,
    /// Node size in bytes: 4096, or 512 like XRP's BPF-KV.
    #[arg(long, default_value_t = 4096)]
    pub node_size: usize,
    /// Most keys per node (up to 255 for 4 KiB nodes, 31 for 512 B); fewer make deeper trees from fewer keys.
    #[arg(long)]
    pub keys_per_node: Option<usize>,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

pub fn run(a: Args) -> Result<btree::Superblock> {
    if a.keys == 0 {
        bail!("--keys 0: give 1 or more keys");
    }
    if !btree::NODE_SIZES.contains(&a.node_size) {
        bail!("--node-size {}: give 4096 or 512 (the sizes the bundled programs are built for)", a.node_size);
    }
    let fanout = btree::fanout(a.node_size);
    let per = a.keys_per_node.unwrap_or(fanout);
    if !(2..=fanout).contains(&per) {
        bail!("--keys-per-node {per}: give 2 to {fanout} for {}-byte nodes", a.node_size);
    }
    if a.keys > btree::keys_max(per) {
        bail!("--keys {}: give at most {} keys at {per} keys per node (the builder holds at most {} leaves)", a.keys, btree::keys_max(per), btree::LEAVES_MAX);
    }
    let leaves = a.keys.div_ceil(per as u64);
    let bar = ProgressBar::new(leaves);
    bar.set_style(ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} leaves ({eta})").map_err(|e| anyhow::anyhow!("{e}"))?.progress_chars("=> "));
    bar.set_message(format!("mkdb {}", a.out.display()));
    let dir = a.out.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    // Leaves, the inner levels above them (at most one node per
    // `per - 1` below) and the superblock.
    let need = (leaves + leaves.div_ceil(per as u64 - 1) + 1) * a.node_size as u64;
    if let Some(free) = free_bytes(dir) {
        if need > free {
            bail!("--keys {}: the database needs {:.1} GiB and {} has {:.1} GiB free; give fewer keys or another --out", a.keys, gib(need), dir.display(), gib(free));
        }
    }
    let sb = btree::build_file(&a.out, a.keys, a.node_size, per, a.seed, |n| bar.set_position(n)).with_context(|| format!("writing {}", a.out.display()))?;
    bar.finish_and_clear();
    let bytes = std::fs::metadata(&a.out)?.len();
    println!(
        "{}: {} keys, depth {} ({} reads per lookup), {}-byte nodes, {} keys per node, {:.1} MiB",
        a.out.display(),
        sb.keys,
        sb.depth,
        sb.depth,
        sb.node_size,
        per,
        bytes as f64 / f64::from(1u32 << 20)
    );
    Ok(sb)
}

fn gib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1u32 << 30)
}

/// Bytes free to an unprivileged writer on the file system holding `dir`
/// (or the nearest existing ancestor); `None` when that cannot be told.
fn free_bytes(dir: &std::path::Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let existing = dir.ancestors().find(|d| d.exists())?;
    let c = std::ffi::CString::new(existing.as_os_str().as_bytes()).ok()?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a NUL-terminated path and `st` is a writable statvfs
    // the call fills in full when it returns 0.
    if unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) } != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so it wrote the whole struct.
    let st = unsafe { st.assume_init() };
    st.f_bavail.checked_mul(st.f_frsize)
}

#[derive(clap::Args, Debug)]
pub struct NumsArgs {
    /// Where to write the file of little-endian u64 values.
    #[arg(long)]
    pub out: PathBuf,
    /// Size in MiB.
    #[arg(long, default_value_t = 64)]
    pub mib: u64,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

/// Writes `mib` MiB of u64 values uniform in [0, 1,000,000).
pub fn nums(a: NumsArgs) -> Result<()> {
    if a.mib == 0 {
        bail!("--mib 0: give 1 or more MiB");
    }
    let file = std::fs::File::create(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut x = a.seed | 1;
    let bar = ProgressBar::new(a.mib);
    for _ in 0..a.mib {
        for _ in 0..(1 << 20) / 8 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            w.write_all(&(x % 1_000_000).to_le_bytes())?;
        }
        bar.inc(1);
    }
    w.flush()?;
    bar.finish_and_clear();
    println!("{}: {} MiB of u64 in [0, 1000000)", a.out.display(), a.mib);
    Ok(())
}
