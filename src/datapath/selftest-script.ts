// The selftest's node-side shell script, generated here and run as root over the Host: a throwaway
// topology in network namespaces, the loader installed on it, traffic through it, and cleanup in an
// EXIT trap that also runs when the script is interrupted. Every step prints a block the TypeScript
// side judges (selftest.ts):
//     ::step <name> <exit code> <milliseconds>
//     <stdout lines>
//     ::stderr            (only when the step wrote to stderr)
//     <stderr lines>
//     ::end
//
// Topology: a switch namespace holding a bridge, and one namespace per host, each joined to the
// bridge by a veth pair; the tc program is attached to the switch ports, so every packet between the
// hosts passes it. Nothing is added to the node's own network namespace. The socket programs are
// attached to the cgroup root, and the client runs in its namespace but in the root cgroup tree
// (ip netns exec does not change cgroups), so its connect() to a VIP is translated.
//
//     pnst-c  [eth0 198.18.0.1]  ── sw-c ──┐
//     pnst-b1 [eth0 198.18.0.11] ── sw-b1 ─┤ br0 (pnst-sw)
//     pnst-b2 [eth0 198.18.0.12] ── sw-b2 ─┘
//
// Addresses come from 198.18.0.0/15 (RFC 2544, set aside for benchmarking): while the selftest runs
// its VIPs are translated for every process on the node, so they must be addresses nothing real uses.
import { opLines, type MapOp } from './writer.js';
import { shQuote } from '../host/host.js';

export const SELFTEST_PREFIX = 'pnst';

export interface SelftestHost {
  /** short name: namespace pnst-<name>, switch port sw-<name> */
  name: string;
  ip: string;
  /** ports `prep-node-dp serve` listens on in this namespace (backends) */
  serve: number[];
}

/** A step of the script: a name and shell commands (run in a function; their exit code judges). */
export interface ScriptStep {
  name: string;
  commands: string;
  /** a failure here makes the rest pointless: skip to cleanup */
  critical?: boolean;
}

export interface ScriptInput {
  /** the loader on the node */
  bin: string;
  hosts: SelftestHost[];
  /** prefix length of the hosts' subnet */
  prefixLen: number;
  steps: ScriptStep[];
}

export function nsName(host: string): string {
  return `${SELFTEST_PREFIX}-${host}`;
}

