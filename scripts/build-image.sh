#!/usr/bin/env bash
# `make image`: the agent's OCI image, from the single executable (dist/sea/, `make sea`) and a Debian
# bookworm base made by debootstrap --variant=minbase, the way test/vagrant/image.sh starts the VM
# image. Debian's own tools only: debootstrap for the base, umoci for the OCI layout (no daemon, no
# container run at build time). Output: dist/image/prep-node-agent-<version>.oci.tar, an OCI archive
# (the layout as one tar) whose one tag is the version; deploy/daemonset.yaml names it
# localhost/prep-node-agent:<version> (load it with `skopeo copy oci-archive:FILE:<version>
# containers-storage:localhost/prep-node-agent:<version>`, or `podman load`).
#
# Why a Debian base and not FROM scratch with the SEA's shared libraries: the agent installs the
# datapath through the same Host interface as over SSH, i.e. POSIX sh and coreutils on the node
# (src/host/local.ts runs `sh -c`), so the image needs what a Debian node has: minbase is that.
#
# The base is cached as a tar under ${PREP_NODE_OCI_CACHE:-/var/cache/prep-node/oci}/, keyed by
# the sha256 of its recipe (first 16 hex), so a rebuild takes seconds (14 s here); the first one 2.5–3.5 min on our busy machine with
# deb.debian.org reachable (PREP_NODE_OCI_MIRROR). Root only (debootstrap chroots).
set -euo pipefail
cd "$(dirname "$0")/.."

fail() {
  echo "build-image: $1" >&2
  exit 1
}
[[ $(id -u) == 0 ]] || fail "needs root (debootstrap and file ownership in the image): run it as root"
for c in debootstrap umoci sha256sum tar; do
  command -v "$c" >/dev/null || fail "$c is missing: apt-get install --no-install-recommends debootstrap umoci"
done
[[ -f dist/sea/prep-node && -f dist/sea/SHA256SUMS ]] || fail "dist/sea/ is missing: run \`make sea\` first"
(cd dist/sea && sha256sum --quiet -c SHA256SUMS) || fail "dist/sea/ does not match its SHA256SUMS: run \`make sea\` again"

version=$(node -p 'require("./package.json").version')
name=prep-node-agent
suite=bookworm
mirror=${PREP_NODE_OCI_MIRROR:-http://deb.debian.org/debian}
cache=${PREP_NODE_OCI_CACHE:-/var/cache/prep-node/oci}
# The base's recipe: its cache key (edit it and the base is rebuilt), and the first layer's history.
recipe="debootstrap --variant=minbase $suite; without apt caches and lists, docs, man pages, locales, logs, /dev"
key=$(printf '%s' "$recipe" | sha256sum | cut -c1-16)
base=$cache/base-$suite-$key.tar
out=dist/image
archive=$out/$name-$version.oci.tar
# The image's dates: the last commit's, so two builds of one commit differ only in the base's file
# times (the base is cached, so not at all while its cache lives).
created=$(date -u -d "@${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}" +%Y-%m-%dT%H:%M:%SZ)

tmp=$(mktemp -d /tmp/prep-node-image-XXXXXX)
cleanup() {
  # debootstrap mounts proc and sys in the chroot and unmounts them itself; make sure on failure
  for m in "$tmp/rootfs/proc" "$tmp/rootfs/sys"; do mountpoint -q "$m" 2>/dev/null && umount -l "$m"; done
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

if [[ ! -f $base ]]; then
  echo "build-image: debootstrap --variant=minbase $suite from $mirror (cached as $base)" >&2
  mkdir -p "$cache/debs"
  debootstrap --variant=minbase --cache-dir="$cache/debs" "$suite" "$tmp/rootfs" "$mirror" >"$tmp/debootstrap.log" 2>&1 ||
    fail "debootstrap failed (log below; is $mirror reachable?)
$(tail -20 "$tmp/debootstrap.log")"
  # What a container does not use: package caches and lists, the debootstrap leftovers, docs,
  # man pages and locales (no interactive use); /dev is the runtime's.
  rm -rf "$tmp/rootfs"/var/cache/apt/archives/*.deb "$tmp/rootfs"/var/lib/apt/lists/* "$tmp/rootfs/debootstrap" \
    "$tmp/rootfs"/usr/share/{doc,man,info,locale}/* "$tmp/rootfs"/var/log/*.log "$tmp/rootfs"/dev/*
  tar -C "$tmp/rootfs" --numeric-owner --sort=name -cf "$base.part" . && mv "$base.part" "$base"
  rm -rf "$tmp/rootfs"
fi

# The agent's files as `prep-node agent install` lays them out on a node: one root-owned directory,
# nothing in it writable but by root (the agent refuses to load native code from anything else).
stage=$tmp/agent/usr/local/lib/prep-node-agent
mkdir -p "$stage" "$tmp/base"
cp dist/sea/prep-node dist/sea/koffi.node dist/sea/libbpf.so.1 dist/sea/libelf.so.1 dist/sea/prep-node-dp \
  dist/sea/prep-node-dp.sha256 dist/sea/SHA256SUMS "$stage/"
chown -R 0:0 "$tmp/agent"
find "$tmp/agent" -type d -exec chmod 0755 {} +
chmod 0755 "$stage/prep-node" "$stage/prep-node-dp"
chmod 0644 "$stage"/{koffi.node,libbpf.so.1,libelf.so.1,prep-node-dp.sha256,SHA256SUMS}
tar -C "$tmp/base" -xf "$base"

layout=$tmp/layout
umoci init --layout "$layout"
umoci new --image "$layout:$version"
hist=(--history.created "$created" --history.author prep-node --history.created_by)
umoci insert --image "$layout:$version" "${hist[@]}" "$recipe" "$tmp/base" /
umoci insert --image "$layout:$version" "${hist[@]}" "make sea: dist/sea/ as /usr/local/lib/prep-node-agent" "$tmp/agent/usr" /usr
umoci config --image "$layout:$version" --no-history --created "$created" --author prep-node \
  --architecture amd64 --os linux --config.user 0:0 --config.workingdir / \
  --config.env PATH=/usr/local/lib/prep-node-agent:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --config.entrypoint /usr/local/lib/prep-node-agent/prep-node --config.cmd agent \
  --config.stopsignal SIGTERM \
  --config.label org.opencontainers.image.title=$name \
  --config.label org.opencontainers.image.version="$version" \
  --config.label org.opencontainers.image.description="prep-node's agent: kube-proxy replacement and L3/L4 policy on an eBPF datapath"
umoci gc --layout "$layout"

mkdir -p "$out"
rm -f "$out"/$name-*.oci.tar
tar -C "$layout" --numeric-owner --owner=0 --group=0 --sort=name --mtime="$created" -cf "$archive.part" . && mv "$archive.part" "$archive"
echo "build-image: $archive ($(du -m "$archive" | cut -f1) MB), tag $version; deploy/ names it localhost/$name:$version"
