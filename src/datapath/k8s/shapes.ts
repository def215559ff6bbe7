// The shapes of the kinds' fields, as the API server's schema types them: a list is a list,
// a map a map, a string a string. The old untyped walker (translate.ts) read anything that was not a
// list as no list at all, so `from:` or `ports:` written as a map became an allow-all rule and a
// scalar `fromCIDR` lost a deny (issue 17 item 2). A policy whose fields are wrongly shaped is
// refused here, with the field path, before any rule of it is read. Optional fields read as the API
// server does: null is the same as absent (nullish). Semantics (operators, CIDRs, ports, unknown
// keys) stay with the kind modules (kinds/); this file checks shapes only. The other kinds' modules
// (Service, EndpointSlice, Endpoints, Pod, Namespace) read their objects through the typed result.
import { z } from 'zod';
import type { Path } from './manifests.js';

const list = <T extends z.ZodType>(t: T) => z.array(t).nullish();
const portValue = z.union([z.number(), z.string()]).nullish();

const LabelSelector = z.looseObject({
  matchLabels: z.record(z.string(), z.unknown()).nullish(),
  matchExpressions: list(z.looseObject({ key: z.unknown(), operator: z.unknown(), values: list(z.unknown()) })),
});

const NpPeer = z.looseObject({
  podSelector: LabelSelector.nullish(),
  namespaceSelector: LabelSelector.nullish(),
  ipBlock: z.looseObject({ cidr: z.unknown(), except: list(z.unknown()) }).nullish(),
});
const NpPort = z.looseObject({ protocol: z.string().nullish(), port: portValue, endPort: z.number().nullish() });

/** NetworkPolicy (networking.k8s.io/v1): the fields' shapes. */
export const NetworkPolicyShape = z.looseObject({
  spec: z
    .looseObject({
      podSelector: LabelSelector.nullish(),
      policyTypes: list(z.string()),
      ingress: list(z.looseObject({ from: list(NpPeer), ports: list(NpPort) }).nullable()),
      egress: list(z.looseObject({ to: list(NpPeer), ports: list(NpPort) }).nullable()),
    })
    .nullish(),
});

const CnpPortRule = z.looseObject({
  ports: list(z.looseObject({ port: portValue, endPort: z.number().nullish(), protocol: z.string().nullish() })),
  rules: z.looseObject({}).nullish(),
});
const CidrSet = z.looseObject({ cidr: z.string().nullish(), except: list(z.string()) });
const cnpDirection = (f: 'from' | 'to') =>
  z
    .looseObject({
      [`${f}Endpoints`]: list(LabelSelector),
      [`${f}CIDR`]: list(z.string()),
      [`${f}CIDRSet`]: list(CidrSet),
      [`${f}Entities`]: list(z.string()),
      [`${f}Requires`]: list(LabelSelector),
      toPorts: list(CnpPortRule),
      icmps: list(z.looseObject({ fields: list(z.looseObject({})) })),
    })
    .nullable();
const CnpRule = z.looseObject({
  endpointSelector: LabelSelector.nullish(),
  nodeSelector: LabelSelector.nullish(),
  ingress: list(cnpDirection('from')),
  ingressDeny: list(cnpDirection('from')),
  egress: list(cnpDirection('to')),
  egressDeny: list(cnpDirection('to')),
});

/** CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy (cilium.io/v2): the fields' shapes. */
export const CiliumPolicyShape = z.looseObject({ spec: CnpRule.nullish(), specs: list(CnpRule) });

// ---- Service, EndpointSlice, Endpoints, Pod, Namespace: the fields the kind modules read, typed ----
// Only what the modules read is typed, every field optional and nullish (the agent slims objects to
// these fields: kinds/../agent/slim.ts), unknown fields pass (looseObject: what the API server adds).
// A list element may be null (Go decodes it to the zero value): the modules read it as {}.

const str = z.string().nullish();
const labelMap = z.record(z.string(), z.string()).nullish();
const element = <T extends z.ZodType>(t: T) => list(t.nullable());
const Metadata = z.looseObject({ name: str, namespace: str, labels: labelMap, annotations: z.record(z.string(), z.string()).nullish() }).nullish();

