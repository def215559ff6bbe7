// The agent and conntrack (issue 13 item 3): a sync that removes a UDP backend (a delta or a full
// diff) asks for its flows to be flushed, TCP backends are left to drain as kube-proxy leaves them,
// and the garbage collector runs the loader's ct-gc periodically and for flushes, one run at a time,
// counting what it removed in /metrics.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Agent } from '../../src/agent/agent.js';
import { CtGc } from '../../src/agent/ct-gc.js';
import { AgentMetrics } from '../../src/agent/metrics.js';
import { slim, type Kind } from '../../src/agent/slim.js';
import type { CtGcDoc } from '../../src/datapath/loader.js';
import { MemWriter } from '../helpers/mem-writer.js';
import { endpointSlice, service } from '../../src/bench/fake-apiserver.js';

const KINDS: Kind[] = ['Service', 'EndpointSlice'];
type Obj = Record<string, unknown>;
type Ep = Parameters<typeof endpointSlice>[4][number];

function agent(writer = new MemWriter()) {
  const flushed: string[][] = [];
  const a = new Agent({ writer, nodeName: 'node-a', kinds: KINDS, log: () => undefined, minSyncIntervalMs: 0, flushUdp: (b) => flushed.push([...b]) });
  const put = (o: Obj) => a.upsert(o.kind as Kind, slim(o.kind as Kind, o));
  return { a, writer, flushed, put };
}

const dns = (eps: Ep[]) => [
  service('kube-system', 'dns', '198.18.3.10', [{ name: 'dns', port: 53, targetPort: 5353, protocol: 'UDP' }, { name: 'dns-tcp', port: 53, targetPort: 5353, protocol: 'TCP' }], { selector: { app: 'dns' } }),
  endpointSlice('kube-system', 'dns', 'x1', [{ name: 'dns', port: 5353, protocol: 'UDP' }, { name: 'dns-tcp', port: 5353, protocol: 'TCP' }], eps),
];
const web = (eps: Ep[]) => [
  service('shop', 'web', '198.18.3.20', [{ name: 'http', port: 80, targetPort: 8080 }], { selector: { app: 'web' } }),
  endpointSlice('shop', 'web', 'x1', [{ name: 'http', port: 8080 }], eps),
];

async function started(objs: Obj[], writer?: MemWriter) {
  const t = agent(writer);
  for (const o of objs) t.put(o);
  const s = t.a.nextSync();
  for (const k of KINDS) t.a.listed(k, false);
  await s;
  return t;
}

test('agent: a delta that removes a UDP backend flushes its flows; one that keeps it does not', async () => {
  const t = await started([...dns([{ ip: '198.18.2.1' }, { ip: '198.18.2.2' }])]);
  assert.deepEqual(t.flushed, [], 'the first sync removed nothing');
  let s = t.a.nextSync();
  t.put(dns([{ ip: '198.18.2.2' }])[1]!);
  assert.equal((await s).full, false);
  assert.deepEqual(t.flushed, [['198.18.2.1:5353/udp']]);
  s = t.a.nextSync();
  t.put(dns([{ ip: '198.18.2.2' }, { ip: '198.18.2.3' }])[1]!);
  await s;
  assert.deepEqual(t.flushed.length, 1, 'a backend added: nothing flushed');
  await t.a.close();
});

test('agent: TCP backends are left to drain, a terminating one too; a terminating UDP backend is flushed once no slot names it', async () => {
  const t = await started([...web([{ ip: '198.18.2.20' }, { ip: '198.18.2.21' }]), ...dns([{ ip: '198.18.2.1' }, { ip: '198.18.2.2' }])]);
  let s = t.a.nextSync();
  // terminating (not ready, still serving): new flows go to the ready one, its TCP flows keep their conntrack entries
  t.put(web([{ ip: '198.18.2.20' }, { ip: '198.18.2.21', ready: false, serving: true, terminating: true }])[1]!);
  await s;
  assert.equal(t.writer.size('backends'), 1 + 2 * 2, 'the terminating TCP backend left the Service (one web slot, two per dns port)');
  assert.deepEqual(t.flushed, [], 'no flush for TCP');
  s = t.a.nextSync();
  t.put(dns([{ ip: '198.18.2.1' }, { ip: '198.18.2.2', ready: false, serving: true, terminating: true }])[1]!);
  await s;
  assert.deepEqual(t.flushed, [['198.18.2.2:5353/udp']], 'the UDP port of the terminating endpoint is flushed, the TCP one drains');
  await t.a.close();
});

test('agent: a full diff (a restarted agent) that removes a UDP backend flushes it too; a removed UDP Service flushes all of its backends', async () => {
  const first = await started(dns([{ ip: '198.18.2.1' }, { ip: '198.18.2.2' }]));
  await first.a.close();
  const second = await started(dns([{ ip: '198.18.2.2' }]), first.writer);
  assert.deepEqual(second.flushed, [['198.18.2.1:5353/udp']], 'the full sync found the dead agent\'s backend and flushed it');
  const s = second.a.nextSync();
  second.a.remove('Service', slim('Service', dns([])[0]!));
  await s;
  assert.deepEqual(second.flushed[1], ['198.18.2.2:5353/udp']);
  await second.a.close();
});

