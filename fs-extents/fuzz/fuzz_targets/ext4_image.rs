//! The input is an ext4 image: open it, look files up, map them, translate.
//! Any panic is a bug (every malformed structure must be an `Ext4Error`).
#![no_main]

use fs_extents::{Ext4, FileOffset};
use libfuzzer_sys::fuzz_target;

const PATHS: [&str; 4] = ["/f", "/sparse", "/d/g", "/d"];
const INODES_TRIED: u32 = 32;

fuzz_target!(|data: &[u8]| {
    let Ok(fs) = Ext4::open(data) else { return };
    for path in PATHS {
        if let Ok(map) = fs.file_map(path) {
            let limit = map.access_limit().0;
            for off in [0, limit / 2, limit.saturating_sub(1), limit] {
                let _ = map.translate(FileOffset(off), 1024);
            }
            let _ = map.segments(FileOffset(0), limit.max(1)).take(4096).count();
        }
    }
    for ino in 1..=INODES_TRIED {
        let _ = fs.extent_map(ino);
    }
});
