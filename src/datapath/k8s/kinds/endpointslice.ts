// EndpointSlice (discovery.k8s.io/v1) and Endpoints (v1) → the backends they offer a Service, per
// port (name and protocol). Conditions as kube-proxy reads them: ready nil = ready, serving nil =
// ready, terminating nil = false. Endpoints' addresses are ready; notReadyAddresses are not used.
// Families as kube-proxy keeps them (one proxier per family; its metaproxier hands an EndpointSlice
// to the proxier of its addressType): an IPv4 slice offers backends to a Service's IPv4 VIPs only,
// an IPv6 slice to its IPv6 VIPs only. An Endpoints object's addresses are split by family.
import type { Family } from '../../ip.js';
import type { InputObject } from '../manifests.js';
import { EndpointSliceShape, EndpointsShape, parseShape } from '../shapes.js';
import { lower, nameOf, nsOf, obj, parseAddress, shown, str, type Sink } from './common.js';

const SLICE_TOP = new Set(['apiVersion', 'kind', 'metadata', 'addressType', 'endpoints', 'ports']);
const SLICE_EP = new Set(['addresses', 'conditions', 'hostname', 'targetRef', 'nodeName', 'zone', 'hints', 'deprecatedTopology']);
/** The label naming the Service an EndpointSlice belongs to. */
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

export interface Backend {
  /** IPv4, or IPv6 in canonical text */
  ip: string;
  port: number;
  ready: boolean;
  serving: boolean;
  terminating: boolean;
  /** the node it runs on (EndpointSlice endpoints[].nodeName, Endpoints addresses[].nodeName, Pod spec.nodeName) */
  nodeName?: string;
}

/** An EndpointSlice's or Endpoints' contribution: the backends of its Service ("ns/name"), by "portName/protocol". */
export interface BackendSource {
  service: string;
  from: 'EndpointSlice' | 'Endpoints';
  /** an EndpointSlice's addressType (every backend is of it); Endpoints: undefined, each backend its own */
  family?: Family;
  byPort: Map<string, Backend[]>;
}

/** The key of a service port in a BackendSource. */
export const portKey = (name: string, protocol: string) => `${name}/${protocol}`;

/** The Service a slice belongs to ("ns/name"), or undefined (then it belongs to none). */
export function sliceService(o: InputObject): string | undefined {
  const svc = str(obj(obj(o.obj.metadata).labels)[SERVICE_NAME_LABEL]);
  return svc === undefined ? undefined : `${nsOf(o)}/${svc}`;
}

export function endpointSliceFacts(o: InputObject, sink: Sink): BackendSource | null {
  const mark = sink.findings.length;
  const LEFT = 'this EndpointSlice is left out';
  for (const k of Object.keys(o.obj)) if (!SLICE_TOP.has(k)) sink.findings.add(o.origin, [k], 'unknown EndpointSlice field', LEFT);
  const r = parseShape(EndpointSliceShape, o.obj);
  if ('problems' in r) for (const p of r.problems) sink.findings.add(o.origin, p.path, p.why, LEFT);
  const es = 'data' in r ? r.data : { endpoints: [], ports: [] };
  (es.endpoints ?? []).forEach((e, i) => {
    for (const k of Object.keys(e ?? {})) if (!SLICE_EP.has(k)) sink.findings.add(o.origin, ['endpoints', i, k], 'unknown EndpointSlice endpoint field', LEFT);
  });
  const service = sliceService(o);
  if (!service) {
    sink.notes.push(`${o.origin.what}: no ${SERVICE_NAME_LABEL} label: belongs to no service`);
    return null;
  }
  const byPort = new Map<string, Backend[]>();
  const source: BackendSource = { service, from: 'EndpointSlice', byPort };
  if ('problems' in r) return source;
  const type = es.addressType ?? undefined;
  if (type !== 'IPv4' && type !== 'IPv6') {
    sink.findings.add(o.origin, ['addressType'], `${type ?? 'no addressType'}: only IPv4 and IPv6 endpoint slices can be backends (kube-proxy ignores FQDN ones too)`, LEFT);
    return source;
  }
  const family: Family = type === 'IPv4' ? 4 : 6;
  source.family = family;
  if (sink.findings.length > mark) return source;
  const endpoints = (es.endpoints ?? []).map((e) => e ?? {});
  const addrs = endpoints.map((e, i) =>
    (e.addresses ?? []).flatMap((ip, k) => {
      const a = parseAddress(ip);
      if (a?.family === family) return [a.ip];
      sink.findings.add(o.origin, ['endpoints', i, 'addresses', k], `expected an ${type} address (addressType ${type}), got ${shown(ip)}`, 'this address is not a backend');
      return [];
    }),
  );
  for (const sp of es.ports ?? []) {
    if (typeof sp?.port !== 'number') continue; // nil: all ports (kube-proxy skips it)
    const port = sp.port;
    const list: Backend[] = [];
    endpoints.forEach((e, i) => {
      const cond = e.conditions ?? {};
      const ready = cond.ready !== false;
      const serving = cond.serving === undefined || cond.serving === null ? ready : cond.serving;
      const terminating = cond.terminating === true;
      const nodeName = e.nodeName ?? undefined;
      for (const ip of addrs[i]!) list.push({ ip, port, ready, serving, terminating, ...(nodeName !== undefined && { nodeName }) });
    });
    const k = portKey(sp.name ?? '', lower(sp.protocol ?? 'TCP'));
    if (!byPort.has(k)) byPort.set(k, list);
  }
  return source;
}

export function endpointsFacts(o: InputObject, sink: Sink): BackendSource | null {
  const r = parseShape(EndpointsShape, o.obj);
  if ('problems' in r) {
    for (const p of r.problems) sink.findings.add(o.origin, p.path, p.why, 'this Endpoints is left out');
    return null;
  }
  const byPort = new Map<string, Backend[]>();
  for (const sub of r.data.subsets ?? []) {
    const addrs = (sub?.addresses ?? []).flatMap((a) => {
      const ip = parseAddress(a?.ip)?.ip;
      return ip === undefined ? [] : [{ ip, nodeName: a?.nodeName ?? undefined }];
    });
    for (const p of sub?.ports ?? []) {
      const port = p?.port;
      if (typeof port !== 'number') continue;
      const k = portKey(p?.name ?? '', lower(p?.protocol ?? 'TCP'));
      const list = byPort.get(k) ?? [];
      for (const a of addrs) list.push({ ip: a.ip, port, ready: true, serving: true, terminating: false, ...(a.nodeName !== undefined && { nodeName: a.nodeName }) });
      byPort.set(k, list);
    }
  }
  return { service: `${nsOf(o)}/${nameOf(o)}`, from: 'Endpoints', byPort };
}
