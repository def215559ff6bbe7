// Which backends' UDP flows a sync must flush from conntrack (issue 13 item 3): a UDP "flow" has no
// end, so a client that keeps sending from one port stays on the backend its conntrack entry names
// for as long as it keeps sending, also after that backend left the Service (kubernetes/kubernetes
// #126130; kube-proxy clears UDP conntrack entries of stale endpoints for the same reason). TCP
// flows are left to end: a terminating pod drains its connections, and their entries expire by
// lifetime (closing 10 s after a FIN or RST). SCTP associations are treated like TCP.
import { IPPROTO } from './consts.js';
import { formatIpv6 } from './ip.js';
import type { MapEntry } from './compile.js';
import type { CurrentEntries } from './writer.js';

/** `addr:port/udp` (IPv6: `[addr]:port/udp`) backends, as the loader's `ct-gc --backend` takes them. */
export type FlushTarget = string;

/** The two families' map names and layouts (bpf/include/datapath_structs.h). */
const FAMILIES = [
  // services: lb_svc_key {vip 4, port 2, proto 1, scope 1}; backends value lb_backend {addr 4, port 2, ...}
  { services: 'services', backends: 'backends', protoAt: 6, addrLen: 4 },
  // services6: lb6_svc_key {vip 16, port 2, proto 1, scope 1}; backends6 value lb6_backend {addr 16, port 2, ...}
  { services: 'services6', backends: 'backends6', protoAt: 18, addrLen: 16 },
] as const;
type Family = (typeof FAMILIES)[number];

/** svc_id → protocol of a services map's entries (value: svc_id LE first). */
function protocols(services: Iterable<[string, string]>, f: Family): Map<number, number> {
  const out = new Map<number, number>();
  for (const [k, v] of services) if (k.length >= 2 * (f.protoAt + 2) && v.length >= 8) out.set(Buffer.from(v, 'hex').readUInt32LE(0), Buffer.from(k, 'hex')[f.protoAt]!);
  return out;
}

/** The loader's text of an address of addrLen bytes: dotted IPv4, or IPv6 (RFC 5952) in brackets. */
function addrText(b: Buffer, addrLen: number): string {
  if (addrLen === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  return `[${formatIpv6(BigInt(`0x${b.subarray(0, 16).toString('hex')}`))}]`;
}

/** `addr:port/udp` of every UDP backend slot (key: svc_id LE, slot; value: addr BE, port BE, ...). */
function udpBackends(backends: Iterable<[string, string]>, proto: Map<number, number>, f: Family): Set<FlushTarget> {
  const out = new Set<FlushTarget>();
  for (const [k, v] of backends) {
    if (k.length < 16 || v.length < 2 * (f.addrLen + 2)) continue;
    if (proto.get(Buffer.from(k, 'hex').readUInt32LE(0)) !== IPPROTO.udp) continue;
    const b = Buffer.from(v, 'hex');
    out.add(`${addrText(b, f.addrLen)}:${b.readUInt16BE(f.addrLen)}/udp`);
  }
  return out;
}

/** UDP backends (IPv4 and IPv6) the node's maps have now and the desired entries no longer have. */
export function removedUdpBackends(current: CurrentEntries, desired: readonly MapEntry[]): FlushTarget[] {
  const pairs = (map: string) => desired.filter((e) => e.map === map).map((e) => [e.keyHex, e.valueHex] as [string, string]);
  const out: FlushTarget[] = [];
  for (const f of FAMILIES) {
    const now = udpBackends(current[f.backends] ?? new Map(), protocols(current[f.services] ?? new Map(), f), f);
    const want = udpBackends(pairs(f.backends), protocols(pairs(f.services), f), f);
    out.push(...[...now].filter((b) => !want.has(b)));
  }
  return out.sort();
}

/** svc_id → protocol, from the entries of `services` and `services6` (svc_ids are one space over
 * both families; the agent keeps it while services do not change). */
export function serviceProtocols(maps: Readonly<Record<string, Iterable<[string, string]> | undefined>>): Map<number, number> {
  const out = new Map<number, number>();
  for (const f of FAMILIES) for (const [k, v] of protocols(maps[f.services] ?? [], f)) out.set(k, v);
  return out;
}

/**
 * The agent's delta: UDP backends (`addr:port/udp`, `[addr6]:port/udp`) whose slots these changes
 * overwrite or delete, read from the slots' values before the changes (`before`), their services'
 * protocols from `proto`.
 */
export function udpBackendsLeaving(before: CurrentEntries, proto: Map<number, number>, touched: Iterable<{ map: string; keyHex: string }>): Set<FlushTarget> {
  const list = [...touched];
  const out = new Set<FlushTarget>();
  for (const f of FAMILIES) {
    const old: [string, string][] = [];
    for (const t of list) {
      if (t.map !== f.backends) continue;
      const v = before[f.backends]?.get(t.keyHex);
      if (v !== undefined) old.push([t.keyHex, v]);
    }
    if (old.length > 0) for (const b of udpBackends(old, proto, f)) out.add(b);
  }
  return out;
}

/** Of `leaving`, the backends no UDP slot of `after` names any more (a walk of the backends, only when there are some). */
export function goneBackends(after: CurrentEntries, proto: Map<number, number>, leaving: Set<FlushTarget>): FlushTarget[] {
  if (leaving.size === 0) return [];
  const still = new Set<FlushTarget>();
  for (const f of FAMILIES) for (const b of udpBackends(after[f.backends] ?? new Map(), proto, f)) still.add(b);
  return [...leaving].filter((b) => !still.has(b)).sort();
}
