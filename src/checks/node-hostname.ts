// node.hostname: the node's name is one the API server accepts and the node can resolve. The kubelet
// registers the Node under its hostname, lowercased; a Node's name must be a DNS-1123 subdomain
// (lowercase letters, digits, '-' and '.', labels starting and ending alphanumeric, at most 253
// characters), and kubeadm's preflight validates it (HostnameCheck: IsDNS1123Subdomain) and warns when
// it does not resolve ("hostname \"%s\" could not be reached").
import type { Check, Finding } from './types.js';
import { nodeFacts, type Resolution } from '../probes/node-facts.js';

const SOURCE = 'kubeadm preflight HostnameCheck: the node name must be a DNS-1123 subdomain and kubeadm warns "hostname could not be reached" when it does not resolve';

export const nodeHostname: Check = {
  id: 'node.hostname',
  title: 'Hostname valid and resolvable',
  async run(ctx): Promise<Finding> {
    const f = await nodeFacts(ctx, ctx.profile.preflight.diskPath);
    return judgeHostname(f.hostname, f.resolveHostname);
  },
};

const LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** Why `name` is not a DNS-1123 subdomain, or null when it is (k8s.io/apimachinery validation.IsDNS1123Subdomain). */
export function dns1123SubdomainError(name: string): string | null {
  if (name.length === 0) return 'is empty';
  if (name.length > 253) return `is ${name.length} characters long (at most 253)`;
  if (name !== name.toLowerCase()) return 'has capital letters (the kubelet lowercases it: the Node name and the hostname differ)';
  const bad = name.split('.').find((l) => !LABEL.test(l));
  if (bad !== undefined) return `has the label "${bad}": use lowercase letters, digits and '-', starting and ending with a letter or digit`;
  return null;
}

/** The verdict on the hostname and `getent ahosts $(hostname)`; pure. */
export function judgeHostname(hostname: string, resolution: Resolution): Finding {
  const expected = 'a DNS-1123 name (lowercase letters, digits, - and .) that resolves on the node';
  const invalid = dns1123SubdomainError(hostname);
  const fix = (name: string) => `hostnamectl set-hostname ${name} && echo "127.0.1.1 ${name}" >> /etc/hosts`;
  if (invalid !== null) {
    const suggestion = hostname.toLowerCase().replace(/[^a-z0-9.-]+/g, '-').replace(/^[-.]+|[-.]+$/g, '') || 'node-1';
    return { status: 'fail', observed: `"${hostname}" ${invalid}`, expected, remedy: fix(suggestion), detail: SOURCE };
  }
  if (!resolution.ok) {
    return {
      status: 'warn',
      observed: `${hostname} does not resolve${resolution.error ? ` (${resolution.error})` : ''}`,
      expected,
      remedy: `echo "127.0.1.1 ${hostname}" >> /etc/hosts (or the node's private address in place of 127.0.1.1)`,
      detail: SOURCE,
    };
  }
  return { status: 'pass', observed: `${hostname} → ${resolution.addresses.join(', ')}`, expected, detail: SOURCE };
}
