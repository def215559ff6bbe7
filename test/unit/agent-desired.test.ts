// The agent's desired state as a sum of per-object contributions: an event recomputes only the units
// it touches and yields exactly the entries that changed; after any sequence of events the entries
// equal those of a fresh store given the same objects (what a restarted agent would compute).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HeldObjects } from '../../src/agent/desired.js';
import { compileState } from '../../src/datapath/compile.js';
import { translate } from '../../src/datapath/k8s/sum.js';
import { buildNames, type NamesIndex } from '../../src/datapath/observe.js';
import { DatapathStateSchema } from '../../src/datapath/schema.js';

type Obj = Record<string, unknown>;
const svc = (i: number, extra: Obj = {}): Obj => ({ apiVersion: 'v1', kind: 'Service', metadata: { name: `s${i}`, namespace: 'a' }, spec: { clusterIP: `10.96.0.${i}`, selector: { app: `s${i}` }, ports: [{ name: 'http', port: 80, targetPort: 8080 }], ...extra } });
const slice = (i: number, ips: string[]): Obj => ({
  apiVersion: 'discovery.k8s.io/v1',
  kind: 'EndpointSlice',
  metadata: { name: `s${i}-x`, namespace: 'a', labels: { 'kubernetes.io/service-name': `s${i}` } },
  addressType: 'IPv4',
  ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
  endpoints: ips.map((ip) => ({ addresses: [ip] })),
});
const pod = (name: string, ip: string, app: string): Obj => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'a', labels: { app } }, spec: {}, status: { phase: 'Running', podIP: ip } });
const np: Obj = { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name: 'p', namespace: 'a' }, spec: { podSelector: { matchLabels: { app: 's1' } }, ingress: [{ from: [{ podSelector: { matchLabels: { app: 's2' } } }] }] } };
const kindOf = (o: Obj) => o.kind as 'Service' | 'EndpointSlice' | 'Pod' | 'NetworkPolicy';
const key = (o: Obj) => `${String((o.metadata as Obj).namespace)}/${String((o.metadata as Obj).name)}`;
const sorted = (h: HeldObjects) => h.compile('n1').entries.map((e) => `${e.map} ${e.keyHex} ${e.valueHex}`).sort();

function fresh(objects: Obj[]): HeldObjects {
  const h = new HeldObjects();
  for (const o of objects) h.upsert(kindOf(o), o);
  return h;
}

test('an EndpointSlice change yields only its service\'s changed entries; the store then equals a fresh one', () => {
  const objs = [svc(1), svc(2), slice(1, ['10.0.0.1', '10.0.0.2']), slice(2, ['10.0.0.3']), pod('p1', '10.0.0.1', 's1'), pod('p3', '10.0.0.3', 's2'), np];
  const h = fresh(objs);
  const before = sorted(h);
  assert.ok(before.some((l) => l.startsWith('policy ')), 'the policy unit is compiled');
  const changed = slice(1, ['10.0.0.1', '10.0.0.9']);
  h.upsert('EndpointSlice', changed);
  const d = h.delta('n1');
  assert.ok(d.changes.length > 0 && d.changes.every((c) => c.map === 'backends' || c.map === 'services' || c.map === 'maglev'), JSON.stringify(d.changes));
  assert.ok(d.changes.every((c) => /10\.96\.0\.1:80/.test(c.note)), 'only s1 changes');
  assert.deepEqual(h.delta('n1').changes, [], 'nothing left to do');
  assert.deepEqual(sorted(h), sorted(fresh([...objs.filter((o) => o !== objs[2]), changed])));
});

