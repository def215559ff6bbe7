/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * ICMPv6 errors of NATed IPv6 flows (lib/icmp_nat.h for IPv6; RFC 4443, RFC 5508 section 4 as
 * applied to IPv6): destination unreachable (1), packet too big (2) and time exceeded (3) quote
 * the IPv6 header and as much of the packet that caused them as fits. The quoted flow is looked
 * up in conntrack6 (reversed: the quote travelled the other way) and translated back:
 *   - quote C -> B (a DNATed packet, the error goes back to the client): inner destination B:bp
 *     becomes the VIP V:vp, and the outer source too when the backend itself sent the error;
 *   - quote V -> C (a reverse-NATed reply, the error goes to the VIP): inner source V:vp becomes
 *     B:bp, and the outer destination V becomes B.
 * Checksums: the inner TCP/UDP checksum (inner pseudo header and port; quoted data, so a plain
 * update), the ICMPv6 checksum for every quoted word that changed (address, port, the inner
 * checksum itself), and for an outer address change the ICMPv6 pseudo header (BPF_F_PSEUDO_HDR).
 * IPv6 has no header checksum. The quote's extension headers (hop-by-hop, routing, destination
 * options, fragment, AH) are walked as parse6.h walks a packet's, up to IPV6_MAX_EXTHDRS, to the
 * TCP or UDP header behind them. A quote whose chain is longer, is cut inside it, or is a later
 * fragment (no ports) names no flow of ours: tc_lb drops a packet with a longer chain
 * (DROP_IPV6_EXTHDR_LIMIT) before it could be NATed, and tracks no fragment. Such an error, or one
 * quoting anything else, is not ours and goes on as any packet (a packet too big always passes).
 * Not handled: a quoted routing header with segments left, whose final destination (the one in the
 * TCP/UDP pseudo header) is not the quoted IPv6 destination; tc_lb NATs such packets by the IPv6
 * header's destination too.
 */
#ifndef PREP_NODE_ICMP6_NAT_H
#define PREP_NODE_ICMP6_NAT_H

#include "common.h"
#include "maps.h"
#include "parse6.h"
#include "icmp_nat.h"

/* two IPv6 addresses equal? (lib/snat6.h uses it too) */
static __always_inline bool addr6_eq(const __be32 *a, const __be32 *b)
{
	return a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3];
}

#define ICMPV6_DEST_UNREACH_T 1
#define ICMPV6_TIME_EXCEED_T 3

/* An ICMPv6 error whose quote may name a flow? */
static __always_inline bool icmp6_is_error(const struct pkt6 *p)
{
	return p->proto == IPPROTO_ICMPV6 && p->has_l4 && !p->fragment &&
	       (p->icmp_type == ICMPV6_DEST_UNREACH_T || p->icmp_type == ICMPV6_PKT_TOOBIG_T ||
		p->icmp_type == ICMPV6_TIME_EXCEED_T);
}

/* Add the 16-bit one's complement difference diff to the checksum at off (plain, no pseudo
 * header: off is quoted data or the ICMPv6 checksum for quoted data). */
static __always_inline int icmp6_csum_add(struct __sk_buff *skb, __u32 off, __s64 diff)
{
	if (diff < 0)
		return -1;
	return bpf_l3_csum_replace(skb, off, 0, (__u32)diff, 0) ? -1 : 0;
}

/* Update the inner checksum at off by diff, and the ICMPv6 checksum for its own change. A UDP
 * checksum that comes out 0 is written 0xffff (0 is not allowed over IPv6); one that was 0 stays. */
static __always_inline int icmp6_fix_inner(struct __sk_buff *skb, __u32 off, __s64 diff, bool udp,
					   __u32 icmp_csum_off)
{
	__u16 before, after;

	if (bpf_skb_load_bytes(skb, off, &before, 2))
		return -1;
	if (udp && before == 0)
		return 0; /* invalid over IPv6: left as it is, the receiver drops it */
	if (icmp6_csum_add(skb, off, diff) || bpf_skb_load_bytes(skb, off, &after, 2))
		return -1;
	if (udp && after == 0) {
		after = 0xffff;
		if (bpf_skb_store_bytes(skb, off, &after, 2, 0))
			return -1;
	}
	return bpf_l3_csum_replace(skb, icmp_csum_off, before, after, 2) ? -1 : 0;
}

