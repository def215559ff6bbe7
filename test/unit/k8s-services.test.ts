// Service + EndpointSlice / Endpoints / Pods → datapath services, as kube-proxy would program them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileState } from '../../src/datapath/compile.js';
import { load, refusal } from '../helpers/k8s.js';

const svc = (spec: string, extra = '', md = '') => `apiVersion: v1
kind: Service
metadata: {name: web, namespace: prod${md}}
spec:
${spec}
${extra}`;

const slice = (endpoints: string, ports = '[{name: http, port: 8080, protocol: TCP}]', name = 'web-abc') => `
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: ${name}, namespace: prod, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: ${ports}
endpoints:
${endpoints}`;

const CLUSTER_IP = `  type: ClusterIP
  clusterIP: 10.96.0.10
  clusterIPs: [10.96.0.10]
  ports: [{name: http, port: 80, protocol: TCP, targetPort: 8080}]`;

test('ClusterIP + EndpointSlice: ready endpoints are the backends, the slice port names the target', () => {
  const d = load(
    svc(
      CLUSTER_IP,
      slice(`  - {addresses: [10.0.1.1], conditions: {ready: true, serving: true, terminating: false}}
  - {addresses: [10.0.1.2]}
  - {addresses: [10.0.1.3], conditions: {ready: false, serving: false}}
  - {addresses: [10.0.1.4], conditions: {ready: false, serving: true, terminating: true}}`) + slice('  - {addresses: [10.0.1.5]}', undefined, 'web-def'),
    ),
  );
  assert.equal(d.state.services.length, 1);
  const s = d.state.services[0]!;
  assert.deepEqual([s.vip, s.port, s.protocol, s.algorithm], ['10.96.0.10', 80, 'tcp', 'random']);
  assert.deepEqual(
    s.backends.map((b) => `${b.ip}:${b.port}`),
    ['10.0.1.1:8080', '10.0.1.2:8080', '10.0.1.5:8080'],
    'ready (nil ready = ready) from both slices; not-ready and terminating left out while any is ready',
  );
  assert.equal(s.sessionAffinity, undefined);
  assert.equal(d.origins.services.get(s.name), 'prod/web:http (ClusterIP 10.96.0.10:80/tcp)');
});

test('terminating-but-serving endpoints are used only when none is ready (kube-proxy)', () => {
  const d = load(
    svc(
      CLUSTER_IP,
      slice(`  - {addresses: [10.0.1.3], conditions: {ready: false, serving: false, terminating: true}}
  - {addresses: [10.0.1.4], conditions: {ready: false, serving: true, terminating: true}}`),
    ),
  );
  assert.deepEqual(d.state.services[0]!.backends.map((b) => b.ip), ['10.0.1.4']);
  const none = load(svc(CLUSTER_IP, slice('  - {addresses: [10.0.1.3], conditions: {ready: false}}')));
  assert.deepEqual(none.state.services[0]!.backends, [], 'no backend: the VIP refuses connections');
});

test('sessionAffinity ClientIP with its timeout (and the 10800 s default); maglev by annotation', () => {
  const d = load(svc(`${CLUSTER_IP}\n  sessionAffinity: ClientIP\n  sessionAffinityConfig: {clientIP: {timeoutSeconds: 600}}`, slice('  - {addresses: [10.0.1.1]}')));
  assert.deepEqual(d.state.services[0]!.sessionAffinity, { timeoutSeconds: 600 });
  const dflt = load(svc(`${CLUSTER_IP}\n  sessionAffinity: ClientIP`, slice('  - {addresses: [10.0.1.1]}')));
  assert.deepEqual(dflt.state.services[0]!.sessionAffinity, { timeoutSeconds: 10800 });
  const mg = load(svc(CLUSTER_IP, slice('  - {addresses: [10.0.1.1]}'), ', annotations: {prep-node.io/lb-algorithm: maglev}'));
  assert.equal(mg.state.services[0]!.algorithm, 'maglev');
  assert.equal(refusal(svc(`${CLUSTER_IP}\n  sessionAffinity: ClientIP\n  sessionAffinityConfig: {clientIP: {timeoutSeconds: 0}}`)).findings[0]!.path, 'spec.sessionAffinityConfig.clientIP.timeoutSeconds');
});

