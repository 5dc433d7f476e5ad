#!/bin/bash
# The QEMU test rig (issue 7): a real (emulated) PCIe NVMe controller driven
# through vfio-pci and uio_pci_generic inside a q35 guest with an emulated
# Intel IOMMU, under TCG. Run as root on Debian 12:
#
#     rig/run.sh
#
# It installs qemu-system-x86, linux-image-amd64 and busybox-static if
# missing, builds sfbench and the pci_check example (release), makes a
# B+-tree database with `sfbench mkdb`, copies it into two NVMe image files,
# packs an initramfs (busybox, the binaries and the shared libraries they
# need, the kernel modules), and boots the guest. In the guest (rig/init.sh):
#   (b) `sfbench run` with all four engines: pread and io_uring on the
#       kernel-bound controller's /dev/nvme*n1, user-chain and bpf-chain on the
#       vfio-bound controller (--pci), answers checked against the reference;
#   (c) `sfbench perf` on every engine (spdk-style on the vfio-bound
#       controller, io_uring and psync on the kernel-bound one): a write pass
#       and a read pass comparing every block, then a timed randrw run that
#       checks every read; and its refusal to write without --allow-write;
#   (a) pci_check through vfio-pci, then again through uio_pci_generic
#       (random writes read back, LBA out of range, invalid opcode/namespace);
#   `sfbench setup --bind` refusing a controller with a mounted file system
#   (a third controller), and `sfbench setup --reset` back to the kernel nvme driver.
# Results come back over the serial console; the last line is RIG: PASS or
# RIG: FAIL <why>. Exits non-zero on any failure. Env: RIG_TIMEOUT (s, 600),
# RIG_WORK (scratch dir), CARGO_TARGET_DIR.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TIMEOUT=${RIG_TIMEOUT:-600}
WORK=${RIG_WORK:-$ROOT/target-rig}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target-rig/cargo}
KEYS=${RIG_KEYS:-20000}
START=$(date +%s)

fail() { echo "RIG: FAIL $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "run as root (installs packages, needs /boot and /lib/modules readable)"

need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v cpio >/dev/null || need+=(cpio)
dpkg -s busybox-static >/dev/null 2>&1 || need+=(busybox-static)
ls /boot/vmlinuz-* >/dev/null 2>&1 || need+=(linux-image-amd64)
if [ ${#need[@]} -gt 0 ]; then
    echo "rig: installing ${need[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null \
        || fail "apt-get install ${need[*]} failed"
fi
KVER=$(ls /boot/vmlinuz-* | sed 's|.*/vmlinuz-||' | sort -V | tail -1)
KERNEL=/boot/vmlinuz-$KVER
[ -d /lib/modules/$KVER ] || fail "/lib/modules/$KVER missing: install linux-image-$KVER"
[ -r "$KERNEL" ] || fail "$KERNEL is not readable"

echo "rig: building sfbench and pci_check (release)"
cd "$ROOT"
cargo build --release -q -p bench --bin sfbench || fail "cargo build of sfbench failed"
cargo build --release -q -p nvme --example pci_check || fail "cargo build of pci_check failed"
SFBENCH=$CARGO_TARGET_DIR/release/sfbench
PCICHECK=$CARGO_TARGET_DIR/release/examples/pci_check

rm -rf "$WORK/initramfs" && mkdir -p "$WORK/initramfs"
IRD=$WORK/initramfs
echo "rig: database ($KEYS keys) and two NVMe images"
"$SFBENCH" mkdb --out "$WORK/db.img" --keys "$KEYS" --node-size 512 --keys-per-node 8 >/dev/null || fail "sfbench mkdb failed"
for n in 0 1; do
    cp "$WORK/db.img" "$WORK/nvme$n.img"
    truncate -s 64M "$WORK/nvme$n.img"
done
rm -f "$WORK/nvme2.img" && truncate -s 16M "$WORK/nvme2.img"   # gets a mounted ext2 in the guest

echo "rig: initramfs"
mkdir -p "$IRD"/{bin,sbin,proc,sys,dev,tmp,lib/modules,etc}
cp /bin/busybox "$IRD/bin/busybox"
cp "$SFBENCH" "$PCICHECK" "$IRD/bin/"
for b in "$SFBENCH" "$PCICHECK"; do
    for lib in $(ldd "$b" | grep -o '/[^ ]*'); do
        mkdir -p "$IRD$(dirname "$lib")"
        cp -L "$lib" "$IRD$lib"
    done
done
: > "$IRD/modules.list"
for m in nvme vfio vfio_iommu_type1 vfio-pci uio_pci_generic ext4; do
    modprobe -S "$KVER" --show-depends "$m" | awk '$1=="insmod"{print $2}'
done | awk '!seen[$0]++' | while read -r ko; do
    cp "$ko" "$IRD/lib/modules/"
    echo "$(basename "$ko")" >> "$IRD/modules.list"
done
cp "$ROOT/rig/init.sh" "$IRD/init"
chmod +x "$IRD/init"
(cd "$IRD" && find . | cpio -o -H newc --quiet | gzip -1) > "$WORK/initramfs.gz"

echo "rig: booting QEMU (TCG, q35, intel-iommu, two NVMe controllers), timeout ${TIMEOUT}s"
LOG=$WORK/serial.log
rm -f "$LOG"
set +e
timeout "$TIMEOUT" qemu-system-x86_64 \
    -machine q35 -accel tcg -cpu max -smp 2 -m 1536 \
    -device intel-iommu \
    -kernel "$KERNEL" -initrd "$WORK/initramfs.gz" \
    -append "console=ttyS0 rdinit=/init intel_iommu=on iommu=pt hugepages=96 panic=-1 loglevel=4" \
    -drive file="$WORK/nvme0.img",if=none,id=d0,format=raw \
    -drive file="$WORK/nvme1.img",if=none,id=d1,format=raw \
    -device nvme,serial=rigvfio,drive=d0,addr=0x4 \
    -device nvme,serial=rigkernel,drive=d1,addr=0x5 \
    -drive file="$WORK/nvme2.img",if=none,id=d2,format=raw \
    -device nvme,serial=rigmounted,drive=d2,addr=0x6 \
    -display none -serial file:"$LOG" -monitor none -no-reboot
QRC=$?
set -e
ELAPSED=$(( $(date +%s) - START ))
grep -E '^(rig|RIG|PCI_CHECK|pci_check|engine|pread|io_uring|io-uring|user-chain|bpf-chain|spdk-style|psync|verify|perf|note|error)' "$LOG" | tr -d '\r' || true
if [ $QRC = 124 ]; then
    fail "QEMU did not finish within ${TIMEOUT}s (serial log: $LOG)"
fi
if grep -q '^RIG: PASS' "$LOG"; then
    echo "RIG: PASS (${ELAPSED}s wall, serial log: $LOG)"
    exit 0
fi
WHY=$(grep -a '^RIG: FAIL' "$LOG" | head -1 | tr -d '\r')
fail "${WHY#RIG: FAIL }${WHY:+ }(qemu exit $QRC; serial log: $LOG)"
