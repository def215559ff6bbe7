// `prep-node bench --agent`: the agent (`prep-node agent`, the real CLI, as a child process) against
// the loopback stand-in for kube-apiserver (fake-apiserver.ts, served from this process), writing
// real pinned maps: a datapath installed by the loader in a private mount namespace with its own
// bpffs (nothing of the machine's own datapath is touched) and a cgroup of its own.
//
//   initial sync   N Services, one EndpointSlice of E endpoints each, P Pods: spawn → /readyz 200,
//                  and the agent's own "endpoints listening" → "full sync" log lines; RSS then
//   churn          R EndpointSlice changes per second for S seconds (one endpoint's ready condition
//                  flipped: a backend removed or added back), then until every change is written:
//                  event received → map written p50/p99/max from the agent's exact observations
//                  (its /latency endpoint), its CPU (utime+stime / wall) and RSS
//   baseline       the same agent against an API server holding only its Node and a Namespace:
//                  RSS once ready (what Node.js and client-node cost before any object is held)
//   nftables       beside it, kube-proxy's nftables mode (kube-nftables.ts) applying one endpoint
//                  change to a table of the same N services: the partial-sync transaction (the
//                  service chain rewritten, the endpoint's chain deleted or added) through `nft -f`,
//                  spawn to exit, in a network namespace of its own
//
// The latency is what the agent measures (event parsed → batch written); the API server's send and
// the watch stream's transfer are not in it. The agent and this process share the machine's cores.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { endpointSlice, FakeApiServer, namespace, node, pod, service } from './fake-apiserver.js';
import { run, runSync, track, why } from './exec.js';
import { cgroupV2Root } from './env.js';
import { NFT_DELETE_TABLE, endpointChain, nftFull, serviceChain, NFT_TABLE } from './kube-nftables.js';
import { benchServices, CLUSTER_CIDR, type BenchService } from './services.js';
import { figure } from './stats.js';
import type { Figure } from './schema.js';

export interface AgentBenchOptions {
  services: number;
  endpointsPer: number;
  pods: number;
  /** changes per second, one churn phase each */
  rates: number[];
  churnSeconds: number;
  /** nft runs for the one-endpoint-change figure (0: not measured) */
  nftRuns: number;
  /** node options for the agent child (PREP_NODE_BENCH_AGENT_NODE_ARGS, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`) */
  agentNodeArgs?: string;
  cli: string;
  loader: string;
  nft: string;
  log: (line: string) => void;
}

export interface ChurnFigures {
  rate: number;
  seconds: number;
  /** changes applied to the fake API server */
  changes: number;
  /** changes the agent wrote (histogram count delta) */
  written: number;
  /** syncs (batches) they went out in */
  syncs: number;
  /** event → map written, seconds, exact (the agent's own observations, /latency); null: none */
  p50S: number | null;
  p99S: number | null;
  maxS: number | null;
  /** observations the agent's ring no longer held when read (0: the percentiles are of every change) */
  lost: number;
  /** the agent's CPU over the churn and the drain after it, percent of one core */
  cpuPct: number;
  /** wall seconds from the first change to the last one written */
  drainedS: number;
  rssBytes: number;
}

export interface AgentBenchDoc {
  schema: 'prep-node/bench-agent/v2';
  started: string;
  durationS: number;
  config: Omit<AgentBenchOptions, 'cli' | 'loader' | 'nft' | 'log' | 'agentNodeArgs'>;
  /** the agent with nothing to hold (its Node and one Namespace): RSS once ready */
  baseline: { rssBytes: number };
  /** namesS: after ready, until the names index was first written (churn starts after it) */
  initial: { readyS: number; namesS: number; listToFullSyncS: number | null; rssBytes: number; peakRssBytes: number; entries: Record<string, number> };
  churn: ChurnFigures[];
  /** kube-proxy nftables: one endpoint change at the same number of services (ms, spawn to exit), or why not */
  nftables: { services: number; endpointChangeMs: Figure; fullMs: number } | { unavailable: string };
  peakRssBytes: number;
  /** the machine's load average (1 min) at the start and the end: the agent shares the cores */
  loadavg: [number, number];
  notes: string[];
}

