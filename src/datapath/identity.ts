// Numeric identities. A label set gets one identity shared by every endpoint that has exactly those
// labels; a CIDR named by a policy gets one and goes into the ipcache trie. Ids come from a hash of
// the canonical string (sorted key=value pairs; the prefix) with linear probing in sorted order, so
// they are deterministic and do not move when other label sets come and go: an incremental sync then
// rewrites only what really changed. Ranges follow cilium: label sets from IDENTITY_USER_MIN below
// 2^24, CIDR identities from 2^24 (cilium's local-scope bit), reserved ids below 256.
import { IDENTITY_USER_MIN, IDENTITY_WORLD, IDENTITY_WORLD_IPV6 } from './consts.js';
import { formatCidrAny, parseCidrAny, type AnyCidr } from './ip.js';
import type { DatapathState, Peer } from './schema.js';

const LABEL_ID_SPAN = (1 << 24) - IDENTITY_USER_MIN;
/** First CIDR identity (cilium's IdentityScopeLocal). */
export const CIDR_IDENTITY_MIN = 1 << 24;
const CIDR_ID_SPAN = 1 << 24;

export interface Identities {
  /** canonical label string → identity */
  byLabels: Map<string, number>;
  /** endpoint name → identity */
  byEndpoint: Map<string, number>;
  /** prefix "a.b.c.d/len" or "fd00::/8" → identity; 0.0.0.0/0 is IDENTITY_WORLD and ::/0 IDENTITY_WORLD_IPV6, neither has an ipcache entry */
  byCidr: Map<string, number>;
}

/** A label set as one string: sorted key=value pairs joined by commas. */
export function canonicalLabels(labels: Record<string, string>): string {
  return Object.keys(labels)
    .sort()
    .map((k) => `${k}=${labels[k]}`)
    .join(',');
}

/** Whether a label set has every key: value of a selector ({} selects everything). */
export function selects(selector: Record<string, string>, labels: Record<string, string>): boolean {
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

/** FNV-1a, 32 bit: a small stable string hash (not security relevant: collisions just probe on). */
export function fnv1a32(s: string): number {
  let h = 0x811c9dc5;
  for (const b of Buffer.from(s, 'utf8')) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  return h;
}

/** Deterministic ids for a set of strings: base + hash % span, probing past taken ids in sorted order. */
export function hashedIds(keys: Iterable<string>, base: number, span: number): Map<string, number> {
  const out = new Map<string, number>();
  const taken = new Set<number>();
  for (const key of [...new Set(keys)].sort()) {
    let off = fnv1a32(key) % span;
    while (taken.has(base + off)) off = (off + 1) % span;
    taken.add(base + off);
    out.set(key, base + off);
  }
  return out;
}

/** Every CIDR a policy names (rules and their excepts), canonical form, either family. */
export function policyCidrs(state: DatapathState): AnyCidr[] {
  const seen = new Map<string, AnyCidr>();
  const add = (s: string) => {
    const c = parseCidrAny(s);
    if (c) seen.set(formatCidrAny(c), { family: c.family, addr: c.addr, len: c.len });
  };
  for (const p of state.policies) {
    const peers: Peer[] = [...(p.ingress ?? []).flatMap((r) => r.from ?? []), ...(p.egress ?? []).flatMap((r) => r.to ?? [])];
    for (const peer of peers) {
      if (peer.cidr !== undefined) add(peer.cidr);
      peer.except?.forEach(add);
    }
  }
  return [...seen.values()];
}

/** Identities of the state's label sets, endpoints and policy CIDRs. */
export function allocateIdentities(state: DatapathState): Identities {
  const byLabels = hashedIds(state.endpoints.map((e) => canonicalLabels(e.labels)), IDENTITY_USER_MIN, LABEL_ID_SPAN);
  const byEndpoint = new Map(state.endpoints.map((e) => [e.name, byLabels.get(canonicalLabels(e.labels))!]));
  const cidrs = policyCidrs(state).map(formatCidrAny);
  const byCidr = hashedIds(cidrs.filter((c) => c !== '0.0.0.0/0' && c !== '::/0'), CIDR_IDENTITY_MIN, CIDR_ID_SPAN);
  if (cidrs.includes('0.0.0.0/0')) byCidr.set('0.0.0.0/0', IDENTITY_WORLD);
  if (cidrs.includes('::/0')) byCidr.set('::/0', IDENTITY_WORLD_IPV6);
  return { byLabels, byEndpoint, byCidr };
}
