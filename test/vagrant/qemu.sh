#!/usr/bin/env bash
# Plain-QEMU backend for the prep-node VM tests.
#
# Usage:
#   test/vagrant/qemu.sh up STATE_DIR [--owner-pid PID] [--image VARIANT] [--seed ISO]
#       Build/reuse the image (image.sh), boot an overlay of it, wait until
#       root SSH works, write STATE_DIR/known_hosts and STATE_DIR/target.json.
#       The last stdout line is the absolute path of target.json.
#       --owner-pid PID: a detached watcher runs "qemu.sh down STATE_DIR" when
#       PID exits.
#       --image VARIANT: boot the image of image-VARIANT.sh instead (e.g.
#       cloudinit: the same guest with cloud-init installed).
#       --seed ISO: attach ISO read-only as a second virtio disk (a cloud-init
#       NoCloud seed: volume label cidata, user-data and meta-data).
#   test/vagrant/qemu.sh down STATE_DIR
#       Idempotent teardown: stop the watcher, kill qemu (TERM, then KILL),
#       remove the overlay and target.json. Keeps console.log and qemu.log.
#   test/vagrant/qemu.sh status STATE_DIR    exit 0 if the VM is running
#   test/vagrant/qemu.sh ssh STATE_DIR [USER [COMMAND...]]   (USER: root)
#
# Environment:
#   PREP_NODE_VM_CACHE         image cache root (see image.sh)
#   PREP_NODE_VM_ACCEL         auto (default) | kvm | tcg
#   PREP_NODE_VM_KVM_PROBE     seconds a KVM boot gets to print kernel output (20)
#   PREP_NODE_VM_BOOT          disk (default: BIOS -> MBR -> extlinux on
#                              disk.qcow2, as under Vagrant) | kernel
#                              (-kernel/-initrd/-append with the cached copies)
#   PREP_NODE_VM_BOOT_TIMEOUT  seconds to wait for SSH (300)
#   PREP_NODE_VM_GUEST_NET     restricted (default: the guest reaches nothing
#                              but its forwarded SSH port) | nat (slirp NAT to
#                              the outside world)
#   PREP_NODE_VM_SMP, PREP_NODE_VM_MEM   (2, 1536)
set -euo pipefail

PN_LOG_TAG=qemu
SELF="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)/$(basename "${BASH_SOURCE[0]}")"
SELF_DIR="$(dirname "$SELF")"
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$SELF_DIR/lib.sh"

ACCEL_MODE="${PREP_NODE_VM_ACCEL:-auto}"
KVM_PROBE_SECS="${PREP_NODE_VM_KVM_PROBE:-20}"
BOOT_MODE="${PREP_NODE_VM_BOOT:-disk}"
BOOT_TIMEOUT="${PREP_NODE_VM_BOOT_TIMEOUT:-300}"
GUEST_NET="${PREP_NODE_VM_GUEST_NET:-restricted}"
VM_SMP="${PREP_NODE_VM_SMP:-2}"
VM_MEM="${PREP_NODE_VM_MEM:-1536}"

usage() {
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$SELF" >&2
  exit 2
}

# ---------------------------------------------------------------------------
# teardown

# qemu_pids STATE: pids of qemu processes using STATE's overlay (pidfile first,
# then a scan of /proc in case the pidfile was lost).
qemu_pids() {
  local st="$1" pid p
  pid="$(cat "$st/qemu.pid" 2>/dev/null || true)"
  if [ -n "$pid" ] && pn_pid_alive "$pid" && pn_pid_cmdline_has "$pid" "$st/disk.qcow2"; then
    echo "$pid"
  fi
  # (grep also matches its own cmdline; it has exited by the time we check)
  grep -laF -- "file=$st/disk.qcow2," /proc/[0-9]*/cmdline 2>/dev/null | cut -d/ -f3 |
    while read -r p; do
      [ "$p" != "$pid" ] || continue
      pn_pid_alive "$p" && pn_pid_cmdline_has "$p" "file=$st/disk.qcow2," && echo "$p"
    done || true
  return 0
}