test('removing a Service deletes its entries; a second Service on the same VIP takes it over when the first goes', () => {
  const dup = { ...svc(3), metadata: { name: 'dup', namespace: 'a' } };
  const objs = [svc(3), slice(3, ['10.0.0.5']), dup];
  const h = fresh(objs);
  const first = h.compile('n1');
  assert.ok(first.findings.some((f) => /10\.96\.0\.3:80\/tcp is also Service a\/s3's/.test(f)), first.findings.join('\n'));
  h.remove('Service', key(svc(3)));
  const d = h.delta('n1');
  assert.ok(d.changes.some((c) => c.map === 'services' && c.valueHex !== null), 'dup now holds the VIP');
  assert.deepEqual(sorted(h), sorted(fresh([slice(3, ['10.0.0.5']), dup])));
  h.remove('Service', 'a/dup');
  assert.ok(h.delta('n1').changes.every((c) => c.valueHex === null));
  assert.deepEqual(h.compile('n1').entries, []);
});

test('a pod change recomputes the policy unit and the services whose backends are pods, not the others', () => {
  const objs = [svc(1), svc(2), slice(2, ['10.0.0.3']), pod('p1', '10.0.0.1', 's1'), np];
  const h = fresh(objs);
  h.compile('n1');
  const p2 = pod('p2', '10.0.0.2', 's1');
  h.upsert('Pod', p2);
  const d = h.delta('n1');
  assert.ok(d.changes.some((c) => c.map === 'endpoints'), 'the new endpoint');
  assert.ok(d.changes.some((c) => c.map === 'backends' && /10\.96\.0\.1:80/.test(c.note)), 's1 has no slice: its backends are the pods');
  assert.ok(!d.changes.some((c) => /10\.96\.0\.2:80/.test(c.note)), 's2 has a slice: untouched');
  assert.deepEqual(sorted(h), sorted(fresh([...objs, p2])));
});

test('a Service labelled service.kubernetes.io/service-proxy-name belongs to another proxy: no entries', () => {
  const other = { ...svc(4), metadata: { name: 's4', namespace: 'a', labels: { 'service.kubernetes.io/service-proxy-name': 'other' } } };
  assert.deepEqual(fresh([other, slice(4, ['10.0.0.7'])]).compile('n1').entries, []);
});

test('the agent\'s node: its name and its Node\'s address give node_cfg, remote backends and pods, and Local policies', () => {
  const h = new HeldObjects();
  h.upsert('Node', { apiVersion: 'v1', kind: 'Node', metadata: { name: 'n1' }, status: { addresses: [{ type: 'InternalIP', address: '192.0.2.10' }] } });
  h.upsert('Service', svc(1, { type: 'NodePort', externalTrafficPolicy: 'Local', ports: [{ name: 'http', port: 80, targetPort: 8080, nodePort: 30080 }] }));
  const s = slice(1, []);
  s.endpoints = [{ addresses: ['10.0.0.1'], nodeName: 'n1' }, { addresses: ['10.0.0.2'], nodeName: 'n2' }];
  h.upsert('EndpointSlice', s);
  h.upsert('Pod', { ...pod('p1', '10.0.0.1', 's1'), spec: { nodeName: 'n1' } });
  h.upsert('Pod', { ...pod('p2', '10.0.0.2', 's1'), spec: { nodeName: 'n2' } });
  const c = h.compile('n1');
  assert.deepEqual(c.findings, [], 'Local is kept, not left out, when the node is known');
  const notes = c.entries.map((e) => `${e.map}: ${e.note}`);
  assert.ok(notes.includes('node_cfg: node n1 SNAT address 192.0.2.10'), notes.join('\n'));
  assert.ok(!notes.some((n) => n.startsWith('node_cfg6')), 'an IPv4-only Node: no IPv6 SNAT address');
  assert.equal(notes.filter((n) => /^backends: .*10\.96\.0\.1:80\/tcp slot \d → 10\.0\.0\.2:8080 \(remote\)$/.test(n)).length, 1, notes.join('\n'));
  assert.deepEqual(notes.filter((n) => n.startsWith('backends: ') && n.includes('192.0.2.10:30080')).map((n) => n.replace(/.* → /, '')), ['10.0.0.1:8080']);
  assert.ok(notes.some((n) => /^services: .*192\.0\.2\.10:30080\/tcp .*, external, externalTrafficPolicy Local$/.test(n)), notes.join('\n'));
  assert.ok(notes.some((n) => n.startsWith('ipcache: a.p2 10.0.0.2 on node n2')), notes.join('\n'));
  assert.ok(notes.some((n) => n.startsWith('endpoints: a.p1 10.0.0.1 ')));
  // the same objects as seen from n2: the other backend is the local one, and a fresh store agrees
  const other = new HeldObjects();
  for (const [k, o] of [['Service', svc(1, { type: 'NodePort', externalTrafficPolicy: 'Local', ports: [{ name: 'http', port: 80, targetPort: 8080, nodePort: 30080 }] })], ['EndpointSlice', s]] as const) other.upsert(k, o);
  const remote = other.compile('n2').entries.map((e) => e.note).filter((n) => n.endsWith('(remote)'));
  assert.deepEqual(remote.map((n) => n.replace(/.* → /, '')), ['10.0.0.1:8080 (remote)']);
});

/** The names index by the whole translation (what the agent did before it kept per-unit parts). */
function translatedNames(objects: Obj[], nodeAddresses: string[], nodeName?: string): NamesIndex {
  const input = objects.map((obj) => ({ origin: { file: 'api', doc: 0, base: [], what: `${String(obj.kind)} ${key(obj)}`, line: 0, col: 0, at: () => ({ line: 0, col: 0 }) }, obj }));
  const t = translate(input, { nodeAddresses, ...(nodeName !== undefined && { nodeName }) });
  const state = DatapathStateSchema.parse(t.state);
  return buildNames(state, compileState(state), t.origins, 'test', new Date(0));
}

test('a dual-stack Node: its IPv6 InternalIP gives node_cfg6 and the IPv6 NodePort VIP, whose remote backend is taken (Cluster policy: SNATed; a unit was refused without the node\'s addresses); a change of it rewrites both', () => {
  const h = new HeldObjects();
  const node = (v6: string): Obj => ({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'n1' }, status: { addresses: [{ type: 'InternalIP', address: '192.0.2.10' }, { type: 'InternalIP', address: v6 }] } });
  h.upsert('Node', node('fd00:2::10'));
  h.upsert('Service', svc(1, { type: 'NodePort', ipFamilies: ['IPv6'], ipFamilyPolicy: 'SingleStack', clusterIP: 'fd00:96::1', clusterIPs: ['fd00:96::1'], ports: [{ name: 'http', port: 80, targetPort: 8080, nodePort: 30080 }] }));
  const s = slice(1, []);
  s.addressType = 'IPv6';
  s.endpoints = [{ addresses: ['fd00:1::1'], nodeName: 'n1' }, { addresses: ['fd00:1::2'], nodeName: 'n2' }];
  h.upsert('EndpointSlice', s);
  const c = h.compile('n1');
  assert.deepEqual(c.findings, []);
  const notes = c.entries.map((e) => `${e.map}: ${e.note}`);
  assert.ok(notes.includes('node_cfg: node n1 SNAT address 192.0.2.10'), notes.join('\n'));
  assert.ok(notes.includes('node_cfg6: node n1 IPv6 SNAT address fd00:2::10'), notes.join('\n'));
  assert.ok(notes.some((n) => /^services6: .*\[fd00:2::10\]:30080\/tcp .*, external$/.test(n)), notes.join('\n'));
  assert.equal(notes.filter((n) => /^backends6: .*\[fd00:2::10\]:30080\/tcp slot \d → \[fd00:1::2\]:8080 \(remote\)$/.test(n)).length, 1, notes.join('\n'));
  assert.ok(!notes.some((n) => n.startsWith('services: ') && n.includes(':30080')), 'an IPv6-only Service opens no IPv4 node port');
  h.upsert('Node', node('fd00:2::11'));
  const d = h.delta('n1');
  const changed = d.changes.map((ch) => `${ch.map}: ${ch.note}`).join('\n');
  assert.match(changed, /node_cfg6: node n1 IPv6 SNAT address fd00:2::11/);
  assert.match(changed, /services6: .*\[fd00:2::11\]:30080/);
});

test('the names index from the units\' parts equals the whole translation\'s, and follows changes without one', () => {
  const cidrNp: Obj = { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name: 'q', namespace: 'a' }, spec: { podSelector: {}, policyTypes: ['Egress'], egress: [{ to: [{ ipBlock: { cidr: '198.18.0.0/16', except: ['198.18.1.0/24'] } }], ports: [{ port: 53, protocol: 'UDP' }] }] } };
  const objs = [svc(1), svc(2), svc(3, { ports: [{ name: 'http', port: 80, targetPort: 8080 }, { name: 'dns', port: 53, protocol: 'UDP', targetPort: 8053 }] }), slice(1, ['10.0.0.1', '10.0.0.2']), slice(2, ['10.0.0.3']), pod('p1', '10.0.0.1', 's1'), pod('p3', '10.0.0.3', 's2'), pod('p4', '10.0.0.4', 's3'), np, cidrNp];
  const h = fresh(objs);
  h.compile('n1');
  const v0 = h.namesVersion;
  const names = h.names('test', new Date(0));
  assert.ok(Object.keys(names.services).length >= 3 && Object.keys(names.endpoints).length === 3 && Object.keys(names.rules).length > 0 && Object.keys(names.cidrs).length > 0, JSON.stringify(names));
  assert.deepEqual(names, translatedNames(objs, [], 'n1'));
  // an EndpointSlice change that keeps every port's backends says nothing new: same version
  h.upsert('EndpointSlice', slice(1, ['10.0.0.1', '10.0.0.9']));
  h.delta('n1');
  assert.equal(h.namesVersion, v0);
  // a Service removed and a pod added: the index follows, equal to the translation of what is held
  h.remove('Service', 'a/s2');
  h.upsert('Pod', pod('p5', '10.0.0.5', 's1'));
  h.delta('n1');
  assert.ok(h.namesVersion > v0);
  const now = [svc(1), svc(3, { ports: [{ name: 'http', port: 80, targetPort: 8080 }, { name: 'dns', port: 53, protocol: 'UDP', targetPort: 8053 }] }), slice(1, ['10.0.0.1', '10.0.0.9']), slice(2, ['10.0.0.3']), pod('p1', '10.0.0.1', 's1'), pod('p3', '10.0.0.3', 's2'), pod('p4', '10.0.0.4', 's3'), pod('p5', '10.0.0.5', 's1'), np, cidrNp];
  assert.deepEqual(h.names('test', new Date(0)), translatedNames(now, [], 'n1'));
});

