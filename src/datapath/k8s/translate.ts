// Kubernetes objects → the datapath's desired state (schema.ts), as kube-proxy and a policy agent
// would read them, for one node:
//
//   Pod (with an IPv4 podIP)       → an endpoint: its labels plus io.kubernetes.pod.namespace (and the
//                                    service account), as cilium builds an identity
//   Service + EndpointSlice        → one datapath service per VIP (clusterIP, externalIPs, load balancer
//     (or Endpoints, or the Pods      ingress IPs, node address:nodePort) and port, backends = ready
//     its selector picks)             endpoints, or terminating-but-serving ones when none is ready
//   NetworkPolicy                  → policies on the endpoints its podSelector picks in its namespace
//   CiliumNetworkPolicy (L3/L4)    → the same, ingressDeny/egressDeny as deny rules
//   Namespace                      → labels for namespaceSelector (kubernetes.io/metadata.name is implicit)
//
// Selectors are resolved here, against the pods of the input, into label sets: every distinct label
// set gets a marker label (prep-node.io/labelset: a hash of the set), and policies select markers.
// That keeps one identity per label set (as before) while letting any selector (matchExpressions,
// namespaceSelector, cilium's namespace labels) select exactly the label sets it matches, which the
// schema's equality selectors cannot express. Pods that are not in the input are unknown: their
// traffic has the identity of its address (WORLD, or a CIDR's), so give every pod of the cluster.
//
// Whatever the datapath cannot enforce is a Finding (findings.ts): a whole object, one service port,
// or one policy rule is left out (never half of a rule: an allow rule left out keeps its traffic
// denied, a deny rule left out lets it through, and the finding says which).
import { createHash } from 'node:crypto';
import { LB_MAGLEV_M } from '../consts.js';
import { canonicalLabels } from '../identity.js';
import { formatCidr, parseCidr, parseIpv4 } from '../ip.js';
import type { DatapathState } from '../schema.js';
import { Findings } from './findings.js';
import { isObject, type InputObject, type Path } from './manifests.js';
import { isProblem, matches, mentions, parseSelector } from './selector.js';
import { CiliumPolicyShape, NetworkPolicyShape, shapeProblems } from './shapes.js';

/** The label that names a label set (the value is a hash of the canonical labels). */
export const LABELSET_LABEL = 'prep-node.io/labelset';
/** cilium's namespace label on every pod identity. */
export const NAMESPACE_LABEL = 'io.kubernetes.pod.namespace';
export const SERVICEACCOUNT_LABEL = 'io.cilium.k8s.policy.serviceaccount';
const NS_LABELS_PREFIX = 'io.cilium.k8s.namespace.labels.';
/** Service annotation choosing the backend selection: random (default) or maglev. */
export const ALGORITHM_ANNOTATION = 'prep-node.io/lb-algorithm';

export interface TranslateOptions {
  /** the node's addresses: NodePort services get one datapath service per address */
  nodeAddresses?: string[];
  /** this node's name: pods and endpoints elsewhere are remote (spec.nodeName, nodeName), and
   * externalTrafficPolicy/internalTrafficPolicy Local are enforced; absent: every backend is local */
  nodeName?: string;
}

/** Who a datapath object came from, for observe and dry runs. */
export interface Origins {
  /** endpoint name → "namespace/pod" */
  endpoints: Map<string, string>;
  /** service name → "namespace/service:port (ClusterIP)" */
  services: Map<string, string>;
  /** "policy/direction/index" → the manifest's policy and rule */
  rules: Map<string, { policy: string; rule: string }>;
  /** policy name → the manifest's policy */
  policies: Map<string, string>;
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

type ServiceOut = {
  name: string;
  vip: string;
  port: number;
  protocol: 'tcp' | 'udp';
  backends: { ip: string; port: number; weight: number; nodeName?: string }[];
  algorithm: 'random' | 'maglev';
  sessionAffinity?: { timeoutSeconds: number };
  external?: boolean;
  externalTrafficPolicy?: 'Cluster' | 'Local';
  internalTrafficPolicy?: 'Cluster' | 'Local';
};
type PortOut = { port?: number; endPort?: number; protocol: 'tcp' | 'udp' | 'icmp' };
type PeerOut = { selector?: Record<string, string>; cidr?: string; except?: string[] };
type RuleOut = { action: 'allow' | 'deny'; ports?: PortOut[]; from?: PeerOut[]; to?: PeerOut[] };
type PolicyOut = { name: string; selector: Record<string, string>; ingress?: RuleOut[]; egress?: RuleOut[] };

interface Pod {
  ns: string;
  name: string;
  ip: string;
  /** identity labels (pod labels + namespace + service account) */
  labels: Record<string, string>;
  /** what cilium selectors see: identity labels + the namespace's labels */
  ciliumView: Record<string, string>;
  ready: boolean;
  ports: { name: string; port: number; protocol: string }[];
  group: string;
  nodeName?: string;
}

interface Group {
  marker: string;
  labels: Record<string, string>;
  pods: Pod[];
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

const IPV6 = 'IPv6 is not handled by the datapath (its maps are IPv4 only; IPv6 packets pass untouched)';
const ALLOW_LEFT = 'this rule is left out: the traffic it allows stays denied';
const DENY_LEFT = 'this rule is left out: the traffic it denies is NOT denied';

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}
function arr(v: unknown): unknown[] {
  return Array.isArray(v) ? v : [];
}
function obj(v: unknown): Record<string, unknown> {
  return isObject(v) ? v : {};
}
function labelsOf(v: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(obj(v))) if (typeof x === 'string') out[k] = x;
  return out;
}
const dashed = (ip: string) => ip.replace(/[.:]/g, '-');
const lower = (s: string) => s.toLowerCase();

