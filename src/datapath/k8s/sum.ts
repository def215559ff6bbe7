// Kubernetes objects → the datapath's desired state (schema.ts), as kube-proxy and a policy agent
// would read them, for one node. Each object is read by the module of its kind (kinds/) into its
// contribution; the state is the sum of the contributions:
//
//   Pod (with a podIP)             → an endpoint: ip, and ip6 when dual-stack (kinds/pod.ts)
//   Service + EndpointSlice        → one datapath service per VIP (of each family) and port (kinds/service.ts,
//     (or Endpoints, or the Pods      kinds/endpointslice.ts)
//     its selector picks)
//   NetworkPolicy                  → policies on the endpoints its podSelector picks (kinds/networkpolicy.ts)
//   CiliumNetworkPolicy (L3/L4)    → the same, ingressDeny/egressDeny as deny rules (kinds/ciliumpolicy.ts)
//   Namespace                      → labels for namespaceSelector (kinds/namespace.ts)
//
// Selectors are resolved here, against the pods of the input, into label sets: every distinct label
// set gets a marker label (prep-node.io/labelset: a hash of the set), and policies select markers.
// That keeps one identity per label set while letting any selector (matchExpressions,
// namespaceSelector, cilium's namespace labels) select exactly the label sets it matches, which the
// schema's equality selectors cannot express. Pods whose address lies in a NetworkPolicy's ipBlock
// get a label set per ipBlock membership, so the ipBlock covers them and no pod outside it.
// Pods that are not in the input are unknown: their traffic has the identity of its address (WORLD,
// or a CIDR's), so give every pod of the cluster.
//
// Whatever the datapath cannot enforce is a Finding (findings.ts): a whole object, one service port,
// or one policy rule is left out (never half of a rule: an allow rule left out keeps its traffic
// denied, a deny rule left out lets it through, and the finding says which).
import { createHash } from 'node:crypto';
import { canonicalLabels } from '../identity.js';
import { cidrContainsAny, parseCidrAny, type AnyCidr } from '../ip.js';
import type { DatapathState } from '../schema.js';
import { Findings } from './findings.js';
import type { InputObject } from './manifests.js';
import { newOrigins, type Origins } from './origins.js';
import { ciliumPolicyFacts } from './kinds/ciliumpolicy.js';
import { newSink, str, withoutNulls, type Sink } from './kinds/common.js';
import { endpointSliceFacts, endpointsFacts, type BackendSource } from './kinds/endpointslice.js';
import { implicitNamespaceLabels, namespaceFacts, type NamespaceFacts } from './kinds/namespace.js';
import { networkPolicyFacts } from './kinds/networkpolicy.js';
import { podFacts, type PodFacts } from './kinds/pod.js';
import { cidrKey, emitPolicy, LABELSET_LABEL, type Group, type PolicyFacts, type PolicyOut } from './kinds/rules.js';
import { serviceFacts, serviceOutputs, type ServiceFacts, type ServiceOut } from './kinds/service.js';

export { LABELSET_LABEL } from './kinds/rules.js';
export { newOrigins, type Origins } from './origins.js';
export { NAMESPACE_LABEL, SERVICEACCOUNT_LABEL } from './kinds/pod.js';
export { ALGORITHM_ANNOTATION } from './kinds/service.js';

const NS_LABELS_PREFIX = 'io.cilium.k8s.namespace.labels.';
/** The name suffix of a dual-stack pod's IPv6 endpoint when its two addresses are in different ipBlocks. */
export const IPV6_SUFFIX = '.ipv6';

export interface TranslateOptions {
  /** the node's addresses: NodePort services get one datapath service per address */
  nodeAddresses?: string[];
  /** this node's name: pods and endpoints elsewhere are remote (spec.nodeName, nodeName), and
   * externalTrafficPolicy/internalTrafficPolicy Local are enforced; absent: every backend is local */
  nodeName?: string;
}

export interface Translation {
  /** the desired state (not yet validated by the schema: the caller does) */
  state: { endpoints: DatapathState['endpoints']; services: ServiceOut[]; policies: PolicyOut[]; node?: DatapathState['node'] };
  findings: Findings;
  /** what was read and deliberately not used (no IP yet, headless services, ...) */
  notes: string[];
  origins: Origins;
  /** objects read, by kind */
  counts: Record<string, number>;
}

const KNOWN_KINDS: Record<string, string> = {
  Namespace: 'v1',
  Pod: 'v1',
  Service: 'v1',
  Endpoints: 'v1',
  EndpointSlice: 'discovery.k8s.io/v1',
  NetworkPolicy: 'networking.k8s.io/v1',
  CiliumNetworkPolicy: 'cilium.io/v2',
  CiliumClusterwideNetworkPolicy: 'cilium.io/v2',
};

