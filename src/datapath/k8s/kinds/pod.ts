// Pod (v1) → an endpoint candidate: its addresses (IPv4, IPv6 or both: status.podIPs), identity labels (its labels plus
// io.kubernetes.pod.namespace and the service account, as cilium builds an identity), readiness and
// named container ports. Host-network, finished and unscheduled pods are notes, not endpoints.
import type { InputObject } from '../manifests.js';
import { PodShape, parseShape } from '../shapes.js';
import { lower, parseAddress, shown, type Sink } from './common.js';

const LEFT = 'this pod is left out: policies do not apply to it';

/** cilium's namespace label on every pod identity. */
export const NAMESPACE_LABEL = 'io.kubernetes.pod.namespace';
export const SERVICEACCOUNT_LABEL = 'io.cilium.k8s.policy.serviceaccount';

/** A Pod's contribution: one endpoint. */
export interface PodFacts {
  ns: string;
  name: string;
  /** its IPv4 address, or its IPv6 one when it has no IPv4 (single-stack IPv6) */
  ip: string;
  /** a dual-stack pod's IPv6 address (ip is then its IPv4 one) */
  ip6?: string;
  /** identity labels (pod labels + namespace + service account) */
  labels: Record<string, string>;
  ready: boolean;
  ports: { name: string; port: number; protocol: string }[];
  /** where it came from (a duplicate address is a finding on it) */
  origin: InputObject['origin'];
  /** spec.nodeName: the node it runs on */
  nodeName?: string;
}

export function podFacts(o: InputObject, sink: Sink): PodFacts | null {
  const r = parseShape(PodShape, o.obj);
  if ('problems' in r) {
    for (const p of r.problems) sink.findings.add(o.origin, p.path, p.why, LEFT);
    return null;
  }
  const { metadata: md, spec, status } = r.data;
  const phase = status?.phase ?? undefined;
  if (spec?.hostNetwork === true) {
    sink.notes.push(`${o.origin.what}: host network pod: it has the node's address, not an endpoint`);
    return null;
  }
  if (phase === 'Succeeded' || phase === 'Failed') {
    sink.notes.push(`${o.origin.what}: ${phase}: not an endpoint`);
    return null;
  }
  // podIP is podIPs[0]; podIPs holds at most one address per family (the API validates it)
  const raw = [status?.podIP, ...(status?.podIPs ?? []).map((p) => p?.ip)].filter((x): x is string => !!x);
  const v4: string[] = [];
  const v6: string[] = [];
  const mark = sink.findings.length;
  raw.forEach((a0) => {
    const a = parseAddress(a0);
    if (!a) return sink.findings.add(o.origin, ['status', 'podIPs'], `${shown(a0)} is not an IPv4 or IPv6 address`, LEFT);
    const list = a.family === 4 ? v4 : v6;
    if (!list.includes(a.ip)) list.push(a.ip);
  });
  if (v4.length > 1 || v6.length > 1) sink.findings.add(o.origin, ['status', 'podIPs'], `${[...v4, ...v6].join(', ')}: at most one address per family (the API's rule)`, LEFT);
  if (raw.length === 0 || sink.findings.length > mark) {
    if (raw.length === 0) sink.notes.push(`${o.origin.what}: no status.podIP yet (not scheduled or not running): not an endpoint`);
    return null;
  }
  const ns = md?.namespace ?? 'default';
  const labels: Record<string, string> = { ...(md?.labels ?? {}), [NAMESPACE_LABEL]: ns };
  const sa = spec?.serviceAccountName ?? spec?.serviceAccount;
  if (sa) labels[SERVICEACCOUNT_LABEL] = sa;
  const readyCond = (status?.conditions ?? []).find((c) => c?.type === 'Ready');
  const ready = readyCond ? readyCond.status === 'True' : phase === 'Running' || phase === undefined;
  const ports = (spec?.containers ?? []).flatMap((c) =>
    (c?.ports ?? []).flatMap((p) => (typeof p?.name === 'string' && typeof p.containerPort === 'number' ? [{ name: p.name, port: p.containerPort, protocol: lower(p.protocol ?? 'TCP') }] : [])),
  );
  const nodeName = spec?.nodeName ?? undefined;
  return { ns, name: md?.name ?? '', ip: v4[0] ?? v6[0]!, ...(v4.length > 0 && v6.length > 0 && { ip6: v6[0]! }), labels, ready, ports, origin: o.origin, ...(nodeName !== undefined && { nodeName }) };
}
