// Dual-stack translation as kube-proxy does it, one family at a time: a Service's cluster IP of each
// family (spec.clusterIPs by spec.ipFamilies), externalIPs and load balancer IPs by their address's
// family, backends of a VIP from the EndpointSlices of its family only; a pod's IPv6 address is its
// endpoint's ip6 (or ip when single-stack IPv6), so policy holds on both families.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HeldObjects } from '../../src/agent/desired.js';
import { translate, type TranslateOptions } from '../../src/datapath/k8s/index.js';
import { inputObjects, parseFile } from '../../src/datapath/k8s/manifests.js';
import { judge, load, refusal } from '../helpers/k8s.js';

const svc = (spec: string, name = 'web') => `apiVersion: v1
kind: Service
metadata: {name: ${name}, namespace: prod}
spec:
${spec}`;

const slice = (type: 'IPv4' | 'IPv6', addrs: string[], name = `web-${type.toLowerCase()}`, service = 'web') => `
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: ${name}, namespace: prod, labels: {kubernetes.io/service-name: ${service}}}
addressType: ${type}
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints:
${addrs.map((a) => `  - {addresses: ["${a}"], conditions: {ready: true}}`).join('\n')}`;

const DUAL = `  type: ClusterIP
  ipFamilyPolicy: RequireDualStack
  ipFamilies: [IPv4, IPv6]
  clusterIP: 10.96.0.10
  clusterIPs: [10.96.0.10, "fd00:96::a"]
  ports: [{name: http, port: 80, protocol: TCP, targetPort: 8080}]`;

const V6ONLY = `  type: ClusterIP
  ipFamilyPolicy: SingleStack
  ipFamilies: [IPv6]
  clusterIP: "fd00:96::b"
  clusterIPs: ["fd00:96::b"]
  ports: [{name: http, port: 80, protocol: TCP, targetPort: 8080}]`;

function tr(text: string, o: TranslateOptions = {}) {
  return translate(inputObjects([parseFile('m.yaml', text)]).objects, o);
}
const summary = (t: ReturnType<typeof tr>) => t.state.services.map((s) => `${s.vip}:${s.port} <- ${s.backends.map((b) => `${b.ip}:${b.port}`).join(',')}`);

test('a dual-stack Service and both of its slices: two VIPs, each with the backends of its own family only', () => {
  const t = tr(svc(DUAL) + slice('IPv4', ['10.0.1.1', '10.0.1.2']) + slice('IPv6', ['fd00:1::1', 'FD00:1:0::2']));
  assert.deepEqual(t.findings.list, []);
  assert.deepEqual(summary(t), ['10.96.0.10:80 <- 10.0.1.1:8080,10.0.1.2:8080', 'fd00:96::a:80 <- fd00:1::1:8080,fd00:1::2:8080'], 'IPv6 addresses in canonical text');
  assert.equal(t.state.services[1]!.name, 'prod.web.fd00-96--a.80-tcp');
  assert.equal(t.origins.services.get(t.state.services[1]!.name), 'prod/web:http (ClusterIP fd00:96::a:80/tcp)');
});

test('a single-stack IPv6 Service: one IPv6 VIP from the IPv6 slice; an IPv4 slice of it backs nothing', () => {
  const t = tr(svc(V6ONLY) + slice('IPv6', ['fd00:1::1']) + slice('IPv4', ['10.0.1.1']));
  assert.deepEqual(t.findings.list, []);
  assert.deepEqual(summary(t), ['fd00:96::b:80 <- fd00:1::1:8080']);
});

test('an IPv6 slice for a Service with only an IPv4 cluster IP: its endpoints are not backends of the IPv4 VIP', () => {
  const only6 = tr(svc('  clusterIP: 10.96.0.10\n  ports: [{name: http, port: 80, protocol: TCP, targetPort: 8080}]') + slice('IPv6', ['fd00:1::1']));
  assert.deepEqual(summary(only6), ['10.96.0.10:80 <- '], 'no IPv4 slice: no backends (not the IPv6 ones)');
  const both = tr(svc('  clusterIP: 10.96.0.10\n  ports: [{name: http, port: 80, protocol: TCP, targetPort: 8080}]') + slice('IPv6', ['fd00:1::1']) + slice('IPv4', ['10.0.1.1']));
  assert.deepEqual(summary(both), ['10.96.0.10:80 <- 10.0.1.1:8080']);
});

