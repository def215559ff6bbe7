// Fleet checks: what only a look at every node at once shows, run after the per-node checks when more
// than one host is checked. kubeadm's install docs ask the operator to "verify the MAC address and
// product_uuid are unique for every node" by hand, k0s requires a unique machine-id per node
// (docs.k0sproject.io "external runtime dependencies": a unique machine ID for multi-node setups),
// and cloned VPS images share all three. Clocks, the node-to-node MTU, the kernel family and the
// cgroup version must agree across nodes. Reading is per host (readFleetFacts, on the open
// connection); judging is pure (judgeFleet) over the facts of every host.
import type { CheckContext, Status } from './types.js';
import { nodeFacts } from '../probes/node-facts.js';
import { netFacts } from '../probes/net.js';
import { oneLine } from '../errors.js';

export interface FleetFacts {
  target: string;
  hostname: string | null;
  machineId: string | null;
  productUuid: string | null;
  /** Why productUuid is null, when it is. */
  productUuidMissing?: string | null;
  /** MAC of the default-route interface. */
  primaryMac: string | null;
  /** The MTU nodes talk to each other over: the private interfaces' (lowest) if any, else the default route's. */
  privateMtu: number | null;
  primaryMtu: number | null;
  /** major.minor of the running kernel. */
  kernelFamily: string | null;
  cgroupVersion: 1 | 2 | null;
  /** The node's clock minus this machine's (ms), ± half the round trip of the read. */
  clock: { offsetMs: number; uncertaintyMs: number } | null;
  /** What could not be read, one line. */
  error?: string;
}

export interface FleetResult {
  id: string;
  title: string;
  status: Status;
  observed: string;
  expected: string;
  remedy?: string;
  detail?: string;
  /** The hosts that disagree with the rest (or share what must be unique). */
  hosts: string[];
  ignored: boolean;
}

export const FLEET_CHECKS = [
  { id: 'fleet.hostname', title: 'Hostnames unique' },
  { id: 'fleet.machine-id', title: 'machine-id unique' },
  { id: 'fleet.product-uuid', title: 'product_uuid unique' },
  { id: 'fleet.mac', title: 'Primary MAC unique' },
  { id: 'fleet.clock', title: 'Clocks agree' },
  { id: 'fleet.mtu', title: 'Node-to-node MTU consistent' },
  { id: 'fleet.kernel', title: 'Kernel family consistent' },
  { id: 'fleet.cgroup', title: 'cgroup version consistent' },
] as const;

/** Clock read: nanoseconds since the epoch (busybox date prints a literal %N: seconds only). */
export const CLOCK_COMMAND = 'date +%s%N';

/** Parse `date +%s%N` taken between local t0 and t1 (ms) into an offset with its uncertainty. */
export function clockOffset(out: string, t0: number, t1: number): FleetFacts['clock'] {
  const text = out.trim();
  const mid = (t0 + t1) / 2;
  const rtt = (t1 - t0) / 2;
  if (/^\d{16,}$/.test(text)) {
    // Whole milliseconds subtracted as integers, the fractions apart: a double holds epoch ns only to ~256 ns.
    const ns = BigInt(text);
    const whole = Math.floor(mid);
    return { offsetMs: Number(ns / 1_000_000n - BigInt(whole)) + Number(ns % 1_000_000n) / 1e6 - (mid - whole), uncertaintyMs: rtt };
  }
  // Seconds only: the true time lies anywhere in [s, s+1).
  const s = /^(\d{9,})N?$/.exec(text);
  if (s) return { offsetMs: Number(s[1]) * 1000 + 500 - mid, uncertaintyMs: rtt + 500 };
  return null;
}

