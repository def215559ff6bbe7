// `datapath observe`: the node's flow events, with names. The BPF event carries addresses, ports,
// identities, the service id and the rule id; what they mean (which pod, which labels, which Service,
// which policy and rule) is known where the desired state was made. `sync` therefore leaves a small
// index of names on the node next to the loader (NAMES_PATH), and observe reads it back; `remove`
// deletes it. Events are drops (one per dropped packet or rejected socket call) and forwarded flows
// (one per new flow, not per packet: at tc when conntrack entries are made for a NATed or
// policy-tracked flow, at connect4/sendmsg4 when a service is translated; off with
// `install --no-flow-events`). An event without "verdict" (an older loader) is a drop. IPv6 flows
// (hooks tc6, connect6, sendmsg6) carry IPv6 addresses and "family": "ipv6"; an event without
// "family" (an older loader) is IPv4's.
import { z } from 'zod';
import type { Host } from '../host/host.js';
import { printable } from '../errors.js';
import type { Compiled } from './compile.js';
import { DROP_REASONS } from './drop-reasons.js';
import { selects } from './identity.js';
import { IDENTITY_WORLD } from './consts.js';
import type { EventDoc } from './loader.js';
import { canonicalIp, type DatapathState } from './schema.js';
import type { Origins } from './k8s/sum.js';
import { LABELSET_LABEL } from './k8s/sum.js';

export const NAMES_PATH = '/var/lib/prep-node/datapath/names.json';

/** What `observe --verdict` selects. */
export const VERDICTS = ['dropped', 'forwarded', 'all'] as const;
export type VerdictFilter = (typeof VERDICTS)[number];

const Labels = z.record(z.string(), z.string());
export const NamesIndex = z.object({
  version: z.literal(1),
  synced_at: z.string(),
  source: z.string(),
  endpoints: z.record(z.string(), z.object({ name: z.string(), labels: Labels, identity: z.number(), default_deny: z.object({ ingress: z.array(z.string()), egress: z.array(z.string()) }) })),
  identities: z.record(z.string(), Labels),
  cidrs: z.record(z.string(), z.string()),
  services: z.record(z.string(), z.object({ name: z.string(), vip: z.string(), port: z.number(), protocol: z.string() })),
  rules: z.record(z.string(), z.object({ policy: z.string(), rule: z.string() })),
});
export type NamesIndex = z.output<typeof NamesIndex>;

/** Labels for people: without the label-set marker. */
function shown(labels: Record<string, string>): Record<string, string> {
  const out = { ...labels };
  delete out[LABELSET_LABEL];
  return out;
}

/** The index of names for a synced state. */
export function buildNames(state: DatapathState, compiled: Compiled, origins: Origins, source: string, now = new Date()): NamesIndex {
  const endpoints: NamesIndex['endpoints'] = {};
  const identities: NamesIndex['identities'] = {};
  for (const e of state.endpoints) {
    const identity = compiled.identities.byEndpoint.get(e.name)!;
    const dd = (dir: 'ingress' | 'egress') => [...new Set(state.policies.filter((p) => p[dir] !== undefined && selects(p.selector, e.labels)).map((p) => origins.policies.get(p.name) ?? p.name))].sort();
    const entry = { name: origins.endpoints.get(e.name) ?? e.name, labels: shown(e.labels), identity, default_deny: { ingress: dd('ingress'), egress: dd('egress') } };
    // keyed by the address as the loader prints it (IPv6 in RFC 5952 form, as inet_ntop), both families
    endpoints[canonicalIp(e.ip)] = entry;
    if (e.ip6 !== undefined) endpoints[canonicalIp(e.ip6)] = entry;
    identities[String(identity)] = shown(e.labels);
  }
  const cidrs: NamesIndex['cidrs'] = {};
  for (const [cidr, id] of compiled.identities.byCidr) cidrs[String(id)] = cidr;
  const services: NamesIndex['services'] = {};
  for (const s of state.services) services[String(compiled.serviceIds.get(s.name)!)] = { name: origins.services.get(s.name) ?? s.name, vip: s.vip, port: s.port, protocol: s.protocol };
  const rules: NamesIndex['rules'] = {};
  for (const [name, id] of compiled.rules) rules[String(id)] = origins.rules.get(name) ?? { policy: name.split('/')[0]!, rule: name.split('/').slice(1).join('[') + ']' };
  return { version: 1, synced_at: now.toISOString(), source, endpoints, identities, cidrs, services, rules };
}