type Obj = Record<string, unknown>;

const NODE = 'node-a';

/** The cluster: services, their slices, pods spread over 50 nodes (this one holds 1 in 50). */
function cluster(fake: FakeApiServer, set: readonly BenchService[], pods: number): void {
  fake.apply(namespace('bench'));
  fake.apply(node(NODE, '198.18.0.1'));
  for (const s of set) {
    fake.apply(service(s.namespace, s.name, s.vip, [{ name: s.portName, port: s.port, targetPort: s.endpoints[0]!.port }], { selector: { app: s.name } }));
    fake.apply(slice(s, -1));
  }
  const eps = set.flatMap((s) => s.endpoints.map((e) => ({ s, e })));
  for (let i = 0; i < pods && i < eps.length; i++) {
    const { s, e } = eps[i]!;
    fake.apply(pod(s.namespace, `${s.name}-${i}`, e.ip, { app: s.name }, { nodeName: i % 50 === 0 ? NODE : `node-${i % 50}` }));
  }
}

/** Service s's slice; endpoint `down` (if ≥ 0) not ready. */
function slice(s: BenchService, down: number): Obj {
  return endpointSlice(s.namespace, s.name, 'a', [{ name: s.portName, port: s.endpoints[0]!.port }], s.endpoints.map((e, k) => ({ ip: e.ip, ready: k !== down })));
}

function procStat(pid: number): { cpuS: number; rss: number; hwm: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0) * 1024;
  // fields 14 and 15 (utime, stime) are 11 and 12 after the command; clock ticks of 1/100 s
  return { cpuS: (Number(f[11]) + Number(f[12])) / 100, rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

interface Histogram {
  buckets: [number, number][];
  count: number;
}

function histogram(text: string): Histogram {
  const buckets: [number, number][] = [];
  let count = 0;
  for (const l of text.split('\n')) {
    const b = /^prep_node_agent_event_to_map_seconds_bucket\{le="([^"]+)"\} (\S+)$/.exec(l);
    if (b) buckets.push([b[1] === '+Inf' ? Infinity : Number(b[1]), Number(b[2])]);
    const c = /^prep_node_agent_event_to_map_seconds_count (\S+)$/.exec(l);
    if (c) count = Number(c[1]);
  }
  return { buckets, count };
}

const metricSum = (text: string, name: string) =>
  text
    .split('\n')
    .filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `))
    .reduce((n, l) => n + Number(l.split(' ').pop()), 0);

/** Exact percentiles (nearest rank) and the maximum of observations, seconds. */
export function exactQuantiles(xs: readonly number[]): { p50S: number | null; p99S: number | null; maxS: number | null } {
  if (xs.length === 0) return { p50S: null, p99S: null, maxS: null };
  const s = Float64Array.from(xs).sort();
  const at = (q: number) => s[Math.max(0, Math.ceil(q * s.length) - 1)]!;
  return { p50S: at(0.5), p99S: at(0.99), maxS: s[s.length - 1]! };
}

class AgentChild {
  readonly proc: ChildProcess;
  listen = '';
  readonly lines: Obj[] = [];
  constructor(cli: string, loader: string, kubeconfig: string, cgroup: string, caps: string, nodeArgs = '') {
    const script = `set -e
