// NetworkPolicy and CiliumNetworkPolicy → datapath policies, judged the way the datapath judges a
// packet: the compiled policy entries are looked up as policy.h does (two LPM lookups per checked
// direction, deny wins, a selected endpoint without a matching allow is default-deny), so each test
// says which connections the manifests allow, not what the intermediate YAML looks like.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { readFileSync } from 'node:fs';
import { allocateIdentities } from '../../src/datapath/identity.js';
import { judge, load, PODS, refusal } from '../helpers/k8s.js';

const BLOG = (name: string) => readFileSync(fileURLToPath(new URL(`../../../test/fixtures/k8s/blog/${name}`, import.meta.url)), 'utf8');

const IP = {
  fe: '10.0.1.1',
  be: '10.0.1.2',
  canary: '10.0.1.3',
  db: '10.0.1.4',
  devFe: '10.0.2.1',
  devBe: '10.0.2.2',
  dns: '10.0.3.53',
  deathstar: '10.0.1.7',
  tiefighter: '10.0.1.8',
  world: '8.8.8.8',
};

// ------------------------------------------------------------------------------ the blog posts

test('blog: default-deny-all (Ingress and Egress) isolates every pod of its namespace, and only those', () => {
  const d = load(`${PODS}\n---\n${BLOG('default-deny-all.yaml')}`);
  assert.equal(judge(d.state, IP.fe, IP.be, 'tcp', 8080), 'default-deny');
  assert.equal(judge(d.state, IP.fe, IP.world, 'udp', 53), 'default-deny', 'egress too');
  assert.equal(judge(d.state, IP.devFe, IP.fe, 'tcp', 80), 'default-deny', 'ingress from another namespace');
  assert.equal(judge(d.state, IP.devFe, IP.devBe, 'tcp', 8080), 'allow', 'dev is not selected');
  assert.equal(judge(d.state, IP.dns, IP.devBe, 'tcp', 8080), 'allow');
  for (const p of d.state.policies) assert.deepEqual([p.ingress, p.egress], [[], []], `${p.name}: both directions enforced, no rules`);
  assert.equal(d.leftOut.length, 0);
});

test('blog: the backend only reachable from the frontend on 8080', () => {
  const d = load(`${PODS}\n---\n${BLOG('backend-from-frontend.yaml')}`);
  assert.equal(judge(d.state, IP.fe, IP.be, 'tcp', 8080), 'allow');
  assert.equal(judge(d.state, IP.fe, IP.canary, 'tcp', 8080), 'allow', 'every pod with app=backend');
  assert.equal(judge(d.state, IP.fe, IP.be, 'tcp', 8081), 'default-deny');
  assert.equal(judge(d.state, IP.fe, IP.be, 'udp', 8080), 'default-deny', 'the port is TCP');
  assert.equal(judge(d.state, IP.db, IP.be, 'tcp', 8080), 'default-deny');
  assert.equal(judge(d.state, IP.devFe, IP.be, 'tcp', 8080), 'default-deny', 'a podSelector peer is in the policy namespace only');
  assert.equal(judge(d.state, IP.devFe, IP.devBe, 'tcp', 9999), 'allow', 'dev backend is not selected');
  assert.equal(judge(d.state, IP.fe, IP.db, 'tcp', 5432), 'allow', 'the db is not selected');
  assert.equal(judge(d.state, IP.be, IP.world, 'tcp', 443), 'allow', 'no egress policy: policyTypes defaults to Ingress');
});

test('blog: an HTTP method rule (cilium L7) is refused with file, document, field path and why', () => {
  const e = refusal(`${PODS}\n---\n${BLOG('cnp-l7-get.yaml')}`);
  assert.equal(e.findings.length, 1);
  const f = e.findings[0]!;
  assert.equal(f.path, 'spec.ingress[0].toPorts[0].rules.http');
  assert.equal(f.object, 'CiliumNetworkPolicy prod/rule1');
  assert.equal(f.doc, 12, 'the document number in the file');
  assert.match(f.why, /L7 HTTP rules .*need an HTTP proxy; the datapath enforces L3\/L4 only/);
  assert.match(e.details[0]!, /^m\.yaml:\d+:\d+: CiliumNetworkPolicy prod\/rule1 \(document 12\): spec\.ingress\[0\]\.toPorts\[0\]\.rules\.http: L7 HTTP/);
  assert.match(e.message, /nothing was synced/);
  // --allow-partial: the rule is left out, the endpoint stays default-deny (fail closed), and it is listed
  const d = load(`${PODS}\n---\n${BLOG('cnp-l7-get.yaml')}`, { allowPartial: true });
  assert.equal(d.leftOut.length, 1);
  assert.match(d.leftOut[0]!.leftOut, /the traffic it allows stays denied/);
  assert.equal(judge(d.state, IP.tiefighter, IP.deathstar, 'tcp', 80), 'default-deny');
});

