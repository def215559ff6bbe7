// The desired state of the datapath as one zod schema (which also gives the TypeScript type): local
// endpoints with labels, services with backends, L3/L4 policies. Unknown keys are rejected; fields
// that policy languages have but this datapath cannot enforce (L7, FQDN, namespaces, named ports)
// are refused by name with the reason, so nothing is silently ignored.
// Endpoints and policy CIDRs take IPv6: an endpoint's `ip` is IPv4 or IPv6, and a dual-stack one
// adds its IPv6 address as `ip6` (Pod status.podIPs), so policy holds on both families. A service's
// `vip` is IPv4 or IPv6 and its backends are of the same family (a dual-stack Kubernetes Service is
// two services here, one per family, as kube-proxy and cilium keep them).
import { z } from 'zod';
import { LB_MAGLEV_M } from './consts.js';
import { cidrContainsAny, formatCidrAny, formatIpv4, parseCidrAny, parseIpv4, parseIpv6 } from './ip.js';

/** A node address: IPv4 or IPv6, not IPv4-mapped (that node's IPv4 address is written as IPv4). */
const nodeAddress = z.string().superRefine((s, ctx) => {
  if (parseIpv4(s) !== null) return;
  if (parseIpv6(s) === null) ctx.addIssue({ code: 'custom', message: `expected an IPv4 or IPv6 address such as 10.0.0.1 or fd00::1, got "${s}"` });
  else if (mappedIpv4(s) !== null) ctx.addIssue({ code: 'custom', message: `${s} is an IPv4-mapped IPv6 address: write the IPv4 address ${mappedIpv4(s)!}` });
});

const ipv6 = z.string().superRefine((s, ctx) => {
  if (parseIpv6(s) === null) ctx.addIssue({ code: 'custom', message: `expected an IPv6 address such as fd00::1, got "${s}"` });
});

/** An endpoint, service or backend address: IPv4 or IPv6. */
const anyIp = z.string().superRefine((s, ctx) => {
  if (parseIpv4(s) === null && parseIpv6(s) === null) ctx.addIssue({ code: 'custom', message: `expected an IPv4 or IPv6 address such as 10.0.0.1 or fd00::1, got "${s}"` });
});

const cidr = z.string().superRefine((s, ctx) => {
  const c = parseCidrAny(s);
  if (!c) ctx.addIssue({ code: 'custom', message: `expected an IPv4 or IPv6 prefix such as 10.0.0.0/8 or fd00::/8, got "${s}"` });
  else if (c.hostBits) ctx.addIssue({ code: 'custom', message: `"${s}" has bits set past the prefix length: write ${formatCidrAny(c)}` });
});

/** A field the datapath cannot enforce: present at all = refused, with why. */
function refused(why: string) {
  return z.never({ error: `the datapath cannot enforce this: ${why}` }).optional();
}