test('an EndpointSlice changed in place (the slice-only path): after any sequence the entries equal a fresh store\'s, across ready flips, added, removed and terminating endpoints and a second slice', () => {
  const h = new HeldObjects();
  const objs = new Map<string, Obj>();
  const put = (o: Obj) => {
    objs.set(`${kindOf(o)} ${key(o)}`, o);
    h.upsert(kindOf(o), o);
  };
  const ep = (ip: string, ready = true, terminating = false, nodeName?: string) => ({ addresses: [ip], conditions: { ready, serving: ready || terminating, terminating }, ...(nodeName !== undefined && { nodeName }) });
  const withEps = (i: number, name: string, eps: Obj[]): Obj => ({ ...slice(i, []), metadata: { name, namespace: 'a', labels: { 'kubernetes.io/service-name': `s${i}` } }, endpoints: eps });
  for (let i = 1; i <= 3; i++) put(svc(i, i === 3 ? { type: 'NodePort', ports: [{ name: 'http', port: 80, targetPort: 8080, nodePort: 30080 }] } : {}));
  put({ ...svc(4), metadata: { name: 's4', namespace: 'a', annotations: { 'prep-node.io/lb-algorithm': 'maglev' } } });
  put({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'n1' }, status: { addresses: [{ type: 'InternalIP', address: '198.18.0.1' }] } });
  for (let i = 1; i <= 4; i++) put(withEps(i, `s${i}-x`, [ep(`10.1.${i}.1`), ep(`10.1.${i}.2`), ep(`10.1.${i}.3`)]));
  h.delta('n1');
  const steps: Obj[] = [
    withEps(1, 's1-x', [ep('10.1.1.1'), ep('10.1.1.2', false), ep('10.1.1.3')]),
    withEps(1, 's1-x', [ep('10.1.1.1'), ep('10.1.1.2'), ep('10.1.1.3')]),
    withEps(2, 's2-x', [ep('10.1.2.0'), ep('10.1.2.1'), ep('10.1.2.3')]),
    withEps(3, 's3-x', [ep('10.1.3.1', true, false, 'n2'), ep('10.1.3.2')]),
    withEps(1, 's1-y', [ep('10.1.1.9')]),
    withEps(1, 's1-y', [ep('10.1.1.9', false), ep('10.1.1.8')]),
    withEps(2, 's2-x', [ep('10.1.2.0', false, true), ep('10.1.2.1', false, true)]),
    withEps(2, 's2-x', [ep('10.1.2.0', false, true), ep('10.1.2.1')]),
    withEps(4, 's4-x', [ep('10.1.4.1'), ep('10.1.4.2', false), ep('10.1.4.3')]),
    withEps(4, 's4-x', [ep('10.1.4.1'), ep('10.1.4.2'), ep('10.1.4.3'), ep('10.1.4.4')]),
    withEps(1, 's1-x', []),
  ];
  for (const s of steps) {
    put(s);
    h.delta('n1');
    assert.deepEqual(sorted(h), sorted(fresh([...objs.values()])), `after ${JSON.stringify((s.metadata as Obj).name)} ${JSON.stringify(s.endpoints)}`);
  }
  assert.ok(h.compile('n1').entries.some((e) => e.map === 'maglev'), 's4 is a Maglev service: its table follows its slice');
  // a NodePort's backend on another node is SNATed to this node's address: not refused (the node's addresses are given to the schema)
  assert.equal(h.delta('n1').refused, undefined);
});

