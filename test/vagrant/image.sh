#!/usr/bin/env bash
# Build (or reuse from cache) a bootable Debian guest disk for the prep-node VM
# tests: Debian 12 (bookworm) by default; image-bullseye.sh and image-trixie.sh
# are the recipes for Debian 11 and 13 (PREP_NODE_VM_SUITE).
#
# Usage: test/vagrant/image.sh [--rebuild]
#   Prints the absolute cache directory of the image on the LAST stdout line.
#   Progress goes to stderr, command output to <cache>/build.log.
#   --rebuild (or PREP_NODE_VM_REBUILD=1): ignore a complete cache and build anew.
#
# Environment:
#   PREP_NODE_VM_CACHE   cache root (default /var/cache/prep-node/vm)
#   PREP_NODE_VM_MIRROR  Debian mirror (default http://deb.debian.org/debian)
#   PREP_NODE_VM_SUITE   bullseye, bookworm (default) or trixie
#
# Cache layout: $PREP_NODE_VM_CACHE/<key>/ where <key> is the first 16 hex of
# sha256 over this file and lib.sh, then -<suite> unless bookworm. The directory is built under a temporary
# name and renamed into place at the end; it is complete only if it holds "ok".
#
# Artifacts: disk.qcow2 (MBR + 1 ext4 partition, extlinux), vmlinuz,
# initrd.img, cmdline, kernel-release, root-uuid, id_ed25519{,.pub} (client key
# authorized for root, prep, prep-pw and vagrant), ssh_host_*_key.pub (the
# guest's fixed host keys), recipe.txt, build.log, ok.
set -euo pipefail

PN_LOG_TAG=image
SELF_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$SELF_DIR/lib.sh"

SUITE="${PREP_NODE_VM_SUITE:-bookworm}"
case "$SUITE" in
  bullseye | bookworm | trixie) ;;
  *) echo "image.sh: PREP_NODE_VM_SUITE=$SUITE: expected bullseye, bookworm or trixie" >&2; exit 2 ;;
esac
MIRROR="${PREP_NODE_VM_MIRROR:-http://deb.debian.org/debian}"
DISK_SIZE=4G
HOSTNAME_VM=prepnode-vm
PREP_PW_PASSWORD=prep-pw-password
PACKAGES=(
  openssh-server systemd-sysv udev dbus
  iproute2 ifupdown isc-dhcp-client ethtool
  kmod procps sudo
  linux-image-amd64
)
# Units that slow the boot down or do background work a test VM does not need.
MASK_UNITS=(
  apt-daily.timer apt-daily.service apt-daily-upgrade.timer apt-daily-upgrade.service
  dpkg-db-backup.timer dpkg-db-backup.service
  e2scrub_all.timer e2scrub_all.service e2scrub_reap.service
  fstrim.timer fstrim.service man-db.timer
  systemd-networkd-wait-online.service
)
# Vagrant's well-known insecure public key; used only if the vagrant package
# does not provide keys/vagrant.pub on this host.
VAGRANT_INSECURE_PUB_FALLBACK='ssh-rsa AAAAB3NzaC1yc2EAAAABIwAAAQEA6NF8iallvQVp22WDkTkyrtvp9eWW6A8YVr+kz4TjGYe7gHzIw+niNltGEFHzD8+v1I2YJ6oXevct1YeS0o9HZyN1Q9qgCgzUFtdOKLv6IedplqoPkcmF0aYet2PkEDo3MlTBckFXPITAMzF8dJSIFo9D8HfdOV0IAdx4O7PtixWKn5y2hMNG0zQPyUecp4pzC6kivAIhyfHilFR61RGL+GPXQ2MWZWFYbAGjyiYJnAmCP3NOTd0jMZEnDkbUvxhMmBYSdETk1rRgm+R4LOzFUGaHqHDLKLX+FIPKcF96hrucXzcWyLbIbEgE98OHlnVYCzRdK8jlqm8tehUc9c9WhQ== vagrant insecure public key'

REBUILD="${PREP_NODE_VM_REBUILD:-0}"
for arg in "$@"; do
  case "$arg" in
    --rebuild) REBUILD=1 ;;
    -h | --help)
      awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"
      exit 0
      ;;
    *) pn_die "unknown argument: $arg (usage: image.sh [--rebuild])" ;;
  esac
done

KEY="$(pn_sha16 "$SELF_DIR/image.sh" "$SELF_DIR/lib.sh")"
[ "$SUITE" = bookworm ] || KEY="$KEY-$SUITE"
CACHE_ROOT="$(pn_abspath "$PN_CACHE_ROOT")"
DEST="$CACHE_ROOT/$KEY"