/** Translate the objects of the input. Pure: the same objects give the same state. */
export function translate(objects: InputObject[], options: TranslateOptions = {}): Translation {
  const findings = new Findings();
  const notes: string[] = [];
  const counts: Record<string, number> = {};
  const origins: Origins = { endpoints: new Map(), services: new Map(), rules: new Map(), policies: new Map() };

  // ---- kinds and apiVersions; sort the objects by kind
  const byKind = new Map<string, InputObject[]>();
  for (const o of objects) {
    const kind = str(o.obj.kind);
    const api = str(o.obj.apiVersion);
    if (!kind) {
      findings.add(o.origin, ['kind'], 'not a Kubernetes object: no kind (a prep-node state file must be given alone, not with manifests)', 'this document is left out');
      continue;
    }
    const want = KNOWN_KINDS[kind];
    if (!want) {
      findings.add(o.origin, ['kind'], `kind ${kind} (${api ?? 'no apiVersion'}) has nothing the datapath can enforce (it reads Namespace, Pod, Service, EndpointSlice, Endpoints, NetworkPolicy, CiliumNetworkPolicy)`, 'this object is left out');
      continue;
    }
    if (api !== want) {
      findings.add(o.origin, ['apiVersion'], `${kind} is read as ${want}, got ${api ?? 'no apiVersion'}`, 'this object is left out');
      continue;
    }
    counts[kind] = (counts[kind] ?? 0) + 1;
    byKind.set(kind, [...(byKind.get(kind) ?? []), o]);
  }
  const nsOf = (o: InputObject) => str(obj(o.obj.metadata).namespace) ?? 'default';
  const nameOf = (o: InputObject) => str(obj(o.obj.metadata).name) ?? '';
  const list = (kind: string) => byKind.get(kind) ?? [];

  // ---- namespaces: labels (kubernetes.io/metadata.name is set by the API server on every namespace)
  const nsLabels = new Map<string, Record<string, string>>();
  for (const o of list('Namespace')) nsLabels.set(nameOf(o), { ...labelsOf(obj(o.obj.metadata).labels), 'kubernetes.io/metadata.name': nameOf(o) });
  const labelsOfNs = (ns: string) => nsLabels.get(ns) ?? { 'kubernetes.io/metadata.name': ns };

  // ---- pods → endpoints
  const pods: Pod[] = [];
  const byIp = new Map<string, Pod>();
  for (const o of list('Pod')) {
    const md = obj(o.obj.metadata);
    const spec = obj(o.obj.spec);
    const status = obj(o.obj.status);
    const ns = nsOf(o);
    const name = nameOf(o);
    const phase = str(status.phase);
    if (spec.hostNetwork === true) {
      notes.push(`${o.origin.what}: host network pod: it has the node's address, not an endpoint`);
      continue;
    }
    if (phase === 'Succeeded' || phase === 'Failed') {
      notes.push(`${o.origin.what}: ${phase}: not an endpoint`);
      continue;
    }
    const ips = [...new Set([str(status.podIP), ...arr(status.podIPs).map((p) => str(obj(p).ip))].filter((x): x is string => !!x))];
    const v4 = ips.filter((ip) => parseIpv4(ip) !== null);
    ips.filter((ip) => ip.includes(':')).forEach(() => findings.add(o.origin, ['status', 'podIPs'], IPV6, "the pod's IPv6 address is left out: policies do not apply to its IPv6 traffic"));
    if (v4.length === 0) {
      if (ips.length === 0) notes.push(`${o.origin.what}: no status.podIP yet (not scheduled or not running): not an endpoint`);
      continue;
    }
    const ip = v4[0]!;
    const prev = byIp.get(ip);
    if (prev) {
      findings.add(o.origin, ['status', 'podIP'], `address ${ip} is also pod ${prev.ns}/${prev.name}'s (one address, one endpoint)`, 'this pod is left out');
      continue;
    }
    const labels: Record<string, string> = { ...labelsOf(md.labels), [NAMESPACE_LABEL]: ns };
    const sa = str(spec.serviceAccountName) ?? str(spec.serviceAccount);
    if (sa) labels[SERVICEACCOUNT_LABEL] = sa;
    const ciliumView: Record<string, string> = { ...labels };
    for (const [k, v] of Object.entries(labelsOfNs(ns))) ciliumView[`${NS_LABELS_PREFIX}${k}`] = v;
    const conditions = arr(status.conditions).map(obj);
    const readyCond = conditions.find((c) => c.type === 'Ready');
    const ready = readyCond ? readyCond.status === 'True' : phase === 'Running' || phase === undefined;
    const ports = arr(spec.containers).flatMap((c) =>
      arr(obj(c).ports)
        .map(obj)
        .filter((p) => typeof p.name === 'string' && typeof p.containerPort === 'number')
        .map((p) => ({ name: p.name as string, port: p.containerPort as number, protocol: lower(str(p.protocol) ?? 'TCP') })),
    );
    const group = createHash('sha256').update(canonicalLabels(labels)).digest('hex').slice(0, 16);
    const pod: Pod = { ns, name, ip, labels, ciliumView, ready, ports, group, ...(str(spec.nodeName) !== undefined && { nodeName: str(spec.nodeName) }) };
    pods.push(pod);
    byIp.set(ip, pod);
  }
  const groups = new Map<string, Group>();
  for (const p of pods) {
    const g = groups.get(p.group) ?? { marker: p.group, labels: p.labels, pods: [] };
    g.pods.push(p);
    groups.set(p.group, g);
  }
  const endpoints = pods
    .map((p) => ({ name: `${p.ns}.${p.name}`, ip: p.ip, labels: { ...p.labels, [LABELSET_LABEL]: p.group }, ...(options.nodeName !== undefined && p.nodeName !== undefined && { nodeName: p.nodeName }) }))
    .sort((a, b) => a.name.localeCompare(b.name));
  for (const p of pods) origins.endpoints.set(`${p.ns}.${p.name}`, `${p.ns}/${p.name}`);

  const services = translateServices(list, { nsOf, nameOf, pods, findings, notes, origins, nodeAddresses: options.nodeAddresses ?? [], ...(options.nodeName !== undefined && { nodeName: options.nodeName }) });
  const policies: PolicyOut[] = [];
  const ctx: PolicyCtx = { findings, groups: [...groups.values()], labelsOfNs, origins, policies };
  for (const o of list('NetworkPolicy')) networkPolicy(o, nsOf(o), nameOf(o), ctx);
  for (const o of list('CiliumNetworkPolicy')) ciliumPolicy(o, nsOf(o), nameOf(o), ctx);
  for (const o of list('CiliumClusterwideNetworkPolicy')) ciliumPolicy(o, null, nameOf(o), ctx);
  const node = options.nodeName === undefined ? {} : { node: { name: options.nodeName, ...(options.nodeAddresses?.length && { addresses: options.nodeAddresses }) } };
  return { state: { endpoints, services, policies, ...node }, findings, notes, origins, counts };
}

// ------------------------------------------------------------------------------------------ services

interface SvcCtx {
  nsOf: (o: InputObject) => string;
  nameOf: (o: InputObject) => string;
  pods: Pod[];
  findings: Findings;
  notes: string[];
  origins: Origins;
  nodeAddresses: string[];
  nodeName?: string;
}

const SERVICE_SPEC = new Set([
  'type', 'clusterIP', 'clusterIPs', 'ports', 'selector', 'sessionAffinity', 'sessionAffinityConfig', 'externalIPs', 'externalTrafficPolicy',
  'internalTrafficPolicy', 'ipFamilies', 'ipFamilyPolicy', 'externalName', 'publishNotReadyAddresses', 'allocateLoadBalancerNodePorts',
  'loadBalancerClass', 'healthCheckNodePort', 'loadBalancerIP', 'loadBalancerSourceRanges', 'trafficDistribution',
]);
const SERVICE_PORT = new Set(['name', 'protocol', 'port', 'targetPort', 'nodePort', 'appProtocol']);
const SLICE_TOP = new Set(['apiVersion', 'kind', 'metadata', 'addressType', 'endpoints', 'ports']);
const SLICE_EP = new Set(['addresses', 'conditions', 'hostname', 'targetRef', 'nodeName', 'zone', 'hints', 'deprecatedTopology']);

