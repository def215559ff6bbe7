// NetworkPolicy (networking.k8s.io/v1) → rules on the pods its podSelector picks in its namespace.
// policyTypes default as the API server defaults them; a peer is pods (podSelector and/or
// namespaceSelector) or an ipBlock, which also covers pods whose addresses are in it.
import type { InputObject, Path } from '../manifests.js';
import { isProblem, matches, parseSelector } from '../selector.js';
import { NetworkPolicyShape, shapeProblems } from '../shapes.js';
import { ALLOW_LEFT, arr, checkKeys, lower, nameOf, nsOf, obj, parseCidrField, parsePort, str, type Sink } from './common.js';
import type { Parsed, Peer, PolicyFacts, Port, Rule } from './rules.js';

export function networkPolicyFacts(o: InputObject, sink: Sink): PolicyFacts | null {
  const { findings } = sink;
  const ns = nsOf(o);
  const name = nameOf(o);
  const spec = obj(o.obj.spec);
  const WHOLE = 'this NetworkPolicy is left out: it is not enforced at all';
  const before = findings.length;
  for (const p of shapeProblems(NetworkPolicyShape, o.obj)) findings.add(o.origin, p.path, p.why, WHOLE);
  if (findings.length > before) return null;
  checkKeys(sink, o, o.obj, [], ['apiVersion', 'kind', 'metadata', 'spec', 'status'], 'NetworkPolicy', WHOLE);
  checkKeys(sink, o, spec, ['spec'], ['podSelector', 'policyTypes', 'ingress', 'egress'], 'NetworkPolicy spec', WHOLE);
  const subjectSel = parseSelector(spec.podSelector ?? {}, false);
  if (isProblem(subjectSel)) findings.add(o.origin, ['spec', 'podSelector', ...subjectSel.path], subjectSel.why, WHOLE);
  let types: string[];
  // the API server's defaulting: policyTypes absent, null or empty is Ingress, plus Egress when egress has rules
  if (arr(spec.policyTypes).length > 0) {
    types = arr(spec.policyTypes).map((t) => String(t));
    types.forEach((t, i) => {
      if (t !== 'Ingress' && t !== 'Egress') findings.add(o.origin, ['spec', 'policyTypes', i], 'expected Ingress or Egress', WHOLE);
    });
  } else types = ['Ingress', ...(arr(spec.egress).length > 0 ? ['Egress'] : [])];
  if (findings.length > before || isProblem(subjectSel)) return null;

  const parsed: Parsed = {};
  for (const [dir, type, peerKey] of [['ingress', 'Ingress', 'from'], ['egress', 'Egress', 'to']] as const) {
    if (!types.includes(type)) continue;
    const rules: Rule[] = [];
    arr(spec[dir]).forEach((raw, i) => {
      const at: Path = ['spec', dir, i];
      const rule = obj(raw);
      const mark = findings.length;
      checkKeys(sink, o, rule, at, [peerKey, 'ports'], `NetworkPolicy ${dir} rule`, ALLOW_LEFT);
      // absent, null and [] alike: every peer (the API: "if this field is empty or missing, this rule matches all")
      const peers = arr(rule[peerKey]).length > 0 ? arr(rule[peerKey]).map((p, j) => peerOf(sink, o, obj(p), [...at, peerKey, j], ns)) : undefined;
      const ports = npPorts(sink, o, rule.ports, at);
      if (findings.length > mark) return;
      rules.push({ action: 'allow', ...(peers && { peers: peers.filter((p): p is Peer => p !== null) }), ...(ports && { ports }), label: `${dir}[${i}]` });
    });
    parsed[dir] = rules;
  }
  return { base: `np.${ns}.${name}`, display: `NetworkPolicy ${ns}/${name}`, subject: (g) => g.ns === ns && matches(subjectSel, g.labels), parsed };
}

