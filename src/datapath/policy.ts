// Policies → LPM entries of the policy trie. What the datapath needs (bpf/README.md, policy.h):
//   - a port range as the fewest aligned power-of-two blocks (as dp_policy_set_port_range does);
//   - a CIDR peer as the CIDR's identity plus the identities of every CIDR inside it that is not
//     inside one of its excepts (the ipcache answers a peer with its longest prefix);
//   - deny wins: the datapath checks two lookups (peer, ANY) and denies if either finds a deny, but
//     inside one lookup only the longest match counts, so an allow lying inside a deny for the same
//     (local, remote, direction) is written as that deny.
// Endpoints a policy selects become default-deny in each direction the policy lists (even empty).
import {
  CAPACITY,
  EP_F_ENFORCE_EGRESS,
  EP_F_ENFORCE_INGRESS,
  IDENTITY_ANY,
  IDENTITY_WORLD,
  IDENTITY_WORLD_IPV6,
  IPPROTO,
  POLICY_ALLOW,
  POLICY_DENY,
  POLICY_EGRESS,
  POLICY_INGRESS,
} from './consts.js';
import type { PortMatch } from './encode.js';
import { ExitCode, PrepNodeError } from '../errors.js';
import { hashedIds, selects, type Identities } from './identity.js';
import { cidrContainsAny, parseCidrAny } from './ip.js';
import type { DatapathState, Peer, PolicyPort } from './schema.js';

/** One policy trie entry before encoding. */
export interface PolicyEntry extends PortMatch {
  localId: number;
  remoteId: number;
  direction: number;
  action: number;
  ruleId: number;
}

/** lo..hi as aligned blocks {port, portBits}: the walk of dp_policy_set_port_range(). */
export function portRangeBlocks(lo: number, hi: number): { port: number; portBits: number }[] {
  if (lo > hi || lo < 0 || hi > 0xffff) throw new Error(`bad port range ${lo}-${hi}`);
  const out: { port: number; portBits: number }[] = [];
  let start = lo;
  while (start <= hi) {
    let sizeBits = start === 0 ? 16 : Math.min(ctz(start), 16);
    while (start + 2 ** sizeBits - 1 > hi) sizeBits--;
    out.push({ port: start, portBits: 16 - sizeBits });
    start += 2 ** sizeBits;
  }
  return out;
}

function ctz(n: number): number {
  let c = 0;
  while ((n & 1) === 0) {
    n >>>= 1;
    c++;
  }
  return c;
}

/** The port matches of a rule: absent ports = any protocol, any port. */
export function portMatches(ports: PolicyPort[] | undefined): PortMatch[] {
  if (!ports) return [{ proto: 0, port: 0, portBits: 0 }];
  return ports.flatMap((p) => {
    const proto = IPPROTO[p.protocol];
    if (typeof p.port !== 'number') return [{ proto, port: 0, portBits: 0 }];
    return portRangeBlocks(p.port, p.endPort ?? p.port).map((b) => ({ proto, ...b }));
  });
}

/** Identities a CIDR peer covers: its own, those of named CIDRs of its family inside it but outside its excepts, WORLD for 0.0.0.0/0, WORLD_IPV6 for ::/0. */
export function cidrPeerIdentities(peer: { cidr: string; except?: string[] | undefined }, ids: Identities): number[] {
  const outer = parseCidrAny(peer.cidr)!;
  const excepts = (peer.except ?? []).map((e) => parseCidrAny(e)!);
  const out = new Set<number>();
  if (outer.len === 0) out.add(outer.family === 4 ? IDENTITY_WORLD : IDENTITY_WORLD_IPV6);
  for (const [s, id] of ids.byCidr) {
    const c = parseCidrAny(s)!;
    if (cidrContainsAny(outer, c) && !excepts.some((e) => cidrContainsAny(e, c))) out.add(id);
  }
  return [...out].sort((a, b) => a - b);
}

/** Rule ids: one per rule, named "policy/direction/index" (events and observe show the name). */
export function ruleIds(state: DatapathState): Map<string, number> {
  const names = state.policies.flatMap((p) => [
    ...(p.ingress ?? []).map((_, j) => `${p.name}/ingress/${j}`),
    ...(p.egress ?? []).map((_, j) => `${p.name}/egress/${j}`),
  ]);
  return hashedIds(names, 1, 0x7fffffff);
}

