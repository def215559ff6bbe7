// The scenario the kernel matrix runs as /scenario.sh inside each kernel's minimal initramfs
// (test/kernels/guest.sh mounts proc, sysfs, bpffs and cgroup2 first), and how its output is judged.
// The guest's own network namespace is the node; a client and a pod namespace hang off it by veth
// pairs, and tc_lb is attached to both node-side ends:
//
//   pnk-c  c0 198.18.1.2 ──veth── n0 198.18.1.1   node (root ns)   198.18.2.1 n1 ──veth── p0 198.18.2.2  pnk-p
//                                                                                         `serve` :8080
//
// 1. features (before anything is loaded: sch_ingress/cls_bpf are still modules on disk)
// 2. a failed install on purpose (someone else's tc filter at our priority on n1): exit 5, nothing left
// 3. install on the cgroup root + tc on n0/n1: TCP and UDP through the socket hooks, a Service without
//    backends refused (the errno this kernel gives), events and counters, remove, nothing left
// 4. install on an empty cgroup + tc on n0/n1: the client's sockets are not translated, so TCP and
//    UDP to the VIP go through tc_lb (DNAT + reverse NAT, conntrack), remove, nothing left
// Map entries come from the project's own compiler (compileState + incrementalSync), so the scenario
// follows the map layouts wherever they change. Output: the step blocks of selftest-script.ts.
import { compileState } from '../../src/datapath/compile.js';
import { DatapathStateSchema } from '../../src/datapath/schema.js';
import { applyCommands, type StepBlock } from '../../src/datapath/selftest-script.js';
import { incrementalSync } from '../../src/datapath/sync.js';
import type { MapOp } from '../../src/datapath/writer.js';

export const CLIENT_IP = '198.18.1.2';
export const POD_IP = '198.18.2.2';
export const VIP = '198.19.0.10';
export const OUR_PROGS = /name (tc_lb|sock4_\w+)/;

function applyOps(): MapOp[] {
  const pod = [{ ip: POD_IP, port: 8080 }];
  const state = DatapathStateSchema.parse({
    services: [
      { name: 'tcp', vip: VIP, port: 80, protocol: 'tcp', backends: pod },
      { name: 'udp', vip: VIP, port: 53, protocol: 'udp', backends: pod },
      { name: 'empty', vip: VIP, port: 81, protocol: 'tcp', backends: [] },
    ],
  });
  return incrementalSync(compileState(state).entries, {}).ops;
}

