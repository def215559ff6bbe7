// net.localhost: `localhost` resolves to the loopback addresses. kubeadm waits for the kubelet on
// http://localhost:10248/healthz ("The HTTP call equal to 'curl -sSL http://localhost:10248/healthz'
// failed"), and components and probes that say localhost reach another machine when it resolves
// elsewhere (RFC 6761 §6.3: localhost names loopback).
import type { Check, Finding } from './types.js';
import { nodeFacts, type Resolution } from '../probes/node-facts.js';

const SOURCE = "kubeadm checks the kubelet at http://localhost:10248/healthz; RFC 6761 §6.3: 'localhost' is the loopback address";

export const netLocalhost: Check = {
  id: 'net.localhost',
  title: 'localhost resolves to loopback',
  async run(ctx): Promise<Finding> {
    return judgeLocalhost((await nodeFacts(ctx, ctx.profile.preflight.diskPath)).resolveLocalhost);
  },
};

function loopback(addr: string): boolean {
  return addr.startsWith('127.') || addr === '::1';
}

/** The verdict on `getent ahosts localhost`; pure. */
export function judgeLocalhost(r: Resolution): Finding {
  const expected = 'localhost → 127.0.0.1 (and ::1), nothing else';
  const remedy = "grep -q '^127.0.0.1[[:space:]].*localhost' /etc/hosts || echo '127.0.0.1 localhost' >> /etc/hosts; and remove other addresses for localhost from /etc/hosts";
  if (!r.ok) return { status: 'fail', observed: `localhost does not resolve${r.error ? ` (${r.error})` : ''}`, expected, remedy, detail: SOURCE };
  const observed = `localhost → ${r.addresses.join(', ')}`;
  const other = r.addresses.filter((a) => !loopback(a));
  if (other.length > 0) return { status: 'fail', observed, expected, remedy, detail: SOURCE };
  return { status: 'pass', observed, expected, detail: SOURCE };
}