/** Read one host's fleet facts: the node facts and interfaces the per-node checks already read (memo), plus one clock read. */
export async function readFleetFacts(ctx: CheckContext, target: string, now: () => number = () => performance.timeOrigin + performance.now()): Promise<FleetFacts> {
  const facts: FleetFacts = { target, hostname: null, machineId: null, productUuid: null, primaryMac: null, privateMtu: null, primaryMtu: null, kernelFamily: null, cgroupVersion: null, clock: null };
  const errors: string[] = [];
  try {
    const n = await nodeFacts(ctx, ctx.profile.preflight.diskPath);
    facts.hostname = n.hostname || null;
    facts.machineId = n.machineId;
    facts.productUuid = n.productUuid;
    facts.productUuidMissing = n.productUuidMissing;
    facts.kernelFamily = /^(\d+\.\d+)/.exec(n.kernel)?.[1] ?? null;
    facts.cgroupVersion = n.cgroupVersion;
    const net = await netFacts(ctx);
    const primary = net.interfaces.find((i) => net.defaultRoute !== null && (i.name === net.defaultRoute || i.master === net.defaultRoute));
    facts.primaryMac = (primary && n.macs.get(primary.name)) ?? null;
    facts.primaryMtu = primary?.mtu ?? null;
    const privates = net.interfaces.filter((i) => i !== primary && i.mtu !== null).map((i) => i.mtu!);
    facts.privateMtu = privates.length > 0 ? Math.min(...privates) : null;
  } catch (err) {
    errors.push(oneLine(err));
  }
  // A connection lost here leaves the node's own results standing: the clock is just unknown.
  try {
    const t0 = now();
    const r = await ctx.host.run(CLOCK_COMMAND, { timeoutMs: 10_000 });
    const t1 = now();
    facts.clock = r.code === 0 ? clockOffset(r.stdout, t0, t1) : null;
    if (!facts.clock) errors.push(`clock unreadable: ${r.stderr.trim() || r.stdout.trim() || `exit ${r.code}`}`);
  } catch (err) {
    errors.push(`clock unreadable: ${oneLine(err)}`);
  }
  if (errors.length > 0) facts.error = errors.join('; ');
  return facts;
}

/** Group hosts by a value; hosts without the value go to `unknown`. */
function groups<T>(facts: readonly FleetFacts[], pick: (f: FleetFacts) => T | null): { by: Map<T, string[]>; unknown: string[] } {
  const by = new Map<T, string[]>();
  const unknown: string[] = [];
  for (const f of facts) {
    const v = pick(f);
    if (v === null) unknown.push(f.target);
    else by.set(v, [...(by.get(v) ?? []), f.target]);
  }
  return { by, unknown };
}

const list = (hosts: readonly string[]) => hosts.join(', ');

type Verdict = Omit<FleetResult, 'id' | 'title' | 'ignored'>;

function unique(facts: readonly FleetFacts[], what: string, pick: (f: FleetFacts) => string | null, remedy: string, detail: string, unknownWhy: (f: FleetFacts) => string): Verdict {
  const { by, unknown } = groups(facts, pick);
  const expected = `a different ${what} on every node`;
  const dups = [...by].filter(([, hosts]) => hosts.length > 1);
  const why = new Map<string, string[]>();
  for (const f of facts) if (unknown.includes(f.target)) why.set(unknownWhy(f), [...(why.get(unknownWhy(f)) ?? []), f.target]);
  const unread = unknown.length > 0 ? `; unknown on ${[...why].map(([w, hosts]) => `${list(hosts)} (${w})`).join(', ')}` : '';
  if (dups.length > 0) {
    return {
      status: 'fail',
      observed: dups.map(([v, hosts]) => `${v} on ${list(hosts)}`).join('; ') + unread,
      expected,
      remedy,
      detail,
      hosts: dups.flatMap(([, hosts]) => hosts),
    };
  }
  if (unknown.length > 0) return { status: 'warn', observed: `${by.size} distinct${unread}`, expected, remedy: `compare ${list(unknown)} by hand (the provider's panel shows the VM's identifiers)`, detail, hosts: unknown };
  return { status: 'pass', observed: `${by.size} distinct`, expected, detail, hosts: [] };
}

/** The value most hosts share wins; the others are named. */
function consistent<T>(facts: readonly FleetFacts[], what: string, pick: (f: FleetFacts) => T | null, show: (v: T) => string, failStatus: Status, remedy: string, detail: string): Verdict {
  const { by, unknown } = groups(facts, pick);
  const sorted = [...by].sort((a, b) => b[1].length - a[1].length);
  const observed = sorted.map(([v, hosts]) => `${show(v)}: ${list(hosts)}`).join('; ') + (unknown.length > 0 ? `; unknown: ${list(unknown)}` : '');
  const expected = `the same ${what} on every node`;
  if (sorted.length <= 1) return { status: unknown.length > 0 ? 'warn' : 'pass', observed, expected, detail, hosts: unknown };
  const odd = sorted.slice(1).flatMap(([, hosts]) => hosts);
  return { status: failStatus, observed, expected, remedy, detail, hosts: [...odd, ...unknown] };
}

