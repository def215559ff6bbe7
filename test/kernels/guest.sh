#!/bin/busybox sh
# shellcheck shell=dash
# /init of the kernel-matrix initramfs (initramfs.sh): mount what the loader needs, run the generated
# scenario (/scenario.sh, test/helpers/kernel-scenario.ts), print its step blocks on the serial
# console, power off. Busybox's sh runs its own applets first: ip, tc, nsenter, bpftool and kmod are
# called by their paths (/usr/sbin/ip, ...).
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
mount -t bpf bpf /sys/fs/bpf
mkdir -p /sys/fs/cgroup
mount -t cgroup2 cgroup2 /sys/fs/cgroup
echo "::boot $(cut -d' ' -f1 /proc/uptime) $(uname -r)"
sh /scenario.sh
echo "::done $? $(cut -d' ' -f1 /proc/uptime)"
sync
reboot -f