/** Service (v1). */
export const ServiceShape = z.looseObject({
  metadata: Metadata,
  spec: z
    .looseObject({
      type: str,
      clusterIP: str,
      clusterIPs: list(z.string()),
      ipFamilies: list(z.string()),
      ports: element(z.looseObject({ name: str, protocol: str, port: z.number().nullish(), targetPort: portValue, nodePort: z.number().nullish() })),
      selector: labelMap,
      sessionAffinity: str,
      sessionAffinityConfig: z.looseObject({ clientIP: z.looseObject({ timeoutSeconds: z.number().nullish() }).nullish() }).nullish(),
      externalIPs: list(z.string()),
      externalTrafficPolicy: str,
      internalTrafficPolicy: str,
      loadBalancerSourceRanges: list(z.string()),
    })
    .nullish(),
  status: z.looseObject({ loadBalancer: z.looseObject({ ingress: element(z.looseObject({ ip: str, hostname: str })) }).nullish() }).nullish(),
});

/** EndpointSlice (discovery.k8s.io/v1). */
export const EndpointSliceShape = z.looseObject({
  metadata: Metadata,
  addressType: str,
  ports: element(z.looseObject({ name: str, protocol: str, port: z.number().nullish() })),
  endpoints: element(
    z.looseObject({
      addresses: list(z.string()),
      conditions: z.looseObject({ ready: z.boolean().nullish(), serving: z.boolean().nullish(), terminating: z.boolean().nullish() }).nullish(),
      nodeName: str,
    }),
  ),
});

/** Endpoints (v1). */
export const EndpointsShape = z.looseObject({
  metadata: Metadata,
  subsets: element(
    z.looseObject({
      addresses: element(z.looseObject({ ip: str, nodeName: str })),
      ports: element(z.looseObject({ name: str, protocol: str, port: z.number().nullish() })),
    }),
  ),
});

/** Pod (v1). */
export const PodShape = z.looseObject({
  metadata: Metadata,
  spec: z
    .looseObject({
      hostNetwork: z.boolean().nullish(),
      nodeName: str,
      serviceAccountName: str,
      serviceAccount: str,
      containers: element(z.looseObject({ ports: element(z.looseObject({ name: str, containerPort: z.number().nullish(), protocol: str })) })),
    })
    .nullish(),
  status: z
    .looseObject({
      phase: str,
      podIP: str,
      podIPs: element(z.looseObject({ ip: str })),
      conditions: element(z.looseObject({ type: str, status: str })),
    })
    .nullish(),
});

/** Namespace (v1). */
export const NamespaceShape = z.looseObject({ metadata: Metadata });

export type ServiceObj = z.output<typeof ServiceShape>;
export type EndpointSliceObj = z.output<typeof EndpointSliceShape>;
export type EndpointsObj = z.output<typeof EndpointsShape>;
export type PodObj = z.output<typeof PodShape>;
export type NamespaceObj = z.output<typeof NamespaceShape>;

/** What is wrongly shaped in an object: each field's path and the shape expected there. */
export function shapeProblems(schema: z.ZodType, obj: unknown): { path: Path; why: string }[] {
  const r = schema.safeParse(obj, { reportInput: true });
  if (r.success) return [];
  return problemsOf(r.error);
}

/** The object read by its schema (typed), or what is wrongly shaped in it. */
export function parseShape<S extends z.ZodType>(schema: S, obj: unknown): { data: z.output<S> } | { problems: { path: Path; why: string }[] } {
  const r = schema.safeParse(obj); // the common case: well shaped, no input kept for messages
  if (r.success) return { data: r.data };
  return { problems: shapeProblems(schema, obj) };
}

function problemsOf(e: z.ZodError): { path: Path; why: string }[] {
  return e.issues.map((i) => ({ path: i.path.filter((p): p is string | number => typeof p !== 'symbol'), why: describe(i) }));
}

function describe(i: z.core.$ZodIssue): string {
  if (i.code === 'invalid_type') return `expected ${i.expected === 'array' ? 'a list' : i.expected === 'object' || i.expected === 'record' ? 'a map' : `a ${i.expected}`}, got ${gotOf(i.input)}`;
  if (i.code === 'invalid_union') return `expected a port number or name, got ${gotOf(i.input)}`;
  return i.message;
}

function gotOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a map';
  return `${typeof v} ${JSON.stringify(v)?.slice(0, 40)}`;
}
