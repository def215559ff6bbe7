// Service (v1) → its VIPs (clusterIPs, externalIPs, load balancer ingress IPs, node address:nodePort)
// and ports; joined with its backends (EndpointSlices, else Endpoints, else the Pods its selector
// picks) it becomes one datapath service per VIP and port. Backends are kube-proxy's choice: the
// ready ones, or the serving-and-terminating ones when none is ready.
//
// Dual-stack as kube-proxy does it, one family at a time (it runs one proxier per family): the
// cluster IP of a family is spec.clusterIPs[i] for spec.ipFamilies[i] (without ipFamilies, the one
// clusterIP in its own family), externalIPs and load balancer ingress IPs go to their address's
// family, and a VIP of a family takes backends of that family only: IPv4 VIPs from IPv4
// EndpointSlices, IPv6 VIPs from IPv6 ones (an Endpoints object's and a pod's addresses split the
// same way). A dual-stack Service gives a datapath service per VIP of each family; NodePorts open on
// the node's addresses of the Service's families.
import { LB_MAGLEV_M } from '../../consts.js';
import type { Family } from '../../ip.js';
import { serviceKey } from '../../schema.js';
import { formatPath } from '../findings.js';
import type { InputObject, Origin, Path } from '../manifests.js';
import { parseShape, ServiceShape } from '../shapes.js';
import { familyOf, lower, parseAddress, parsePort, parsePortNumber, shown, type Sink } from './common.js';
import { portKey, type Backend, type BackendSource } from './endpointslice.js';
import type { PodFacts } from './pod.js';

/** Service annotation choosing the backend selection: random (default) or maglev. */
export const ALGORITHM_ANNOTATION = 'prep-node.io/lb-algorithm';

const SERVICE_SPEC = new Set([
  'type', 'clusterIP', 'clusterIPs', 'ports', 'selector', 'sessionAffinity', 'sessionAffinityConfig', 'externalIPs', 'externalTrafficPolicy',
  'internalTrafficPolicy', 'ipFamilies', 'ipFamilyPolicy', 'externalName', 'publishNotReadyAddresses', 'allocateLoadBalancerNodePorts',
  'loadBalancerClass', 'healthCheckNodePort', 'loadBalancerIP', 'loadBalancerSourceRanges', 'trafficDistribution',
]);
const SERVICE_PORT = new Set(['name', 'protocol', 'port', 'targetPort', 'nodePort', 'appProtocol']);

export type ServiceOut = {
  name: string;
  vip: string;
  port: number;
  protocol: 'tcp' | 'udp' | 'sctp';
  backends: { ip: string; port: number; weight: number; nodeName?: string }[];
  algorithm: 'random' | 'maglev';
  sessionAffinity?: { timeoutSeconds: number };
  external?: boolean;
  externalTrafficPolicy?: 'Cluster' | 'Local';
  internalTrafficPolicy?: 'Cluster' | 'Local';
};

interface ServicePort {
  at: Path;
  name: string;
  protocol: 'tcp' | 'udp' | 'sctp';
  port: number;
  nodePort?: number;
  targetPort: unknown;
}

/** A Service's contribution before its backends are known. */
export interface ServiceFacts {
  ns: string;
  name: string;
  /** "ns/name" */
  key: string;
  origin: Origin;
  type: string;
  /** its VIPs, each in its family (IPv6 in canonical text), and where it is written */
  vips: { ip: string; kind: string; family: Family; at: Path }[];
  /** the families of its cluster IPs (NodePorts open on the node's addresses of these) */
  families: Family[];
  ports: ServicePort[];
  /** the selector (equality only, as the API defines it), undefined when it is absent or empty */
  selector?: Record<string, string>;
  affinity?: { timeoutSeconds: number };
  algorithm: 'random' | 'maglev';
  /** spec.externalTrafficPolicy Local (and the Service has external addresses: NodePort, LoadBalancer, externalIPs) */
  externalLocal: boolean;
  /** spec.internalTrafficPolicy Local */
  internalLocal: boolean;
}

