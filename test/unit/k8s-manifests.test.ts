// Reading `sync -f FILE|DIR`: files of a directory in name order, multi-document YAML, JSON, kind List,
// the prep-node state format still read as before, located syntax errors, unknown kinds, and the
// all-or-nothing rule (every finding listed, nothing synced) unless --allow-partial.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadDesired, ManifestRefusal } from '../../src/datapath/k8s/index.js';
import { inputFiles } from '../../src/datapath/k8s/manifests.js';
import { compileState } from '../../src/datapath/compile.js';
import { load, refusal } from '../helpers/k8s.js';

const FIX = (p: string) => fileURLToPath(new URL(`../../../test/fixtures/${p}`, import.meta.url));

async function rejects(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  assert.fail('did not fail');
}

test('a real cluster dump (kind: List, every server-side field) is read as it is', async () => {
  const d = await loadDesired(FIX('k8s/cluster/dump.yaml'));
  assert.equal(d.format, 'manifests');
  assert.deepEqual(d.leftOut, []);
  assert.deepEqual(d.counts, { Namespace: 1, Pod: 2, Service: 1, EndpointSlice: 1, NetworkPolicy: 1 });
  assert.deepEqual(
    d.state.services.map((s) => [s.vip, s.port, s.backends.map((b) => `${b.ip}:${b.port}`), s.sessionAffinity?.timeoutSeconds]),
    [
      ['10.96.14.200', 80, ['10.244.1.17:8080'], 10800],
      ['10.96.14.200', 9102, ['10.244.1.17:9102'], 10800],
    ],
  );
  assert.deepEqual(d.state.endpoints.map((e) => e.name).sort(), ['demo.api-7c9d8f6b5d-x2k9q', 'demo.web-5f7b8c9d4-j7m2n']);
  // the named port `http` of the api pod is 8080: the policy allows 8080 and 9102 from web
  const entries = compileState(d.state).entries.filter((e) => e.map === 'policy');
  assert.deepEqual(entries.map((e) => e.note.replace(/^\d+ /, '').replace(/ \d+ /, ' WEB ')).sort(), ['ingress WEB tcp/8080/16: allow (np.demo.api-from-web.1/ingress/1)', 'ingress WEB tcp/9102/16: allow (np.demo.api-from-web.1/ingress/0)']);
});

test('a directory: *.yaml, *.yml, *.json in name order; a kind with nothing to enforce refuses the whole input', async () => {
  assert.deepEqual(
    (await inputFiles(FIX('k8s/cluster'))).map((f) => f.split('/').pop()),
    ['dump.yaml', 'extra.json'],
  );
  const e = await rejects(loadDesired(FIX('k8s/cluster')));
  assert.ok(e instanceof ManifestRefusal);
  assert.equal(e.findings.length, 1);
  assert.match(e.details[0]!, /extra\.json:1:\d+: ConfigMap demo\/settings \(document 1\): kind: kind ConfigMap \(v1\) has nothing the datapath can enforce/);
  const d = await loadDesired(FIX('k8s/cluster'), { allowPartial: true });
  assert.equal(d.leftOut.length, 1);
  assert.equal(d.state.services.length, 2, 'the rest is enforced');
});

test('the prep-node state format is still read, with its located errors', async () => {
  const d = await loadDesired(FIX('datapath/state.yaml'));
  assert.equal(d.format, 'state');
  assert.equal(d.state.services.length, 2);
  const dir = mkdtempSync(join(tmpdir(), 'pn-k8s-'));
  try {
    writeFileSync(join(dir, 'bad.yaml'), 'services:\n  - name: web\n    vip: 10.96.0.300\n    port: 80\n    protocol: tcp\n');
    const e = await rejects(loadDesired(join(dir, 'bad.yaml')));
    assert.match(e.message, /bad\.yaml:3:\d+: services\.0\.vip: /);
    writeFileSync(join(dir, 'syntax.yaml'), 'apiVersion: v1\nkind: Pod\n---\napiVersion: v1\nkind: [Pod\n');
    const s = await rejects(loadDesired(join(dir, 'syntax.yaml')));
    assert.match(s.message, /syntax\.yaml:\d+:\d+: invalid YAML \(document 2\)/);
    const empty = mkdtempSync(join(dir, 'empty-'));
    assert.match((await rejects(loadDesired(empty))).message, /no \*\.yaml, \*\.yml or \*\.json files/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('documents: empty ones are skipped, a scalar or a map without kind is refused with its document number', () => {
  const e = refusal('---\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\njust text\n---\nfoo: bar\n');
  assert.deepEqual(
    e.findings.map((f) => [f.doc, f.path, f.line]),
    [
      [4, 'kind', 9],
      [3, '(object)', 7],
    ],
  );
  assert.match(e.findings[0]!.why, /no kind/);
  assert.match(e.findings[1]!.why, /expected a Kubernetes object/);
});

test('wrong apiVersion of a known kind is refused (v1beta1 slices have other fields)', () => {
  const e = refusal('apiVersion: discovery.k8s.io/v1beta1\nkind: EndpointSlice\nmetadata: {name: x, namespace: a}\n');
  assert.equal(e.findings[0]!.path, 'apiVersion');
  assert.match(e.findings[0]!.why, /read as discovery\.k8s\.io\/v1/);
});

test('all or nothing: every finding of every document is listed, in one refusal', () => {
  const e = refusal(`apiVersion: apps/v1
kind: Deployment
metadata: {name: d, namespace: a}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p, namespace: a}
spec:
  podSelector: {}
  ingress: [{ports: [{protocol: ICMP}]}]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: c, namespace: a}
spec:
  endpointSelector: {}
  egress: [{toFQDNs: [{matchName: x.example}]}]
`);
  assert.deepEqual(
    e.findings.map((f) => `${f.doc} ${f.object} ${f.path}`),
    ['1 Deployment a/d kind', '2 NetworkPolicy a/p spec.ingress[0].ports[0].protocol', '3 CiliumNetworkPolicy a/c spec.egress[0].toFQDNs'],
  );
  assert.match(e.message, /^3 parts of the manifests cannot be enforced by the datapath; nothing was synced/);
  assert.equal(e.details.length, 3);
  assert.match(e.details[2]!, /^m\.yaml:17:\d+: CiliumNetworkPolicy a\/c \(document 3\): spec\.egress\[0\]\.toFQDNs: DNS names/);
});

test('the namespace defaults to "default", as kubectl apply without -n', () => {
  const d = load('apiVersion: v1\nkind: Pod\nmetadata: {name: p, labels: {a: b}}\nstatus: {podIP: 10.1.1.1}\n');
  assert.equal(d.state.endpoints[0]!.name, 'default.p');
  assert.equal(d.state.endpoints[0]!.labels['io.kubernetes.pod.namespace'], 'default');
});
