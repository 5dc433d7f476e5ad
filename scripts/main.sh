#!/usr/bin/env bash
# The main job on the embedded default device (the emulated NVMe controller):
# B+-tree lookups at depths 1, 3 and 6 on all four engines (pread, io_uring,
# user-chain, bpf-chain) with the Optane device model, a client-thread sweep,
# the table, out/results.json and charts in out/. About a minute on 2 cores.
# Extra arguments go to `sfbench suite` (try --help).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cargo build --release --locked -p bench
exec ./target/release/sfbench suite "$@"