mount --make-rprivate /
mount -t bpf bpf /sys/fs/bpf
mkdir -p /var/lib/prep-node && mount -t tmpfs tmpfs /var/lib/prep-node
${loader} install --cap ${caps} --cgroup ${cgroup} >/dev/null
exec ${process.execPath} ${nodeArgs} ${cli} agent --kubeconfig ${kubeconfig} --node-name ${NODE} --listen 127.0.0.1:0 --log-format json`;
    this.proc = track(spawn('unshare', ['--mount', 'sh', '-c', script], { stdio: ['ignore', 'ignore', 'pipe'] }));
    createInterface(this.proc.stderr!).on('line', (l) => {
      try {
        const o = JSON.parse(l) as Obj;
        this.lines.push(o);
        if (typeof o.listen === 'string') this.listen = o.listen;
      } catch {
        this.lines.push({ raw: l });
      }
    });
  }
  async latency(since?: number): Promise<{ next: number; lost: number; seconds: number[] }> {
    return JSON.parse((await this.get(`/latency${since === undefined ? '' : `?since=${since}`}`)).body) as { next: number; lost: number; seconds: number[] };
  }
  async get(path: string): Promise<{ status: number; body: string }> {
    const r = await fetch(`http://${this.listen}${path}`);
    return { status: r.status, body: await r.text() };
  }
  time(re: RegExp): number | null {
    const l = this.lines.find((x) => re.test(String(x.msg)));
    return l ? Date.parse(String(l.time)) : null;
  }
  stop(): Promise<void> {
    return new Promise((res) => {
      if (this.proc.exitCode !== null || this.proc.signalCode !== null) return res();
      this.proc.once('exit', () => res());
      this.proc.kill('SIGTERM');
    });
  }
}

async function waitFor(what: string, cond: () => boolean | Promise<boolean>, ms: number, child?: AgentChild): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (child && (child.proc.exitCode !== null || child.proc.signalCode !== null)) throw new Error(`the agent exited while waiting for ${what}: ${JSON.stringify(child.lines.slice(-3))}`);
    if (Date.now() > end) throw new Error(`timed out after ${ms / 1000} s waiting for ${what}`);
    await sleep(100);
  }
}

/** kube-proxy nftables' partial sync when one endpoint of `s` goes away (down ≥ 0) or comes back (down = -1). */
export function nftEndpointChange(s: BenchService, down: number, changed: number): string {
  const T = NFT_TABLE;
  const svc = serviceChain(s);
  const eps = s.endpoints.filter((_, k) => k !== down);
  const ep = s.endpoints[changed]!;
  const epChain = endpointChain(s, ep);
  const lines = [
    ...(down < 0 ? [`add chain ${T} ${epChain}`, `add rule ${T} ${epChain} ip saddr ${ep.ip} jump mark-for-masquerade`, `add rule ${T} ${epChain} meta l4proto tcp dnat to ${ep.ip}:${ep.port}`] : []),
    `flush chain ${T} ${svc}`,
    `add rule ${T} ${svc} ip daddr ${s.vip} tcp dport ${s.port} ip saddr != ${CLUSTER_CIDR} jump mark-for-masquerade`,
    `add rule ${T} ${svc} numgen random mod ${eps.length} vmap { ${eps.map((e, i) => `${i} : goto ${endpointChain(s, e)}`).join(' , ')} }`,
    ...(down >= 0 ? [`flush chain ${T} ${epChain}`, `delete chain ${T} ${epChain}`] : []),
    '',
  ];
  return lines.join('\n');
}

async function nftables(o: AgentBenchOptions, set: readonly BenchService[]): Promise<AgentBenchDoc['nftables']> {
  const ns = `pn-bench-agent-nft-${process.pid}`;
  const nft = (input: string) => run('ip', ['netns', 'exec', ns, o.nft, '-f', '-'], { input, timeoutMs: 300_000 });
  if (o.nftRuns === 0) return { unavailable: 'not asked for (--runs 0)' };
  const add = await run('ip', ['netns', 'add', ns]);
  if (add.code !== 0) return { unavailable: `ip netns add: ${why(add)}` };
  try {
    const full = await nft(nftFull(set, ['198.18.0.1']));
    if (full.code !== 0) return { unavailable: `nft -f (the full table): ${why(full)}` };
    const times: number[] = [];
    const s = set[set.length - 1]!;
    for (let r = 0; r < o.nftRuns; r++) {
      const down = await nft(nftEndpointChange(s, 0, 0));
      if (down.code !== 0) return { unavailable: `nft -f (an endpoint removed): ${why(down)}` };
      const up = await nft(nftEndpointChange(s, -1, 0));
      if (up.code !== 0) return { unavailable: `nft -f (an endpoint back): ${why(up)}` };
      times.push(down.ms, up.ms);
    }
    await nft(NFT_DELETE_TABLE);
    return { services: set.length, endpointChangeMs: figure(times), fullMs: full.ms };
  } finally {
    await run('ip', ['netns', 'del', ns]);
  }
}

