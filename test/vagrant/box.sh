#!/usr/bin/env bash
# Build (or reuse) the Vagrant box for the libvirt provider from the guest
# image that image.sh caches.
#
# usage: box.sh
#   Runs image.sh, then writes <cache dir>/prep-node-debian12.box: a tar of
#   box.img (the image's qcow2), metadata.json and a small Vagrantfile.
#   Reused while it is newer than the image. Last stdout line: the box path.
# shellcheck source-path=SCRIPTDIR
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"
PN_LOG_TAG=box

[[ $# -eq 0 ]] || { sed -n '5,8p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
pn_need_root
pn_need_cmd qemu-img tar flock

cache=$(bash "$here/image.sh" | tail -n 1)
[[ $cache == /* && -f $cache/ok && -f $cache/disk.qcow2 ]] ||
  pn_die "image.sh did not print a complete cache dir (got '$cache')"

box=$cache/prep-node-debian12.box

# One builder at a time per cache dir; a second caller waits and then reuses.
exec 9>"$cache/.box.lock"
flock 9

if [[ -s $box && $box -nt $cache/disk.qcow2 ]]; then
  pn_log "reusing $box"
  printf '%s\n' "$box"
  exit 0
fi

started=$SECONDS
tmp=$(mktemp -d "$cache/.box.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

bytes=$(qemu-img info --output=json "$cache/disk.qcow2" |
  sed -n 's/^ *"virtual-size": *\([0-9]*\),*$/\1/p' | head -n 1)
[[ $bytes =~ ^[0-9]+$ ]] || pn_die "could not read the virtual size of $cache/disk.qcow2"
gib=$(((bytes + (1 << 30) - 1) >> 30))

# A hard link avoids copying the disk; tar stores its content either way.
ln "$cache/disk.qcow2" "$tmp/box.img" 2>/dev/null || cp "$cache/disk.qcow2" "$tmp/box.img"
printf '{"provider":"libvirt","format":"qcow2","virtual_size":%s}\n' "$gib" >"$tmp/metadata.json"
# Defaults for any Vagrantfile using this box; test/vagrant/Vagrantfile sets the rest.
cat >"$tmp/Vagrantfile" <<'EOF'
Vagrant.configure("2") do |config|
  config.ssh.insert_key = false
  config.vm.synced_folder ".", "/vagrant", disabled: true
  config.vm.provider :libvirt do |libvirt|
    libvirt.driver = "qemu"
    libvirt.graphics_type = "none"
    libvirt.video_type = "none"
  end
end
EOF
pn_log "packing $box (virtual size ${gib} GiB)"
# Uncompressed: the qcow2 is already compact and `vagrant box add` unpacks faster.
tar -cf "$tmp/box.tar" -C "$tmp" metadata.json Vagrantfile box.img
mv -f "$tmp/box.tar" "$box"
pn_log "box ready in $((SECONDS - started)) s"
printf '%s\n' "$box"
