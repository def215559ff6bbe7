// CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy (cilium.io/v2) at L3/L4 → allow and deny
// rules on the endpoints each spec's endpointSelector picks. L7 rules, FQDNs, services, groups and
// node identities need parts this datapath does not have and are refused with the reason.
import type { InputObject, Path } from '../manifests.js';
import { isProblem, matches, mentions, parseSelector } from '../selector.js';
import { CiliumPolicyShape, shapeProblems } from '../shapes.js';
import { ALLOW_LEFT, arr, checkKeys, DENY_LEFT, nameOf, nsOf, obj, parseCidrField, parsePort, str, type Sink } from './common.js';
import { NAMESPACE_LABEL } from './pod.js';
import type { Parsed, Peer, PolicyFacts, Port, Rule } from './rules.js';

const CNP_RULE = ['endpointSelector', 'nodeSelector', 'ingress', 'ingressDeny', 'egress', 'egressDeny', 'description', 'labels', 'enableDefaultDeny', 'log'];
const CNP_IN = ['fromEndpoints', 'fromCIDR', 'fromCIDRSet', 'fromEntities', 'toPorts', 'icmps', 'fromRequires', 'fromGroups', 'fromNodes', 'authentication'];
const CNP_OUT = ['toEndpoints', 'toCIDR', 'toCIDRSet', 'toEntities', 'toPorts', 'icmps', 'toFQDNs', 'toServices', 'toGroups', 'toRequires', 'toNodes', 'authentication'];
const CNP_REFUSED: Record<string, string> = {
  toFQDNs: 'DNS names need a DNS proxy that learns their addresses; the datapath matches addresses: use toCIDR/toCIDRSet',
  toServices: 'toServices needs the service\'s endpoints tracked as they change; use toEndpoints with the backends\' labels, or toCIDR',
  toGroups: 'toGroups needs a cloud provider integration; use toCIDR',
  fromGroups: 'fromGroups needs a cloud provider integration; use fromCIDR',
  toRequires: 'toRequires (an extra condition on other rules) is not supported',
  fromRequires: 'fromRequires (an extra condition on other rules) is not supported',
  toNodes: 'node identities are not modelled; use toCIDR with the nodes\' addresses',
  fromNodes: 'node identities are not modelled; use fromCIDR with the nodes\' addresses',
  authentication: 'mutual authentication needs an auth agent',
};
const ICMP_TYPES: Record<string, number> = { EchoReply: 0, DestinationUnreachable: 3, Redirect: 5, EchoRequest: 8, RouterAdvertisement: 9, RouterSelection: 10, TimeExceeded: 11, ParameterProblem: 12, Timestamp: 13, TimestampReply: 14 };

/** A CNP's (or, clusterwide, a CCNP's) contribution: one PolicyFacts per spec. */
export function ciliumPolicyFacts(o: InputObject, clusterwide: boolean, sink: Sink): PolicyFacts[] {
  const { findings } = sink;
  const ns = clusterwide ? null : nsOf(o);
  const name = nameOf(o);
  const kind = clusterwide ? 'CiliumClusterwideNetworkPolicy' : 'CiliumNetworkPolicy';
  const WHOLE = `this ${kind} is left out: it is not enforced at all`;
  const mark0 = findings.length;
  for (const p of shapeProblems(CiliumPolicyShape, o.obj)) findings.add(o.origin, p.path, p.why, WHOLE);
  if (findings.length > mark0) return [];
  checkKeys(sink, o, o.obj, [], ['apiVersion', 'kind', 'metadata', 'spec', 'specs', 'status'], kind, WHOLE);
  const specs: [Record<string, unknown>, Path][] = [];
  if (o.obj.spec !== undefined) specs.push([obj(o.obj.spec), ['spec']]);
  arr(o.obj.specs).forEach((s, i) => specs.push([obj(s), ['specs', i]]));
  if (specs.length === 0) findings.add(o.origin, [], 'no spec or specs', WHOLE);
  if (findings.length > mark0) return [];
  const out: PolicyFacts[] = [];
  specs.forEach(([spec, at], si) => {
    const before = findings.length;
    checkKeys(sink, o, spec, at, CNP_RULE, `${kind} rule`, WHOLE);
    if (spec.nodeSelector !== undefined) findings.add(o.origin, [...at, 'nodeSelector'], 'host policies (nodeSelector) need a host endpoint; the datapath enforces on pod endpoints only', WHOLE);
    if (spec.endpointSelector === undefined && spec.nodeSelector === undefined) findings.add(o.origin, at, 'endpointSelector is required', WHOLE);
    const sel = parseSelector(spec.endpointSelector ?? {}, true);
    if (isProblem(sel)) findings.add(o.origin, [...at, 'endpointSelector', ...sel.path], sel.why, WHOLE);
    const dd = obj(spec.enableDefaultDeny);
    if (findings.length > before || isProblem(sel)) return;
    const parsed: Parsed = {};
    for (const dir of ['ingress', 'egress'] as const) {
      const allow = arr(spec[dir]);
      const deny = arr(spec[`${dir}Deny`]);
      const hasRules = allow.length > 0 || deny.length > 0;
      const enforce = dd[dir] === undefined ? hasRules : dd[dir] === true;
      if (hasRules && dd[dir] === false) {
        findings.add(o.origin, [...at, 'enableDefaultDeny', dir], 'rules without default deny are not supported: an endpoint a policy selects is default-deny in that direction here', WHOLE);
        return;
      }
      if (!enforce) continue;
      const rules: Rule[] = [];
      for (const [list, action, key] of [[allow, 'allow', dir], [deny, 'deny', `${dir}Deny`]] as const) {
        list.forEach((raw, i) => {
          const r = ciliumRule(sink, o, obj(raw), [...at, key, i], dir, action, ns);
          if (r) rules.push({ ...r, label: `${specs.length > 1 ? `specs[${si}].` : ''}${key}[${i}]` });
        });
      }
      parsed[dir] = rules;
    }
    out.push({
      base: `${ns === null ? 'ccnp' : `cnp.${ns}`}.${name}.s${si}`,
      display: `${kind} ${ns === null ? '' : `${ns}/`}${name}`,
      subject: (g) => (ns === null || g.ns === ns) && matches(sel, g.ciliumView),
      parsed,
    });
  });
  return out;
}

