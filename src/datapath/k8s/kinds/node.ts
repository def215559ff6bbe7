// Node (v1) → the addresses NodePort services listen on: its InternalIP and ExternalIP addresses of
// both families (a dual-stack node lists one of each; IPv4-mapped ones are not taken).
import { parseIpv4, parseIpv6 } from '../../ip.js';
import { canonicalIp } from '../../schema.js';
import { arr, obj, str } from './common.js';

/** This node's IPv4 and IPv6 addresses (InternalIP, ExternalIP) from its Node object, in order, without repeats (IPv6 in canonical text). */
export function nodeAddresses(node: Record<string, unknown> | undefined): string[] {
  const out = new Set<string>();
  for (const a of arr(obj(node?.status).addresses).map(obj)) {
    const ip = str(a.address);
    if ((a.type !== 'InternalIP' && a.type !== 'ExternalIP') || ip === undefined) continue;
    if (parseIpv4(ip) !== null) out.add(ip);
    else {
      const v6 = parseIpv6(ip);
      if (v6 !== null && v6 >> 32n !== 0xffffn) out.add(canonicalIp(ip));
    }
  }
  return [...out];
}
