// kube-proxy's iptables mode, written as kube-proxy writes it (pkg/proxy/iptables/proxier.go,
// v1.29-1.31), for iptables-restore: ClusterIP services only, with a cluster CIDR set (so every
// KUBE-SVC chain starts with the "! -s <cluster CIDR> -j KUBE-MARK-MASQ" rule) and no session
// affinity. What a packet to the last service goes through in the nat table:
//
//   PREROUTING -> KUBE-SERVICES: one "-d VIP -p tcp --dport P -j KUBE-SVC-X" rule per service, in
//   order (N rule evaluations for the last one) -> KUBE-SVC-X: masquerade check, then
//   "-m statistic --mode random --probability 1/(n-i)" per endpoint -> KUBE-SEP-Y: DNAT
//
// Services are written in index order, so the last-added service is last in KUBE-SERVICES: the
// worst case (kube-proxy writes them in Go map order, so on a real node a service's position is
// random and the average is half the chain).
//
// Chain names are kube-proxy's: KUBE-SVC- + the first 16 base32 characters of sha256("ns/svc:port"
// + "tcp"), KUBE-SEP- + the same of sha256("ns/svc:port" + "tcp" + "ip:port").
import { createHash } from 'node:crypto';
import { CLUSTER_CIDR, servicePortName, type BenchService } from './services.js';

