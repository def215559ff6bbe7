/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * ICMP errors of NATed flows (RFC 5508 section 4, what nf_nat_icmp_reply_translation does):
 * destination unreachable (fragmentation needed, port unreachable, ...) and time exceeded quote
 * the IPv4 header and at least 8 bytes of the packet that caused them. A packet the datapath
 * translated carries the backend in that quote, which the client's socket does not know, or the
 * VIP, which the backend's does not: the error is dropped by the receiver and path MTU discovery
 * through a Service never converges. Here the quoted flow is looked up in conntrack (reversed: the
 * quote travelled the other way) and translated back, inner header included:
 *   - quote C -> B (a DNATed packet, the error goes back to the client): inner destination B:bp
 *     becomes the VIP V:vp, and the outer source too when the backend itself sent the error;
 *   - quote V -> C (a reverse-NATed reply, the error goes to the VIP): inner source V:vp becomes
 *     B:bp, and the outer destination V becomes B.
 * Checksums: the inner IPv4 header's; the inner TCP/UDP checksum (UDP's always sits in the 8
 * quoted bytes, TCP's only when 20 are quoted, as nf_nat does; a UDP checksum 0 stays 0); the
 * ICMP checksum, which covers the whole quote and is updated for every 16-bit word that changed;
 * the outer IPv4 header's. No pseudo-header flag anywhere: ICMP has none, and the inner L4
 * checksum is quoted data, not this packet's.
 */
#ifndef PREP_NODE_ICMP_NAT_H
#define PREP_NODE_ICMP_NAT_H

#include "common.h"
#include "maps.h"
#include "parse.h"

#define ICMP_TIME_EXCEEDED_T 11

/* icmp_err_nat() results besides 0 (translated) and DROP_* reasons */
#define ICMP_NAT_NOT_OURS (-1) /* not an error, or its quote names no translated flow */

/* Is this an ICMP error whose quote may name a flow (destination unreachable, time exceeded)? */
static __always_inline bool icmp_is_error(const struct pkt *p)
{
	return p->proto == IPPROTO_ICMP && p->has_l4 && !p->fragment &&
	       (p->icmp_type == ICMP_DEST_UNREACH_T || p->icmp_type == ICMP_TIME_EXCEEDED_T);
}

/* Replace the 16-bit-aligned field at off (len 2 or 4) with to, fixing the checksum at csum_off
 * (an inner checksum: plain RFC 1624 update) and the ICMP checksum at icmp_csum_off. */
static __always_inline int icmp_nat_store(struct __sk_buff *skb, __u32 off, __u32 from, __u32 to,
					  __u32 len, __u32 icmp_csum_off)
{
	__u16 to16 = (__u16)to; /* a port: its two bytes as they sit in memory */

	if (bpf_l3_csum_replace(skb, icmp_csum_off, from, to, len))
		return -1;
	if (len == 2)
		return bpf_skb_store_bytes(skb, off, &to16, 2, 0) ? -1 : 0;
	return bpf_skb_store_bytes(skb, off, &to, 4, 0) ? -1 : 0;
}

/* Update the inner checksum at off for a change from -> to (size len) and the ICMP checksum for
 * the inner checksum's own change. A UDP checksum 0 (none) is left alone. */
static __always_inline int icmp_nat_fix_csum(struct __sk_buff *skb, __u32 off, __u32 from, __u32 to,
					     __u32 len, bool zero_is_none, __u32 icmp_csum_off)
{
	__u16 before, after;

	if (bpf_skb_load_bytes(skb, off, &before, 2))
		return -1;
	if (zero_is_none && before == 0)
		return 0;
	if (bpf_l3_csum_replace(skb, off, from, to, len))
		return -1;
	if (bpf_skb_load_bytes(skb, off, &after, 2))
		return -1;
	if (zero_is_none && after == 0) { /* a computed 0 is sent as 0xffff (RFC 768) */
		after = 0xffff;
		if (bpf_skb_store_bytes(skb, off, &after, 2, 0))
			return -1;
	}
	return bpf_l3_csum_replace(skb, icmp_csum_off, before, after, 2) ? -1 : 0;
}

/* Rewrite one quoted endpoint (old_addr:old_port at addr_off/port_off -> to_addr:to_port) and the
 * outer address at outer_off (0: none names the same host), with the inner IPv4, inner L4 (at
 * l4_csum_off, 0: not quoted), ICMP and outer IPv4 checksums. Scalars, not a struct: tc_lb's stack
 * stays within the 512 bytes 5.10 and 6.1 allow it and its calls together. 0 or -1. */
static __always_inline int icmp_nat_apply(struct __sk_buff *skb, __u32 addr_off, __u32 port_off,
					  __u32 outer_off, __be32 old_addr, __be32 to_addr,
					  __be16 old_port, __be16 to_port, __u32 in_off,
					  __u32 l4_csum_off, bool udp, __u32 icmp_csum_off)
{
	if (old_addr != to_addr) {
		if (l4_csum_off && icmp_nat_fix_csum(skb, l4_csum_off, old_addr, to_addr, 4, udp,
						     icmp_csum_off))
			return -1;
		if (icmp_nat_fix_csum(skb, in_off + offsetof(struct iphdr, check), old_addr, to_addr, 4,
				      false, icmp_csum_off))
			return -1;
		if (icmp_nat_store(skb, addr_off, old_addr, to_addr, 4, icmp_csum_off))
			return -1;
	}
	if (old_port != to_port) {
		if (l4_csum_off && icmp_nat_fix_csum(skb, l4_csum_off, old_port, to_port, 2, udp,
						     icmp_csum_off))
			return -1;
		if (icmp_nat_store(skb, port_off, old_port, to_port, 2, icmp_csum_off))
			return -1;
	}
	if (outer_off && old_addr != to_addr) {
		if (bpf_l3_csum_replace(skb, L3_OFF + offsetof(struct iphdr, check), old_addr, to_addr, 4))
			return -1;
		if (bpf_skb_store_bytes(skb, outer_off, &to_addr, 4, 0))
			return -1;
	}
	return 0;
}

