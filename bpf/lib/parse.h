/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * IPv4 parsing for tc. Headers are copied out with bpf_skb_load_bytes (works on non-linear skbs and
 * keeps the verifier happy on 5.10); every length is checked against both the IPv4 total length and
 * the skb, and each way a packet can be wrong has its own drop reason.
 */
#ifndef PREP_NODE_PARSE_H
#define PREP_NODE_PARSE_H

#include "common.h"
#include "maps.h"

/* parse_ipv4() result for packets the datapath leaves alone (not IPv4: ARP, IPv6 -- TODO(v6)) */
#define PARSE_NOT_IPV4 (-1)

#define IP_MF 0x2000
#define IP_OFFSET 0x1fff

/* ICMP type/code that must always pass: destination unreachable / fragmentation needed (RFC 1191) */
#define ICMP_DEST_UNREACH_T 3
#define ICMP_FRAG_NEEDED_C 4
#define ICMP_ECHOREPLY_T 0
#define ICMP_ECHO_T 8

/* What the datapath needs to know about a packet. */
struct pkt {
	__be32 saddr;
	__be32 daddr;
	__be16 sport;       /* TCP/UDP/SCTP ports, ICMP echo id (both), from the first fragment if fragmented */
	__be16 dport;
	__be16 policy_port; /* port policy matches: TCP/UDP destination port, ICMP htons(type) */
	__be16 frag_id;
	__u16 l4_off;       /* offset of the L4 header (valid when has_l4) */
	__u16 csum_off;     /* offset of the TCP/UDP checksum, 0 when this packet carries none */
	__u16 tot_len;      /* IPv4 total length */
	__u8 proto;
	__u8 has_l4;        /* L4 header is in this packet (unfragmented or first fragment) */
	__u8 fragment;      /* 0: not fragmented, 1: first fragment, 2: later fragment */
	__u8 icmp_type;
	__u8 icmp_code;
	__u8 pad;
};

/* L3 header offset: tc sees the Ethernet header (cls_bpf pushes it back on ingress) */
#define L3_OFF ETH_HLEN

/* Fill p from skb. Returns 0, a DROP_* reason, or PARSE_NOT_IPV4. */
static __always_inline int parse_ipv4(struct __sk_buff *skb, struct pkt *p)
{
	struct iphdr ip;
	__u32 ihl_bytes, frag;

	if (skb->protocol != bpf_htons(ETH_P_IP))
		return PARSE_NOT_IPV4;
	if (bpf_skb_load_bytes(skb, L3_OFF, &ip, sizeof(ip)))
		return DROP_TRUNCATED_IP;
	if (ip.version != 4 || ip.ihl < 5)
		return DROP_MALFORMED_IP;
	ihl_bytes = ip.ihl * 4;
	p->tot_len = bpf_ntohs(ip.tot_len);
	if (p->tot_len < ihl_bytes)
		return DROP_MALFORMED_IP;
	if (skb->len < L3_OFF + (__u32)p->tot_len) /* longer is fine: Ethernet padding */
		return DROP_TRUNCATED_IP;

	p->saddr = ip.saddr;
	p->daddr = ip.daddr;
	p->proto = ip.protocol;
	p->frag_id = ip.id;
	p->l4_off = L3_OFF + ihl_bytes;

	frag = bpf_ntohs(ip.frag_off);
	if (frag & IP_OFFSET)
		p->fragment = 2;
	else if (frag & IP_MF)
		p->fragment = 1;
	else
		p->fragment = 0;
	if (p->fragment == 2)
		return 0; /* no L4 header here: ports come from the frags map */

	p->has_l4 = 1;
	if (p->proto == IPPROTO_TCP) {
		struct tcphdr tcp;

		if (ihl_bytes + sizeof(tcp) > p->tot_len ||
		    bpf_skb_load_bytes(skb, p->l4_off, &tcp, sizeof(tcp)))
			return DROP_TRUNCATED_L4;
		if (tcp.doff < 5)
			return DROP_MALFORMED_L4;
		if (ihl_bytes + tcp.doff * 4 > p->tot_len)
			return DROP_TRUNCATED_L4;
		p->sport = tcp.source;
		p->dport = tcp.dest;
		p->policy_port = tcp.dest;
		p->csum_off = p->l4_off + offsetof(struct tcphdr, check);
	} else if (p->proto == IPPROTO_UDP) {
		struct udphdr udp;

		if (ihl_bytes + sizeof(udp) > p->tot_len ||
		    bpf_skb_load_bytes(skb, p->l4_off, &udp, sizeof(udp)))
			return DROP_TRUNCATED_L4;
		p->sport = udp.source;
		p->dport = udp.dest;
		p->policy_port = udp.dest;
		p->csum_off = p->l4_off + offsetof(struct udphdr, check);
	} else if (p->proto == IPPROTO_SCTP) {
		__be16 ports[2]; /* the common header starts with the ports, as TCP's and UDP's do */

		if (ihl_bytes + 12 > p->tot_len ||
		    bpf_skb_load_bytes(skb, p->l4_off, ports, sizeof(ports)))
			return DROP_TRUNCATED_L4;
		p->sport = ports[0];
		p->dport = ports[1];
		p->policy_port = ports[1];
		/* csum_off stays 0: SCTP's CRC32c covers no pseudo header, so an address rewrite keeps
		 * it valid, and nat_rewrite() rewrites no port (userspace refuses SCTP services whose
		 * backend port differs from the service port) */
	} else if (p->proto == IPPROTO_ICMP) {
		struct icmp_hdr8 icmp;

		if (ihl_bytes + sizeof(icmp) > p->tot_len ||
		    bpf_skb_load_bytes(skb, p->l4_off, &icmp, sizeof(icmp)))
			return DROP_TRUNCATED_L4;
		p->icmp_type = icmp.type;
		p->icmp_code = icmp.code;
		p->policy_port = bpf_htons(icmp.type);
		if (icmp.type == ICMP_ECHO_T || icmp.type == ICMP_ECHOREPLY_T) {
			p->sport = icmp.id;
			p->dport = icmp.id;
		}
	} else {
		p->has_l4 = 0; /* other protocols: addresses only, ports 0 */
	}
	return 0;
}

/*
 * Fragments: the first one records its ports under {src, dst, id, proto}; later ones take them from
 * there so NAT, conntrack and policy treat the whole datagram alike. A later fragment that arrives
 * before the first is dropped (DROP_FRAG_NO_FIRST): its ports are unknown, so policy cannot be
 * decided; the sender's retransmit or reassembly elsewhere recovers.
 */
static __always_inline int frag_track(struct pkt *p)
{
	struct frag_key key = { .saddr = p->saddr, .daddr = p->daddr, .id = p->frag_id,
				.proto = p->proto, .pad = 0 };
	struct frag_ports ports;
	struct frag_ports *known;

	if (p->fragment == 1) {
		ports.sport = p->sport;
		ports.dport = p->dport;
		bpf_map_update_elem(&frags, &key, &ports, BPF_ANY);
		return 0;
	}
	known = bpf_map_lookup_elem(&frags, &key);
	if (!known)
		return DROP_FRAG_NO_FIRST;
	p->sport = known->sport;
	p->dport = known->dport;
	if (p->proto == IPPROTO_TCP || p->proto == IPPROTO_UDP || p->proto == IPPROTO_SCTP)
		p->policy_port = known->dport;
	return 0;
}

#endif /* PREP_NODE_PARSE_H */