export function serviceFacts(o: InputObject, sink: Sink): ServiceFacts | null {
  const { findings } = sink;
  const before = findings.length;
  const LEFT = 'this Service is left out: its VIPs are not load-balanced';
  const r = parseShape(ServiceShape, o.obj);
  if ('problems' in r) {
    for (const p of r.problems) findings.add(o.origin, p.path, p.why, LEFT);
    return null;
  }
  const md = r.data.metadata ?? {};
  const spec = r.data.spec ?? {};
  for (const k of Object.keys(spec)) if (!SERVICE_SPEC.has(k)) findings.add(o.origin, ['spec', k], 'unknown Service field', LEFT);
  const type = spec.type ?? 'ClusterIP';
  if (type === 'ExternalName') {
    sink.notes.push(`${o.origin.what}: ExternalName (a DNS alias): nothing to load-balance`);
    return null;
  }
  if (!['ClusterIP', 'NodePort', 'LoadBalancer'].includes(type)) findings.add(o.origin, ['spec', 'type'], `unknown Service type ${type}`, LEFT);
  if ((spec.loadBalancerSourceRanges ?? []).length > 0)
    findings.add(o.origin, ['spec', 'loadBalancerSourceRanges'], 'source ranges are a firewall on the load balancer; the datapath does not filter service traffic by source', LEFT);
  // Local traffic policies need the node's name: serviceOutputs keeps them, or leaves the Service out without it
  const internalLocal = spec.internalTrafficPolicy === 'Local';
  const externalLocal = spec.externalTrafficPolicy === 'Local' && (type !== 'ClusterIP' || (spec.externalIPs ?? []).length > 0);
  const clusterIPs = spec.clusterIPs ?? [];
  if (spec.clusterIP === 'None' || clusterIPs.includes('None')) {
    sink.notes.push(`${o.origin.what}: headless (clusterIP: None): no VIP to load-balance`);
    return null;
  }
  const vips: ServiceFacts['vips'] = [];
  const families: Family[] = [];
  // clusterIPs[i] is the cluster IP of ipFamilies[i]; clusterIPs absent: [clusterIP] (an older API server)
  const ipList = clusterIPs.length > 0 ? clusterIPs : spec.clusterIP ? [spec.clusterIP] : [];
  const listAt = (i: number): Path => (clusterIPs.length > 0 ? ['spec', 'clusterIPs', i] : ['spec', 'clusterIP']);
  const ipFamilies = spec.ipFamilies ?? [];
  ipFamilies.forEach((f, i) => {
    if (f !== 'IPv4' && f !== 'IPv6') findings.add(o.origin, ['spec', 'ipFamilies', i], 'expected IPv4 or IPv6', LEFT);
  });
  ipList.forEach((raw, i) => {
    const a = parseAddress(raw);
    if (!a) return findings.add(o.origin, listAt(i), `${shown(raw)} is not an IPv4 or IPv6 address`, LEFT);
    const want = ipFamilies[i];
    if (want !== undefined && want !== `IPv${a.family}`) return findings.add(o.origin, listAt(i), `${a.ip} is an IPv${a.family} address but spec.ipFamilies[${i}] is ${want}`, LEFT);
    if (families.includes(a.family)) return findings.add(o.origin, listAt(i), `a second IPv${a.family} cluster IP (one per family)`, LEFT);
    families.push(a.family);
    vips.push({ ip: a.ip, kind: 'ClusterIP', family: a.family, at: listAt(i) });
  });
  if (spec.clusterIP && clusterIPs.length > 0 && parseAddress(spec.clusterIP)?.ip !== vips[0]?.ip && findings.length === before)
    findings.add(o.origin, ['spec', 'clusterIP'], `expected the first of spec.clusterIPs (${vips[0]?.ip ?? 'none'})`, LEFT);
  if (ipList.length === 0)
    findings.add(o.origin, ['spec', 'clusterIP'], 'no clusterIP: the API server assigns it; take the Service from the cluster (kubectl get svc -o yaml) or set spec.clusterIP', LEFT);
  (spec.externalIPs ?? []).forEach((ip, i) => {
    const a = parseAddress(ip);
    if (a) vips.push({ ip: a.ip, kind: 'externalIP', family: a.family, at: ['spec', 'externalIPs', i] });
    else findings.add(o.origin, ['spec', 'externalIPs', i], 'expected an IPv4 or IPv6 address', 'this external IP is left out');
  });
  if (type === 'LoadBalancer') {
    (r.data.status?.loadBalancer?.ingress ?? []).forEach((ing, i) => {
      const ip = ing?.ip;
      if (!ip) return; // a hostname-only ingress (a cloud's DNS name): no address to match
      const a = parseAddress(ip);
      if (a) vips.push({ ip: a.ip, kind: 'LoadBalancer', family: a.family, at: ['status', 'loadBalancer', 'ingress', i, 'ip'] });
      else findings.add(o.origin, ['status', 'loadBalancer', 'ingress', i, 'ip'], 'expected an IPv4 or IPv6 address', 'this load balancer address is left out');
    });
  }
  const affinity = spec.sessionAffinity === 'ClientIP' ? { timeoutSeconds: spec.sessionAffinityConfig?.clientIP?.timeoutSeconds ?? 10800 } : undefined;
  if (affinity && (!Number.isInteger(affinity.timeoutSeconds) || affinity.timeoutSeconds < 1 || affinity.timeoutSeconds > 86400))
    findings.add(o.origin, ['spec', 'sessionAffinityConfig', 'clientIP', 'timeoutSeconds'], 'expected 1-86400 seconds', LEFT);
  if (spec.sessionAffinity !== undefined && spec.sessionAffinity !== null && spec.sessionAffinity !== 'None' && spec.sessionAffinity !== 'ClientIP') findings.add(o.origin, ['spec', 'sessionAffinity'], 'expected None or ClientIP', LEFT);
  const annotation = md.annotations?.[ALGORITHM_ANNOTATION];
  if (annotation !== undefined && annotation !== 'random' && annotation !== 'maglev') findings.add(o.origin, ['metadata', 'annotations', ALGORITHM_ANNOTATION], 'expected random or maglev', LEFT);
  const rawPorts = spec.ports ?? [];
  if (rawPorts.length === 0 && findings.length === before) sink.notes.push(`${o.origin.what}: no ports`);
  if (findings.length > before) return null;

  const ports: ServicePort[] = [];
  rawPorts.forEach((raw, i) => {
    const p = raw ?? {};
    const at: Path = ['spec', 'ports', i];
    for (const k of Object.keys(p)) if (!SERVICE_PORT.has(k)) findings.add(o.origin, [...at, k], 'unknown Service port field', 'this port is left out');
    const protocol = lower(p.protocol ?? 'TCP');
    if (protocol !== 'tcp' && protocol !== 'udp' && protocol !== 'sctp') return findings.add(o.origin, [...at, 'protocol'], `${p.protocol}: the load balancer handles TCP, UDP and SCTP only`, 'this port is left out');
    const port = parsePortNumber(p.port);
    if (port === null) return findings.add(o.origin, [...at, 'port'], 'expected a port number 1-65535', 'this port is left out');
    const nodePort = (type === 'NodePort' || type === 'LoadBalancer') && typeof p.nodePort === 'number' ? p.nodePort : undefined;
    ports.push({ at, name: p.name ?? '', protocol, port, ...(nodePort !== undefined && { nodePort }), targetPort: p.targetPort ?? p.port });
  });
  const ns = md.namespace ?? 'default';
  const name = md.name ?? '';
  const selector = spec.selector ?? {};
  return {
    ns,
    name,
    key: `${ns}/${name}`,
    origin: o.origin,
    type,
    vips,
    families,
    ports,
    // the API: "if empty or not present, the service is assumed to have an external process managing its endpoints"
    ...(Object.keys(selector).length > 0 && { selector }),
    ...(affinity && { affinity }),
    algorithm: annotation === 'maglev' ? 'maglev' : 'random',
    externalLocal,
    internalLocal,
  };
}

