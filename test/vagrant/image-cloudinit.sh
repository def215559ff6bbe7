#!/usr/bin/env bash
# Build (or reuse from cache) the cloud-init variant of the test guest: the base
# image of image.sh with Debian's cloud-init installed (chroot, apt-get) and set
# to read only a NoCloud seed (datasource_list: [ NoCloud, None ]). The base
# image and its cache stay untouched; this one is cached beside it.
#
# Usage: test/vagrant/image-cloudinit.sh [--rebuild]
#   Prints the absolute cache directory of the image on the LAST stdout line.
#   Same layout as image.sh's (disk.qcow2, vmlinuz, initrd.img, cmdline,
#   kernel-release, root-uuid, id_ed25519{,.pub}, ssh_host_*_key.pub,
#   recipe.txt, build.log, ok), so qemu.sh boots it the same way:
#   qemu.sh up STATE --image cloudinit --seed SEED.iso
#
# Environment: PREP_NODE_VM_CACHE, PREP_NODE_VM_MIRROR, PREP_NODE_VM_REBUILD
# (as image.sh; --rebuild rebuilds this variant only).
#
# Cache: $PREP_NODE_VM_CACHE/cloudinit-<key>/, key = first 16 hex of sha256
# over this file and the base image's recipe.txt (which names the base key and
# its build time), so a rebuilt base means a rebuilt variant.
#
# The guest's cloud-init, configured in /etc/cloud/cloud.cfg.d/90-prep-node-test.cfg:
# NoCloud or nothing (no network datasource is ever probed), no network
# configuration (the image's ifupdown eth0 stays), the image's fixed SSH host
# keys and root login kept, no default user, hostname and locale kept.
set -euo pipefail

PN_LOG_TAG=image-cloudinit
SELF_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$SELF_DIR/lib.sh"

SUITE=bookworm
MIRROR="${PREP_NODE_VM_MIRROR:-http://deb.debian.org/debian}"
PACKAGES=(cloud-init)

REBUILD="${PREP_NODE_VM_REBUILD:-0}"
for arg in "$@"; do
  case "$arg" in
    --rebuild) REBUILD=1 ;;
    -h | --help)
      awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"
      exit 0
      ;;
    *) pn_die "unknown argument: $arg (usage: image-cloudinit.sh [--rebuild])" ;;
  esac
done

# The base image first (built if missing); its build must not see our --rebuild.
BASE="$(PREP_NODE_VM_REBUILD=0 "$SELF_DIR/image.sh" | tail -n1)"
if [ -z "$BASE" ] || [ ! -f "$BASE/ok" ]; then pn_die "image.sh returned an incomplete cache: $BASE"; fi

KEY="$(pn_sha16 "$SELF_DIR/image-cloudinit.sh" "$BASE/recipe.txt")"
CACHE_ROOT="$(pn_abspath "$PN_CACHE_ROOT")"
DEST="$CACHE_ROOT/cloudinit-$KEY"

if [ "$REBUILD" != 1 ] && [ -f "$DEST/ok" ]; then
  pn_log "cached image $DEST"
  printf '%s\n' "$DEST"
  exit 0
fi

pn_need_root
pn_need_cmd qemu-img losetup partx chroot mount umount flock sync

exec 9>"$CACHE_ROOT/.lock-cloudinit-$KEY"
if ! flock -n 9; then
  pn_log "another build of cloudinit-$KEY is running; waiting for it"
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

umount_under() {
  local dir="$1" mp
  awk -v d="$dir" '$2 == d || index($2, d "/") == 1 { print $2 }' /proc/mounts |
    sort -r | while read -r mp; do
    umount "$mp" 2>/dev/null || umount -l "$mp" 2>/dev/null || true
  done
}