test('agent: a UDP Service added after the first sync is known as UDP when its backend later leaves', async () => {
  const t = await started(web([{ ip: '198.18.2.20' }]));
  let s = t.a.nextSync();
  for (const o of dns([{ ip: '198.18.2.1' }, { ip: '198.18.2.2' }])) t.put(o);
  await s;
  s = t.a.nextSync();
  t.put(dns([{ ip: '198.18.2.1' }])[1]!);
  await s;
  assert.deepEqual(t.flushed, [['198.18.2.2:5353/udp']]);
  await t.a.close();
});

const doc = (o: Partial<CtGcDoc> = {}): CtGcDoc => ({ scanned: 10, expired: 0, flushed: 0, entries: 10, capacity: 1024, fill_pct: 0, warning: null, ...o });

test('ct-gc: periodic runs count expired entries; flushes asked during a run go into the next one together', async () => {
  const calls: string[][] = [];
  let release: () => void = () => undefined;
  const metrics = new AgentMetrics();
  const gc = new CtGc(async (b) => {
    calls.push([...b]);
    if (calls.length === 2) await new Promise<void>((r) => (release = r));
    return doc(b.length ? { flushed: b.length * 3 } : { expired: 4 });
  }, { intervalMs: 30, log: () => undefined, metrics });
  gc.start();
  await new Promise((r) => setTimeout(r, 45));
  assert.deepEqual(calls, [[]], 'one periodic run after the interval');
  const f1 = gc.flush(['198.18.2.1:53/udp']);
  const f2 = gc.flush(['198.18.2.2:53/udp']);
  const f3 = gc.flush(['198.18.2.3:53/udp']);
  await new Promise((r) => setTimeout(r, 5));
  release();
  await Promise.all([f1, f2, f3]);
  await gc.idle();
  assert.deepEqual(calls.slice(1), [['198.18.2.1:53/udp'], ['198.18.2.2:53/udp', '198.18.2.3:53/udp']], 'the two asked while the first flush ran went into one run');
  await gc.close();
  const text = metrics.render(true);
  assert.match(text, /^prep_node_agent_ct_gc_runs_total\{trigger="interval"\} 1$/m);
  assert.match(text, /^prep_node_agent_ct_gc_runs_total\{trigger="flush"\} 2$/m);
  assert.match(text, /^prep_node_agent_ct_gc_removed_total\{reason="expired"\} 4$/m);
  assert.match(text, /^prep_node_agent_ct_gc_removed_total\{reason="flushed"\} 9$/m);
  assert.match(text, /^prep_node_agent_conntrack_capacity 1024$/m);
});

test('ct-gc: a failed flush is counted, logged once, and its backends go into the next run', async () => {
  const calls: string[][] = [];
  const lines: string[] = [];
  const metrics = new AgentMetrics();
  const gc = new CtGc((b) => {
    calls.push([...b]);
    if (calls.length === 1) return Promise.reject(new Error('prep-node-dp ct-gc: exit 5\nmore'));
    return Promise.resolve(doc({ flushed: 1 }));
  }, { intervalMs: 20, log: (level, msg) => lines.push(`${level} ${msg}`), metrics });
  await gc.flush(['198.18.2.1:53/udp']);
  assert.match(metrics.render(true), /^prep_node_agent_ct_gc_errors_total\{trigger="flush"\} 1$/m);
  assert.deepEqual(lines, ['warn conntrack garbage collection failed; retrying at the next run: prep-node-dp ct-gc: exit 5']);
  await new Promise((r) => setTimeout(r, 35));
  await gc.idle();
  assert.deepEqual(calls, [['198.18.2.1:53/udp'], ['198.18.2.1:53/udp']], 'retried by the periodic run');
  assert.match(lines.at(-1) ?? '', /runs again|flushed/);
  await gc.close();
});

test('agent: an IPv6 Service\'s removed UDP backend is flushed as [addr]:port/udp (backends6)', async () => {
  const v6 = (eps: Ep[]) => {
    const [svc, slice] = dns(eps) as [Obj, Obj];
    const spec = svc.spec as Obj;
    Object.assign(spec, { clusterIP: 'fd00:96::a', clusterIPs: ['fd00:96::a'], ipFamilies: ['IPv6'] });
    return [svc, { ...slice, addressType: 'IPv6' }];
  };
  const t = await started(v6([{ ip: 'fd00:2::1' }, { ip: 'fd00:2::2' }]));
  assert.ok((t.writer.maps.get('backends6')?.size ?? 0) > 0, 'the IPv6 backends are in backends6');
  const s = t.a.nextSync();
  t.put(v6([{ ip: 'fd00:2::2' }])[1]!);
  await s;
  assert.deepEqual(t.flushed, [['[fd00:2::1]:5353/udp']]);
  await t.a.close();
});
