/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Drop reasons: the one table shared by the BPF programs, the C loader and the TypeScript mirror
 * (src/datapath checks its copy against this file in a test). An X-macro: the includer defines
 * DROP_REASON(num, NAME, "description") and includes this file; no include guard on purpose.
 *
 * Format rules, because a test parses it line by line:
 *   - exactly one DROP_REASON(...) per line, nothing else on that line;
 *   - numbers are stable forever (they are in events and counters people graph): never renumber,
 *     only append; 0 means "not dropped" and is never a reason; the highest number stays below
 *     DROP_REASON_MAX (datapath_consts.h).
 */
DROP_REASON(1, POLICY_DENY, "denied by a deny rule")
DROP_REASON(2, POLICY_DEFAULT_DENY, "endpoint selected by a policy in this direction and no rule allows it")
DROP_REASON(3, NO_BACKEND, "service has no backends")
DROP_REASON(4, BACKEND_MISSING, "service slot points at a missing backend entry")
DROP_REASON(5, MALFORMED_IP, "IPv4 header invalid: version, header length or total length")
DROP_REASON(6, TRUNCATED_IP, "packet shorter than its IPv4 header or total length")
DROP_REASON(7, TRUNCATED_L4, "packet shorter than its TCP, UDP or ICMP header")
DROP_REASON(8, MALFORMED_L4, "TCP data offset below 5 words")
DROP_REASON(9, FRAG_NO_FIRST, "non-first IPv4 fragment whose first fragment was not seen")
DROP_REASON(10, CT_CREATE_FAILED, "conntrack entry could not be written")
DROP_REASON(11, NAT_FAILED, "rewriting addresses, ports or checksums failed")
DROP_REASON(12, MAGLEV_MISSING, "Maglev service without a lookup table")
DROP_REASON(13, MALFORMED_IPV6, "IPv6 header invalid: version not 6")
DROP_REASON(14, TRUNCATED_IPV6, "packet shorter than its IPv6 header, payload length or an extension header")
DROP_REASON(15, IPV6_EXTHDR_LIMIT, "IPv6 extension header chain longer than the datapath walks (IPV6_MAX_EXTHDRS)")
DROP_REASON(16, IPV6_FRAGMENT, "IPv6 fragment to or from a policy-selected endpoint, or a first fragment to an IPv6 service (IPv6 fragments are not tracked)")
DROP_REASON(21, NO_LOCAL_BACKEND, "externalTrafficPolicy or internalTrafficPolicy Local and no endpoint on this node")
DROP_REASON(22, SNAT_NO_ADDRESS, "flow needs SNAT (remote backend of an external address, or hairpin) and the node's address is not set (state node.addresses)")
DROP_REASON(23, SNAT_NO_PORT, "flow needs SNAT and no source port is free (no SNAT port range at install, or every port tried is taken)")
DROP_REASON(24, FIB_LOOKUP_FAILED, "a NATed packet whose source is the node's address has no route to forward it by")
DROP_REASON(30, FRAG_NEEDED, "a packet bigger than the MTU toward a remote backend (or back to a client), IPv4 with DF set or any IPv6 one: dropped and answered with ICMP fragmentation-needed or ICMPv6 packet too big, as a router")
DROP_REASON(31, FRAG_NEEDED_NO_ICMP, "a packet bigger than the MTU toward a remote backend (or back to a client) that gets no ICMP/ICMPv6 answer: IPv4 with DF clear or options, IPv6 other than TCP or UDP, or an ICMP/ICMPv6 error itself")
