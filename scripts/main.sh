#!/usr/bin/env bash
# The main job on the embedded default device (the emulated NVMe controller).
# Extra arguments go to `sfbench demo` (try --help).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cargo build --release --locked -p bench
exec ./target/release/sfbench demo "$@"