/** One object's contribution to the desired state, and what its kind module found in it. */
export type Contribution = { sink: Sink } & (
  | { kind: 'Namespace'; namespace: NamespaceFacts | null }
  | { kind: 'Pod'; pod: PodFacts | null }
  | { kind: 'Service'; service: ServiceFacts | null }
  | { kind: 'EndpointSlice' | 'Endpoints'; source: BackendSource | null }
  | { kind: 'NetworkPolicy' | 'CiliumNetworkPolicy' | 'CiliumClusterwideNetworkPolicy'; policies: PolicyFacts[] }
  | { kind: 'none' }
);

/** Read one object by the module of its kind (null fields read as absent, as the API server reads them). */
export function contributionOf(input: InputObject): Contribution {
  const sink = newSink();
  const kind = str(input.obj.kind);
  const api = str(input.obj.apiVersion);
  if (!kind) {
    sink.findings.add(input.origin, ['kind'], 'not a Kubernetes object: no kind (a prep-node state file must be given alone, not with manifests)', 'this document is left out');
    return { kind: 'none', sink };
  }
  const want = KNOWN_KINDS[kind];
  if (!want) {
    sink.findings.add(input.origin, ['kind'], `kind ${kind} (${api ?? 'no apiVersion'}) has nothing the datapath can enforce (it reads Namespace, Pod, Service, EndpointSlice, Endpoints, NetworkPolicy, CiliumNetworkPolicy)`, 'this object is left out');
    return { kind: 'none', sink };
  }
  if (api !== want) {
    sink.findings.add(input.origin, ['apiVersion'], `${kind} is read as ${want}, got ${api ?? 'no apiVersion'}`, 'this object is left out');
    return { kind: 'none', sink };
  }
  const o: InputObject = { origin: input.origin, obj: withoutNulls(input.obj) };
  switch (kind) {
    case 'Namespace':
      return { kind, namespace: namespaceFacts(o, sink), sink };
    case 'Pod':
      return { kind, pod: podFacts(o, sink), sink };
    case 'Service':
      return { kind, service: serviceFacts(o, sink), sink };
    case 'EndpointSlice':
      return { kind, source: endpointSliceFacts(o, sink), sink };
    case 'Endpoints':
      return { kind, source: endpointsFacts(o, sink), sink };
    case 'NetworkPolicy':
      return { kind, policies: [networkPolicyFacts(o, sink)].filter((p): p is PolicyFacts => p !== null), sink };
    default:
      return { kind: kind as 'CiliumNetworkPolicy', policies: ciliumPolicyFacts(o, kind === 'CiliumClusterwideNetworkPolicy', sink), sink };
  }
}

/** The endpoints and policies half of the state: what pods, namespaces and policies contribute together. */
export interface PolicyHalf {
  endpoints: DatapathState['endpoints'];
  policies: PolicyOut[];
  /** every pod kept (one per address) */
  pods: PodFacts[];
}

/**
 * Pods (first one per address wins; a later one is a finding), their label sets split by ipBlock
 * membership, and the policies resolved against them.
 */
export function sumPolicyHalf(pods: readonly PodFacts[], namespaces: ReadonlyMap<string, NamespaceFacts>, policies: readonly PolicyFacts[], sink: Sink, origins: Origins, nodeName?: string): PolicyHalf {
  const byIp = new Map<string, PodFacts>();
  const kept: PodFacts[] = [];
  for (const p of pods) {
    const addrs = p.ip6 === undefined ? [p.ip] : [p.ip, p.ip6];
    const prev = addrs.map((a) => [a, byIp.get(a)] as const).find(([, q]) => q !== undefined);
    if (prev) {
      sink.findings.add(p.origin, ['status', 'podIP'], `address ${prev[0]} is also pod ${prev[1]!.ns}/${prev[1]!.name}'s (one address, one endpoint)`, 'this pod is left out');
      continue;
    }
    for (const a of addrs) byIp.set(a, p);
    kept.push(p);
  }
  // ipBlock peers that also cover pods (NetworkPolicy's): which of them each pod's address is in
  const blocks = new Map<string, { outer: AnyCidr; except: AnyCidr[] }>();
  for (const f of policies)
    for (const r of [...(f.parsed.ingress ?? []), ...(f.parsed.egress ?? [])])
      for (const p of r.peers ?? []) if ('cidr' in p && p.pods) blocks.set(cidrKey(p), { outer: parseCidrAny(p.cidr)!, except: p.except.map((e) => parseCidrAny(e)!) });
  const nsLabels = (ns: string) => namespaces.get(ns)?.labels ?? implicitNamespaceLabels(ns);
  const groups = new Map<string, Group>();
  /** the label set of one of a pod's addresses: its labels and the ipBlocks that address is in */
  const groupOf = (p: PodFacts, ip: string): Group => {
    const addr = parseCidrAny(ip)!;
    const inside = [...blocks].filter(([, b]) => cidrContainsAny(b.outer, addr) && !b.except.some((e) => cidrContainsAny(e, addr))).map(([k]) => k);
    const h = createHash('sha256').update(canonicalLabels(p.labels));
    if (inside.length > 0) h.update(`\0${inside.sort().join('\0')}`);
    const marker = h.digest('hex').slice(0, 16);
    let g = groups.get(marker);
    if (!g) {
      const n = nsLabels(p.ns);
      const ciliumView: Record<string, string> = { ...p.labels };
      for (const [k, v] of Object.entries(n)) ciliumView[`${NS_LABELS_PREFIX}${k}`] = v;
      groups.set(marker, (g = { marker, ns: p.ns, labels: p.labels, nsLabels: n, ciliumView, inside: new Set(inside), pods: [] }));
    }
    if (!g.pods.includes(p)) g.pods.push(p);
    return g;
  };
  const endpoints: DatapathState['endpoints'] = [];
  for (const p of kept) {
    const name = `${p.ns}.${p.name}`;
    const node = nodeName !== undefined && p.nodeName !== undefined ? { nodeName: p.nodeName } : {};
    const g = groupOf(p, p.ip);
    const g6 = p.ip6 === undefined ? g : groupOf(p, p.ip6);
    // a dual-stack pod is one endpoint when both its addresses are in the same ipBlocks; when an
    // ipBlock holds one of them only, each address is an endpoint with its own label set, so the
    // ipBlock's rule covers that address and not the other (an ipBlock matches addresses)
    if (g6 === g) endpoints.push({ name, ip: p.ip, ...(p.ip6 !== undefined && { ip6: p.ip6 }), labels: { ...p.labels, [LABELSET_LABEL]: g.marker }, ...node });
    else {
      endpoints.push({ name, ip: p.ip, labels: { ...p.labels, [LABELSET_LABEL]: g.marker }, ...node });
      endpoints.push({ name: `${name}${IPV6_SUFFIX}`, ip: p.ip6!, labels: { ...p.labels, [LABELSET_LABEL]: g6.marker }, ...node });
      origins.endpoints.set(`${name}${IPV6_SUFFIX}`, `${p.ns}/${p.name} (IPv6)`);
    }
    origins.endpoints.set(name, `${p.ns}/${p.name}`);
  }
  endpoints.sort((a, b) => a.name.localeCompare(b.name));
  const all = [...groups.values()];
  return { endpoints, policies: policies.flatMap((f) => emitPolicy(f, all, origins)), pods: kept };
}