detach_loops_of() {
  local file="$1" dev
  losetup -j "$file" 2>/dev/null | cut -d: -f1 | while read -r dev; do
    [ -n "$dev" ] || continue
    losetup -d "$dev" 2>/dev/null || true
  done
}

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
  PN_QUIET=1
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
      losetup -d "$LOOP" 2>/dev/null
    fi
    if [ "$rc" != 0 ] && [ -f "$TMP/out/build.log" ]; then
      cp -f "$TMP/out/build.log" "$CACHE_ROOT/last-failed-build-cloudinit.log" 2>/dev/null
    fi
    remove_build_dir "$TMP"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'pn_die "interrupted (SIGINT)"' INT
trap 'pn_die "interrupted (SIGTERM)"' TERM
trap 'pn_die "interrupted (SIGHUP)"' HUP

for stale in "$CACHE_ROOT"/.build-cloudinit-"$KEY".*; do
  [ -d "$stale" ] || continue
  pn_log "removing stale build dir $stale"
  remove_build_dir "$stale"
done

START=$(date +%s)
TMP="$(mktemp -d "$CACHE_ROOT/.build-cloudinit-$KEY.XXXXXX")"
M="$TMP/mnt"
OUT="$TMP/out"
mkdir -p "$M" "$OUT" "$CACHE_ROOT/debs-cloudinit/partial"
LOG="$OUT/build.log"
: >"$LOG"
pn_log "building image cloudinit-$KEY from $BASE in $TMP (log: $LOG)"

# run CMD...: as image.sh's run (own session, output to the log, tail on failure).
run() {
  local rc=0
  printf '+ %s\n' "$*" >>"$LOG"
  setsid "$@" </dev/null >>"$LOG" 2>&1 &
  CHILD=$!
  wait "$CHILD" || rc=$?
  CHILD=""
  if [ "$rc" != 0 ]; then
    tail -n 25 "$LOG" >&2
    pn_die "command failed (exit $rc): $* (full log: $CACHE_ROOT/last-failed-build-cloudinit.log)"
  fi
}

# --- 1. the base disk, writable --------------------------------------------------
# The root partition gets a loop device of its own (offset and size from the partition table), so
# no partition device node (loopNp1) is involved: without udev those can be missing or stale.
run qemu-img convert -f qcow2 -O raw "$BASE/disk.qcow2" "$TMP/disk.raw"
read -r PSTART PSECTORS < <(partx -g -n 1 -o START,SECTORS "$TMP/disk.raw") || pn_die "no partition 1 in the base disk"
# attach [-r]: a loop device over partition 1 of disk.raw; prints its name.
attach() {
  losetup -f --show "$@" -o $((PSTART * 512)) --sizelimit $((PSECTORS * 512)) "$TMP/disk.raw"
}
LOOP="$(attach)" || pn_die "losetup failed"
run mount "$LOOP" "$M"
run mount -t proc proc "$M/proc"
run mount -t sysfs sysfs "$M/sys"
run mount --bind /dev "$M/dev"
run mount --bind /dev/pts "$M/dev/pts"
run mount --bind "$CACHE_ROOT/debs-cloudinit" "$M/var/cache/apt/archives"

# --- 2. apt-get install cloud-init in the guest's root -------------------------
# Name resolution for apt inside the chroot only while it runs; no service starts.
cp /etc/resolv.conf "$M/etc/resolv.conf"
printf '#!/bin/sh\nexit 101\n' >"$M/usr/sbin/policy-rc.d"
chmod 755 "$M/usr/sbin/policy-rc.d"
printf 'deb %s %s main\n' "$MIRROR" "$SUITE" >"$M/etc/apt/sources.list"
pn_log "apt-get install ${PACKAGES[*]} (from $MIRROR)"
run chroot "$M" env DEBIAN_FRONTEND=noninteractive LC_ALL=C apt-get update -q
run chroot "$M" env DEBIAN_FRONTEND=noninteractive LC_ALL=C \
  apt-get install -y -q --no-install-recommends "${PACKAGES[@]}"
# shellcheck disable=SC2016 # dpkg-query's format, not shell
CI_VERSION="$(chroot "$M" dpkg-query -W -f '${Version}' cloud-init)"
pn_log "cloud-init $CI_VERSION installed ($(($(date +%s) - START)) s)"

