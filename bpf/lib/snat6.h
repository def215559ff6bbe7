/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Remote backends and hairpin for tc_lb6: lib/snat.h for IPv6, with the same rules.
 *
 * A new IPv6 flow is SNATed to the node's IPv6 address (node_cfg6, the state's first IPv6
 * node.addresses) when it reaches an external address (SVC_F_EXTERNAL) and its backend runs on
 * another node (BE_F_REMOTE), or when the backend is the client itself (hairpin). The source port
 * comes from the same range as IPv4's (cfg_snat_port_min..max in lib/snat.h: conntrack and
 * conntrack6 are separate tables, so the two families never compete for a port), picked by the
 * flow hash and made unique by writing the reply direction's conntrack6 entry with BPF_NOEXIST.
 *
 * A packet whose source becomes the node's address (both directions of a SNATed flow, and the reply
 * of any flow to an external address) is forwarded by bpf_fib_lookup(AF_INET6) and redirect, hop
 * limit decremented, as snat_fib_forward does for IPv4: the kernel's input path would otherwise
 * take it as a packet from itself.
 */
#ifndef PREP_NODE_SNAT6_H
#define PREP_NODE_SNAT6_H

#include "common.h"
#include "maps.h"
#include "parse6.h"
#include "nat6.h"
#include "ct6.h"
#include "snat.h"
#include "lb_hash.h"
#include "icmp6_nat.h" /* addr6_eq */

#ifndef AF_INET6
#define AF_INET6 10
#endif

/* Does a new IPv6 flow from p to backend be of svc need SNAT? */
static __always_inline bool snat6_needed(const struct lb_service *svc, const struct lb6_backend *be,
					 const struct pkt6 *p)
{
	return addr6_eq(be->addr, p->saddr) || /* hairpin */
	       ((svc->flags & SVC_F_EXTERNAL) && (be->flags & BE_F_REMOTE));
}

/*
 * Both conntrack6 entries of a new SNATed flow p -> (DNAT) baddr:bport, source -> node:port.
 * 0 with node[4] and *port_out set, or a DROP_* reason (nothing written then).
 */
static __always_inline __u32 snat6_ct_create(struct __sk_buff *skb, const struct pkt6 *p,
					     const __be32 *baddr, __be16 bport, __u32 svc_id,
					     __be32 *node, __be16 *port_out)
{
	struct ct6_key key = { .proto = p->proto };
	struct ct6_entry ent = {}, *old;
	struct node_cfg6 *cfg;
	__u32 min = cfg_snat_port_min, max = cfg_snat_port_max, range, hash, i, zero = 0;
	__be16 port = 0;

	cfg = bpf_map_lookup_elem(&node_cfg6, &zero);
	if (!cfg || !(cfg->snat_addr[0] | cfg->snat_addr[1] | cfg->snat_addr[2] | cfg->snat_addr[3]))
		return DROP_SNAT_NO_ADDRESS;
	__builtin_memcpy(node, cfg->snat_addr, 16);
	if (!max || max < min)
		return DROP_SNAT_NO_PORT;
	range = max - min + 1;
	hash = lb_flow_hash6(p->saddr, p->daddr, p->sport, p->dport, p->proto);

	ent.last_seen_ns = bpf_ktime_get_ns();
	ent.svc_id = svc_id;
	ct6_life_init(skb, p, &ent); /* lifetime and TCP state bits, the same for both directions */
	/* reply: backend -> node:port; source back to the VIP, destination back to the client */
	ent.flags |= CT_F_REPLY | CT_F_REVNAT | CT_F_SNAT | CT_F_FIB;
	__builtin_memcpy(ent.nat_addr, p->daddr, sizeof(ent.nat_addr));
	ent.nat_port = p->dport;
	__builtin_memcpy(ent.snat_addr, p->saddr, sizeof(ent.snat_addr));
	ent.snat_port = p->sport;
	__builtin_memcpy(key.saddr, baddr, sizeof(key.saddr));
	__builtin_memcpy(key.daddr, node, sizeof(key.daddr));
	key.sport = bport;
	for (i = 0; i < SNAT_PORT_TRIES; i++) {
		port = bpf_htons((__u16)(min + (hash + i) % range));
		key.dport = port;
		if (bpf_map_update_elem(&conntrack6, &key, &ent, BPF_NOEXIST) == 0)
			break;
		/* a port whose flow has expired (not yet collected by ct-gc) is free again */
		old = bpf_map_lookup_elem(&conntrack6, &key);
		if (old && ct6_expired(old, ent.last_seen_ns) &&
		    bpf_map_update_elem(&conntrack6, &key, &ent, BPF_EXIST) == 0)
			break;
	}
	if (i == SNAT_PORT_TRIES)
		return DROP_SNAT_NO_PORT;

	/* original: client -> VIP; destination to the backend, source to node:port */
	ent.flags = (ent.flags & CT_F_TCP_STATE) | CT_F_DNAT | CT_F_SNAT | CT_F_FIB;
	__builtin_memcpy(ent.nat_addr, baddr, sizeof(ent.nat_addr));
	ent.nat_port = bport;
	__builtin_memcpy(ent.snat_addr, node, sizeof(ent.snat_addr));
	ent.snat_port = port;
	ct6_key_of(p, &key);
	if (bpf_map_update_elem(&conntrack6, &key, &ent, BPF_ANY)) {
		__builtin_memcpy(key.saddr, baddr, sizeof(key.saddr));
		__builtin_memcpy(key.daddr, node, sizeof(key.daddr));
		key.sport = bport;
		key.dport = port;
		bpf_map_delete_elem(&conntrack6, &key);
		return DROP_CT_CREATE_FAILED;
	}
	*port_out = port;
	return 0;
}

