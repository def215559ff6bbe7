// Desired state → every map entry the control plane owns, encoded, each with a note a person can
// read (dry runs, diffs). Pure: the same state always gives the same entries, whatever the order of
// its lists, and ids come from hashes of stable names, so a small change gives a small diff.
import { BE_F_REMOTE, IPPROTO, SVC_F_AFFINITY, SVC_F_EXTERNAL, SVC_F_LOCAL_ONLY, SVC_F_MAGLEV, type MapName } from './consts.js';
import * as enc from './encode.js';
import { allocateIdentities, hashedIds, type Identities } from './identity.js';
import { parseCidrAny, parseIp, parseIpv4 } from './ip.js';
import { maglevTable } from './maglev.js';
import { compilePolicies } from './policy.js';
import { canonicalIp, serviceKey, type DatapathState, type Service } from './schema.js';

/** One map entry as the loader's apply takes it. */
export interface MapEntry {
  map: MapName;
  keyHex: string;
  valueHex: string;
  /** what the entry means, for people */
  note: string;
}

export interface Compiled {
  entries: MapEntry[];
  identities: Identities;
  /** service name → svc_id */
  serviceIds: Map<string, number>;
  /** rule name ("policy/ingress/0") → rule id */
  rules: Map<string, number>;
}

const DIRECTION = ['ingress', 'egress'];
const ACTION = ['', 'allow', 'deny'];
const PROTO: Record<number, string> = { 0: 'any', 1: 'icmp', 6: 'tcp', 17: 'udp', 132: 'sctp' };

function entry(map: MapName, key: Buffer, value: Buffer, note: string): MapEntry {
  return { map, keyHex: key.toString('hex'), valueHex: value.toString('hex'), note };
}

/** svc_id of each service: a hash of VIP:port/protocol (stable when other services change), never 0.
 * One id space over both families: an IPv6 service never shares an id with an IPv4 one. */
export function serviceIds(services: readonly Service[]): Map<string, number> {
  const byKey = hashedIds(services.map(serviceKey), 1, 0x7fffffff);
  return new Map(services.map((s) => [s.name, byKey.get(serviceKey(s))!]));
}

/** Is a backend on this node? No nodeName (the state does not say), or the node's own name. */
export function backendIsLocal(b: Service['backends'][number], nodeName: string | undefined): boolean {
  return b.nodeName === undefined || b.nodeName === nodeName;
}

/** Does the service take this node's backends only (externalTrafficPolicy or internalTrafficPolicy Local)? */
export function localOnly(svc: Service): boolean {
  return (svc.external ? svc.externalTrafficPolicy : svc.internalTrafficPolicy) === 'Local';
}

/** One backend of a service in slot order. addr: the address as a number (IPv4: 0x0a000001; IPv6: 128 bits). */
export interface BackendSlot {
  family: 4 | 6;
  addr: bigint;
  /** canonical text (IPv6 in RFC 5952 form) */
  ip: string;
  port: number;
  weight: number;
  firstSlot: number;
  backendId: number;
  /** runs on another node */
  remote: boolean;
}

/**
 * A service's backends in slot order (sorted by address so list order does not matter), weight w = w
 * slots; with a Local traffic policy only this node's. The schema keeps them of the vip's family.
 */
export function backendSlots(svc: Service, nodeName?: string): BackendSlot[] {
  const picked = localOnly(svc) ? svc.backends.filter((b) => backendIsLocal(b, nodeName)) : svc.backends;
  const sorted = picked
    .map((b) => {
      const a = parseIp(b.ip)!;
      return { family: a.family, addr: a.addr, ip: canonicalIp(b.ip), port: b.port, weight: b.weight, remote: !backendIsLocal(b, nodeName) };
    })
    .sort((x, y) => (x.addr < y.addr ? -1 : x.addr > y.addr ? 1 : x.port - y.port));
  const idKey = (b: { family: number; ip: string; port: number }) => (b.family === 4 ? `${b.ip}:${b.port}` : `[${b.ip}]:${b.port}`);
  const ids = hashedIds(sorted.map(idKey), 1, 0x7fffffff);
  let slot = 0;
  return sorted.map((b) => {
    const out = { ...b, firstSlot: slot, backendId: ids.get(idKey(b))! };
    slot += b.weight;
    return out;
  });
}

/** The 32-bit word Maglev's permutation hashes take for a backend address: IPv4 itself, IPv6 its four words xored. */
function maglevWord(b: BackendSlot): number {
  if (b.family === 4) return Number(b.addr);
  let w = 0;
  for (let i = 0n; i < 4n; i++) w ^= Number((b.addr >> (32n * i)) & 0xffffffffn);
  return w >>> 0;
}

/**
 * The services (services6), backends (backends6) and maglev entries of one service with its svc_id,
 * on the node `nodeName` (remote backends, Local policies).
 */