/* Rewrite one quoted endpoint (old_addr:old_port at addr_off/port_off -> new_addr:new_port) and
 * the outer address at outer_off (0: none names the same host), with the inner L4 (at l4_csum_off,
 * 0: not quoted) and ICMPv6 checksums. 0 or -1. */
static __always_inline int icmp6_nat_apply(struct __sk_buff *skb, __u32 addr_off, __u32 port_off,
					   __u32 outer_off, const __be32 *old_addr,
					   const __be32 *new_addr, __be16 old_port, __be16 new_port,
					   __u32 l4_csum_off, bool udp, __u32 icmp_csum_off)
{
	__s64 diff = bpf_csum_diff((__be32 *)old_addr, 16, (__be32 *)new_addr, 16, 0);

	if (diff < 0)
		return -1;
	/* the inner address: in the inner pseudo header and in the quoted data */
	if (l4_csum_off && icmp6_fix_inner(skb, l4_csum_off, diff, udp, icmp_csum_off))
		return -1;
	if (icmp6_csum_add(skb, icmp_csum_off, diff) ||
	    bpf_skb_store_bytes(skb, addr_off, new_addr, 16, 0))
		return -1;
	if (old_port != new_port) {
		/* a UDP checksum 0 is invalid over IPv6: left alone, as icmp_nat.h leaves IPv4's none */
		if (l4_csum_off && icmp_nat_fix_csum(skb, l4_csum_off, old_port, new_port, 2, udp,
						     icmp_csum_off))
			return -1;
		if (icmp_nat_store(skb, port_off, old_port, new_port, 2, icmp_csum_off))
			return -1;
	}
	/* the outer address: the ICMPv6 pseudo header */
	if (outer_off &&
	    (bpf_l4_csum_replace(skb, icmp_csum_off, 0, (__u32)diff, BPF_F_PSEUDO_HDR) ||
	     bpf_skb_store_bytes(skb, outer_off, new_addr, 16, 0)))
		return -1;
	return 0;
}

/*
 * Translate the ICMPv6 error p back if its quote names a NATed flow. Returns 0 (translated: pass
 * it), ICMP_NAT_NOT_OURS, or DROP_NAT_FAILED. *svc_id is the flow's service; *fib is true when the
 * flow's packets are forwarded by FIB lookup (CT_F_FIB), and so must the error be.
 * A SNATed flow (CT_F_SNAT) was rewritten at both ends, so both quoted endpoints are put back, as
 * icmp_err_nat does for IPv4: quote N:sp -> B:bp becomes C:cp -> V:vp (outer destination N -> C),
 * quote V:vp -> C:cp becomes B:bp -> N:sp (outer source C -> N when the client sent it).
 */