test('NodePort: refused without the node addresses; with --node-address one service per address', () => {
  const spec = `  type: NodePort
  clusterIP: 10.96.0.10
  ports: [{name: http, port: 80, targetPort: 8080, nodePort: 30080, protocol: TCP}]`;
  const e = refusal(svc(spec, slice('  - {addresses: [10.0.1.1]}')));
  assert.equal(e.findings[0]!.path, 'spec.ports[0].nodePort');
  assert.match(e.findings[0]!.why, /needs the node's IPv4 addresses .* --node-address/);
  const partial = load(svc(spec, slice('  - {addresses: [10.0.1.1]}')), { allowPartial: true });
  assert.deepEqual(partial.state.services.map((s) => `${s.vip}:${s.port}`), ['10.96.0.10:80'], 'the cluster IP is still balanced');
  assert.match(partial.leftOut[0]!.leftOut, /node port is left out/);
  const d = load(svc(spec, slice('  - {addresses: [10.0.1.1]}')), { nodeAddresses: ['192.0.2.10', '192.0.2.11'] });
  assert.deepEqual(d.state.services.map((s) => `${s.vip}:${s.port}`), ['10.96.0.10:80', '192.0.2.10:30080', '192.0.2.11:30080']);
  assert.deepEqual(d.state.services[1]!.backends, d.state.services[0]!.backends);
  const local = refusal(svc(`${spec}\n  externalTrafficPolicy: Local`, slice('  - {addresses: [10.0.1.1]}')), { nodeAddresses: ['192.0.2.10'] });
  assert.equal(local.findings[0]!.path, 'spec.externalTrafficPolicy');
});

test('LoadBalancer ingress IPs and externalIPs are VIPs too', () => {
  const d = load(
    svc(`  type: LoadBalancer\n  clusterIP: 10.96.0.10\n  externalIPs: [203.0.113.5]\n  allocateLoadBalancerNodePorts: false\n  ports: [{name: http, port: 80, protocol: TCP}]`, `status: {loadBalancer: {ingress: [{ip: 198.51.100.7}]}}\n${slice('  - {addresses: [10.0.1.1]}')}`),
  );
  assert.deepEqual(d.state.services.map((s) => s.vip).sort(), ['10.96.0.10', '198.51.100.7', '203.0.113.5']);
});

test('v1 Endpoints when there is no EndpointSlice; Pods picked by the selector when there is neither', () => {
  const eps = load(
    svc(CLUSTER_IP, `---\napiVersion: v1\nkind: Endpoints\nmetadata: {name: web, namespace: prod}\nsubsets:\n  - addresses: [{ip: 10.0.1.1}, {ip: 10.0.1.2}]\n    notReadyAddresses: [{ip: 10.0.1.9}]\n    ports: [{name: http, port: 8080}]`),
  );
  assert.deepEqual(eps.state.services[0]!.backends.map((b) => `${b.ip}:${b.port}`), ['10.0.1.1:8080', '10.0.1.2:8080']);
  const pod = (name: string, ip: string, ready: string, app = 'web') =>
    `---\napiVersion: v1\nkind: Pod\nmetadata: {name: ${name}, namespace: prod, labels: {app: ${app}}}\nspec: {containers: [{name: c, ports: [{name: web, containerPort: 9000}]}]}\nstatus: {phase: Running, podIP: ${ip}, conditions: [{type: Ready, status: "${ready}"}]}`;
  const pods = load(
    svc(`  clusterIP: 10.96.0.10\n  selector: {app: web}\n  ports: [{name: http, port: 80, targetPort: web}]`, [pod('a', '10.0.1.1', 'True'), pod('b', '10.0.1.2', 'False'), pod('c', '10.0.1.3', 'True', 'other')].join('\n')),
  );
  assert.deepEqual(pods.state.services[0]!.backends.map((b) => `${b.ip}:${b.port}`), ['10.0.1.1:9000'], 'ready pods of the selector, named targetPort resolved');
  const noSel = load(svc(CLUSTER_IP));
  assert.deepEqual(noSel.state.services[0]!.backends, [], 'no selector, no endpoints: no backends');
});

test('headless and ExternalName services are noted, not refused', () => {
  const d = load(`${svc('  clusterIP: None\n  ports: [{port: 80}]')}\n---\n${svc('  type: ExternalName\n  externalName: example.com').replace('name: web', 'name: ext')}`);
  assert.equal(d.state.services.length, 0);
  assert.equal(d.leftOut.length, 0);
  assert.match(d.notes.join('\n'), /headless/);
  assert.match(d.notes.join('\n'), /ExternalName/);
});

test('SCTP Service: load-balanced when targetPort equals port (addresses are translated, ports are not); refused by path otherwise', () => {
  const sctpSlice = slice('  - {addresses: [10.0.1.1]}', '[{name: diameter, port: 3868, protocol: SCTP}]');
  const ok = load(svc('  clusterIP: 10.96.0.10\n  ports: [{name: diameter, port: 3868, protocol: SCTP, targetPort: 3868}]', sctpSlice));
  assert.deepEqual(ok.state.services.map((s) => [s.vip, s.port, s.protocol, s.backends.map((b) => `${b.ip}:${b.port}`)]), [['10.96.0.10', 3868, 'sctp', ['10.0.1.1:3868']]]);
  const moved = slice('  - {addresses: [10.0.1.1]}', '[{name: diameter, port: 3869, protocol: SCTP}]');
  const e = refusal(svc('  clusterIP: 10.96.0.10\n  ports: [{name: diameter, port: 3868, protocol: SCTP, targetPort: 3869}]', moved));
  assert.equal(e.findings[0]?.path, 'spec.ports[0]');
  assert.match(e.findings[0].why, /SCTP ClusterIP 10\.96\.0\.10:3868: the datapath translates SCTP addresses only .*targetPort must equal port/);
});

test('Service parts the datapath cannot do are refused by path', () => {
  const cases: [string, string, RegExp][] = [
    ['  clusterIP: 10.96.0.10\n  ports: [{port: 80, protocol: ICMP}]', 'spec.ports[0].protocol', /TCP, UDP and SCTP only/],
    ['  clusterIP: 10.96.0.300\n  ports: [{port: 80}]', 'spec.clusterIP', /not an IPv4 or IPv6 address/],
    ['  clusterIP: 10.96.0.10\n  clusterIPs: [10.96.0.10]\n  ipFamilies: [IPv6]\n  ports: [{port: 80}]', 'spec.clusterIPs[0]', /IPv4 address but spec.ipFamilies\[0\] is IPv6/],
    ['  ports: [{port: 80}]', 'spec.clusterIP', /no clusterIP: the API server assigns it/],
    ['  clusterIP: 10.96.0.10\n  internalTrafficPolicy: Local\n  ports: [{port: 80}]', 'spec.internalTrafficPolicy', /this node/],
    ['  clusterIP: 10.96.0.10\n  topologyKeys: ["*"]\n  ports: [{port: 80}]', 'spec.topologyKeys', /unknown Service field/],
  ];
  for (const [spec, path, why] of cases) {
    const e = refusal(svc(spec));
    assert.equal(e.findings[0]?.path, path, spec);
    assert.match(e.findings[0].why, why);
  }
  const dup = refusal(`${svc(CLUSTER_IP)}\n---\n${svc(CLUSTER_IP).replace('name: web', 'name: web2')}`);
  assert.match(dup.findings[0]!.why, /10\.96\.0\.10:80\/tcp is also Service prod\/web's/);
});

test('Pods: IPv4 podIP makes an endpoint with the namespace label; no IP, host network, finished pods do not', () => {
  const pod = (name: string, extra: string) => `---\napiVersion: v1\nkind: Pod\nmetadata: {name: ${name}, namespace: prod, labels: {app: x}}\n${extra}`;
  const d = load(
    [
      pod('a', 'spec: {serviceAccountName: sa1}\nstatus: {phase: Running, podIP: 10.0.1.1}'),
      pod('pending', 'status: {phase: Pending}'),
      pod('host', 'spec: {hostNetwork: true}\nstatus: {phase: Running, podIP: 192.0.2.1}'),
      pod('done', 'status: {phase: Succeeded, podIP: 10.0.1.9}'),
    ].join('\n'),
  );
  assert.deepEqual(
    d.state.endpoints.map((e) => [e.name, e.ip]),
    [['prod.a', '10.0.1.1']],
  );
  const labels = d.state.endpoints[0]!.labels;
  assert.equal(labels['io.kubernetes.pod.namespace'], 'prod');
  assert.equal(labels['io.cilium.k8s.policy.serviceaccount'], 'sa1');
  assert.equal(labels.app, 'x');
  assert.match(labels['prep-node.io/labelset']!, /^[0-9a-f]{16}$/);
  assert.equal(d.notes.length, 3);
  const bad = refusal(pod('v6', 'status: {podIP: 10.0.1.1, podIPs: [{ip: 10.0.1.1}, {ip: "fd00::1"}, {ip: "fd00::2"}]}'));
  assert.equal(bad.findings[0]!.path, 'status.podIPs');
  assert.match(bad.findings[0]!.why, /at most one address per family/);
  const same = refusal(`${pod('a', 'status: {podIP: 10.0.1.1}')}\n${pod('b', 'status: {podIP: 10.0.1.1}')}`);
  assert.match(same.findings[0]!.why, /also pod prod\/a's/);
});

test('with the node\'s name: EndpointSlice nodeName marks remote backends, NodePorts are external, traffic policies Local are kept (not left out)', () => {
  const spec = `  type: NodePort
  clusterIP: 10.96.0.10
  externalTrafficPolicy: Local
  internalTrafficPolicy: Local
  ports: [{name: http, port: 80, protocol: TCP, nodePort: 30080}]`;
  const eps = slice('  - {addresses: [10.0.1.1], nodeName: node-a}\n  - {addresses: [10.0.2.1], nodeName: node-b}');
  const d = load(svc(spec, eps), { nodeAddresses: ['192.0.2.10'], nodeName: 'node-a' });
  assert.deepEqual(d.state.node, { name: 'node-a', addresses: ['192.0.2.10'] });
  const [cluster, nodePort] = d.state.services;
  assert.deepEqual([cluster!.external, cluster!.internalTrafficPolicy, cluster!.externalTrafficPolicy], [undefined, 'Local', undefined]);
  assert.deepEqual([nodePort!.external, nodePort!.externalTrafficPolicy, nodePort!.internalTrafficPolicy], [true, 'Local', undefined]);
  assert.deepEqual(nodePort!.backends.map((b) => `${b.ip} ${b.nodeName}`), ['10.0.1.1 node-a', '10.0.2.1 node-b']);
  // without the node's name nothing is node-aware: Local is reported as left out, as before
  assert.equal(refusal(svc(spec, eps), { nodeAddresses: ['192.0.2.10'] }).findings[0]!.path, 'spec.internalTrafficPolicy');
});

test('sync -f manifests --node-name: the compiled maps carry the node (node_cfg), remote backends, Local policies and remote pods in the ipcache', () => {
  const spec = `  type: NodePort
  clusterIP: 10.96.0.10
  externalTrafficPolicy: Local
  ports: [{name: http, port: 80, protocol: TCP, nodePort: 30080}]`;
  const eps = slice('  - {addresses: [10.0.1.1], nodeName: node-a}\n  - {addresses: [10.0.2.1], nodeName: node-b}');
  const pods = ['a 10.0.1.1 node-a', 'b 10.0.2.1 node-b'].map((s) => s.split(' ')).map(([n, ip, node]) => `apiVersion: v1
kind: Pod
metadata: {name: ${n}, namespace: prod, labels: {app: web}}
spec: {nodeName: ${node}}
status: {podIP: ${ip}}`);
  const d = load([svc(spec, eps), ...pods].join('\n---\n'), { nodeAddresses: ['192.0.2.10'], nodeName: 'node-a' });
  assert.deepEqual(d.state.endpoints.map((e) => `${e.ip} ${e.nodeName}`), ['10.0.1.1 node-a', '10.0.2.1 node-b']);
  const notes = compileState(d.state).entries.map((e) => `${e.map}: ${e.note}`);
  assert.ok(notes.includes('node_cfg: node node-a SNAT address 192.0.2.10'), notes.join('\n'));
  // the cluster IP balances over both, the remote one marked; the node port (Local) takes node-a's only
  assert.equal(notes.filter((n) => /^backends: .* 10\.96\.0\.10:80\/tcp slot \d → 10\.0\.2\.1:8080 \(remote\)$/.test(n)).length, 1, notes.join('\n'));
  assert.deepEqual(notes.filter((n) => n.startsWith('backends: ') && n.includes('192.0.2.10:30080')).map((n) => n.replace(/.* → /, '')), ['10.0.1.1:8080']);
  assert.ok(notes.some((n) => /^services: .*192\.0\.2\.10:30080\/tcp .*, external, externalTrafficPolicy Local$/.test(n)), notes.join('\n'));
  assert.ok(notes.some((n) => n.startsWith('ipcache: prod.b 10.0.2.1 on node node-b')), 'the other node\'s pod is in the ipcache, not the endpoints');
  assert.ok(!notes.some((n) => n.startsWith('endpoints: prod.b ')));
  // a state file says its node itself
  assert.throws(() => load('endpoints: []\nservices: []\npolicies: []\n', { nodeName: 'node-a' }), /--node-name is for Kubernetes manifests/);
});
