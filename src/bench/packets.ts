// The tc program's cost per packet (`prep-node bench`'s packet section): for each size, a fresh
// install of the datapath in a private bpffs, its maps filled through the loader's `apply` with
// that many services (one endpoint each) plus one policy-enforcing endpoint, then
// `prep-node-dp bench-pkt` runs the installed tc_lb through BPF_PROG_TEST_RUN on one packet per
// path and reports the kernel's own duration, beside a trivial tc program (the harness's floor).
//
//   service-new       first packet of a flow to a ClusterIP: service lookup, backend, policy
//                     lookups, two conntrack entries, DNAT with checksums, a flow event
//   conntrack-hit     the same flows again: conntrack lookup, DNAT as recorded
//   policy-allow      first packet of a flow to the policy endpoint on an allowed port: policy
//                     lookups (identity, LPM rule), two conntrack entries, a flow event
//   policy-ct-repeat  one of those flows again, in the kernel's loop (no NAT: the packet is
//                     unchanged, every iteration is a conntrack hit)
//   policy-deny       a packet to the endpoint's denied port, in the kernel's loop (dropped
//                     with POLICY_DENY, counted, a drop event)
// IPv6: the same cases over as many IPv6 services (services6/backends6, conntrack6, endpoints6,
// ipcache6): service-new and conntrack-hit to the last IPv6 VIP, the policy cases (the IPv6 policy
// flows' second packets are policy-ct-hit, conntrack-hit being the service's). Up to
// BENCH_ONE_STATE_MAX services both families share one state and one install; above it each family
// is filled (its services plus the policy endpoint) and measured in an install of its own.
import { existsSync } from 'node:fs';
import { z } from 'zod';
import { compileState } from '../datapath/compile.js';
import { fullSync } from '../datapath/sync.js';
import type { DatapathState } from '../datapath/schema.js';
import { DatapathStateSchema } from '../datapath/schema.js';
import { formatIpv6, parseIpv6 } from '../datapath/ip.js';
import type { BenchEnv } from './env.js';
import { run, why } from './exec.js';
import { datapathState } from './modes.js';
import type { PacketCase, PacketConfig, PacketResult, PacketSection } from './schema.js';
import { benchServices } from './services.js';
import { figure } from './stats.js';

/** the client (a pod of the bench's cluster CIDR, not a local endpoint) and the policy endpoint */
export const PKT_CLIENT = '10.255.0.2';
export const PKT_CLIENT6 = 'fd00:255::2';
export const PKT_ENDPOINT = '10.64.0.1';
export const PKT_ENDPOINT6 = 'fd00:64::1';
export const PKT_ALLOWED_PORT = 8080;
export const PKT_DENIED_PORT = 9090;
/** first source port of run r's flows: runs use disjoint flows, so a first packet stays a first packet */
const SPORT_BASE = 1024;
const DENY_SPORT = 60000;

/** The policy part of the state: one endpoint (IPv4 + IPv6) that allows 8080 from the client's
 *  /16 and denies 9090 from it. */
export function packetPolicyState(): Pick<DatapathState, 'endpoints' | 'policies'> {
  const s = DatapathStateSchema.parse({
    endpoints: [{ name: 'pkt-server', ip: PKT_ENDPOINT, ip6: PKT_ENDPOINT6, labels: { app: 'pkt-server' } }],
    services: [],
    policies: [
      {
        name: 'pkt-server-ingress',
        selector: { app: 'pkt-server' },
        ingress: [
          { from: [{ cidr: '10.255.0.0/16' }, { cidr: 'fd00:255::/32' }], ports: [{ port: PKT_ALLOWED_PORT, protocol: 'tcp' }] },
          { action: 'deny', from: [{ cidr: '10.255.0.0/16' }, { cidr: 'fd00:255::/32' }], ports: [{ port: PKT_DENIED_PORT, protocol: 'tcp' }] },
        ],
      },
    ],
  });
  return { endpoints: s.endpoints, policies: s.policies };
}

const SERVICE6_BASE = parseIpv6('fd00:96::')!;
const ENDPOINT6_BASE = parseIpv6('fd00:128::')!;
/** The largest size whose IPv4 and IPv6 services share one state and one install. 1M of each in one
 *  state ran prep-node out of V8's default 4 GB heap while compiling (measured 2026-12-03: every
 *  entry is held as hex strings and a note, then again as apply lines); larger sizes fill and
 *  measure each family in an install of its own, so the IPv6 cases run at the full size too. */