static __always_inline int icmp6_err_nat(struct __sk_buff *skb, const struct pkt6 *p, __u32 *svc_id,
					 bool *fib)
{
	__u32 icmp_csum_off = p->l4_off + offsetof(struct icmp_hdr8, checksum);
	__u32 in_off = p->l4_off + sizeof(struct icmp_hdr8), in_l4 = in_off + IPV6_HDR_LEN;
	__u32 l4_csum_off = 0, outer_off = 0;
	struct ct6_key key = {};
	struct ct6_entry *ct;
	struct ip6_hdr40 in;
	__be16 ports[2];
	bool rev, udp;
	__u8 nh;
	int i;

	if (bpf_skb_load_bytes(skb, in_off, &in, sizeof(in)) || (in.vtc >> 4) != 6)
		return ICMP_NAT_NOT_OURS;
	nh = in.nexthdr;
#pragma unroll
	for (i = 0; i < IPV6_MAX_EXTHDRS; i++) {
		struct {
			__u8 nexthdr;
			__u8 hdrlen;
			__be16 frag_off;
		} eh;

		if (!ipv6_exthdr(nh))
			break;
		if (bpf_skb_load_bytes(skb, in_l4, &eh, sizeof(eh)))
			return ICMP_NAT_NOT_OURS; /* the quote ends inside the chain */
		if (nh == NEXTHDR_FRAGMENT) {
			if (bpf_ntohs(eh.frag_off) & 0xfff8)
				return ICMP_NAT_NOT_OURS; /* a later fragment: no ports */
			in_l4 += 8;
		} else if (nh == NEXTHDR_AUTH) {
			in_l4 += ((__u32)eh.hdrlen + 2) * 4;
		} else {
			in_l4 += ((__u32)eh.hdrlen + 1) * 8;
		}
		nh = eh.nexthdr;
	}
	if (nh != IPPROTO_TCP && nh != IPPROTO_UDP)
		return ICMP_NAT_NOT_OURS; /* also a chain longer than tc_lb lets through */
	if (bpf_skb_load_bytes(skb, in_l4, ports, sizeof(ports)))
		return ICMP_NAT_NOT_OURS;

	__builtin_memcpy(key.saddr, in.daddr, sizeof(key.saddr));
	__builtin_memcpy(key.daddr, in.saddr, sizeof(key.daddr));
	key.sport = ports[1];
	key.dport = ports[0];
	key.proto = nh;
	ct = bpf_map_lookup_elem(&conntrack6, &key);
	if (!ct || !(ct->flags & (CT_F_DNAT | CT_F_REVNAT)))
		return ICMP_NAT_NOT_OURS;
	*svc_id = ct->svc_id;
	*fib = ct->flags & CT_F_FIB;

	udp = nh == IPPROTO_UDP;
	if (udp)
		l4_csum_off = in_l4 + offsetof(struct udphdr, check);
	else if (skb->len >= in_l4 + sizeof(struct tcphdr))
		l4_csum_off = in_l4 + offsetof(struct tcphdr, check);

	/* CT_F_REVNAT: the key is the backend's reply, the quote a DNATed packet C -> B: its
	 * destination B:bp becomes V:vp, and the outer source too when the backend itself sent the
	 * error; else the quote is a reverse-NATed reply V -> C: its source V:vp becomes B:bp, and
	 * the outer destination V becomes B */
	rev = ct->flags & CT_F_REVNAT;
	if (rev && addr6_eq(p->saddr, in.daddr))
		outer_off = L3_OFF + offsetof(struct ip6_hdr40, saddr);
	else if (!rev && addr6_eq(p->daddr, in.saddr))
		outer_off = L3_OFF + offsetof(struct ip6_hdr40, daddr);
	if (icmp6_nat_apply(skb, in_off + (rev ? offsetof(struct ip6_hdr40, daddr) : offsetof(struct ip6_hdr40, saddr)),
			    in_l4 + (rev ? 2 : 0), outer_off, rev ? in.daddr : in.saddr, ct->nat_addr,
			    rev ? ports[1] : ports[0], ct->nat_port, l4_csum_off, udp, icmp_csum_off))
		return DROP_NAT_FAILED;
	if (!(ct->flags & CT_F_SNAT))
		return 0;
	/* CT_F_SNAT: the other end of the quote is the node's SNAT address and port (rev) or the
	 * client (!rev), and the outer address on that side with it */
	outer_off = 0;
	if (rev && addr6_eq(p->daddr, in.saddr))
		outer_off = L3_OFF + offsetof(struct ip6_hdr40, daddr);
	else if (!rev && addr6_eq(p->saddr, in.daddr))
		outer_off = L3_OFF + offsetof(struct ip6_hdr40, saddr);
	if (icmp6_nat_apply(skb, in_off + (rev ? offsetof(struct ip6_hdr40, saddr) : offsetof(struct ip6_hdr40, daddr)),
			    in_l4 + (rev ? 0 : 2), outer_off, rev ? in.saddr : in.daddr, ct->snat_addr,
			    rev ? ports[0] : ports[1], ct->snat_port, l4_csum_off, udp, icmp_csum_off))
		return DROP_NAT_FAILED;
	return 0;
}

#endif /* PREP_NODE_ICMP6_NAT_H */
