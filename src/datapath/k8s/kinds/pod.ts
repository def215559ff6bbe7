// Pod (v1) → an endpoint candidate: its addresses (IPv4, IPv6 or both: status.podIPs), identity labels (its labels plus
// io.kubernetes.pod.namespace and the service account, as cilium builds an identity), readiness and
// named container ports. Host-network, finished and unscheduled pods are notes, not endpoints.
import type { InputObject } from '../manifests.js';
import { arr, labelsOf, lower, nameOf, nsOf, obj, parseAddress, str, type Sink } from './common.js';

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
  const md = obj(o.obj.metadata);
  const spec = obj(o.obj.spec);
  const status = obj(o.obj.status);
  const phase = str(status.phase);
  if (spec.hostNetwork === true) {
    sink.notes.push(`${o.origin.what}: host network pod: it has the node's address, not an endpoint`);
    return null;
  }
  if (phase === 'Succeeded' || phase === 'Failed') {
    sink.notes.push(`${o.origin.what}: ${phase}: not an endpoint`);
    return null;
  }
  // podIP is podIPs[0]; podIPs holds at most one address per family (the API validates it)
  const raw = [str(status.podIP), ...arr(status.podIPs).map((p) => str(obj(p).ip))].filter((x): x is string => !!x);
  const v4: string[] = [];
  const v6: string[] = [];
  const mark = sink.findings.length;
  raw.forEach((r) => {
    const a = parseAddress(r);
    if (!a) return sink.findings.add(o.origin, ['status', 'podIPs'], `"${r}" is not an IPv4 or IPv6 address`, 'this pod is left out: policies do not apply to it');
    const list = a.family === 4 ? v4 : v6;
    if (!list.includes(a.ip)) list.push(a.ip);
  });
  if (v4.length > 1 || v6.length > 1) sink.findings.add(o.origin, ['status', 'podIPs'], `${[...v4, ...v6].join(', ')}: at most one address per family (the API's rule)`, 'this pod is left out: policies do not apply to it');
  if (raw.length === 0 || sink.findings.length > mark) {
    if (raw.length === 0) sink.notes.push(`${o.origin.what}: no status.podIP yet (not scheduled or not running): not an endpoint`);
    return null;
  }
  const ns = nsOf(o);
  const labels: Record<string, string> = { ...labelsOf(md.labels), [NAMESPACE_LABEL]: ns };
  const sa = str(spec.serviceAccountName) ?? str(spec.serviceAccount);
  if (sa) labels[SERVICEACCOUNT_LABEL] = sa;
  const readyCond = arr(status.conditions)
    .map(obj)
    .find((c) => c.type === 'Ready');
  const ready = readyCond ? readyCond.status === 'True' : phase === 'Running' || phase === undefined;
  const ports = arr(spec.containers).flatMap((c) =>
    arr(obj(c).ports)
      .map(obj)
      .filter((p) => typeof p.name === 'string' && typeof p.containerPort === 'number')
      .map((p) => ({ name: p.name as string, port: p.containerPort as number, protocol: lower(str(p.protocol) ?? 'TCP') })),
  );
  const nodeName = str(spec.nodeName);
  return { ns, name: nameOf(o), ip: v4[0] ?? v6[0]!, ...(v4.length > 0 && v6.length > 0 && { ip6: v6[0]! }), labels, ready, ports, origin: o.origin, ...(nodeName !== undefined && { nodeName }) };
}
