// `datapath selftest`: prove on the node itself that the datapath works, in namespaces the test
// makes and removes (selftest-script.ts): both backends of a service answer (random within binomial
// bounds, Maglev by its table's shares, affinity sticking to one), the client sees the VIP as its
// peer, an allowed flow passes, denied flows are dropped and counted with their reason, removing a
// backend takes effect at once, and nothing is left afterwards. The selftest installs its own
// instance (tc on its switch ports), so it refuses to run where the datapath is already installed.
import { z } from 'zod';
import { NodeRefusal } from '../errors.js';
import type { Host } from '../host/host.js';
import { backendSlots, compileState, type MapEntry } from './compile.js';
import { ensureLoader, loader, StatusDoc } from './loader.js';
import { maglevTable } from './maglev.js';
import { parseIpv4 } from './ip.js';
import { DatapathStateSchema, type DatapathState } from './schema.js';
import { applyCommands, nsName, parseBlocks, selftestScript, type ScriptStep, type SelftestHost, type StepBlock } from './selftest-script.js';
import { deleteEntries, incrementalSync } from './sync.js';

/** One step's verdict. */
export interface SelftestStep {
  name: string;
  pass: boolean;
  ms: number;
  detail: string;
}

export interface SelftestResult {
  pass: boolean;
  steps: SelftestStep[];
}

export interface SelftestOptions {
  /** connections per distribution check (default 200) */
  connections?: number;
}

const NET = '198.18.0';
const VIP = '198.18.1';
const PORT = 8080;
const DENIED_PORT = 9090;
const UNLISTED_PORT = 7070;
const LABEL = 'prep-node.io/selftest';
const refused = (errno: string | number | null | undefined) => errno === 'ECONNREFUSED' || errno === 111;

export const SELFTEST_HOSTS: SelftestHost[] = [
  { name: 'c', ip: `${NET}.1`, serve: [] },
  { name: 'b1', ip: `${NET}.11`, serve: [PORT] },
  { name: 'b2', ip: `${NET}.12`, serve: [PORT] },
];

/** The selftest's desired state: three endpoints, three services over b1 and b2, one policy on the backends. */
export function selftestState(withB2 = true): DatapathState {
  const backends = [{ ip: `${NET}.11`, port: PORT }, ...(withB2 ? [{ ip: `${NET}.12`, port: PORT }] : [])];
  return DatapathStateSchema.parse({
    endpoints: [
      { name: 'st-client', ip: `${NET}.1`, labels: { [LABEL]: 'client' } },
      { name: 'st-b1', ip: `${NET}.11`, labels: { [LABEL]: 'backend' } },
      { name: 'st-b2', ip: `${NET}.12`, labels: { [LABEL]: 'backend' } },
    ],
    services: [
      { name: 'st-random', vip: `${VIP}.1`, port: PORT, protocol: 'tcp', backends },
      { name: 'st-maglev', vip: `${VIP}.2`, port: PORT, protocol: 'tcp', algorithm: 'maglev', backends },
      { name: 'st-affinity', vip: `${VIP}.3`, port: PORT, protocol: 'tcp', backends, sessionAffinity: { timeoutSeconds: 60 } },
    ],
    policies: [
      {
        name: 'st-backends',
        selector: { [LABEL]: 'backend' },
        ingress: [
          { from: [{ selector: { [LABEL]: 'client' } }], ports: [{ port: PORT, protocol: 'tcp' }] },
          { action: 'deny', from: [{ selector: { [LABEL]: 'client' } }], ports: [{ port: DENIED_PORT, protocol: 'tcp' }] },
        ],
      },
    ],
  });
}

/** mean ± k standard deviations of a binomial(n, p) count, widened to whole numbers. */
export function binomialBounds(n: number, p: number, k = 4): [number, number] {
  const mean = n * p;
  const sd = Math.sqrt(n * p * (1 - p));
  return [Math.max(0, Math.floor(mean - k * sd)), Math.min(n, Math.ceil(mean + k * sd))];
}

const ProbeDoc = z.looseObject({
  results: z.array(
    z.looseObject({
      ok: z.boolean(),
      /** an errno name ("ETIMEDOUT") or null */
      errno: z.union([z.string(), z.number()]).nullable().optional(),
      /** "NAME <peer seen by the server>" */
      reply: z.string().nullable().optional(),
      /** getpeername(): what the application sees */
      peer: z.string().nullable().optional(),
    }),
  ),
});
type Probe = z.output<typeof ProbeDoc>['results'];