export function serviceEntries(svc: Service, svcId: number, nodeName?: string): MapEntry[] {
  const out: MapEntry[] = [];
  const slots = backendSlots(svc, nodeName);
  const vip = parseIp(svc.vip)!;
  const v6 = vip.family === 6;
  const name = `${svc.name} ${serviceKey(svc)}`;
  let count = 0;
  for (const b of slots) {
    const value = v6 ? enc.backend6Value(b.addr, b.port, b.backendId, b.remote ? BE_F_REMOTE : 0) : enc.backendValue(Number(b.addr), b.port, b.backendId, b.remote ? BE_F_REMOTE : 0);
    const to = v6 ? `[${b.ip}]:${b.port}` : `${b.ip}:${b.port}`;
    for (let w = 0; w < b.weight; w++, count++) {
      out.push(entry(v6 ? 'backends6' : 'backends', enc.backendKey(svcId, count), value, `${name} slot ${count} → ${to}${b.remote ? ' (remote)' : ''}`));
    }
  }
  const maglev = svc.algorithm === 'maglev';
  if (maglev) {
    const table = maglevTable(slots.map((b) => ({ addr: maglevWord(b), port: b.port, weight: b.weight, slot: b.firstSlot })));
    out.push(entry('maglev', enc.u32Key(svcId), enc.maglevValue(table), `${name} Maglev table over ${slots.length} backends`));
  }
  const local = localOnly(svc);
  const flags = (maglev ? SVC_F_MAGLEV : 0) | (svc.sessionAffinity ? SVC_F_AFFINITY : 0) | (svc.external ? SVC_F_EXTERNAL : 0) | (local ? SVC_F_LOCAL_ONLY : 0);
  const timeout = svc.sessionAffinity?.timeoutSeconds ?? 0;
  const traffic = `${svc.external ? ', external' : ''}${local ? `, ${svc.external ? 'externalTrafficPolicy' : 'internalTrafficPolicy'} Local` : ''}`;
  const key = v6 ? enc.svc6Key(vip.addr, svc.port, IPPROTO[svc.protocol]) : enc.svcKey(Number(vip.addr), svc.port, IPPROTO[svc.protocol]);
  out.push(entry(v6 ? 'services6' : 'services', key, enc.serviceValue(svcId, count, flags, timeout), `${name} id ${svcId}, ${count} slots, ${svc.algorithm}${timeout ? `, affinity ${timeout}s` : ''}${traffic}`));
  return out;
}

/** Every entry of the services, backends, maglev, endpoints, ipcache and policy maps (policy entries counted against policyCapacity first). */
export function compileState(state: DatapathState, policyCapacity?: number): Compiled {
  const ids = allocateIdentities(state);
  const svcIds = serviceIds(state.services);
  const entries: MapEntry[] = state.services.flatMap((s) => serviceEntries(s, svcIds.get(s.name)!, state.node?.name));
  // the first address of each family is that family's SNAT source
  const snatAddr = state.node?.addresses?.find((a) => parseIpv4(a) !== null);
  if (snatAddr !== undefined) entries.push(entry('node_cfg', enc.u32Key(0), enc.nodeCfgValue(parseIpv4(snatAddr)!), `node ${state.node?.name ?? ''} SNAT address ${snatAddr}`.replace('  ', ' ')));
  const snatAddr6 = state.node?.addresses?.find((a) => parseIpv4(a) === null);
  if (snatAddr6 !== undefined) entries.push(entry('node_cfg6', enc.u32Key(0), enc.nodeCfg6Value(parseIp(snatAddr6)!.addr), `node ${state.node?.name ?? ''} IPv6 SNAT address ${canonicalIp(snatAddr6)}`.replace('  ', ' ')));
  const policy = compilePolicies(state, ids, policyCapacity);
  for (const e of state.endpoints) {
    const identity = ids.byEndpoint.get(e.name)!;
    if (e.nodeName !== undefined && e.nodeName !== state.node?.name) {
      // another node's endpoint: its identity by address (ipcache), policy is enforced on its node
      for (const ip of [e.ip, ...(e.ip6 === undefined ? [] : [e.ip6])]) {
        const a = parseIp(ip)!;
        const note = `${e.name} ${ip} on node ${e.nodeName}: identity ${identity}`;
        entries.push(a.family === 4 ? entry('ipcache', enc.ipcacheKey(Number(a.addr), 32), enc.ipcacheValue(identity), note) : entry('ipcache6', enc.ipcache6Key(a.addr, 128), enc.ipcacheValue(identity), note));
      }
      continue;
    }
    const flags = policy.endpointFlags.get(e.name) ?? 0;
    const enforce = [flags & 1 ? 'ingress' : '', flags & 2 ? 'egress' : ''].filter(Boolean).join('+') || 'none';
    // every address of the endpoint carries its identity and flags: IPv6 ones in endpoints6
    for (const ip of [e.ip, ...(e.ip6 === undefined ? [] : [e.ip6])]) {
      const a = parseIp(ip)!;
      const value = enc.endpointValue(identity, flags);
      const note = `${e.name} ${ip} identity ${identity}, default-deny ${enforce}`;
      entries.push(a.family === 4 ? entry('endpoints', enc.endpointKey(Number(a.addr)), value, note) : entry('endpoints6', enc.endpoint6Key(a.addr), value, note));
    }
  }
  for (const [cidr, identity] of ids.byCidr) {
    const c = parseCidrAny(cidr)!;
    if (c.len === 0) continue; // 0.0.0.0/0 is IDENTITY_WORLD, ::/0 IDENTITY_WORLD_IPV6: what an ipcache miss gives
    if (c.family === 4) entries.push(entry('ipcache', enc.ipcacheKey(Number(c.addr), c.len), enc.ipcacheValue(identity), `${cidr} identity ${identity}`));
    else entries.push(entry('ipcache6', enc.ipcache6Key(c.addr, c.len), enc.ipcacheValue(identity), `${cidr} identity ${identity}`));
  }
  const ruleName = new Map([...policy.rules].map(([n, id]) => [id, n]));
  for (const p of policy.entries) {
    const ports = p.proto === 0 ? 'any' : `${PROTO[p.proto]}/${p.portBits === 0 ? 'any' : `${p.port}/${p.portBits}`}`;
    entries.push(
      entry('policy', enc.policyKey(p.localId, p.remoteId, p.direction, p), enc.policyValue(p.action, p.ruleId), `${p.localId} ${DIRECTION[p.direction]} ${p.remoteId} ${ports}: ${ACTION[p.action]} (${ruleName.get(p.ruleId)})`),
    );
  }
  return { entries, identities: ids, serviceIds: svcIds, rules: policy.rules };
}