// ------------------------------------------------------------------------------ NetworkPolicy

const np = (spec: string, ns = 'prod', name = 'p') => `${PODS}\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: ${name}, namespace: ${ns}}\nspec:\n${spec}`;

test('NetworkPolicy: namespaceSelector by Namespace labels and by the implicit kubernetes.io/metadata.name', () => {
  const byLabel = load(np(`  podSelector: {matchLabels: {app: backend}}\n  ingress: [{from: [{namespaceSelector: {matchLabels: {env: dev}}}]}]`));
  assert.equal(judge(byLabel.state, IP.devFe, IP.be, 'tcp', 8080), 'allow');
  assert.equal(judge(byLabel.state, IP.devBe, IP.be, 'tcp', 1), 'allow', 'every pod of the namespace, any port');
  assert.equal(judge(byLabel.state, IP.fe, IP.be, 'tcp', 8080), 'default-deny', 'not its own namespace');
  const byName = load(np(`  podSelector: {matchLabels: {app: backend}}\n  ingress: [{from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}, podSelector: {matchLabels: {k8s-app: kube-dns}}}]}]`));
  assert.equal(judge(byName.state, IP.dns, IP.be, 'udp', 53), 'allow', 'namespace without a Namespace object: its name label');
  assert.equal(judge(byName.state, IP.devFe, IP.be, 'udp', 53), 'default-deny');
  const all = load(np(`  podSelector: {}\n  ingress: [{from: [{namespaceSelector: {}}]}]`));
  assert.equal(judge(all.state, IP.devFe, IP.fe, 'tcp', 80), 'allow', 'namespaceSelector {} = every pod of every namespace');
  assert.equal(judge(all.state, IP.world, IP.fe, 'tcp', 80), 'default-deny', 'but not outside addresses');
});

test('NetworkPolicy: egress to kube-dns and an ipBlock with except; ports with endPort', () => {
  const d = load(
    np(`  podSelector: {matchLabels: {app: frontend}}
  policyTypes: [Egress]
  egress:
    - to: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}, podSelector: {matchLabels: {k8s-app: kube-dns}}}]
      ports: [{protocol: UDP, port: 53}, {protocol: TCP, port: 53}]
    - to: [{ipBlock: {cidr: 0.0.0.0/0, except: [10.0.0.0/8, 192.168.0.0/16]}}]
      ports: [{protocol: TCP, port: 30000, endPort: 32767}]`),
  );
  assert.equal(judge(d.state, IP.fe, IP.dns, 'udp', 53), 'allow');
  assert.equal(judge(d.state, IP.fe, IP.dns, 'udp', 54), 'default-deny');
  assert.equal(judge(d.state, IP.fe, '1.2.3.4', 'tcp', 30000), 'allow');
  assert.equal(judge(d.state, IP.fe, '1.2.3.4', 'tcp', 32767), 'allow');
  assert.equal(judge(d.state, IP.fe, '1.2.3.4', 'tcp', 32768), 'default-deny');
  assert.equal(judge(d.state, IP.fe, '192.168.1.1', 'tcp', 30000), 'default-deny', 'except');
  assert.equal(judge(d.state, IP.fe, IP.be, 'tcp', 8080), 'default-deny', 'egress only: dns and the ipBlock');
  assert.equal(judge(d.state, IP.be, IP.fe, 'tcp', 80), 'allow', 'policyTypes [Egress]: ingress not enforced');
});

test('NetworkPolicy: matchExpressions select exactly (NotIn, DoesNotExist), named ports resolve per pod', () => {
  const d = load(np(`  podSelector: {matchExpressions: [{key: app, operator: In, values: [backend]}, {key: track, operator: DoesNotExist}]}\n  ingress: [{ports: [{port: http}]}]`));
  assert.equal(judge(d.state, IP.fe, IP.be, 'tcp', 8080), 'allow', 'http is 8080 on the backend');
  assert.equal(judge(d.state, IP.fe, IP.be, 'tcp', 80), 'default-deny');
  assert.equal(judge(d.state, IP.fe, IP.canary, 'tcp', 1234), 'allow', 'the canary has track=canary: not selected, though its labels include app=backend');
  const notIn = load(np(`  podSelector: {matchExpressions: [{key: app, operator: NotIn, values: [frontend, backend]}]}\n  ingress: []`));
  assert.equal(judge(notIn.state, IP.fe, IP.db, 'tcp', 5432), 'default-deny');
  assert.equal(judge(notIn.state, IP.db, IP.be, 'tcp', 8080), 'allow');
});

