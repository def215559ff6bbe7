// Service, EndpointSlice, Endpoints, Pod and Namespace read through typed schemas (shapes.ts), as the
// policy kinds are (issue 11 item 2): a field of the wrong shape is refused with its path and
// file:line:col, where the helpers read it as absent, and often as something else: a map for `ports`
// became a Service without ports, `ready: "false"` a ready endpoint, `hostNetwork: "true"` a pod
// endpoint, a label `app: true` a pod without that label (so outside the policies selecting it).
// What the schemas must tolerate: the fields the API server adds (uid, managedFields, status.hostIP,
// ...) and the agent's slimmed objects (agent/slim.ts keeps only the fields the modules read).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { slim, type Kind } from '../../src/agent/slim.js';
import { contributionOf } from '../../src/datapath/k8s/sum.js';
import { load, refusal } from '../helpers/k8s.js';

function refused(yaml: string, path: string, why: RegExp, leftOut: RegExp): void {
  const e = refusal(yaml);
  const f = e.findings.find((x) => x.path === path);
  assert.ok(f, `a finding at ${path}; got ${e.findings.map((x) => `${x.path}: ${x.why}`).join('; ')}`);
  assert.match(f.why, why);
  assert.match(f.leftOut, leftOut);
  assert.ok(f.line > 1 && f.col > 0, `file:line:col kept (${f.line}:${f.col})`);
}

const SVC = (spec: string, md = '') => `apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: prod${md}}\nspec:\n  clusterIP: 10.96.0.10\n${spec}`;
const SLICE = (body: string) => `apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: web-1, namespace: prod, labels: {kubernetes.io/service-name: web}}\naddressType: IPv4\n${body}`;
const POD = (body: string, labels = '{app: web}') => `apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: prod, labels: ${labels}}\n${body}`;

test('Service: wrongly shaped fields are refused by path (ports as a map was a Service without ports)', () => {
  const LEFT = /this Service is left out/;
  refused(SVC('  ports: {port: 80}'), 'spec.ports', /expected a list, got a map/, LEFT);
  refused(SVC('  selector: [app, web]\n  ports: [{port: 80}]'), 'spec.selector', /expected a map, got a list/, LEFT);
  refused(SVC('  ports: [{port: "80"}]'), 'spec.ports[0].port', /expected a number, got string "80"/, LEFT);
  refused(SVC('  clusterIPs: 10.96.0.10\n  ports: [{port: 80}]'), 'spec.clusterIPs', /expected a list/, LEFT);
  refused(SVC('  sessionAffinity: ClientIP\n  sessionAffinityConfig: {clientIP: {timeoutSeconds: "600"}}\n  ports: [{port: 80}]'), 'spec.sessionAffinityConfig.clientIP.timeoutSeconds', /expected a number/, LEFT);
  refused(SVC('  ports: [{port: 80}]', ', labels: {tier: 1}'), 'metadata.labels.tier', /expected a string, got number 1/, LEFT);
  refused(`${SVC('  type: LoadBalancer\n  ports: [{port: 80}]')}\nstatus: {loadBalancer: {ingress: {ip: 192.0.2.1}}}`, 'status.loadBalancer.ingress', /expected a list/, LEFT);
});

