#!/usr/bin/env bash
# Time-bounded, seeded differential fuzz of the JIT against the interpreter:
# every program the verifier accepts runs on both engines, which must leave
# identical r0, registers, data block, scratch and context.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --release --locked -q -p ebpf-runtime --example jitfuzz -- --seconds "${FUZZ_SECONDS:-30}" --seed "${FUZZ_SEED:-1}"
