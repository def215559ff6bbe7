#!/usr/bin/env bash
# A private libvirtd for one test run: its own network namespace (so libvirt's
# bridges, dnsmasq, iptables rules and 192.168.121.0/24 never touch the root
# namespace), its own mount namespace (private /etc/libvirt, /var/lib/libvirt,
# /var/cache/libvirt, /var/log/libvirt and a tmpfs /run), and its socket in the
# state dir so nothing can talk to another libvirtd by accident.
# See shared/notes/vm-harness.md ("Keeping VM traffic inside what the test created").
#
# usage: libvirt.sh up STATE_DIR     start (or reuse) it; last stdout line: the socket path
#        libvirt.sh down STATE_DIR   remove every domain/network/volume/pool, stop the
#                                    daemons and every process left in the netns, delete
#                                    the netns; idempotent, exit 0 if nothing runs
# Files in STATE_DIR: netns (name), libvirt-sock-path, libvirt-sock*, libvirt/ (private
# config, state, logs, pid files).
set -euo pipefail

log() { printf '%s [libvirt] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() { sed -n '9,14p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

[[ $# -eq 2 ]] || usage
cmd=$1
[[ $cmd == up || $cmd == down ]] || usage
[[ $(id -u) -eq 0 ]] || die "needs root (network and mount namespaces)"
state=$(realpath -m -- "$2")

lv=$state/libvirt
sock=$state/libvirt-sock
uri="qemu:///system?socket=$sock"
libvirtd_pid=$lv/libvirtd.pid
virtlogd_pid=$lv/virtlogd.pid

# The netns name is derived from the state dir, so a second run on the same dir
# finds the first run's namespace, and two dirs never share one.
netns_name() {
  if [[ -s $state/netns ]]; then cat "$state/netns"; return; fi
  printf 'prepnode-%s\n' "$(printf '%s' "$state" | sha256sum | cut -c1-8)"
}
ns=$(netns_name)

netns_exists() { [[ -e /run/netns/$ns ]]; }

virsh_() { timeout 60 virsh -q -c "$uri" "$@"; }

alive() { [[ -S $sock ]] && timeout 10 virsh -q -c "$uri" version >/dev/null 2>&1; }

# pid from a pid file, only if that process is still the named program and,
# while our netns exists, runs in it (a stale pid file must not make us signal
# an unrelated process, nor another harness's libvirtd).
pid_of() {
  local file=$1 name=$2 pid
  [[ -s $file ]] || return 1
  pid=$(tr -dc 0-9 <"$file")
  [[ -n $pid && -r /proc/$pid/comm && $(cat "/proc/$pid/comm") == "$name"* ]] || return 1
  if netns_exists; then
    [[ $(stat -L -c %d:%i "/proc/$pid/ns/net" 2>/dev/null) == $(stat -L -c %d:%i "/run/netns/$ns") ]] ||
      return 1
  fi
  printf '%s\n' "$pid"
}

# TERM the given pids, wait up to $1 seconds, then KILL what is left.
stop_pids() {
  local wait=$1 pid left i
  shift
  [[ $# -gt 0 ]] || return 0
  kill -TERM "$@" 2>/dev/null || true
  for ((i = 0; i < wait * 5; i++)); do
    left=()
    for pid in "$@"; do [[ -e /proc/$pid ]] && left+=("$pid"); done
    [[ ${#left[@]} -eq 0 ]] && return 0
    sleep 0.2
  done
  log "still running after ${wait}s, KILL: ${left[*]}"
  kill -KILL "${left[@]}" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    left=()
    for pid in "$@"; do [[ -e /proc/$pid ]] && left+=("$pid"); done
    [[ ${#left[@]} -eq 0 ]] && return 0
    sleep 0.2
  done
}

write_config() {
  rm -rf "${lv:?}/etc"
  mkdir -p "$lv/etc/qemu/networks/autostart" "$lv/etc/storage/autostart" \
    "$lv/lib/images" "$lv/lib/boot" "$lv/lib/qemu" "$lv/lib/dnsmasq" \
    "$lv/lib/network" "$lv/cache" "$lv/log/qemu"
  # Stock daemon configs, but none of the host's domains, networks or pools.
  cp /etc/libvirt/*.conf "$lv/etc/"
  [[ -d /etc/libvirt/nwfilter ]] && cp -r /etc/libvirt/nwfilter "$lv/etc/"
  cat >"$lv/etc/libvirtd.conf" <<EOF
# Written by test/vagrant/libvirt.sh: a private libvirtd for $state
unix_sock_dir = "$state"
unix_sock_group = "root"
unix_sock_ro_perms = "0700"
unix_sock_rw_perms = "0700"
unix_sock_admin_perms = "0700"
auth_unix_ro = "none"
auth_unix_rw = "none"
log_outputs = "3:file:$lv/libvirtd.log"
EOF
  # qemu runs as root without a security driver: the disks and the serial log
  # live in the state dir, which libvirt-qemu may not be able to reach.
  # No cgroups: without systemd libvirt would create (and on a crash leave)
  # directories under the host's /sys/fs/cgroup. No per-domain /dev namespace.
  cat >"$lv/etc/qemu.conf" <<EOF
# Written by test/vagrant/libvirt.sh
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
cgroup_controllers = [ ]
namespaces = [ ]
EOF
  cat >"$lv/etc/virtlogd.conf" <<EOF
# Written by test/vagrant/libvirt.sh
log_outputs = "3:file:$lv/virtlogd.log"
EOF
}

# Runs inside the netns, in a fresh private mount namespace; the daemons keep
# that namespace alive after this shell exits.
# shellcheck disable=SC2016
start_script='
set -eu
lv=$1
mount -t tmpfs -o mode=0755,size=64m prep-node-run /run
mkdir -p /run/libvirt /run/lock
mount --bind "$lv/etc" /etc/libvirt
mount --bind "$lv/lib" /var/lib/libvirt
mount --bind "$lv/cache" /var/cache/libvirt
mount --bind "$lv/log" /var/log/libvirt
virtlogd -d -f "$lv/etc/virtlogd.conf" -p "$lv/virtlogd.pid"
libvirtd -d -f "$lv/etc/libvirtd.conf" -p "$lv/libvirtd.pid"
'

do_up() {
  if netns_exists && alive; then
    log "reusing libvirtd on $sock (netns $ns)"
    printf '%s\n' "$sock"
    return
  fi
  if netns_exists || [[ -e $libvirtd_pid || -e $virtlogd_pid ]]; then
    log "leftovers of an earlier run in $state: cleaning up first"
    do_down
  fi
  local len=$((${#state} + 20))
  ((len < 108)) || die "state dir path too long for a unix socket (${#state} chars): $state"

  mkdir -p "$state"
  write_config
  printf '%s\n' "$ns" >"$state/netns"
  log "netns $ns"
  ip netns add "$ns"
  ip netns exec "$ns" ip link set lo up
  log "starting virtlogd and libvirtd (private mount namespace)"
  # Their stdio goes to a file: a caller reading our stdout through a pipe must
  # not wait for daemons that inherited it.
  ip netns exec "$ns" unshare --mount --propagation private -- \
    bash -c "$start_script" start "$lv" </dev/null >>"$lv/daemons.out" 2>&1 ||
    { do_down; die "could not start the daemons, see $lv/daemons.out and $lv/libvirtd.log"; }

  local i
  for ((i = 0; i < 150; i++)); do
    alive && break
    sleep 0.2
  done
  alive || { do_down; die "libvirtd did not answer on $sock, see $lv/libvirtd.log"; }
  printf '%s\n' "$sock" >"$state/libvirt-sock-path"
  log "libvirtd ready: $uri"
  printf '%s\n' "$sock"
}

remove_libvirt_objects() {
  local name pool vol
  while read -r name; do
    [[ -n $name ]] || continue
    log "domain $name: destroy, undefine"
    virsh_ destroy "$name" >/dev/null 2>&1 || true
    virsh_ undefine --nvram "$name" >/dev/null 2>&1 ||
      virsh_ undefine "$name" >/dev/null 2>&1 || log "could not undefine domain $name"
  done < <(virsh_ list --all --name 2>/dev/null || true)
  while read -r name; do
    [[ -n $name ]] || continue
    log "network $name: destroy, undefine"
    virsh_ net-destroy "$name" >/dev/null 2>&1 || true
    virsh_ net-undefine "$name" >/dev/null 2>&1 || log "could not undefine network $name"
  done < <(virsh_ net-list --all --name 2>/dev/null || true)
  while read -r pool; do
    [[ -n $pool ]] || continue
    virsh_ pool-refresh "$pool" >/dev/null 2>&1 || true
    while read -r vol _; do
      [[ -n $vol ]] || continue
      log "volume $pool/$vol: delete"
      virsh_ vol-delete --pool "$pool" "$vol" >/dev/null 2>&1 || log "could not delete volume $pool/$vol"
    done < <(virsh_ vol-list "$pool" 2>/dev/null || true)
    log "pool $pool: destroy, undefine"
    virsh_ pool-destroy "$pool" >/dev/null 2>&1 || true
    virsh_ pool-undefine "$pool" >/dev/null 2>&1 || log "could not undefine pool $pool"
  done < <(virsh_ pool-list --all --name 2>/dev/null || true)
}

do_down() {
  if alive; then
    remove_libvirt_objects
  fi
  local pids=() pid
  pid=$(pid_of "$libvirtd_pid" libvirtd) && pids+=("$pid")
  pid=$(pid_of "$virtlogd_pid" virtlogd) && pids+=("$pid")
  if [[ ${#pids[@]} -gt 0 ]]; then
    log "stopping daemons: ${pids[*]}"
    stop_pids 15 "${pids[@]}"
  fi
  if netns_exists; then
    # Whatever is still in the namespace was started by this harness (qemu,
    # dnsmasq, a vagrant that was interrupted): end it before deleting the netns.
    mapfile -t pids < <(ip netns pids "$ns" 2>/dev/null || true)
    if [[ ${#pids[@]} -gt 0 ]]; then
      log "processes left in netns $ns: ${pids[*]}"
      stop_pids 10 "${pids[@]}"
    fi
    log "deleting netns $ns"
    ip netns del "$ns" || die "could not delete netns $ns"
  fi
  rm -f "$libvirtd_pid" "$virtlogd_pid" "$state/libvirt-sock-path" \
    "$sock" "$sock-ro" "$state/libvirt-admin-sock"
}

case $cmd in
  up) do_up ;;
  down) do_down ;;
esac
