// kube-proxy's nftables mode, written as kube-proxy writes it (pkg/proxy/nftables/proxier.go,
// v1.31, through knftables: one `nft -f -` transaction per sync), ClusterIP services only, cluster
// CIDR set, no affinity. What a packet to any service goes through:
//
//   nat-prerouting -> services: "ip daddr . meta l4proto . th dport vmap @service-ips" (one hash
//   lookup whatever the number of services) -> service-<hash>-ns/svc/tcp/port: masquerade check,
//   "numgen random mod n vmap { 0 : goto endpoint-..., ... }" -> endpoint-...: DNAT
//
// plus the filter chains kube-proxy installs (service-endpoints-check, cluster-ips-check, ...),
// which every new connection also passes. Chain names are kube-proxy's: "service-" + the first 8
// base32 characters of sha256(base) + "-" + base, base = "ns/svc/tcp/port"; endpoints "endpoint-"
// the same of base + "__" + ip/port.
import { createHash } from 'node:crypto';
import { base32 } from './kube-iptables.js';
import { CLUSTER_CIDR, SERVICE_CIDR, type BenchService } from './services.js';

export const NFT_TABLE = 'ip kube-proxy';
const T = NFT_TABLE;

/** kube-proxy's hashAndTruncate (chain names are at most 256 characters: ours never come close). */
function hashAndTruncate(name: string): string {
  return `${base32(createHash('sha256').update(name).digest(), 8)}-${name}`;
}

function base(s: BenchService): string {
  return `${s.namespace}/${s.name}/${s.protocol}/${s.portName}`;
}

export function serviceChain(s: BenchService): string {
  return `service-${hashAndTruncate(base(s))}`;
}

export function endpointChain(s: BenchService, ep: { ip: string; port: number }): string {
  return `endpoint-${hashAndTruncate(`${base(s)}__${ep.ip}/${ep.port}`)}`;
}

/** The table, its base chains, sets and maps (kube-proxy's "base rules"); nodeIps accept NodePorts. */
function baseRules(nodeIps: readonly string[]): string[] {
  return [
    `add table ${T} { comment "rules for kube-proxy" ; }`,
    `add chain ${T} mark-for-masquerade`,
    `add rule ${T} mark-for-masquerade mark set mark or 0x4000`,
    `add chain ${T} masquerading`,
    `add rule ${T} masquerading mark and 0x4000 == 0 return`,
    `add rule ${T} masquerading mark set mark xor 0x4000`,
    `add rule ${T} masquerading masquerade fully-random`,
    `add set ${T} cluster-ips { type ipv4_addr ; comment "Active ClusterIPs" ; }`,
    `add set ${T} nodeport-ips { type ipv4_addr ; comment "IPs that accept NodePort traffic" ; }`,
    `add map ${T} firewall-ips { type ipv4_addr . inet_proto . inet_service : verdict ; comment "destinations that are subject to LoadBalancerSourceRanges" ; }`,
    `add map ${T} no-endpoint-services { type ipv4_addr . inet_proto . inet_service : verdict ; comment "vmap to drop or reject packets to services with no endpoints" ; }`,
    `add map ${T} no-endpoint-nodeports { type inet_proto . inet_service : verdict ; comment "vmap to drop or reject packets to service nodeports with no endpoints" ; }`,
    `add map ${T} service-ips { type ipv4_addr . inet_proto . inet_service : verdict ; comment "ClusterIP, ExternalIP and LoadBalancer IP traffic" ; }`,
    `add map ${T} service-nodeports { type inet_proto . inet_service : verdict ; comment "NodePort traffic" ; }`,
    `add chain ${T} reject-chain { comment "helper for @no-endpoint-services / @no-endpoint-nodeports" ; }`,
    `add rule ${T} reject-chain reject`,
    `add chain ${T} firewall-check`,
    `add rule ${T} firewall-check ip daddr . meta l4proto . th dport vmap @firewall-ips`,
    `add chain ${T} service-endpoints-check`,
    `add rule ${T} service-endpoints-check ip daddr . meta l4proto . th dport vmap @no-endpoint-services`,
    `add chain ${T} nodeport-endpoints-check`,
    `add rule ${T} nodeport-endpoints-check ip daddr @nodeport-ips meta l4proto . th dport vmap @no-endpoint-nodeports`,
    `add chain ${T} cluster-ips-check`,
    `add rule ${T} cluster-ips-check ip daddr @cluster-ips reject comment "Reject traffic to invalid ports of ClusterIPs"`,
    `add rule ${T} cluster-ips-check ip daddr { ${SERVICE_CIDR} } drop comment "Drop traffic to unallocated ClusterIPs"`,
    `add chain ${T} services`,
    `add rule ${T} services ip daddr . meta l4proto . th dport vmap @service-ips`,
    `add rule ${T} services fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports`,
    `add chain ${T} filter-prerouting { type filter hook prerouting priority -110 ; }`,
    `add rule ${T} filter-prerouting ct state new jump firewall-check`,
    `add chain ${T} filter-forward { type filter hook forward priority -110 ; }`,
    `add rule ${T} filter-forward ct state new jump service-endpoints-check`,
    `add rule ${T} filter-forward ct state new jump cluster-ips-check`,
    `add chain ${T} filter-input { type filter hook input priority -110 ; }`,
    `add rule ${T} filter-input ct state new jump nodeport-endpoints-check`,
    `add rule ${T} filter-input ct state new jump service-endpoints-check`,
    `add chain ${T} filter-output { type filter hook output priority -110 ; }`,
    `add rule ${T} filter-output ct state new jump service-endpoints-check`,
    `add rule ${T} filter-output ct state new jump firewall-check`,
    `add chain ${T} filter-output-post-dnat { type filter hook output priority -90 ; }`,
    `add rule ${T} filter-output-post-dnat ct state new jump cluster-ips-check`,
    `add chain ${T} nat-output { type nat hook output priority -100 ; }`,
    `add rule ${T} nat-output jump services`,
    `add chain ${T} nat-postrouting { type nat hook postrouting priority 100 ; }`,
    `add rule ${T} nat-postrouting jump masquerading`,
    `add chain ${T} nat-prerouting { type nat hook prerouting priority -100 ; }`,
    `add rule ${T} nat-prerouting jump services`,
    ...(nodeIps.length > 0 ? [`add element ${T} nodeport-ips { ${nodeIps.join(', ')} }`] : []),
  ];
}