do_down() {
  local st="$1" pid
  [ -d "$st" ] || return 0
  # The watcher (unless we are the watcher).
  pid="$(cat "$st/watcher.pid" 2>/dev/null || true)"
  if [ -n "$pid" ] && [ "$pid" != "$$" ] && [ "${PN_IS_WATCHER:-0}" != 1 ] &&
    pn_pid_alive "$pid" && pn_pid_cmdline_has "$pid" "__watch"; then
    pn_log "stopping watcher $pid"
    pn_kill_pid "$pid" 2 || true
  fi
  rm -f "$st/watcher.pid"
  for pid in $(qemu_pids "$st"); do
    pn_log "stopping qemu $pid"
    pn_kill_pid "$pid" 5 || pn_log "warning: qemu $pid did not exit"
  done
  rm -f "$st/qemu.pid" "$st/disk.qcow2" "$st/target.json" "$st/target.json.tmp"
  return 0
}

# ---------------------------------------------------------------------------
# owner watcher (runs detached, in its own session)

do_watch() {
  local st="$1" owner="$2" owner_start="$3" now
  export PN_IS_WATCHER=1
  echo "$$" >"$st/watcher.pid"
  pn_log "watcher $$: waiting for owner $owner to exit"
  while :; do
    now="$(pn_pid_starttime "$owner" || true)"
    if ! pn_pid_alive "$owner" || [ "$now" != "$owner_start" ]; then
      break
    fi
    sleep 1
  done
  pn_log "watcher $$: owner $owner is gone; tearing down $st"
  # Only tear down if the watcher is still the registered one (a later "up"
  # in the same STATE_DIR starts its own watcher).
  if [ "$(cat "$st/watcher.pid" 2>/dev/null || true)" = "$$" ]; then
    do_down "$st"
  fi
  pn_log "watcher $$: done"
}

start_watcher() {
  local st="$1" owner="$2" start
  start="$(pn_pid_starttime "$owner")"
  [ -n "$start" ] || pn_die "--owner-pid $owner: no such process"
  setsid "$SELF" __watch "$st" "$owner" "$start" </dev/null >>"$st/watcher.log" 2>&1 &
  echo "$!" >"$st/watcher.pid"
  pn_log "watcher $! will tear the VM down when pid $owner exits"
}

# ---------------------------------------------------------------------------
# KVM detection

# machine_id: identifies this host for remembering a failed KVM probe.
machine_id() {
  {
    uname -r
    grep -m1 '^model name' /proc/cpuinfo || true
    grep -m1 '^flags' /proc/cpuinfo || true
    qemu-system-x86_64 --version | head -n1
  } | sha256sum | cut -c1-16
}

kvm_usable() {
  [ -c /dev/kvm ] || return 1
  (exec 3<>/dev/kvm) 2>/dev/null
}

# ---------------------------------------------------------------------------
# boot

# launch ACCEL PORT: start qemu daemonized. Returns 0 on success, 2 if the
# port could not be bound, 1 on other errors (see qemu.log).
launch() {
  local accel="$1" port="$2" netopts accelopt
  local -a args
  case "$accel" in
    kvm) accelopt=kvm ;;
    tcg) accelopt=tcg,thread=multi ;;
    *) pn_die "bad accel $accel" ;;
  esac
  netopts="user,id=net0,hostfwd=tcp:127.0.0.1:$port-:22"
  [ "$GUEST_NET" = nat ] || netopts="$netopts,restrict=on"
  args=(
    -name "prepnode-vm-$port"
    -nodefaults -machine pc -accel "$accelopt"
    -smp "$VM_SMP" -m "$VM_MEM"
    -drive "file=$STATE/disk.qcow2,if=virtio,format=qcow2,cache=unsafe,discard=unmap"
    -netdev "$netopts" -device "virtio-net-pci,netdev=net0"
    -device virtio-rng-pci
    -display none -monitor none
    -serial "file:$STATE/console.log"
    -daemonize -pidfile "$STATE/qemu.pid"
  )
  if [ -n "$SEED" ]; then
    args+=(-drive "file=$SEED,if=virtio,format=raw,readonly=on")
  fi
  if [ "$BOOT_MODE" = kernel ]; then
    args+=(-kernel "$IMG/vmlinuz" -initrd "$IMG/initrd.img" -append "$(cat "$IMG/cmdline")")
  fi
  : >"$STATE/console.log"
  rm -f "$STATE/qemu.pid"
  printf '%s\n' "$(date '+%F %T') qemu-system-x86_64 ${args[*]}" >>"$STATE/qemu.log"
  if qemu-system-x86_64 "${args[@]}" </dev/null >>"$STATE/qemu.log" 2>&1; then
    return 0
  fi
  if tail -n 5 "$STATE/qemu.log" | grep -qi 'host forwarding'; then
    return 2
  fi
  return 1
}

