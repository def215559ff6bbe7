// The drop-reason table of bpf/include/drop_reasons.h: number → name and text, for status and
// events. test/unit/datapath-drop-reasons.test.ts checks this mirror line by line against the header.

export interface DropReason {
  num: number;
  name: string;
  description: string;
}

export const DROP_REASONS: readonly DropReason[] = [
  { num: 1, name: 'POLICY_DENY', description: 'denied by a deny rule' },
  { num: 2, name: 'POLICY_DEFAULT_DENY', description: 'endpoint selected by a policy in this direction and no rule allows it' },
  { num: 3, name: 'NO_BACKEND', description: 'service has no backends' },
  { num: 4, name: 'BACKEND_MISSING', description: 'service slot points at a missing backend entry' },
  { num: 5, name: 'MALFORMED_IP', description: 'IPv4 header invalid: version, header length or total length' },
  { num: 6, name: 'TRUNCATED_IP', description: 'packet shorter than its IPv4 header or total length' },
  { num: 7, name: 'TRUNCATED_L4', description: 'packet shorter than its TCP, UDP or ICMP header' },
  { num: 8, name: 'MALFORMED_L4', description: 'TCP data offset below 5 words' },
  { num: 9, name: 'FRAG_NO_FIRST', description: 'non-first IPv4 fragment whose first fragment was not seen' },
  { num: 10, name: 'CT_CREATE_FAILED', description: 'conntrack entry could not be written' },
  { num: 11, name: 'NAT_FAILED', description: 'rewriting addresses, ports or checksums failed' },
  { num: 12, name: 'MAGLEV_MISSING', description: 'Maglev service without a lookup table' },
  { num: 13, name: 'MALFORMED_IPV6', description: 'IPv6 header invalid: version not 6' },
  { num: 14, name: 'TRUNCATED_IPV6', description: 'packet shorter than its IPv6 header, payload length or an extension header' },
  { num: 15, name: 'IPV6_EXTHDR_LIMIT', description: 'IPv6 extension header chain longer than the datapath walks (IPV6_MAX_EXTHDRS)' },
  { num: 16, name: 'IPV6_FRAGMENT', description: 'IPv6 fragment to or from a policy-selected endpoint, or a first fragment to an IPv6 service (IPv6 fragments are not tracked)' },
  { num: 21, name: 'NO_LOCAL_BACKEND', description: 'externalTrafficPolicy or internalTrafficPolicy Local and no endpoint on this node' },
  { num: 22, name: 'SNAT_NO_ADDRESS', description: "flow needs SNAT (remote backend of an external address, or hairpin) and the node's address is not set (state node.addresses)" },
  { num: 23, name: 'SNAT_NO_PORT', description: 'flow needs SNAT and no source port is free (no SNAT port range at install, or every port tried is taken)' },
  { num: 24, name: 'FIB_LOOKUP_FAILED', description: "a NATed packet whose source is the node's address has no route to forward it by" },
  { num: 30, name: 'FRAG_NEEDED', description: 'a packet bigger than the MTU toward a remote backend (or back to a client), IPv4 with DF set or any IPv6 one: dropped and answered with ICMP fragmentation-needed or ICMPv6 packet too big, as a router' },
  { num: 31, name: 'FRAG_NEEDED_NO_ICMP', description: 'a packet bigger than the MTU toward a remote backend (or back to a client) that gets no ICMP/ICMPv6 answer: IPv4 with DF clear or options, IPv6 other than TCP or UDP, or an ICMP/ICMPv6 error itself' },
];

/** The reason with this number or name, if the table has it. */
export function dropReason(key: number | string): DropReason | undefined {
  return DROP_REASONS.find((r) => (typeof key === 'number' ? r.num === key : r.name === key));
}