// etcd's peer prober warns when a member's clock differs by more than 1 s ("prober found high clock
// drift", rafthttp probing; etcd's maxClockDifference); TLS and leases assume agreeing clocks.
export const MAX_SKEW_MS = 1000;

function judgeClock(facts: readonly FleetFacts[]): Verdict {
  const read = facts.filter((f) => f.clock !== null);
  const unknown = facts.filter((f) => f.clock === null).map((f) => f.target);
  const expected = `node clocks within ${MAX_SKEW_MS} ms of each other and of this machine, the round trip of each read accounted for`;
  const detail = `etcd warns when a peer's clock differs by more than 1 s ("prober found high clock drift"); TLS certificates and leases assume agreeing clocks; time.sync checks each node's daemon`;
  const ms = (n: number) => `${n >= 0 ? '+' : ''}${Math.round(n)} ms`;
  const observedOffsets = read.map((f) => `${f.target} ${ms(f.clock!.offsetMs)} ±${Math.ceil(f.clock!.uncertaintyMs)} ms`).join(', ');
  // The smallest skew each pair could have: |a-b| minus both uncertainties.
  let worst: { a: FleetFacts; b: FleetFacts; low: number; skew: number } | null = null;
  for (let i = 0; i < read.length; i++) {
    for (let j = i + 1; j < read.length; j++) {
      const a = read[i]!, b = read[j]!;
      const skew = Math.abs(a.clock!.offsetMs - b.clock!.offsetMs);
      const low = skew - a.clock!.uncertaintyMs - b.clock!.uncertaintyMs;
      if (!worst || low > worst.low) worst = { a, b, low, skew };
    }
  }
  const observed = `vs this machine: ${observedOffsets}` + (worst ? `; largest between nodes ${worst.a.target}–${worst.b.target} ${Math.round(worst.skew)} ms` : '') + (unknown.length > 0 ? `; unreadable: ${list(unknown)}` : '');
  // Name the hosts far from the median node (the odd ones out), then those far from this machine.
  const offsets = read.map((f) => f.clock!.offsetMs).sort((a, b) => a - b);
  const median = offsets.length > 0 ? offsets[Math.floor((offsets.length - 1) / 2)]! : 0;
  const farFromNodes = worst && worst.low > MAX_SKEW_MS ? read.filter((f) => Math.abs(f.clock!.offsetMs - median) - f.clock!.uncertaintyMs > MAX_SKEW_MS / 2).map((f) => f.target) : [];
  const farFromHere = read.filter((f) => Math.abs(f.clock!.offsetMs) - f.clock!.uncertaintyMs > MAX_SKEW_MS).map((f) => f.target);
  const named = [...new Set([...farFromNodes, ...farFromHere, ...unknown])];
  if (farFromNodes.length > 0 || (worst && worst.low > MAX_SKEW_MS) || farFromHere.length > 0) {
    return {
      status: 'warn',
      observed,
      expected,
      remedy: `on ${list(named)}: chronyc makestep (chrony) or systemctl restart systemd-timesyncd, then fix time.sync there; if every node disagrees with this machine, this machine's clock is the wrong one`,
      detail,
      hosts: named,
    };
  }
  // Too slow a read to tell: the skew could be above the limit.
  if (worst && worst.skew + worst.a.clock!.uncertaintyMs + worst.b.clock!.uncertaintyMs > MAX_SKEW_MS) {
    return { status: 'warn', observed: `${observed} (cannot tell: the round trips are too long)`, expected, remedy: 'check again over a faster path, or compare `chronyc tracking` on the nodes', detail, hosts: [worst.a.target, worst.b.target] };
  }
  if (unknown.length > 0) return { status: 'warn', observed, expected, detail, hosts: unknown };
  return { status: 'pass', observed, expected, detail, hosts: [] };
}

