// Kubernetes objects → the datapath's desired state (schema.ts), as kube-proxy and a policy agent
// would read them, for one node. Each object is read by the module of its kind (kinds/) into its
// contribution; the state is the sum of the contributions:
//
//   Pod (with an IPv4 podIP)       → an endpoint (kinds/pod.ts)
//   Service + EndpointSlice        → one datapath service per VIP and port (kinds/service.ts,
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
import { cidrContains, parseCidr, parseIpv4 } from '../ip.js';
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
  | { kind: 'Namespace'; namespace: NamespaceFacts }
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
      return { kind, namespace: namespaceFacts(o), sink };
    case 'Pod':
      return { kind, pod: podFacts(o, sink), sink };
    case 'Service':
      return { kind, service: serviceFacts(o, sink), sink };
    case 'EndpointSlice':
      return { kind, source: endpointSliceFacts(o, sink), sink };
    case 'Endpoints':
      return { kind, source: endpointsFacts(o), sink };
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
    const prev = byIp.get(p.ip);
    if (prev) {
      sink.findings.add(p.origin, ['status', 'podIP'], `address ${p.ip} is also pod ${prev.ns}/${prev.name}'s (one address, one endpoint)`, 'this pod is left out');
      continue;
    }
    byIp.set(p.ip, p);
    kept.push(p);
  }
  // ipBlock peers that also cover pods (NetworkPolicy's): which of them each pod's address is in
  const blocks = new Map<string, { outer: NonNullable<ReturnType<typeof parseCidr>>; except: NonNullable<ReturnType<typeof parseCidr>>[] }>();
  for (const f of policies)
    for (const r of [...(f.parsed.ingress ?? []), ...(f.parsed.egress ?? [])])
      for (const p of r.peers ?? []) if ('cidr' in p && p.pods) blocks.set(cidrKey(p), { outer: parseCidr(p.cidr)!, except: p.except.map((e) => parseCidr(e)!) });
  const nsLabels = (ns: string) => namespaces.get(ns)?.labels ?? implicitNamespaceLabels(ns);
  const groups = new Map<string, Group>();
  const markerOf = new Map<PodFacts, string>();
  for (const p of kept) {
    const addr = { addr: parseIpv4(p.ip)!, len: 32 };
    const inside = [...blocks].filter(([, b]) => cidrContains(b.outer, addr) && !b.except.some((e) => cidrContains(e, addr))).map(([k]) => k);
    const h = createHash('sha256').update(canonicalLabels(p.labels));
    if (inside.length > 0) h.update(`\0${inside.sort().join('\0')}`);
    const marker = h.digest('hex').slice(0, 16);
    markerOf.set(p, marker);
    let g = groups.get(marker);
    if (!g) {
      const n = nsLabels(p.ns);
      const ciliumView: Record<string, string> = { ...p.labels };
      for (const [k, v] of Object.entries(n)) ciliumView[`${NS_LABELS_PREFIX}${k}`] = v;
      groups.set(marker, (g = { marker, ns: p.ns, labels: p.labels, nsLabels: n, ciliumView, inside: new Set(inside), pods: [] }));
    }
    g.pods.push(p);
  }
  const endpoints = kept
    .map((p) => ({ name: `${p.ns}.${p.name}`, ip: p.ip, labels: { ...p.labels, [LABELSET_LABEL]: markerOf.get(p)! }, ...(nodeName !== undefined && p.nodeName !== undefined && { nodeName: p.nodeName }) }))
    .sort((a, b) => a.name.localeCompare(b.name));
  for (const p of kept) origins.endpoints.set(`${p.ns}.${p.name}`, `${p.ns}/${p.name}`);
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

  const namespaces = new Map(of('Namespace').map((c) => [c.namespace.name, c.namespace]));
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
  const endpointsObjs = new Map(of('Endpoints').flatMap((c) => (c.source ? [[c.source.service, c.source] as const] : [])));
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
