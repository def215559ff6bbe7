/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * IPv6 parsing for tc: the fixed header, then the extension header chain walked to the L4 header
 * (hop-by-hop, routing, destination options, fragment, AH; at most IPV6_MAX_EXTHDRS of them, a
 * longer chain is refused with DROP_IPV6_EXTHDR_LIMIT), then TCP/UDP ports or the ICMPv6 type.
 * Every header is copied out with bpf_skb_load_bytes and checked against both the payload length
 * and the skb; the walk is a fixed, unrolled loop (no bpf_loop: that is 5.17+). SCTP's ports sit
 * where TCP's and UDP's do (its 12-byte common header).
 */
#ifndef PREP_NODE_PARSE6_H
#define PREP_NODE_PARSE6_H

#include "common.h"
#include "parse.h"

#ifndef IPPROTO_ICMPV6
#define IPPROTO_ICMPV6 58
#endif
#define NEXTHDR_HOP 0
#define NEXTHDR_ROUTING 43
#define NEXTHDR_FRAGMENT 44
#define NEXTHDR_AUTH 51
#define NEXTHDR_NONE 59
#define NEXTHDR_DEST 60

/* ICMPv6 types that always pass: packet too big (RFC 8201 path MTU discovery) and neighbor
 * discovery (router/neighbor solicitation and advertisement, redirect: 133-137, RFC 4861) */
#define ICMPV6_PKT_TOOBIG_T 2
#define ICMPV6_NDISC_FIRST_T 133
#define ICMPV6_NDISC_LAST_T 137
#define ICMPV6_ECHO_REQUEST_T 128
#define ICMPV6_ECHO_REPLY_T 129

#define IPV6_HDR_LEN 40

/* the fixed IPv6 header (<linux/ipv6.h> drags in more than -target bpf wants) */
struct ip6_hdr40 {
	__u8 vtc;          /* version (4 bits), traffic class high bits */
	__u8 flow[3];
	__be16 payload_len;
	__u8 nexthdr;
	__u8 hop_limit;
	__be32 saddr[4];
	__be32 daddr[4];
};

/* What the datapath needs to know about an IPv6 packet. */
struct pkt6 {
	__be32 saddr[4];
	__be32 daddr[4];
	__be16 sport;       /* TCP/UDP/SCTP ports, ICMPv6 echo id (both) */
	__be16 dport;
	__be16 policy_port; /* TCP/UDP/SCTP destination port, ICMPv6 htons(type) */
	__u16 l4_off;       /* offset of the L4 header (valid when has_l4) */
	__u8 proto;         /* the upper-layer protocol after the extension headers */
	__u8 has_l4;        /* ports/type parsed */
	__u8 fragment;      /* 0: not fragmented, 1: first fragment, 2: later fragment */
	__u8 icmp_type;
	__u8 icmp_code;
	__u8 exthdrs;       /* extension headers walked */
};

static __always_inline bool ipv6_exthdr(__u8 nh)
{
	return nh == NEXTHDR_HOP || nh == NEXTHDR_ROUTING || nh == NEXTHDR_FRAGMENT ||
	       nh == NEXTHDR_AUTH || nh == NEXTHDR_DEST;
}