interface Backend {
  ip: string;
  port: number;
  ready: boolean;
  serving: boolean;
  terminating: boolean;
  nodeName?: string;
}

function translateServices(list: (kind: string) => InputObject[], c: SvcCtx): ServiceOut[] {
  const { findings } = c;
  // EndpointSlices by service (kubernetes.io/service-name), Endpoints by name
  const slices = new Map<string, InputObject[]>();
  for (const o of list('EndpointSlice')) {
    const svc = str(obj(obj(o.obj.metadata).labels)['kubernetes.io/service-name']);
    for (const k of Object.keys(o.obj)) if (!SLICE_TOP.has(k)) findings.add(o.origin, [k], 'unknown EndpointSlice field', 'this EndpointSlice is left out');
    arr(o.obj.endpoints).forEach((e, i) => {
      for (const k of Object.keys(obj(e))) if (!SLICE_EP.has(k)) findings.add(o.origin, ['endpoints', i, k], 'unknown EndpointSlice endpoint field', 'this EndpointSlice is left out');
    });
    if (!svc) {
      c.notes.push(`${o.origin.what}: no kubernetes.io/service-name label: belongs to no service`);
      continue;
    }
    const key = `${c.nsOf(o)}/${svc}`;
    slices.set(key, [...(slices.get(key) ?? []), o]);
  }
  const endpointsObjs = new Map(list('Endpoints').map((o) => [`${c.nsOf(o)}/${c.nameOf(o)}`, o]));
  const out: ServiceOut[] = [];
  const seenVip = new Map<string, string>();
  for (const o of list('Service')) {
    const ns = c.nsOf(o);
    const name = c.nameOf(o);
    const spec = obj(o.obj.spec);
    const before = findings.length;
    const LEFT = 'this Service is left out: its VIPs are not load-balanced';
    for (const k of Object.keys(spec)) if (!SERVICE_SPEC.has(k)) findings.add(o.origin, ['spec', k], 'unknown Service field', LEFT);
    const type = str(spec.type) ?? 'ClusterIP';
    if (type === 'ExternalName') {
      c.notes.push(`${o.origin.what}: ExternalName (a DNS alias): nothing to load-balance`);
      continue;
    }
    if (!['ClusterIP', 'NodePort', 'LoadBalancer'].includes(type)) findings.add(o.origin, ['spec', 'type'], `unknown Service type ${type}`, LEFT);
    if (spec.loadBalancerSourceRanges !== undefined && arr(spec.loadBalancerSourceRanges).length > 0)
      findings.add(o.origin, ['spec', 'loadBalancerSourceRanges'], 'source ranges are a firewall on the load balancer; the datapath does not filter service traffic by source', LEFT);
    if (spec.internalTrafficPolicy === 'Local' && c.nodeName === undefined) findings.add(o.origin, ['spec', 'internalTrafficPolicy'], 'Local needs to know which backends run on this node; the datapath balances over all of them', LEFT);
    const external = type !== 'ClusterIP' || arr(spec.externalIPs).length > 0;
    if (spec.externalTrafficPolicy === 'Local' && external && c.nodeName === undefined)
      findings.add(o.origin, ['spec', 'externalTrafficPolicy'], 'Local needs node-local backends and source address preservation; the datapath balances over all backends', LEFT);
    const clusterIPs = [...new Set([str(spec.clusterIP), ...arr(spec.clusterIPs).map(str)].filter((x): x is string => !!x))];
    if (clusterIPs.includes('None')) {
      c.notes.push(`${o.origin.what}: headless (clusterIP: None): no VIP to load-balance`);
      continue;
    }
    const vips: { ip: string; kind: string; nodePort?: boolean }[] = [];
    clusterIPs.forEach((ip) => {
      if (ip.includes(':')) findings.add(o.origin, ['spec', 'clusterIPs'], IPV6, 'the IPv6 cluster IP is left out');
      else if (parseIpv4(ip) === null) findings.add(o.origin, ['spec', 'clusterIP'], `"${ip}" is not an IPv4 address`, LEFT);
      else vips.push({ ip, kind: 'ClusterIP' });
    });
    if (clusterIPs.length === 0)
      findings.add(o.origin, ['spec', 'clusterIP'], 'no clusterIP: the API server assigns it; take the Service from the cluster (kubectl get svc -o yaml) or set spec.clusterIP', LEFT);
    arr(spec.externalIPs).forEach((ip, i) => {
      if (typeof ip === 'string' && parseIpv4(ip) !== null) vips.push({ ip, kind: 'externalIP' });
      else findings.add(o.origin, ['spec', 'externalIPs', i], typeof ip === 'string' && ip.includes(':') ? IPV6 : 'expected an IPv4 address', 'this external IP is left out');
    });
    if (type === 'LoadBalancer') {
      arr(obj(obj(o.obj.status).loadBalancer).ingress).forEach((ing, i) => {
        const ip = str(obj(ing).ip);
        if (ip && parseIpv4(ip) !== null) vips.push({ ip, kind: 'LoadBalancer' });
        else if (ip) findings.add(o.origin, ['status', 'loadBalancer', 'ingress', i, 'ip'], IPV6, 'this load balancer address is left out');
      });
    }
    const affinity = spec.sessionAffinity === 'ClientIP' ? { timeoutSeconds: Number(obj(obj(spec.sessionAffinityConfig).clientIP).timeoutSeconds ?? 10800) } : undefined;
    if (affinity && (!Number.isInteger(affinity.timeoutSeconds) || affinity.timeoutSeconds < 1 || affinity.timeoutSeconds > 86400))
      findings.add(o.origin, ['spec', 'sessionAffinityConfig', 'clientIP', 'timeoutSeconds'], 'expected 1-86400 seconds', LEFT);
    if (spec.sessionAffinity !== undefined && spec.sessionAffinity !== 'None' && spec.sessionAffinity !== 'ClientIP') findings.add(o.origin, ['spec', 'sessionAffinity'], 'expected None or ClientIP', LEFT);
    const annotation = str(obj(obj(o.obj.metadata).annotations)[ALGORITHM_ANNOTATION]);
    if (annotation !== undefined && annotation !== 'random' && annotation !== 'maglev') findings.add(o.origin, ['metadata', 'annotations', ALGORITHM_ANNOTATION], 'expected random or maglev', LEFT);
    const algorithm = annotation === 'maglev' ? 'maglev' : 'random';
    const ports = arr(spec.ports);
    if (ports.length === 0 && !findings.list.slice(before).length) c.notes.push(`${o.origin.what}: no ports`);
    if (findings.length > before) continue;

    const key = `${ns}/${name}`;
    const selector = isObject(spec.selector) ? labelsOf(spec.selector) : undefined;
    ports.forEach((raw, i) => {
      const p = obj(raw);
      const at: Path = ['spec', 'ports', i];
      for (const k of Object.keys(p)) if (!SERVICE_PORT.has(k)) findings.add(o.origin, [...at, k], 'unknown Service port field', 'this port is left out');
      const proto = lower(str(p.protocol) ?? 'TCP');
      if (proto !== 'tcp' && proto !== 'udp') {
        findings.add(o.origin, [...at, 'protocol'], `${p.protocol as string}: the load balancer handles TCP and UDP only`, 'this port is left out');
        return;
      }
      if (typeof p.port !== 'number' || p.port < 1 || p.port > 65535) {
        findings.add(o.origin, [...at, 'port'], 'expected a port number 1-65535', 'this port is left out');
        return;
      }
      const portName = str(p.name) ?? '';
      const backends = pickBackends(chooseBackends(c, o, key, portName, proto, p, selector, slices.get(key), endpointsObjs.get(key), at), c.nodeName !== undefined);
      if (backends === null) return;
      const portVips = [...vips];
      if ((type === 'NodePort' || type === 'LoadBalancer') && typeof p.nodePort === 'number') {
        if (c.nodeAddresses.length === 0)
          findings.add(o.origin, [...at, 'nodePort'], `NodePort ${p.nodePort} needs the node's addresses to match on (the tc program matches address:port exactly): give --node-address`, 'this node port is left out (the cluster IP is still load-balanced)');
        for (const ip of c.nodeAddresses) portVips.push({ ip, kind: `NodePort ${p.nodePort}`, nodePort: true });
      }
      for (const vip of portVips) {
        const vport = vip.nodePort ? (p.nodePort as number) : p.port;
        const svcName = `${ns}.${name}.${dashed(vip.ip)}.${vport}-${proto}`;
        const vkey = `${vip.ip}:${vport}/${proto}`;
        const other = seenVip.get(vkey);
        if (other) {
          findings.add(o.origin, at, `${vkey} is also ${other}'s`, 'this port is left out');
          continue;
        }
        seenVip.set(vkey, `Service ${ns}/${name}`);
        const svc: ServiceOut = { name: svcName, vip: vip.ip, port: vport, protocol: proto, backends, algorithm };
        if (affinity) svc.sessionAffinity = affinity;
        if (c.nodeName !== undefined) {
          // node-aware: external addresses SNAT remote backends; Local policies take this node's only
          if (vip.kind !== 'ClusterIP') svc.external = true;
          const tp = vip.kind === 'ClusterIP' ? spec.internalTrafficPolicy : spec.externalTrafficPolicy;
          if (tp === 'Local') svc[vip.kind === 'ClusterIP' ? 'internalTrafficPolicy' : 'externalTrafficPolicy'] = 'Local';
        }
        if (algorithm === 'maglev' && backends.length > LB_MAGLEV_M) {
          findings.add(o.origin, ['metadata', 'annotations', ALGORITHM_ANNOTATION], `${backends.length} backends do not fit a Maglev table of ${LB_MAGLEV_M}`, 'this port is left out');
          continue;
        }
        out.push(svc);
        c.origins.services.set(svcName, `${ns}/${name}:${portName || vport} (${vip.kind} ${vip.ip}:${vport}/${proto})`);
      }
    });
  }
  return out;
}