/** The whole script (POSIX sh plus GNU date's %N). */
export function selftestScript(input: ScriptInput): string {
  const q = shQuote;
  const sw = nsName('sw');
  const namespaces = [sw, ...input.hosts.map((h) => nsName(h.name))];
  const setup = [
    `ip netns add ${sw}`,
    `ip -n ${sw} link set lo up`,
    `ip -n ${sw} link add br0 type bridge`,
    `ip -n ${sw} link set br0 up`,
    ...input.hosts.flatMap((h) => {
      const ns = nsName(h.name);
      return [
        `ip netns add ${ns}`,
        `ip -n ${ns} link set lo up`,
        // create the pair inside the switch namespace, then move one end: the node's own namespace never sees it
        `ip -n ${sw} link add sw-${h.name} type veth peer name eth0 netns ${ns}`,
        `ip -n ${sw} link set sw-${h.name} master br0 up`,
        `ip -n ${ns} addr add ${h.ip}/${input.prefixLen} dev eth0`,
        `ip -n ${ns} link set eth0 up`,
      ];
    }),
    `ip -n ${sw} -br link`,
  ];
  const servers = input.hosts.flatMap((h) =>
    h.serve.map((port) => `start_server ${q(nsName(h.name))} ${port} ${q(h.name)}`),
  );
  const steps = input.steps.map((s) => {
    const fn = `step_${s.name.replace(/[^A-Za-z0-9]/g, '_')}`;
    // not indented: a heredoc's end marker must start its line
    return `${fn}() {\n${s.commands}\n}\nrun_step ${q(s.name)} ${fn}${s.critical ? ' || exit 1' : ''}`;
  });
  return `#!/bin/sh
# prep-node datapath selftest (generated; runs as root; removes everything it made on exit)
set -u
DP=${q(input.bin)}
T=$(mktemp -d /tmp/prep-node-selftest.XXXXXX) || exit 1
PIDS=""
INSTALLED=0

run_step() {
  name=$1; shift
  t0=$(date +%s%N)
  "$@" </dev/null >"$T/out" 2>"$T/err" # stdin is this script: no step may read it
  rc=$?
  t1=$(date +%s%N)
  printf '::step %s %s %s\\n' "$name" "$rc" $(( (t1 - t0) / 1000000 ))
  cat "$T/out"
  if [ -s "$T/err" ]; then printf '\\n::stderr\\n'; cat "$T/err"; fi
  printf '\\n::end\\n'
  return $rc
}

in_switch() { # run a command in the switch namespace without ip-netns-exec's private /sys (bpffs and cgroup stay visible)
  nsenter --net=/run/netns/${sw} "$@"
}

start_server() { # namespace port name
  ip netns exec "$1" "$DP" serve --port "$2" --name "$3" >"$T/serve-$3-$2.log" 2>&1 &
  PIDS="$PIDS $!"
}

# wait until something listens on port $2 in namespace $1 (at most 5 s)
wait_listen() {
  i=0
  while [ $i -lt 50 ]; do
    ip netns exec "$1" ss -Htln "sport = :$2" 2>/dev/null | grep -q . && return 0
    sleep 0.1; i=$((i + 1))
  done
  echo "nothing listens on port $2 in $1" >&2
  return 1
}

remove_topology() {
  for ns in ${namespaces.join(' ')}; do ip netns del "$ns" 2>/dev/null; done
  return 0
}

cleanup() {
  crc=0
  for p in $PIDS; do kill "$p" 2>/dev/null; done
  for p in $PIDS; do wait "$p" 2>/dev/null; done
  if [ "$INSTALLED" = 1 ]; then
    if in_switch "$DP" remove >"$T/remove.json" 2>&1; then INSTALLED=0; cat "$T/remove.json"; else cat "$T/remove.json" >&2; crc=1; fi
  fi
  remove_topology
  return $crc
}

verify_clean() {
  left=""
  for ns in ${namespaces.join(' ')}; do [ -e "/run/netns/$ns" ] && left="$left netns:$ns"; done
  for p in $PIDS; do kill -0 "$p" 2>/dev/null && left="$left process:$p"; done
  "$DP" status >"$T/status.json" 2>/dev/null
  grep -q '"installed": *true' "$T/status.json" && left="$left datapath-installed"
  if [ -n "$left" ]; then echo "left behind:$left"; return 1; fi
  echo '{"left":[]}'
}

finish() {
  frc=$?
  trap - EXIT
  run_step cleanup cleanup
  run_step nothing-left verify_clean
  rm -rf "$T"
  exit $frc
}
trap finish EXIT
trap 'exit 130' INT TERM HUP

# a previous run that was killed before its trap ran may have left its namespaces
remove_topology

step_topology() {
${indent(setup.join(' &&\n'))}
}
run_step topology step_topology || exit 1

step_servers() {
${indent([...servers, ...input.hosts.flatMap((h) => h.serve.map((p) => `wait_listen ${q(nsName(h.name))} ${p}`))].join('\n') || 'true')}
}
run_step servers step_servers || exit 1

${steps.join('\n\n')}
exit 0
`;
}

function indent(s: string): string {
  return s
    .split('\n')
    .map((l) => (l === '' ? l : `  ${l}`))
    .join('\n');
}

/** Commands that feed lines to `prep-node-dp apply` (a quoted heredoc: nothing in it is expanded). */
export function applyCommands(ops: readonly MapOp[]): string {
  return `"$DP" apply <<'PNST_APPLY'\n${opLines(ops).join('\n')}\nPNST_APPLY`;
}

/** One parsed step block. */
export interface StepBlock {
  name: string;
  rc: number;
  ms: number;
  stdout: string;
  stderr: string;
}

/** The step blocks in the script's output (anything between blocks is ignored). */
export function parseBlocks(output: string): StepBlock[] {
  const blocks: StepBlock[] = [];
  let cur: (StepBlock & { inErr: boolean; lines: string[]; errLines: string[] }) | null = null;
  for (const line of output.split('\n')) {
    const head = /^::step (\S+) (\d+) (-?\d+)$/.exec(line);
    if (head) {
      cur = { name: head[1]!, rc: Number(head[2]), ms: Number(head[3]), stdout: '', stderr: '', inErr: false, lines: [], errLines: [] };
    } else if (cur && line === '::stderr') {
      cur.inErr = true;
    } else if (cur && line === '::end') {
      blocks.push({ name: cur.name, rc: cur.rc, ms: cur.ms, stdout: cur.lines.join('\n').trim(), stderr: cur.errLines.join('\n').trim() });
      cur = null;
    } else if (cur) {
      (cur.inErr ? cur.errLines : cur.lines).push(line);
    }
  }
  return blocks;
}