export interface CompiledPolicy {
  entries: PolicyEntry[];
  /** endpoint name → EP_F_ENFORCE_* flags */
  endpointFlags: Map<string, number>;
  /** rule name → rule id */
  rules: Map<string, number>;
}

/** Policies that would fill more of the policy map than it holds: refused before the entries are built. */
export class PolicyCapacityError extends PrepNodeError {
  constructor(capacity: number, count: number, rule: string) {
    super(
      `the policies need more than ${capacity} policy map entries (at least ${count} by ${rule}; one entry per selected identity × peer identity × port block, ` +
        `and a port range is split into up to 30 blocks): narrow the port ranges or the selectors, or install with --cap policy=N`,
      ExitCode.refused,
    );
    this.name = 'PolicyCapacityError';
  }
}

/**
 * Every policy entry and endpoint flag of a state. capacity: the policy map's max_entries; the
 * entries are counted against it before they are built (their product per rule first, then the
 * distinct keys when the product is above it), so a 12 KB manifest that would need 600,000 entries
 * is refused in milliseconds instead of being built (26 s, 1.5 GB) and then failing on the node.
 */
export function compilePolicies(state: DatapathState, ids: Identities, capacity: number = CAPACITY.POLICY_MAX): CompiledPolicy {
  const rules = ruleIds(state);
  const endpointFlags = new Map(state.endpoints.map((e) => [e.name, 0]));
  const raw: PolicyEntry[] = [];
  const selectEndpoints = endpointIndex(state.endpoints);
  const peerIds = (peers: Peer[] | undefined): number[] => {
    if (!peers) return [IDENTITY_ANY];
    const out = new Set<number>();
    for (const peer of peers) {
      if (peer.cidr !== undefined) cidrPeerIdentities({ cidr: peer.cidr, except: peer.except }, ids).forEach((id) => out.add(id));
      else for (const e of selectEndpoints(peer.selector ?? {})) out.add(ids.byEndpoint.get(e.name)!);
    }
    return [...out];
  };
  checkCapacity(state, ids, capacity, peerIds, selectEndpoints);
  for (const p of state.policies) {
    const selected = selectEndpoints(p.selector);
    const locals = [...new Set(selected.map((e) => ids.byEndpoint.get(e.name)!))];
    for (const e of selected) {
      const flags = endpointFlags.get(e.name)! | (p.ingress ? EP_F_ENFORCE_INGRESS : 0) | (p.egress ? EP_F_ENFORCE_EGRESS : 0);
      endpointFlags.set(e.name, flags);
    }
    const directions = [
      ['ingress', POLICY_INGRESS, (p.ingress ?? []).map((r) => ({ action: r.action, peers: r.from, ports: r.ports }))],
      ['egress', POLICY_EGRESS, (p.egress ?? []).map((r) => ({ action: r.action, peers: r.to, ports: r.ports }))],
    ] as const;
    for (const [dirName, direction, list] of directions) {
      list.forEach((r, j) => {
        const ruleId = rules.get(`${p.name}/${dirName}/${j}`)!;
        const action = r.action === 'deny' ? POLICY_DENY : POLICY_ALLOW;
        const remotes = peerIds(r.peers);
        const matches = portMatches(r.ports);
        for (const localId of locals) for (const remoteId of remotes) for (const m of matches) raw.push({ localId, remoteId, direction, action, ruleId, ...m });
      });
    }
  }
  return { entries: resolveDenyWins(raw), endpointFlags, rules };
}

type Rule = { name: string; direction: number; locals: number[]; remotes: number[]; matches: PortMatch[] };

type Select = (selector: Record<string, string>) => DatapathState['endpoints'];

/**
 * Endpoints a selector picks, through an index on one label of the selector (translated manifests
 * select one label-set marker each): 1,000 policies over 1,000 pods no longer scan every endpoint
 * for every peer.
 */
function endpointIndex(endpoints: DatapathState['endpoints']): Select {
  const byLabel = new Map<string, DatapathState['endpoints']>();
  for (const e of endpoints)
    for (const [k, v] of Object.entries(e.labels)) {
      const key = `${k}\0${v}`;
      const list = byLabel.get(key);
      if (list) list.push(e);
      else byLabel.set(key, [e]);
    }
  return (selector) => {
    const first = Object.entries(selector)[0];
    if (!first) return endpoints;
    return (byLabel.get(`${first[0]}\0${first[1]}`) ?? []).filter((e) => selects(selector, e.labels));
  };
}

