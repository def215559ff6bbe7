// The agent's change tracker and sync discipline against an in-memory map writer, fed directly
// (no API server): nothing written before every kind has listed, one full diff first (a restarted
// agent rewrites nothing that is already right), then deltas, bursts coalesced, kube-proxy's rules
// (service-proxy-name, headless, EndpointSlice conditions, NodePort addresses from this Node), and
// only what the datapath reads kept of each object.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Agent } from '../../src/agent/agent.js';
import { listening, serveEndpoints } from '../../src/agent/http.js';
import { AgentMetrics, RECENT_LATENCIES } from '../../src/agent/metrics.js';
import { slim, type Kind } from '../../src/agent/slim.js';
import { MemWriter } from '../helpers/mem-writer.js';
import { endpointSlice, namespace, node, pod, service } from '../../src/bench/fake-apiserver.js';

const KINDS: Kind[] = ['Namespace', 'Node', 'Pod', 'Service', 'EndpointSlice', 'NetworkPolicy', 'CiliumNetworkPolicy'];
type Obj = Record<string, unknown>;

function agent(writer = new MemWriter()) {
  const lines: string[] = [];
  const a = new Agent({ writer, nodeName: 'node-a', kinds: KINDS, log: (level, msg, f) => lines.push(`${level} ${msg} ${JSON.stringify(f ?? {})}`), minSyncIntervalMs: 20 });
  const put = (o: Obj) => a.upsert(o.kind as Kind, slim(o.kind as Kind, o));
  return { a, writer, lines, put };
}

const web = () => [
  service('shop', 'web', '198.18.3.10', [{ name: 'http', port: 80, targetPort: 8080 }], { selector: { app: 'web' } }),
  endpointSlice('shop', 'web', 'x1', [{ name: 'http', port: 8080 }], [{ ip: '198.18.2.20' }, { ip: '198.18.2.21' }]),
];

test('agent: nothing is written until every kind has listed; then one full sync', async () => {
  const { a, writer, put } = agent();
  for (const o of web()) put(o);
  for (const k of KINDS.slice(0, -1)) a.listed(k, false);
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(writer.batches.length, 0, 'no write before the last kind listed');
  assert.equal(writer.dumps, 0);
  assert.equal(a.ready(), false);
  assert.match(a.notReadyReason(), /waiting for the first list of CiliumNetworkPolicy/);
  const next = a.nextSync();
  a.listed('CiliumNetworkPolicy', false);
  const r = await next;
  assert.equal(r.full, true);
  assert.equal(writer.dumps, 1, 'the full sync diffs against a dump of the maps');
  assert.deepEqual([writer.size('services'), writer.size('backends')], [1, 2]);
  assert.equal(a.ready(), true);
  await a.close();
});

test('agent: a restarted agent finds the maps right and writes nothing', async () => {
  const first = agent();
  for (const o of web()) first.put(o);
  const done = first.a.nextSync();
  for (const k of KINDS) first.a.listed(k, false);
  await done;
  await first.a.close();
  const second = agent(first.writer);
  const before = first.writer.batches.length;
  for (const o of web()) second.put(o);
  const r = second.a.nextSync();
  for (const k of KINDS) second.a.listed(k, false);
  assert.deepEqual(await r, { full: true, put: 0, deleted: 0, changes: (await r).changes });
  assert.equal(first.writer.batches.length, before, 'no batch written');
  // and one stale entry left by the dead agent is removed by the same full diff
  const third = agent(first.writer);
  third.put(web()[0]!); // the slice is gone: the service has no backends
  const r3 = third.a.nextSync();
  for (const k of KINDS) third.a.listed(k, false);
  const rep = await r3;
  assert.equal(rep.deleted, 2, 'the two backend slots of the deleted slice');
  await second.a.close();
  await third.a.close();
});