/** kube-proxy's choice: the ready endpoints; when none is ready, the serving ones that are terminating. */
function pickBackends(all: Backend[] | null, withNode: boolean): { ip: string; port: number; weight: number; nodeName?: string }[] | null {
  if (all === null) return null;
  const dedup = new Map<string, Backend>();
  for (const b of all) {
    const k = `${b.ip}:${b.port}`;
    const had = dedup.get(k);
    if (!had || (b.ready && !had.ready)) dedup.set(k, b);
  }
  const list = [...dedup.values()];
  const ready = list.filter((b) => b.ready);
  const chosen = ready.length > 0 ? ready : list.filter((b) => b.serving && b.terminating);
  return chosen.map((b) => ({ ip: b.ip, port: b.port, weight: 1, ...(withNode && b.nodeName !== undefined && { nodeName: b.nodeName }) })).sort((a, b) => (a.ip + a.port).localeCompare(b.ip + b.port));
}

/** The candidate backends of one service port: EndpointSlices, else Endpoints, else the Pods its selector picks. */
function chooseBackends(
  c: SvcCtx,
  svc: InputObject,
  key: string,
  portName: string,
  proto: string,
  port: Record<string, unknown>,
  selector: Record<string, string> | undefined,
  slices: InputObject[] | undefined,
  endpoints: InputObject | undefined,
  at: Path,
): Backend[] | null {
  const { findings } = c;
  if (slices && slices.length > 0) {
    const out: Backend[] = [];
    for (const s of slices) {
      const type = str(s.obj.addressType);
      if (type === 'IPv6') continue; // its VIPs are findings of the Service already
      if (type !== 'IPv4') {
        findings.add(s.origin, ['addressType'], `${type ?? 'no addressType'}: only IPv4 endpoint slices can be backends`, 'this EndpointSlice is left out');
        continue;
      }
      const sp = arr(s.obj.ports)
        .map(obj)
        .find((p) => (str(p.name) ?? '') === portName && lower(str(p.protocol) ?? 'TCP') === proto);
      if (!sp || typeof sp.port !== 'number') continue;
      arr(s.obj.endpoints).forEach((e) => {
        const cond = obj(obj(e).conditions);
        const ready = cond.ready !== false; // nil = ready
        const serving = cond.serving === undefined ? ready : cond.serving !== false;
        const terminating = cond.terminating === true;
        const nodeName = str(obj(e).nodeName);
        for (const ip of arr(obj(e).addresses)) if (typeof ip === 'string' && parseIpv4(ip) !== null) out.push({ ip, port: sp.port as number, ready, serving, terminating, ...(nodeName !== undefined && { nodeName }) });
      });
    }
    return out;
  }
  if (endpoints) {
    const out: Backend[] = [];
    for (const sub of arr(endpoints.obj.subsets).map(obj)) {
      const ep = arr(sub.ports)
        .map(obj)
        .find((p) => (str(p.name) ?? '') === portName && lower(str(p.protocol) ?? 'TCP') === proto);
      if (!ep || typeof ep.port !== 'number') continue;
      for (const a of arr(sub.addresses).map(obj)) {
        const ip = str(a.ip);
        const nodeName = str(a.nodeName);
        if (ip && parseIpv4(ip) !== null) out.push({ ip, port: ep.port, ready: true, serving: true, terminating: false, ...(nodeName !== undefined && { nodeName }) });
      }
    }
    return out;
  }
  if (!selector) return []; // a Service without selector and without endpoints: nothing to send to (refused)
  const ns = key.split('/')[0]!;
  const chosen = c.pods.filter((p) => p.ns === ns && Object.entries(selector).every(([k, v]) => p.labels[k] === v));
  const out: Backend[] = [];
  const target = port.targetPort ?? port.port;
  for (const p of chosen) {
    let num: number | undefined;
    if (typeof target === 'number') num = target;
    else if (typeof target === 'string' && /^\d+$/.test(target)) num = Number(target);
    else if (typeof target === 'string') num = p.ports.find((cp) => cp.name === target && cp.protocol === proto)?.port;
    if (num === undefined) continue; // the pod has no port of that name: not a backend of this port
    out.push({ ip: p.ip, port: num, ready: p.ready, serving: p.ready, terminating: false, ...(p.nodeName !== undefined && { nodeName: p.nodeName }) });
  }
  if (typeof target === 'string' && !/^\d+$/.test(target) && chosen.length > 0 && out.length === 0)
    findings.add(svc.origin, [...at, 'targetPort'], `no pod the selector picks has a container port named "${target}"`, 'this port is left out');
  return out;
}