export const BENCH_ONE_STATE_MAX = 10_000;

/** services6/backends6 capacities for n IPv6 services of one backend each: the defaults (2^18, 2^19)
 *  or the next power of two and twice it (IPv4's defaults, 2^20 and 2^21, hold the 1M size) */
export function caps6(n: number): string {
  let c = 1 << 18;
  while (c < n) c *= 2;
  return `services6=${c},backends6=${2 * c}`;
}

/** n IPv6 services, one endpoint each (service i: VIP fd00:96::i+1, port 80/tcp -> [fd00:128::i+1]:8080). */
export function benchServices6(n: number): DatapathState['services'] {
  const out: DatapathState['services'] = [];
  for (let i = 0; i < n; i++) {
    out.push({ name: `svc6-${i}`, vip: formatIpv6(SERVICE6_BASE + BigInt(i + 1)), port: 80, protocol: 'tcp', backends: [{ ip: formatIpv6(ENDPOINT6_BASE + BigInt(i + 1)), port: 8080, weight: 1 }], algorithm: 'random' });
  }
  return out;
}

export interface CaseLine {
  name: string;
  family: 4 | 6;
  /** what the packet exercises, for the report */
  path: string;
  line: string;
}

/** bench-pkt's input for run r: the target service is the last of the set (vip6: of the IPv6 set). */
export function caseLines(vip: string, vip6: string, run: number, flows: number): CaseLine[] {
  const sport = SPORT_BASE + run * flows;
  const c = (name: string, family: 4 | 6, path: string, mode: string, src: string, sp: number, dst: string, dp: number): CaseLine => ({ name, family, path, line: `${name} ${mode} tcp ${src} ${sp} ${dst} ${dp}` });
  return [
    c('service-new', 4, 'first packet to a ClusterIP: service + backend lookup, policy lookups, 2 conntrack entries, DNAT, flow event', 'flows', PKT_CLIENT, sport, vip, 80),
    c('conntrack-hit', 4, 'the same flows again: conntrack hit, DNAT as recorded', 'flows', PKT_CLIENT, sport, vip, 80),
    c('policy-allow', 4, 'first packet to a policy endpoint, allowed: identity + LPM rule lookups, 2 conntrack entries, flow event', 'flows', PKT_CLIENT, sport, PKT_ENDPOINT, PKT_ALLOWED_PORT),
    c('policy-ct-repeat', 4, 'an allowed flow again, kernel loop: conntrack hit, no NAT', 'repeat', PKT_CLIENT, sport, PKT_ENDPOINT, PKT_ALLOWED_PORT),
    c('policy-deny', 4, 'a denied port, kernel loop: policy lookups, drop counted, drop event', 'repeat', PKT_CLIENT, DENY_SPORT, PKT_ENDPOINT, PKT_DENIED_PORT),
    c('service-new', 6, 'IPv6, first packet to an IPv6 ClusterIP: services6 + backends6 lookup, policy lookups, 2 conntrack6 entries, DNAT (16-byte checksum diff), flow event', 'flows', PKT_CLIENT6, sport, vip6, 80),
    c('conntrack-hit', 6, 'IPv6, the same flows again: conntrack6 hit, DNAT as recorded', 'flows', PKT_CLIENT6, sport, vip6, 80),
    c('policy-allow', 6, 'IPv6, first packet to a policy endpoint, allowed: 2 conntrack6 entries, flow event', 'flows', PKT_CLIENT6, sport, PKT_ENDPOINT6, PKT_ALLOWED_PORT),
    c('policy-ct-hit', 6, 'IPv6, the policy flows again: conntrack6 hit, no NAT', 'flows', PKT_CLIENT6, sport, PKT_ENDPOINT6, PKT_ALLOWED_PORT),
    c('policy-ct-repeat', 6, 'IPv6, an allowed flow again, kernel loop: conntrack6 hit', 'repeat', PKT_CLIENT6, sport, PKT_ENDPOINT6, PKT_ALLOWED_PORT),
    c('policy-deny', 6, 'IPv6, a denied port, kernel loop: drop counted, drop event', 'repeat', PKT_CLIENT6, DENY_SPORT, PKT_ENDPOINT6, PKT_DENIED_PORT),
  ];
}

