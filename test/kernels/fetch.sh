#!/usr/bin/env bash
# Fetch one Debian kernel from Debian's archive by package name and cache what a minimal boot needs.
#   test/kernels/fetch.sh SUITE FLAVOUR      e.g. bullseye amd64, trixie cloud-amd64
#   Prints the cache directory on the LAST stdout line: vmlinuz, config, lib/modules/<release>/ (the
#   net/sched and veth modules with their dependencies, after depmod), package (name and version).
# apt runs with a private configuration (its own sources.list, state and cache under the cache
# root): the machine's sources and package state are never read or changed. The cache is keyed by
# package name and version, so a new Debian kernel upload is fetched once and older ones stay valid.
#   PREP_NODE_KERNEL_CACHE   cache root (default /var/cache/prep-node/kernels)
#   PREP_NODE_DEBIAN_MIRROR  (default http://deb.debian.org/debian)
set -euo pipefail

SUITE=${1:?usage: fetch.sh SUITE FLAVOUR}
FLAVOUR=${2:?usage: fetch.sh SUITE FLAVOUR}
case "$SUITE" in bullseye | bookworm | trixie) ;; *) echo "fetch.sh: unknown suite $SUITE (bullseye, bookworm, trixie)" >&2; exit 2 ;; esac
case "$FLAVOUR" in amd64 | cloud-amd64) ;; *) echo "fetch.sh: unknown flavour $FLAVOUR (amd64, cloud-amd64)" >&2; exit 2 ;; esac
ROOT=${PREP_NODE_KERNEL_CACHE:-/var/cache/prep-node/kernels}
MIRROR=${PREP_NODE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# modules the datapath needs at run time (tc's clsact and BPF classifier) and the test needs (veth;
# cls_u32 for someone else's filter). The list is written to <cache>/complete: a changed list refetches.
MODULES=(sch_ingress cls_bpf veth cls_u32)

log() { echo "fetch.sh: $*" >&2; }
mkdir -p "$ROOT"
# one fetch at a time per cache root (two test runs may share it)
exec 9>"$ROOT/.lock"
flock 9

# ---- private apt: sources for SUITE only, state and cache of our own
APT="$ROOT/apt/$SUITE"
mkdir -p "$APT/state/lists/partial" "$APT/cache/archives/partial"
echo "deb $MIRROR $SUITE main" >"$APT/sources.list"
apt_opts=(-o "Dir::Etc::sourcelist=$APT/sources.list" -o Dir::Etc::sourceparts=/nonexistent
  -o "Dir::State=$APT/state" -o "Dir::State::status=$APT/state/status" -o "Dir::Cache=$APT/cache"
  -o APT::Get::List-Cleanup=0 -o Debug::NoLocking=1 -o APT::Sandbox::User=root)
touch "$APT/state/status"
# the lists are refreshed once a day: a kernel upload is picked up the next day
if [[ -z $(find "$APT/state/lists" -maxdepth 1 -name '*_Packages*' -mmin -1440 2>/dev/null) ]]; then
  log "apt-get update ($SUITE)"
  apt-get "${apt_opts[@]}" update -q >"$APT/update.log" 2>&1 || { cat "$APT/update.log" >&2; exit 1; }
fi

# linux-image-FLAVOUR is a metapackage: it depends on the current linux-image-<abi>-FLAVOUR
META="linux-image-$FLAVOUR"
PKG=$(apt-cache "${apt_opts[@]}" depends "$META" 2>/dev/null | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
[[ -n $PKG ]] || { log "no kernel package behind $META in $SUITE"; exit 1; }
VER=$(apt-cache "${apt_opts[@]}" show "$PKG" | awk '/^Version:/ { print $2; exit }')
DEST="$ROOT/${PKG}_${VER}"
if [[ -f $DEST/complete && $(cat "$DEST/complete") == "${MODULES[*]}" ]]; then
  log "cached $DEST"
  echo "$DEST"
  exit 0
fi

log "downloading $PKG $VER"
WORK=$(mktemp -d "$ROOT/.fetch-XXXXXX")
trap 'rm -rf "$WORK"' EXIT
(cd "$WORK" && apt-get "${apt_opts[@]}" download -q "$PKG=$VER" >"$WORK/download.log" 2>&1) || { cat "$WORK/download.log" >&2; exit 1; }
dpkg-deb -x "$WORK"/*.deb "$WORK/x"
MODDIR=
for d in "$WORK"/x/lib/modules/* "$WORK"/x/usr/lib/modules/*; do
  [[ -d $d ]] && MODDIR=$d && break
done
[[ -n $MODDIR ]] || { log "$PKG has no modules directory"; exit 1; }
REL=$(basename "$MODDIR")
XBASE=${MODDIR%/lib/modules/*} # depmod -b and modprobe -d want the directory holding lib/modules

OUT="$WORK/out"
KOUT="$OUT/lib/modules/$REL"
mkdir -p "$KOUT"
cp "$WORK/x/boot/vmlinuz-$REL" "$OUT/vmlinuz"
cp "$WORK/x/boot/config-$REL" "$OUT/config"
cp "$MODDIR"/modules.builtin* "$MODDIR/modules.order" "$KOUT/"
# the modules and what they depend on, by the package's own dependency data
depmod -b "$XBASE" "$REL"
for m in "${MODULES[@]}"; do
  modprobe -d "$XBASE" -S "$REL" --show-depends "$m"
done | awk '$1 == "insmod" { print $2 }' | sort -u | while read -r ko; do
  rel=${ko#"$MODDIR"/}
  mkdir -p "$KOUT/$(dirname "$rel")"
  cp "$ko" "$KOUT/$rel"
done
depmod -b "$OUT" "$REL"
printf '%s %s %s\n' "$PKG" "$VER" "$REL" >"$OUT/package"
rm -rf "$DEST"
mv "$OUT" "$DEST"
echo "${MODULES[*]}" >"$DEST/complete"
log "cached $DEST ($(du -sh "$DEST" | cut -f1))"
echo "$DEST"