// ------------------------------------------------------------------------------------------ policies

interface PolicyCtx {
  findings: Findings;
  groups: Group[];
  labelsOfNs: (ns: string) => Record<string, string>;
  origins: Origins;
  policies: PolicyOut[];
}

/** A peer before per-subject emission: label-set groups, or a CIDR. */
type Peer = { groups: Group[] } | { cidr: string; except: string[] };
/** A port before per-subject emission: a number (range), a name, or a whole protocol. */
type Port = { protocol: 'tcp' | 'udp' | 'icmp'; port?: number; endPort?: number; name?: string };
interface Rule {
  action: 'allow' | 'deny';
  /** undefined: any peer */
  peers?: Peer[];
  /** undefined: any port and protocol */
  ports?: Port[];
  /** "ingress[0]" in the manifest */
  label: string;
}
interface Parsed {
  /** undefined: the direction is not enforced by this policy */
  ingress?: Rule[];
  egress?: Rule[];
}

function cidrOf(s: unknown): { cidr: string } | { why: string } {
  if (typeof s !== 'string') return { why: 'expected a CIDR such as 10.0.0.0/8' };
  if (s.includes(':')) return { why: IPV6 };
  const c = parseCidr(s.includes('/') ? s : `${s}/32`);
  if (!c) return { why: `expected an IPv4 CIDR such as 10.0.0.0/8, got "${s}"` };
  return { cidr: formatCidr(c) };
}

/** Emit one datapath policy per label set the subject selects, with rules resolved for it. */
function emit(ctx: PolicyCtx, base: string, display: string, subject: Group[], parsed: Parsed): void {
  subject.forEach((g, n) => {
    // base.N: base names are unique and N has no dot, so no two policies can get the same name
    const name = `${base}.${n + 1}`;
    const p: PolicyOut = { name, selector: { [LABELSET_LABEL]: g.marker } };
    ctx.origins.policies.set(name, display);
    for (const dir of ['ingress', 'egress'] as const) {
      const rules = parsed[dir];
      if (!rules) continue;
      const out: RuleOut[] = [];
      for (const r of rules) {
        for (const ro of emitRule(ctx, r, dir, g)) {
          ctx.origins.rules.set(`${name}/${dir}/${out.length}`, { policy: display, rule: r.label });
          out.push(ro);
        }
      }
      p[dir] = out;
    }
    ctx.policies.push(p);
  });
}

function peersOut(peers: Peer[]): PeerOut[] {
  return peers.flatMap((p): PeerOut[] => ('groups' in p ? p.groups.map((g) => ({ selector: { [LABELSET_LABEL]: g.marker } })) : [{ cidr: p.cidr, ...(p.except.length > 0 && { except: p.except }) }]));
}

function portOut(p: Port): PortOut {
  return { protocol: p.protocol, ...(p.port !== undefined && { port: p.port }), ...(p.endPort !== undefined && { endPort: p.endPort }) };
}

/** Named ports resolved against pods: a name means each pod's container port of that name. */
function resolveNamed(names: Port[], pods: Pod[]): PortOut[] {
  const out = new Map<string, PortOut>();
  for (const n of names)
    for (const pod of pods)
      for (const cp of pod.ports) if (cp.name === n.name && cp.protocol === n.protocol) out.set(`${n.protocol}/${cp.port}`, { protocol: n.protocol, port: cp.port });
  return [...out.values()];
}

/** One manifest rule for one subject label set → datapath rules (more than one when named ports differ per peer). */
function emitRule(ctx: PolicyCtx, r: Rule, dir: 'ingress' | 'egress', subject: Group): RuleOut[] {
  const key = dir === 'ingress' ? 'from' : 'to';
  const peers = r.peers === undefined ? undefined : peersOut(r.peers);
  if (peers !== undefined && peers.length === 0) return []; // selects nobody: allows (or denies) nothing
  const mk = (p: PeerOut[] | undefined, ports: PortOut[] | undefined): RuleOut => ({ action: r.action, ...(ports && { ports }), ...(p && { [key]: p }) });
  if (r.ports === undefined) return [mk(peers, undefined)];
  const numeric = r.ports.filter((p) => p.name === undefined).map(portOut);
  const named = r.ports.filter((p) => p.name !== undefined);
  const out: RuleOut[] = [];
  if (numeric.length > 0) out.push(mk(peers, numeric));
  if (named.length === 0) return out;
  if (dir === 'ingress') {
    // the port names are the subject's: every pod of one label set is asked
    const ports = resolveNamed(named, subject.pods);
    if (ports.length > 0) out.push(mk(peers, ports));
    return out;
  }
  // egress: the names are the peers' ports; per peer label set (CIDR peers have no named ports)
  const peerGroups = r.peers === undefined ? ctx.groups : r.peers.flatMap((p) => ('groups' in p ? p.groups : []));
  for (const g of peerGroups) {
    const ports = resolveNamed(named, g.pods);
    if (ports.length > 0) out.push(mk([{ selector: { [LABELSET_LABEL]: g.marker } }], ports));
  }
  return out;
}

function checkKeys(ctx: PolicyCtx, o: InputObject, v: Record<string, unknown>, at: Path, allowed: string[], what: string, leftOut: string): void {
  for (const k of Object.keys(v)) if (!allowed.includes(k)) ctx.findings.add(o.origin, [...at, k], `unknown ${what} field (expected ${allowed.join(', ')})`, leftOut);
}

// ---- networking.k8s.io/v1 NetworkPolicy

