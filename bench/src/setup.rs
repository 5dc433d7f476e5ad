//! `sfbench setup`: hugepages for DMA memory.

use anyhow::Result;
use nvme::setup;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// MiB of 2 MiB hugepages to reserve (needs root). Without it, only show
    /// the current reservation.
    #[arg(long, value_name = "MB")]
    hugemem: Option<u64>,
}

pub fn run(a: Args) -> Result<()> {
    let before = setup::hugepages()?;
    match a.hugemem {
        None => {
            println!(
                "hugepages: {} reserved, {} free ({} KiB each): {} MiB free for DMA memory",
                before.total,
                before.free,
                before.size_kib,
                before.free_bytes() >> 20
            );
            if before.total == 0 {
                println!("none reserved: DMA memory falls back to ordinary pages. Reserve some with: sfbench setup --hugemem 512");
            }
        }
        Some(mb) => {
            let after = setup::reserve(mb)?;
            if after.total == before.total {
                println!("hugepages: {} already reserved ({} MiB), enough for {mb} MiB; nothing changed", after.total, after.total_bytes() >> 20);
            } else {
                println!("hugepages: reserved {} -> {} ({} MiB), {} free", before.total, after.total, after.total_bytes() >> 20, after.free);
            }
        }
    }
    Ok(())
}