/* A flow to an external IPv6 address whose backend is local (no SNAT: the client address is kept):
 * its replies leave with the node's address as source, so they are forwarded by FIB lookup too. */
static __always_inline void snat6_mark_reply_fib(const struct pkt6 *p, const __be32 *baddr,
						 __be16 bport)
{
	struct ct6_key reply = { .sport = bport, .dport = p->sport, .proto = p->proto };
	struct ct6_entry *ent;

	__builtin_memcpy(reply.saddr, baddr, sizeof(reply.saddr));
	__builtin_memcpy(reply.daddr, p->saddr, sizeof(reply.daddr));
	ent = bpf_map_lookup_elem(&conntrack6, &reply);
	if (ent)
		ent->flags |= CT_F_FIB;
}

/* The SNAT half of an established IPv6 flow's rewrite (after the DNAT/REVNAT half). 0 or -1. */
static __always_inline int snat6_rewrite(struct __sk_buff *skb, const struct pkt6 *p, __u16 flags,
					 const __be32 *addr, __be16 port)
{
	if (!(flags & CT_F_SNAT))
		return 0;
	return nat6_rewrite(skb, p, flags & CT_F_DNAT ? NAT_SRC : NAT_DST, addr, port);
}

/* ICMPv6 packet too big as snat6_fib_forward() builds it: its IPv6 header and ICMPv6 header (RFC
 * 4443 3.2), put in front of the quote: the packet as received, cut so the whole ICMPv6 packet is
 * the IPv6 minimum MTU, 1280 bytes. */
struct snat6_ptb {
	struct ip6_hdr40 ip6;
	__u8 type;
	__u8 code;
	__sum16 check;
	__be32 mtu;
};

/* The FIB lookup's parameters, then (once the lookup has said FRAG_NEEDED) the packet's rewritten
 * addresses and ports, then the ICMPv6 headers being built: one stack area for all three, because
 * tc_lb's stack (both families inlined) is within a few bytes of the verifier's 512 on 5.10. */
union snat6_fib_buf {
	struct bpf_fib_lookup fib;
	struct snat6_ptb ptb;
	__be32 tuple[9]; /* saddr, daddr, sport and dport, as struct pkt6 has them */
	__u8 eth[2 * ETH_ALEN];
};
_Static_assert(sizeof(struct snat6_ptb) == 48, "snat6_ptb layout");
_Static_assert(sizeof(union snat6_fib_buf) == sizeof(struct bpf_fib_lookup), "snat6_fib_buf fits the FIB's");
_Static_assert(offsetof(struct pkt6, sport) == 32 && offsetof(struct pkt6, dport) == 34,
	       "pkt6: addresses then ports, one 36-byte tuple");

