// Optional fields read as the API server reads them: a key present with a null value is the same as
// an absent one (Go's JSON decoding leaves the field nil). For each optional field of each kind the
// field is written absent, null and empty; null must give exactly what absent gives (same state,
// same findings), and empty what the API documents for it (mostly the same as absent).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { stringify } from 'yaml';
import { nodeAddresses } from '../../src/datapath/k8s/kinds/node.js';
import { judge, load } from '../helpers/k8s.js';

type Obj = Record<string, unknown>;
type Path = (string | number)[];

const NAMESPACES = `apiVersion: v1
kind: Namespace
metadata: {name: prod, labels: {env: prod}}
---
apiVersion: v1
kind: Namespace
metadata: {name: dev, labels: {env: dev}}`;
const pod = (ns: string, name: string, ip: string, app: string) => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, namespace: ns, labels: { app } },
  spec: { serviceAccountName: 'sa', containers: [{ name: 'c', image: 'x', ports: [{ name: 'http', containerPort: 8080 }] }] },
  status: { phase: 'Running', podIP: ip, podIPs: [{ ip }], conditions: [{ type: 'Ready', status: 'True' }] },
});
const PODS = [pod('prod', 'fe', '10.0.1.1', 'fe'), pod('prod', 'be', '10.0.1.2', 'be'), pod('dev', 'fe', '10.0.2.1', 'fe')];

const SERVICE = {
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name: 'be', namespace: 'prod', labels: { app: 'be' }, annotations: { 'prep-node.io/lb-algorithm': 'random' } },
  spec: {
    type: 'ClusterIP',
    clusterIP: '10.96.0.10',
    clusterIPs: ['10.96.0.10'],
    selector: { app: 'be' },
    externalIPs: ['192.0.2.10'],
    sessionAffinity: 'ClientIP',
    sessionAffinityConfig: { clientIP: { timeoutSeconds: 60 } },
    loadBalancerSourceRanges: [],
    ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 'http' }],
  },
};
const SLICE = {
  apiVersion: 'discovery.k8s.io/v1',
  kind: 'EndpointSlice',
  metadata: { name: 'be-1', namespace: 'prod', labels: { 'kubernetes.io/service-name': 'be' } },
  addressType: 'IPv4',
  ports: [{ name: 'http', protocol: 'TCP', port: 8080 }],
  endpoints: [{ addresses: ['10.0.1.2'], conditions: { ready: true, serving: true, terminating: false }, nodeName: 'n1' }],
};
const ENDPOINTS = {
  apiVersion: 'v1',
  kind: 'Endpoints',
  metadata: { name: 'be', namespace: 'prod' },
  subsets: [{ addresses: [{ ip: '10.0.1.2' }], ports: [{ name: 'http', port: 8080, protocol: 'TCP' }] }],
};
const NP = {
  apiVersion: 'networking.k8s.io/v1',
  kind: 'NetworkPolicy',
  metadata: { name: 'be', namespace: 'prod' },
  spec: {
    podSelector: { matchLabels: { app: 'be' }, matchExpressions: [{ key: 'app', operator: 'In', values: ['be'] }] },
    policyTypes: ['Ingress', 'Egress'],
    ingress: [{ from: [{ podSelector: { matchLabels: { app: 'fe' } }, namespaceSelector: { matchLabels: { env: 'prod' } } }], ports: [{ protocol: 'TCP', port: 8080, endPort: 8081 }] }],
    egress: [{ to: [{ ipBlock: { cidr: '10.0.0.0/8', except: ['10.0.2.0/24'] } }], ports: [{ port: 'http' }] }],
  },
};
const CNP = {
  apiVersion: 'cilium.io/v2',
  kind: 'CiliumNetworkPolicy',
  metadata: { name: 'be', namespace: 'prod' },
  spec: {
    endpointSelector: { matchLabels: { app: 'be' }, matchExpressions: [{ key: 'app', operator: 'Exists' }] },
    ingress: [{ fromEndpoints: [{ matchLabels: { app: 'fe' } }], toPorts: [{ ports: [{ port: '8080', protocol: 'TCP' }] }] }],
    ingressDeny: [{ fromCIDRSet: [{ cidr: '10.0.2.0/24', except: ['10.0.2.1/32'] }] }],
    egress: [{ toCIDR: ['10.0.1.0/24'], icmps: [{ fields: [{ type: 8, family: 'IPv4' }] }] }],
    egressDeny: [{ toEntities: ['world'] }],
    enableDefaultDeny: { ingress: true, egress: true },
  },
};

function set(o: Obj, path: Path, v: unknown): Obj {
  const copy = structuredClone(o);
  let cur: Obj = copy;
  for (const k of path.slice(0, -1)) cur = cur[k as string] as Obj;
  const last = path[path.length - 1]!;
  if (v === undefined) delete cur[last as string];
  else cur[last as string] = v;
  return copy;
}