function* rulesOf(state: DatapathState, ids: Identities, peerIds: (peers: Peer[] | undefined) => number[], select: Select): Generator<Rule> {
  for (const p of state.policies) {
    const locals = [...new Set(select(p.selector).map((e) => ids.byEndpoint.get(e.name)!))];
    for (const [dirName, direction, list] of [
      ['ingress', POLICY_INGRESS, (p.ingress ?? []).map((r) => ({ peers: r.from, ports: r.ports }))],
      ['egress', POLICY_EGRESS, (p.egress ?? []).map((r) => ({ peers: r.to, ports: r.ports }))],
    ] as const)
      for (const [j, r] of list.entries()) yield { name: `${p.name}/${dirName}/${j}`, direction, locals, remotes: peerIds(r.peers), matches: portMatches(r.ports) };
  }
}

/** Refuse (PolicyCapacityError) a state whose distinct policy entries exceed capacity, without building them. */
function checkCapacity(state: DatapathState, ids: Identities, capacity: number, peerIds: (peers: Peer[] | undefined) => number[], select: Select): void {
  let upper = 0;
  for (const r of rulesOf(state, ids, peerIds, select)) upper += r.locals.length * r.remotes.length * r.matches.length;
  if (upper <= capacity) return;
  // the product counts duplicates (two rules allowing the same thing): count distinct keys, stopping at capacity
  const keys = new Set<string>();
  for (const r of rulesOf(state, ids, peerIds, select))
    for (const l of r.locals)
      for (const m of r.remotes)
        for (const pm of r.matches) {
          keys.add(keyOf({ localId: l, remoteId: m, direction: r.direction, ...pm }));
          if (keys.size > capacity) throw new PolicyCapacityError(capacity, keys.size, r.name);
        }
}

function keyOf(e: { localId: number; remoteId: number; direction: number } & PortMatch): string {
  return `${e.localId}/${e.remoteId}/${e.direction}/${e.proto}/${e.port}/${e.portBits}`;
}

/**
 * One entry per key, deny over allow (then the lowest rule id, so the result does not depend on
 * order); then every allow that lies inside a deny of the same (local, remote, direction) becomes
 * that deny (the nearest one), so longest-prefix matching can never hide a deny.
 */
export function resolveDenyWins(raw: readonly PolicyEntry[]): PolicyEntry[] {
  const byKey = new Map<string, PolicyEntry>();
  for (const e of raw) {
    const k = keyOf(e);
    const had = byKey.get(k);
    if (!had || e.action > had.action || (e.action === had.action && e.ruleId < had.ruleId)) byKey.set(k, e);
  }
  const out: PolicyEntry[] = [];
  for (const e of byKey.values()) {
    if (e.action === POLICY_ALLOW) {
      const deny = coveringDeny(e, byKey);
      if (deny) {
        out.push({ ...e, action: POLICY_DENY, ruleId: deny.ruleId });
        continue;
      }
    }
    out.push(e);
  }
  return out.sort((a, b) => a.localId - b.localId || a.remoteId - b.remoteId || a.direction - b.direction || a.proto - b.proto || a.port - b.port || a.portBits - b.portBits);
}

/** The nearest wider deny above an entry in the trie (same local, remote, direction), if any. */
function coveringDeny(e: PolicyEntry, byKey: Map<string, PolicyEntry>): PolicyEntry | undefined {
  const base = { localId: e.localId, remoteId: e.remoteId, direction: e.direction };
  if (e.proto !== 0) {
    for (let bits = e.portBits - 1; bits >= 0; bits--) {
      const port = bits === 0 ? 0 : e.port & ((0xffff << (16 - bits)) & 0xffff);
      const above = byKey.get(keyOf({ ...base, proto: e.proto, port, portBits: bits }));
      if (above?.action === POLICY_DENY) return above;
    }
    const anyProto = byKey.get(keyOf({ ...base, proto: 0, port: 0, portBits: 0 }));
    if (anyProto?.action === POLICY_DENY) return anyProto;
  }
  return undefined;
}
