#!/usr/bin/env bash
# Wall times of check, apply --dry-run, apply and rollback on one Debian 12 guest (qemu.sh), for one
# or more prep-node builds, RUNS rounds each (default 3), the builds interleaved round by round so a
# busy machine weighs on all of them alike; prints one Markdown row per command with each build's
# median and its runs, and the SSH session channels each run opened as the guest's sshd logs them
# (LogLevel DEBUG1 is set on the guest: `server_input_channel_open: ctype session`, read from its
# journal between runs). Every round ends with rollback, so each starts from the stock guest. The
# profile is the file PROFILE (default: this tree's profiles/k8s-worker.yaml) for every build.
#
#   test/vagrant/wall-times.sh [--runs N] [--profile FILE] LABEL=TREE [LABEL=TREE...]
#   e.g. test/vagrant/wall-times.sh before=/tmp/rt-before now=.
#
# A TREE is a built checkout (dist/src/cli.js and bpf/build). Root, like the rest of the VM tier;
# the guest is reachable on 127.0.0.1 only and is torn down on exit (also on failure or Ctrl-C).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

runs=3
profile=$repo/profiles/k8s-worker.yaml
builds=()
while (($#)); do
  case $1 in
  --runs) runs=$2 && shift 2 ;;
  --profile) profile=$(realpath "$2") && shift 2 ;;
  *=*) builds+=("$1") && shift ;;
  *) echo "wall-times: unexpected argument '$1'; usage: $0 [--runs N] [--profile FILE] LABEL=TREE..." >&2 && exit 2 ;;
  esac
done
((${#builds[@]})) || { echo "wall-times: name at least one LABEL=TREE (a built prep-node checkout)" >&2 && exit 2; }
for b in "${builds[@]}"; do
  [[ -f ${b#*=}/dist/src/cli.js ]] || { echo "wall-times: ${b#*=}/dist/src/cli.js is missing: build that tree first (npx tsc, make -C bpf)" >&2 && exit 2; }
done

state=$(mktemp -d /tmp/prep-node-walltimes-XXXXXX)
cleanup() {
  "$here/qemu.sh" down "$state" >/dev/null 2>&1 || true
  rm -rf "$state"
}
trap cleanup EXIT INT TERM
"$here/qemu.sh" up "$state" --owner-pid $$ >&2
target_json=$(cat "$state/target.json")
field() { node -e 'const t = JSON.parse(process.argv[1]); console.log(t[process.argv[2]])' "$target_json" "$1"; }
port=$(field port)
user=$(field sudoUser)
cat >"$state/ssh_config" <<EOF
Host *
  IdentityFile $(field identity)
  IdentitiesOnly yes
  IdentityAgent none
  UserKnownHostsFile $(field knownHosts)
  GlobalKnownHostsFile /dev/null
EOF
spec=$user@127.0.0.1:$port
root_ssh() { ssh -F "$state/ssh_config" -o BatchMode=yes -o StrictHostKeyChecking=yes -p "$port" root@127.0.0.1 "$@"; }
root_ssh "sed -i '/^LogLevel/d' /etc/ssh/sshd_config && echo 'LogLevel DEBUG1' >>/etc/ssh/sshd_config && systemctl reload ssh.service"
# The session channels logged since the last call, less this call's own one (logged before its
# command runs; the second's pause lets journald take in what came before).
channels() {
  local n
  n=$(root_ssh "sleep 1; journalctl -q -u ssh.service --cursor-file /root/wall-times.cursor -o cat | grep -c 'ctype session'") || true
  [[ $n =~ ^[0-9]+$ && $n -ge 1 ]] || { echo "wall-times: could not count the guest's session channels (got '$n')" >&2 && exit 1; }
  echo $((n - 1))
}
# the reload restarts sshd's listener: a connection right after it may be reset
for ((i = 0; i < 30; i++)); do root_ssh true 2>/dev/null && break; sleep 1; done
channels >/dev/null
echo "wall-times: guest $(field kernel) under $(field accel), $spec, profile $profile, $runs rounds; load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2

commands=(check dry-run apply rollback)
declare -A times chans
# One command of one build, timed; its exit code must be the expected one or the round is void.
timed() {
  local label=$1 tree=$2 cmd=$3 args=() ok=(0) t0 t1 rc n
  case $cmd in
  check) args=(check --steal-seconds 1 --profile "$profile") && ok=(0 1) ;;
  dry-run) args=(apply --profile "$profile" --dry-run) ;;
  apply) args=(apply --profile "$profile") ;;
  rollback) args=(rollback) ;;
  esac
  t0=$(date +%s%N)
  rc=0
  NO_COLOR=1 node "$tree/dist/src/cli.js" "${args[0]}" -F "$state/ssh_config" "${args[@]:1}" "$spec" >"$state/out" 2>&1 || rc=$?
  t1=$(date +%s%N)
  if [[ " ${ok[*]} " != *" $rc "* ]]; then
    echo "wall-times: $label $cmd exited $rc:" >&2
    cat "$state/out" >&2
    exit 1
  fi
  n=$(channels)
  times[$label.$cmd]+="$(((t1 - t0) / 1000000)) "
  chans[$label.$cmd]+="$n "
  echo "wall-times: round $r $label $cmd: $(((t1 - t0) / 1000000)) ms, $n session channels (exit $rc)" >&2
}

for ((r = 1; r <= runs; r++)); do
  for b in "${builds[@]}"; do
    for c in "${commands[@]}"; do timed "${b%%=*}" "$(realpath "${b#*=}")" "$c"; done
  done
done

median() { tr ' ' '\n' | grep . | sort -n | awk '{ v[NR] = $1 } END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.1f", m / 1000 }'; }
secs() { tr ' ' '\n' | grep . | awk '{ printf "%s%.1f", (NR > 1 ? ", " : ""), $1 / 1000 }'; }
echo "wall-times: load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
header="| command |"
rule="|---|"
for b in "${builds[@]}"; do
  header+=" ${b%%=*}: median (runs), s | ${b%%=*}: session channels |"
  rule+="---|---|"
done
echo "$header"
echo "$rule"
for c in "${commands[@]}"; do
  row="| \`${c/dry-run/apply --dry-run}\` |"
  for b in "${builds[@]}"; do
    row+=" $(median <<<"${times[${b%%=*}.$c]}") ($(secs <<<"${times[${b%%=*}.$c]}")) | $(tr ' ' '\n' <<<"${chans[${b%%=*}.$c]}" | grep . | sort -un | paste -sd/) |"
  done
  echo "$row"
done