function networkPolicy(o: InputObject, ns: string, name: string, ctx: PolicyCtx): void {
  const { findings } = ctx;
  const spec = obj(o.obj.spec);
  const WHOLE = 'this NetworkPolicy is left out: it is not enforced at all';
  const before = findings.length;
  for (const p of shapeProblems(NetworkPolicyShape, o.obj)) findings.add(o.origin, p.path, p.why, WHOLE);
  if (findings.length > before) return;
  checkKeys(ctx, o, o.obj, [], ['apiVersion', 'kind', 'metadata', 'spec', 'status'], 'NetworkPolicy', WHOLE);
  checkKeys(ctx, o, spec, ['spec'], ['podSelector', 'policyTypes', 'ingress', 'egress'], 'NetworkPolicy spec', WHOLE);
  const subjectSel = parseSelector(spec.podSelector ?? {}, false);
  if (isProblem(subjectSel)) findings.add(o.origin, ['spec', 'podSelector', ...subjectSel.path], subjectSel.why, WHOLE);
  let types: string[];
  // the API server's defaulting: policyTypes absent, null or empty is Ingress, plus Egress when egress has rules
  if (arr(spec.policyTypes).length > 0) {
    types = arr(spec.policyTypes).map((t) => String(t));
    types.forEach((t, i) => {
      if (t !== 'Ingress' && t !== 'Egress') findings.add(o.origin, ['spec', 'policyTypes', i], 'expected Ingress or Egress', WHOLE);
    });
  } else types = ['Ingress', ...(arr(spec.egress).length > 0 ? ['Egress'] : [])];
  if (findings.length > before || isProblem(subjectSel)) return;

  const parsed: Parsed = {};
  for (const [dir, type, peerKey] of [['ingress', 'Ingress', 'from'], ['egress', 'Egress', 'to']] as const) {
    if (!types.includes(type)) continue;
    const rules: Rule[] = [];
    arr(spec[dir]).forEach((raw, i) => {
      const at: Path = ['spec', dir, i];
      const rule = obj(raw);
      const mark = findings.length;
      checkKeys(ctx, o, rule, at, [peerKey, 'ports'], `NetworkPolicy ${dir} rule`, ALLOW_LEFT);
      let peers: Peer[] | undefined;
      if (rule[peerKey] !== undefined && arr(rule[peerKey]).length > 0) {
        peers = [];
        arr(rule[peerKey]).forEach((rawPeer, j) => {
          const pat: Path = [...at, peerKey, j];
          const peer = obj(rawPeer);
          checkKeys(ctx, o, peer, pat, ['podSelector', 'namespaceSelector', 'ipBlock'], 'NetworkPolicy peer', ALLOW_LEFT);
          if (peer.ipBlock !== undefined) {
            if (peer.podSelector !== undefined || peer.namespaceSelector !== undefined) findings.add(o.origin, pat, 'ipBlock cannot be combined with podSelector or namespaceSelector', ALLOW_LEFT);
            const ib = obj(peer.ipBlock);
            checkKeys(ctx, o, ib, [...pat, 'ipBlock'], ['cidr', 'except'], 'ipBlock', ALLOW_LEFT);
            const outer = cidrOf(ib.cidr);
            if ('why' in outer) {
              findings.add(o.origin, [...pat, 'ipBlock', 'cidr'], outer.why, ALLOW_LEFT);
              return;
            }
            const except: string[] = [];
            arr(ib.except).forEach((e, k) => {
              const inner = cidrOf(e);
              if ('why' in inner) findings.add(o.origin, [...pat, 'ipBlock', 'except', k], inner.why, ALLOW_LEFT);
              else except.push(inner.cidr);
            });
            peers!.push({ cidr: outer.cidr, except });
            return;
          }
          const podSel = parseSelector(peer.podSelector ?? {}, false);
          const nsSel = peer.namespaceSelector === undefined ? undefined : parseSelector(peer.namespaceSelector, false);
          if (isProblem(podSel)) return findings.add(o.origin, [...pat, 'podSelector', ...podSel.path], podSel.why, ALLOW_LEFT);
          if (nsSel && isProblem(nsSel)) return findings.add(o.origin, [...pat, 'namespaceSelector', ...nsSel.path], nsSel.why, ALLOW_LEFT);
          if (peer.podSelector === undefined && peer.namespaceSelector === undefined) return findings.add(o.origin, pat, 'a peer needs podSelector, namespaceSelector or ipBlock', ALLOW_LEFT);
          const g = ctx.groups.filter((grp) => {
            const pns = grp.pods[0]!.ns;
            const nsOk = nsSel ? matches(nsSel, ctx.labelsOfNs(pns)) : pns === ns;
            return nsOk && matches(podSel, grp.pods[0]!.labels);
          });
          peers!.push({ groups: g });
        });
      }
      const ports = k8sPorts(ctx, o, rule.ports, at);
      if (findings.length > mark) return;
      rules.push({ action: 'allow', ...(peers && { peers }), ...(ports && { ports }), label: `${dir}[${i}]` });
    });
    parsed[dir] = rules;
  }
  const subject = ctx.groups.filter((g) => g.pods[0]!.ns === ns && matches(subjectSel, g.pods[0]!.labels));
  emit(ctx, `np.${ns}.${name}`, `NetworkPolicy ${ns}/${name}`, subject, parsed);
}

function k8sPorts(ctx: PolicyCtx, o: InputObject, raw: unknown, at: Path): Port[] | undefined {
  if (raw === undefined || arr(raw).length === 0) return undefined;
  const out: Port[] = [];
  arr(raw).forEach((rp, j) => {
    const pat: Path = [...at, 'ports', j];
    const p = obj(rp);
    checkKeys(ctx, o, p, pat, ['protocol', 'port', 'endPort'], 'NetworkPolicy port', ALLOW_LEFT);
    const proto = lower(str(p.protocol) ?? 'TCP');
    if (proto !== 'tcp' && proto !== 'udp') return ctx.findings.add(o.origin, [...pat, 'protocol'], `${p.protocol as string}: the datapath matches TCP and UDP ports only (SCTP cannot be matched)`, ALLOW_LEFT);
    const port = numberOrName(p.port);
    if (port === null) return ctx.findings.add(o.origin, [...pat, 'port'], 'expected a port number 1-65535 or a port name', ALLOW_LEFT);
    if (p.endPort !== undefined) {
      if (typeof port !== 'number') return ctx.findings.add(o.origin, [...pat, 'endPort'], 'endPort needs a numeric port (the start of the range)', ALLOW_LEFT);
      if (typeof p.endPort !== 'number' || !Number.isInteger(p.endPort) || p.endPort < port || p.endPort > 65535) return ctx.findings.add(o.origin, [...pat, 'endPort'], `expected a port from ${port} to 65535`, ALLOW_LEFT);
    }
    out.push({ protocol: proto, ...(typeof port === 'number' && { port }), ...(typeof port === 'string' && { name: port }), ...(typeof p.endPort === 'number' && { endPort: p.endPort }) });
  });
  return out;
}

