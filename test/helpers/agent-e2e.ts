// Driver of test/kernel/agent-e2e.test.ts, run as root inside a private mount namespace (its own
// bpffs on /sys/fs/bpf, a tmpfs on /var/lib/prep-node) that the test creates. It builds network
// namespaces, installs the datapath with the loader, serves the cluster from the fake API server on
// 127.0.0.1, runs `prep-node agent` as a child process, and prints one JSON line per step observed.
// Everything it creates is removed in `finally`.
//
//     pnag-fe  [eth0 198.18.2.10] ── sw-fe  ──┐
//     pnag-be1 [eth0 198.18.2.20] ── sw-be1 ──┤ br0 (pnag-sw), tc_lb on every sw-* port
//     pnag-be2 [eth0 198.18.2.21] ── sw-be2 ──┘
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { endpointSlice, FakeApiServer, namespace, networkPolicy, node, pod, service } from '../../src/bench/fake-apiserver.js';

const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url));
const DP = fileURLToPath(new URL('../../../bpf/build/prep-node-dp', import.meta.url));
const NS = ['pnag-sw', 'pnag-fe', 'pnag-be1', 'pnag-be2'];
const PODS: [string, string][] = [
  ['fe', '198.18.2.10'],
  ['be1', '198.18.2.20'],
  ['be2', '198.18.2.21'],
];
const VIP = '198.18.3.10';
const ECHO_VIP = '198.18.3.20';
const GONE_VIP = '198.18.3.40';
const DNS_VIP = '198.18.3.50';