/** The datapath state and what is left out (without lines: absent and null differ in line numbers). */
function outcome(objects: Obj[]) {
  const d = load([NAMESPACES, ...objects.map((o) => stringify(o))].join('\n---\n'), { allowPartial: true, nodeAddresses: ['192.0.2.1'] });
  return { state: d.state, leftOut: d.leftOut.map((f) => `${f.object}: ${f.path}: ${f.why}`) };
}

interface Case {
  base: Obj;
  path: Path;
  /** the field's empty value ([] or {}) */
  empty: unknown;
  /** what empty means, when it is not what absent means: an assertion on the outcome */
  emptyMeans?: (o: ReturnType<typeof outcome>) => void;
  /** other objects in the input */
  with?: Obj[];
}

const CASES: Record<string, Case[]> = {
  Namespace: [{ base: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'x', labels: { a: 'b' } } }, path: ['metadata', 'labels'], empty: {} }],
  Pod: [
    ...(['labels'] as const).map((k) => ({ base: PODS[0]!, path: ['metadata', k], empty: {} })),
    { base: PODS[0]!, path: ['spec', 'containers', 0, 'ports'], empty: [] },
    { base: PODS[0]!, path: ['spec', 'containers'], empty: [] },
    { base: PODS[0]!, path: ['spec', 'serviceAccountName'], empty: undefined },
    { base: PODS[0]!, path: ['status', 'podIPs'], empty: [] },
    { base: PODS[0]!, path: ['status', 'conditions'], empty: [] },
    { base: PODS[0]!, path: ['status', 'phase'], empty: undefined },
  ],
  Service: [
    { base: SERVICE, with: PODS, path: ['spec', 'selector'], empty: {} },
    { base: SERVICE, with: PODS, path: ['spec', 'externalIPs'], empty: [] },
    { base: SERVICE, with: PODS, path: ['spec', 'clusterIPs'], empty: [] },
    { base: SERVICE, with: PODS, path: ['spec', 'sessionAffinityConfig'], empty: {} },
    { base: SERVICE, with: PODS, path: ['spec', 'loadBalancerSourceRanges'], empty: [] },
    { base: SERVICE, with: PODS, path: ['spec', 'type'], empty: undefined },
    { base: SERVICE, with: PODS, path: ['spec', 'ports'], empty: [] },
    { base: SERVICE, with: PODS, path: ['spec', 'ports', 0, 'protocol'], empty: undefined },
    { base: SERVICE, with: PODS, path: ['spec', 'ports', 0, 'targetPort'], empty: undefined },
    { base: SERVICE, with: PODS, path: ['metadata', 'annotations'], empty: {} },
  ],
  EndpointSlice: [
    { base: SLICE, with: [SERVICE], path: ['endpoints'], empty: [] },
    { base: SLICE, with: [SERVICE], path: ['ports'], empty: [] },
    { base: SLICE, with: [SERVICE], path: ['endpoints', 0, 'conditions'], empty: {} },
    ...(['ready', 'serving', 'terminating'] as const).map((k) => ({ base: SLICE, with: [SERVICE], path: ['endpoints', 0, 'conditions', k], empty: undefined })),
    { base: SLICE, with: [SERVICE], path: ['ports', 0, 'protocol'], empty: undefined },
  ],
  Endpoints: [
    { base: ENDPOINTS, with: [SERVICE], path: ['subsets'], empty: [] },
    { base: ENDPOINTS, with: [SERVICE], path: ['subsets', 0, 'ports', 0, 'protocol'], empty: undefined },
  ],
  NetworkPolicy: [
    { base: NP, with: PODS, path: ['spec', 'podSelector'], empty: {} },
    { base: NP, with: PODS, path: ['spec', 'podSelector', 'matchLabels'], empty: {} },
    { base: NP, with: PODS, path: ['spec', 'podSelector', 'matchExpressions'], empty: [] },
    { base: NP, with: PODS, path: ['spec', 'policyTypes'], empty: [] },
    {
      base: NP,
      with: PODS,
      path: ['spec', 'ingress'],
      empty: [],
      // policyTypes lists Ingress: absent, null and [] all isolate the pods for ingress, allowing nothing
    },
    { base: NP, with: PODS, path: ['spec', 'egress'], empty: [] },
    { base: NP, with: PODS, path: ['spec', 'ingress', 0, 'from'], empty: [] },
    { base: NP, with: PODS, path: ['spec', 'ingress', 0, 'ports'], empty: [] },
    { base: NP, with: PODS, path: ['spec', 'ingress', 0, 'from', 0, 'podSelector'], empty: {} },
    { base: NP, with: PODS, path: ['spec', 'ingress', 0, 'from', 0, 'namespaceSelector'], empty: {},
      emptyMeans: (o) => assert.equal(judge(o.state as never, '10.0.2.1', '10.0.1.2', 'tcp', 8080), 'allow', 'namespaceSelector {} is every namespace') },
    { base: NP, with: PODS, path: ['spec', 'ingress', 0, 'from', 0, 'podSelector', 'matchLabels'], empty: {} },
    { base: NP, with: PODS, path: ['spec', 'ingress', 0, 'ports', 0, 'protocol'], empty: undefined },
    { base: NP, with: PODS, path: ['spec', 'ingress', 0, 'ports', 0, 'endPort'], empty: undefined },
    { base: NP, with: PODS, path: ['spec', 'egress', 0, 'to', 0, 'ipBlock', 'except'], empty: [] },
    { base: NP, with: PODS, path: ['spec', 'egress', 0, 'ports', 0, 'port'], empty: undefined },
  ],
  CiliumNetworkPolicy: [
    { base: CNP, with: PODS, path: ['spec', 'endpointSelector', 'matchLabels'], empty: {} },
    { base: CNP, with: PODS, path: ['spec', 'endpointSelector', 'matchExpressions'], empty: [] },
    ...(['ingress', 'ingressDeny', 'egress', 'egressDeny'] as const).map((k) => ({ base: CNP, with: PODS, path: ['spec', k], empty: [] })),
    { base: CNP, with: PODS, path: ['spec', 'ingress', 0, 'fromEndpoints'], empty: [] },
    { base: CNP, with: PODS, path: ['spec', 'ingress', 0, 'toPorts'], empty: [] },
    { base: CNP, with: PODS, path: ['spec', 'ingress', 0, 'toPorts', 0, 'ports'], empty: [],
      emptyMeans: (o) => assert.equal(judge(o.state as never, '10.0.1.1', '10.0.1.2', 'udp', 53), 'allow', 'toPorts without ports: every TCP and UDP port') },
    { base: CNP, with: PODS, path: ['spec', 'ingress', 0, 'toPorts', 0, 'rules'], empty: {} },
    { base: CNP, with: PODS, path: ['spec', 'ingressDeny', 0, 'fromCIDRSet', 0, 'except'], empty: [] },
    { base: CNP, with: PODS, path: ['spec', 'egress', 0, 'icmps'], empty: [] },
    { base: CNP, with: PODS, path: ['spec', 'enableDefaultDeny'], empty: {} },
  ],
};