function probeResults(b: StepBlock | undefined): Probe | string {
  if (!b) return 'did not run';
  try {
    return ProbeDoc.parse(JSON.parse(b.stdout)).results;
  } catch {
    return `probe printed no results (exit ${b.rc}): ${(b.stderr || b.stdout).split('\n')[0]?.slice(0, 160) ?? ''}`;
  }
}

/** Replies per backend name ("NAME <peer seen by the server>"). */
function byBackend(results: Probe): Map<string, number> {
  const out = new Map<string, number>();
  for (const r of results) if (r.ok && r.reply) out.set(r.reply.split(' ')[0]!, (out.get(r.reply.split(' ')[0]!) ?? 0) + 1);
  return out;
}

function countsText(m: Map<string, number>): string {
  return [...m].map(([k, v]) => `${k} ${v}`).join(', ') || 'none';
}

/** Judge a load-balancing probe: all connected, each backend's count within its bounds, the VIP seen as peer. */
export function judgeDistribution(b: StepBlock | undefined, vip: string, shares: Record<string, number>, clientIp: string): Omit<SelftestStep, 'name' | 'ms'> {
  const results = probeResults(b);
  if (typeof results === 'string') return { pass: false, detail: results };
  const n = results.length;
  const failed = results.filter((r) => !r.ok);
  if (n === 0) return { pass: false, detail: 'no connections made' };
  if (failed.length > 0) return { pass: false, detail: `${failed.length}/${n} connections failed (errno ${failed[0]!.errno ?? '?'})` };
  const wrongPeer = results.find((r) => r.peer !== vip);
  if (wrongPeer) return { pass: false, detail: `getpeername() gave ${wrongPeer.peer ?? 'nothing'}, expected the VIP ${vip}` };
  const wrongSource = results.find((r) => r.reply?.split(' ')[1]?.split(':')[0] !== clientIp);
  if (wrongSource) return { pass: false, detail: `a backend saw the connection from ${wrongSource.reply?.split(' ')[1] ?? '?'}, expected the client ${clientIp}` };
  const counts = byBackend(results);
  for (const [name, p] of Object.entries(shares)) {
    const [lo, hi] = binomialBounds(n, p);
    const got = counts.get(name) ?? 0;
    if (got < lo || got > hi) return { pass: false, detail: `${name} got ${got}/${n}, expected ${lo}-${hi} (share ${p.toFixed(3)} ± 4σ): ${countsText(counts)}` };
  }
  const stray = [...counts.keys()].find((k) => !(k in shares));
  if (stray) return { pass: false, detail: `unexpected backend ${stray}: ${countsText(counts)}` };
  return { pass: true, detail: `${n} connections to ${vip}: ${countsText(counts)}; peer ${vip}` };
}

/** Judge a session-affinity probe: every connection to the same backend. */
export function judgeAffinity(b: StepBlock | undefined, vip: string): Omit<SelftestStep, 'name' | 'ms'> {
  const results = probeResults(b);
  if (typeof results === 'string') return { pass: false, detail: results };
  const counts = byBackend(results);
  const failed = results.filter((r) => !r.ok).length;
  if (failed > 0 || results.length === 0) return { pass: false, detail: `${failed}/${results.length} connections failed` };
  if (counts.size !== 1) return { pass: false, detail: `one client reached ${counts.size} backends with affinity on: ${countsText(counts)}` };
  return { pass: true, detail: `${results.length} connections to ${vip} all reached ${countsText(counts)}` };
}

/** Judge an allowed flow: every connection succeeded. */
export function judgeAllowed(b: StepBlock | undefined, target: string): Omit<SelftestStep, 'name' | 'ms'> {
  const results = probeResults(b);
  if (typeof results === 'string') return { pass: false, detail: results };
  const failed = results.filter((r) => !r.ok);
  if (results.length === 0 || failed.length > 0) return { pass: false, detail: `${failed.length}/${results.length} connections to ${target} failed (errno ${failed[0]?.errno ?? '?'})` };
  return { pass: true, detail: `${results.length} connections to ${target} passed` };
}

function dropCount(b: StepBlock | undefined, reason: string): number | string {
  if (!b) return 'status did not run';
  try {
    const s = StatusDoc.parse(JSON.parse(b.stdout));
    return s.drops[reason] ?? s.drops[`DROP_${reason}`] ?? 0;
  } catch {
    return `status printed no JSON: ${(b.stderr || b.stdout).split('\n')[0]?.slice(0, 160) ?? ''}`;
  }
}

