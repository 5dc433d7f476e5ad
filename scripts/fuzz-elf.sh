#!/usr/bin/env bash
# Time-bounded, seeded fuzz of the BPF ELF loader (no panic allowed).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --release --locked -q -p ebpf-runtime --example fuzz_elf -- "${FUZZ_SECONDS:-30}"