export async function runAgentBench(o: AgentBenchOptions): Promise<AgentBenchDoc> {
  const started = new Date();
  const t0 = Date.now();
  const load0 = loadavg()[0]!;
  const log = (m: string) => o.log(`[${String(Math.round((Date.now() - t0) / 1000)).padStart(4)} s] agent: ${m}`);
  const root = cgroupV2Root();
  if (!root) throw new Error('the agent bench needs a cgroup v2 mount (the datapath attaches its socket programs to a cgroup)');
  const cg = join(root, `pn-bench-agent-${process.pid}`);
  const dir = mkdtempSync(join(tmpdir(), 'pn-bench-agent-'));
  const fake = new FakeApiServer();
  let child: AgentChild | null = null;
  let peak = 0;
  try {
    mkdirSync(cg, { recursive: true });
    const set = benchServices(o.services, o.endpointsPer);
    cluster(fake, set, o.pods);
    await fake.start();
    const kc = join(dir, 'kubeconfig');
    fake.writeKubeconfig(kc);
    log(`${o.services} services, ${o.services * o.endpointsPer} endpoints, ${Math.min(o.pods, o.services * o.endpointsPer)} pods on the fake API server; starting the agent`);

    // ---- baseline: the agent holding nothing (its Node, one Namespace)
    const empty = new FakeApiServer();
    let baseline: AgentBenchDoc['baseline'];
    try {
      empty.apply(namespace('bench'));
      empty.apply(node(NODE, '198.18.0.1'));
      await empty.start();
      const ekc = join(dir, 'kubeconfig-empty');
      empty.writeKubeconfig(ekc);
      child = new AgentChild(o.cli, o.loader, ekc, cg, 'services=65536,backends=65536');
      const e = child;
      await waitFor('the empty agent ready', async () => e.listen !== '' && (await e.get('/readyz').catch(() => ({ status: 0 }))).status === 200, 120_000, e);
      // settled: the first GCs after start
      await sleep(3000);
      baseline = { rssBytes: procStat(e.proc.pid!).rss };
      await e.stop();
      child = null;
    } finally {
      await empty.stop();
    }
    log(`baseline: the agent holding nothing, RSS ${(baseline.rssBytes / 2 ** 20).toFixed(0)} MiB once ready`);

    // ---- initial sync
    const slots = o.services * (o.endpointsPer + 1);
    const caps = `services=${Math.max(65_536, 2 * slots)},backends=${Math.max(65_536, 2 * o.services * o.endpointsPer)}`;
    const spawned = Date.now();
    child = new AgentChild(o.cli, o.loader, kc, cg, caps, o.agentNodeArgs);
    const c = child;
    await waitFor('the agent ready', async () => c.listen !== '' && (await c.get('/readyz').catch(() => ({ status: 0 }))).status === 200, 600_000, c);
    const readyS = (Date.now() - spawned) / 1000;
    const listening = c.time(/^endpoints listening/);
    const fullSync = c.time(/^full sync/);
    const pid = c.proc.pid!;
    const st0 = procStat(pid);
    peak = st0.hwm;
    const m0 = (await c.get('/metrics')).body;
    const entries: Record<string, number> = {};
    for (const l of m0.split('\n')) {
      const e = /^prep_node_agent_map_entries\{map="([^"]+)"\} (\d+)$/.exec(l);
      if (e && Number(e[2]) > 0) entries[e[1]!] = Number(e[2]);
    }
    // the names index is built once after the first sync (a whole translate on this branch, on the
    // agent's one thread): churn starts after it, so it is not counted as churn latency
    await waitFor('the names index written', async () => metricSum((await c.get('/metrics')).body, 'prep_node_agent_names_written_total') >= 1, 600_000, c);
    const namesS = (Date.now() - spawned) / 1000 - readyS;
    const initial = { readyS, namesS, listToFullSyncS: listening !== null && fullSync !== null ? (fullSync - listening) / 1000 : null, rssBytes: st0.rss, peakRssBytes: st0.hwm, entries };
    log(`ready after ${readyS.toFixed(1)} s (lists → full sync ${initial.listToFullSyncS?.toFixed(1) ?? '?'} s), names index ${namesS.toFixed(1)} s later, RSS ${(st0.rss / 2 ** 20).toFixed(0)} MiB (peak ${(st0.hwm / 2 ** 20).toFixed(0)} MiB)`);

    // ---- churn
    const churn: ChurnFigures[] = [];
    const down = new Map<number, number>();
    let next = 0;
    for (const rate of o.rates) {
      const before = histogram((await c.get('/metrics')).body);
      const since = (await c.latency()).next;
      const syncsBefore = metricSum((await c.get('/metrics')).body, 'prep_node_agent_syncs_total');
      const s0 = procStat(pid);
      const w0 = Date.now();
      let changes = 0;
      // ticks of 10 ms; each applies the changes due by then (a steady rate, not bursts of a second)
      const total = rate * o.churnSeconds;
      while (changes < total) {
        const due = Math.min(total, Math.floor(((Date.now() - w0) / 1000) * rate));
        for (; changes < due; changes++) {
          // a different service each time, its first endpoint flipped
          const i = (next = (next + 7919) % set.length);
          const d = down.get(i) === 0 ? -1 : 0;
          down.set(i, d);
          fake.apply(slice(set[i]!, d));
        }
        await sleep(10);
      }
      await waitFor(`the ${total} changes at ${rate}/s written`, async () => histogram((await c.get('/metrics')).body).count - before.count >= total, 600_000, c);
      const drainedS = (Date.now() - w0) / 1000;
      const s1 = procStat(pid);
      const text = (await c.get('/metrics')).body;
      const after = histogram(text);
      const lat = await c.latency(since);
      peak = Math.max(peak, s1.hwm);
      const f: ChurnFigures = {
        rate,
        seconds: o.churnSeconds,
        changes: total,
        written: after.count - before.count,
        syncs: metricSum(text, 'prep_node_agent_syncs_total') - syncsBefore,
        ...exactQuantiles(lat.seconds),
        lost: lat.lost,
        cpuPct: Math.round(((s1.cpuS - s0.cpuS) / drainedS) * 1000) / 10,
        drainedS,
        rssBytes: s1.rss,
      };
      churn.push(f);
      log(`${rate}/s for ${o.churnSeconds} s: ${f.written} changes in ${f.syncs} syncs, p50 ${ms(f.p50S)}, p99 ${ms(f.p99S)}, max ${ms(f.maxS)}, CPU ${f.cpuPct}% of a core, all written after ${drainedS.toFixed(1)} s, RSS ${(s1.rss / 2 ** 20).toFixed(0)} MiB`);
    }
    peak = Math.max(peak, procStat(pid).hwm);
    await c.stop();
    child = null;

    // ---- kube-proxy nftables, one endpoint change at the same size
    log(`kube-proxy nftables: the table of ${o.services} services, then ${o.nftRuns * 2} endpoint changes`);
    const nf = await nftables(o, set);
    if ('unavailable' in nf) log(`nftables not measured: ${nf.unavailable}`);
    else log(`nftables: one endpoint change ${nf.endpointChangeMs.median.toFixed(1)} ms (median of ${nf.endpointChangeMs.runs.length}), the full table ${(nf.fullMs / 1000).toFixed(1)} s`);

    return {
      schema: 'prep-node/bench-agent/v2',
      started: started.toISOString(),
      durationS: Math.round((Date.now() - t0) / 1000),
      config: { services: o.services, endpointsPer: o.endpointsPer, pods: o.pods, rates: o.rates, churnSeconds: o.churnSeconds, nftRuns: o.nftRuns },
      baseline,
      initial,
      churn,
      nftables: nf,
      peakRssBytes: peak,
      loadavg: [Math.round(load0 * 10) / 10, Math.round(loadavg()[0]! * 10) / 10],
      notes: [
        'The agent is the real CLI (`prep-node agent`) as a child process, writing real pinned maps through libbpf, in a private mount namespace with its own bpffs; the API server is the loopback stand-in (src/bench/fake-apiserver.ts), served from the bench process on the same cores.',
        'Event → map written is the agent\'s own exact observation of each change (its /latency endpoint; the same observations feed the prep_node_agent_event_to_map_seconds histogram): from the event handed over by client-node (its JSON parsed) to its batch written; p50/p99 are nearest-rank percentiles, max the largest.',
        'baseline: the same agent against an API server holding only its Node and one Namespace, RSS 3 s after ready: what Node.js, client-node and the agent cost before any object is held.',
        'nftables: kube-proxy\'s partial sync for one endpoint change (the service chain flushed and rewritten, the endpoint chain deleted or added) as one `nft -f` transaction, timed from spawn (through ip netns exec) to exit.',
      ],
    };
  } finally {
    if (child) {
      child.proc.kill('SIGKILL');
      await sleep(200);
    }
    await fake.stop();
    rmSync(dir, { recursive: true, force: true });
    for (let i = 0; i < 20; i++) {
      try {
        rmdirSync(cg);
        break;
      } catch {
        await sleep(100);
      }
    }
  }
}

