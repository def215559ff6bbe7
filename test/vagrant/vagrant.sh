#!/usr/bin/env bash
# Bring a Debian 12 guest up with Vagrant + vagrant-libvirt inside a network
# namespace of its own, and describe it in target.json for the tests.
#
# usage: vagrant.sh up STATE_DIR [--owner-pid PID]
#          box.sh, libvirt.sh up, vagrant box add + vagrant up (all inside the
#          netns), wait for root SSH, write STATE_DIR/target.json and print its
#          path as the last stdout line. --owner-pid: a detached watcher runs
#          `vagrant.sh down STATE_DIR` as soon as PID exits. On failure the
#          run is torn down (PREP_NODE_VM_KEEP=1 keeps it for a look).
#        vagrant.sh down STATE_DIR
#          vagrant destroy, box remove, base volume delete, libvirt.sh down,
#          stop the watcher. Idempotent; exit 0 when nothing is running.
#
# Environment: PREP_NODE_VM_ACCEL=tcg|kvm|auto (default tcg; auto = tcg: nested
# KVM hangs on our machines), PREP_NODE_VM_CACHE (see image.sh),
# PREP_NODE_VAGRANT_TIMEOUT (seconds per vagrant call, default 1800),
# PREP_NODE_VM_KEEP=1, and PREP_NODE_VM_NET/CPUS/MEMORY (see the Vagrantfile).
# Every vagrant and ssh call to the VM runs under `ip netns exec NS`: the VM's
# network (192.168.121.0/24) exists only in that namespace.
# shellcheck source-path=SCRIPTDIR
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
self=$here/$(basename "${BASH_SOURCE[0]}")
# shellcheck source=lib.sh
source "$here/lib.sh"
PN_LOG_TAG=vagrant

usage() { sed -n '4,13p' "$self" | sed 's/^# \{0,1\}//' >&2; exit 2; }

box_name=prep-node-debian12
libvirt_job=