# --- 3. configure cloud-init for the test VM --------------------------------------
cat >"$M/etc/cloud/cloud.cfg.d/90-prep-node-test.cfg" <<'EOF'
# prep-node test VM (test/vagrant/image-cloudinit.sh): cloud-init reads a NoCloud
# seed (a disk labelled cidata) or nothing; it never probes a network datasource.
datasource_list: [ NoCloud, None ]
# The image's eth0 (ifupdown, DHCP) stays as it is.
network: {config: disabled}
# Keep the image's fixed SSH host keys (the harness trusts exactly those) and root's key login.
ssh_deletekeys: false
ssh_genkeytypes: []
disable_root: false
# No default "debian" user; keep the image's hostname and /etc/hosts.
users: []
preserve_hostname: true
manage_etc_hosts: false
# The minbase image generates no locales: leave /etc/default/locale alone
# (cloud-init's default en_US.UTF-8 makes update-locale fail there).
locale: false
EOF
# cloud-init has not run in this tree: start from a clean state anyway.
rm -rf "$M/var/lib/cloud" "$M/var/log/cloud-init.log" "$M/var/log/cloud-init-output.log"

# --- 4. clean up and close the disk -----------------------------------------------
rm -f "$M/usr/sbin/policy-rc.d"
: >"$M/etc/resolv.conf"
rm -rf "$M"/var/lib/apt/lists/*
sync -f "$M/etc/cloud"
for mp in var/cache/apt/archives dev/pts dev sys proc ""; do
  umount "$M${mp:+/$mp}" || pn_die "umount $M/$mp failed (busy?)"
done
losetup -d "$LOOP"
LOOP=""
sync "$TMP/disk.raw"
# What the guest will boot must have cloud-init: look again, read-only, through a new loop device.
LOOP="$(attach -r)" || pn_die "losetup failed"
run mount -o ro "$LOOP" "$M"
if [ ! -x "$M/usr/bin/cloud-init" ] || [ ! -f "$M/etc/cloud/cloud.cfg.d/90-prep-node-test.cfg" ]; then
  pn_die "the written disk has no cloud-init (writes lost?); see $LOG"
fi
run umount "$M"
losetup -d "$LOOP"
LOOP=""
pn_log "converting to qcow2"
run qemu-img convert -f raw -O qcow2 "$TMP/disk.raw" "$OUT/disk.qcow2"
rm -f "$TMP/disk.raw"

# --- 5. artifacts: the base's, plus this recipe ----------------------------------
for f in vmlinuz initrd.img cmdline kernel-release root-uuid id_ed25519 id_ed25519.pub \
  ssh_host_ed25519_key.pub ssh_host_ecdsa_key.pub ssh_host_rsa_key.pub; do
  cp -p "$BASE/$f" "$OUT/$f"
done
{
  echo "prep-node test VM image cloudinit-$KEY"
  echo "built: $(date -u '+%Y-%m-%dT%H:%M:%SZ') on $(uname -n) in $(($(date +%s) - START)) s"
  echo "recipe: sha256(image-cloudinit.sh + base recipe.txt)[0:16] = $KEY"
  echo "base: $BASE"
  echo "added: ${PACKAGES[*]} (cloud-init $CI_VERSION) from $MIRROR, --no-install-recommends"
  echo "cloud.cfg.d/90-prep-node-test.cfg: datasource_list [ NoCloud, None ], network config disabled,"
  echo "      host keys and root login kept, no default user, hostname kept"
  echo "disk.qcow2 size: $(du -h "$OUT/disk.qcow2" | cut -f1)"
  echo "--- base recipe.txt"
  cat "$BASE/recipe.txt"
} >"$OUT/recipe.txt"
touch "$OUT/ok"

if [ -e "$DEST" ]; then
  old="$CACHE_ROOT/.old-cloudinit-$KEY.$$"
  mv -T "$DEST" "$old"
  rm -rf --one-file-system "$old"
fi
mv -T "$OUT" "$DEST"
pn_log "image ready in $(($(date +%s) - START)) s: $DEST"
printf '%s\n' "$DEST"