/*
 * Translate the ICMP error p back if its quote names a NATed flow. Returns 0 (translated: pass it),
 * ICMP_NAT_NOT_OURS (go on as for any packet), or DROP_NAT_FAILED. *svc_id is the flow's service;
 * *fib is true when the flow's packets are forwarded by FIB lookup (CT_F_FIB: SNATed flows and
 * replies from an external address), and so must the error be: after translation its source may be
 * the node's own address, which the kernel's input route drops as a martian.
 *
 * A SNATed flow (CT_F_SNAT: a remote backend behind NodePort, or hairpin) was rewritten at both ends,
 * so both quoted endpoints are put back:
 *   - quote N:sp -> B:bp (a packet on its way to the remote backend; the error comes from that path,
 *     addressed to the node N): B:bp becomes the VIP V:vp and N:sp the client C:cp, the outer
 *     destination N becomes C (and the outer source B becomes V when the backend sent it);
 *   - quote V:vp -> C:cp (a reply on its way to the client, the error addressed to V): V:vp becomes
 *     B:bp and C:cp becomes N:sp, the outer destination V becomes B (the outer source C becomes N
 *     when the client sent it).
 */
static __always_inline int icmp_err_nat(struct __sk_buff *skb, const struct pkt *p, __u32 *svc_id,
					bool *fib)
{
	__u32 icmp_csum_off = p->l4_off + offsetof(struct icmp_hdr8, checksum);
	__u32 in_off = p->l4_off + sizeof(struct icmp_hdr8), in_l4, l4_csum_off = 0;
	__u32 outer_off = 0;
	struct ct_key key = {};
	struct ct_entry *ct;
	struct iphdr in;
	__be16 ports[2];
	bool rev, udp;

	if (bpf_skb_load_bytes(skb, in_off, &in, sizeof(in)) || in.version != 4 || in.ihl < 5)
		return ICMP_NAT_NOT_OURS;
	if (in.protocol != IPPROTO_TCP && in.protocol != IPPROTO_UDP)
		return ICMP_NAT_NOT_OURS;
	if (in.frag_off & bpf_htons(IP_OFFSET))
		return ICMP_NAT_NOT_OURS; /* a later fragment quoted: no ports */
	in_l4 = in_off + in.ihl * 4;
	if (bpf_skb_load_bytes(skb, in_l4, ports, sizeof(ports)))
		return ICMP_NAT_NOT_OURS;

	/* the quote went one way, its flow's entry is keyed the other way */
	key.saddr = in.daddr;
	key.daddr = in.saddr;
	key.sport = ports[1];
	key.dport = ports[0];
	key.proto = in.protocol;
	ct = bpf_map_lookup_elem(&conntrack, &key);
	if (!ct || !(ct->flags & (CT_F_DNAT | CT_F_REVNAT)))
		return ICMP_NAT_NOT_OURS;
	*svc_id = ct->svc_id;
	*fib = ct->flags & CT_F_FIB;

	udp = in.protocol == IPPROTO_UDP;
	if (udp)
		l4_csum_off = in_l4 + offsetof(struct udphdr, check);
	else if (skb->len >= in_l4 + sizeof(struct tcphdr))
		l4_csum_off = in_l4 + offsetof(struct tcphdr, check);

	/* CT_F_REVNAT: the key is the backend's reply, the quote a DNATed packet to B; the service
	 * end of the quote is its destination, else its source (a reverse-NATed reply from V) */
	rev = ct->flags & CT_F_REVNAT;
	if (rev && p->saddr == in.daddr)
		outer_off = L3_OFF + offsetof(struct iphdr, saddr);
	else if (!rev && p->daddr == in.saddr)
		outer_off = L3_OFF + offsetof(struct iphdr, daddr);
	if (icmp_nat_apply(skb, in_off + (rev ? offsetof(struct iphdr, daddr) : offsetof(struct iphdr, saddr)),
			   in_l4 + (rev ? 2 : 0), outer_off, rev ? in.daddr : in.saddr, ct->nat_addr,
			   rev ? ports[1] : ports[0], ct->nat_port, in_off, l4_csum_off, udp, icmp_csum_off))
		return DROP_NAT_FAILED;
	if (!(ct->flags & CT_F_SNAT))
		return 0;
	/* CT_F_SNAT: the other end of the quote is the node's SNAT address and port (rev) or the
	 * client (!rev), and the outer address on that side with it */
	outer_off = 0;
	if (rev && p->daddr == in.saddr)
		outer_off = L3_OFF + offsetof(struct iphdr, daddr);
	else if (!rev && p->saddr == in.daddr)
		outer_off = L3_OFF + offsetof(struct iphdr, saddr);
	if (icmp_nat_apply(skb, in_off + (rev ? offsetof(struct iphdr, saddr) : offsetof(struct iphdr, daddr)),
			   in_l4 + (rev ? 0 : 2), outer_off, rev ? in.saddr : in.daddr, ct->snat_addr,
			   rev ? ports[0] : ports[1], ct->snat_port, in_off, l4_csum_off, udp, icmp_csum_off))
		return DROP_NAT_FAILED;
	return 0;
}

#endif /* PREP_NODE_ICMP_NAT_H */