/** The fleet verdicts over every reached host's facts; pure. Fewer than two hosts: every fleet check is skipped. */
export function judgeFleet(facts: readonly FleetFacts[], ignore: readonly string[] = []): FleetResult[] {
  const verdicts: Record<(typeof FLEET_CHECKS)[number]['id'], () => Verdict> = {
    'fleet.hostname': () =>
      unique(facts, 'hostname', (f) => f.hostname, 'hostnamectl set-hostname NAME on all but one of them', 'the kubelet registers the Node under its hostname: two nodes with one name overwrite each other\'s Node object', (f) => f.error ?? 'empty'),
    'fleet.machine-id': () =>
      unique(
        facts,
        'machine-id',
        (f) => f.machineId,
        'on all but one: rm -f /etc/machine-id /var/lib/dbus/machine-id && systemd-machine-id-setup && reboot',
        'k0s requires a unique machine-id per node; systemd derives DHCP client ids and journald names from it, and cloned images share it',
        () => 'empty or uninitialized /etc/machine-id',
      ),
    'fleet.product-uuid': () =>
      unique(
        facts,
        'product_uuid',
        (f) => f.productUuid,
        "ask the provider for distinct SMBIOS UUIDs (libvirt/QEMU: -uuid or <uuid>); the node's own OS cannot change it",
        'kubeadm install docs: "verify the MAC address and product_uuid are unique for every node"; the kubelet reports it as the Node\'s systemUUID',
        (f) => f.productUuidMissing ?? f.error ?? 'unreadable',
      ),
    'fleet.mac': () =>
      unique(
        facts,
        'primary MAC',
        (f) => f.primaryMac,
        'give each VM its own MAC in the hypervisor or provider panel (cloned VM definitions copy it)',
        'kubeadm install docs: "verify the MAC address and product_uuid are unique for every node"; duplicate MACs on one L2 network break ARP and DHCP',
        () => 'no default-route interface',
      ),
    'fleet.clock': () => judgeClock(facts),
    'fleet.mtu': () => {
      // Compare the private network when every node has one, else the default-route interfaces.
      const allPrivate = facts.every((f) => f.privateMtu !== null);
      const v = consistent(
        facts,
        allPrivate ? 'private-network MTU' : 'default-route MTU',
        (f) => (allPrivate ? f.privateMtu : f.primaryMtu),
        (m) => `MTU ${m}`,
        'fail',
        'set one MTU on the node-to-node interfaces of every node (mtu.private/mtu.primary in the profile, then prep-node apply), the smallest the network carries',
        'pod-to-pod traffic between nodes is encapsulated over this link: a node with a larger MTU sends packets the others drop (or fragment), and the overlay MTU must be the same everywhere',
      );
      return { ...v, observed: `${allPrivate ? 'private network' : 'default route'}: ${v.observed}` };
    },
    'fleet.kernel': () =>
      consistent(
        facts,
        'kernel major.minor',
        (f) => f.kernelFamily,
        (k) => k,
        'warn',
        'boot the same distribution kernel on every node (kernel.version gives each node\'s minimum)',
        'the datapath\'s verifier behaviour and BPF features follow the kernel: one datapath build tested on one kernel family behaves the same on every node',
      ),
    'fleet.cgroup': () =>
      consistent(
        facts,
        'cgroup version',
        (f) => f.cgroupVersion,
        (v) => `cgroup v${v}`,
        'warn',
        'boot every node with the unified hierarchy (systemd.unified_cgroup_hierarchy=1 on the kernel command line; cgroup.v2 gives the fix per node)',
        'the kubelet and the runtime account resources differently under v1 and v2 (memory.high, PSI, eviction), so pods behave differently per node; one KubeletConfiguration serves every node',
      ),
  };
  const skip = facts.length < 2;
  return FLEET_CHECKS.map((c) => {
    const ignored = ignore.includes('all') || ignore.includes(c.id);
    if (skip) return { ...c, status: 'skip' as const, observed: '-', expected: '-', detail: `skipped: ${facts.length} host${facts.length === 1 ? '' : 's'} answered, a fleet check needs two`, hosts: [], ignored };
    return { ...c, ...verdicts[c.id](), ignored };
  });
}