const RunDoc = z.object({
  name: z.string(),
  mode: z.enum(['flows', 'repeat']),
  family: z.union([z.literal(4), z.literal(6)]),
  packets: z.number(),
  ns_per_packet: z.number(),
  retvals: z.record(z.string(), z.number()),
  out_src: z.string(),
  out_dst: z.string(),
});
const FloorDoc = z.object({ packets: z.number(), ns_per_packet: z.number() });
/** What `prep-node-dp bench-pkt` prints. */
export const BenchPktDoc = z.object({
  repeat: z.number(),
  flows: z.number(),
  floor: z.object({ repeat: FloorDoc, flows: FloorDoc }),
  cases: z.array(RunDoc),
});
export type BenchPktDoc = z.output<typeof BenchPktDoc>;

type Loader = (args: string[], input?: string, timeoutMs?: number) => ReturnType<typeof run>;

/** What one install of a size measured. */
interface Pass {
  fillMs: number;
  docs: BenchPktDoc[];
  cases: CaseLine[];
  drops: Record<string, number>;
  conntrackEntries: number | null;
}

/** One install: fill with `state`, runs x bench-pkt on the cases of `families`, status, remove. */
async function onePass(loader: Loader, cgroup: string, size: number, build: () => DatapathState, families: (4 | 6)[], caps: string[], cfg: PacketConfig, log: (m: string) => void): Promise<Pass> {
  const must = async (args: string[], input = '', timeoutMs = 600_000) => {
    const r = await loader(args, input, timeoutMs);
    if (r.code !== 0) throw new Error(`prep-node-dp ${args[0]}: ${why(r)}`);
    return r;
  };
  await loader(['remove'], '', 120_000);
  await must(['install', '--cgroup', cgroup, ...caps], '', 120_000);
  try {
    // the state lives in this call only: each family's pass holds its own, never both at once
    const state = build();
    const last = (family: 4 | 6) => state.services.filter((x) => x.vip.includes(':') === (family === 6)).at(-1)?.vip ?? '';
    const vip = last(4);
    const vip6 = last(6);
    const input = `${fullSync(compileState(state).entries).lines.join('\n')}\n`;
    const fill = await must(['apply'], input);
    const which = families.length === 2 ? '' : ` (IPv${families[0]!} in an install of its own)`;
    log(`${String(size).padStart(7)} services  packets: maps filled in ${(fill.ms / 1000).toFixed(1)} s${which}`);
    const docs: BenchPktDoc[] = [];
    let cases: CaseLine[] = [];
    for (let r = 0; r < cfg.runs; r++) {
      cases = caseLines(vip, vip6, r, cfg.flows).filter((c) => families.includes(c.family));
      const out = await must(['bench-pkt', '--repeat', String(cfg.repeat), '--flows', String(cfg.flows)], `${cases.map((c) => c.line).join('\n')}\n`);
      docs.push(BenchPktDoc.parse(JSON.parse(out.stdout)));
    }
    const st = JSON.parse((await must(['status'], '', 120_000)).stdout) as { drops?: Record<string, number>; maps?: { name: string; entries?: number }[] };
    const drops = Object.fromEntries(Object.entries(st.drops ?? {}).filter(([, n]) => n > 0));
    const conntrackEntries = families.includes(4) ? st.maps?.find((m) => m.name === 'conntrack')?.entries ?? null : null;
    return { fillMs: fill.ms, docs, cases, drops, conntrackEntries };
  } finally {
    await loader(['remove'], '', 120_000);
  }
}