/** Translate the objects of the input: the sum of their contributions. Pure: the same objects give the same state. */
export function translate(objects: InputObject[], options: TranslateOptions = {}): Translation {
  const contributions = objects.map(contributionOf);
  const findings = new Findings();
  const notes: string[] = [];
  const counts: Record<string, number> = {};
  const origins = newOrigins();
  const take = (s: Sink) => {
    findings.list.push(...s.findings.list);
    notes.push(...s.notes);
  };
  contributions.filter((c) => c.kind === 'none').forEach((c) => take(c.sink));
  const of = <K extends Contribution['kind']>(kind: K) => contributions.filter((c): c is Contribution & { kind: K } => c.kind === kind);
  for (const c of contributions) if (c.kind !== 'none') counts[c.kind] = (counts[c.kind] ?? 0) + 1;

  const namespaces = new Map(of('Namespace').flatMap((c) => (take(c.sink), c.namespace ? [[c.namespace.name, c.namespace] as const] : [])));
  const pods = of('Pod').flatMap((c) => (take(c.sink), c.pod ? [c.pod] : []));
  const policyContribs = [...of('NetworkPolicy'), ...of('CiliumNetworkPolicy'), ...of('CiliumClusterwideNetworkPolicy')];
  const podSink = newSink();
  const half = sumPolicyHalf(pods, namespaces, policyContribs.flatMap((c) => c.policies), podSink, origins, options.nodeName);
  take(podSink);

  const slices = new Map<string, BackendSource[]>();
  for (const c of of('EndpointSlice')) {
    take(c.sink);
    if (c.source) slices.set(c.source.service, [...(slices.get(c.source.service) ?? []), c.source]);
  }
  const endpointsObjs = new Map(of('Endpoints').flatMap((c) => (take(c.sink), c.source ? [[c.source.service, c.source] as const] : [])));
  const seenVip = new Map<string, string>();
  const claim = (vkey: string, owner: string) => {
    const other = seenVip.get(vkey);
    if (other === undefined) seenVip.set(vkey, owner);
    return other;
  };
  const services: ServiceOut[] = [];
  for (const c of of('Service')) {
    take(c.sink);
    if (!c.service) continue;
    const s = newSink();
    services.push(...serviceOutputs(c.service, { slices: slices.get(c.service.key) ?? [], endpoints: endpointsObjs.get(c.service.key), pods: () => half.pods, nodeAddresses: options.nodeAddresses ?? [], nodeName: options.nodeName, claim, origins: origins.services }, s));
    take(s);
  }
  policyContribs.forEach((c) => take(c.sink));
  const node = options.nodeName === undefined ? {} : { node: { name: options.nodeName, ...(options.nodeAddresses?.length && { addresses: options.nodeAddresses }) } };
  return { state: { endpoints: half.endpoints, services, policies: half.policies, ...node }, findings, notes, origins, counts };
}