if [ "$REBUILD" != 1 ] && [ -f "$DEST/ok" ]; then
  pn_log "cached image $DEST"
  printf '%s\n' "$DEST"
  exit 0
fi

pn_need_root
pn_need_cmd debootstrap mkfs.ext4 sfdisk losetup partx extlinux qemu-img ssh-keygen flock chroot mount umount
MBR_BIN=""
for f in /usr/lib/syslinux/mbr/mbr.bin /usr/lib/EXTLINUX/mbr.bin /usr/share/syslinux/mbr.bin; do
  if [ -f "$f" ]; then MBR_BIN="$f"; break; fi
done
[ -n "$MBR_BIN" ] || pn_die "syslinux mbr.bin not found (apt-get install -y --no-install-recommends syslinux-common extlinux)"

mkdir -p "$CACHE_ROOT"
# One build per key at a time; a second caller waits and then reuses.
exec 9>"$CACHE_ROOT/.lock-$KEY"
if ! flock -n 9; then
  pn_log "another build of $KEY is running; waiting for it"
  flock 9
fi
if [ "$REBUILD" != 1 ] && [ -f "$DEST/ok" ]; then
  pn_log "cached image $DEST (built by a concurrent run)"
  printf '%s\n' "$DEST"
  exit 0
fi

TMP=""
LOOP=""
CHILD=""
MADE_NODES=()

# umount_under DIR: lazily unmount everything mounted at or below DIR.
umount_under() {
  local dir="$1" mp
  awk -v d="$dir" '$2 == d || index($2, d "/") == 1 { print $2 }' /proc/mounts |
    sort -r | while read -r mp; do
    umount "$mp" 2>/dev/null || umount -l "$mp" 2>/dev/null || true
  done
}

# detach_loops_of FILE: detach every loop device backed by FILE.
detach_loops_of() {
  local file="$1" dev
  losetup -j "$file" 2>/dev/null | cut -d: -f1 | while read -r dev; do
    [ -n "$dev" ] || continue
    partx -d "$dev" >/dev/null 2>&1 || true
    losetup -d "$dev" 2>/dev/null || true
  done
}

# remove_build_dir DIR: tear down a (possibly stale) build directory safely.
remove_build_dir() {
  local dir="$1"
  [ -n "$dir" ] && [ -d "$dir" ] || return 0
  umount_under "$dir"
  if awk -v d="$dir" 'index($2, d "/") == 1 { found = 1 } END { exit !found }' /proc/mounts; then
    pn_log "warning: mounts remain under $dir; not removing it"
    return 0
  fi
  detach_loops_of "$dir/disk.raw"
  rm -rf --one-file-system "$dir"
}