function cidrPeers(sink: Sink, o: InputObject, rule: Record<string, unknown>, at: Path, f: 'from' | 'to', LEFT: string): Peer[] {
  const { findings } = sink;
  const peers: Peer[] = [];
  // cilium: CIDR rules do not match endpoints it manages (pods' own addresses), unlike an ipBlock
  arr(rule[`${f}CIDR`]).forEach((raw, j) => {
    const c = parseCidrField(raw);
    if ('why' in c) return findings.add(o.origin, [...at, `${f}CIDR`, j], c.why, LEFT);
    peers.push({ cidr: c.cidr, except: [], pods: false });
  });
  arr(rule[`${f}CIDRSet`]).forEach((raw, j) => {
    const set = obj(raw);
    const pat: Path = [...at, `${f}CIDRSet`, j];
    checkKeys(sink, o, set, pat, ['cidr', 'except', 'cidrGroupRef'], 'CIDR set', LEFT);
    if (set.cidrGroupRef !== undefined) return findings.add(o.origin, [...pat, 'cidrGroupRef'], 'CiliumCIDRGroup references are not resolved; write the cidr', LEFT);
    const c = parseCidrField(set.cidr);
    if ('why' in c) return findings.add(o.origin, [...pat, 'cidr'], c.why, LEFT);
    const except: string[] = [];
    arr(set.except).forEach((e, k) => {
      const ce = parseCidrField(e);
      if ('why' in ce) findings.add(o.origin, [...pat, 'except', k], ce.why, LEFT);
      else except.push(ce.cidr);
    });
    peers.push({ cidr: c.cidr, except, pods: false });
  });
  return peers;
}

function ciliumRule(sink: Sink, o: InputObject, rule: Record<string, unknown>, at: Path, dir: 'ingress' | 'egress', action: 'allow' | 'deny', ns: string | null): Omit<Rule, 'label'> | null {
  const { findings } = sink;
  const LEFT = action === 'allow' ? ALLOW_LEFT : DENY_LEFT;
  const mark = findings.length;
  checkKeys(sink, o, rule, at, dir === 'ingress' ? CNP_IN : CNP_OUT, `${dir}${action === 'deny' ? 'Deny' : ''} rule`, LEFT);
  for (const k of Object.keys(rule)) if (CNP_REFUSED[k] && rule[k] !== undefined) findings.add(o.origin, [...at, k], CNP_REFUSED[k], LEFT);
  const f = dir === 'ingress' ? 'from' : 'to';
  const hasL3 = [`${f}Endpoints`, `${f}CIDR`, `${f}CIDRSet`, `${f}Entities`].some((k) => arr(rule[k]).length > 0);
  let peers: Peer[] | undefined = [];
  let any = false;
  arr(rule[`${f}Endpoints`]).forEach((raw, j) => {
    const sel = parseSelector(raw, true);
    if (isProblem(sel)) return findings.add(o.origin, [...at, `${f}Endpoints`, j, ...sel.path], sel.why, LEFT);
    // namespaced policies select peers in their own namespace unless the selector names one
    const scoped = ns !== null && !mentions(sel, NAMESPACE_LABEL);
    peers!.push({ select: (g) => (!scoped || g.ns === ns) && matches(sel, g.ciliumView) });
  });
  peers.push(...cidrPeers(sink, o, rule, at, f, LEFT));
  arr(rule[`${f}Entities`]).forEach((raw, j) => {
    if (raw === 'all') any = true;
    // cilium's world is both families' (world-ipv4, world-ipv6): each family's world is its own identity here
    else if (raw === 'world') peers!.push({ cidr: '0.0.0.0/0', except: [], pods: false }, { cidr: '::/0', except: [], pods: false });
    else if (raw === 'world-ipv4') peers!.push({ cidr: '0.0.0.0/0', except: [], pods: false });
    else if (raw === 'world-ipv6') peers!.push({ cidr: '::/0', except: [], pods: false });
    else if (raw === 'cluster') peers!.push({ select: () => true });
    else findings.add(o.origin, [...at, `${f}Entities`, j], `entity ${String(raw)} is not modelled (supported: all, world, world-ipv4, world-ipv6, cluster)`, LEFT);
  });
  if (any) peers = undefined;
  const ports = ciliumPorts(sink, o, rule, at, LEFT);
  if (findings.length > mark) return null;
  if (!hasL3 && ports === undefined) return { action, peers: [] }; // `{}`: selects the endpoint, allows nothing
  return { action, ...(hasL3 && peers !== undefined && { peers }), ...(ports && { ports }) };
}