test('agent: after the first sync, a change is a delta; a burst is coalesced into one batch', async () => {
  const { a, writer, put } = agent();
  for (const o of web()) put(o);
  let s = a.nextSync();
  for (const k of KINDS) a.listed(k, false);
  await s;
  const batches = writer.batches.length;
  // one endpoint becomes not ready (terminating, not serving): kube-proxy stops sending to it
  s = a.nextSync();
  put(endpointSlice('shop', 'web', 'x1', [{ name: 'http', port: 8080 }], [{ ip: '198.18.2.20' }, { ip: '198.18.2.21', ready: false, serving: false, terminating: true }]));
  let r = await s;
  assert.equal(r.full, false);
  assert.equal(writer.dumps, 1, 'no dump for a delta');
  assert.equal(writer.size('backends'), 1);
  assert.equal(writer.batches.length, batches + 1);
  // 200 services in one turn: one sync, one batch
  s = a.nextSync();
  for (let i = 0; i < 200; i++) put(service('load', `s${i}`, `198.19.${i >> 8}.${i & 255}`, [{ port: 80 }]));
  r = await s;
  assert.equal(r.changes.length, 200);
  assert.equal(writer.batches.length, batches + 2);
  // an unchanged object (a resync, a new resourceVersion only) changes nothing
  const before = writer.batches.length;
  const again = web()[0]!;
  (again.metadata as Obj).resourceVersion = '999';
  put(again);
  await new Promise((res) => setTimeout(res, 40));
  assert.equal(writer.batches.length, before);
  await a.close();
});

test("agent: kube-proxy's rules: service-proxy-name and headless skipped, NodePort on this Node's address", async () => {
  const { a, writer, put } = agent();
  put(service('shop', 'other-proxy', '198.18.3.11', [{ port: 80 }], { labels: { 'service.kubernetes.io/service-proxy-name': 'someone-else' } }));
  put(endpointSlice('shop', 'other-proxy', 'a', [{ port: 80 }], [{ ip: '198.18.2.30' }]));
  put(service('shop', 'headless', 'None', [{ port: 80 }]));
  put(service('shop', 'np', '198.18.3.12', [{ port: 80, nodePort: 30080 }], { type: 'NodePort' }));
  put(endpointSlice('shop', 'np', 'a', [{ port: 80 }], [{ ip: '198.18.2.31' }]));
  put(node('node-a', '198.18.0.1'));
  put(node('node-b', '198.18.0.2'));
  const s = a.nextSync();
  for (const k of KINDS) a.listed(k, false);
  await s;
  const keys = [...(writer.maps.get('services')?.keys() ?? [])];
  // services key: vip (4 bytes, network order) + port (2) + proto + pad
  const vips = keys.map((k) => Buffer.from(k, 'hex')).map((b) => `${b[0]}.${b[1]}.${b[2]}.${b[3]}:${b.readUInt16BE(4)}`).sort();
  assert.deepEqual(vips, ['198.18.0.1:30080', '198.18.3.12:80']);
  await a.close();
});

test('agent: a failed write keeps the change pending, reports not ready, and retries with a full diff', async () => {
  const writer = new MemWriter();
  const lines: string[] = [];
  const a = new Agent({ writer, nodeName: 'node-a', kinds: KINDS, log: (l, m) => lines.push(`${l} ${m}`), minSyncIntervalMs: 5, retryMs: 20 });
  writer.failNext = new Error('put services: E2BIG (map full: raise it with install --cap)');
  for (const o of web()) a.upsert(o.kind as Kind, slim(o.kind as Kind, o));
  const s = a.nextSync();
  for (const k of KINDS) a.listed(k, false);
  await s;
  assert.equal(writer.size('services'), 1, 'written by the retry');
  assert.equal(writer.dumps, 2, 'the retry diffed in full again');
  assert.ok(lines.some((l) => /^error writing the maps failed; retrying with a full diff: put services: E2BIG/.test(l)), lines.join('\n'));
  assert.equal(a.metrics.render(a.ready()).includes('prep_node_agent_sync_errors_total 1'), true);
  await a.close();
});

test('slim: keeps what the datapath reads, drops managedFields, annotations, container statuses', () => {
  const full = pod('shop', 'web-1', '198.18.2.20', { app: 'web' }, { ports: [{ name: 'http', containerPort: 8080 }] });
  (full.metadata as Obj).managedFields = [{ manager: 'kubelet', fieldsV1: { 'f:status': {} } }];
  const s = slim('Pod', full);
  assert.deepEqual(s, {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'web-1', namespace: 'shop', labels: { app: 'web' } },
    spec: { nodeName: 'node-a', serviceAccountName: 'default', serviceAccount: 'default', containers: [{ ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }] }] },
    status: { phase: 'Running', podIP: '198.18.2.20', podIPs: [{ ip: '198.18.2.20' }], conditions: [{ type: 'Initialized', status: 'True' }, { type: 'Ready', status: 'True' }] },
  });
  assert.ok(JSON.stringify(s).length < JSON.stringify(full).length / 3);
  const ns = slim('Namespace', namespace('shop', { team: 'a' }));
  assert.deepEqual(ns.metadata, { name: 'shop', labels: { 'kubernetes.io/metadata.name': 'shop', team: 'a' } });
});