/* Fill p from an skb with skb->protocol ETH_P_IPV6. Returns 0 or a DROP_* reason. */
static __always_inline int parse_ipv6(struct __sk_buff *skb, struct pkt6 *p)
{
	struct ip6_hdr40 ip6;
	__u32 end, off = IPV6_HDR_LEN;
	__u8 nh;
	int i;

	if (bpf_skb_load_bytes(skb, L3_OFF, &ip6, sizeof(ip6)))
		return DROP_TRUNCATED_IPV6;
	if ((ip6.vtc >> 4) != 6)
		return DROP_MALFORMED_IPV6;
	end = IPV6_HDR_LEN + bpf_ntohs(ip6.payload_len);
	/* payload length 0: a jumbogram or a BIG TCP GRO packet; the skb is the packet */
	if (ip6.payload_len == 0 && skb->len > L3_OFF + IPV6_HDR_LEN)
		end = skb->len - L3_OFF;
	if (skb->len < L3_OFF + end) /* longer is fine: Ethernet padding */
		return DROP_TRUNCATED_IPV6;
	__builtin_memcpy(p->saddr, ip6.saddr, sizeof(p->saddr));
	__builtin_memcpy(p->daddr, ip6.daddr, sizeof(p->daddr));
	nh = ip6.nexthdr;

#pragma unroll
	for (i = 0; i < IPV6_MAX_EXTHDRS; i++) {
		struct {
			__u8 nexthdr;
			__u8 hdrlen;
			__be16 frag_off; /* fragment header: offset (13 bits) and M flag (bit 0) */
			__be32 rest;
		} eh;
		__u32 len;

		if (!ipv6_exthdr(nh))
			break;
		if (off + 8 > end || bpf_skb_load_bytes(skb, L3_OFF + off, &eh, sizeof(eh)))
			return DROP_TRUNCATED_IPV6;
		if (nh == NEXTHDR_FRAGMENT) {
			__u16 fo = bpf_ntohs(eh.frag_off);

			len = 8;
			if (fo & 0xfff8)
				p->fragment = 2;
			else if (fo & 1)
				p->fragment = 1;
		} else if (nh == NEXTHDR_AUTH) {
			len = ((__u32)eh.hdrlen + 2) * 4;
		} else {
			len = ((__u32)eh.hdrlen + 1) * 8;
		}
		p->exthdrs++;
		nh = eh.nexthdr;
		off += len;
		if (p->fragment == 2)
			break; /* what follows is the middle of a datagram, not a header */
	}
	p->proto = nh;
	if (p->fragment == 2)
		return 0;
	if (ipv6_exthdr(nh))
		return DROP_IPV6_EXTHDR_LIMIT;
	if (off > end)
		return DROP_TRUNCATED_IPV6;
	p->l4_off = L3_OFF + off;

	p->has_l4 = 1;
	if (nh == IPPROTO_TCP) {
		struct tcphdr tcp;

		if (off + sizeof(tcp) > end || bpf_skb_load_bytes(skb, p->l4_off, &tcp, sizeof(tcp)))
			return DROP_TRUNCATED_L4;
		if (tcp.doff < 5)
			return DROP_MALFORMED_L4;
		if (off + tcp.doff * 4 > end)
			return DROP_TRUNCATED_L4;
		p->sport = tcp.source;
		p->dport = tcp.dest;
		p->policy_port = tcp.dest;
	} else if (nh == IPPROTO_UDP) {
		struct udphdr udp;

		if (off + sizeof(udp) > end || bpf_skb_load_bytes(skb, p->l4_off, &udp, sizeof(udp)))
			return DROP_TRUNCATED_L4;
		p->sport = udp.source;
		p->dport = udp.dest;
		p->policy_port = udp.dest;
	} else if (nh == IPPROTO_SCTP) {
		__be16 ports[2]; /* the common header starts with the ports, as TCP's and UDP's do */

		if (off + 12 > end || bpf_skb_load_bytes(skb, p->l4_off, ports, sizeof(ports)))
			return DROP_TRUNCATED_L4;
		p->sport = ports[0];
		p->dport = ports[1];
		p->policy_port = ports[1];
	} else if (nh == IPPROTO_ICMPV6) {
		struct icmp_hdr8 icmp;

		if (off + sizeof(icmp) > end || bpf_skb_load_bytes(skb, p->l4_off, &icmp, sizeof(icmp)))
			return DROP_TRUNCATED_L4;
		p->icmp_type = icmp.type;
		p->icmp_code = icmp.code;
		p->policy_port = bpf_htons(icmp.type);
		if (icmp.type == ICMPV6_ECHO_REQUEST_T || icmp.type == ICMPV6_ECHO_REPLY_T) {
			p->sport = icmp.id;
			p->dport = icmp.id;
		}
	} else {
		p->has_l4 = 0; /* other protocols (and NEXTHDR_NONE): addresses only, ports 0 */
	}
	return 0;
}

#endif /* PREP_NODE_PARSE6_H */
