// net.ports: the ports the node's Kubernetes components will bind are free. kubeadm's preflight
// refuses a node where one is taken (PortOpenCheck, "Port %d is in use"): 6443, 10259, 10257,
// 10250, 2379, 2380 on a control plane, 10250 on a worker; a listener in the NodePort range
// (30000-32767) collides with a Service's NodePort. Read from /proc/net/tcp{,6}: no root, no ss.
import type { Check, Finding } from './types.js';
import { nodeFacts } from '../probes/node-facts.js';

const SOURCE = 'kubeadm preflight PortOpenCheck ("Port N is in use"): Port-6443, Port-10259, Port-10257, Port-10250, Port-2379, Port-2380; the NodePort range is --service-node-port-range (default 30000-32767)';

export const netPorts: Check = {
  id: 'net.ports',
  title: 'Kubernetes ports free',
  async run(ctx): Promise<Finding> {
    return judgePorts((await nodeFacts(ctx, ctx.profile.preflight.diskPath)).listening, ctx.profile.preflight.ports);
  },
};

/** preflight.ports entries as [first, last] ranges. */
export function portRanges(ports: readonly (number | string)[]): [number, number][] {
  return ports.map((p) => {
    if (typeof p === 'number') return [p, p];
    const [a, b] = p.split('-').map(Number) as [number, number];
    return [Math.min(a, b), Math.max(a, b)];
  });
}

/** The verdict on the listening TCP ports against preflight.ports; pure. */
export function judgePorts(listening: ReadonlySet<number>, ports: readonly (number | string)[]): Finding {
  const ranges = portRanges(ports);
  const expected = `nothing listening on TCP ${ports.join(', ')} (preflight.ports)`;
  const taken = [...listening].filter((p) => ranges.some(([a, b]) => p >= a && p <= b)).sort((a, b) => a - b);
  if (taken.length === 0) return { status: 'pass', observed: `${listening.size} TCP listeners, none on a Kubernetes port`, expected, detail: SOURCE };
  return {
    status: 'fail',
    observed: `in use: ${taken.join(', ')}`,
    expected,
    remedy: `find the owner with \`ss -ltnp '( ${taken.map((p) => `sport = :${p}`).join(' or ')} )'\` and stop it (an earlier cluster? kubeadm reset removes one)`,
    detail: SOURCE,
  };
}