function peerOf(sink: Sink, o: InputObject, peer: Record<string, unknown>, pat: Path, ns: string): Peer | null {
  const { findings } = sink;
  checkKeys(sink, o, peer, pat, ['podSelector', 'namespaceSelector', 'ipBlock'], 'NetworkPolicy peer', ALLOW_LEFT);
  if (peer.ipBlock !== undefined) {
    if (peer.podSelector !== undefined || peer.namespaceSelector !== undefined) findings.add(o.origin, pat, 'ipBlock cannot be combined with podSelector or namespaceSelector', ALLOW_LEFT);
    const ib = obj(peer.ipBlock);
    checkKeys(sink, o, ib, [...pat, 'ipBlock'], ['cidr', 'except'], 'ipBlock', ALLOW_LEFT);
    const outer = parseCidrField(ib.cidr);
    if ('why' in outer) {
      findings.add(o.origin, [...pat, 'ipBlock', 'cidr'], outer.why, ALLOW_LEFT);
      return null;
    }
    const except: string[] = [];
    arr(ib.except).forEach((e, k) => {
      const inner = parseCidrField(e);
      if ('why' in inner) findings.add(o.origin, [...pat, 'ipBlock', 'except', k], inner.why, ALLOW_LEFT);
      else except.push(inner.cidr);
    });
    return { cidr: outer.cidr, except, pods: true };
  }
  const podSel = parseSelector(peer.podSelector ?? {}, false);
  const nsSel = peer.namespaceSelector === undefined ? undefined : parseSelector(peer.namespaceSelector, false);
  if (isProblem(podSel)) return findings.add(o.origin, [...pat, 'podSelector', ...podSel.path], podSel.why, ALLOW_LEFT), null;
  if (nsSel && isProblem(nsSel)) return findings.add(o.origin, [...pat, 'namespaceSelector', ...nsSel.path], nsSel.why, ALLOW_LEFT), null;
  if (peer.podSelector === undefined && peer.namespaceSelector === undefined) return findings.add(o.origin, pat, 'a peer needs podSelector, namespaceSelector or ipBlock', ALLOW_LEFT), null;
  return { select: (g) => (nsSel ? matches(nsSel, g.nsLabels) : g.ns === ns) && matches(podSel, g.labels) };
}

function npPorts(sink: Sink, o: InputObject, raw: unknown, at: Path): Port[] | undefined {
  if (arr(raw).length === 0) return undefined;
  const out: Port[] = [];
  arr(raw).forEach((rp, j) => {
    const pat: Path = [...at, 'ports', j];
    const p = obj(rp);
    checkKeys(sink, o, p, pat, ['protocol', 'port', 'endPort'], 'NetworkPolicy port', ALLOW_LEFT);
    const proto = lower(str(p.protocol) ?? 'TCP');
    if (proto !== 'tcp' && proto !== 'udp' && proto !== 'sctp') return sink.findings.add(o.origin, [...pat, 'protocol'], `${p.protocol as string}: the datapath matches TCP, UDP and SCTP ports only`, ALLOW_LEFT);
    const port = parsePort(p.port);
    if (port === null) return sink.findings.add(o.origin, [...pat, 'port'], 'expected a port number 1-65535 or a port name', ALLOW_LEFT);
    if (p.endPort !== undefined) {
      if (typeof port !== 'number') return sink.findings.add(o.origin, [...pat, 'endPort'], 'endPort needs a numeric port (the start of the range)', ALLOW_LEFT);
      if (typeof p.endPort !== 'number' || !Number.isInteger(p.endPort) || p.endPort < port || p.endPort > 65535) return sink.findings.add(o.origin, [...pat, 'endPort'], `expected a port from ${port} to 65535`, ALLOW_LEFT);
    }
    out.push({ protocol: proto, ...(typeof port === 'number' && { port }), ...(typeof port === 'string' && { name: port }), ...(typeof p.endPort === 'number' && { endPort: p.endPort }) });
  });
  return out;
}
