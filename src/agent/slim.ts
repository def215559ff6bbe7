// What the agent keeps of each object: only the fields the datapath reads (datapath/k8s/kinds/), so 50k
// EndpointSlice endpoints and 5k Pods do not hold managedFields, whole pod specs and container
// statuses in memory. Objects arrive as plain JSON (list pages and the watch stream, both parsed
// JSON.parse); slim(…, false) also takes typed model objects (Dates, class instances) and copies them.

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : {});

/** The kinds the agent watches, with the apiVersion translate reads them as. */
export const KINDS = {
  Namespace: 'v1',
  Pod: 'v1',
  Service: 'v1',
  EndpointSlice: 'discovery.k8s.io/v1',
  NetworkPolicy: 'networking.k8s.io/v1',
  CiliumNetworkPolicy: 'cilium.io/v2',
  Node: 'v1',
} as const;
export type Kind = keyof typeof KINDS;

/** kube-proxy skips Services with this label (another proxy owns them; pkg/proxy/config). */
export const SERVICE_PROXY_NAME = 'service.kubernetes.io/service-proxy-name';

function pick(o: Obj, keys: readonly string[]): Obj {
  const out: Obj = {};
  for (const k of keys) if (o[k] !== undefined && o[k] !== null) out[k] = o[k];
  return out;
}

/** Plain JSON (typed models may hold Dates and class instances). */
const copy = (v: unknown): unknown => (v === undefined ? undefined : JSON.parse(JSON.stringify(v)));
const same = (v: unknown): unknown => v;

function meta(o: Obj, annotations: boolean): Obj {
  const md = obj(o.metadata);
  const out = pick(md, ['name', 'namespace', 'labels', 'resourceVersion']);
  if (annotations) {
    const keep = Object.entries(obj(md.annotations)).filter(([k]) => k.startsWith('prep-node.io/'));
    if (keep.length > 0) out.annotations = Object.fromEntries(keep);
  }
  return out;
}

/**
 * The object reduced to what the datapath needs, as plain JSON, with its apiVersion and kind set.
 * `json`: `raw` is already plain JSON (a list page or a watch event): its parts are taken
 * as they are, not copied through JSON (the raw object is dropped after this, its parts kept).
 */
export function slim(kind: Kind, raw: unknown, json = false): Obj {
  const plain = json ? same : copy;
  const o = obj(raw);
  const spec = obj(o.spec);
  const status = obj(o.status);
  const base: Obj = { apiVersion: KINDS[kind], kind };
  switch (kind) {
    case 'Namespace':
      return { ...base, metadata: meta(o, false) };
    case 'Node':
      return { ...base, metadata: meta(o, false), status: { addresses: plain(status.addresses) ?? [] } };
    case 'Pod':
      return {
        ...base,
        metadata: meta(o, false),
        spec: plain({
          ...pick(spec, ['nodeName', 'hostNetwork', 'serviceAccountName', 'serviceAccount']),
          // named container ports: a Service's targetPort by name, when its pods are read before its slices
          containers: (Array.isArray(spec.containers) ? spec.containers : []).map((c: unknown) => ({ ports: (Array.isArray(obj(c).ports) ? (obj(c).ports as unknown[]) : []).map((p) => pick(obj(p), ['name', 'containerPort', 'protocol'])) })),
        }),
        status: plain({ ...pick(status, ['phase', 'podIP', 'podIPs']), conditions: (Array.isArray(status.conditions) ? status.conditions : []).map((c: unknown) => pick(obj(c), ['type', 'status'])) }),
      };
    case 'Service':
      return { ...base, metadata: meta(o, true), spec: plain(spec), status: plain(pick(status, ['loadBalancer'])) };
    case 'EndpointSlice':
      return {
        ...base,
        metadata: meta(o, false),
        addressType: o.addressType,
        ports: plain(o.ports) ?? null,
        endpoints: (Array.isArray(o.endpoints) ? o.endpoints : []).map((e: unknown) => plain(pick(obj(e), ['addresses', 'conditions', 'nodeName']))),
      };
    case 'NetworkPolicy':
      return { ...base, metadata: meta(o, false), spec: plain(spec) };
    case 'CiliumNetworkPolicy':
      return { ...base, metadata: meta(o, false), ...pick({ spec: plain(o.spec), specs: plain(o.specs) }, ['spec', 'specs']) };
  }
}

/** "namespace/name" (or "name" for cluster-scoped kinds) of an object. */
export function objectKey(o: Obj): string {
  const md = obj(o.metadata);
  return typeof md.namespace === 'string' && md.namespace !== '' ? `${md.namespace}/${String(md.name)}` : String(md.name);
}
