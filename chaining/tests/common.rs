//! Test fixture: a database and a file of u64 put into a real ext4 image
//! (mkfs.ext4 -d), the emulated controller over that image, and the files'
//! extents read from the image by fs-extents.

#![allow(dead_code)]

use chaining::{ChainQueue, QueueConfig};
use fs_extents::{Ext4, FileId, Registry, TenantId};
use nvme::{Backing, Controller, EmuConfig, EmulatedController};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use workloads::btree::{self, Superblock};

pub const T1: TenantId = TenantId(1);
pub const T2: TenantId = TenantId(2);

#[allow(missing_debug_implementations)]
pub struct Fixture {
    pub dir: PathBuf,
    pub emu: Arc<EmulatedController>,
    pub ctrl: Arc<Controller>,
    pub registry: Arc<Registry>,
    pub db: FileId,
    pub db_sb: Superblock,
    /// The database file as built (the reference reads it, not the image).
    pub db_src: std::fs::File,
    pub nums: FileId,
    pub nums_bytes: Vec<u8>,
    /// Extents of the database inside the image (for fault injection).
    pub db_map: Arc<fs_extents::ExtentMap>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Builds the fixture: a database of `keys` keys with `node_size` nodes and
/// at most `per` keys per node, and a file of `nums_blocks` 4 KiB blocks of u64.
pub fn fixture(tag: &str, keys: u64, node_size: usize, per: usize, nums_blocks: usize) -> Fixture {
    let dir = std::env::temp_dir().join(format!("sfe-chain-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let src = dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    let db_path = src.join("db.bin");
    let db_sb = btree::build_file(&db_path, keys, node_size, per, 42, |_| {}).unwrap();
    let mut nums_bytes = Vec::with_capacity(nums_blocks * 4096);
    let mut x = 0x1234_5678_9abc_def0u64;
    for _ in 0..nums_blocks * 512 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        nums_bytes.extend_from_slice(&(x % 1_000_000).to_le_bytes());
    }
    std::fs::write(src.join("nums.bin"), &nums_bytes).unwrap();
    std::fs::write(src.join("other.bin"), vec![0x5au8; 64 * 1024]).unwrap();
    let img = dir.join("fs.img");
    mkfs(&img, &src);
    let image = std::fs::read(&img).unwrap();
    let fs = Ext4::open(image.clone()).unwrap();
    let db_map = Arc::new(fs.file_map("/db.bin").unwrap());
    let nums_map = Arc::new(fs.file_map("/nums.bin").unwrap());
    let registry = Arc::new(Registry::new());
    registry.add_tenant(T1);
    registry.add_tenant(T2);
    let db = registry.add_file(db_map.clone()).unwrap();
    let nums = registry.add_file(nums_map).unwrap();
    for t in [T1, T2] {
        registry.grant(t, db).unwrap();
    }
    registry.grant(T1, nums).unwrap();
    let emu = Arc::new(EmulatedController::new(Backing::memory_from(image), EmuConfig { block_size: 512, ..EmuConfig::default() }).unwrap());
    let ctrl = Arc::new(Controller::attach(emu.clone()).unwrap());
    let db_src = std::fs::File::open(&db_path).unwrap();
    Fixture { dir, emu, ctrl, registry, db, db_sb, db_src, nums, nums_bytes, db_map }
}

fn mkfs(img: &Path, src: &Path) {
    let out = Command::new("mkfs.ext4")
        .args(["-F", "-q", "-b", "4096", "-d"])
        .arg(src)
        .arg(img)
        .arg("64M")
        .output()
        .expect("mkfs.ext4 must be installed: run bash scripts/install-deps.sh");
    assert!(out.status.success(), "mkfs.ext4 failed: {}", String::from_utf8_lossy(&out.stderr));
}

impl Fixture {
    pub fn queue(&self, cfg: QueueConfig) -> ChainQueue {
        ChainQueue::new(&self.ctrl, 1, self.registry.clone(), cfg).unwrap()
    }
}