test('EndpointSlice and Endpoints: wrongly shaped fields are refused by path (ready: "false" was a ready backend)', () => {
  const LEFT = /this EndpointSlice is left out/;
  refused(SLICE('ports: [{name: http, port: 8080}]\nendpoints: [{addresses: [10.0.1.1], conditions: {ready: "false"}}]'), 'endpoints[0].conditions.ready', /expected a boolean, got string "false"/, LEFT);
  refused(SLICE('ports: [{port: 8080}]\nendpoints: {addresses: [10.0.1.1]}'), 'endpoints', /expected a list, got a map/, LEFT);
  refused(SLICE('ports: [{port: 8080}]\nendpoints: [{addresses: 10.0.1.1}]'), 'endpoints[0].addresses', /expected a list/, LEFT);
  refused(SLICE('ports: [{port: "8080"}]\nendpoints: []'), 'ports[0].port', /expected a number/, LEFT);
  const eps = (subsets: string) => `apiVersion: v1\nkind: Endpoints\nmetadata: {name: web, namespace: prod}\nsubsets: ${subsets}`;
  refused(eps('{addresses: [{ip: 10.0.1.1}]}'), 'subsets', /expected a list, got a map/, /this Endpoints is left out/);
  refused(eps('[{addresses: [10.0.1.1], ports: [{port: 8080}]}]'), 'subsets[0].addresses[0]', /expected a map, got string/, /this Endpoints is left out/);
  // the slice still belongs to its Service: the Service does not fall back to its selector's pods
  const d = load(`${SVC('  selector: {app: web}\n  ports: [{name: http, port: 80, targetPort: 8080}]')}\n---\n${SLICE('ports: [{name: http, port: 8080}]\nendpoints: {addresses: [10.0.1.1]}')}\n---\n${POD('status: {phase: Running, podIP: 10.0.1.9}')}`, { allowPartial: true });
  assert.deepEqual(d.state.services.map((s) => s.backends.length), [0]);
});

test('Pod and Namespace: wrongly shaped fields are refused by path (hostNetwork: "true" and a label app: true were read as absent)', () => {
  const LEFT = /this pod is left out: policies do not apply to it/;
  refused(POD('spec: {hostNetwork: "true"}\nstatus: {podIP: 10.0.1.1}'), 'spec.hostNetwork', /expected a boolean/, LEFT);
  refused(POD('status: {podIP: 10.0.1.1}', '{app: true}'), 'metadata.labels.app', /expected a string, got boolean true/, LEFT);
  refused(POD('status: {podIP: 10.0.1.1, podIPs: 10.0.1.1}'), 'status.podIPs', /expected a list/, LEFT);
  refused(POD('spec: {containers: [{ports: [{name: http, containerPort: "8080"}]}]}\nstatus: {podIP: 10.0.1.1}'), 'spec.containers[0].ports[0].containerPort', /expected a number/, LEFT);
  refused(POD('status: {podIP: 10.0.1.1, conditions: {type: Ready}}'), 'status.conditions', /expected a list/, LEFT);
  refused('apiVersion: v1\nkind: Namespace\nmetadata: {name: prod, labels: {env: 1}}', 'metadata.labels.env', /expected a string, got number 1/, /this Namespace is left out/);
});