export async function writeNames(host: Host, names: NamesIndex): Promise<void> {
  await host.exec('mkdir -p -m 0755 /var/lib/prep-node/datapath', { sudo: true });
  // root-only: it names every pod, label and policy, and the operator's local -f path
  await host.writeFile(NAMES_PATH, JSON.stringify(names) + '\n', { sudo: true, mode: 0o600 });
}

/** The node's index, or null when there is none (never synced, or synced by an older prep-node). */
export async function readNames(host: Host): Promise<NamesIndex | null> {
  const r = await host.run(`cat ${NAMES_PATH} 2>/dev/null`, { sudo: true });
  if (r.code !== 0 || r.stdout.trim() === '') return null;
  try {
    const parsed = NamesIndex.safeParse(JSON.parse(r.stdout));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}

export async function removeNames(host: Host): Promise<void> {
  await host.run(`rm -f ${NAMES_PATH}; rmdir /var/lib/prep-node/datapath 2>/dev/null; true`, { sudo: true });
}

/** One end of a flow. */
export interface FlowEnd {
  ip: string;
  port: number;
  /** "namespace/pod" (or the state's endpoint name) when the address is a known endpoint */
  endpoint?: string;
  labels?: Record<string, string>;
  identity?: number;
  /** "world", or the CIDR whose identity the address has */
  peer?: string;
}

export interface Flow {
  time: string;
  verdict: 'dropped' | 'forwarded';
  /** why it was dropped (drops only) */
  reason?: { code: number; name: string; description: string };
  hook: string;
  ifname?: string;
  /** the addresses' family: "ipv6" for IPv6 flows (hooks tc6, connect6, sendmsg6; not an ::ffff: flow, which is IPv4's) */
  family: 'ipv4' | 'ipv6';
  proto: string;
  direction: 'ingress' | 'egress' | null;
  source: FlowEnd;
  destination: FlowEnd;
  /** the service the packet was sent to (forwarded: destination is the backend it was sent to) */
  service?: string;
  /** the policy and rule that denied (or, forwarded, allowed) it, or for default-deny the policies that made it so */
  policy?: { policy: string; rule: string } | { default_deny: string[] };
  len: number;
}

type Ev = EventDoc & Record<string, unknown>;
const num = (v: unknown) => (typeof v === 'number' ? v : 0);
const text = (v: unknown) => (typeof v === 'string' ? v : '');

function end(ip: string, port: number, identity: number | undefined, names: NamesIndex | null): FlowEnd {
  const out: FlowEnd = { ip, port };
  const ep = names?.endpoints[ip];
  if (ep) return { ...out, endpoint: ep.name, labels: ep.labels, identity: ep.identity };
  if (identity && names) {
    if (names.identities[String(identity)]) return { ...out, identity, labels: names.identities[String(identity)]! };
    if (names.cidrs[String(identity)]) return { ...out, identity, peer: names.cidrs[String(identity)]! };
  }
  if (identity === IDENTITY_WORLD) return { ...out, identity, peer: 'world' };
  return identity ? { ...out, identity } : out;
}

/** A loader event with names put on it. */
export function decorate(raw: EventDoc, names: NamesIndex | null): Flow {
  const e = raw as Ev;
  const forwarded = e.verdict === 'forwarded';
  const reason = forwarded ? undefined : DROP_REASONS.find((r) => r.num === e.reason);
  const direction = e.direction === 'ingress' || e.direction === 'egress' ? e.direction : null;
  const local = num(e.local_identity) || undefined;
  const remote = num(e.remote_identity) || undefined;
  const srcId = direction === 'egress' ? local : direction === 'ingress' ? remote : undefined;
  const dstId = direction === 'ingress' ? local : direction === 'egress' ? remote : undefined;
  const family = e.family === 'ipv6' || (e.family === undefined && text(e.saddr).includes(':')) ? 'ipv6' : 'ipv4';
  const flow: Flow = {
    time: text(e.time),
    verdict: forwarded ? 'forwarded' : 'dropped',
    ...(!forwarded && { reason: { code: e.reason, name: reason?.name ?? (text(e.reason_name) || 'UNKNOWN'), description: reason?.description ?? '' } }),
    hook: text(e.hook),
    family,
    proto: typeof e.proto === 'number' ? String(e.proto) : text(e.proto),
    direction,
    source: end(text(e.saddr), num(e.sport), srcId, names),
    destination: end(text(e.daddr), num(e.dport), dstId, names),
    len: num(e.len),
  };
  if (e.ifname) flow.ifname = text(e.ifname);
  const svcId = num(e.svc_id);
  if (svcId) flow.service = names?.services[String(svcId)]?.name ?? `svc_id ${svcId}`;
  else if (names) {
    const vip = Object.values(names.services).find((s) => s.vip === flow.destination.ip && s.port === flow.destination.port && s.protocol === flow.proto);
    if (vip) flow.service = vip.name;
  }
  const ruleId = num(e.rule_id);
  if (ruleId) flow.policy = names?.rules[String(ruleId)] ?? { policy: `rule_id ${ruleId}`, rule: '' };
  else if (reason?.name === 'POLICY_DEFAULT_DENY' && direction) {
    const localIp = direction === 'ingress' ? flow.destination.ip : flow.source.ip;
    flow.policy = { default_deny: names?.endpoints[localIp]?.default_deny[direction] ?? [] };
  }
  return flow;
}

function endText(e: FlowEnd): string {
  const labels = Object.entries(e.labels ?? {})
    .filter(([k]) => k !== 'io.kubernetes.pod.namespace' && k !== 'io.cilium.k8s.policy.serviceaccount')
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
  const who = e.endpoint ?? e.peer ?? (e.identity ? `identity ${e.identity}` : '');
  const addr = e.ip.includes(':') ? `[${e.ip}]` : e.ip; // an IPv6 address: [addr]:port
  return `${addr}:${e.port}${who ? ` ${who}` : ''}${labels ? ` [${labels}]` : ''}`;
}

/** Whether a flow passes `--verdict`. */
export function verdictMatches(f: Flow, filter: VerdictFilter): boolean {
  return filter === 'all' || f.verdict === filter;
}

/** One line for people. */
export function formatFlow(f: Flow): string {
  const what = f.verdict === 'forwarded' ? 'FORWARDED' : `DROPPED ${f.reason?.name ?? 'UNKNOWN'}(${f.reason?.code ?? '?'})`;
  const parts = [`${f.time} ${what} ${f.proto} ${endText(f.source)} -> ${endText(f.destination)}`];
  if (f.service) parts.push(`service ${f.service}`);
  if (f.direction) parts.push(f.direction);
  if (f.policy && 'rule' in f.policy) parts.push(`${f.verdict === 'forwarded' ? 'allowed by' : 'by'} ${f.policy.policy}${f.policy.rule ? ` ${f.policy.rule}` : ''}`);
  else if (f.policy) parts.push(f.policy.default_deny.length > 0 ? `default deny of ${f.policy.default_deny.join(', ')}` : 'default deny');
  parts.push(`at ${f.hook}${f.ifname ? ` ${f.ifname}` : ''}`);
  // pod, service and policy names and labels come from manifests and the node: never raw to a terminal
  return printable(parts.join(', '));
}
