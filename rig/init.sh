#!/bin/busybox sh
# Guest init of the QEMU rig (packed as /init by rig/run.sh). Prints progress
# and a final `RIG: PASS` or `RIG: FAIL <why>` on the serial console, then
# powers off.
/bin/busybox --install -s /bin
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /dev/hugepages && mount -t hugetlbfs none /dev/hugepages

VFIO=0000:00:04.0   # serial rigvfio: user-space engines and pci_check
KERN=0000:00:05.0   # serial rigkernel: stays on the kernel nvme driver
MNTD=0000:00:06.0   # serial rigmounted: carries a mounted file system

finish() {
    echo "$1"
    sync
    poweroff -f
}
fail() { finish "RIG: FAIL $*"; }
step() { echo "rig: $*"; }

for m in $(cat /modules.list); do
    insmod /lib/modules/$m 2>/dev/null || echo "rig: insmod $m failed (may be fine: CPU-specific)"
done
[ -d /sys/bus/pci/drivers/vfio-pci ] || fail "vfio-pci did not load"
[ -d /sys/bus/pci/drivers/uio_pci_generic ] || fail "uio_pci_generic did not load"
[ -e /sys/bus/pci/devices/$VFIO/iommu_group ] || fail "$VFIO has no IOMMU group: the guest IOMMU is off"

# The block device of a kernel-bound controller (waits for the kernel to find it).
blockdev() {
    i=0
    while [ $i -lt 100 ]; do
        d=$(ls /sys/bus/pci/devices/$1/nvme/nvme*/ 2>/dev/null | grep -E '^nvme[0-9]+n1$' | head -1)
        [ -n "$d" ] && [ -b /dev/$d ] && { echo $d; return 0; }
        i=$((i + 1)); sleep 0.2
    done
    return 1
}
DEV=$(blockdev $KERN) || fail "no namespace of $KERN appeared"
step "kernel controller $KERN is /dev/$DEV"

step "negative: bind a controller with a mounted file system"
MDEV=$(blockdev $MNTD) || fail "no namespace of $MNTD appeared"
mkdir -p /mnt && mke2fs -q /dev/$MDEV > /dev/null 2>&1 && mount -t ext2 /dev/$MDEV /mnt || fail "could not mount an ext2 on /dev/$MDEV"
if sfbench setup --bind $MNTD --driver vfio-pci > /tmp/mnt.log 2>&1; then fail "setup --bind accepted a controller with a mounted file system"; fi
cat /tmp/mnt.log
grep -q "is mounted on /mnt" /tmp/mnt.log || fail "refusal of a mounted controller does not say why"
[ "$(basename $(readlink /sys/bus/pci/devices/$MNTD/driver))" = nvme ] || fail "$MNTD left the nvme driver"
umount /mnt

step "setup: hugepages"
sfbench setup --hugemem 160 || fail "sfbench setup --hugemem failed"
step "setup: bind $VFIO to vfio-pci"
sfbench setup --bind $VFIO --driver vfio-pci || fail "sfbench setup --bind $VFIO vfio-pci failed"
step "negative: open a kernel-bound controller"
if pci_check $KERN > /tmp/neg.log 2>&1; then fail "pci_check on a kernel-bound controller succeeded"; fi
grep -q "bind it to a user-space driver" /tmp/neg.log || { cat /tmp/neg.log; fail "refusal of a kernel-bound controller does not name the fix"; }

step "(b) B+-tree lookups on all four engines"
T0=$(date +%s)
sfbench run --db /dev/$DEV --pci $VFIO --workload lookup-uniform \
    --engines pread,io-uring,user-chain,bpf-chain --seconds 1 --warmup 0.2 --check-every 1 \
    || fail "sfbench run with all four engines failed (see above)"
step "(b) done in $(( $(date +%s) - T0 )) s"

step "(c) sfbench perf: refuses to write the controller without --allow-write"
if sfbench perf --pci $VFIO --engines spdk-style -w randwrite -t 0.2 > /tmp/perfneg.log 2>&1; then fail "sfbench perf wrote a PCIe controller without --allow-write"; fi
grep -q -- "--allow-write" /tmp/perfneg.log || { cat /tmp/perfneg.log; fail "the refusal does not name --allow-write"; }

step "(c) sfbench perf on every engine: write pass, read pass comparing content, timed randrw checking every read"
T0=$(date +%s)
sfbench perf --pci $VFIO --dev /dev/$DEV --allow-write --verify --engines spdk-style,io_uring,psync \
    -w randrw -M 50 -q 8 -o 4k -t 1 -a 0.1 --size 8M > /tmp/perf.log 2>&1 \
    || { cat /tmp/perf.log; fail "sfbench perf failed (see above)"; }
grep -E '^(verify|spdk-style|io_uring|psync|perf)' /tmp/perf.log
for e in spdk-style io_uring psync; do
    grep -q "verify: $e wrote 2048 blocks of 4096 B, read 2048 back: all match" /tmp/perf.log || fail "sfbench perf: $e was not verified"
    grep -qE "^$e +1 +[0-9]+ +[0-9]" /tmp/perf.log || fail "sfbench perf: no figures for $e"
done
step "(c) done in $(( $(date +%s) - T0 )) s"

step "(a) pci_check through vfio-pci"
pci_check $VFIO --ops 100 || fail "pci_check through vfio-pci"

step "(a) pci_check through uio_pci_generic"
sfbench setup --bind $VFIO --driver uio_pci_generic || fail "sfbench setup --bind $VFIO uio_pci_generic failed"
pci_check $VFIO --ops 100 --seed 11 || fail "pci_check through uio_pci_generic"

step "reset $VFIO to the kernel nvme driver"
sfbench setup --reset $VFIO || fail "sfbench setup --reset failed"
[ "$(basename $(readlink /sys/bus/pci/devices/$VFIO/driver))" = nvme ] || fail "$VFIO is not on nvme after reset"

finish "RIG: PASS"