cleanup() {
  local rc=$? i
  set +e
  trap - EXIT INT TERM HUP
  PN_QUIET=1 # the error line printed before stays the last line
  if [ -n "$CHILD" ] && kill -0 "$CHILD" 2>/dev/null; then
    kill -TERM -- "-$CHILD" 2>/dev/null
    for ((i = 0; i < 50; i++)); do
      kill -0 -- "-$CHILD" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL -- "-$CHILD" 2>/dev/null
    wait "$CHILD" 2>/dev/null
  fi
  if [ -n "$TMP" ]; then
    umount_under "$TMP"
    if [ -n "$LOOP" ]; then
      partx -d "$LOOP" >/dev/null 2>&1
      losetup -d "$LOOP" 2>/dev/null
    fi
    local n
    for n in "${MADE_NODES[@]}"; do rm -f "$n"; done
    if [ "$rc" != 0 ] && [ -f "$TMP/out/build.log" ]; then
      cp -f "$TMP/out/build.log" "$CACHE_ROOT/last-failed-build.log" 2>/dev/null
    fi
    remove_build_dir "$TMP"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'pn_die "interrupted (SIGINT)"' INT
trap 'pn_die "interrupted (SIGTERM)"' TERM
trap 'pn_die "interrupted (SIGHUP)"' HUP

# Leftovers of builds that were killed hard (SIGKILL, power loss): we hold the
# lock, so nobody else is using them.
for stale in "$CACHE_ROOT"/.build-"$KEY".*; do
  [ -d "$stale" ] || continue
  pn_log "removing stale build dir $stale"
  remove_build_dir "$stale"
done

START=$(date +%s)
TMP="$(mktemp -d "$CACHE_ROOT/.build-$KEY.XXXXXX")"
R="$TMP/rootfs"
OUT="$TMP/out"
mkdir -p "$R" "$OUT" "$TMP/mnt" "$CACHE_ROOT/debs"
LOG="$OUT/build.log"
: >"$LOG"
pn_log "building image $KEY in $TMP (log: $LOG)"

# run CMD...: run with output appended to the build log; on failure show its
# tail. The command runs in its own session and we wait for it in the
# background, so a signal to this script is handled at once (bash defers traps
# while a foreground child runs) and cleanup can kill the whole process group.
run() {
  local rc=0
  printf '+ %s\n' "$*" >>"$LOG"
  setsid "$@" </dev/null >>"$LOG" 2>&1 &
  CHILD=$!
  wait "$CHILD" || rc=$?
  CHILD=""
  if [ "$rc" != 0 ]; then
    tail -n 25 "$LOG" >&2
    pn_die "command failed (exit $rc): $* (full log: $CACHE_ROOT/last-failed-build.log)"
  fi
}

# --- 1. debootstrap -----------------------------------------------------------
include="$(IFS=,; echo "${PACKAGES[*]}")"
pn_log "debootstrap $SUITE (minbase + $include) from $MIRROR"
run debootstrap --variant=minbase --include="$include" \
  --cache-dir="$CACHE_ROOT/debs" "$SUITE" "$R" "$MIRROR"
# debootstrap unmounts what it mounted; make sure before copying the tree.
umount_under "$R"
pn_log "debootstrap done ($(($(date +%s) - START)) s)"

# --- 2. configure the guest ---------------------------------------------------
KVER="$(find "$R/boot" -maxdepth 1 -name 'vmlinuz-*' -printf '%f\n' | sed 's/^vmlinuz-//' | sort -V | tail -n1)"
[ -n "$KVER" ] || pn_die "no kernel found in $R/boot"
[ -f "$R/boot/initrd.img-$KVER" ] || pn_die "no initrd for $KVER in $R/boot"
ROOT_UUID="$(cat /proc/sys/kernel/random/uuid)"
CMDLINE="root=UUID=$ROOT_UUID rw console=ttyS0 net.ifnames=0"
pn_log "configuring guest (kernel $KVER)"

echo "$HOSTNAME_VM" >"$R/etc/hostname"
cat >"$R/etc/hosts" <<EOF
127.0.0.1	localhost
127.0.1.1	$HOSTNAME_VM
::1		localhost ip6-localhost ip6-loopback
ff02::1		ip6-allnodes
ff02::2		ip6-allrouters
EOF
: >"$R/etc/resolv.conf"
cat >"$R/etc/fstab" <<EOF
# <file system>	<mount point>	<type>	<options>	<dump>	<pass>
UUID=$ROOT_UUID	/	ext4	errors=remount-ro	0	1
EOF

# Network: eth0 by DHCP with ifupdown (kernel booted with net.ifnames=0).
cat >"$R/etc/network/interfaces" <<'EOF'
# prep-node test VM: eth0 by DHCP (net.ifnames=0 on the kernel command line)
source /etc/network/interfaces.d/*

auto lo
iface lo inet loopback

allow-hotplug eth0
iface eth0 inet dhcp
EOF
# Do not let a missing DHCP server hold up the boot for a minute.
printf '\n# prep-node test VM: give up quickly without DHCP\ntimeout 15;\n' >>"$R/etc/dhcp/dhclient.conf"

# sshd
mkdir -p "$R/etc/ssh/sshd_config.d"
cat >"$R/etc/ssh/sshd_config.d/prep-node.conf" <<'EOF'
# prep-node test VM
UseDNS no
PermitRootLogin prohibit-password
EOF
# Fixed host keys, generated here and kept in the image.
rm -f "$R"/etc/ssh/ssh_host_*
run ssh-keygen -q -t ed25519 -N '' -C "root@$HOSTNAME_VM" -f "$R/etc/ssh/ssh_host_ed25519_key"
run ssh-keygen -q -t ecdsa -b 256 -N '' -C "root@$HOSTNAME_VM" -f "$R/etc/ssh/ssh_host_ecdsa_key"
run ssh-keygen -q -t rsa -b 3072 -N '' -C "root@$HOSTNAME_VM" -f "$R/etc/ssh/ssh_host_rsa_key"
cp "$R"/etc/ssh/ssh_host_*_key.pub "$OUT/"

# Throwaway client key for the tests.
run ssh-keygen -q -t ed25519 -N '' -C prep-node-test -f "$OUT/id_ed25519"

VAGRANT_PUB=""
for f in /usr/share/rubygems-integration/all/gems/vagrant-*/keys/vagrant.pub \
  /usr/share/vagrant/keys/vagrant.pub /usr/lib/ruby/vendor_ruby/vagrant/keys/vagrant.pub \
  /opt/vagrant/embedded/gems/gems/vagrant-*/keys/vagrant.pub; do
  if [ -f "$f" ]; then VAGRANT_PUB="$(cat "$f")"; break; fi
done
if [ -z "$VAGRANT_PUB" ] && command -v dpkg >/dev/null 2>&1; then
  f="$(dpkg -L vagrant 2>/dev/null | grep -E '/keys/vagrant\.pub$' | head -n1 || true)"
  if [ -n "$f" ] && [ -f "$f" ]; then VAGRANT_PUB="$(cat "$f")"; fi
fi
if [ -z "$VAGRANT_PUB" ]; then
  pn_log "vagrant package not found; using the built-in copy of Vagrant's insecure public key"
  VAGRANT_PUB="$VAGRANT_INSECURE_PUB_FALLBACK"
fi

# Users. root: key only (no password). prep: passwordless sudo. prep-pw: sudo
# with password. vagrant: passwordless sudo, Vagrant's insecure key + ours.
run chroot "$R" useradd -m -s /bin/bash -c 'prep-node test (passwordless sudo)' prep
run chroot "$R" useradd -m -s /bin/bash -c 'prep-node test (sudo with password)' prep-pw
run chroot "$R" useradd -m -s /bin/bash -c 'vagrant' vagrant
printf 'prep-pw:%s\n' "$PREP_PW_PASSWORD" | chroot "$R" chpasswd >>"$LOG" 2>&1 || pn_die "chpasswd failed"
cat >"$R/etc/sudoers.d/prep" <<'EOF'
prep ALL=(ALL:ALL) NOPASSWD: ALL
EOF
cat >"$R/etc/sudoers.d/prep-pw" <<'EOF'
prep-pw ALL=(ALL:ALL) ALL
EOF
cat >"$R/etc/sudoers.d/vagrant" <<'EOF'
Defaults:vagrant !requiretty
vagrant ALL=(ALL:ALL) NOPASSWD: ALL
EOF
chmod 0440 "$R"/etc/sudoers.d/prep "$R"/etc/sudoers.d/prep-pw "$R"/etc/sudoers.d/vagrant
run chroot "$R" visudo -c

OUR_PUB="$(cat "$OUT/id_ed25519.pub")"
# authorize USER HOME KEYLINES
authorize() {
  local user="$1" home="$2" keys="$3"
  mkdir -p "$R$home/.ssh"
  printf '%s\n' "$keys" >"$R$home/.ssh/authorized_keys"
  chmod 700 "$R$home/.ssh"
  chmod 600 "$R$home/.ssh/authorized_keys"
  run chroot "$R" chown -R "$user:" "$home/.ssh"
}
authorize root /root "$OUR_PUB"
authorize prep /home/prep "$OUR_PUB"
authorize prep-pw /home/prep-pw "$OUR_PUB"
authorize vagrant /home/vagrant "$VAGRANT_PUB"$'\n'"$OUR_PUB"

# Faster, quieter boot: text mode, no background jobs.
ln -sfn /lib/systemd/system/multi-user.target "$R/etc/systemd/system/default.target"
for u in "${MASK_UNITS[@]}"; do
  ln -sfn /dev/null "$R/etc/systemd/system/$u"
done
# Each boot of a fresh overlay gets its own machine-id.
: >"$R/etc/machine-id"
rm -f "$R/var/lib/dbus/machine-id"
# Keep the image small.
rm -f "$R"/var/cache/apt/archives/*.deb "$R"/var/cache/apt/*.bin
rm -rf "$R"/var/lib/apt/lists/* "$R/debootstrap"
: >"$R/var/log/bootstrap.log" 2>/dev/null || true

# --- 3. disk: MBR + one ext4 partition + extlinux -----------------------------
pn_log "creating $DISK_SIZE disk (MBR, ext4, extlinux)"
truncate -s "$DISK_SIZE" "$TMP/disk.raw"
printf 'label: dos\nstart=2048, type=83, bootable\n' | sfdisk -q "$TMP/disk.raw" >>"$LOG" 2>&1 ||
  pn_die "sfdisk failed"
LOOP="$(losetup -f --show -P "$TMP/disk.raw")" || pn_die "losetup failed"
partx -a "$LOOP" >>"$LOG" 2>&1 || true # no udev here; "already exists" is fine
PART="${LOOP}p1"
if [ ! -b "$PART" ]; then
  # The kernel knows the partition but nothing created the device node.
  sysdev="/sys/class/block/$(basename "$LOOP")/$(basename "$PART")/dev"
  [ -r "$sysdev" ] || pn_die "partition $PART did not appear (losetup -P / partx -a)"
  IFS=: read -r maj min <"$sysdev"
  mknod "$PART" b "$maj" "$min"
  MADE_NODES+=("$PART")
fi
run mkfs.ext4 -q -F -L prepnode-root -U "$ROOT_UUID" -O ^64bit,^metadata_csum \
  -E lazy_itable_init=0,lazy_journal_init=0 -d "$R" "$PART"
run mount "$PART" "$TMP/mnt"
mkdir -p "$TMP/mnt/boot/extlinux"
cat >"$TMP/mnt/boot/extlinux/extlinux.conf" <<EOF
SERIAL 0 115200
DEFAULT debian
PROMPT 0
TIMEOUT 0
LABEL debian
  LINUX /vmlinuz
  INITRD /initrd.img
  APPEND $CMDLINE
EOF
run extlinux --install "$TMP/mnt/boot/extlinux"
run umount "$TMP/mnt"
partx -d "$LOOP" >/dev/null 2>&1 || true
losetup -d "$LOOP"
LOOP=""
for n in "${MADE_NODES[@]}"; do rm -f "$n"; done
MADE_NODES=()
run dd if="$MBR_BIN" of="$TMP/disk.raw" bs=440 count=1 conv=notrunc
pn_log "converting to qcow2"
run qemu-img convert -f raw -O qcow2 "$TMP/disk.raw" "$OUT/disk.qcow2"
rm -f "$TMP/disk.raw"

# --- 4. artifacts -------------------------------------------------------------
cp "$R/boot/vmlinuz-$KVER" "$OUT/vmlinuz"
cp "$R/boot/initrd.img-$KVER" "$OUT/initrd.img"
echo "$KVER" >"$OUT/kernel-release"
echo "$ROOT_UUID" >"$OUT/root-uuid"
echo "$CMDLINE" >"$OUT/cmdline"
chmod 600 "$OUT/id_ed25519"
{
  echo "prep-node test VM image $KEY"
  echo "built: $(date -u '+%Y-%m-%dT%H:%M:%SZ') on $(uname -n) in $(($(date +%s) - START)) s"
  echo "recipe: sha256(image.sh + lib.sh)[0:16] = $KEY"
  echo "debian: $SUITE ($(cat "$R/etc/debian_version")) from $MIRROR, debootstrap --variant=minbase"
  echo "include: $include"
  echo "kernel: $KVER"
  echo "cmdline: $CMDLINE"
  echo "disk: disk.qcow2, $DISK_SIZE virtual; MBR (syslinux mbr.bin), partition 1 (start sector 2048, bootable, type 83)"
  echo "      ext4 label prepnode-root uuid $ROOT_UUID (-O ^64bit,^metadata_csum), extlinux in /boot/extlinux"
  echo "hostname: $HOSTNAME_VM; eth0 DHCP via ifupdown (allow-hotplug), dhclient timeout 15"
  echo "users: root (key only), prep (NOPASSWD sudo), prep-pw (sudo, password '$PREP_PW_PASSWORD'), vagrant (NOPASSWD sudo, vagrant insecure key)"
  echo "client key: id_ed25519 ($(ssh-keygen -lf "$OUT/id_ed25519.pub" | cut -d' ' -f2))"
  for f in "$OUT"/ssh_host_*_key.pub; do
    echo "host key: $(basename "$f") $(ssh-keygen -lf "$f" | cut -d' ' -f2)"
  done
  echo "masked units: ${MASK_UNITS[*]}"
  echo "packages: $(chroot "$R" dpkg-query -W -f '.\n' | wc -l)"
  echo "rootfs size: $(du -sh --one-file-system "$R" | cut -f1); disk.qcow2 size: $(du -h "$OUT/disk.qcow2" | cut -f1)"
} >"$OUT/recipe.txt"
touch "$OUT/ok"

# --- 5. publish atomically ------------------------------------------------------
if [ -e "$DEST" ]; then
  old="$CACHE_ROOT/.old-$KEY.$$"
  mv -T "$DEST" "$old"
  rm -rf --one-file-system "$old"
fi
mv -T "$OUT" "$DEST"
pn_log "image ready in $(($(date +%s) - START)) s: $DEST"
printf '%s\n' "$DEST"