test('agent: the names index observe reads — written after the first sync, rebuilt after a Service change, not after EndpointSlice churn; at most once per interval', async () => {
  const written: { at: number; services: string[]; endpoints: string[] }[] = [];
  const a = new Agent({
    writer: new MemWriter(),
    nodeName: 'node-a',
    kinds: KINDS,
    log: () => undefined,
    minSyncIntervalMs: 5,
    names: {
      source: 'agent on node-a (test)',
      intervalMs: 100,
      write: (n) => {
        written.push({ at: Date.now(), services: Object.values(n.services).map((s) => s.name), endpoints: Object.values(n.endpoints).map((e) => e.name) });
        return Promise.resolve();
      },
    },
  });
  const put = (o: Obj) => a.upsert(o.kind as Kind, slim(o.kind as Kind, o));
  put(namespace('shop'));
  put(node('node-a', '198.18.0.1'));
  put(pod('shop', 'be1', '198.18.2.20', { app: 'web' }));
  for (const o of web()) put(o);
  for (const k of KINDS) a.listed(k, false);
  const wait = async (n: number) => {
    for (let i = 0; i < 100 && written.length < n; i++) await new Promise((r) => setTimeout(r, 10));
  };
  await wait(1);
  assert.equal(written.length, 1);
  assert.deepEqual(written[0]!.services, ['shop/web:http (ClusterIP 198.18.3.10:80/tcp)']);
  assert.deepEqual(written[0]!.endpoints, ['shop/be1']);
  // endpoint churn: the maps change, the names do not
  put(endpointSlice('shop', 'web', 'x1', [{ name: 'http', port: 8080 }], [{ ip: '198.18.2.20' }]));
  await a.nextSync();
  await new Promise((r) => setTimeout(r, 250));
  assert.equal(written.length, 1, 'EndpointSlice changes do not rebuild the names');
  // a Service change does, once per interval however many come
  put(service('shop', 'api', '198.18.3.11', [{ port: 443 }]));
  put(service('shop', 'db', '198.18.3.12', [{ port: 5432 }]));
  await wait(2);
  await new Promise((r) => setTimeout(r, 150));
  assert.equal(written.length, 2);
  assert.deepEqual(written[1]!.services.map((n) => n.split(':')[0]).sort(), ['shop/api', 'shop/db', 'shop/web']);
  await a.close();
});

test('agent: firstSync resolves once a sync leaves it ready, not before every kind has listed', async () => {
  const { a, put } = agent();
  for (const o of web()) put(o);
  let done: boolean | undefined;
  void a.firstSync().then((ok) => (done = ok));
  for (const k of KINDS.slice(0, -1)) a.listed(k, false);
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(done, undefined, 'pending while a kind has not listed');
  a.listed('CiliumNetworkPolicy', false);
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(done, true);
  assert.equal(await a.firstSync(), true, 'already ready: at once');
  await a.close();
  const closed = agent().a;
  await closed.close();
  assert.equal(await closed.firstSync(), false);
});

test('metrics: the exact event → map observations since a count (/latency), the ring keeping the last ones', () => {
  const m = new AgentMetrics();
  for (let i = 1; i <= 5; i++) m.observeLatency(i / 1e6);
  assert.deepEqual(m.latencySince(Number.MAX_SAFE_INTEGER), { next: 5, lost: 0, seconds: [] });
  assert.deepEqual(m.latencySince(3), { next: 5, lost: 0, seconds: [4e-6, 5e-6] });
  for (let i = 0; i < RECENT_LATENCIES; i++) m.observeLatency(1e-3);
  const r = m.latencySince(3);
  assert.equal(r.next, RECENT_LATENCIES + 5);
  assert.equal(r.lost, 2, 'observations 4 and 5 were overwritten');
  assert.equal(r.seconds.length, RECENT_LATENCIES);
  // the histogram's 10 µs bucket holds the 1 µs ones
  assert.match(m.render(true), /^prep_node_agent_event_to_map_seconds_bucket\{le="0.00001"\} 5$/m);
});

