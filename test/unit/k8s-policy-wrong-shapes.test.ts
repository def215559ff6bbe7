// Issue 17 item 2, policies that failed open on wrongly shaped fields: the untyped walker read
// anything that was not a list as an empty list, so `from:`/`ports:` written as maps allowed
// everything, `policyTypes: Ingress` as a string left the pod unisolated, and a CiliumNetworkPolicy
// ingressDeny whose fromCIDR is a scalar lost the deny, all with exit 0 and no finding. Each shape
// named in the issue, for both policy kinds, is now refused with its field path and what was expected.
// And null reads as absent, as the API server reads it (an empty `matchLabels:` selects every pod).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { judge, load, PODS, refusal } from '../helpers/k8s.js';

const np = (spec: string) => `${PODS}\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: prod}\nspec:\n${spec}`;
const cnp = (spec: string) => `${PODS}\n---\napiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: c, namespace: prod}\nspec:\n${spec}`;

function refused(yaml: string, path: string, why: RegExp): void {
  const e = refusal(yaml);
  const f = e.findings.find((x) => x.path === path);
  assert.ok(f, `a finding at ${path}; got ${e.findings.map((x) => `${x.path}: ${x.why}`).join('; ')}`);
  assert.match(f.why, why);
  assert.match(f.leftOut, /left out: it is not enforced at all/);
  assert.ok(f.line > 0 && f.col > 0, 'file:line:col kept');
}

const SEL = '  podSelector: {matchLabels: {app: backend}}\n';

test('NetworkPolicy: ingress from: written as a map is refused (was: allow everything)', () => {
  refused(np(`${SEL}  ingress:\n  - from: {podSelector: {matchLabels: {app: frontend}}}\n`), 'spec.ingress[0].from', /expected a list, got a map/);
});

test('NetworkPolicy: egress to: written as a map is refused', () => {
  refused(np(`${SEL}  policyTypes: [Egress]\n  egress:\n  - to: {ipBlock: {cidr: 10.0.0.0/8}}\n`), 'spec.egress[0].to', /expected a list, got a map/);
});

test('NetworkPolicy: ports: written as a map is refused (was: every port)', () => {
  refused(np(`${SEL}  ingress:\n  - ports: {port: 8080, protocol: TCP}\n`), 'spec.ingress[0].ports', /expected a list, got a map/);
});

test('NetworkPolicy: policyTypes as a string is refused (was: the pod left unisolated)', () => {
  refused(np(`${SEL}  policyTypes: Ingress\n`), 'spec.policyTypes', /expected a list, got string "Ingress"/);
});

test('NetworkPolicy: ipBlock.except as a string, matchLabels as a list are refused', () => {
  refused(np(`${SEL}  ingress:\n  - from: [{ipBlock: {cidr: 10.0.0.0/8, except: 10.0.1.0/24}}]\n`), 'spec.ingress[0].from[0].ipBlock.except', /expected a list/);
  refused(np(`  podSelector: {matchLabels: [app, backend]}\n`), 'spec.podSelector.matchLabels', /expected a map, got a list/);
});

test('CiliumNetworkPolicy: ingressDeny whose fromCIDR is a scalar is refused (was: the deny lost)', () => {
  refused(cnp(`  endpointSelector: {matchLabels: {app: backend}}\n  ingressDeny:\n  - fromCIDR: 10.0.1.1/32\n`), 'spec.ingressDeny[0].fromCIDR', /expected a list, got string "10.0.1.1\/32"/);
});

test('CiliumNetworkPolicy: ingress fromEndpoints as a map, toPorts as a map, ports inside as a map are refused', () => {
  refused(cnp(`  endpointSelector: {}\n  ingress:\n  - fromEndpoints: {matchLabels: {app: frontend}}\n`), 'spec.ingress[0].fromEndpoints', /expected a list, got a map/);
  refused(cnp(`  endpointSelector: {}\n  ingress:\n  - toPorts: {ports: [{port: "80"}]}\n`), 'spec.ingress[0].toPorts', /expected a list, got a map/);
  refused(cnp(`  endpointSelector: {}\n  ingress:\n  - toPorts: [{ports: {port: "80"}}]\n`), 'spec.ingress[0].toPorts[0].ports', /expected a list, got a map/);
});

test('CiliumNetworkPolicy: egress written as a map, egressDeny toCIDRSet as a map, specs as a map are refused', () => {
  refused(cnp(`  endpointSelector: {}\n  egress: {toEntities: [world]}\n`), 'spec.egress', /expected a list, got a map/);
  refused(cnp(`  endpointSelector: {}\n  egressDeny:\n  - toCIDRSet: {cidr: 8.8.8.8/32}\n`), 'spec.egressDeny[0].toCIDRSet', /expected a list, got a map/);
  const specs = `${PODS}\n---\napiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: c, namespace: prod}\nspecs: {endpointSelector: {}}\n`;
  refused(specs, 'specs', /expected a list, got a map/);
});

test('null reads as absent: an empty matchLabels: selects every pod of the namespace; null ingress, policyTypes, from and ports', () => {
  const d = load(np('  podSelector:\n    matchLabels:\n    matchExpressions:\n  policyTypes:\n  ingress:\n  - from:\n    ports:\n'));
  assert.equal(d.leftOut.length, 0);
  assert.equal(judge(d.state, '10.0.2.1', '10.0.1.2', 'tcp', 8080), 'allow', 'from null: every source (the rule has no from)');
  const deny = load(np('  podSelector:\n    matchLabels:\n  policyTypes: [Ingress]\n  ingress:\n'));
  assert.equal(judge(deny.state, '10.0.2.1', '10.0.1.2', 'tcp', 8080), 'default-deny', 'ingress null: no rule; every pod in prod isolated');
  assert.equal(judge(deny.state, '10.0.2.1', '10.0.1.4', 'tcp', 5432), 'default-deny', 'the empty selector picks the db too');
  assert.equal(judge(deny.state, '10.0.1.1', '10.0.2.2', 'tcp', 8080), 'allow', 'dev is not selected');
  const cn = load(cnp('  endpointSelector:\n    matchLabels:\n  ingress:\n  - fromEndpoints:\n    toPorts:\n'));
  assert.equal(cn.leftOut.length, 0);
});

test('egress: [] with policyTypes absent is Ingress only, as the API server defaults it', () => {
  const d = load(np(`${SEL}  egress: []\n`));
  assert.equal(judge(d.state, '10.0.1.2', '8.8.8.8', 'tcp', 443), 'allow', 'egress not isolated');
  assert.equal(judge(d.state, '10.0.1.1', '10.0.1.2', 'tcp', 8080), 'default-deny');
});