/** One service's chains, rules and map elements. */
function serviceRules(s: BenchService): string[] {
  const svc = serviceChain(s);
  const out = [
    `add chain ${T} ${svc}`,
    `add rule ${T} ${svc} ip daddr ${s.vip} tcp dport ${s.port} ip saddr != ${CLUSTER_CIDR} jump mark-for-masquerade`,
    `add rule ${T} ${svc} numgen random mod ${s.endpoints.length} vmap { ${s.endpoints.map((ep, i) => `${i} : goto ${endpointChain(s, ep)}`).join(' , ')} }`,
  ];
  // endpoint chains must exist before the vmap above refers to them: they go first
  const eps = s.endpoints.flatMap((ep) => {
    const c = endpointChain(s, ep);
    return [`add chain ${T} ${c}`, `add rule ${T} ${c} ip saddr ${ep.ip} jump mark-for-masquerade`, `add rule ${T} ${c} meta l4proto tcp dnat to ${ep.ip}:${ep.port}`];
  });
  return [...eps, ...out, `add element ${T} cluster-ips { ${s.vip} }`, `add element ${T} service-ips { ${s.vip} . tcp . ${s.port} : goto ${svc} }`];
}

/** The whole table as one transaction (a full sync into an empty table). */
export function nftFull(services: readonly BenchService[], nodeIps: readonly string[]): string {
  return [...baseRules(nodeIps), ...services.flatMap(serviceRules), ''].join('\n');
}

/** A partial sync after one service was added: its chains and elements only. */
export function nftAdd(added: BenchService): string {
  return [...serviceRules(added), ''].join('\n');
}

/** A partial sync after one service was removed: its elements, then its chains. */
export function nftRemove(removed: BenchService): string {
  const svc = serviceChain(removed);
  const eps = removed.endpoints.map((ep) => endpointChain(removed, ep));
  return [
    `delete element ${T} service-ips { ${removed.vip} . tcp . ${removed.port} }`,
    `delete element ${T} cluster-ips { ${removed.vip} }`,
    `flush chain ${T} ${svc}`,
    `delete chain ${T} ${svc}`,
    ...eps.flatMap((c) => [`flush chain ${T} ${c}`, `delete chain ${T} ${c}`]),
    '',
  ].join('\n');
}

export const NFT_DELETE_TABLE = `delete table ${T}\n`;