test('http: /latency serves the observations after ?since=N as JSON', async () => {
  const m = new AgentMetrics();
  m.observeLatency(0.002);
  m.observeLatency(0.003);
  const server = await serveEndpoints({ host: '127.0.0.1', port: 0 }, { ready: () => true, notReadyReason: () => '', metrics: () => Promise.resolve(''), latency: (s) => m.latencySince(s) });
  try {
    const get = async (p: string) => (await fetch(`http://${listening(server)}${p}`)).json();
    assert.deepEqual(await get('/latency'), { next: 2, lost: 0, seconds: [] });
    assert.deepEqual(await get('/latency?since=1'), { next: 2, lost: 0, seconds: [0.003] });
    assert.deepEqual(await get('/latency?since=0'), { next: 2, lost: 0, seconds: [0.002, 0.003] });
  } finally {
    server.closeAllConnections();
    await new Promise((res) => server.close(res));
  }
});

test('agent: by default no change waits for a timer: changes in separate turns are separate syncs; a burst in one turn is one', async () => {
  const writer = new MemWriter();
  const a = new Agent({ writer, nodeName: 'node-a', kinds: KINDS, log: () => undefined });
  const put = (o: Obj) => a.upsert(o.kind as Kind, slim(o.kind as Kind, o));
  for (const o of web()) put(o);
  let s = a.nextSync();
  for (const k of KINDS) a.listed(k, false);
  await s;
  await new Promise((res) => setImmediate(res)); // the full sync's loop settled
  // three changes a turn apart, right after a sync: none is held back to be coalesced with the next
  const reports: { changes: string[] }[] = [];
  const collect = (): void => void a.nextSync().then((r) => (reports.push(r), collect()));
  collect();
  for (let i = 0; i < 3; i++) {
    put(service('load', `lone${i}`, `198.19.1.${i}`, [{ port: 80 }]));
    await new Promise((res) => setImmediate(res));
  }
  while (reports.reduce((n, r) => n + r.changes.length, 0) < 3) await new Promise((res) => setTimeout(res, 5));
  assert.deepEqual(reports.map((r) => r.changes.length), [1, 1, 1], 'each change synced on its own on the next turn');
  s = a.nextSync();
  for (let i = 0; i < 50; i++) put(service('load', `burst${i}`, `198.19.2.${i}`, [{ port: 80 }]));
  assert.equal((await s).changes.length, 50, 'a burst in one turn: one sync');
  await a.close();
});

test('agent: one endpoint change at 10000 services writes only its service\'s entries: the slot it frees and the service\'s count', async () => {
  const { a, writer, put } = agent();
  const N = 10000;
  const ip = (i: number, k: number) => `10.${64 + (i >> 8)}.${i & 255}.${10 + k}`;
  const eps = (i: number, down = -1) => endpointSlice('bench', `svc-${i}`, 'a', [{ name: 'http', port: 8080 }], [0, 1, 2, 3, 4].map((k) => ({ ip: ip(i, k), ready: k !== down })));
  put(node('node-a', '198.18.0.1'));
  put(namespace('bench'));
  for (let i = 0; i < N; i++) {
    put(service('bench', `svc-${i}`, `10.${96 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`, [{ name: 'http', port: 80, targetPort: 8080 }], { selector: { app: `svc-${i}` } }));
    put(eps(i));
  }
  let next = a.nextSync();
  for (const k of KINDS) a.listed(k, false);
  await next;
  assert.equal(writer.size('services'), N);
  assert.equal(writer.size('backends'), 5 * N);
  const opsOf = async (o: Obj) => {
    const was = writer.batches.length;
    next = a.nextSync();
    put(o);
    const r = await next;
    assert.equal(r.full, false);
    return writer.batches.slice(was).flat();
  };
  const svcId = (ops: readonly { map: string; keyHex?: string }[]) => new Set(ops.filter((o) => o.map === 'backends').map((o) => o.keyHex!.slice(0, 8)));
  // svc-4321's last backend (by address: slot 4) not ready: its slot deleted, its count 5 → 4
  const down = await opsOf(eps(4321, 4));
  assert.deepEqual(down.map((o) => `${o.op} ${o.map}`).sort(), ['del backends', 'put services']);
  // ready again: the slot written back, the count 4 → 5
  const up = await opsOf(eps(4321));
  assert.deepEqual(up.map((o) => `${o.op} ${o.map}`).sort(), ['put backends', 'put services']);
  // its first backend not ready: slots stay sorted by address, so its 4 slots move down one and the last goes
  const first = await opsOf(eps(4321, 0));
  assert.deepEqual(first.map((o) => `${o.op} ${o.map}`).sort(), ['del backends', 'put backends', 'put backends', 'put backends', 'put backends', 'put services']);
  assert.equal(svcId([...down, ...up, ...first]).size, 1, 'every backend written is the one service\'s');
  assert.equal(writer.size('backends'), 5 * N - 1);
  await a.close();
});