/** A port as given: number, numeric string, name; undefined when absent; null when bad. */
function numberOrName(v: unknown): number | string | undefined | null {
  if (v === undefined) return undefined;
  if (typeof v === 'number') return Number.isInteger(v) && v >= 1 && v <= 65535 ? v : null;
  if (typeof v === 'string' && /^\d+$/.test(v)) {
    const n = Number(v);
    if (n === 0) return undefined; // cilium: port "0" = every port
    return n <= 65535 ? n : null;
  }
  if (typeof v === 'string' && /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/.test(v) && v.length <= 15) return v;
  return null;
}

// ---- cilium.io/v2 CiliumNetworkPolicy (and CiliumClusterwideNetworkPolicy) at L3/L4

const CNP_RULE = ['endpointSelector', 'nodeSelector', 'ingress', 'ingressDeny', 'egress', 'egressDeny', 'description', 'labels', 'enableDefaultDeny', 'log'];
const CNP_IN = ['fromEndpoints', 'fromCIDR', 'fromCIDRSet', 'fromEntities', 'toPorts', 'icmps', 'fromRequires', 'fromGroups', 'fromNodes', 'authentication'];
const CNP_OUT = ['toEndpoints', 'toCIDR', 'toCIDRSet', 'toEntities', 'toPorts', 'icmps', 'toFQDNs', 'toServices', 'toGroups', 'toRequires', 'toNodes', 'authentication'];
const CNP_REFUSED: Record<string, string> = {
  toFQDNs: 'DNS names need a DNS proxy that learns their addresses; the datapath matches addresses: use toCIDR/toCIDRSet',
  toServices: 'toServices needs the service\'s endpoints tracked as they change; use toEndpoints with the backends\' labels, or toCIDR',
  toGroups: 'toGroups needs a cloud provider integration; use toCIDR',
  fromGroups: 'fromGroups needs a cloud provider integration; use fromCIDR',
  toRequires: 'toRequires (an extra condition on other rules) is not supported',
  fromRequires: 'fromRequires (an extra condition on other rules) is not supported',
  toNodes: 'node identities are not modelled; use toCIDR with the nodes\' addresses',
  fromNodes: 'node identities are not modelled; use fromCIDR with the nodes\' addresses',
  authentication: 'mutual authentication needs an auth agent',
};
const ICMP_TYPES: Record<string, number> = { EchoReply: 0, DestinationUnreachable: 3, Redirect: 5, EchoRequest: 8, RouterAdvertisement: 9, RouterSelection: 10, TimeExceeded: 11, ParameterProblem: 12, Timestamp: 13, TimestampReply: 14 };

function ciliumPolicy(o: InputObject, ns: string | null, name: string, ctx: PolicyCtx): void {
  const { findings } = ctx;
  const kind = ns === null ? 'CiliumClusterwideNetworkPolicy' : 'CiliumNetworkPolicy';
  const WHOLE = `this ${kind} is left out: it is not enforced at all`;
  const mark0 = findings.length;
  for (const p of shapeProblems(CiliumPolicyShape, o.obj)) findings.add(o.origin, p.path, p.why, WHOLE);
  if (findings.length > mark0) return;
  checkKeys(ctx, o, o.obj, [], ['apiVersion', 'kind', 'metadata', 'spec', 'specs', 'status'], kind, WHOLE);
  const specs: [Record<string, unknown>, Path][] = [];
  if (o.obj.spec !== undefined) specs.push([obj(o.obj.spec), ['spec']]);
  arr(o.obj.specs).forEach((s, i) => specs.push([obj(s), ['specs', i]]));
  if (specs.length === 0) findings.add(o.origin, [], 'no spec or specs', WHOLE);
  if (findings.length > mark0) return;
  specs.forEach(([spec, at], si) => {
    const before = findings.length;
    checkKeys(ctx, o, spec, at, CNP_RULE, `${kind} rule`, WHOLE);
    if (spec.nodeSelector !== undefined) findings.add(o.origin, [...at, 'nodeSelector'], 'host policies (nodeSelector) need a host endpoint; the datapath enforces on pod endpoints only', WHOLE);
    if (spec.endpointSelector === undefined && spec.nodeSelector === undefined) findings.add(o.origin, at, 'endpointSelector is required', WHOLE);
    const sel = parseSelector(spec.endpointSelector ?? {}, true);
    if (isProblem(sel)) findings.add(o.origin, [...at, 'endpointSelector', ...sel.path], sel.why, WHOLE);
    const dd = obj(spec.enableDefaultDeny);
    if (findings.length > before || isProblem(sel)) return;
    const parsed: Parsed = {};
    for (const dir of ['ingress', 'egress'] as const) {
      const allow = arr(spec[dir]);
      const deny = arr(spec[`${dir}Deny`]);
      const hasRules = allow.length > 0 || deny.length > 0;
      const enforce = dd[dir] === undefined ? hasRules : dd[dir] === true;
      if (hasRules && dd[dir] === false) {
        findings.add(o.origin, [...at, 'enableDefaultDeny', dir], 'rules without default deny are not supported: an endpoint a policy selects is default-deny in that direction here', WHOLE);
        return;
      }
      if (!enforce) continue;
      const rules: Rule[] = [];
      for (const [list, action, key] of [[allow, 'allow', dir], [deny, 'deny', `${dir}Deny`]] as const) {
        list.forEach((raw, i) => {
          const r = ciliumRule(ctx, o, obj(raw), [...at, key, i], dir, action, ns);
          if (r) rules.push({ ...r, label: `${specs.length > 1 ? `specs[${si}].` : ''}${key}[${i}]` });
        });
      }
      parsed[dir] = rules;
    }
    const subject = ctx.groups.filter((g) => (ns === null || g.pods[0]!.ns === ns) && matches(sel, g.pods[0]!.ciliumView));
    const base = `${ns === null ? 'ccnp' : `cnp.${ns}`}.${name}.s${si}`;
    emit(ctx, base, `${kind} ${ns === null ? '' : `${ns}/`}${name}`, subject, parsed);
  });
}