const out = (o: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(o)}\n`);
const sh = (cmd: string) => spawnSync('sh', ['-c', cmd], { encoding: 'utf8', timeout: 60_000 });
function must(cmd: string): string {
  const r = sh(cmd);
  if (r.status !== 0) throw new Error(`${cmd}: exit ${r.status}: ${r.stderr || r.stdout}`);
  return r.stdout;
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function waitFor(what: string, cond: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}
const entries = (map: string) => must(`${DP} dump ${map}`).trim().split('\n').filter(Boolean).length;

function cgroup2Root(): string {
  const line = readFileSync('/proc/mounts', 'utf8').split('\n').find((l) => l.split(' ')[2] === 'cgroup2');
  if (!line) throw new Error('no cgroup2 mount');
  return line.split(' ')[1]!;
}

/** A probe from a pod's namespace: in the cgroup (socket LB) or outside it (tc). */
function probe(from: string, to: string, cg: string | null, timeoutMs = 1500): { ok: boolean; reply?: string | null; errno?: unknown } {
  const cmd = `ip netns exec pnag-${from} ${DP} probe --connect ${to} --timeout-ms ${timeoutMs}`;
  const r = sh(cg ? `sh -c 'echo $$ > "${cg}/cgroup.procs" && exec ${cmd}'` : cmd);
  const doc = JSON.parse(r.stdout.trim().split('\n').pop() || '{}') as { results?: { ok: boolean; reply?: string | null; errno?: unknown }[] };
  return doc.results?.[0] ?? { ok: false, errno: r.stderr.trim() };
}

/** The sum of a metric's samples whose labels contain every `label="value"` given. */
function metric(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const l of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(l);
    if (!m || m[1] !== name) continue;
    if (Object.entries(labels).every(([k, v]) => (m[2] ?? '').includes(`${k}="${v}"`))) sum += Number(m[3]);
  }
  return sum;
}

class AgentProc {
  proc: ChildProcess;
  lines: Record<string, unknown>[] = [];
  listen = '';
  logged(re: RegExp): Record<string, unknown> | undefined {
    return this.lines.find((l) => re.test(String(l.msg)));
  }
  constructor(kubeconfig: string) {
    this.proc = spawn(process.execPath, [CLI, 'agent', '--kubeconfig', kubeconfig, '--node-name', 'node-a', '--listen', '127.0.0.1:0', '--log-format', 'json', '--min-sync-interval', '10'], { stdio: ['ignore', 'ignore', 'pipe'] });
    createInterface(this.proc.stderr!).on('line', (l) => {
      try {
        const o = JSON.parse(l) as Record<string, unknown>;
        this.lines.push(o);
        if (typeof o.listen === 'string') this.listen = o.listen;
      } catch {
        this.lines.push({ raw: l });
      }
    });
  }
  async get(path: string): Promise<{ status: number; body: string }> {
    const r = await fetch(`http://${this.listen}${path}`);
    return { status: r.status, body: await r.text() };
  }
  async metrics(): Promise<string> {
    return (await this.get('/metrics')).body;
  }
  async ready(): Promise<boolean> {
    return this.listen !== '' && (await this.get('/readyz').catch(() => ({ status: 0 }))).status === 200;
  }
  stop(signal: NodeJS.Signals): Promise<number | null> {
    return new Promise((res) => {
      if (this.proc.exitCode !== null) return res(this.proc.exitCode);
      this.proc.once('exit', (code) => res(code));
      this.proc.kill(signal);
    });
  }
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'pn-agent-e2e-'));
  const cg = join(cgroup2Root(), `pn-agent-e2e-${process.pid}`);
  mkdirSync(cg);
  const fake = new FakeApiServer();
  const children: ChildProcess[] = [];
  let agent: AgentProc | undefined;
  try {
    // ---- topology, servers, datapath
    for (const n of NS) sh(`ip netns del ${n} 2>/dev/null`);
    must('ip netns add pnag-sw && ip -n pnag-sw link set lo up && ip -n pnag-sw link add br0 type bridge && ip -n pnag-sw link set br0 up');
    for (const [n, ip] of PODS)
      must(`ip netns add pnag-${n} && ip -n pnag-${n} link set lo up && ip -n pnag-sw link add sw-${n} type veth peer name eth0 netns pnag-${n} && ip -n pnag-sw link set sw-${n} master br0 up && ip -n pnag-${n} addr add ${ip}/24 dev eth0 && ip -n pnag-${n} link set eth0 up`);
    for (const n of ['be1', 'be2']) children.push(spawn('ip', ['netns', 'exec', `pnag-${n}`, DP, 'serve', '--port', '8080', '--name', n], { stdio: 'ignore' }));
    // UDP servers answering with their pod's name (the live UDP flow that must move when its backend goes)
    for (const n of ['be1', 'be2']) children.push(spawn('ip', ['netns', 'exec', `pnag-${n}`, process.execPath, '-e', `const s=require('dgram').createSocket('udp4');s.on('message',(m,r)=>s.send('${n}',r.port,r.address));s.bind(5353)`], { stdio: 'ignore' }));
    // a long-lived echo server on be1 for the connection that must survive the agent's kill -9
    children.push(spawn('ip', ['netns', 'exec', 'pnag-be1', process.execPath, '-e', "require('net').createServer((s)=>s.pipe(s)).listen(9000)"], { stdio: 'ignore' }));
    await waitFor('servers', () => sh("ip netns exec pnag-be1 ss -Htln 'sport = :9000'").stdout.trim() !== '' && sh("ip netns exec pnag-be2 ss -Htln 'sport = :8080'").stdout.trim() !== '');
    must(`nsenter --net=/run/netns/pnag-sw ${DP} install --tc-dev sw-fe --tc-dev sw-be1 --tc-dev sw-be2 --cgroup ${cg}`);
    // the frontend reaches VIPs outside the cgroup through tc_lb on sw-fe: a route and be1's MAC stand in for a node's routing
    const be1Mac = must('ip netns exec pnag-be1 cat /sys/class/net/eth0/address').trim();
    for (const vip of [VIP, ECHO_VIP, GONE_VIP, DNS_VIP]) must(`ip -n pnag-fe route add ${vip}/32 dev eth0 && ip -n pnag-fe neigh add ${vip} lladdr ${be1Mac} dev eth0`);

    // ---- the cluster, and the agent
    fake.apply(namespace('shop'));
    fake.apply(node('node-a', '198.18.0.1'));
    fake.apply(pod('shop', 'fe', '198.18.2.10', { app: 'frontend' }));
    fake.apply(pod('shop', 'be1', '198.18.2.20', { app: 'web' }));
    fake.apply(pod('shop', 'be2', '198.18.2.21', { app: 'web' }));
    fake.apply(service('shop', 'echo', ECHO_VIP, [{ port: 90, targetPort: 9000 }]));
    fake.apply(endpointSlice('shop', 'echo', 'a', [{ port: 9000 }], [{ ip: '198.18.2.20' }]));
    await fake.start();
    const kc = join(dir, 'kubeconfig');
    fake.writeKubeconfig(kc);
    agent = new AgentProc(kc);
    await waitFor('agent ready', () => agent!.ready());
    out({ step: 'ready', services: entries('services'), before: probe('fe', `${VIP}:80`, cg, 500).ok });

    // a Service created → reachable (socket LB in the cgroup, tc outside)
    fake.apply(service('shop', 'web', VIP, [{ name: 'http', port: 80, targetPort: 8080 }], { selector: { app: 'web' } }));
    fake.apply(endpointSlice('shop', 'web', 'x1', [{ name: 'http', port: 8080 }], [{ ip: '198.18.2.20' }, { ip: '198.18.2.21' }]));
    await waitFor('web programmed', () => entries('backends') === 3);
    const replies = Array.from({ length: 12 }, () => probe('fe', `${VIP}:80`, cg).reply?.split(' ')[0] ?? 'fail');
    out({ step: 'created', sock: replies });

    // the established connection (tc path: DNAT and reverse NAT per packet)
    const client = spawn('ip', ['netns', 'exec', 'pnag-fe', process.execPath, '-e', `const s=require('net').connect(90,'${ECHO_VIP}');s.on('data',d=>process.stdout.write(d));s.on('error',e=>{console.log('ERR '+e.code);process.exit(1)});process.stdin.on('data',d=>s.write(d));`], { stdio: ['pipe', 'pipe', 'ignore'] });
    children.push(client);
    const echoed: string[] = [];
    createInterface(client.stdout).on('line', (l) => echoed.push(l));
    const ping = async (word: string) => {
      client.stdin.write(`${word}\n`);
      await waitFor(`echo ${word}`, () => echoed.includes(word) || echoed.some((l) => l.startsWith('ERR')), 5000).catch(() => undefined);
      return echoed.includes(word);
    };
    out({ step: 'established', echo: await ping('one') });

    // an endpoint removed → no new connection reaches it
    fake.apply(endpointSlice('shop', 'web', 'x1', [{ name: 'http', port: 8080 }], [{ ip: '198.18.2.20' }, { ip: '198.18.2.21', ready: false, serving: true, terminating: true }]));
    await waitFor('be2 removed', () => entries('backends') === 2);
    out({ step: 'endpoint-removed', sock: Array.from({ length: 12 }, () => probe('fe', `${VIP}:80`, cg).reply?.split(' ')[0] ?? 'fail') });

    // a UDP client that keeps sending from one port (tc path) stays on its backend while it lives; when
    // the agent removes that backend it flushes the flow's conntrack entries and the flow moves at once
    // (the udp lifetime is 60 s and the client sends every 100 ms: only the flush can move it)
    fake.apply(service('shop', 'dns', DNS_VIP, [{ name: 'dns', port: 53, targetPort: 5353, protocol: 'UDP' }], { selector: { app: 'dns' } }));
    fake.apply(endpointSlice('shop', 'dns', 'a', [{ name: 'dns', port: 5353, protocol: 'UDP' }], [{ ip: '198.18.2.20' }]));
    await waitFor('dns programmed', () => entries('backends') === 3);
    // the frontend sends VIP traffic to be1's MAC (its route above): be1 forwards what tc_lb sent to be2
    must('ip netns exec pnag-be1 sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.send_redirects=0 net.ipv4.conf.eth0.send_redirects=0');
    const udp = spawn('ip', ['netns', 'exec', 'pnag-fe', process.execPath, '-e', `const s=require('dgram').createSocket('udp4');s.on('message',(m)=>console.log(Date.now()+' '+m));s.bind(40053,()=>setInterval(()=>s.send('q',53,'${DNS_VIP}'),100))`], { stdio: ['ignore', 'pipe', 'ignore'] });
    children.push(udp);
    const heard: [number, string][] = [];
    createInterface(udp.stdout).on('line', (l) => heard.push([Number(l.split(' ')[0]), l.split(' ')[1]!]));
    await waitFor('udp replies from be1', () => heard.filter(([, n]) => n === 'be1').length >= 3, 10_000).catch(() => undefined);
    const flushedBefore = metric(await agent.metrics(), 'prep_node_agent_ct_gc_removed_total', { reason: 'flushed' });
    const changedAt = Date.now();
    fake.apply(endpointSlice('shop', 'dns', 'a', [{ name: 'dns', port: 5353, protocol: 'UDP' }], [{ ip: '198.18.2.21' }]));
    await waitFor('udp replies from be2', () => heard.some(([t, n]) => t > changedAt && n === 'be2'), 10_000).catch(() => undefined);
    const firstBe2 = heard.find(([t, n]) => t > changedAt && n === 'be2')?.[0];
    await waitFor('flush counted', async () => metric(await agent!.metrics(), 'prep_node_agent_ct_gc_removed_total', { reason: 'flushed' }) > flushedBefore, 5000).catch(() => undefined);
    const m = await agent.metrics();
    udp.kill('SIGKILL');
    out({
      step: 'udp-moved',
      before: heard.filter(([t]) => t <= changedAt).map(([, n]) => n),
      movedAfterMs: firstBe2 === undefined ? null : firstBe2 - changedAt,
      be1After: heard.filter(([t, n]) => firstBe2 !== undefined && t > firstBe2 && n === 'be1').length,
      flushed: metric(m, 'prep_node_agent_ct_gc_removed_total', { reason: 'flushed' }) - flushedBefore,
      flushRuns: metric(m, 'prep_node_agent_ct_gc_runs_total', { trigger: 'flush' }),
      logged: agent.logged(/flows of removed UDP backends flushed/) ?? null,
    });
    must('ip netns exec pnag-be1 sysctl -qw net.ipv4.ip_forward=0');
    fake.delete('Service', 'shop', 'dns');
    fake.delete('EndpointSlice', 'shop', 'dns-a');
    await waitFor('dns removed', () => entries('backends') === 2);

    // a NetworkPolicy added → denied, and seen by observe
    sh(`nsenter --net=/run/netns/pnag-sw ${process.execPath} ${CLI} datapath observe --json >/dev/null 2>&1`); // drain earlier events
    fake.apply(networkPolicy('shop', 'web-admin-only', { podSelector: { matchLabels: { app: 'web' } }, policyTypes: ['Ingress'], ingress: [{ from: [{ podSelector: { matchLabels: { role: 'admin' } } }], ports: [{ protocol: 'TCP', port: 8080 }] }] }));
    const synced = (what: string) => agent!.lines.some((l) => typeof l.changes === 'string' && l.changes.includes(what));
    await waitFor('policy programmed', () => synced('NetworkPolicy shop/web-admin-only changed'));
    // the agent leaves the names index observe reads (off the event-to-map path, within a second)
    await waitFor('names index with the policy', () => sh('cat /var/lib/prep-node/datapath/names.json').stdout.includes('web-admin-only'), 10_000);
    const denied = probe('fe', '198.18.2.20:8080', null, 800);
    const obs = sh(`nsenter --net=/run/netns/pnag-sw ${process.execPath} ${CLI} datapath observe --verdict dropped --json`);
    out({ step: 'policy', denied, observe: obs.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as unknown), observeExit: obs.status });

    // the policy deleted (live), then the API server stopped → traffic still flows; changes made
    // meanwhile (an endpoint back, a new Service) applied after it returns
    fake.delete('NetworkPolicy', 'shop', 'web-admin-only');
    await waitFor('policy removed', () => synced('NetworkPolicy shop/web-admin-only deleted'));
    fake.apply(service('shop', 'gone', GONE_VIP, [{ port: 80, targetPort: 8080 }]));
    fake.apply(endpointSlice('shop', 'gone', 'a', [{ port: 8080 }], [{ ip: '198.18.2.20' }]));
    await waitFor('gone programmed', () => entries('backends') === 3);
    const goneBefore = probe('fe', `${GONE_VIP}:80`, cg).ok;
    const reconnectsBefore = metric(await agent.metrics(), 'prep_node_agent_reconnects_total');
    await fake.stop();
    await waitFor('agent notices', () => agent!.lines.some((l) => /failed; the datapath keeps serving/.test(String(l.msg))), 30_000);
    const during = probe('fe', `${VIP}:80`, cg);
    const readyDuring = await agent.get('/readyz');
    // two backoff periods (1 s, 2 s) pass with the server away: each retry is counted
    await waitFor('retries counted', async () => metric(await agent!.metrics(), 'prep_node_agent_reconnects_total', { kind: 'Service' }) >= 2, 15_000);
    const metricsDuring = await agent.metrics();
    fake.delete('Service', 'shop', 'gone');
    fake.delete('EndpointSlice', 'shop', 'gone-a');
    fake.apply(endpointSlice('shop', 'web', 'x1', [{ name: 'http', port: 8080 }], [{ ip: '198.18.2.20' }, { ip: '198.18.2.21' }]));
    fake.apply(service('shop', 'late', '198.18.3.30', [{ port: 80, targetPort: 8080 }]));
    fake.apply(endpointSlice('shop', 'late', 'a', [{ port: 8080 }], [{ ip: '198.18.2.21' }]));
    fake.compact();
    await fake.start();
    await waitFor('changes applied after the return', () => entries('backends') === 4 && probe('fe', `${GONE_VIP}:80`, cg, 300).ok === false, 60_000);
    await waitFor('ready after the return', () => agent!.get('/readyz').then((r) => r.body === 'ok\n'), 10_000);
    const metricsAfter = await agent.metrics();
    out({
      step: 'api-away',
      goneBefore,
      during,
      readyDuring,
      reconnects: [reconnectsBefore, metric(metricsDuring, 'prep_node_agent_reconnects_total'), metric(metricsDuring, 'prep_node_agent_api_errors_total', { kind: 'Service', code: '0' })],
      relists: metric(metricsAfter, 'prep_node_agent_lists_total', { type: 'relist' }),
      relistLogged: agent.logged(/^relisted/) !== undefined,
      after: probe('fe', '198.18.3.30:80', cg),
      goneAfter: probe('fe', `${GONE_VIP}:80`, cg, 500).ok,
      echo: await ping('two'),
    });

    // watches: BOOKMARKs asked for and counted; timeoutSeconds sent; a stream the server ends (its
    // timeout) is rewatched from where it was, a stream dropped mid-way restarts the informer
    const q = fake.watchQueries.filter((w) => w.kind === 'Service').at(-1)!.query;
    fake.bookmark();
    await waitFor('bookmark counted', async () => metric(await agent!.metrics(), 'prep_node_agent_events_total', { type: 'bookmark' }) >= 6, 5000);
    const watchesBefore = fake.requests.get('watch EndpointSlice') ?? 0;
    const listsBefore = fake.requests.get('list EndpointSlice') ?? 0;
    fake.endWatches();
    await waitFor('rewatched after a clean end', () => (fake.requests.get('watch EndpointSlice') ?? 0) > watchesBefore, 10_000);
    fake.apply(endpointSlice('shop', 'late', 'a', [{ port: 8080 }], [{ ip: '198.18.2.21' }, { ip: '198.18.2.20' }]));
    await waitFor('change after the rewatch', () => entries('backends') === 5, 10_000);
    const cleanEnd = { watches: (fake.requests.get('watch EndpointSlice') ?? 0) - watchesBefore, lists: (fake.requests.get('list EndpointSlice') ?? 0) - listsBefore };
    const restartsBefore = metric(await agent.metrics(), 'prep_node_agent_reconnects_total', { kind: 'EndpointSlice' });
    fake.dropWatches();
    await waitFor('informer restarted after a dropped stream', async () => metric(await agent!.metrics(), 'prep_node_agent_reconnects_total', { kind: 'EndpointSlice' }) > restartsBefore, 10_000);
    fake.apply(endpointSlice('shop', 'late', 'a', [{ port: 8080 }], [{ ip: '198.18.2.21' }]));
    await waitFor('change after the restart', () => entries('backends') === 4, 15_000);
    out({ step: 'watch', query: Object.fromEntries(q), bookmarks: metric(await agent.metrics(), 'prep_node_agent_events_total', { type: 'bookmark' }), cleanEnd, restarted: metric(await agent.metrics(), 'prep_node_agent_reconnects_total', { kind: 'EndpointSlice' }) - restartsBefore });

    // kill -9 and restart: converges, writes nothing that was right, the connection survives
    await agent.stop('SIGKILL');
    const killedAt = entries('services');
    agent = new AgentProc(kc);
    await waitFor('restarted agent ready', () => agent!.ready(), 30_000);
    const full = agent.lines.find((l) => String(l.msg).startsWith('full sync'));
    const metrics = (await agent.get('/metrics')).body;
    out({ step: 'restart', killedAt, services: entries('services'), full, echo: await ping('three'), metrics: metrics.split('\n').filter((l) => /^prep_node_(agent_ready|agent_syncs_total|datapath_up|datapath_map_entries\{map="services"\})/.test(l)) });

    // SIGTERM leaves the datapath in place
    const code = await Promise.race([agent.stop('SIGTERM'), sleep(15_000).then(() => 'still running 15 s after SIGTERM')]);
    out({ step: 'sigterm', code, services: entries('services'), stillServes: probe('fe', `${VIP}:80`, cg).ok });
    agent = undefined;

    // 403: the RBAC lacks EndpointSlices: one line naming the verb and resource, not ready, nothing written
    fake.forbidden.add('EndpointSlice');
    const servicesBefore = entries('services');
    agent = new AgentProc(kc);
    await waitFor('forbidden logged', () => agent!.logged(/^forbidden/) !== undefined, 20_000);
    await waitFor('endpoints up', () => agent!.listen !== '', 10_000);
    const forbidden = agent.lines.filter((l) => /forbidden/.test(String(l.msg)));
    out({ step: 'forbidden', lines: forbidden.map((l) => l.msg), readyz: await agent.get('/readyz'), services: [servicesBefore, entries('services')], stillServes: probe('fe', `${VIP}:80`, cg).ok });
    await agent.stop('SIGKILL');
    agent = undefined;
  } catch (err) {
    out({ step: 'error', message: (err as Error).message, agentLog: agent?.lines.slice(-20) });
  } finally {
    if (agent) await agent.stop('SIGKILL');
    for (const c of children) c.kill('SIGKILL');
    await fake.stop();
    sh(`${DP} remove`);
    for (const n of NS) sh(`ip netns del ${n} 2>/dev/null`);
    await sleep(200);
    try {
      rmdirSync(cg);
    } catch {
      /* a process still in it: removed when it exits */
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
