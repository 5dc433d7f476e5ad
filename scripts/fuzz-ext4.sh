#!/usr/bin/env bash
# Time-bounded, seeded fuzz of the ext4 reader on mutated images (no panic allowed).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --release --locked -q -p fs-extents --example fuzz_ext4 -- "${FUZZ_SECONDS:-30}"