#define SNAT6_MIN_MTU 1280 /* RFC 8200 5 */
#define SNAT6_QUOTE (SNAT6_MIN_MTU - (__u32)sizeof(struct snat6_ptb)) /* 1232 */
#define SNAT6_QUOTE_CHUNK 308 /* bpf_csum_diff takes at most 512 bytes; 4 of these are the quote */
_Static_assert(SNAT6_QUOTE == 4 * SNAT6_QUOTE_CHUNK, "the quote is 4 checksum chunks");

/*
 * The path MTU toward fib's destination after bpf_fib_lookup() said FRAG_NEEDED for tot_len bytes:
 * mtu_result from 5.12 on, else bisected by lookups with smaller lengths (at most 16, only for a
 * packet about to be refused), as snat_path_mtu() for IPv4. A lookup through a gateway writes the
 * gateway over ipv6_dst and the egress device over ifindex: both are put back before each one.
 */
static __always_inline __u32 snat6_path_mtu(struct __sk_buff *skb, struct bpf_fib_lookup *fib,
					    __u16 tot_len)
{
	__u32 lo = SNAT6_MIN_MTU, hi = tot_len - 1, mid, i;
	long rc;

	if (fib->tot_len < tot_len)
		return fib->tot_len < SNAT6_MIN_MTU ? SNAT6_MIN_MTU : fib->tot_len;
	for (i = 0; i < 16 && lo < hi; i++) {
		mid = (lo + hi + 1) / 2;
		if (bpf_skb_load_bytes(skb, L3_OFF + offsetof(struct ip6_hdr40, daddr), fib->ipv6_dst, 16))
			break;
		fib->ifindex = skb->ifindex;
		fib->tot_len = (__u16)mid;
		rc = bpf_fib_lookup(skb, fib, sizeof(*fib), 0);
		if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED)
			hi = mid - 1;
		else
			lo = mid;
	}
	return lo;
}

/*
 * Turn the packet into ICMPv6 packet too big (type 2 code 0, RFC 4443 3.2) to its sender, as a
 * router would, with next-hop MTU mtu. p is the packet as received (before DNAT/SNAT): first the
 * packet itself is put back as it was sent (p's addresses and ports, the NAT's change of the L4
 * checksum undone), then cut to SNAT6_QUOTE bytes and given an IPv6 and ICMPv6 header in front
 * (bpf_skb_adjust_room after the Ethernet header), from the address the sender wrote (p->daddr:
 * the NodePort's node address or the load balancer IP), back to the Ethernet source it came from.
 * The ICMPv6 checksum covers the pseudo header and the whole message: the quote is summed in place
 * (direct packet access, 4 chunks). The caller redirects it out of the device it came in on.
 * 0, or -1 when the packet is now unusable (drop it).
 */
static __always_inline int snat6_packet_too_big(struct __sk_buff *skb, const struct pkt6 *p,
						union snat6_fib_buf *b, __u32 mtu, __u32 csum_off)
{
	__u64 l4_flags = p->proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0;
	void *data, *data_end;
	__s64 sum;

	/* the packet as it was sent: addresses (pseudo header) and ports back, checksum to match */
	if (bpf_skb_load_bytes(skb, L3_OFF + offsetof(struct ip6_hdr40, saddr), b->tuple, 32) ||
	    bpf_skb_load_bytes(skb, p->l4_off, &b->tuple[8], 4))
		return -1;
	sum = bpf_csum_diff(b->tuple, 32, (__be32 *)p->saddr, 32, 0);
	if (sum < 0 || bpf_l4_csum_replace(skb, csum_off, 0, (__u32)sum, l4_flags | BPF_F_PSEUDO_HDR))
		return -1;
	sum = bpf_csum_diff(&b->tuple[8], 4, (__be32 *)&p->sport, 4, 0);
	if (sum < 0 || bpf_l4_csum_replace(skb, csum_off, 0, (__u32)sum, l4_flags) ||
	    bpf_skb_store_bytes(skb, L3_OFF + offsetof(struct ip6_hdr40, saddr), p->saddr, 32, 0) ||
	    bpf_skb_store_bytes(skb, p->l4_off, &p->sport, 4, 0))
		return -1;