const RFC4648 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/** Go's base32.StdEncoding of the bytes, first `chars` characters. */
export function base32(bytes: Uint8Array, chars: number): string {
  let out = '';
  let bits = 0;
  let value = 0;
  for (const b of bytes) {
    value = (value << 8) | b;
    bits += 8;
    while (bits >= 5 && out.length < chars) {
      out += RFC4648[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
    if (out.length >= chars) break;
    value &= (1 << bits) - 1;
  }
  return out;
}

function hash16(s: string): string {
  return base32(createHash('sha256').update(s).digest(), 16);
}

export function svcChain(s: BenchService): string {
  return `KUBE-SVC-${hash16(servicePortName(s) + s.protocol)}`;
}

export function sepChain(s: BenchService, ep: { ip: string; port: number }): string {
  return `KUBE-SEP-${hash16(servicePortName(s) + s.protocol + `${ep.ip}:${ep.port}`)}`;
}

/** 1/n as kube-proxy prints it (%0.10f) */
function probability(n: number): string {
  return (1 / n).toFixed(10);
}

const FILTER_CHAINS = ['KUBE-NODEPORTS', 'KUBE-SERVICES', 'KUBE-EXTERNAL-SERVICES', 'KUBE-FORWARD', 'KUBE-PROXY-FIREWALL'];
const NAT_CHAINS = ['KUBE-SERVICES', 'KUBE-NODEPORTS', 'KUBE-POSTROUTING', 'KUBE-MARK-MASQ'];

/**
 * The jumps from the built-in chains that kube-proxy adds once at start-up (iptables -I, not
 * restore), with the KUBE chains they need: loaded before timing starts.
 */
export function iptablesBaseRules(): string {
  const lines = ['*filter', ...FILTER_CHAINS.map((c) => `:${c} - [0:0]`)];
  const ct = (state: string) => ['-m', 'conntrack', '--ctstate', state];
  const jump = (chain: string, rule: string[], comment: string, target: string) =>
    ['-A', chain, ...rule, '-m', 'comment', '--comment', `"${comment}"`, '-j', target].join(' ');
  lines.push(
    jump('INPUT', ct('NEW'), 'kubernetes load balancer firewall', 'KUBE-PROXY-FIREWALL'),
    jump('INPUT', [], 'kubernetes health check service ports', 'KUBE-NODEPORTS'),
    jump('INPUT', ct('NEW'), 'kubernetes externally-visible service portals', 'KUBE-EXTERNAL-SERVICES'),
    jump('FORWARD', ct('NEW'), 'kubernetes load balancer firewall', 'KUBE-PROXY-FIREWALL'),
    jump('FORWARD', [], 'kubernetes forwarding rules', 'KUBE-FORWARD'),
    jump('FORWARD', ct('NEW'), 'kubernetes service portals', 'KUBE-SERVICES'),
    jump('FORWARD', ct('NEW'), 'kubernetes externally-visible service portals', 'KUBE-EXTERNAL-SERVICES'),
    jump('OUTPUT', ct('NEW'), 'kubernetes load balancer firewall', 'KUBE-PROXY-FIREWALL'),
    jump('OUTPUT', ct('NEW'), 'kubernetes service portals', 'KUBE-SERVICES'),
    'COMMIT',
    '*nat',
    ...NAT_CHAINS.map((c) => `:${c} - [0:0]`),
    jump('PREROUTING', [], 'kubernetes service portals', 'KUBE-SERVICES'),
    jump('OUTPUT', [], 'kubernetes service portals', 'KUBE-SERVICES'),
    jump('POSTROUTING', [], 'kubernetes postrouting rules', 'KUBE-POSTROUTING'),
    'COMMIT',
    '',
  );
  return lines.join('\n');
}

/** Flush both tables (iptables-restore without --noflush): what a reset between timed runs loads. */
export const IPTABLES_FLUSH = '*filter\nCOMMIT\n*nat\nCOMMIT\n';

function filterTable(): string[] {
  return [
    '*filter',
    ...FILTER_CHAINS.map((c) => `:${c} - [0:0]`),
    '-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP',
    '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT',
    '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
    'COMMIT',
  ];
}

function staticNatRules(): string[] {
  return [
    '-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN',
    '-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000',
    '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully',
    '-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000',
  ];
}

function servicesRule(s: BenchService): string {
  return `-A KUBE-SERVICES -m comment --comment "${servicePortName(s)} cluster IP" -m tcp -p tcp -d ${s.vip} --dport ${s.port} -j ${svcChain(s)}`;
}

const NODEPORTS_LAST = '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS';

/** The KUBE-SVC and KUBE-SEP chains of one service: declarations and rules. */
function serviceChains(s: BenchService): { decl: string[]; rules: string[] } {
  const svc = svcChain(s);
  const name = servicePortName(s);
  const decl = [`:${svc} - [0:0]`];
  const rules = [`-A ${svc} -m comment --comment "${name} cluster IP" -m tcp -p tcp -d ${s.vip} --dport ${s.port} ! -s ${CLUSTER_CIDR} -j KUBE-MARK-MASQ`];
  const n = s.endpoints.length;
  s.endpoints.forEach((ep, i) => {
    const stat = i < n - 1 ? ` -m statistic --mode random --probability ${probability(n - i)}` : '';
    rules.push(`-A ${svc} -m comment --comment "${name} -> ${ep.ip}:${ep.port}"${stat} -j ${sepChain(s, ep)}`);
  });
  for (const ep of s.endpoints) {
    const sep = sepChain(s, ep);
    decl.push(`:${sep} - [0:0]`);
    rules.push(`-A ${sep} -m comment --comment ${name} -s ${ep.ip} -j KUBE-MARK-MASQ`);
    rules.push(`-A ${sep} -m comment --comment ${name} -m tcp -p tcp -j DNAT --to-destination ${ep.ip}:${ep.port}`);
  }
  return { decl, rules };
}

/** Everything, as kube-proxy's full sync writes it (for `iptables-restore --noflush`). */
export function iptablesFull(services: readonly BenchService[]): string {
  const decl: string[] = NAT_CHAINS.map((c) => `:${c} - [0:0]`);
  const rules: string[] = staticNatRules();
  const svcRules: string[] = [];
  for (const s of services) {
    svcRules.push(servicesRule(s));
    const c = serviceChains(s);
    decl.push(...c.decl);
    rules.push(...c.rules);
  }
  return [...filterTable(), '*nat', ...decl, ...svcRules, NODEPORTS_LAST, ...rules, 'COMMIT', ''].join('\n');
}

/**
 * A partial sync after one service was added (kube-proxy's MinimizeIPTablesRestore, the default
 * since 1.27): the filter chains and KUBE-SERVICES are rewritten whole, of the per-service chains
 * only the new service's. `services` is the set after the change.
 */
export function iptablesAdd(services: readonly BenchService[], added: BenchService): string {
  const c = serviceChains(added);
  return [...filterTable(), '*nat', ...NAT_CHAINS.map((x) => `:${x} - [0:0]`), ...c.decl, ...services.map(servicesRule), NODEPORTS_LAST, ...staticNatRules(), ...c.rules, 'COMMIT', ''].join('\n');
}

/** A partial sync after one service was removed: KUBE-SERVICES rewritten, the stale chains flushed and deleted. */
export function iptablesRemove(services: readonly BenchService[], removed: BenchService): string {
  const c = serviceChains(removed);
  const stale = c.decl.map((d) => d.slice(1, d.indexOf(' ')));
  return [...filterTable(), '*nat', ...NAT_CHAINS.map((x) => `:${x} - [0:0]`), ...c.decl, ...services.map(servicesRule), NODEPORTS_LAST, ...staticNatRules(), ...stale.map((x) => `-X ${x}`), 'COMMIT', ''].join('\n');
}

