// Shared by the k8s-*.test.ts files: a cluster's worth of pods, loading manifests from a string, and
// a judge that decides a flow the way tc_lb's policy.h does from the compiled policy entries.
import assert from 'node:assert/strict';
import { EP_F_ENFORCE_EGRESS, EP_F_ENFORCE_INGRESS, IDENTITY_ANY, IDENTITY_WORLD, IDENTITY_WORLD_IPV6, IPPROTO, POLICY_DENY, POLICY_EGRESS, POLICY_INGRESS } from '../../src/datapath/consts.js';
import { allocateIdentities } from '../../src/datapath/identity.js';
import { cidrContainsAny, parseCidrAny } from '../../src/datapath/ip.js';
import { compilePolicies, type PolicyEntry } from '../../src/datapath/policy.js';
import type { DatapathState } from '../../src/datapath/schema.js';
import { desiredFromFiles, ManifestRefusal, type DesiredOptions } from '../../src/datapath/k8s/index.js';
import { parseFile } from '../../src/datapath/k8s/manifests.js';

/** Pods in two namespaces (prod labelled env=prod, dev), and the kube-dns pod. */
export const PODS = `
apiVersion: v1
kind: Namespace
metadata: {name: prod, labels: {env: prod}}
---
apiVersion: v1
kind: Namespace
metadata: {name: dev, labels: {env: dev}}
---
${[
  ['prod', 'frontend', '10.0.1.1', '{app: frontend}'],
  ['prod', 'backend', '10.0.1.2', '{app: backend}'],
  ['prod', 'backend-canary', '10.0.1.3', '{app: backend, track: canary}'],
  ['prod', 'db', '10.0.1.4', '{app: db}'],
  ['dev', 'frontend', '10.0.2.1', '{app: frontend}'],
  ['dev', 'backend', '10.0.2.2', '{app: backend}'],
  ['kube-system', 'coredns', '10.0.3.53', '{k8s-app: kube-dns}'],
  ['prod', 'org-empire', '10.0.1.7', '{org: empire, class: deathstar}'],
  ['prod', 'org-empire-ship', '10.0.1.8', '{org: empire, class: tiefighter}'],
]
  .map(
    ([ns, name, ip, labels]) => `apiVersion: v1
kind: Pod
metadata: {name: ${name}, namespace: ${ns}, labels: ${labels}}
spec:
  containers: [{name: c, image: x, ports: [{name: http, containerPort: ${name!.startsWith('backend') ? 8080 : 80}}, {name: dns, containerPort: 53, protocol: UDP}]}]
status: {phase: Running, podIP: ${ip}, conditions: [{type: Ready, status: "True"}]}`,
  )
  .join('\n---\n')}
`;

export function load(text: string, o: DesiredOptions = {}) {
  return desiredFromFiles([parseFile('m.yaml', text)], o);
}
export function refusal(text: string, o: DesiredOptions = {}): ManifestRefusal {
  try {
    load(text, o);
  } catch (err) {
    if (err instanceof ManifestRefusal) return err;
    throw err;
  }
  assert.fail('the manifests were not refused');
}

type Proto = 'tcp' | 'udp' | 'sctp' | 'icmp';
type Verdict = 'allow' | 'deny' | 'default-deny';

/** What tc_lb decides for a new flow src → dst:port (policy.h: egress of src, ingress of dst); either family (an endpoint's ip or ip6). */
export function judge(state: DatapathState, src: string, dst: string, proto: Proto, port: number): Verdict {
  const ids = allocateIdentities(state);
  const pol = compilePolicies(state, ids);
  const endpoint = (ip: string) => state.endpoints.find((e) => e.ip === ip || e.ip6 === ip);
  const identity = (ip: string): number => {
    const e = endpoint(ip);
    if (e) return ids.byEndpoint.get(e.name)!;
    const addr = parseCidrAny(ip)!;
    let best: { len: number; id: number } | undefined;
    for (const [cidr, id] of ids.byCidr) {
      const c = parseCidrAny(cidr)!;
      if (c.len > 0 && cidrContainsAny(c, addr) && (!best || c.len > best.len)) best = { len: c.len, id };
    }
    return best?.id ?? (addr.family === 4 ? IDENTITY_WORLD : IDENTITY_WORLD_IPV6);
  };
  const lookup = (local: number, remote: number, dir: number): PolicyEntry | undefined => {
    const p = IPPROTO[proto];
    const hits = pol.entries.filter(
      (e) => e.localId === local && e.remoteId === remote && e.direction === dir && (e.proto === 0 || (e.proto === p && (e.portBits === 0 || e.port >>> (16 - e.portBits) === port >>> (16 - e.portBits)))),
    );
    const rank = (e: PolicyEntry) => (e.proto === 0 ? 0 : 1 + e.portBits);
    return hits.sort((a, b) => rank(b) - rank(a))[0];
  };
  const check = (ip: string, dir: number, bit: number, remoteIp: string): Verdict => {
    const e = endpoint(ip);
    if (!e || !((pol.endpointFlags.get(e.name) ?? 0) & bit)) return 'allow';
    const local = ids.byEndpoint.get(e.name)!;
    const byPeer = lookup(local, identity(remoteIp), dir);
    const byAny = lookup(local, IDENTITY_ANY, dir);
    if (byPeer?.action === POLICY_DENY || byAny?.action === POLICY_DENY) return 'deny';
    return byPeer || byAny ? 'allow' : 'default-deny';
  };
  const out = check(src, POLICY_EGRESS, EP_F_ENFORCE_EGRESS, dst);
  if (out !== 'allow') return out;
  return check(dst, POLICY_INGRESS, EP_F_ENFORCE_INGRESS, src);
}