/** One size: one install with both families up to BENCH_ONE_STATE_MAX services, else one per family. */
async function oneSize(loader: Loader, cgroup: string, size: number, cfg: PacketConfig, log: (m: string) => void): Promise<PacketResult> {
  const res: PacketResult = { services: size, status: 'ok', reason: null, fillMs: null, floor: null, cases: [], drops: {}, conntrackEntries: null };
  const v4 = (): DatapathState => ({ ...datapathState(benchServices(size, 1)), ...packetPolicyState() });
  const v6 = (): DatapathState => ({ services: benchServices6(size), ...packetPolicyState() });
  const passes: Pass[] = [];
  if (size <= BENCH_ONE_STATE_MAX) {
    const both = (): DatapathState => { const s = v4(); return { ...s, services: [...s.services, ...benchServices6(size)] }; };
    passes.push(await onePass(loader, cgroup, size, both, [4, 6], [], cfg, log));
  } else {
    passes.push(await onePass(loader, cgroup, size, v4, [4], [], cfg, log));
    passes.push(await onePass(loader, cgroup, size, v6, [6], ['--cap', caps6(size)], cfg, log));
  }
  res.fillMs = Math.round(passes.reduce((n, p) => n + p.fillMs, 0));
  const allDocs = passes.flatMap((p) => p.docs);
  const floorRepeat = figure(allDocs.map((d) => d.floor.repeat.ns_per_packet));
  const floorFlows = figure(allDocs.map((d) => d.floor.flows.ns_per_packet));
  res.floor = { repeatNs: floorRepeat, flowsNs: floorFlows };
  res.cases = passes.flatMap((p) => p.cases.map((c, i): PacketCase => {
    const runs = p.docs.map((d) => d.cases[i]!);
    const ns = figure(runs.map((x) => x.ns_per_packet));
    const floor = runs[0]!.mode === 'repeat' ? floorRepeat : floorFlows;
    const retvals: Record<string, number> = {};
    for (const x of runs) for (const [k, n] of Object.entries(x.retvals)) retvals[k] = (retvals[k] ?? 0) + n;
    return {
      name: c.name,
      family: c.family,
      path: c.path,
      mode: runs[0]!.mode,
      packets: runs.reduce((n, x) => n + x.packets, 0),
      nsPerPacket: ns,
      aboveFloorNs: Math.round((ns.median - floor.median) * 10) / 10,
      retvals,
      outSrc: runs[0]!.out_src,
      outDst: runs[0]!.out_dst,
    };
  }));
  for (const p of passes) for (const [k, n] of Object.entries(p.drops)) res.drops[k] = (res.drops[k] ?? 0) + n;
  res.conntrackEntries = passes.find((p) => p.conntrackEntries !== null)?.conntrackEntries ?? null;
  for (const c of res.cases) log(`${String(size).padStart(7)} services  packets: ${`${c.name}/v${c.family}`.padEnd(20)} ${c.nsPerPacket.median} ns/packet (${c.aboveFloorNs >= 0 ? '+' : ''}${c.aboveFloorNs} over the floor)`);
  return res;
}

/** The packet section of the bench document; a size that fails is reported with why, larger ones are skipped. */
export async function runPacketBench(env: BenchEnv, loaderPath: string, cfg: PacketConfig, log: (m: string) => void): Promise<PacketSection> {
  const none = (reason: string): PacketResult[] => cfg.sizes.map((services) => ({ services, status: 'skipped', reason, fillMs: null, floor: null, cases: [], drops: {}, conntrackEntries: null }));
  if (!existsSync(loaderPath)) return { config: cfg, results: none(`not attempted: the loader ${loaderPath} is missing (make -C bpf)`) };
  let bpffs: string;
  let cgroup: string;
  try {
    bpffs = env.mountBpffs('bpffs-packets');
    cgroup = env.v2Cgroup('packets');
  } catch (err) {
    return { config: cfg, results: none(`not attempted: ${(err as Error).message} (the datapath needs a bpffs and a cgroup v2 directory)`) };
  }
  const loader: Loader = (args, input = '', timeoutMs = 600_000) => run(loaderPath, ['--bpffs', bpffs, ...args], { input, timeoutMs });
  const results: PacketResult[] = [];
  let stopped: string | null = null;
  for (const size of cfg.sizes) {
    if (stopped) {
      results.push({ services: size, status: 'skipped', reason: stopped, fillMs: null, floor: null, cases: [], drops: {}, conntrackEntries: null });
      continue;
    }
    try {
      results.push(await oneSize(loader, cgroup, size, cfg, log));
    } catch (err) {
      const reason = (err as Error).message.split('\n')[0] ?? 'failed';
      stopped = `not attempted: ${size} services failed`;
      log(`${String(size).padStart(7)} services  packets: failed: ${reason}`);
      results.push({ services: size, status: 'failed', reason, fillMs: null, floor: null, cases: [], drops: {}, conntrackEntries: null });
    }
  }
  return { config: cfg, results };
}
