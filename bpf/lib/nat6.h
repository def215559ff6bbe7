/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * IPv6 address and port rewrite (lib/nat.h for IPv6). IPv6 has no header checksum; the L4
 * checksum covers a pseudo header with both 16-byte addresses, so an address change is one
 * bpf_csum_diff over the old and new address fed to bpf_l4_csum_replace with BPF_F_PSEUDO_HDR
 * (cilium's ipv6 NAT does the same). TCP, UDP and ICMPv6 carry such a checksum. UDP's checksum
 * is mandatory over IPv6 (RFC 8200 8.1): BPF_F_MARK_MANGLED_0 makes a result of 0 go out as
 * 0xffff; an input with checksum 0 is invalid, left as it is, and the receiver drops it as it
 * would have. SCTP's CRC32c covers no pseudo header: only the address changes (ports are not
 * translated for SCTP, as IPv4).
 */
#ifndef PREP_NODE_NAT6_H
#define PREP_NODE_NAT6_H

#include "common.h"
#include "parse6.h"
#include "nat.h"

/* offset of p's checksum that covers the addresses (TCP, UDP, ICMPv6), 0 when there is none */
static __always_inline __u32 nat6_csum_off(const struct pkt6 *p)
{
	if (!p->has_l4)
		return 0;
	if (p->proto == IPPROTO_TCP)
		return p->l4_off + offsetof(struct tcphdr, check);
	if (p->proto == IPPROTO_UDP)
		return p->l4_off + offsetof(struct udphdr, check);
	if (p->proto == IPPROTO_ICMPV6)
		return p->l4_off + offsetof(struct icmp_hdr8, checksum);
	return 0;
}

/* Rewrite the source (NAT_SRC) or destination (NAT_DST) of p to addr:port. 0 or -1. */
static __always_inline int nat6_rewrite(struct __sk_buff *skb, const struct pkt6 *p, int which,
					const __be32 *addr, __be16 port)
{
	__be32 from[4], to[4];
	__be16 old_port = which == NAT_DST ? p->dport : p->sport;
	__u32 addr_off = L3_OFF + (which == NAT_DST ? offsetof(struct ip6_hdr40, daddr)
						    : offsetof(struct ip6_hdr40, saddr));
	__u32 csum_off = nat6_csum_off(p);
	__u64 l4_flags = p->proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0;

	__builtin_memcpy(from, which == NAT_DST ? p->daddr : p->saddr, sizeof(from));
	__builtin_memcpy(to, addr, sizeof(to));
	if (from[0] != to[0] || from[1] != to[1] || from[2] != to[2] || from[3] != to[3]) {
		if (csum_off) {
			__s64 diff = bpf_csum_diff(from, sizeof(from), to, sizeof(to), 0);

			if (diff < 0 ||
			    bpf_l4_csum_replace(skb, csum_off, 0, (__u32)diff, l4_flags | BPF_F_PSEUDO_HDR))
				return -1;
		}
		if (bpf_skb_store_bytes(skb, addr_off, to, sizeof(to), 0))
			return -1;
	}
	/* ports: TCP and UDP only (an ICMPv6 echo id is not translated, SCTP keeps its ports) */
	if ((p->proto == IPPROTO_TCP || p->proto == IPPROTO_UDP) && csum_off && old_port != port) {
		if (bpf_l4_csum_replace(skb, csum_off, old_port, port, l4_flags | 2))
			return -1;
		if (bpf_skb_store_bytes(skb, p->l4_off + (which == NAT_DST ? 2 : 0), &port, 2, 0))
			return -1;
	}
	return 0;
}

#endif /* PREP_NODE_NAT6_H */
