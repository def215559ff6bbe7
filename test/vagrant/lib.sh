# shellcheck shell=bash
# Shared helpers for the VM test harness (sourced by image.sh, qemu.sh, ...).
# Nothing here runs on its own; it only defines functions and variables.
# Changing this file changes the image cache key (see image.sh).

# Where images and machine-local probe results are kept.
# shellcheck disable=SC2034 # used by the scripts that source this file
PN_CACHE_ROOT="${PREP_NODE_VM_CACHE:-/var/cache/prep-node/vm}"
# Tag printed in front of every log line; scripts override it.
PN_LOG_TAG="${PN_LOG_TAG:-vm}"

# pn_log MSG...: timestamped progress line on stderr (silent if PN_QUIET=1,
# which cleanup handlers set so that the error line stays the last line).
pn_log() {
  [ "${PN_QUIET:-0}" = 1 ] && return 0
  printf '%s [%s] %s\n' "$(date '+%H:%M:%S')" "$PN_LOG_TAG" "$*" >&2
}

# pn_die MSG...: one-line error on stderr, exit 1 (EXIT traps still run).
pn_die() {
  printf '%s [%s] error: %s\n' "$(date '+%H:%M:%S')" "$PN_LOG_TAG" "$*" >&2
  exit 1
}

# pn_need_cmd CMD...: fail early with a hint if a host tool is missing.
pn_need_cmd() {
  local c
  for c in "$@"; do
    command -v "$c" >/dev/null 2>&1 ||
      pn_die "required command '$c' not found (apt-get install -y --no-install-recommends <package providing $c>)"
  done
}

# pn_need_root: the image build and the loop devices need root.
pn_need_root() {
  [ "$(id -u)" = 0 ] || pn_die "must run as root"
}

# pn_abspath PATH: absolute path without requiring it to exist.
pn_abspath() {
  case "$1" in
    /*) printf '%s\n' "$1" ;;
    *) printf '%s/%s\n' "$(pwd -P)" "$1" ;;
  esac
}

# pn_sha16 FILE...: first 16 hex chars of sha256 over the concatenated files.
pn_sha16() {
  cat "$@" | sha256sum | cut -c1-16
}

# pn_pid_alive PID: true if PID exists and is not a zombie.
pn_pid_alive() {
  local pid="$1" state
  [ -n "$pid" ] && [ "$pid" -gt 0 ] 2>/dev/null || return 1
  # Field 3 of /proc/PID/stat is the state; the command name (field 2) may
  # contain spaces, so cut at the last ')'.
  state="$(cat "/proc/$pid/stat" 2>/dev/null)" || return 1
  state="${state##*) }"
  state="${state%% *}"
  [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

# pn_pid_starttime PID: process start time (clock ticks since boot), to detect
# PID reuse. Empty if the process does not exist.
pn_pid_starttime() {
  local st
  st="$(cat "/proc/$1/stat" 2>/dev/null)" || return 0
  st="${st##*) }"
  printf '%s\n' "$st" | cut -d' ' -f20
}

# pn_pid_cmdline_has PID STRING: true if the NUL-separated cmdline of PID
# contains STRING (used to make sure a pidfile still names our process).
pn_pid_cmdline_has() {
  local pid="$1" needle="$2"
  [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$needle"
}

# pn_kill_pid PID [GRACE_SECONDS]: TERM, wait, then KILL. Returns 0 when gone.
pn_kill_pid() {
  local pid="$1" grace="${2:-5}" i
  pn_pid_alive "$pid" || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < grace * 10; i++)); do
    pn_pid_alive "$pid" || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    pn_pid_alive "$pid" || return 0
    sleep 0.1
  done
  return 1
}

# pn_port_in_use PORT: true if something listens on 127.0.0.1:PORT (or any addr).
pn_port_in_use() {
  local port="$1"
  if command -v ss >/dev/null 2>&1; then
    ss -Hltn "( sport = :$port )" 2>/dev/null | grep -q .
  else
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null
  fi
}

# pn_pick_port: print a TCP port that is currently free on 127.0.0.1.
# Racy by nature: the caller must retry if binding fails later.
pn_pick_port() {
  local port i
  for ((i = 0; i < 200; i++)); do
    port=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
    if ! pn_port_in_use "$port"; then
      printf '%s\n' "$port"
      return 0
    fi
  done
  return 1
}

# pn_json_str STRING: STRING as a JSON string literal (with quotes).
pn_json_str() {
  local s="$1"
  s="${s//\\/\\\\}"
  s="${s//\"/\\\"}"
  s="${s//$'\n'/\\n}"
  s="${s//$'\t'/\\t}"
  s="${s//$'\r'/\\r}"
  printf '"%s"' "$s"
}