/** The POSIX sh (busybox) scenario. */
export function kernelScenario(): string {
  const apply = applyCommands(applyOps());
  const probe = (target: string, extra = '') => `ip netns exec pnk-c "$DP" probe --connect ${target} --timeout-ms 3000 ${extra}`;
  return `#!/bin/sh
set -u
DP=/bin/prep-node-dp
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
ip() { /usr/sbin/ip "$@"; }
tc() { /usr/sbin/tc "$@"; }
bpftool() { /usr/sbin/bpftool "$@"; }
ms() { awk '{ printf "%d", $1 * 1000 }' /proc/uptime; }
run_step() {
  name=$1; shift
  t0=$(ms)
  "$@" </dev/null >/tmp/out 2>/tmp/err
  rc=$?
  printf '::step %s %s %s\\n' "$name" "$rc" $(( $(ms) - t0 ))
  cat /tmp/out
  if [ -s /tmp/err ]; then printf '\\n::stderr\\n'; cat /tmp/err; fi
  printf '\\n::end\\n'
  return $rc
}
# what of ours the kernel and bpffs still hold, once the RCU grace period freed detached programs
leftovers() {
  i=0
  while [ $i -lt 30 ] && bpftool prog show 2>/dev/null | grep -Eq '${OUR_PROGS.source}'; do sleep 0.1; i=$((i + 1)); done
  echo "progs: $(bpftool prog show 2>/dev/null | grep -Eo '${OUR_PROGS.source}' | tr '\\n' ' ')"
  echo "links: $(bpftool link show 2>/dev/null | grep -c 'prog ')"
  echo "pins: $(ls /sys/fs/bpf | tr '\\n' ' ')"
  echo "qdisc n0: $(tc qdisc show dev n0 | grep -c clsact)"
  echo "qdisc n1: $(tc qdisc show dev n1 | grep -c clsact)"
  if tc filter show dev n1 ingress 2>/dev/null | grep -q u32; then echo "u32 on n1: yes"; else echo "u32 on n1: no"; fi
}
mem() { awk '/MemAvailable/ { print $2 }' /proc/meminfo; }

step_features() { "$DP" features; }
run_step features step_features

step_topology() {
  ip link set lo up &&
  ip netns add pnk-c && ip netns add pnk-p &&
  ip -n pnk-c link set lo up && ip -n pnk-p link set lo up &&
  ip link add n0 type veth peer name c0 netns pnk-c &&
  ip link add n1 type veth peer name p0 netns pnk-p &&
  ip addr add 198.18.1.1/24 dev n0 && ip addr add 198.18.2.1/24 dev n1 &&
  ip link set n0 up && ip link set n1 up &&
  ip -n pnk-c addr add ${CLIENT_IP}/24 dev c0 && ip -n pnk-c link set c0 up &&
  ip -n pnk-p addr add ${POD_IP}/24 dev p0 && ip -n pnk-p link set p0 up &&
  ip -n pnk-c route add default via 198.18.1.1 && ip -n pnk-p route add default via 198.18.2.1 &&
  echo 1 > /proc/sys/net/ipv4/ip_forward || return 1
  ip netns exec pnk-p "$DP" serve --port 8080 --name pod1 > /tmp/serve.log 2>&1 &
  i=0
  while [ $i -lt 100 ] && ! grep -q listening /tmp/serve.log; do sleep 0.1; i=$((i + 1)); done
  cat /tmp/serve.log
  grep -q listening /tmp/serve.log
}
run_step topology step_topology || exit 1

step_fail_install() {
  tc qdisc add dev n1 clsact && tc filter add dev n1 ingress prio 1 protocol all u32 match u32 0 0 || return 99
  "$DP" install --tc-dev n0 --tc-dev n1
}
run_step install-fail step_fail_install
step_fail_left() { leftovers; tc qdisc del dev n1 clsact; }
run_step install-fail.left step_fail_left

step_install() { echo "memavail_before $(mem)" >&2; "$DP" install --tc-dev n0 --tc-dev n1; }
run_step sock.install step_install || exit 1
step_status() { echo "memavail_after $(mem)" >&2; "$DP" status; }
run_step sock.status step_status
step_apply() {
${apply}
}
run_step sock.apply step_apply
step_sock_tcp() { ${probe(`${VIP}:80`, '--count 3')}; }
run_step sock.tcp step_sock_tcp
step_sock_udp() { ${probe(`${VIP}:53`, '--udp')}; }
run_step sock.udp step_sock_udp
step_no_backend() { ${probe(`${VIP}:81`)}; }
run_step sock.no-backend step_no_backend
step_events() { "$DP" events --timeout-ms 500; }
run_step sock.events step_events
step_counters() { "$DP" status; }
run_step sock.counters step_counters
step_remove() { "$DP" remove; }
run_step sock.remove step_remove
run_step sock.left leftovers

step_tc_install() { mkdir -p /sys/fs/cgroup/pnk-empty && "$DP" install --cgroup /sys/fs/cgroup/pnk-empty --tc-dev n0 --tc-dev n1; }
run_step tc.install step_tc_install || exit 1
run_step tc.apply step_apply
step_tc_tcp() { ${probe(`${VIP}:80`, '--count 2')}; }
run_step tc.tcp step_tc_tcp
step_tc_udp() { ${probe(`${VIP}:53`, '--udp')}; }
run_step tc.udp step_tc_udp
step_tc_conntrack() { "$DP" dump conntrack; }
run_step tc.conntrack step_tc_conntrack
run_step tc.remove step_remove
run_step tc.left leftovers
exit 0
`;
}