// As the API server returns them: the fields the modules read and many they do not.
const FULL: Record<Kind, Record<string, unknown>> = {
  Namespace: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'prod', uid: 'u1', resourceVersion: '7', creationTimestamp: '2026-01-01T00:00:00Z', labels: { env: 'prod', 'kubernetes.io/metadata.name': 'prod' }, managedFields: [{ manager: 'kubectl', operation: 'Update' }] }, spec: { finalizers: ['kubernetes'] }, status: { phase: 'Active' } },
  Pod: {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'p', namespace: 'prod', uid: 'u2', labels: { app: 'web' }, ownerReferences: [{ kind: 'ReplicaSet', name: 'rs' }], annotations: { 'kubectl.kubernetes.io/restartedAt': 'x' } },
    spec: { nodeName: 'n1', serviceAccountName: 'sa', dnsPolicy: 'ClusterFirst', containers: [{ name: 'c', image: 'x', ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }], resources: {} }], tolerations: [{ key: 'k', operator: 'Exists' }] },
    status: { phase: 'Running', hostIP: '192.0.2.1', hostIPs: [{ ip: '192.0.2.1' }], podIP: '10.0.1.1', podIPs: [{ ip: '10.0.1.1' }, { ip: 'fd00::1' }], qosClass: 'BestEffort', startTime: '2026-01-01T00:00:00Z', conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: '2026-01-01T00:00:00Z' }], containerStatuses: [{ name: 'c', ready: true }] },
  },
  Service: {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'web', namespace: 'prod', uid: 'u3', annotations: { 'prep-node.io/lb-algorithm': 'maglev', other: 'x' } },
    spec: { type: 'LoadBalancer', clusterIP: '10.96.0.10', clusterIPs: ['10.96.0.10', 'fd00:96::a'], ipFamilies: ['IPv4', 'IPv6'], ipFamilyPolicy: 'PreferDualStack', selector: { app: 'web' }, sessionAffinity: 'None', internalTrafficPolicy: 'Cluster', externalTrafficPolicy: 'Cluster', allocateLoadBalancerNodePorts: true, ports: [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 'http', nodePort: 30080 }] },
    status: { loadBalancer: { ingress: [{ ip: '198.51.100.7', ipMode: 'VIP', ports: [{ port: 80, protocol: 'TCP' }] }] }, conditions: [] },
  },
  EndpointSlice: {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: 'web-1', namespace: 'prod', labels: { 'kubernetes.io/service-name': 'web', 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io' }, generateName: 'web-' },
    addressType: 'IPv4',
    ports: [{ name: 'http', port: 8080, protocol: 'TCP', appProtocol: 'http' }],
    endpoints: [{ addresses: ['10.0.1.1'], conditions: { ready: true, serving: true, terminating: false }, nodeName: 'n1', zone: 'z1', targetRef: { kind: 'Pod', name: 'p' }, hints: { forZones: [{ name: 'z1' }] } }],
  },
  NetworkPolicy: { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name: 'np', namespace: 'prod' }, spec: { podSelector: {} } },
  CiliumNetworkPolicy: { apiVersion: 'cilium.io/v2', kind: 'CiliumNetworkPolicy', metadata: { name: 'c', namespace: 'prod' }, spec: { endpointSelector: {} } },
  Node: { apiVersion: 'v1', kind: 'Node', metadata: { name: 'n1' }, status: { addresses: [] } },
};

test('the API server\'s extra fields and the agent\'s slimmed objects read the same, with no finding', () => {
  const origin = (what: string) => ({ file: 'api', doc: 0, base: [], what, line: 0, col: 0, at: () => ({ line: 0, col: 0 }) });
  for (const kind of ['Namespace', 'Pod', 'Service', 'EndpointSlice'] as const) {
    const at = origin(kind);
    const full = contributionOf({ origin: at, obj: FULL[kind] });
    const slimmed = contributionOf({ origin: at, obj: slim(kind, FULL[kind]) });
    assert.deepEqual(full.sink.findings.list, [], `${kind}: no finding for the API server's fields`);
    assert.deepEqual(slimmed.sink.findings.list, [], `${kind}: no finding once slimmed`);
    assert.deepEqual({ ...slimmed, sink: null }, { ...full, sink: null }, `${kind}: the slimmed object reads as the full one`);
  }
  const pod = contributionOf({ origin: origin('Pod'), obj: FULL.Pod });
  assert.ok(pod.kind === 'Pod' && pod.pod !== null);
  assert.deepEqual([pod.pod.ip, pod.pod.ip6, pod.pod.nodeName, pod.pod.ready, pod.pod.ports], ['10.0.1.1', 'fd00::1', 'n1', true, [{ name: 'http', port: 8080, protocol: 'tcp' }]]);
  const svc = contributionOf({ origin: origin('Service'), obj: FULL.Service });
  assert.ok(svc.kind === 'Service' && svc.service !== null);
  assert.deepEqual(svc.service.vips.map((v) => `${v.kind} ${v.ip}`), ['ClusterIP 10.96.0.10', 'ClusterIP fd00:96::a', 'LoadBalancer 198.51.100.7']);
  assert.equal(svc.service.algorithm, 'maglev');
});
