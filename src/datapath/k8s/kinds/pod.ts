// Pod (v1) → an endpoint candidate: its IPv4 address, identity labels (its labels plus
// io.kubernetes.pod.namespace and the service account, as cilium builds an identity), readiness and
// named container ports. Host-network, finished and unscheduled pods are notes, not endpoints.
import { parseIpv4 } from '../../ip.js';
import type { InputObject } from '../manifests.js';
import { arr, IPV6, labelsOf, lower, nameOf, nsOf, obj, str, type Sink } from './common.js';

/** cilium's namespace label on every pod identity. */
export const NAMESPACE_LABEL = 'io.kubernetes.pod.namespace';
export const SERVICEACCOUNT_LABEL = 'io.cilium.k8s.policy.serviceaccount';

/** A Pod's contribution: one endpoint. */
export interface PodFacts {
  ns: string;
  name: string;
  ip: string;
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
  const ips = [...new Set([str(status.podIP), ...arr(status.podIPs).map((p) => str(obj(p).ip))].filter((x): x is string => !!x))];
  const v4 = ips.filter((ip) => parseIpv4(ip) !== null);
  ips.filter((ip) => ip.includes(':')).forEach(() => sink.findings.add(o.origin, ['status', 'podIPs'], IPV6, "the pod's IPv6 address is left out: policies do not apply to its IPv6 traffic"));
  if (v4.length === 0) {
    if (ips.length === 0) sink.notes.push(`${o.origin.what}: no status.podIP yet (not scheduled or not running): not an endpoint`);
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
  return { ns, name: nameOf(o), ip: v4[0]!, labels, ready, ports, origin: o.origin, ...(nodeName !== undefined && { nodeName }) };
}