/** Judge a denied flow: the connection did not get through (no RST from a closed port), and the reason's counter rose. */
export function judgeDenied(before: StepBlock | undefined, probe: StepBlock | undefined, after: StepBlock | undefined, target: string, reason: string): Omit<SelftestStep, 'name' | 'ms'> {
  const results = probeResults(probe);
  if (typeof results === 'string') return { pass: false, detail: results };
  const through = results.find((r) => r.ok || refused(r.errno));
  if (through || results.length === 0) return { pass: false, detail: `a connection to ${target} got through the policy (${through?.ok ? 'connected' : 'refused by the closed port'})` };
  const [n0, n1] = [dropCount(before, reason), dropCount(after, reason)];
  if (typeof n0 === 'string') return { pass: false, detail: n0 };
  if (typeof n1 === 'string') return { pass: false, detail: n1 };
  if (n1 <= n0) return { pass: false, detail: `connection to ${target} failed (errno ${results[0]!.errno ?? '?'}) but drops ${reason} stayed at ${n1}` };
  return { pass: true, detail: `${target} dropped (errno ${results[0]!.errno ?? '?'}); drops ${reason} ${n0} → ${n1}` };
}

const entrySet = (entries: readonly MapEntry[]) => {
  const out: Partial<Record<MapEntry['map'], Map<string, string>>> = {};
  for (const e of entries) (out[e.map] ??= new Map()).set(e.keyHex, e.valueHex);
  return out;
};

/** Maglev table shares per backend name for the selftest's maglev service. */
function maglevShares(state: DatapathState): Record<string, number> {
  const svc = state.services.find((s) => s.algorithm === 'maglev')!;
  const slots = backendSlots(svc);
  const table = maglevTable(slots.map((b) => ({ addr: Number(b.addr), port: b.port, weight: b.weight, slot: b.firstSlot })));
  const name = (addr: bigint) => SELFTEST_HOSTS.find((h) => BigInt(parseIpv4(h.ip)!) === addr)!.name;
  const out: Record<string, number> = {};
  for (const b of slots) out[name(b.addr)] = table.filter((s) => s === b.firstSlot).length / table.length;
  return out;
}