export interface ProbeResult { ok: boolean; errno: string | null; reply: string | null; peer: string | null }

/** What one kernel did; every field from the guest's output. */
export interface KernelRow {
  failures: string[];
  features?: Record<string, unknown>;
  setRetval?: boolean;
  noBackendErrno?: string | null;
  memlockBytes?: number;
  memAvailDropKb?: number;
}

function json(b: StepBlock | undefined): Record<string, unknown> | undefined {
  try {
    return b ? (JSON.parse(b.stdout) as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** Judge the step blocks of one boot: a list of failures (empty: all passed) and the figures. */
export function judgeKernel(blocks: StepBlock[]): KernelRow {
  const row: KernelRow = { failures: [] };
  const get = (n: string) => blocks.find((b) => b.name === n);
  const fail = (msg: string) => row.failures.push(msg);
  const need = (n: string): StepBlock | undefined => {
    const b = get(n);
    if (!b) fail(`${n}: did not run`);
    return b;
  };
  /** a step that must exit 0; a loader error names its code and the verifier's last words */
  const ok = (n: string): StepBlock | undefined => {
    const b = need(n);
    if (b && b.rc !== 0) {
      const doc = json(b) as { error?: string; verifier_log?: string[] } | undefined;
      const why = doc?.error ?? (b.stderr || b.stdout).split('\n').slice(-3).join(' | ');
      const log = doc?.verifier_log?.length ? `; verifier: ${doc.verifier_log.slice(-3).join(' | ')}` : '';
      fail(`${n}: exit ${b.rc}: ${why}${log}`);
      return undefined;
    }
    return b;
  };
  const probes = (n: string): ProbeResult[] => (get(n) ? ((json(ok(n))?.results as ProbeResult[] | undefined) ?? []) : []);
  const reachesPod = (n: string, target: string, count: number) => {
    if (!get(n)) return fail(`${n}: did not run`);
    const rs = probes(n);
    if (rs.length !== count) return fail(`${n}: ${rs.length} results, want ${count}`);
    for (const r of rs) {
      if (!r.ok || r.peer !== target || !new RegExp(`^pod1 ${CLIENT_IP.replace(/\./g, '\\.')}:\\d+$`).test(r.reply ?? '')) {
        return fail(`${n}: ${JSON.stringify(r)} (want the pod's answer to ${CLIENT_IP} with ${target} as peer)`);
      }
    }
  };
  /** foreign: someone else's clsact and u32 filter on n1 must still be there */
  const nothingLeft = (n: string, foreign: boolean) => {
    const b = ok(n);
    if (!b) return;
    const want = `progs: \nlinks: 0\npins: \nqdisc n0: 0\nqdisc n1: ${foreign ? 1 : 0}\nu32 on n1: ${foreign ? 'yes' : 'no'}`;
    if (b.stdout.replace(/ +\n/g, ' \n').trim() !== want.trim()) fail(`${n}: left behind: ${b.stdout.replace(/\n/g, '; ')}`);
  };

  const features = json(ok('features'));
  if (features) {
    row.features = features;
    if ((features.missing as string[]).length) fail(`features: missing ${(features.missing as string[]).join(', ')}`);
  }
  ok('topology');

  const f = need('install-fail');
  const fdoc = json(f);
  if (f && (f.rc !== 5 || fdoc?.code !== 'attach-failed' || !/n1/.test(String(fdoc?.error)))) fail(`install-fail: want exit 5 attach-failed naming n1, got exit ${f.rc}: ${f.stdout} ${f.stderr}`);
  nothingLeft('install-fail.left', true);

  const inst = json(ok('sock.install'));
  if (inst) {
    row.setRetval = inst.set_retval as boolean;
    if (JSON.stringify(inst.programs) !== JSON.stringify(['sock4_connect', 'sock4_sendmsg', 'sock4_getpeername', 'sock4_recvmsg', 'sock6_connect', 'sock6_sendmsg', 'sock6_getpeername', 'sock6_recvmsg', 'tc_lb'])) fail(`sock.install: programs ${JSON.stringify(inst.programs)}`);
    if (features && (features.helpers as Record<string, boolean>)['sock_addr/set_retval'] !== inst.set_retval) fail('features and install disagree on set_retval');
  }
  const st = json(ok('sock.status')) as { programs?: { attached: boolean }[]; maps?: { memlock_bytes: number | null }[] } | undefined;
  if (st) {
    if (st.programs?.length !== 10 || !st.programs.every((p) => p.attached)) fail(`sock.status: programs ${JSON.stringify(st.programs)}`);
    row.memlockBytes = (st.maps ?? []).reduce((s, m) => s + (m.memlock_bytes ?? 0), 0);
    const before = /memavail_before (\d+)/.exec(get('sock.install')?.stderr ?? '');
    const after = /memavail_after (\d+)/.exec(get('sock.status')?.stderr ?? '');
    if (before && after) row.memAvailDropKb = Number(before[1]) - Number(after[1]);
  }
  ok('sock.apply');
  reachesPod('sock.tcp', `${VIP}:80`, 3);
  reachesPod('sock.udp', `${VIP}:53`, 1);
  const [nb] = probes(need('sock.no-backend') ? 'sock.no-backend' : '');
  row.noBackendErrno = nb?.errno ?? null;
  const wantErrno = row.setRetval ? 'ECONNREFUSED' : 'EPERM';
  if (nb && (nb.ok || nb.errno !== wantErrno)) fail(`sock.no-backend: ${JSON.stringify(nb)} (want ${wantErrno} with set_retval=${row.setRetval})`);
  if (features && nb && features.no_backend_errno !== row.noBackendErrno) fail(`features predicts ${String(features.no_backend_errno)}, the kernel gave ${row.noBackendErrno}`);

  const ev = ok('sock.events');
  if (ev) {
    const lines = ev.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
    const dropped = lines.filter((l) => l.verdict === 'dropped');
    if (dropped.length !== 1 || dropped[0]?.reason_name !== 'NO_BACKEND' || dropped[0]?.hook !== 'connect4' || dropped[0]?.dport !== 81) fail(`sock.events: dropped ${JSON.stringify(dropped)}`);
    const fwd = lines.filter((l) => l.verdict === 'forwarded');
    const n = (hook: string) => fwd.filter((l) => l.hook === hook).length;
    if (n('connect4') !== 3 || n('sendmsg4') !== 1) fail(`sock.events: forwarded connect4 ${n('connect4')} (want 3), sendmsg4 ${n('sendmsg4')} (want 1)`);
  }
  const cnt = json(ok('sock.counters')) as { drops?: Record<string, number>; forwarded?: Record<string, number> } | undefined;
  if (cnt && (cnt.drops?.NO_BACKEND !== 1 || cnt.forwarded?.connections !== 4)) fail(`sock.counters: drops ${JSON.stringify(cnt.drops)}, forwarded ${JSON.stringify(cnt.forwarded)} (want NO_BACKEND 1, 4 connections)`);
  const rm = json(ok('sock.remove')) as { removed?: boolean; detached?: unknown[] } | undefined;
  if (rm && (rm.removed !== true || rm.detached?.length !== 10)) fail(`sock.remove: ${JSON.stringify(rm)}`);
  nothingLeft('sock.left', false);

  ok('tc.install');
  ok('tc.apply');
  reachesPod('tc.tcp', `${VIP}:80`, 2);
  reachesPod('tc.udp', `${VIP}:53`, 1);
  const ct = ok('tc.conntrack');
  if (ct && ct.stdout.split('\n').filter(Boolean).length < 2) fail(`tc.conntrack: ${ct.stdout.split('\n').filter(Boolean).length} entries (want one per direction at least)`);
  const trm = json(ok('tc.remove')) as { removed?: boolean; detached?: unknown[] } | undefined;
  if (trm && (trm.removed !== true || trm.detached?.length !== 10)) fail(`tc.remove: ${JSON.stringify(trm)}`);
  nothingLeft('tc.left', false);
  return row;
}