test('an EndpointSlice changed in place with a backend the schema refuses: refused as a whole recomputation refuses it, the entries left as they were', () => {
  const h = new HeldObjects();
  h.upsert('Service', svc(1));
  h.upsert('EndpointSlice', slice(1, ['10.1.1.1']));
  const ok = h.delta('n1');
  assert.equal(ok.refused, undefined);
  const bad = { ...slice(1, []), endpoints: [{ addresses: ['10.1.1.1'] }, { addresses: ['10.1.1.2'], nodeName: 'Not_A_Node' }] };
  h.upsert('EndpointSlice', bad);
  const d = h.delta('n1');
  const whole = fresh([svc(1), bad]).delta('n1');
  assert.ok(whole.refused, 'the whole recomputation refuses the backend');
  assert.equal(d.refused, whole.refused);
  assert.deepEqual(d.changes, []);
  // the same address in a second slice with a bad node name, picked only once the first slice lets it go
  const h2 = new HeldObjects();
  const second = { ...slice(1, []), metadata: { name: 's1-y', namespace: 'a', labels: { 'kubernetes.io/service-name': 's1' } }, endpoints: [{ addresses: ['10.1.1.1'], nodeName: 'Not_A_Node' }] };
  h2.upsert('Service', svc(1));
  h2.upsert('EndpointSlice', slice(1, ['10.1.1.1']));
  h2.upsert('EndpointSlice', second);
  const first = h2.delta('n1');
  const both = fresh([svc(1), slice(1, ['10.1.1.1']), second]).delta('n1');
  assert.equal(first.refused, both.refused);
  h2.upsert('EndpointSlice', slice(1, []));
  const gone = h2.delta('n1');
  const alone = fresh([svc(1), slice(1, []), second]).delta('n1');
  assert.ok(alone.refused, 'the whole recomputation refuses the second slice\'s backend');
  assert.equal(gone.refused, alone.refused);
});