# boot ACCEL: launch with a free port (retrying on port races); sets PORT.
boot() {
  # when this boot started: "SSH up after" counts from here, not from the image build or the KVM probe
  t_boot=$(date +%s)
  local accel="$1" try rc
  for try in 1 2 3 4 5 6 7 8; do
    PORT="$(pn_pick_port)" || pn_die "no free TCP port found on 127.0.0.1"
    rc=0
    launch "$accel" "$PORT" || rc=$?
    case "$rc" in
      0)
        pn_log "qemu started (pid $(cat "$STATE/qemu.pid" 2>/dev/null), accel $accel, ssh port 127.0.0.1:$PORT, boot $BOOT_MODE)"
        return 0
        ;;
      2) pn_log "port $PORT taken, retrying (attempt $try)" ;;
      *)
        tail -n 5 "$STATE/qemu.log" >&2
        pn_die "qemu failed to start (accel $accel), see $STATE/qemu.log"
        ;;
    esac
  done
  pn_die "could not bind a free port for SSH forwarding"
}

qemu_running() {
  local pid
  pid="$(cat "$STATE/qemu.pid" 2>/dev/null || true)"
  [ -n "$pid" ] && pn_pid_alive "$pid"
}

ssh_base() {
  SSH=(ssh -F /dev/null -i "$STATE/id_ed25519"
    -o UserKnownHostsFile="$STATE/known_hosts" -o GlobalKnownHostsFile=/dev/null
    -o StrictHostKeyChecking=yes -o BatchMode=yes -o ConnectTimeout=10
    -o LogLevel=ERROR -p "$PORT")
}

write_known_hosts() {
  local f
  : >"$STATE/known_hosts.tmp"
  for f in "$IMG"/ssh_host_*_key.pub; do
    printf '[127.0.0.1]:%s %s\n' "$PORT" "$(cut -d' ' -f1,2 "$f")" >>"$STATE/known_hosts.tmp"
  done
  mv -f "$STATE/known_hosts.tmp" "$STATE/known_hosts"
}

console_tail() {
  pn_log "last 30 lines of $STATE/console.log:"
  tail -n 30 "$STATE/console.log" 2>/dev/null | sed 's/\r$//' >&2 || true
}

UP_OK=0
IMAGE_PID=""
SEED=""
up_cleanup() {
  local rc=$?
  set +e
  if [ -n "$IMAGE_PID" ] && pn_pid_alive "$IMAGE_PID"; then
    kill -TERM "$IMAGE_PID" 2>/dev/null
    wait "$IMAGE_PID" 2>/dev/null
  fi
  if [ "$UP_OK" != 1 ] && [ -n "${STATE:-}" ]; then
    PN_QUIET=1 # keep the error line last
    do_down "$STATE"
  fi
  exit "$rc"
}