[[ $# -ge 2 ]] || usage
cmd=$1
state=$(realpath -m -- "$2")
shift 2
owner_pid=
case $cmd in
  up)
    while [[ $# -gt 0 ]]; do
      case $1 in
        --owner-pid)
          [[ ${2:-} =~ ^[0-9]+$ ]] || usage
          owner_pid=$2
          shift 2
          ;;
        *) usage ;;
      esac
    done
    ;;
  down) [[ $# -eq 0 ]] || usage ;;
  *) usage ;;
esac
pn_need_root

# KVM only when asked for: a nested KVM guest that hangs in `vagrant up` costs
# the whole boot timeout. auto (qemu.sh's default) means tcg here.
accel=${PREP_NODE_VM_ACCEL:-tcg}
[[ $accel == auto ]] && accel=tcg
[[ $accel == tcg || $accel == kvm ]] || pn_die "PREP_NODE_VM_ACCEL must be auto, tcg or kvm, not '$accel'"

# Everything vagrant keeps lives in the state dir: nothing in ~/.vagrant.d.
export VAGRANT_HOME=$state/vagrant.d
export VAGRANT_CWD=$state/vagrant
export VAGRANT_DEFAULT_PROVIDER=libvirt
export VAGRANT_CHECKPOINT_DISABLE=1
export VAGRANT_BOX_UPDATE_CHECK_DISABLE=1
export VAGRANT_NO_COLOR=1
export PREP_NODE_BOX=$box_name
export PREP_NODE_LIBVIRT_SOCKET=$state/libvirt-sock
export PREP_NODE_VM_ACCEL=$accel
export PREP_NODE_SERIAL_LOG=$state/serial.log
export PREP_NODE_SSH_KEY=$state/id_ed25519

ns() { [[ -s $state/netns ]] && cat "$state/netns"; }
netns_up() { local n; n=$(ns) && [[ -e /run/netns/$n ]]; }
virsh_() { timeout 60 virsh -q -c "qemu:///system?socket=$PREP_NODE_LIBVIRT_SOCKET" "$@"; }
libvirt_alive() { [[ -S $PREP_NODE_LIBVIRT_SOCKET ]] && virsh_ version >/dev/null 2>&1; }

# vagrant inside the netns; its output goes to stderr and to vagrant.log so
# stdout stays free for the result line.
# Bounded by PREP_NODE_VAGRANT_TIMEOUT seconds. The domain is
# named after the netns, so a qemu in `ps` says which run it belongs to.
in_ns_vagrant() {
  local n
  n=$(ns) || pn_die "no netns recorded in $state/netns"
  PREP_NODE_VM_NAME=$n ip netns exec "$n" timeout "${PREP_NODE_VAGRANT_TIMEOUT:-1800}" \
    vagrant "$@" </dev/null 2>&1 | tee -a "$state/vagrant.log" | without_progress >&2
}

# The box upload redraws "Progress: N%" with carriage returns: keep it in the
# log, not on the terminal.
without_progress() {
  local esc=$'\e'
  tr '\r' '\n' | grep --line-buffered -v -E "Progress: [0-9]+%|^(${esc}\[K)*\$" || true
}

ssh_opts() {
  printf '%s\n' -i "$state/id_ed25519" -o IdentitiesOnly=yes -o BatchMode=yes \
    -o UserKnownHostsFile="$state/known_hosts" -o StrictHostKeyChecking=yes \
    -o ConnectTimeout=5 -o LogLevel=ERROR
}

ssh_vm() {
  local user=$1 ip=$2 n opts
  shift 2
  n=$(ns)
  mapfile -t opts < <(ssh_opts)
  ip netns exec "$n" ssh "${opts[@]}" "$user@$ip" "$@" </dev/null
}

# ---------------------------------------------------------------- watcher

start_watcher() {
  local pid=$1
  # setsid: its own session and process group, so `down` can end it (and the
  # tail it waits in) with one signal, and a caller's Ctrl-C does not reach it.
  # Its stdio is a log file: a caller reading our stdout must not wait for it.
  # shellcheck disable=SC2016
  PREP_NODE_VM_WATCHER=1 setsid bash -c '
    echo $$ >"$3/watcher.pid"
    tail --pid="$1" -f /dev/null
    echo "$(date +%H:%M:%S) owner $1 exited: down"
    rm -f "$3/watcher.pid"
    exec "$2" down "$3"
  ' watcher "$pid" "$self" "$state" </dev/null >>"$state/watcher.log" 2>&1 &
  local i
  for ((i = 0; i < 50; i++)); do
    [[ -s $state/watcher.pid ]] && break
    sleep 0.1
  done
  pn_log "watcher $(cat "$state/watcher.pid" 2>/dev/null) runs down when pid $pid exits"
}

stop_watcher() {
  local pid
  [[ -s $state/watcher.pid ]] || return 0
  pid=$(tr -dc 0-9 <"$state/watcher.pid")
  rm -f "$state/watcher.pid"
  # The watcher's own `down` must not end the watcher it runs in.
  [[ -n ${PREP_NODE_VM_WATCHER:-} ]] && return 0
  if [[ -n $pid ]] && pn_pid_cmdline_has "$pid" watcher; then
    pn_log "stopping watcher $pid"
    kill -TERM -- "-$pid" 2>/dev/null || true
    pn_kill_pid "$pid" 5 || true
  fi
}

# -------------------------------------------------------------------- down

# PID and all its descendants, except this process and what runs under it
# (the watcher that runs this `down` is itself a child of `up`), and box.sh:
# an image build is left to finish into the cache (it cleans up after itself
# and the next run reuses it).
process_tree() {
  local pid=$1 child
  [[ $pid == "$$" ]] && return 0
  pn_pid_cmdline_has "$pid" /box.sh && return 0
  printf '%s\n' "$pid"
  for child in $(pgrep -P "$pid" || true); do process_tree "$child"; done
}

# An `up` still running for this state dir (the owner died mid-up) would go on
# creating things after we removed them: end it and whatever it started
# (libvirt.sh up, box.sh, vagrant) first.
stop_running_up() {
  local pid pids p
  [[ -s $state/up.pid ]] || return 0
  pid=$(tr -dc 0-9 <"$state/up.pid")
  # The down that a failing up starts itself must not end that up.
  [[ -n $pid && $pid != "$$" && -z ${PREP_NODE_VM_FROM_UP:-} ]] || return 0
  if pn_pid_alive "$pid" && pn_pid_cmdline_has "$pid" "vagrant.sh up"; then
    mapfile -t pids < <(process_tree "$pid")
    pn_log "ending the running 'vagrant.sh up' ($pid) and its children: ${pids[*]}"
    kill -TERM "${pids[@]}" 2>/dev/null || true
    for p in "${pids[@]}"; do pn_kill_pid "$p" 5 || true; done
  fi
  rm -f "$state/up.pid"
}

do_down() {
  [[ -d $state ]] || { pn_log "nothing to do: no $state"; return 0; }
  local started=$SECONDS vol
  # Tells a failing `up` (ended by stop_running_up) not to start a second down.
  : >"$state/.down"
  stop_running_up
  if netns_up && libvirt_alive; then
    if [[ -d $VAGRANT_CWD/.vagrant ]]; then
      pn_log "vagrant destroy"
      PREP_NODE_VAGRANT_TIMEOUT=300 in_ns_vagrant destroy -f ||
        pn_log "vagrant destroy failed; libvirt.sh down removes the domain"
    fi
    if [[ -d $VAGRANT_HOME/boxes ]]; then
      pn_log "vagrant box remove"
      in_ns_vagrant box remove --force --all --provider libvirt "$box_name" >/dev/null ||
        pn_log "vagrant box remove failed; removing $VAGRANT_HOME instead"
    fi
    # `vagrant box remove` leaves the uploaded base image in the pool.
    while read -r vol _; do
      [[ $vol == "${box_name}_vagrant_box_image"* ]] || continue
      pn_log "deleting base volume $vol"
      virsh_ vol-delete --pool default "$vol" >/dev/null || pn_log "could not delete volume $vol"
    done < <(virsh_ vol-list default 2>/dev/null || true)
  fi
  "$here/libvirt.sh" down "$state"
  stop_watcher
  rm -rf "$VAGRANT_HOME" "$VAGRANT_CWD/.vagrant" "$state/libvirt/lib/images"
  rm -f "$state/target.json" "$state/id_ed25519" "$state/.down"
  pn_log "down in $((SECONDS - started)) s"
}

# ---------------------------------------------------------------------- up

# The DHCP lease libvirt handed out (fast), else what vagrant used (slower:
# another vagrant start).
vm_ip() {
  local ip
  ip=$(virsh_ domifaddr --source lease "$(ns)" 2>/dev/null |
    awk '$3 == "ipv4" { sub("/.*", "", $4); print $4; exit }' || true)
  if [[ ! $ip =~ ^[0-9]+(\.[0-9]+){3}$ ]]; then
    ip=$(in_ns_vagrant ssh-config 2>/dev/null | awk '$1 == "HostName" { print $2; exit }' || true)
  fi
  [[ $ip =~ ^[0-9]+(\.[0-9]+){3}$ ]] || return 1
  printf '%s\n' "$ip"
}

write_target() {
  local ip=$1 cache=$2 kernel=$3 fp tmp
  fp=$(ssh-keygen -lf "$cache/ssh_host_ed25519_key.pub" | awk '{ print $2 }')
  tmp=$state/.target.json.tmp
  {
    printf '{"backend":"vagrant","host":%s,"port":22,"netns":%s,' \
      "$(pn_json_str "$ip")" "$(pn_json_str "$(ns)")"
    printf '"rootUser":"root","sudoUser":"prep","sudoPasswordUser":"prep-pw",'
    printf '"identity":%s,"knownHosts":%s,"hostKeyFingerprint":%s,"accel":%s,"kernel":%s}\n' \
      "$(pn_json_str "$state/id_ed25519")" "$(pn_json_str "$state/known_hosts")" \
      "$(pn_json_str "$fp")" "$(pn_json_str "$accel")" "$(pn_json_str "$kernel")"
  } >"$tmp"
  mv -f "$tmp" "$state/target.json"
}

up_failed() {
  local rc=$?
  rm -f "$state/up.pid"
  [[ $rc -ne 0 ]] || return 0
  # A libvirt.sh up still starting would race with the down below.
  [[ -n $libvirt_job ]] && { wait "$libvirt_job" 2>/dev/null || true; }
  if [[ -e $state/.down ]]; then
    pn_log "failed (exit $rc) while a 'vagrant.sh down' runs"
  elif [[ ${PREP_NODE_VM_KEEP:-0} == 1 ]]; then
    pn_log "failed (exit $rc); PREP_NODE_VM_KEEP=1: left running, clean up with: $self down $state"
  else
    pn_log "failed (exit $rc); tearing down (PREP_NODE_VM_KEEP=1 keeps it)"
    PREP_NODE_VM_FROM_UP=1 "$self" down "$state" || true
  fi
  exit "$rc"
}

do_up() {
  local t0=$SECONDS t box cache ip kernel i pub
  if netns_up || [[ -d $VAGRANT_CWD/.vagrant || -d $VAGRANT_HOME ]]; then
    pn_log "leftovers of an earlier run in $state: down first"
    do_down
  fi
  mkdir -p "$state" "$VAGRANT_CWD"
  rm -f "$state/.down"
  echo $$ >"$state/up.pid"
  trap up_failed EXIT
  [[ -n $owner_pid ]] && start_watcher "$owner_pid"
  rm -f "$state/target.json"

  t=$SECONDS
  box=$("$here/box.sh" | tail -n 1)
  cache=$(dirname "$box")
  pn_log "box $box ($((SECONDS - t)) s)"
  for f in id_ed25519 ssh_host_ed25519_key.pub; do
    [[ -f $cache/$f ]] || pn_die "the image cache $cache has no $f"
  done
  install -m 600 "$cache/id_ed25519" "$state/id_ed25519"

  # libvirtd takes ~8 s to start (it probes qemu each time: its capability
  # cache is invalidated by "host cpuid changed" here); add the box meanwhile.
  t=$SECONDS
  "$here/libvirt.sh" up "$state" >/dev/null &
  libvirt_job=$!
  for ((i = 0; i < 100; i++)); do
    netns_up && break
    pn_pid_alive "$libvirt_job" || break
    sleep 0.1
  done
  netns_up || { wait "$libvirt_job" || true; pn_die "libvirt.sh up did not create the netns"; }
  cp "$here/Vagrantfile" "$VAGRANT_CWD/Vagrantfile"
  in_ns_vagrant box add --force --name "$box_name" --provider libvirt "$box" >/dev/null ||
    pn_die "vagrant box add failed (exit $?), see $state/vagrant.log"
  pn_log "vagrant box add ($((SECONDS - t)) s)"
  wait "$libvirt_job" || pn_die "libvirt.sh up failed"
  pn_log "libvirtd in netns $(ns) ($((SECONDS - t)) s)"

  t=$SECONDS
  pn_log "vagrant up (accel $accel, serial console: $PREP_NODE_SERIAL_LOG)"
  in_ns_vagrant up --provider libvirt ||
    pn_die "vagrant up failed (exit $?; 124: timed out after ${PREP_NODE_VAGRANT_TIMEOUT:-1800} s), see $state/vagrant.log and $state/serial.log"
  pn_log "vagrant up ($((SECONDS - t)) s)"

  ip=$(vm_ip) || pn_die "could not find the VM's IP address (vagrant ssh-config, virsh domifaddr)"
  : >"$state/known_hosts.tmp"
  for pub in "$cache"/ssh_host_*_key.pub; do
    printf '%s %s\n' "$ip" "$(cut -d' ' -f1,2 "$pub")" >>"$state/known_hosts.tmp"
  done
  mv -f "$state/known_hosts.tmp" "$state/known_hosts"

  t=$SECONDS
  for ((i = 0; ; i++)); do
    kernel=$(ssh_vm root "$ip" uname -r 2>/dev/null) && [[ -n $kernel ]] && break
    ((i < 60)) || { ssh_vm root "$ip" true || true; pn_die "root SSH to $ip does not work"; }
    sleep 2
  done
  write_target "$ip" "$cache" "$kernel"
  pn_log "VM $ip ready, kernel $kernel, root SSH after $((SECONDS - t)) s; up in $((SECONDS - t0)) s"
  trap - EXIT
  rm -f "$state/up.pid"
  printf '%s\n' "$state/target.json"
}

case $cmd in
  up) do_up ;;
  down) do_down ;;
esac