/** Who holds a VIP:port/protocol already (another Service), or undefined after claiming it for `owner`. */
export type ClaimVip = (vkey: string, owner: string) => string | undefined;

export interface ServiceJoin {
  /** the Service's EndpointSlices (empty: none) */
  slices: readonly BackendSource[];
  endpoints?: BackendSource | undefined;
  /** the pods of the Service's namespace (read only when it has neither slices nor Endpoints) */
  pods: () => readonly PodFacts[];
  /** the node's addresses, IPv4 and IPv6: each family's node ports listen on that family's */
  nodeAddresses: readonly string[];
  /** this node's name: backends elsewhere are remote, Local traffic policies are kept; absent: every backend is local */
  nodeName?: string | undefined;
  claim: ClaimVip;
  /** service name → "ns/svc:port (kind vip:port/proto)" */
  origins: Map<string, string>;
}

const dashed = (ip: string) => ip.replace(/[.:]/g, '-');

/** The datapath services of one Service: its contribution joined with its backends, one family at a time. */
export function serviceOutputs(f: ServiceFacts, j: ServiceJoin, sink: Sink): ServiceOut[] {
  const out: ServiceOut[] = [];
  if (j.nodeName === undefined && (f.internalLocal || f.externalLocal)) {
    const LEFT = 'this Service is left out: its VIPs are not load-balanced';
    if (f.internalLocal) sink.findings.add(f.origin, ['spec', 'internalTrafficPolicy'], 'Local needs to know which backends run on this node (give the node\'s name: --node-name); the datapath balances over all of them', LEFT);
    if (f.externalLocal) sink.findings.add(f.origin, ['spec', 'externalTrafficPolicy'], 'Local needs node-local backends (give the node\'s name: --node-name); the datapath balances over all backends', LEFT);
    return out;
  }
  for (const p of f.ports) {
    const vips: { ip: string; kind: string; family: Family; nodePort?: boolean }[] = [...f.vips];
    if (p.nodePort !== undefined) {
      // per family, as kube-proxy's metaproxier: the node's addresses of each family the Service has
      for (const family of f.families) {
        const addrs = j.nodeAddresses.filter((a) => familyOf(a) === family);
        if (addrs.length === 0)
          sink.findings.add(f.origin, [...p.at, 'nodePort'], `NodePort ${p.nodePort} on IPv${family} needs the node's IPv${family} addresses to match on (the tc program matches address:port exactly): give --node-address${j.nodeAddresses.length > 0 ? ` with an IPv${family} address` : ''}`, `the IPv${family} node port is left out (the cluster IP${f.families.length > 1 ? 's are' : ' is'} still load-balanced)`);
        for (const ip of addrs) vips.push({ ip, kind: `NodePort ${p.nodePort}`, family, nodePort: true });
      }
    }
    const byFamily = new Map<Family, ServiceOut['backends'] | null>();
    const backendsOf = (family: Family) => {
      if (!byFamily.has(family)) byFamily.set(family, pickBackends(candidates(f, p, j, sink, family), j.nodeName !== undefined));
      return byFamily.get(family)!;
    };
    for (const vip of vips) {
      const backends = backendsOf(vip.family);
      if (backends === null) continue;
      const vport = vip.nodePort ? p.nodePort! : p.port;
      if (p.protocol === 'sctp' && backends.some((b) => b.port !== vport)) {
        sink.findings.add(f.origin, p.at, `SCTP ${vip.kind} ${vip.ip}:${vport}: the datapath translates SCTP addresses only (SCTP's CRC32c covers the ports), so targetPort must equal ${vip.nodePort ? 'the node port' : 'port'}`, 'this port is left out');
        continue;
      }
      const svcName = `${f.ns}.${f.name}.${dashed(vip.ip)}.${vport}-${p.protocol}`;
      const vkey = serviceKey({ vip: vip.ip, port: vport, protocol: p.protocol });
      if (f.algorithm === 'maglev' && backends.length > LB_MAGLEV_M) {
        sink.findings.add(f.origin, ['metadata', 'annotations', ALGORITHM_ANNOTATION], `${backends.length} backends do not fit a Maglev table of ${LB_MAGLEV_M}`, 'this port is left out');
        continue;
      }
      // SNAT is per family: an external address's remote backends (Cluster policy) are SNATed to the
      // node's address of the VIP's family; without one that VIP is left out, not the whole Service
      if (j.nodeName !== undefined && vip.kind !== 'ClusterIP' && !f.externalLocal && j.nodeAddresses.length > 0 &&
        !j.nodeAddresses.some((a) => familyOf(a) === vip.family) && backends.some((b) => b.nodeName !== undefined && b.nodeName !== j.nodeName)) {
        sink.findings.add(f.origin, p.at, `${vip.kind} ${vip.ip}:${vport}: its backends on other nodes are SNATed to this node's IPv${vip.family} address, and the node has none: give --node-address with an IPv${vip.family} address (the agent: the Node's IPv${vip.family} InternalIP)`, 'this external address is left out');
        continue;
      }
      const other = j.claim(vkey, `Service ${f.ns}/${f.name}`);
      if (other) {
        sink.findings.add(f.origin, p.at, `${vkey} is also ${other}'s`, 'this port is left out');
        continue;
      }
      const svc: ServiceOut = { name: svcName, vip: vip.ip, port: vport, protocol: p.protocol, backends, algorithm: f.algorithm, ...(f.affinity && { sessionAffinity: f.affinity }) };
      if (j.nodeName !== undefined) {
        // node-aware: external addresses SNAT remote backends; Local policies take this node's only
        if (vip.kind !== 'ClusterIP') svc.external = true;
        if (vip.kind === 'ClusterIP' ? f.internalLocal : f.externalLocal) svc[vip.kind === 'ClusterIP' ? 'internalTrafficPolicy' : 'externalTrafficPolicy'] = 'Local';
      }
      out.push(svc);
      j.origins.set(svcName, `${f.ns}/${f.name}:${p.name || vport} (${vip.kind} ${vip.ip}:${vport}/${p.protocol})`);
    }
  }
  return out;
}

