// A policy kind's contribution (NetworkPolicy, CiliumNetworkPolicy) is a set of parsed rules whose
// selectors are predicates, not yet resolved against pods; the sum resolves them against the label
// sets (groups) of the pods it holds and emits one datapath policy per selected label set. A CIDR
// peer of a NetworkPolicy (ipBlock) also covers the pods whose addresses lie in it (the API's
// semantics; Kubernetes' e2e "should allow egress access to server in CIDR block"): the sum gives
// such pods a label set of their own per ipBlock membership, so a peer adds exactly those.
import type { Origins } from '../origins.js';
import type { PodFacts } from './pod.js';

/** The label that names a label set (the value is a hash of the canonical labels and ipBlock memberships). */
export const LABELSET_LABEL = 'prep-node.io/labelset';

/** Pods with the same identity labels and the same ipBlock memberships: one identity. */
export interface Group {
  marker: string;
  ns: string;
  /** identity labels */
  labels: Record<string, string>;
  /** the namespace's labels (namespaceSelector) */
  nsLabels: Record<string, string>;
  /** what cilium selectors see: identity labels + the namespace's labels */
  ciliumView: Record<string, string>;
  /** the ipBlock peers (cidrKey) every pod of the group is inside */
  inside: ReadonlySet<string>;
  pods: PodFacts[];
}

/** A peer: label sets a predicate picks, or a CIDR (with `pods`: also the pods whose address is in it). */
export type Peer = { select: (g: Group) => boolean } | { cidr: string; except: string[]; pods: boolean };
/** A port before per-subject emission: a number (range), a name, or a whole protocol. */
export type Port = { protocol: 'tcp' | 'udp' | 'sctp' | 'icmp'; port?: number; endPort?: number; name?: string };
export interface Rule {
  action: 'allow' | 'deny';
  /** undefined: any peer */
  peers?: Peer[];
  /** undefined: any port and protocol */
  ports?: Port[];
  /** "ingress[0]" in the manifest */
  label: string;
}
export interface Parsed {
  /** undefined: the direction is not enforced by this policy */
  ingress?: Rule[];
  egress?: Rule[];
}

/** One policy object's (or one of a CNP's specs') contribution. */
export interface PolicyFacts {
  /** datapath policy names are base.N */
  base: string;
  /** "NetworkPolicy ns/name" */
  display: string;
  subject: (g: Group) => boolean;
  parsed: Parsed;
}

/** The key of an ipBlock peer, for group memberships. */
export const cidrKey = (p: { cidr: string; except: string[] }) => `${p.cidr}-${p.except.join(',')}`;

type PortOut = { port?: number; endPort?: number; protocol: 'tcp' | 'udp' | 'sctp' | 'icmp' };
type PeerOut = { selector?: Record<string, string>; cidr?: string; except?: string[] };
type RuleOut = { action: 'allow' | 'deny'; ports?: PortOut[]; from?: PeerOut[]; to?: PeerOut[] };
export type PolicyOut = { name: string; selector: Record<string, string>; ingress?: RuleOut[]; egress?: RuleOut[] };

const markerOf = (g: Group): PeerOut => ({ selector: { [LABELSET_LABEL]: g.marker } });

/** One datapath policy per label set the subject selects, with rules resolved for it. */
export function emitPolicy(f: PolicyFacts, groups: readonly Group[], origins: Origins): PolicyOut[] {
  const out: PolicyOut[] = [];
  const resolved = new Map<Peer, Group[]>();
  const groupsOf = (p: Peer): Group[] => {
    let g = resolved.get(p);
    if (!g) resolved.set(p, (g = 'select' in p ? groups.filter(p.select) : p.pods ? groups.filter((x) => x.inside.has(cidrKey(p))) : []));
    return g;
  };
  groups.filter(f.subject).forEach((g, n) => {
    // base.N: base names are unique and N has no dot, so no two policies can get the same name
    const name = `${f.base}.${n + 1}`;
    const p: PolicyOut = { name, selector: { [LABELSET_LABEL]: g.marker } };
    origins.policies.set(name, f.display);
    for (const dir of ['ingress', 'egress'] as const) {
      const rules = f.parsed[dir];
      if (!rules) continue;
      const list: RuleOut[] = [];
      for (const r of rules) {
        for (const ro of emitRule(r, dir, g, groups, groupsOf)) {
          origins.rules.set(`${name}/${dir}/${list.length}`, { policy: f.display, rule: r.label });
          list.push(ro);
        }
      }
      p[dir] = list;
    }
    out.push(p);
  });
  return out;
}

function portOut(p: Port): PortOut {
  return { protocol: p.protocol, ...(p.port !== undefined && { port: p.port }), ...(p.endPort !== undefined && { endPort: p.endPort }) };
}

/** Named ports resolved against pods: a name means each pod's container port of that name. */
function resolveNamed(names: Port[], pods: PodFacts[]): PortOut[] {
  const out = new Map<string, PortOut>();
  for (const n of names)
    for (const pod of pods)
      for (const cp of pod.ports) if (cp.name === n.name && cp.protocol === n.protocol) out.set(`${n.protocol}/${cp.port}`, { protocol: n.protocol, port: cp.port });
  return [...out.values()];
}

/** One manifest rule for one subject label set → datapath rules (more than one when named ports differ per peer). */
function emitRule(r: Rule, dir: 'ingress' | 'egress', subject: Group, groups: readonly Group[], groupsOf: (p: Peer) => Group[]): RuleOut[] {
  const key = dir === 'ingress' ? 'from' : 'to';
  const peers = r.peers?.flatMap((p): PeerOut[] => [...('select' in p ? [] : [{ cidr: p.cidr, ...(p.except.length > 0 && { except: p.except }) }]), ...groupsOf(p).map(markerOf)]);
  if (peers !== undefined && peers.length === 0) return []; // selects nobody: allows (or denies) nothing
  const mk = (p: PeerOut[] | undefined, ports: PortOut[] | undefined): RuleOut => ({ action: r.action, ...(ports && { ports }), ...(p && { [key]: p }) });
  if (r.ports === undefined) return [mk(peers, undefined)];
  const numeric = r.ports.filter((p) => p.name === undefined).map(portOut);
  const named = r.ports.filter((p) => p.name !== undefined);
  const out: RuleOut[] = [];
  if (numeric.length > 0) out.push(mk(peers, numeric));
  if (named.length === 0) return out;
  if (dir === 'ingress') {
    // the port names are the subject's: every pod of one label set is asked
    const ports = resolveNamed(named, subject.pods);
    if (ports.length > 0) out.push(mk(peers, ports));
    return out;
  }
  // egress: the names are the peers' ports; per peer label set (addresses outside pods have no named ports)
  const peerGroups = r.peers === undefined ? groups : r.peers.flatMap(groupsOf);
  for (const g of peerGroups) {
    const ports = resolveNamed(named, g.pods);
    if (ports.length > 0) out.push(mk([markerOf(g)], ports));
  }
  return out;
}