do_up() {
  local owner="" t0 t_image accel probe_file deadline out kernel fp image_script="$SELF_DIR/image.sh"
  STATE="$(pn_abspath "$1")"
  shift
  while [ $# -gt 0 ]; do
    case "$1" in
      --owner-pid)
        [ $# -ge 2 ] || usage
        owner="$2"
        shift 2
        ;;
      --owner-pid=*)
        owner="${1#*=}"
        shift
        ;;
      --image)
        [ $# -ge 2 ] || usage
        [[ "$2" =~ ^[a-z0-9-]+$ ]] || pn_die "--image $2: expected a variant name such as cloudinit"
        image_script="$SELF_DIR/image-$2.sh"
        [ -f "$image_script" ] || pn_die "--image $2: no $image_script"
        shift 2
        ;;
      --seed)
        [ $# -ge 2 ] || usage
        [ -f "$2" ] || pn_die "--seed $2: no such file"
        SEED="$(pn_abspath "$2")"
        shift 2
        ;;
      *) usage ;;
    esac
  done
  if [ -n "$owner" ]; then
    if ! [[ "$owner" =~ ^[0-9]+$ ]] || ! pn_pid_alive "$owner"; then
      pn_die "--owner-pid $owner: no such process"
    fi
  fi
  case "$BOOT_MODE" in kernel | disk) ;; *) pn_die "PREP_NODE_VM_BOOT must be kernel or disk" ;; esac
  case "$ACCEL_MODE" in auto | kvm | tcg) ;; *) pn_die "PREP_NODE_VM_ACCEL must be auto, kvm or tcg" ;; esac
  pn_need_cmd qemu-system-x86_64 qemu-img ssh ssh-keygen setsid
  t0=$(date +%s)

  if [ -d "$STATE" ] && [ -n "$(qemu_pids "$STATE")" ]; then
    pn_log "a VM is already running in $STATE; tearing it down first"
    do_down "$STATE"
  fi

  mkdir -p "$STATE"
  trap up_cleanup EXIT
  trap 'pn_die "interrupted (SIGINT)"' INT
  trap 'pn_die "interrupted (SIGTERM)"' TERM
  trap 'pn_die "interrupted (SIGHUP)"' HUP

  # image.sh in the background, so that a signal to us is handled at once
  # (up_cleanup stops it; it cleans up after itself).
  "$image_script" >"$STATE/image.out" &
  IMAGE_PID=$!
  wait "$IMAGE_PID" || pn_die "image build failed"
  IMAGE_PID=""
  t_image=$(($(date +%s) - t0))
  IMG="$(tail -n1 "$STATE/image.out")"
  rm -f "$STATE/image.out"
  if [ -z "$IMG" ] || [ ! -f "$IMG/ok" ]; then
    pn_die "image.sh returned an incomplete cache: $IMG"
  fi
  install -m 600 "$IMG/id_ed25519" "$STATE/id_ed25519"
  install -m 644 "$IMG/id_ed25519.pub" "$STATE/id_ed25519.pub"
  rm -f "$STATE/disk.qcow2" "$STATE/target.json"
  : >"$STATE/qemu.log"
  qemu-img create -q -f qcow2 -b "$IMG/disk.qcow2" -F qcow2 "$STATE/disk.qcow2" >>"$STATE/qemu.log" 2>&1 ||
    pn_die "qemu-img create (overlay) failed"

  # Accelerator: KVM only if it really boots here.
  accel=tcg
  mkdir -p "$PN_CACHE_ROOT/kvm-probe" 2>/dev/null || true
  probe_file="$PN_CACHE_ROOT/kvm-probe/$(machine_id).failed"
  case "$ACCEL_MODE" in
    tcg) ;;
    kvm) accel=kvm ;;
    auto)
      if ! kvm_usable; then
        pn_log "/dev/kvm not usable; using TCG"
      elif [ -f "$probe_file" ]; then
        pn_log "KVM failed on this machine before ($probe_file); using TCG"
      else
        accel=kvm
      fi
      ;;
  esac

  if [ "$accel" = kvm ]; then
    boot kvm
    if [ "$ACCEL_MODE" = auto ]; then
      pn_log "probing KVM: waiting up to ${KVM_PROBE_SECS}s for kernel output"
      deadline=$(($(date +%s) + KVM_PROBE_SECS))
      while [ "$(date +%s)" -lt "$deadline" ] && qemu_running &&
        ! grep -q 'Linux version' "$STATE/console.log" 2>/dev/null; do
        sleep 0.5
      done
      if ! grep -q 'Linux version' "$STATE/console.log" 2>/dev/null; then
        pn_log "KVM boot printed no kernel output in ${KVM_PROBE_SECS}s; falling back to TCG (remembered in $probe_file)"
        printf 'KVM probe failed %s on %s (%s)\n' "$(date -u '+%FT%TZ')" "$(uname -n)" "$(uname -r)" >"$probe_file" 2>/dev/null || true
        for pid in $(qemu_pids "$STATE"); do pn_kill_pid "$pid" 3 || true; done
        rm -f "$STATE/disk.qcow2"
        qemu-img create -q -f qcow2 -b "$IMG/disk.qcow2" -F qcow2 "$STATE/disk.qcow2" >>"$STATE/qemu.log" 2>&1 ||
          pn_die "qemu-img create (overlay) failed"
        accel=tcg
        boot tcg
      else
        pn_log "KVM works"
      fi
    fi
  else
    boot tcg
  fi

  if [ -n "$owner" ]; then
    start_watcher "$STATE" "$owner"
  fi

  write_known_hosts
  ssh_base
  pn_log "waiting for SSH on 127.0.0.1:$PORT (timeout ${BOOT_TIMEOUT}s)"
  deadline=$(($(date +%s) + BOOT_TIMEOUT))
  kernel=""
  while :; do
    if out="$("${SSH[@]}" root@127.0.0.1 'uname -r' 2>/dev/null </dev/null)" && [ -n "$out" ]; then
      kernel="$out"
      break
    fi
    if ! qemu_running; then
      console_tail
      tail -n 5 "$STATE/qemu.log" >&2 || true
      pn_die "qemu exited before SSH came up"
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
      console_tail
      pn_die "SSH did not come up within ${BOOT_TIMEOUT}s (accel $accel)"
    fi
    sleep 1
  done
  # three figures apart: the image (built or cached), the accelerator probe (a KVM boot that printed
  # nothing, when it is tried), and the boot that came up, to SSH answering
  pn_log "SSH up after $(($(date +%s) - t_boot)) s of boot (accel $accel); before it: image $t_image s, accelerator probe $((t_boot - t0 - t_image)) s; $(($(date +%s) - t0)) s in all; guest kernel $kernel"

  fp="$(ssh-keygen -lf "$IMG/ssh_host_ed25519_key.pub" | cut -d' ' -f2)"
  {
    printf '{"backend":"qemu","host":"127.0.0.1","port":%s,"netns":null,' "$PORT"
    printf '"rootUser":"root","sudoUser":"prep","sudoPasswordUser":"prep-pw",'
    printf '"identity":%s,"knownHosts":%s,' "$(pn_json_str "$STATE/id_ed25519")" "$(pn_json_str "$STATE/known_hosts")"
    printf '"hostKeyFingerprint":%s,"accel":%s,"kernel":%s}\n' "$(pn_json_str "$fp")" "$(pn_json_str "$accel")" "$(pn_json_str "$kernel")"
  } >"$STATE/target.json.tmp"
  mv -f "$STATE/target.json.tmp" "$STATE/target.json"
  UP_OK=1
  printf '%s\n' "$STATE/target.json"
}

# ---------------------------------------------------------------------------

cmd="${1:-}"
[ $# -ge 2 ] || usage
shift
case "$cmd" in
  up)
    do_up "$@"
    ;;
  down)
    [ $# -eq 1 ] || usage
    STATE="$(pn_abspath "$1")"
    t0=$(date +%s)
    do_down "$STATE"
    pn_log "down done ($(($(date +%s) - t0)) s)"
    ;;
  status)
    STATE="$(pn_abspath "$1")"
    [ -n "$(qemu_pids "$STATE")" ]
    ;;
  ssh)
    STATE="$(pn_abspath "$1")"
    shift
    user="${1:-root}"
    [ $# -eq 0 ] || shift
    [ -f "$STATE/target.json" ] || pn_die "no $STATE/target.json (is the VM up?)"
    PORT="$(sed -n 's/.*"port":\([0-9]*\).*/\1/p' "$STATE/target.json")"
    ssh_base
    exec "${SSH[@]}" "$user@127.0.0.1" "$@"
    ;;
  __watch)
    [ $# -eq 3 ] || usage
    do_watch "$@"
    ;;
  *) usage ;;
esac