test('NetworkPolicy: a peer that selects no pod allows nothing (not everything)', () => {
  const d = load(np(`  podSelector: {matchLabels: {app: db}}\n  ingress: [{from: [{podSelector: {matchLabels: {app: nothing-has-this}}}]}]`));
  assert.equal(judge(d.state, IP.be, IP.db, 'tcp', 5432), 'default-deny');
  assert.deepEqual(d.state.policies[0]!.ingress, []);
});

test('NetworkPolicy: what cannot be enforced is refused, each with its path', () => {
  const cases: [string, string, RegExp][] = [
    [`  podSelector: {}\n  ingres: []`, 'spec.ingres', /unknown NetworkPolicy spec field/],
    [`  podSelector: {}\n  ingress: [{ports: [{protocol: ICMP, port: 9}]}]`, 'spec.ingress[0].ports[0].protocol', /TCP, UDP and SCTP ports only/],
    [`  podSelector: {}\n  ingress: [{from: [{ipBlock: {cidr: "fd00::/129"}}]}]`, 'spec.ingress[0].from[0].ipBlock.cidr', /expected an IPv4 or IPv6 CIDR/],
    [`  podSelector: {}\n  ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/8}, podSelector: {}}]}]`, 'spec.ingress[0].from[0]', /cannot be combined/],
    [`  podSelector: {}\n  ingress: [{ports: [{port: http, endPort: 90}]}]`, 'spec.ingress[0].ports[0].endPort', /numeric port/],
    [`  podSelector: {matchExpressions: [{key: app, operator: Has}]}`, 'spec.podSelector.matchExpressions[0].operator', /In, NotIn, Exists or DoesNotExist/],
    [`  podSelector: {}\n  policyTypes: [Ingres]`, 'spec.policyTypes[0]', /Ingress or Egress/],
  ];
  for (const [spec, path, why] of cases) {
    const e = refusal(np(spec));
    assert.equal(e.findings[0]?.path, path, spec);
    assert.match(e.findings[0].why, why);
  }
});

test('NetworkPolicy: an SCTP port is enforced like TCP\'s and UDP\'s (SCTP is GA since Kubernetes 1.20)', () => {
  const d = load(np(`  podSelector: {matchLabels: {app: backend}}\n  ingress: [{from: [{podSelector: {matchLabels: {app: frontend}}}], ports: [{protocol: SCTP, port: 3868}]}]`));
  assert.equal(judge(d.state, IP.fe, IP.be, 'sctp', 3868), 'allow');
  assert.equal(judge(d.state, IP.fe, IP.be, 'sctp', 3869), 'default-deny');
  assert.equal(judge(d.state, IP.fe, IP.be, 'tcp', 3868), 'default-deny', 'the protocol is part of the rule');
});

test('NetworkPolicy: --allow-partial leaves out only the rule that cannot be enforced', () => {
  const d = load(np(`  podSelector: {matchLabels: {app: backend}}\n  ingress:\n    - ports: [{protocol: ICMP, port: 9}]\n    - from: [{podSelector: {matchLabels: {app: frontend}}}]`), { allowPartial: true });
  assert.equal(d.leftOut.length, 1);
  assert.equal(d.leftOut[0]!.path, 'spec.ingress[0].ports[0].protocol');
  assert.equal(judge(d.state, IP.fe, IP.be, 'tcp', 8080), 'allow');
  assert.equal(judge(d.state, IP.db, IP.be, 'tcp', 8080), 'default-deny');
});

// ------------------------------------------------------------------------------ CiliumNetworkPolicy

const cnp = (spec: string, ns = 'prod', name = 'c') => `${PODS}\n---\napiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: ${name}, namespace: ${ns}}\nspec:\n${spec}`;