const PORT = 'expected a port number 1-65535';
const port = z.number({ error: PORT }).int(PORT).min(1, PORT).max(65535, PORT);
const name = z.string().regex(/^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/, 'expected lowercase letters, digits, dots and dashes (a DNS label)');
const labelKey = z.string().regex(/^([a-z0-9]([a-z0-9.-]*[a-z0-9])?\/)?[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?$/, 'expected a label key such as app or example.com/tier');
const labels = z.record(labelKey, z.string({ error: 'expected a string label value (quote numbers and booleans)' }));

const endpoint = z
  .strictObject({
    /** The node the endpoint runs on. Another node's: its addresses go into the ipcache with its
     * identity (policy by a remote pod's labels), not into the local endpoints map. */
    nodeName: z.lazy(() => nodeName).optional(),
    name,
    /** The endpoint's address: IPv4 or IPv6 (single-stack IPv6). */
    ip: anyIp,
    /** A dual-stack endpoint's IPv6 address (ip is then its IPv4 one). */
    ip6: ipv6.optional(),
    labels: labels.default({}),
  })
  .superRefine((e, ctx) => {
    if (e.ip6 !== undefined && parseIpv4(e.ip) === null) ctx.addIssue({ code: 'custom', path: ['ip6'], message: 'ip6 is the second address of a dual-stack endpoint: ip must then be its IPv4 address' });
  });

const nodeName = z.string().min(1).max(253).regex(/^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/, 'expected a node name (lowercase letters, digits, dots and dashes)');

const backend = z.strictObject({
  /** IPv4 or IPv6, the family of the service's vip. */
  ip: anyIp,
  port,
  /** Share of the traffic relative to the service's other backends (slots in the table). */
  weight: z.number().int().min(1).max(1000).default(1),
  /** The node the backend runs on (EndpointSlice endpoints[].nodeName). Absent, or node.name: local. */
  nodeName: nodeName.optional(),
});

const TRAFFIC_POLICY = 'expected Cluster or Local';
const trafficPolicy = z.enum(['Cluster', 'Local'], { error: TRAFFIC_POLICY });

/** This node: which backends are local (name) and the address SNATed flows leave with. */
const node = z.strictObject({
  /** Backends whose nodeName is this are local; others are remote (SNATed from external addresses). */
  name: nodeName.optional(),
  /** The node's addresses, IPv4 and IPv6; the first of each family is the source of that family's
   * SNATed flows (remote backends, hairpin): node_cfg (IPv4) and node_cfg6 (IPv6). */
  addresses: z.array(nodeAddress).min(1).max(16).optional(),
});

const service = z.strictObject({
  name,
  /** IPv4 (services) or IPv6 (services6); every backend is of the same family. */
  vip: anyIp,
  port,
  protocol: z.enum(['tcp', 'udp', 'sctp'], { error: 'expected tcp, udp or sctp (the load balancer handles these only)' }),
  backends: z.array(backend).max(65535).default([]),
  algorithm: z.enum(['random', 'maglev']).default('random'),
  sessionAffinity: z.strictObject({ timeoutSeconds: z.number().int().min(1).max(86400).default(10800) }).optional(),
  /** An external address (NodePort, load balancer IP, externalIP): remote backends are SNATed to the node's address. */
  external: z.boolean().optional(),
  /** external: Local = this node's backends only, the client address kept; none = dropped (NO_LOCAL_BACKEND). */
  externalTrafficPolicy: trafficPolicy.optional(),
  /** not external (a ClusterIP): Local = this node's backends only; none = dropped (NO_LOCAL_BACKEND). */
  internalTrafficPolicy: trafficPolicy.optional(),
});

const protocol = z.enum(['tcp', 'udp', 'sctp', 'icmp'], { error: 'expected tcp, udp, sctp or icmp (the datapath parses only these)' });

const policyPort = z
  .strictObject({
    /** TCP/UDP destination port; ICMP: the message type (0-255). Absent: any port of the protocol. */
    port: z.union([z.number().int(), z.string()]).optional(),
    endPort: z.number().int().optional(),
    protocol: protocol.default('tcp'),
  })
  .superRefine((p, ctx) => {
    if (typeof p.port === 'string') {
      ctx.addIssue({ code: 'custom', path: ['port'], message: `the datapath cannot enforce this: named port "${p.port}" needs the endpoint's container ports; use the number` });
      return;
    }
    const [lo, hi] = p.protocol === 'icmp' ? [0, 255] : [1, 65535];
    const what = p.protocol === 'icmp' ? 'an ICMP type' : 'a port';
    for (const key of ['port', 'endPort'] as const) {
      const v = key === 'port' ? p.port : p.endPort;
      if (v !== undefined && (v < lo || v > hi)) ctx.addIssue({ code: 'custom', path: [key], message: `expected ${what} ${lo}-${hi}, got ${v}` });
    }
    if (p.endPort !== undefined && p.port === undefined) ctx.addIssue({ code: 'custom', path: ['endPort'], message: 'endPort needs port (the start of the range)' });
    if (p.endPort !== undefined && p.port !== undefined && p.endPort < p.port) ctx.addIssue({ code: 'custom', path: ['endPort'], message: `endPort ${p.endPort} is below port ${p.port}` });
  });

const peer = z
  .strictObject({
    /** Local endpoints whose labels include all of these (matchLabels; {} = every endpoint). */
    selector: labels.optional(),
    cidr: cidr.optional(),
    /** Prefixes inside cidr that the rule does not cover. */
    except: z.array(cidr).optional(),
    namespaceSelector: refused('namespaces are not identities here: put the namespace in the endpoints\' labels and select it'),
    matchExpressions: refused('selectors match labels by equality only: use selector with key: value pairs'),
    fqdn: refused('DNS names need a DNS proxy; the datapath matches addresses: use cidr'),
    toFQDNs: refused('DNS names need a DNS proxy; the datapath matches addresses: use cidr'),
    entities: refused('entities are not modelled: use cidr 0.0.0.0/0 for the world'),
  })
  .superRefine((p, ctx) => {
    if ((p.selector === undefined) === (p.cidr === undefined)) ctx.addIssue({ code: 'custom', message: 'expected exactly one of selector or cidr' });
    if (p.except && p.cidr === undefined) ctx.addIssue({ code: 'custom', path: ['except'], message: 'except needs cidr' });
  });

const ruleFields = {
  action: z.enum(['allow', 'deny']).default('allow'),
  /** Absent: any protocol and port. */
  ports: z.array(policyPort).min(1).optional(),
  http: refused('L7 (HTTP) rules need a proxy; the datapath enforces L3/L4 only'),
  rules: refused('L7 rules need a proxy; the datapath enforces L3/L4 only'),
  icmps: refused('write ICMP as ports: [{protocol: icmp, port: <type>}]'),
};
/** Absent from/to: any peer. */
const ingressRule = z.strictObject({ ...ruleFields, from: z.array(peer).min(1).optional() });
const egressRule = z.strictObject({ ...ruleFields, to: z.array(peer).min(1).optional() });

const policy = z.strictObject({
  name,
  /** Local endpoints the policy applies to (matchLabels; {} = every endpoint). */
  selector: labels,
  /** Present (even empty): selected endpoints become default-deny for ingress; rules allow or deny. */
  ingress: z.array(ingressRule).optional(),
  egress: z.array(egressRule).optional(),
  ingressDeny: refused('write deny rules as ingress rules with action: deny'),
  egressDeny: refused('write deny rules as egress rules with action: deny'),
});

/**
 * Backend slots (one backends/backends6 entry each) one state may hold over all its services: 2^21,
 * IPv4's default backends capacity. The compiler holds every entry in memory as hex strings with a
 * note, then again as apply lines: about 1.1 KB per entry (1M IPv6 services of one backend, 2M
 * entries, took 2.2 GB of heap), so 1M services of each family in one state ran out of V8's default
 * 4 GB heap and aborted (exit 134). Above this the state is refused with one line instead.
 */
export const MAX_STATE_SLOTS = 2 ** 21;

export const DatapathStateSchema = z
  .strictObject({
    endpoints: z.array(endpoint).default([]),
    services: z.array(service).default([]),
    policies: z.array(policy).default([]),
    node: node.optional(),
  })
  .superRefine((s, ctx) => {
    const k = s.endpoints.findIndex((e) => e.nodeName !== undefined);
    if (k >= 0 && s.node?.name === undefined) ctx.addIssue({ code: 'custom', path: ['endpoints', k, 'nodeName'], message: 'an endpoint names its node but node.name is not set: add node: {name: <this node>} so local and remote endpoints can be told apart' });
    s.services.forEach((svc, i) => {
      if (svc.externalTrafficPolicy !== undefined && !svc.external) ctx.addIssue({ code: 'custom', path: ['services', i, 'externalTrafficPolicy'], message: 'externalTrafficPolicy applies to external addresses: set external: true (NodePort, load balancer IP, externalIP) or use internalTrafficPolicy' });
      if (svc.internalTrafficPolicy !== undefined && svc.external) ctx.addIssue({ code: 'custom', path: ['services', i, 'internalTrafficPolicy'], message: 'internalTrafficPolicy applies to cluster IPs: this service is external: true, use externalTrafficPolicy' });
      const j = svc.backends.findIndex((b) => b.nodeName !== undefined);
      const remote = svc.backends.findIndex((b) => b.nodeName !== undefined && b.nodeName !== s.node?.name);
      // SNAT is per family: an IPv6 external address needs an IPv6 node address
      const v6vip = parseIpv4(svc.vip) === null;
      if (svc.external && svc.externalTrafficPolicy !== 'Local' && remote >= 0 && s.node?.name !== undefined && !(s.node.addresses ?? []).some((a) => (parseIpv4(a) === null) === v6vip))
        ctx.addIssue({ code: 'custom', path: ['services', i, 'backends', remote, 'nodeName'], message: s.node.addresses === undefined ? 'flows from this external address to a backend on another node are SNATed to the node\'s address, and node.addresses is not set: add it (the node\'s InternalIP)' : `flows from this external address to a backend on another node are SNATed to the node's ${v6vip ? 'IPv6' : 'IPv4'} address, and node.addresses has none: add the node's ${v6vip ? 'IPv6' : 'IPv4'} InternalIP` });
      if (j >= 0 && s.node?.name === undefined) ctx.addIssue({ code: 'custom', path: ['services', i, 'backends', j, 'nodeName'], message: 'a backend names its node but node.name is not set: add node: {name: <this node>} so local and remote backends can be told apart' });
    });
    unique(ctx, s.endpoints, 'endpoints', (e) => e.name, 'name', 'endpoint name');
    // every address once, whichever field holds it (canonical text: fd00::1 and fd00:0::1 are one)
    const addrs = s.endpoints.flatMap((e, i) => [{ i, field: 'ip', key: canonicalIp(e.ip) }, ...(e.ip6 === undefined ? [] : [{ i, field: 'ip6', key: canonicalIp(e.ip6) }])]);
    const seenAddr = new Map<string, number>();
    for (const a of addrs) {
      const first = seenAddr.get(a.key);
      if (first === undefined) seenAddr.set(a.key, a.i);
      else ctx.addIssue({ code: 'custom', path: ['endpoints', a.i, a.field], message: `duplicate endpoint address ${a.key} (also at endpoints.${first})` });
    }
    unique(ctx, s.services, 'services', (v) => v.name, 'name', 'service name');
    unique(ctx, s.services, 'services', serviceKey, 'port', 'VIP:port/protocol');
    unique(ctx, s.policies, 'policies', (p) => p.name, 'name', 'policy name');
    s.services.forEach((svc, i) => {
      const v6 = parseIpv4(svc.vip) === null;
      const mapped = mappedIpv4(svc.vip);
      if (mapped !== null) ctx.addIssue({ code: 'custom', path: ['services', i, 'vip'], message: `${svc.vip} is an IPv4-mapped IPv6 address: write the IPv4 address ${mapped} (dual-stack sockets reach IPv4 services through ::ffff: on their own)` });
      svc.backends.forEach((b, j) => {
        const m = mappedIpv4(b.ip);
        if (m !== null) ctx.addIssue({ code: 'custom', path: ['services', i, 'backends', j, 'ip'], message: `${b.ip} is an IPv4-mapped IPv6 address: write the IPv4 address ${m}` });
        if ((parseIpv4(b.ip) === null) !== v6)
          ctx.addIssue({ code: 'custom', path: ['services', i, 'backends', j, 'ip'], message: `backend ${b.ip} is ${v6 ? 'IPv4' : 'IPv6'} and the service's vip ${svc.vip} is ${v6 ? 'IPv6' : 'IPv4'}: a service's backends are of its vip's family (a dual-stack Service is one service per family)` });
      });
      unique(ctx, svc.backends, `services.${i}.backends`, (b) => `${hostPort(b.ip, b.port)}`, 'port', 'backend address:port', ['services', i, 'backends']);
      const slots = svc.backends.reduce((n, b) => n + b.weight, 0);
      if (slots > 65535) ctx.addIssue({ code: 'custom', path: ['services', i, 'backends'], message: `the weights add up to ${slots} slots; the datapath takes at most 65535 per service (maglev slots are 16-bit)` });
      svc.backends.forEach((b, j) => {
        if (svc.protocol === 'sctp' && b.port !== svc.port) ctx.addIssue({ code: 'custom', path: ['services', i, 'backends', j, 'port'], message: `SCTP backends must listen on the service's port ${svc.port}: the datapath translates SCTP addresses only (a port rewrite would need SCTP's CRC32c recomputed)` });
      });
      if (svc.algorithm === 'maglev' && svc.backends.length > LB_MAGLEV_M) ctx.addIssue({ code: 'custom', path: ['services', i, 'backends'], message: `${svc.backends.length} backends do not fit a Maglev table of ${LB_MAGLEV_M} entries: use algorithm: random or build the datapath with a bigger LB_MAGLEV_M` });
    });
    const slots = s.services.reduce((n, svc) => n + svc.backends.reduce((m, b) => m + b.weight, 0), 0);
    if (slots > MAX_STATE_SLOTS) ctx.addIssue({ code: 'custom', path: ['services'], message: `the services' backends add up to ${slots} slots (a map entry each; a backend takes its weight); one state holds at most ${MAX_STATE_SLOTS}: lower the weights or split the services` });
    s.policies.forEach((p, i) => {
      for (const dir of ['ingress', 'egress'] as const) {
        p[dir]?.forEach((r, j) => {
          const peers = ('from' in r ? r.from : 'to' in r ? r.to : undefined) ?? [];
          peers.forEach((peer, k) => checkExcept(ctx, peer, ['policies', i, dir, j, dir === 'ingress' ? 'from' : 'to', k]));
        });
      }
    });
  });

/** An address as one string per address: IPv6 in RFC 5952 form (fd00:0::1 and fd00::1 are one). */
export function canonicalIp(s: string): string {
  const v6 = parseIpv4(s) === null ? parseIpv6(s) : null;
  return v6 === null ? s : formatCidrAny({ family: 6, addr: v6, len: 128 }).replace(/\/128$/, '');
}

/** The IPv4 address of an IPv4-mapped IPv6 address (::ffff:a.b.c.d), else null. */
function mappedIpv4(s: string): string | null {
  const v6 = parseIpv4(s) === null ? parseIpv6(s) : null;
  return v6 !== null && v6 >> 32n === 0xffffn ? formatIpv4(Number(v6 & 0xffffffffn)) : null;
}

/** address:port, an IPv6 address in brackets: [fd00::1]:80. */
function hostPort(ip: string, port: number): string {
  const c = canonicalIp(ip);
  return c.includes(':') ? `[${c}]:${port}` : `${c}:${port}`;
}

/**
 * What identifies a service: VIP:port/protocol with the VIP in canonical text. It keys duplicates
 * here, and svc_ids (compile.ts, the agent): an IPv4 VIP's text is as written, so IPv4 ids are the
 * ones they always were.
 */
export function serviceKey(s: { vip: string; port: number; protocol: string }): string {
  return `${hostPort(s.vip, s.port)}/${s.protocol}`;
}

function checkExcept(ctx: z.RefinementCtx, peer: Peer, path: (string | number)[]): void {
  const outer = peer.cidr !== undefined ? parseCidrAny(peer.cidr) : null;
  if (!outer) return;
  peer.except?.forEach((e, n) => {
    const inner = parseCidrAny(e);
    if (!inner) return;
    if (inner.len === outer.len || !cidrContainsAny(outer, inner)) ctx.addIssue({ code: 'custom', path: [...path, 'except', n], message: `${e} is not inside ${peer.cidr} (except narrows the cidr it belongs to)` });
  });
}

function unique<T>(ctx: z.RefinementCtx, items: T[], where: string, keyOf: (t: T) => string, field: string, what: string, base: (string | number)[] = [where]): void {
  const seen = new Map<string, number>();
  items.forEach((item, i) => {
    const key = keyOf(item);
    const first = seen.get(key);
    if (first === undefined) seen.set(key, i);
    else ctx.addIssue({ code: 'custom', path: [...base, i, field], message: `duplicate ${what} ${key} (also at ${where}.${first})` });
  });
}

export type DatapathState = z.output<typeof DatapathStateSchema>;
export type Endpoint = DatapathState['endpoints'][number];
export type Service = DatapathState['services'][number];
export type Policy = DatapathState['policies'][number];
export type Peer = z.output<typeof peer>;
export type PolicyPort = z.output<typeof policyPort>;
export type IngressRule = z.output<typeof ingressRule>;
export type EgressRule = z.output<typeof egressRule>;