/** From a signal handler, after killAll(): the run's nftables namespace and cgroup, by name (synchronous). */
export function cleanupAgentBench(pid = process.pid): void {
  runSync('ip', ['netns', 'del', `pn-bench-agent-nft-${pid}`]);
  const root = cgroupV2Root();
  for (let i = 0; root && i < 20; i++) {
    try {
      rmdirSync(join(root, `pn-bench-agent-${pid}`));
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      // the killed agent leaves the cgroup a moment later
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
    }
  }
}

/** Seconds as milliseconds with 3 significant digits ("0.213 ms", "41.2 ms"). */
export const ms = (s: number | null): string => (s === null ? '-' : `${Number((s * 1000).toPrecision(3))} ms`);

/** The report's lines (text). */
export function renderAgentText(d: AgentBenchDoc): string {
  const mib = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;
  const t = (s: number | null) => ms(s);
  const out = [
    `agent: ${d.config.services} services, ${d.config.services * d.config.endpointsPer} endpoints, ${d.config.pods} pods (fake API server, real pinned maps)`,
    `  initial sync: ready ${d.initial.readyS.toFixed(1)} s after spawn (lists → full sync ${d.initial.listToFullSyncS?.toFixed(1) ?? '?'} s; names index ${d.initial.namesS.toFixed(1)} s later), RSS ${mib(d.initial.rssBytes)}, peak ${mib(d.initial.peakRssBytes)}`,
    `  baseline: the agent holding nothing (its Node, one Namespace), RSS ${mib(d.baseline.rssBytes)}`,
    '  churn        changes  syncs  p50 event→map  p99 event→map  max event→map  CPU (1 core)  all written after  RSS',
    ...d.churn.map((c) => `  ${`${c.rate}/s × ${c.seconds} s`.padEnd(12)} ${String(c.written).padStart(7)}  ${String(c.syncs).padStart(5)}  ${t(c.p50S).padStart(13)}  ${t(c.p99S).padStart(13)}  ${t(c.maxS).padStart(13)}  ${`${c.cpuPct}%`.padStart(12)}  ${`${c.drainedS.toFixed(1)} s`.padStart(17)}  ${mib(c.rssBytes)}${c.lost > 0 ? ` (${c.lost} not kept)` : ''}`),
    'unavailable' in d.nftables
      ? `  kube-proxy nftables: not measured (${d.nftables.unavailable})`
      : `  kube-proxy nftables, one endpoint change at ${d.nftables.services} services: ${d.nftables.endpointChangeMs.median.toFixed(1)} ms median (${d.nftables.endpointChangeMs.min.toFixed(1)}–${d.nftables.endpointChangeMs.max.toFixed(1)}, ${d.nftables.endpointChangeMs.runs.length} runs); the full table ${(d.nftables.fullMs / 1000).toFixed(1)} s`,
    `  peak RSS ${mib(d.peakRssBytes)}; ${d.durationS} s in all; load average ${d.loadavg[0]} at the start, ${d.loadavg[1]} at the end (${cpus().length} CPUs)`,
  ];
  return `${out.join('\n')}\n`;
}