function ciliumRule(ctx: PolicyCtx, o: InputObject, rule: Record<string, unknown>, at: Path, dir: 'ingress' | 'egress', action: 'allow' | 'deny', ns: string | null): Omit<Rule, 'label'> | null {
  const { findings } = ctx;
  const LEFT = action === 'allow' ? ALLOW_LEFT : DENY_LEFT;
  const mark = findings.length;
  checkKeys(ctx, o, rule, at, dir === 'ingress' ? CNP_IN : CNP_OUT, `${dir}${action === 'deny' ? 'Deny' : ''} rule`, LEFT);
  for (const k of Object.keys(rule)) if (CNP_REFUSED[k] && rule[k] !== undefined) findings.add(o.origin, [...at, k], CNP_REFUSED[k], LEFT);
  const f = dir === 'ingress' ? 'from' : 'to';
  const l3Keys = [`${f}Endpoints`, `${f}CIDR`, `${f}CIDRSet`, `${f}Entities`];
  const hasL3 = l3Keys.some((k) => arr(rule[k]).length > 0);
  let peers: Peer[] | undefined = [];
  let any = false;
  arr(rule[`${f}Endpoints`]).forEach((raw, j) => {
    const sel = parseSelector(raw, true);
    if (isProblem(sel)) return findings.add(o.origin, [...at, `${f}Endpoints`, j, ...sel.path], sel.why, LEFT);
    // namespaced policies select peers in their own namespace unless the selector names one
    const scoped = ns !== null && !mentions(sel, NAMESPACE_LABEL);
    peers!.push({ groups: ctx.groups.filter((g) => (!scoped || g.pods[0]!.ns === ns) && matches(sel, g.pods[0]!.ciliumView)) });
  });
  arr(rule[`${f}CIDR`]).forEach((raw, j) => {
    const c = cidrOf(raw);
    if ('why' in c) return findings.add(o.origin, [...at, `${f}CIDR`, j], c.why, LEFT);
    peers!.push({ cidr: c.cidr, except: [] });
  });
  arr(rule[`${f}CIDRSet`]).forEach((raw, j) => {
    const set = obj(raw);
    const pat: Path = [...at, `${f}CIDRSet`, j];
    checkKeys(ctx, o, set, pat, ['cidr', 'except', 'cidrGroupRef'], 'CIDR set', LEFT);
    if (set.cidrGroupRef !== undefined) return findings.add(o.origin, [...pat, 'cidrGroupRef'], 'CiliumCIDRGroup references are not resolved; write the cidr', LEFT);
    const c = cidrOf(set.cidr);
    if ('why' in c) return findings.add(o.origin, [...pat, 'cidr'], c.why, LEFT);
    const except: string[] = [];
    arr(set.except).forEach((e, k) => {
      const ce = cidrOf(e);
      if ('why' in ce) findings.add(o.origin, [...pat, 'except', k], ce.why, LEFT);
      else except.push(ce.cidr);
    });
    peers!.push({ cidr: c.cidr, except });
  });
  arr(rule[`${f}Entities`]).forEach((raw, j) => {
    if (raw === 'all') any = true;
    else if (raw === 'world' || raw === 'world-ipv4') peers!.push({ cidr: '0.0.0.0/0', except: [] });
    else if (raw === 'cluster') peers!.push({ groups: ctx.groups });
    else findings.add(o.origin, [...at, `${f}Entities`, j], `entity ${String(raw)} is not modelled (supported: all, world, cluster)`, LEFT);
  });
  if (any) peers = undefined;
  // ports
  let ports: Port[] | undefined;
  const toPorts = arr(rule.toPorts);
  const icmps = arr(rule.icmps);
  if (toPorts.length > 0 || icmps.length > 0) {
    ports = [];
    toPorts.forEach((raw, j) => {
      const tp = obj(raw);
      const pat: Path = [...at, 'toPorts', j];
      checkKeys(ctx, o, tp, pat, ['ports', 'rules', 'serverNames', 'listener', 'terminatingTLS', 'originatingTLS'], 'toPorts', LEFT);
      const rules = obj(tp.rules);
      for (const k of Object.keys(rules)) {
        const why =
          k === 'http'
            ? 'L7 HTTP rules (method, path, headers) need an HTTP proxy; the datapath enforces L3/L4 only. Drop `rules:` to allow the whole port, or keep this policy on a cluster with an L7 proxy'
            : k === 'dns'
              ? 'DNS rules need a DNS proxy; the datapath enforces L3/L4 only (allow the port without rules)'
              : `L7 ${k} rules need a proxy; the datapath enforces L3/L4 only`;
        findings.add(o.origin, [...pat, 'rules', k], why, LEFT);
      }
      for (const k of ['serverNames', 'listener', 'terminatingTLS', 'originatingTLS']) if (tp[k] !== undefined) findings.add(o.origin, [...pat, k], `${k} needs a TLS-aware proxy; the datapath enforces L3/L4 only`, LEFT);
      const list = arr(tp.ports);
      if (list.length === 0) ports!.push({ protocol: 'tcp' }, { protocol: 'udp' });
      list.forEach((rp, k) => {
        const pp = obj(rp);
        const ppat: Path = [...pat, 'ports', k];
        checkKeys(ctx, o, pp, ppat, ['port', 'endPort', 'protocol'], 'port', LEFT);
        const proto = (str(pp.protocol) ?? 'ANY').toUpperCase();
        if (!['TCP', 'UDP', 'ANY'].includes(proto)) return findings.add(o.origin, [...ppat, 'protocol'], `${proto}: the datapath matches TCP, UDP (and ICMP through icmps) only`, LEFT);
        const port = numberOrName(pp.port);
        if (port === null) return findings.add(o.origin, [...ppat, 'port'], 'expected a port number 0-65535 or a port name', LEFT);
        if (pp.endPort !== undefined) {
          if (typeof port !== 'number') return findings.add(o.origin, [...ppat, 'endPort'], 'endPort needs a numeric port', LEFT);
          if (typeof pp.endPort !== 'number' || pp.endPort < port || pp.endPort > 65535) return findings.add(o.origin, [...ppat, 'endPort'], `expected a port from ${port} to 65535`, LEFT);
        }
        for (const protocol of proto === 'ANY' ? (['tcp', 'udp'] as const) : ([proto.toLowerCase() as 'tcp' | 'udp'] as const))
          ports!.push({ protocol, ...(typeof port === 'number' && { port }), ...(typeof port === 'string' && { name: port }), ...(typeof pp.endPort === 'number' && { endPort: pp.endPort }) });
      });
    });
    icmps.forEach((raw, j) => {
      arr(obj(raw).fields).forEach((fr, k) => {
        const fld = obj(fr);
        const pat: Path = [...at, 'icmps', j, 'fields', k];
        if (fld.family !== undefined && fld.family !== 'IPv4') return findings.add(o.origin, [...pat, 'family'], IPV6, LEFT);
        const t = typeof fld.type === 'number' ? fld.type : typeof fld.type === 'string' ? (ICMP_TYPES[fld.type] ?? (/^\d+$/.test(fld.type) ? Number(fld.type) : undefined)) : undefined;
        if (t === undefined || t < 0 || t > 255) return findings.add(o.origin, [...pat, 'type'], 'expected an ICMP type 0-255 or its name (EchoRequest, ...)', LEFT);
        ports!.push({ protocol: 'icmp', port: t });
      });
    });
  }
  if (findings.length > mark) return null;
  if (!hasL3 && ports === undefined) return { action, peers: [] }; // `{}`: selects the endpoint, allows nothing
  return { action, ...(hasL3 && peers !== undefined && { peers }), ...(ports && { ports }) };
}
