// ipBlock peers cover every address in their CIDR minus `except`, pods' own addresses included, as
// the API defines them. The first three tests mirror Kubernetes' e2e cases of the same names
// (test/e2e/network/netpol/network_policy.go: pods a, b, c in namespaces x, y, z, a policy on x/a),
// judged from the compiled policy entries the way the datapath judges a packet (helpers/k8s.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { judge, load } from '../helpers/k8s.js';

const NS = ['x', 'y', 'z'];
const POD = ['a', 'b', 'c'];
const ip = (ns: string, pod: string) => `10.1.${NS.indexOf(ns) + 1}.${POD.indexOf(pod) + 1}`;

/** The e2e's nine pods (label pod=<name>), plus extra YAML. */
function cluster(extra: string): string {
  const pods = NS.flatMap((ns) =>
    POD.map(
      (p) => `apiVersion: v1
kind: Pod
metadata: {name: ${p}, namespace: ${ns}, labels: {pod: ${p}}}
spec: {containers: [{name: c, image: x}]}
status: {phase: Running, podIP: ${ip(ns, p)}}`,
    ),
  );
  return [...NS.map((ns) => `apiVersion: v1\nkind: Namespace\nmetadata: {name: ${ns}}`), ...pods, extra].join('\n---\n');
}

function egressPolicy(name: string, peer: string): string {
  return `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: ${name}, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  policyTypes: [Egress]
  egress: [{to: [{ipBlock: ${peer}}]}]`;
}

/** Every (from, to) pair of the nine pods: allowed or not. */
function reachability(text: string): Map<string, boolean> {
  const d = load(text);
  assert.deepEqual(d.leftOut, []);
  const out = new Map<string, boolean>();
  for (const fns of NS) for (const f of POD) for (const tns of NS) for (const t of POD) out.set(`${fns}/${f}→${tns}/${t}`, judge(d.state, ip(fns, f), ip(tns, t), 'tcp', 80) === 'allow');
  return out;
}

/** What the e2e's Reachability expects: every pair allowed except x/a's egress as `fromA` says. */
function expected(fromA: (to: string) => boolean): Map<string, boolean> {
  const out = new Map<string, boolean>();
  for (const fns of NS) for (const f of POD) for (const tns of NS) for (const t of POD) out.set(`${fns}/${f}→${tns}/${t}`, fns === 'x' && f === 'a' ? fromA(`${tns}/${t}`) : true);
  return out;
}

test('should allow egress access to server in CIDR block', () => {
  const got = reachability(cluster(egressPolicy('allow-client-a-via-cidr-egress-rule', `{cidr: ${ip('y', 'b')}/32}`)));
  assert.deepEqual(got, expected((to) => to === 'y/b'));
});

test('should enforce except clause while egress access to server in CIDR block', () => {
  const got = reachability(cluster(egressPolicy('deny-client-a-via-except-cidr-egress-rule', `{cidr: ${ip('x', 'a')}/4, except: [${ip('x', 'b')}/32]}`)));
  assert.deepEqual(got, expected((to) => to !== 'x/b'));
});

test('should ensure an IP overlapping both IPBlock.CIDR and IPBlock.Except is allowed', () => {
  const first = egressPolicy('deny-client-a-via-except-cidr-egress-rule', `{cidr: ${ip('x', 'a')}/4, except: [${ip('x', 'b')}/32]}`);
  assert.deepEqual(reachability(cluster(first)), expected((to) => to !== 'x/b'));
  const second = egressPolicy('allow-client-a-via-cidr-egress-rule', `{cidr: ${ip('x', 'b')}/32}`);
  assert.deepEqual(reachability(cluster(`${first}\n---\n${second}`)), expected(() => true));
});

test('an ipBlock never covers a pod outside it that shares its labels: such pods get a label set of their own', () => {
  const twin = `apiVersion: v1
kind: Pod
metadata: {name: b-twin, namespace: y, labels: {pod: b}}
spec: {containers: [{name: c, image: x}]}
status: {phase: Running, podIP: 10.1.2.9}`;
  const d = load(cluster(`${twin}\n---\n${egressPolicy('one-address', `{cidr: ${ip('y', 'b')}/32}`)}`));
  assert.equal(judge(d.state, ip('x', 'a'), ip('y', 'b'), 'tcp', 80), 'allow');
  assert.equal(judge(d.state, ip('x', 'a'), '10.1.2.9', 'tcp', 80), 'default-deny', 'same labels, outside the CIDR');
  assert.equal(judge(d.state, ip('x', 'a'), '198.18.0.1', 'tcp', 80), 'default-deny', 'an address outside the CIDR');
  const marker = (name: string) => d.state.endpoints.find((e) => e.name === name)!.labels['prep-node.io/labelset'];
  assert.notEqual(marker('y.b'), marker('y.b-twin'));
});

test('ingress from an ipBlock covers the pods inside it too (and a CiliumNetworkPolicy fromCIDR does not, as in cilium)', () => {
  const np = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: from-block, namespace: z}
spec:
  podSelector: {matchLabels: {pod: c}}
  ingress: [{from: [{ipBlock: {cidr: 10.1.1.0/24, except: [${ip('x', 'c')}/32]}}]}]`;
  const d = load(cluster(np));
  assert.equal(judge(d.state, ip('x', 'a'), ip('z', 'c'), 'tcp', 80), 'allow');
  assert.equal(judge(d.state, ip('x', 'c'), ip('z', 'c'), 'tcp', 80), 'default-deny', 'except');
  assert.equal(judge(d.state, ip('y', 'a'), ip('z', 'c'), 'tcp', 80), 'default-deny', 'outside');
  const cnp = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: from-cidr, namespace: z}
spec:
  endpointSelector: {matchLabels: {pod: c}}
  ingress: [{fromCIDR: [10.1.1.0/24]}]`;
  const c = load(cluster(cnp));
  assert.equal(judge(c.state, ip('x', 'a'), ip('z', 'c'), 'tcp', 80), 'default-deny', "cilium's CIDR rules do not match the endpoints it manages");
});