function ciliumPorts(sink: Sink, o: InputObject, rule: Record<string, unknown>, at: Path, LEFT: string): Port[] | undefined {
  const { findings } = sink;
  const toPorts = arr(rule.toPorts);
  const icmps = arr(rule.icmps);
  if (toPorts.length === 0 && icmps.length === 0) return undefined;
  const ports: Port[] = [];
  toPorts.forEach((raw, j) => {
    const tp = obj(raw);
    const pat: Path = [...at, 'toPorts', j];
    checkKeys(sink, o, tp, pat, ['ports', 'rules', 'serverNames', 'listener', 'terminatingTLS', 'originatingTLS'], 'toPorts', LEFT);
    for (const k of Object.keys(obj(tp.rules))) {
      const why =
        k === 'http'
          ? 'L7 HTTP rules (method, path, headers) need an HTTP proxy; the datapath enforces L3/L4 only. Drop `rules:` to allow the whole port, or keep this policy on a cluster with an L7 proxy'
          : k === 'dns'
            ? 'DNS rules need a DNS proxy; the datapath enforces L3/L4 only (allow the port without rules)'
            : `L7 ${k} rules need a proxy; the datapath enforces L3/L4 only`;
      findings.add(o.origin, [...pat, 'rules', k], why, LEFT);
    }
    for (const k of ['serverNames', 'listener', 'terminatingTLS', 'originatingTLS']) if (tp[k] !== undefined) findings.add(o.origin, [...pat, k], `${k} needs a TLS-aware proxy; the datapath enforces L3/L4 only`, LEFT);
    const list = arr(tp.ports);
    if (list.length === 0) ports.push({ protocol: 'tcp' }, { protocol: 'udp' });
    list.forEach((rp, k) => {
      const pp = obj(rp);
      const ppat: Path = [...pat, 'ports', k];
      checkKeys(sink, o, pp, ppat, ['port', 'endPort', 'protocol'], 'port', LEFT);
      const proto = (str(pp.protocol) ?? 'ANY').toUpperCase();
      if (!['TCP', 'UDP', 'ANY'].includes(proto)) return findings.add(o.origin, [...ppat, 'protocol'], `${proto}: the datapath matches TCP, UDP (and ICMP through icmps) only`, LEFT);
      const port = parsePort(pp.port);
      if (port === null) return findings.add(o.origin, [...ppat, 'port'], 'expected a port number 0-65535 or a port name', LEFT);
      if (pp.endPort !== undefined) {
        if (typeof port !== 'number') return findings.add(o.origin, [...ppat, 'endPort'], 'endPort needs a numeric port', LEFT);
        if (typeof pp.endPort !== 'number' || pp.endPort < port || pp.endPort > 65535) return findings.add(o.origin, [...ppat, 'endPort'], `expected a port from ${port} to 65535`, LEFT);
      }
      for (const protocol of proto === 'ANY' ? (['tcp', 'udp'] as const) : ([proto.toLowerCase() as 'tcp' | 'udp'] as const))
        ports.push({ protocol, ...(typeof port === 'number' && { port }), ...(typeof port === 'string' && { name: port }), ...(typeof pp.endPort === 'number' && { endPort: pp.endPort }) });
    });
  });
  icmps.forEach((raw, j) => {
    arr(obj(raw).fields).forEach((fr, k) => {
      const fld = obj(fr);
      const pat: Path = [...at, 'icmps', j, 'fields', k];
      if (fld.family === 'IPv6') return findings.add(o.origin, [...pat, 'family'], "ICMPv6 types: the datapath's policy ports match ICMP (IPv4) types only, not ICMPv6", LEFT);
      if (fld.family !== undefined && fld.family !== 'IPv4') return findings.add(o.origin, [...pat, 'family'], 'expected IPv4 or IPv6', LEFT);
      const t = typeof fld.type === 'number' ? fld.type : typeof fld.type === 'string' ? (ICMP_TYPES[fld.type] ?? (/^\d+$/.test(fld.type) ? Number(fld.type) : undefined)) : undefined;
      if (t === undefined || t < 0 || t > 255) return findings.add(o.origin, [...pat, 'type'], 'expected an ICMP type 0-255 or its name (EchoRequest, ...)', LEFT);
      ports.push({ protocol: 'icmp', port: t });
    });
  });
  return ports;
}