test('CiliumNetworkPolicy: fromEndpoints + toPorts; k8s: prefixes; namespace scoping and io.kubernetes.pod.namespace', () => {
  const d = load(cnp(`  endpointSelector: {matchLabels: {k8s:app: backend}}\n  ingress: [{fromEndpoints: [{matchLabels: {app: frontend}}], toPorts: [{ports: [{port: "8080", protocol: TCP}]}]}]`));
  assert.equal(judge(d.state, IP.fe, IP.be, 'tcp', 8080), 'allow');
  assert.equal(judge(d.state, IP.devFe, IP.be, 'tcp', 8080), 'default-deny', 'peers are in the policy namespace');
  assert.equal(judge(d.state, IP.fe, IP.devBe, 'tcp', 1), 'allow', 'the subject is in the policy namespace');
  const cross = load(cnp(`  endpointSelector: {matchLabels: {app: backend}}\n  ingress: [{fromEndpoints: [{matchLabels: {app: frontend, io.kubernetes.pod.namespace: dev}}]}]`));
  assert.equal(judge(cross.state, IP.devFe, IP.be, 'tcp', 8080), 'allow');
  assert.equal(judge(cross.state, IP.fe, IP.be, 'tcp', 8080), 'default-deny');
  const nsLabels = load(cnp(`  endpointSelector: {}\n  ingress: [{fromEndpoints: [{matchLabels: {io.cilium.k8s.namespace.labels.env: dev, io.kubernetes.pod.namespace: dev}}]}]`));
  assert.equal(judge(nsLabels.state, IP.devBe, IP.db, 'tcp', 5432), 'allow');
});

test('CiliumNetworkPolicy: ingressDeny and egressDeny win over allows; {} is default deny; entities', () => {
  const d = load(
    cnp(`  endpointSelector: {matchLabels: {app: backend}}
  ingress: [{fromEntities: [all]}]
  ingressDeny: [{fromEndpoints: [{matchLabels: {app: db}}], toPorts: [{ports: [{port: "8080"}]}]}]
  egress: [{toEntities: [world]}, {toCIDRSet: [{cidr: 10.0.0.0/8, except: [10.0.3.0/24]}]}]
  egressDeny: [{toCIDR: [1.1.1.1/32]}, {icmps: [{fields: [{type: EchoRequest, family: IPv4}]}]}]`),
  );
  assert.equal(judge(d.state, IP.fe, IP.be, 'tcp', 8080), 'allow', 'all');
  assert.equal(judge(d.state, IP.db, IP.be, 'tcp', 8080), 'deny', 'ingressDeny, port ANY = tcp and udp');
  assert.equal(judge(d.state, IP.db, IP.be, 'udp', 8080), 'deny');
  assert.equal(judge(d.state, IP.db, IP.be, 'tcp', 8081), 'allow');
  assert.equal(judge(d.state, IP.be, '9.9.9.9', 'tcp', 443), 'allow', 'world');
  assert.equal(judge(d.state, IP.be, '1.1.1.1', 'tcp', 443), 'deny', 'egressDeny toCIDR inside world');
  assert.equal(judge(d.state, IP.be, '9.9.9.9', 'icmp', 8), 'deny', 'icmp echo request denied');
  assert.equal(judge(d.state, IP.be, '9.9.9.9', 'icmp', 0), 'allow');
  assert.equal(judge(d.state, IP.be, '10.0.9.9', 'tcp', 1), 'allow', 'toCIDRSet');
  const empty = load(cnp(`  endpointSelector: {matchLabels: {app: db}}\n  ingress: [{}]`));
  assert.equal(judge(empty.state, IP.be, IP.db, 'tcp', 5432), 'default-deny', 'ingress: [{}] is cilium\'s deny-all');
  const denyOnly = load(cnp(`  endpointSelector: {matchLabels: {app: db}}\n  ingressDeny: [{fromEndpoints: [{matchLabels: {app: frontend}}]}]`));
  assert.equal(judge(denyOnly.state, IP.be, IP.db, 'tcp', 5432), 'default-deny', 'deny policies put the endpoint in default deny too (cilium 1.9+)');
});