	/* Ethernet: back to where it came from */
	if (bpf_skb_load_bytes(skb, 0, b->eth, sizeof(b->eth)) ||
	    bpf_skb_store_bytes(skb, 0, b->eth + ETH_ALEN, ETH_ALEN, 0) ||
	    bpf_skb_store_bytes(skb, ETH_ALEN, b->eth, ETH_ALEN, 0))
		return -1;

	/* the quote: the first SNAT6_QUOTE bytes, summed where they lie */
	if (bpf_skb_change_tail(skb, L3_OFF + SNAT6_QUOTE, 0) ||
	    bpf_skb_pull_data(skb, L3_OFF + SNAT6_QUOTE))
		return -1;
	data = (void *)(long)skb->data;
	data_end = (void *)(long)skb->data_end;
	if (data + L3_OFF + SNAT6_QUOTE > data_end)
		return -1;
	/* seed: the pseudo header's upper-layer length and next header (RFC 8200 8.1) */
	sum = bpf_csum_diff(NULL, 0, data + L3_OFF, SNAT6_QUOTE_CHUNK,
			    bpf_htonl(SNAT6_MIN_MTU - IPV6_HDR_LEN + IPPROTO_ICMPV6));
	sum = bpf_csum_diff(NULL, 0, data + L3_OFF + SNAT6_QUOTE_CHUNK, SNAT6_QUOTE_CHUNK, (__u32)sum);
	sum = bpf_csum_diff(NULL, 0, data + L3_OFF + 2 * SNAT6_QUOTE_CHUNK, SNAT6_QUOTE_CHUNK, (__u32)sum);
	sum = bpf_csum_diff(NULL, 0, data + L3_OFF + 3 * SNAT6_QUOTE_CHUNK, SNAT6_QUOTE_CHUNK, (__u32)sum);

	__builtin_memset(b, 0, sizeof(b->ptb));
	b->ptb.ip6.vtc = 0x60;
	b->ptb.ip6.payload_len = bpf_htons(SNAT6_MIN_MTU - IPV6_HDR_LEN);
	b->ptb.ip6.nexthdr = IPPROTO_ICMPV6;
	b->ptb.ip6.hop_limit = 64; /* the default hop limit, as the kernel's icmp6_send() */
	__builtin_memcpy(b->ptb.ip6.saddr, p->daddr, 16);
	__builtin_memcpy(b->ptb.ip6.daddr, p->saddr, 16);
	b->ptb.type = ICMPV6_PKT_TOOBIG_T;
	b->ptb.mtu = bpf_htonl(mtu);
	sum = bpf_csum_diff(NULL, 0, (__be32 *)&b->ptb.type, 8, (__u32)sum);
	sum = bpf_csum_diff(NULL, 0, b->ptb.ip6.saddr, 32, (__u32)sum);
	b->ptb.check = snat_csum_fold(sum);

	if (bpf_skb_adjust_room(skb, sizeof(b->ptb), BPF_ADJ_ROOM_MAC, 0) ||
	    bpf_skb_store_bytes(skb, L3_OFF, &b->ptb, sizeof(b->ptb), 0))
		return -1;
	return 0;
}

/* snat_gso_seg_len() for IPv6: a GSO packet's segment length from the IPv6 header on (extension
 * headers included), 0 when unknown (then the kernel's own check, which passes GSO, is used) */
static __always_inline __u16 snat6_gso_seg_len(struct __sk_buff *skb, const struct pkt6 *p)
{
	__u8 doff;

	if (!p || !p->has_l4 || !skb->gso_size)
		return 0;
	if (p->proto == IPPROTO_UDP)
		return (__u16)(p->l4_off - L3_OFF + sizeof(struct udphdr) + skb->gso_size);
	if (p->proto != IPPROTO_TCP || bpf_skb_load_bytes(skb, p->l4_off + 12, &doff, 1))
		return 0;
	return (__u16)(p->l4_off - L3_OFF + (doff >> 4) * 4 + skb->gso_size);
}