test('externalIPs and load balancer IPs go to their family; each family\'s VIPs take that family\'s backends', () => {
  const spec = `  type: LoadBalancer
  ipFamilies: [IPv4, IPv6]
  clusterIPs: [10.96.0.10, "fd00:96::a"]
  externalIPs: [192.0.2.10, "2001:db8::10"]
  ports: [{name: http, port: 80, protocol: TCP, targetPort: 8080}]
status: {loadBalancer: {ingress: [{ip: 198.51.100.7}, {ip: "2001:db8::7"}, {hostname: lb.example.com}]}}`;
  const t = tr(svc(spec) + slice('IPv4', ['10.0.1.1']) + slice('IPv6', ['fd00:1::1']));
  assert.deepEqual(t.findings.list, [], 'no findings');
  assert.deepEqual(summary(t).sort(), [
    '10.96.0.10:80 <- 10.0.1.1:8080',
    '192.0.2.10:80 <- 10.0.1.1:8080',
    '198.51.100.7:80 <- 10.0.1.1:8080',
    '2001:db8::10:80 <- fd00:1::1:8080',
    '2001:db8::7:80 <- fd00:1::1:8080',
    'fd00:96::a:80 <- fd00:1::1:8080',
  ]);
});

test('NodePort of a dual-stack Service: per family, on the node\'s addresses of that family (kube-proxy\'s metaproxier); a family without node addresses is a finding', () => {
  const spec = DUAL.replace('type: ClusterIP', 'type: NodePort').replace('targetPort: 8080}', 'targetPort: 8080, nodePort: 30080}');
  const objs = svc(spec) + slice('IPv4', ['10.0.1.1']) + slice('IPv6', ['fd00:1::1']);
  const both = tr(objs, { nodeAddresses: ['192.0.2.1', 'fd00:2::1', 'fd00:2::2'] });
  assert.deepEqual(summary(both), ['10.96.0.10:80 <- 10.0.1.1:8080', 'fd00:96::a:80 <- fd00:1::1:8080', '192.0.2.1:30080 <- 10.0.1.1:8080', 'fd00:2::1:30080 <- fd00:1::1:8080', 'fd00:2::2:30080 <- fd00:1::1:8080']);
  assert.deepEqual(both.findings.list, []);
  const t = tr(objs, { nodeAddresses: ['192.0.2.1'] });
  assert.deepEqual(summary(t), ['10.96.0.10:80 <- 10.0.1.1:8080', 'fd00:96::a:80 <- fd00:1::1:8080', '192.0.2.1:30080 <- 10.0.1.1:8080']);
  assert.deepEqual(t.findings.list.map((f) => [f.path, f.leftOut]), [['spec.ports[0].nodePort', 'the IPv6 node port is left out (the cluster IPs are still load-balanced)']]);
  assert.match(t.findings.list[0]!.why, /NodePort 30080 on IPv6 needs the node's IPv6 addresses .* --node-address with an IPv6 address/);
  const v6 = tr(svc(V6ONLY.replace('type: ClusterIP', 'type: NodePort').replace('targetPort: 8080}', 'targetPort: 8080, nodePort: 30080}')) + slice('IPv6', ['fd00:1::1']), { nodeAddresses: ['192.0.2.1', 'fd00:2::1'] });
  assert.deepEqual(summary(v6), ['fd00:96::b:80 <- fd00:1::1:8080', 'fd00:2::1:30080 <- fd00:1::1:8080'], 'an IPv6-only Service opens no IPv4 node port');
});

test('an IPv6 externalIP whose backend is on another node, on a node with IPv4 addresses only: that VIP is a finding (no IPv6 SNAT source), the rest of the Service kept', () => {
  const spec = DUAL.replace('  ports:', '  externalIPs: [203.0.113.5, "2001:db8::5"]\n  ports:');
  const remote = (type: 'IPv4' | 'IPv6', a: string) => slice(type, [a]).replace('conditions: {ready: true}}', 'conditions: {ready: true}, nodeName: n2}');
  const objs = svc(spec) + remote('IPv4', '10.0.1.1') + remote('IPv6', 'fd00:1::1');
  const t = tr(objs, { nodeName: 'n1', nodeAddresses: ['192.0.2.1'] });
  assert.deepEqual(summary(t), ['10.96.0.10:80 <- 10.0.1.1:8080', 'fd00:96::a:80 <- fd00:1::1:8080', '203.0.113.5:80 <- 10.0.1.1:8080']);
  assert.deepEqual(t.findings.list.map((f) => [f.path, f.leftOut]), [['spec.ports[0]', 'this external address is left out']]);
  assert.match(t.findings.list[0]!.why, /externalIP 2001:db8::5:80: its backends on other nodes are SNATed to this node's IPv6 address, and the node has none: give --node-address with an IPv6 address/);
  // with an IPv6 node address it is an external VIP like the IPv4 one
  const both = tr(objs, { nodeName: 'n1', nodeAddresses: ['192.0.2.1', 'fd00:2::1'] });
  assert.deepEqual(both.findings.list, []);
  assert.ok(both.state.services.some((s) => s.vip === '2001:db8::5' && s.external === true));
});

test('Endpoints (no slices) split by family; pods picked by the selector give each VIP their address of its family', () => {
  const eps = `
---
apiVersion: v1
kind: Endpoints
metadata: {name: web, namespace: prod}
subsets: [{addresses: [{ip: 10.0.1.1}, {ip: "fd00:1::1"}], ports: [{name: http, port: 8080}]}]`;
  assert.deepEqual(summary(tr(svc(DUAL) + eps)), ['10.96.0.10:80 <- 10.0.1.1:8080', 'fd00:96::a:80 <- fd00:1::1:8080']);
  const pods = ['a 10.0.1.1 fd00:1::1', 'b 10.0.1.2', 'c fd00:1::3']
    .map((l) => l.split(' '))
    .map(([n, ...ips]) => `
---
apiVersion: v1
kind: Pod
metadata: {name: ${n}, namespace: prod, labels: {app: web}}
status: {phase: Running, podIP: "${ips[0]}", podIPs: [${ips.map((ip) => `{ip: "${ip}"}`).join(', ')}]}`)
    .join('');
  const t = tr(svc(`${DUAL}\n  selector: {app: web}`) + pods);
  assert.deepEqual(summary(t), ['10.96.0.10:80 <- 10.0.1.1:8080,10.0.1.2:8080', 'fd00:96::a:80 <- fd00:1::1:8080,fd00:1::3:8080']);
});

test('a dual-stack and an IPv6-only Service pass the datapath\'s state schema', () => {
  const t = tr(svc(DUAL) + slice('IPv4', ['10.0.1.1']) + slice('IPv6', ['fd00:1::1']), {});
  assert.deepEqual(t.findings.list, []);
  assert.deepEqual(summary(t), ['10.96.0.10:80 <- 10.0.1.1:8080', 'fd00:96::a:80 <- fd00:1::1:8080']);
  const both = load(svc(DUAL) + slice('IPv4', ['10.0.1.1']) + slice('IPv6', ['fd00:1::1']));
  assert.deepEqual(both.state.services.map((x) => [x.vip, x.backends.map((b) => b.ip)]), [['10.96.0.10', ['10.0.1.1']], ['fd00:96::a', ['fd00:1::1']]], 'the schema takes both');
  const v6 = load(svc(V6ONLY) + slice('IPv6', ['fd00:1::1']) + slice('IPv4', ['10.0.1.1']));
  assert.deepEqual(v6.state.services.map((x) => [x.vip, x.backends.map((b) => b.ip)]), [['fd00:96::b', ['fd00:1::1']]], 'a single-stack IPv6 Service through the schema');
});

const POD = (name: string, ips: string[], labels = '{app: web}') => `
---
apiVersion: v1
kind: Pod
metadata: {name: ${name}, namespace: prod, labels: ${labels}}
status: {phase: Running, podIP: "${ips[0]}", podIPs: [${ips.map((ip) => `{ip: "${ip}"}`).join(', ')}]}`;

test('a pod\'s IPv6 address: ip6 of its endpoint (dual-stack) or its ip (single-stack IPv6); policy holds on both families', () => {
  const deny = `
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny, namespace: prod}
spec: {podSelector: {matchLabels: {app: web}}, policyTypes: [Ingress]}`;
  const d = load(POD('dual', ['10.0.1.1', 'fd00:1::1']) + POD('six', ['FD00:1::6']) + POD('client', ['10.0.1.9', 'fd00:1::9'], '{app: client}') + deny);
  assert.deepEqual(d.leftOut, []);
  assert.deepEqual(d.state.endpoints.map((e) => [e.name, e.ip, e.ip6]), [
    ['prod.client', '10.0.1.9', 'fd00:1::9'],
    ['prod.dual', '10.0.1.1', 'fd00:1::1'],
    ['prod.six', 'fd00:1::6', undefined],
  ]);
  assert.equal(judge(d.state, '10.0.1.9', '10.0.1.1', 'tcp', 80), 'default-deny');
  assert.equal(judge(d.state, 'fd00:1::9', 'fd00:1::1', 'tcp', 80), 'default-deny', 'the IPv6 address is policed too');
  assert.equal(judge(d.state, 'fd00:1::9', 'fd00:1::6', 'tcp', 80), 'default-deny');
  assert.equal(judge(d.state, 'fd00:1::1', 'fd00:1::9', 'tcp', 80), 'allow', 'the client is selected by no policy');
});

test('NetworkPolicy ipBlock with IPv6 CIDRs: covers IPv6 addresses and pods; a dual-stack pod inside one family\'s block is covered on that address only', () => {
  const np = (cidr: string, except = '') => `
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: from-block, namespace: prod}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{from: [{ipBlock: {cidr: "${cidr}"${except ? `, except: ["${except}"]` : ''}}}]}]`;
  const pods = POD('web', ['10.0.1.1', 'fd00:1::1']) + POD('client', ['10.0.1.9', 'fd00:1::9'], '{app: client}');
  const v6 = load(pods + np('fd00:1::/64', 'fd00:1::8/125'));
  assert.deepEqual(v6.leftOut, []);
  assert.equal(judge(v6.state, '2001:db8::1', 'fd00:1::1', 'tcp', 80), 'default-deny', 'outside the block');
  assert.equal(judge(v6.state, 'fd00:1::77', 'fd00:1::1', 'tcp', 80), 'allow', 'an address inside it');
  assert.equal(judge(v6.state, 'fd00:1::9', 'fd00:1::1', 'tcp', 80), 'default-deny', 'the client pod is in the except');
  // the client's IPv6 address alone in the block: that address is allowed, its IPv4 one is not
  const one = load(pods + np('fd00:1::9/128'));
  assert.equal(judge(one.state, 'fd00:1::9', 'fd00:1::1', 'tcp', 80), 'allow');
  assert.equal(judge(one.state, '10.0.1.9', '10.0.1.1', 'tcp', 80), 'default-deny', 'an ipBlock matches addresses: the same pod\'s IPv4 address is outside it');
  assert.deepEqual(
    one.state.endpoints.map((e) => [e.name, e.ip, e.ip6]),
    [
      ['prod.client', '10.0.1.9', undefined],
      ['prod.client.ipv6', 'fd00:1::9', undefined],
      ['prod.web', '10.0.1.1', 'fd00:1::1'],
    ],
  );
  assert.equal(one.origins.endpoints.get('prod.client.ipv6'), 'prod/client (IPv6)');
});

test('CiliumNetworkPolicy: world is both families\' world; ICMP family IPv6 is a finding with what is left out', () => {
  const cnp = (rule: string) => `
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: c, namespace: prod}
spec:
  endpointSelector: {matchLabels: {app: web}}
${rule}`;
  const pods = POD('web', ['10.0.1.1', 'fd00:1::1']);
  const deny = load(pods + cnp('  ingress: [{fromEntities: [all]}]\n  ingressDeny: [{fromEntities: [world]}]'));
  assert.equal(judge(deny.state, '203.0.113.1', '10.0.1.1', 'tcp', 80), 'deny');
  assert.equal(judge(deny.state, '2001:db8::1', 'fd00:1::1', 'tcp', 80), 'deny', 'world denies IPv6 world too');
  const v4 = load(pods + cnp('  ingress: [{fromEntities: [world-ipv4]}]'));
  assert.equal(judge(v4.state, '203.0.113.1', '10.0.1.1', 'tcp', 80), 'allow');
  assert.equal(judge(v4.state, '2001:db8::1', 'fd00:1::1', 'tcp', 80), 'default-deny');
  const v6 = load(pods + cnp('  ingress: [{fromEntities: [world-ipv6]}]'));
  assert.equal(judge(v6.state, '2001:db8::1', 'fd00:1::1', 'tcp', 80), 'allow');
  assert.equal(judge(v6.state, '203.0.113.1', '10.0.1.1', 'tcp', 80), 'default-deny');
  const icmp = refusal(pods + cnp('  ingress: [{icmps: [{fields: [{type: 128, family: IPv6}]}]}]'));
  assert.equal(icmp.findings[0]!.path, 'spec.ingress[0].icmps[0].fields[0].family');
  assert.match(icmp.findings[0]!.why, /ICMPv6 types/);
  assert.match(icmp.findings[0]!.leftOut, /stays denied/);
});

test('the agent: an IPv6 EndpointSlice change recomputes only its Service, and yields exactly the IPv6 VIP\'s entries', () => {
  type Obj = Record<string, unknown>;
  const service: Obj = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'web', namespace: 'a' },
    spec: { ipFamilies: ['IPv4', 'IPv6'], clusterIP: '10.96.0.10', clusterIPs: ['10.96.0.10', 'fd00:96::a'], ports: [{ name: 'http', port: 80, targetPort: 8080 }] },
  };
  const es = (type: string, ips: string[]): Obj => ({
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: `web-${type}`, namespace: 'a', labels: { 'kubernetes.io/service-name': 'web' } },
    addressType: type,
    ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
    endpoints: ips.map((ip) => ({ addresses: [ip] })),
  });
  const h = new HeldObjects();
  h.upsert('Service', service);
  h.upsert('EndpointSlice', es('IPv4', ['10.0.0.1']));
  h.upsert('EndpointSlice', es('IPv6', ['fd00::1']));
  const first = h.compile('n1');
  assert.equal(first.refused, undefined, 'the unit is not refused by the schema');
  assert.ok(first.entries.some((e) => e.map === 'services' && /10\.96\.0\.10:80/.test(e.note)), 'the IPv4 VIP is programmed');
  h.upsert('EndpointSlice', es('IPv6', ['fd00::1', 'fd00::2']));
  const d = h.delta('n1');
  assert.equal(d.refused, undefined);
  assert.ok(d.changes.every((c) => !/10\.96\.0\.10/.test(c.note)), 'the IPv4 VIP\'s entries do not change');
  assert.ok(d.changes.length > 0 && d.changes.every((c) => /fd00:96::a/.test(c.note)), JSON.stringify(d.changes));
  assert.ok(d.changes.some((c) => c.map === 'backends6' && c.valueHex !== null), 'the new IPv6 backend is written to backends6');
  assert.ok(d.changes.every((c) => c.map === 'backends6' || c.map === 'services6' || c.map === 'maglev'), JSON.stringify(d.changes.map((c) => c.map)));
  // a dual-stack pod's IPv6 address reaches the endpoints6 map through the policy unit
  h.upsert('Pod', { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'a', labels: { app: 'x' } }, spec: {}, status: { phase: 'Running', podIP: '10.0.0.1', podIPs: [{ ip: '10.0.0.1' }, { ip: 'fd00::1' }] } });
  const p = h.delta('n1');
  assert.deepEqual([...new Set(p.changes.map((c) => c.map))].sort(), ['endpoints', 'endpoints6']);
});
