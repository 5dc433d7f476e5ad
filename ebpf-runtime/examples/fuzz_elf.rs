//! Time-bounded, seeded mutation fuzz of the ELF loader: objects built from
//! `bpf/tests/*.c` are mutated (byte flips, interesting values in header
//! fields and tables, truncation, duplication) and loaded; the loaded ones are
//! also verified and prepared for the interpreter. A panic is a bug: the input
//! is written to `fuzz-elf-crash-<seed>-<n>.o` and the run exits 1. Add the
//! file to `tests/loader_errors.rs` as a regression test once fixed.
//!
//! `cargo run --release -p ebpf-runtime --example fuzz_elf -- [SECONDS] [SEED]`
//! (needs clang: scripts/install-deps.sh).

use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use ebpf_runtime::{Engine, Instance, Program};

const PROGRAMS: [&str; 6] = ["empty", "node_search", "map_user", "globals", "calls", "btf_maps"];
const INTERESTING: [u64; 10] = [0, 1, 7, 8, 0x7f, 0xff, 0xffff, 0xffff_ffff, 0x8000_0000, u64::MAX];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n.max(1) as u64).unwrap_or(0)
    }
}

fn build(name: &str) -> Vec<u8> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = std::env::temp_dir().join(format!("fuzz-elf-{name}-{}.o", std::process::id()));
    let ok = Command::new("clang")
        .args(["-target", "bpf", "-O2", "-g", "-mcpu=v3", "-I"])
        .arg(root.join("bpf/include"))
        .arg("-c")
        .arg(root.join("bpf/tests").join(format!("{name}.c")))
        .arg("-o")
        .arg(&out)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "clang failed or is missing: run scripts/install-deps.sh");
    std::fs::read(&out).expect("read object")
}

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut b = input.to_vec();
    for _ in 0..=rng.below(4) {
        if b.is_empty() {
            break;
        }
        let at = rng.below(b.len());
        match rng.below(5) {
            0 => b[at] ^= 1 << rng.below(8),
            1 => b[at] = rng.next().to_le_bytes()[0],
            2 => {
                // An interesting value over a 1/2/4/8-byte field.
                let v = INTERESTING[rng.below(INTERESTING.len())].to_le_bytes();
                let w = [1, 2, 4, 8][rng.below(4)];
                let end = (at + w).min(b.len());
                let n = end - at;
                b[at..end].copy_from_slice(&v[..n]);
            }
            3 => b.truncate(at),
            _ => {
                // Copy a chunk from elsewhere in the file over this spot.
                let from = rng.below(b.len());
                let n = rng.below(64).min(b.len() - at).min(b.len() - from);
                let chunk = b[from..from + n].to_vec();
                b[at..at + n].copy_from_slice(&chunk);
            }
        }
    }
    b
}

fn exercise(bytes: &[u8]) {
    if let Ok(program) = Program::load(bytes, None) {
        let _ = Instance::new(&program, 4096, Engine::Interpreter);
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let seconds: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(30);
    let seed: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(0x5eed_e1f0);
    let corpus: Vec<Vec<u8>> = PROGRAMS.iter().map(|p| build(p)).collect();
    std::panic::set_hook(Box::new(|_| {}));
    let mut rng = Rng(seed | 1);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut runs = 0u64;
    while Instant::now() < deadline {
        let base = &corpus[rng.below(corpus.len())];
        let input = mutate(&mut rng, base);
        runs += 1;
        if std::panic::catch_unwind(|| exercise(&input)).is_err() {
            let path = format!("fuzz-elf-crash-{seed}-{runs}.o");
            let _ = std::fs::write(&path, &input);
            eprintln!("fuzz_elf: panic on input {runs} (seed {seed}); saved to {path}");
            return ExitCode::FAILURE;
        }
    }
    eprintln!("fuzz_elf: {runs} inputs in {seconds} s (seed {seed}), no panic");
    ExitCode::SUCCESS
}
