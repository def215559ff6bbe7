// Which backends' UDP flows a sync must flush from conntrack (issue 13 item 3): a UDP "flow" has no
// end, so a client that keeps sending from one port stays on the backend its conntrack entry names
// for as long as it keeps sending, also after that backend left the Service (kubernetes/kubernetes
// #126130; kube-proxy clears UDP conntrack entries of stale endpoints for the same reason). TCP
// flows are left to end: a terminating pod drains its connections, and their entries expire by
// lifetime (closing 10 s after a FIN or RST). SCTP associations are treated like TCP.
import { IPPROTO } from './consts.js';
import type { MapEntry } from './compile.js';
import type { CurrentEntries } from './writer.js';

/** `addr:port/udp` backends, as the loader's `ct-gc --backend` takes them. */
export type FlushTarget = string;

/** svc_id → protocol of the services map's entries (key: vip, port, proto, scope; value: svc_id LE first). */
function protocols(services: Iterable<[string, string]>): Map<number, number> {
  const out = new Map<number, number>();
  for (const [k, v] of services) if (k.length >= 16 && v.length >= 8) out.set(Buffer.from(v, 'hex').readUInt32LE(0), Buffer.from(k, 'hex')[6]!);
  return out;
}

/** `addr:port/udp` of every UDP backend slot (key: svc_id LE, slot; value: addr BE, port BE, ...). */
function udpBackends(backends: Iterable<[string, string]>, proto: Map<number, number>): Set<FlushTarget> {
  const out = new Set<FlushTarget>();
  for (const [k, v] of backends) {
    if (k.length < 16 || v.length < 12) continue;
    if (proto.get(Buffer.from(k, 'hex').readUInt32LE(0)) !== IPPROTO.udp) continue;
    const b = Buffer.from(v, 'hex');
    out.add(`${b[0]}.${b[1]}.${b[2]}.${b[3]}:${b.readUInt16BE(4)}/udp`);
  }
  return out;
}

/** UDP backends the node's maps have now and the desired entries no longer have. */
export function removedUdpBackends(current: CurrentEntries, desired: readonly MapEntry[]): FlushTarget[] {
  const now = udpBackends(current.backends ?? new Map(), protocols(current.services ?? new Map()));
  const pairs = (map: string) => desired.filter((e) => e.map === map).map((e) => [e.keyHex, e.valueHex] as [string, string]);
  const want = udpBackends(pairs('backends'), protocols(pairs('services')));
  return [...now].filter((b) => !want.has(b)).sort();
}

/** svc_id → protocol, from the services map's entries (the agent keeps it while services do not change). */
export function serviceProtocols(services: Iterable<[string, string]>): Map<number, number> {
  return protocols(services);
}

/**
 * The agent's delta: UDP backends (`addr:port/udp`) whose slots these changes overwrite or delete, read
 * from the slots' values before the changes (`before`), their services' protocols from `proto`.
 */
export function udpBackendsLeaving(before: CurrentEntries, proto: Map<number, number>, touched: Iterable<{ map: string; keyHex: string }>): Set<FlushTarget> {
  const old: [string, string][] = [];
  for (const t of touched) {
    if (t.map !== 'backends') continue;
    const v = before.backends?.get(t.keyHex);
    if (v !== undefined) old.push([t.keyHex, v]);
  }
  return old.length === 0 ? new Set() : udpBackends(old, proto);
}

/** Of `leaving`, the backends no UDP slot of `after` names any more (a walk of the backends, only when there are some). */
export function goneBackends(after: CurrentEntries, proto: Map<number, number>, leaving: Set<FlushTarget>): FlushTarget[] {
  if (leaving.size === 0) return [];
  const still = udpBackends(after.backends ?? new Map(), proto);
  return [...leaving].filter((b) => !still.has(b)).sort();
}
