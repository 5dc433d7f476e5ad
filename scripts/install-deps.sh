#!/usr/bin/env bash
# Installs the system packages the build and the tests need (Debian 12), once.
# Idempotent: does nothing when everything is already there.
set -euo pipefail
need=()
command -v clang >/dev/null 2>&1 || need+=(clang)
# clang 14 (Debian 12's default) has no -mcpu=v4; the ISA v4 C test needs >= 18.
command -v clang-19 >/dev/null 2>&1 || need+=(clang-19)
command -v llvm-objdump >/dev/null 2>&1 || need+=(llvm)
command -v mkfs.ext4 >/dev/null 2>&1 || need+=(e2fsprogs)
command -v debugfs >/dev/null 2>&1 || need+=(e2fsprogs)
command -v losetup >/dev/null 2>&1 || need+=(mount)
command -v mkfs.xfs >/dev/null 2>&1 || need+=(xfsprogs)
command -v fallocate >/dev/null 2>&1 || need+=(util-linux)
command -v setpriv >/dev/null 2>&1 || need+=(util-linux)
# libsfe's C tests build against its pkg-config file with the system compiler.
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
command -v cc >/dev/null 2>&1 || need+=(gcc)
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" != 0 ]; then
  echo "install-deps: missing ${need[*]}; run as root (or: sudo apt-get install ${need[*]})" >&2
  exit 1
fi
echo "install-deps: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
