#!/usr/bin/env bash
# Runs the whole test suite: the one command CI runs (.ci/run calls it).
# Installs the system packages the tests need first (clang, e2fsprogs, ...).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
export CARGO_TERM_COLOR=never
# As root (CI), the loop-mount tests must run, not skip.
if [ "$(id -u)" = 0 ]; then export FS_EXTENTS_REQUIRE_MOUNT=1; fi
echo "== format (cargo fmt --check: a formatting difference fails the run)"
cargo fmt --all --check
echo "== clippy (-D warnings: any warning fails the run)"
cargo clippy --workspace --all-targets --locked -q -- -D warnings
echo "== build (all targets)"
cargo build --workspace --all-targets --locked
echo "== tests"
cargo test --workspace --locked 2>&1 | tee /tmp/sfe-test.log
# A summary line that the CI log reader understands.
read -r passed failed < <(awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } } END { print p+0, f+0 }' /tmp/sfe-test.log)
for f in scripts/fuzz-*.sh; do
  [ -e "$f" ] || continue
  echo "== $f"
  bash "$f"
done
# The QEMU rig: a real (emulated) PCIe NVMe controller through vfio-pci and
# uio_pci_generic, and all four engines over the same image. Needs root.
if [ "$(id -u)" = 0 ]; then
  echo "== rig/run.sh"
  CARGO_TARGET_DIR="$PWD/target" bash rig/run.sh
else
  echo "== rig/run.sh skipped: needs root (sudo bash rig/run.sh)"
fi
echo "tests: $passed passed, $failed failed"