/** kube-proxy's choice: the ready endpoints; when none is ready, the serving ones that are terminating. */
function pickBackends(all: Backend[] | null, withNode: boolean): ServiceOut['backends'] | null {
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

/** The candidate backends of one service port in one family: EndpointSlices of that addressType, else Endpoints' addresses of it, else the Pods its selector picks (their address of it). */
function candidates(f: ServiceFacts, p: ServicePort, j: ServiceJoin, sink: Sink, family: Family): Backend[] | null {
  const k = portKey(p.name, p.protocol);
  if (j.slices.length > 0) return j.slices.flatMap((s) => (s.family === family ? (s.byPort.get(k) ?? []) : []));
  if (j.endpoints) return (j.endpoints.byPort.get(k) ?? []).filter((b) => familyOf(b.ip) === family);
  if (!f.selector) return [];
  const selector = f.selector;
  const chosen = j.pods().filter((pod) => pod.ns === f.ns && Object.entries(selector).every(([key, v]) => pod.labels[key] === v));
  const out: Backend[] = [];
  const target = p.targetPort;
  const named = typeof target === 'string' && typeof parsePort(target) === 'string';
  let anyNamed = false;
  for (const pod of chosen) {
    const num = named ? pod.ports.find((cp) => cp.name === target && cp.protocol === p.protocol)?.port : parsePort(target);
    if (typeof num !== 'number') continue; // the pod has no port of that name: not a backend of this port
    anyNamed = true;
    const ip = [pod.ip, pod.ip6].find((a) => a !== undefined && familyOf(a) === family);
    if (ip !== undefined) out.push({ ip, port: num, ready: pod.ready, serving: pod.ready, terminating: false, ...(pod.nodeName !== undefined && { nodeName: pod.nodeName }) });
  }
  if (named && chosen.length > 0 && !anyNamed) {
    // the same for every family: said once
    if (!sink.findings.list.some((x) => x.object === f.origin.what && x.path === formatPath([...p.at, 'targetPort'])))
      sink.findings.add(f.origin, [...p.at, 'targetPort'], `no pod the selector picks has a container port named "${String(target)}"`, 'this port is left out');
    return null;
  }
  return out;
}
