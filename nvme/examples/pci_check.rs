//! Checks the driver against a real PCIe NVMe controller (the QEMU rig runs
//! it through vfio-pci and once more through uio_pci_generic):
//!
//!     pci_check 0000:00:04.0 [--ops N] [--seed S]
//!
//! The device must already be bound to vfio-pci or uio_pci_generic
//! (`sfbench setup --bind BDF`). It brings the controller up, writes random
//! data at random block ranges, reads every range back and compares, and
//! checks the statuses of bad commands (LBA out of range, invalid opcode,
//! invalid namespace). It DESTROYS the data on the namespace's first blocks
//! it writes to. Prints `PCI_CHECK: PASS` or exits non-zero.

// Block counts and byte lengths here are below 64 KiB (MAX_BYTES) and the
// random bytes are meant to be truncated: the casts are exact or intended.
#![allow(clippy::cast_possible_truncation)]

use nvme::pci::{self, Bdf, OpenOptions};
use nvme::spec::{Sqe, Status};
use nvme::{Controller, Lba};
use std::time::{Duration, Instant};

/// How long one command may take before the check fails.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest transfer tried (blocks are clamped to MDTS too).
const MAX_BYTES: u64 = 64 << 10;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn wait<C>(qp: &mut nvme::IoQueuePair<C>) -> Result<nvme::Completion<C>, String> {
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    loop {
        let mut got = None;
        qp.process_completions(1, |_, c| got = Some(c)).map_err(|e| e.to_string())?;
        if let Some(c) = got {
            return Ok(c);
        }
        if Instant::now() > deadline {
            return Err("no completion within 10 s".into());
        }
        std::hint::spin_loop();
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bdf = Bdf::parse(args.first().ok_or("usage: pci_check BDF [--ops N] [--seed S]")?).map_err(|e| e.to_string())?;
    let flag = |name: &str, default: u64| -> u64 { args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default) };
    let ops = flag("--ops", 200);
    let mut rng = Rng(flag("--seed", 7) | 1);

    let t0 = Instant::now();
    let transport = pci::open(&bdf, &OpenOptions::default()).map_err(|e| e.to_string())?;
    let ctrl = Controller::attach(transport).map_err(|e| format!("bring-up: {e}"))?;
    println!("pci_check: {} model {:?}, {} I/O queues, bring-up {:?}", ctrl.transport().name(), ctrl.identify().model(), ctrl.io_queue_count(), t0.elapsed());
    let ns = ctrl.namespace(1).map_err(|e| e.to_string())?;
    println!("pci_check: namespace 1: {} blocks of {} bytes, max transfer {}", ns.blocks, ns.block_size, ns.max_transfer);
    let dma = ctrl.transport().dma().clone();
    let mut qp = ctrl.alloc_io_qpair::<u64>(32, 0).map_err(|e| e.to_string())?;
    let bs = u64::from(ns.block_size);
    let max_blocks = (MAX_BYTES.min(ns.max_transfer) / bs).max(1);

    // Random writes, then read every range back.
    let mut written = Vec::new();
    for i in 0..ops {
        let nlb = 1 + rng.below(max_blocks);
        let lba = rng.below(ns.blocks.min(1 << 16) - nlb);
        let len = usize::try_from(nlb * bs).map_err(|e| e.to_string())?;
        let data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let mut buf = dma.alloc(len).map_err(|e| e.to_string())?;
        buf.write(0, &data);
        qp.write(&ns, Lba(lba), u32::try_from(nlb).map_err(|e| e.to_string())?, buf, i).map_err(|r| r.error.to_string())?;
        let c = wait(&mut qp)?;
        if !c.status.is_success() {
            return Err(format!("write of {nlb} blocks at LBA {lba} failed: {}", c.status));
        }
        written.push((lba, nlb, data));
    }
    // Later writes may overlap earlier ones: the expected image is the last write of each block.
    let mut image = std::collections::HashMap::new();
    for (lba, nlb, data) in &written {
        for b in 0..*nlb {
            image.insert(lba + b, &data[(b * bs) as usize..((b + 1) * bs) as usize]);
        }
    }
    for (i, (lba, nlb, _)) in written.iter().enumerate() {
        let len = (nlb * bs) as usize;
        let mut buf = dma.alloc(len).map_err(|e| e.to_string())?;
        buf.fill(0xa5);
        qp.read(&ns, Lba(*lba), *nlb as u32, buf, i as u64).map_err(|r| r.error.to_string())?;
        let c = wait(&mut qp)?;
        if !c.status.is_success() {
            return Err(format!("read of {nlb} blocks at LBA {lba} failed: {}", c.status));
        }
        let got = c.buf.ok_or("read completed without its buffer")?.to_vec();
        for b in 0..*nlb {
            let want = image[&(lba + b)];
            if &got[(b * bs) as usize..((b + 1) * bs) as usize] != want {
                return Err(format!("data mismatch at LBA {} (read {nlb} blocks at {lba})", lba + b));
            }
        }
    }
    println!("pci_check: {ops} random writes read back and compared");

    // Flush, then error statuses from the real controller.
    qp.flush(&ns, 0).map_err(|r| r.error.to_string())?;
    let c = wait(&mut qp)?;
    if !c.status.is_success() {
        return Err(format!("flush failed: {}", c.status));
    }
    let buf = dma.alloc(4096).map_err(|e| e.to_string())?;
    let iova = buf.iova().0;
    qp.read(&ns, Lba(ns.blocks - 1), 2, buf, 0).map_err(|r| r.error.to_string())?;
    let c = wait(&mut qp)?;
    expect(c.status, Status::LBA_OUT_OF_RANGE, "read past the end")?;
    // The buffer behind `iova` stays alive until the raw commands below are done.
    let _held = c.buf;
    for (sqe, want, what) in [
        (Sqe { opcode: 0x7f, nsid: 1, prp1: iova, ..Sqe::default() }, Status::INVALID_OPCODE, "invalid opcode"),
        (Sqe { opcode: 0x02, nsid: 0, prp1: iova, ..Sqe::default() }, Status::INVALID_NAMESPACE, "namespace 0"),
    ] {
        // SAFETY: PRP1 points at `iova`, the 4 KiB buffer held in `_held`
        // (or, if that read was abandoned, by the queue pair) until this
        // function returns, after these commands complete; one block fits in
        // it, and the device refuses both commands before transferring anything.
        unsafe { qp.submit(sqe, None, 0) }.map_err(|r| r.error.to_string())?;
        let c = wait(&mut qp)?;
        expect(c.status, want, what)?;
    }
    println!("pci_check: error statuses: LBA out of range, invalid opcode, invalid namespace as the spec says");
    println!("pci_check: done in {:?}", t0.elapsed());
    Ok(())
}

fn expect(got: Status, want: Status, what: &str) -> Result<(), String> {
    // Compare type and code only: the DNR/More bits are the controller's choice.
    if got.sct == want.sct && got.sc == want.sc {
        Ok(())
    } else {
        Err(format!("{what}: got status {got}, want {want}"))
    }
}

fn main() {
    match run() {
        Ok(()) => println!("PCI_CHECK: PASS"),
        Err(e) => {
            println!("PCI_CHECK: FAIL {e}");
            std::process::exit(1);
        }
    }
}