/** The steps the script runs after topology and servers, and how each is judged. */
export function selftestPlan(bin: string, options: SelftestOptions = {}): { script: string; judge: (blocks: StepBlock[]) => SelftestStep[] } {
  const n = options.connections ?? 200;
  const full = compileState(selftestState(true)).entries;
  const reduced = compileState(selftestState(false)).entries;
  const client = nsName('c');
  const probe = (target: string, count: number, timeoutMs = 2000) => `ip netns exec ${client} "$DP" probe --connect ${target} --count ${count} --timeout-ms ${timeoutMs}`;
  const b1 = `${NET}.11`;
  const steps: ScriptStep[] = [
    {
      name: 'install',
      critical: true,
      // in the switch namespace, where the tc devices are; the loader records it, and remove runs there too
      commands: [
        `out=$(in_switch "$DP" install ${SELFTEST_HOSTS.map((h) => `--tc-dev sw-${h.name}`).join(' ')}); rc=$?`,
        'printf \'%s\\n\' "$out"',
        '[ $rc = 0 ] || return $rc',
        'case "$out" in *\'"already_installed":true\'*) echo "the datapath was installed meanwhile: not touching it" >&2; return 1;; esac',
        'INSTALLED=1',
      ].join('\n'),
    },
    { name: 'apply', critical: true, commands: applyCommands(incrementalSync(full, {}).ops) },
    { name: 'lb-random', commands: probe(`${VIP}.1:${PORT}`, n) },
    { name: 'lb-maglev', commands: probe(`${VIP}.2:${PORT}`, n) },
    { name: 'lb-affinity', commands: probe(`${VIP}.3:${PORT}`, 20) },
    { name: 'policy-allow', commands: probe(`${b1}:${PORT}`, 3) },
    { name: 'policy-deny.before', commands: '"$DP" status' },
    { name: 'policy-deny', commands: probe(`${b1}:${DENIED_PORT}`, 1, 1000) },
    { name: 'policy-deny.after', commands: '"$DP" status' },
    { name: 'policy-default-deny.before', commands: '"$DP" status' },
    { name: 'policy-default-deny', commands: probe(`${b1}:${UNLISTED_PORT}`, 1, 1000) },
    { name: 'policy-default-deny.after', commands: '"$DP" status' },
    { name: 'backend-removed.apply', commands: applyCommands(incrementalSync(reduced, entrySet(full)).ops) },
    { name: 'backend-removed', commands: probe(`${VIP}.1:${PORT}`, 20) },
    { name: 'entries-deleted', commands: applyCommands(deleteEntries(reduced)) },
  ];
  const script = selftestScript({ bin, hosts: SELFTEST_HOSTS, prefixLen: 24, steps });
  const shares = maglevShares(selftestState(true));
  const clientIp = `${NET}.1`;

  const judge = (blocks: StepBlock[]): SelftestStep[] => {
    const get = (name: string) => blocks.find((b) => b.name === name);
    const ms = (...names: string[]) => names.reduce((t, nm) => t + (get(nm)?.ms ?? 0), 0);
    const ran = (b: StepBlock | undefined, ok: string) => (b ? { pass: b.rc === 0, detail: b.rc === 0 ? ok : `exit ${b.rc}: ${(b.stderr || b.stdout).split('\n').pop()?.slice(0, 200) ?? ''}` } : { pass: false, detail: 'did not run' });
    const out: SelftestStep[] = [];
    const add = (name: string, v: Omit<SelftestStep, 'name' | 'ms'>, time = ms(name)) => out.push({ name, ms: time, ...v });
    add('topology', ran(get('topology'), `namespaces ${SELFTEST_HOSTS.map((h) => nsName(h.name)).join(', ')} behind a bridge in ${nsName('sw')}`));
    add('servers', ran(get('servers'), `prep-node-dp serve listening on ${SELFTEST_HOSTS.filter((h) => h.serve.length).map((h) => `${h.ip}:${h.serve.join(',')}`).join(', ')}`));
    add('install', ran(get('install'), 'installed with tc on the switch ports'));
    add('apply', ran(get('apply'), `${full.length} entries written`));
    add('lb-random', judgeDistribution(get('lb-random'), `${VIP}.1:${PORT}`, { b1: 0.5, b2: 0.5 }, clientIp));
    add('lb-maglev', judgeDistribution(get('lb-maglev'), `${VIP}.2:${PORT}`, shares, clientIp));
    add('lb-affinity', judgeAffinity(get('lb-affinity'), `${VIP}.3:${PORT}`));
    add('policy-allow', judgeAllowed(get('policy-allow'), `${b1}:${PORT}`));
    add('policy-deny', judgeDenied(get('policy-deny.before'), get('policy-deny'), get('policy-deny.after'), `${b1}:${DENIED_PORT}`, 'POLICY_DENY'), ms('policy-deny'));
    add('policy-default-deny', judgeDenied(get('policy-default-deny.before'), get('policy-default-deny'), get('policy-default-deny.after'), `${b1}:${UNLISTED_PORT}`, 'POLICY_DEFAULT_DENY'), ms('policy-default-deny'));
    const removedApply = get('backend-removed.apply');
    const removed = removedApply && removedApply.rc !== 0 ? ran(removedApply, '') : judgeDistribution(get('backend-removed'), `${VIP}.1:${PORT}`, { b1: 1 }, clientIp);
    add('backend-removed', removed, ms('backend-removed.apply', 'backend-removed'));
    add('entries-deleted', ran(get('entries-deleted'), `${reduced.length} entries deleted`));
    add('cleanup', ran(get('cleanup'), 'servers stopped, datapath removed, namespaces deleted'));
    add('nothing-left', ran(get('nothing-left'), 'no namespace, process or datapath left'));
    return out;
  };
  return { script, judge };
}

/** Run the selftest on a node where the datapath is not installed; the steps and whether all passed. */
export async function selftest(host: Host, options: SelftestOptions = {}): Promise<SelftestResult> {
  const bin = await ensureLoader(host);
  const st = await loader.status(host);
  if (st.installed) {
    throw new NodeRefusal(host.name, 'the datapath is installed: the selftest installs its own instance in throwaway namespaces and removes it; run it before `datapath install` or after `datapath remove`');
  }
  const plan = selftestPlan(bin, options);
  const r = await host.run('sh -s', { sudo: true, stdin: plan.script, timeoutMs: 300_000 });
  const steps = plan.judge(parseBlocks(r.stdout));
  return { pass: steps.every((s) => s.pass), steps };
}
