#!/usr/bin/env bash
# Build the minimal initramfs that runs the datapath scenario on one kernel: no distro root
# filesystem, only busybox (static), the static loader, ip/tc/nsenter/bpftool and kmod with their
# shared libraries (copied from this machine), the kernel's own modules from fetch.sh, and
# test/kernels/guest.sh as /init.
#   test/kernels/initramfs.sh KERNEL_DIR LOADER SCENARIO.sh OUT.cpio.gz
set -euo pipefail

KDIR=${1:?usage: initramfs.sh KERNEL_DIR LOADER SCENARIO.sh OUT.cpio.gz}
LOADER=${2:?usage: initramfs.sh KERNEL_DIR LOADER SCENARIO.sh OUT.cpio.gz}
SCENARIO=${3:?usage: initramfs.sh KERNEL_DIR LOADER SCENARIO.sh OUT.cpio.gz}
OUT=${4:?usage: initramfs.sh KERNEL_DIR LOADER SCENARIO.sh OUT.cpio.gz}
HERE=$(cd "$(dirname "$0")" && pwd)
[[ -f $KDIR/complete ]] || { echo "initramfs.sh: $KDIR is not a kernel fetched by fetch.sh" >&2; exit 2; }
BUSYBOX=$(command -v busybox) || { echo "initramfs.sh: busybox missing: apt-get install busybox-static" >&2; exit 2; }
file -L "$BUSYBOX" | grep -q 'statically linked' || { echo "initramfs.sh: $BUSYBOX is not static: apt-get install busybox-static" >&2; exit 2; }

R=$(mktemp -d /tmp/prep-node-initramfs-XXXXXX)
trap 'rm -rf "$R"' EXIT
mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,run,tmp,lib,lib64}
cp "$BUSYBOX" "$R/bin/busybox"
cp "$LOADER" "$R/bin/prep-node-dp"
cp "$HERE/guest.sh" "$R/init"
cp "$SCENARIO" "$R/scenario.sh"
chmod 755 "$R/init"

# dynamic tools at their usual paths (busybox's sh prefers its own applets: guest.sh calls these by path)
copy_bin() {
  local src=$1 dst=$2 lib
  cp -L "$src" "$R$dst"
  for lib in $(ldd "$src" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'); do
    mkdir -p "$R$(dirname "$lib")"
    [[ -e $R$lib ]] || cp -L "$lib" "$R$lib"
  done
}
copy_bin "$(command -v ip)" /usr/sbin/ip
copy_bin "$(command -v tc)" /usr/sbin/tc
copy_bin "$(command -v nsenter)" /usr/bin/nsenter
copy_bin "$(command -v bpftool)" /usr/sbin/bpftool
copy_bin "$(command -v kmod)" /bin/kmod
# the kernel runs /sbin/modprobe when tc asks for sch_ingress or cls_bpf
ln -s /bin/kmod "$R/sbin/modprobe"
ln -s /bin/kmod "$R/sbin/lsmod"
cp -a "$KDIR/lib/modules" "$R/lib/"

(cd "$R" && find . -print0 | cpio --null -o -H newc --quiet) | gzip -1 >"$OUT"
