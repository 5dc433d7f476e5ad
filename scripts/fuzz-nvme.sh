#!/usr/bin/env bash
# Time-bounded, seeded fuzz of the NVMe queue pair and the emulated device:
# random PRPs and PRP lists through the device's PRP walk, and random
# completion entries from a hostile transport (no panic, no hang allowed).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --release --locked -q -p nvme --example fuzz_queue -- "${FUZZ_SECONDS:-25}" "${FUZZ_SEED:-1}"
