// Node (v1) → the addresses NodePort services listen on: its IPv4 InternalIP and ExternalIP.
import { parseIpv4 } from '../../ip.js';
import { arr, obj, str } from './common.js';

/** This node's IPv4 addresses (InternalIP, ExternalIP) from its Node object, in order, without repeats. */
export function nodeAddresses(node: Record<string, unknown> | undefined): string[] {
  const out = new Set<string>();
  for (const a of arr(obj(node?.status).addresses).map(obj)) {
    const ip = str(a.address);
    if ((a.type === 'InternalIP' || a.type === 'ExternalIP') && ip !== undefined && parseIpv4(ip) !== null) out.add(ip);
  }
  return [...out];
}