test('CiliumNetworkPolicy: toFQDNs, toServices, DNS rules, reserved labels, enableDefaultDeny false are refused by path', () => {
  const cases: [string, string, RegExp][] = [
    [`  endpointSelector: {}\n  egress: [{toFQDNs: [{matchName: api.example.com}]}]`, 'spec.egress[0].toFQDNs', /DNS names need a DNS proxy/],
    [`  endpointSelector: {}\n  egress: [{toServices: [{k8sService: {serviceName: x, namespace: y}}]}]`, 'spec.egress[0].toServices', /toServices/],
    [`  endpointSelector: {}\n  egress: [{toEndpoints: [{}], toPorts: [{ports: [{port: "53", protocol: UDP}], rules: {dns: [{matchPattern: "*"}]}}]}]`, 'spec.egress[0].toPorts[0].rules.dns', /DNS rules need a DNS proxy/],
    [`  endpointSelector: {matchLabels: {reserved:host: ""}}`, 'spec.endpointSelector.matchLabels.reserved:host', /reserved identity/],
    [`  endpointSelector: {}\n  enableDefaultDeny: {ingress: false}\n  ingress: [{fromEntities: [world]}]`, 'spec.enableDefaultDeny.ingress', /without default deny/],
    [`  endpointSelector: {}\n  ingress: [{fromEntities: [host]}]`, 'spec.ingress[0].fromEntities[0]', /entity host is not modelled/],
    [`  nodeSelector: {}\n  ingress: [{}]`, 'spec.nodeSelector', /host policies/],
    [`  endpointSelector: {}\n  ingress: [{toPorts: [{ports: [{port: "80", protocol: SCTP}]}]}]`, 'spec.ingress[0].toPorts[0].ports[0].protocol', /TCP, UDP/],
  ];
  for (const [spec, path, why] of cases) {
    const e = refusal(cnp(spec));
    assert.equal(e.findings[0]?.path, path, spec);
    assert.match(e.findings[0].why, why);
  }
  // a left-out deny rule says that its traffic is NOT denied
  const d = load(cnp(`  endpointSelector: {matchLabels: {app: db}}\n  egressDeny: [{toFQDNs: [{matchName: evil.example.com}]}]\n  egress: [{toEntities: [all]}]`), { allowPartial: true });
  assert.match(d.leftOut[0]!.leftOut, /is NOT denied/);
});

test('CiliumClusterwideNetworkPolicy: no namespace scoping', () => {
  const d = load(`${PODS}\n---\napiVersion: cilium.io/v2\nkind: CiliumClusterwideNetworkPolicy\nmetadata: {name: all-backends}\nspec:\n  endpointSelector: {matchLabels: {app: backend}}\n  ingress: [{fromEndpoints: [{matchLabels: {app: frontend}}]}]`);
  assert.equal(judge(d.state, IP.devFe, IP.be, 'tcp', 8080), 'allow');
  assert.equal(judge(d.state, IP.fe, IP.devBe, 'tcp', 8080), 'allow');
  assert.equal(judge(d.state, IP.db, IP.devBe, 'tcp', 8080), 'default-deny');
});

test('one identity per label set: pods with the same labels share it; the label-set marker does not split them', () => {
  const twin = PODS.replace('---\napiVersion: v1\nkind: Pod', `---\napiVersion: v1\nkind: Pod\nmetadata: {name: backend-2, namespace: prod, labels: {app: backend}}\nstatus: {podIP: 10.0.1.22}\n---\napiVersion: v1\nkind: Pod`);
  const d = load(twin);
  const ids = allocateIdentities(d.state);
  assert.equal(ids.byEndpoint.get('prod.backend-2'), ids.byEndpoint.get('prod.backend'));
  assert.notEqual(ids.byEndpoint.get('dev.backend'), ids.byEndpoint.get('prod.backend'), 'the namespace is part of the identity');
});

test('policy names cannot collide: "b" over two label sets and "b.1" both translate', () => {
  const d = load(`${np('  podSelector: {}\n  ingress: []', 'prod', 'b')}\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: b.1, namespace: prod}\nspec: {podSelector: {}, ingress: []}`);
  const names = d.state.policies.map((p) => p.name);
  assert.equal(new Set(names).size, names.length);
  assert.ok(names.includes('np.prod.b.1') && names.includes('np.prod.b.1.1'));
});

test('egress to a named port: each peer\'s own number (backend http = 8080, frontend http = 80)', () => {
  const d = load(np(`  podSelector: {matchLabels: {app: db}}\n  policyTypes: [Egress]\n  egress: [{to: [{podSelector: {matchLabels: {app: backend}}}, {podSelector: {matchLabels: {app: frontend}}}], ports: [{port: http}]}]`));
  assert.equal(judge(d.state, IP.db, IP.be, 'tcp', 8080), 'allow');
  assert.equal(judge(d.state, IP.db, IP.be, 'tcp', 80), 'default-deny', 'not the frontend\'s number');
  assert.equal(judge(d.state, IP.db, IP.fe, 'tcp', 80), 'allow');
  assert.equal(judge(d.state, IP.db, IP.fe, 'tcp', 8080), 'default-deny');
});