/*
 * Forward a rewritten IPv6 packet by FIB lookup (snat_fib_forward for IPv6): hop limit
 * decremented (IPv6 has no header checksum), MACs from the neighbour table (or
 * bpf_redirect_neigh() resolves them), redirected to the egress device. A TC_ACT_* verdict, or
 * -DROP_* for the caller to count.
 *
 * A packet bigger than the route's MTU (FRAG_NEEDED) is refused as a router refuses it (IPv6 has no
 * DF: every one), so path MTU discovery works through a NodePort to a remote backend: a received
 * TCP or UDP packet p (the caller's parse of it, before NAT) becomes ICMPv6 packet too big to its
 * sender, and -DROP_FRAG_NEEDED tells the caller to count it and send it back out of skb->ifindex.
 * With p NULL (an ICMPv6 error itself, never answered with one), another protocol, or an L4 header
 * beyond the quote: -DROP_FRAG_NEEDED_NO_ICMP. A GSO packet is checked by its segments' length, as
 * for IPv4 (snat_gso_seg_len: the same arithmetic from the L3 header).
 */
static __always_inline int snat6_fib_forward(struct __sk_buff *skb, const struct pkt6 *p)
{
	union snat6_fib_buf b = {};
	__u8 *hop = (__u8 *)&b.fib.sport; /* an input the lookup does not write: free after it */
	__u32 mtu;
	__u16 len;
	long rc;

	/* the first 8 header bytes (vtc, flow label, payload length, next header, hop limit) pass
	 * through ipv6_dst before the address goes there: no stack of their own */
	if (bpf_skb_load_bytes(skb, L3_OFF, b.fib.ipv6_dst, 8))
		return -DROP_TRUNCATED_IP;
	b.fib.flowinfo = b.fib.ipv6_dst[0] & bpf_htonl(0x0FFFFFFF);
	b.fib.l4_protocol = ((__u8 *)b.fib.ipv6_dst)[6];
	len = IPV6_HDR_LEN + bpf_ntohs(((__be16 *)b.fib.ipv6_dst)[2]);
	if (bpf_skb_load_bytes(skb, L3_OFF + offsetof(struct ip6_hdr40, saddr), b.fib.ipv6_src, 16) ||
	    bpf_skb_load_bytes(skb, L3_OFF + offsetof(struct ip6_hdr40, daddr), b.fib.ipv6_dst, 16))
		return -DROP_TRUNCATED_IP;
	b.fib.family = AF_INET6;
	if (skb->gso_segs > 1)
		len = snat6_gso_seg_len(skb, p);
	b.fib.tot_len = len;
	b.fib.ifindex = skb->ifindex;
	rc = bpf_fib_lookup(skb, &b.fib, sizeof(b.fib), 0);
	if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED) {
		if (!p || !p->has_l4 || (p->proto != IPPROTO_TCP && p->proto != IPPROTO_UDP) || !len ||
		    p->l4_off + sizeof(struct tcphdr) > L3_OFF + SNAT6_QUOTE ||
		    skb->len < L3_OFF + SNAT6_QUOTE)
			return -DROP_FRAG_NEEDED_NO_ICMP;
		mtu = snat6_path_mtu(skb, &b.fib, len);
		if (snat6_packet_too_big(skb, p, &b, mtu, nat6_csum_off(p)))
			return -DROP_FRAG_NEEDED_NO_ICMP;
		return -DROP_FRAG_NEEDED;
	}
	if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH)
		return -DROP_FIB_LOOKUP_FAILED;
	if (bpf_skb_load_bytes(skb, L3_OFF + offsetof(struct ip6_hdr40, hop_limit), hop, 1))
		return -DROP_TRUNCATED_IP;
	if (*hop <= 1)
		return TC_ACT_OK; /* the stack sends time-exceeded (and drops it) */
	(*hop)--;
	if (bpf_skb_store_bytes(skb, L3_OFF + offsetof(struct ip6_hdr40, hop_limit), hop, 1, 0))
		return -DROP_NAT_FAILED;
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH)
		return bpf_redirect_neigh(b.fib.ifindex, NULL, 0, 0);
	if (bpf_skb_store_bytes(skb, offsetof(struct ethhdr, h_dest), b.fib.dmac, ETH_ALEN, 0) ||
	    bpf_skb_store_bytes(skb, offsetof(struct ethhdr, h_source), b.fib.smac, ETH_ALEN, 0))
		return -DROP_NAT_FAILED;
	return bpf_redirect(b.fib.ifindex, 0);
}

#endif /* PREP_NODE_SNAT6_H */
