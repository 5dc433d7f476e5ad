#!/usr/bin/env bash
# Time-bounded, seeded differential fuzz of the verifier: every accepted
# program runs in our bounds-checked interpreter; an out-of-bounds access
# by an accepted program is a verifier bug and fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --release --locked -q -p ebpf-runtime --example difffuzz -- --seconds "${FUZZ_SECONDS:-60}" --seed "${FUZZ_SEED:-1}"