for (const [kind, cases] of Object.entries(CASES)) {
  test(`${kind}: each optional field absent, null and empty`, () => {
    for (const c of cases) {
      const name = `${kind} ${c.path.join('.')}`;
      const absent = outcome([...(c.with ?? []), set(c.base, c.path, undefined)]);
      const nulled = outcome([...(c.with ?? []), set(c.base, c.path, null)]);
      assert.deepEqual(nulled, absent, `${name}: null reads as absent`);
      assert.deepEqual(
        absent.leftOut.filter((l) => !/IPv6/.test(l)),
        [],
        `${name}: absent is not refused`,
      );
      if (c.empty === undefined) continue;
      const empty = outcome([...(c.with ?? []), set(c.base, c.path, c.empty)]);
      if (c.emptyMeans) c.emptyMeans(empty);
      else assert.deepEqual(empty, absent, `${name}: ${JSON.stringify(c.empty)} means what absent means`);
    }
  });
}

test('a podSelector whose matchLabels is YAML null selects every pod of the namespace (it was refused, and left out under --allow-partial)', () => {
  const d = load(`${NAMESPACES}\n---\n${PODS.map((p) => stringify(p)).join('---\n')}---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all, namespace: prod}
spec:
  podSelector:
    matchLabels:
  policyTypes: [Ingress]
`);
  assert.deepEqual(d.leftOut, []);
  assert.equal(judge(d.state, '10.0.2.1', '10.0.1.1', 'tcp', 80), 'default-deny');
  assert.equal(judge(d.state, '10.0.2.1', '10.0.1.2', 'tcp', 80), 'default-deny');
  assert.equal(judge(d.state, '10.0.1.1', '10.0.2.1', 'tcp', 80), 'allow', 'dev is not selected');
});

test('Node: status.addresses absent, null and empty give no NodePort addresses; both families taken', () => {
  for (const status of [{}, { addresses: null }, { addresses: [] }]) assert.deepEqual(nodeAddresses({ status }), []);
  assert.deepEqual(nodeAddresses({ status: { addresses: [{ type: 'InternalIP', address: '192.0.2.1' }, { type: 'Hostname', address: 'n1' }, { type: 'InternalIP', address: 'fd00::1' }] } }), ['192.0.2.1', 'fd00::1']);
  // IPv6 in canonical text, once; an IPv4-mapped address is not a node address
  assert.deepEqual(nodeAddresses({ status: { addresses: [{ type: 'InternalIP', address: 'FD00:0::1' }, { type: 'ExternalIP', address: 'fd00::1' }, { type: 'InternalIP', address: '::ffff:192.0.2.1' }] } }), ['fd00::1']);
});
