/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Remote backends and hairpin for tc_lb (issue 13 item 2): kube-proxy's masquerade, done in BPF.
 *
 * A new flow is SNATed to the node's address (node_cfg, from the state's node: section) when
 *   - it reaches an external address (NodePort, load balancer IP, externalIP: SVC_F_EXTERNAL) and
 *     the chosen backend runs on another node (BE_F_REMOTE): without SNAT the backend would answer
 *     the client directly and the client would drop an answer from an address it never asked; or
 *   - the backend is the client itself (hairpin: a pod reaching itself through its Service): the
 *     pod's kernel drops a packet whose source is its own address as a martian.
 * The source port comes from the range the loader chose at install (cfg_snat_port_min..max, outside
 * the node's net.ipv4.ip_local_port_range, so it never collides with the node's own connections).
 * The port is picked by the flow hash and made unique by writing the reply direction's conntrack
 * entry {backend:port -> node:snat port} with BPF_NOEXIST: the entry that routes the replies back
 * is also the reservation of the port, so no separate NAT table can disagree with conntrack.
 *
 * A packet whose source becomes the node's own address (a SNATed flow in both directions, and the
 * reply of any flow to an external address, whose VIP is the node's address) is forwarded by a FIB
 * lookup and bpf_redirect()/bpf_redirect_neigh() (5.10) from tc ingress, as cilium's NodePort does:
 * the kernel's input route would drop it as a martian (fib_validate_source, accept_local=0).
 */
#ifndef PREP_NODE_SNAT_H
#define PREP_NODE_SNAT_H

#include "common.h"
#include "maps.h"
#include "parse.h"
#include "nat.h"
#include "lb_hash.h"
#include "ct_gc.h"

#ifndef AF_INET
#define AF_INET 2
#endif

/* knobs: the SNAT source port range, host order, set by the loader before load (install reads
 * ip_local_port_range, or --snat-ports); max 0 = no range: flows that need SNAT are dropped with
 * DROP_SNAT_NO_PORT. */
const volatile __u16 cfg_snat_port_min = 0;
const volatile __u16 cfg_snat_port_max = 0;

/* The node's SNAT address, 0 when the state set none. */
static __always_inline __be32 snat_node_addr(void)
{
	__u32 zero = 0;
	struct node_cfg *cfg = bpf_map_lookup_elem(&node_cfg, &zero);

	return cfg ? cfg->snat_addr : 0;
}

/* Does a new flow from p to backend be of svc need SNAT? */
static __always_inline bool snat_needed(const struct lb_service *svc, const struct lb_backend *be,
					const struct pkt *p)
{
	return be->addr == p->saddr || /* hairpin */
	       ((svc->flags & SVC_F_EXTERNAL) && (be->flags & BE_F_REMOTE));
}

/*
 * Both conntrack entries of a new SNATed flow p -> (DNAT) baddr:bport, source -> node:port.
 * 0 with *node_out and *port_out set, or a DROP_* reason (nothing written then).
 */
static __always_inline __u32 snat_ct_create(struct __sk_buff *skb, const struct pkt *p,
					    __be32 baddr, __be16 bport, __u32 svc_id,
					    __be32 *node_out, __be16 *port_out)
{
	struct ct_key orig = { .saddr = p->saddr, .daddr = p->daddr, .sport = p->sport,
			       .dport = p->dport, .proto = p->proto };
	struct ct_key reply = { .saddr = baddr, .sport = bport, .proto = p->proto };
	struct ct_entry ent = {}, *old;
	__u32 min = cfg_snat_port_min, max = cfg_snat_port_max, range, hash, i;
	__be32 node = snat_node_addr();
	__be16 port = 0;

	if (!node)
		return DROP_SNAT_NO_ADDRESS;
	if (!max || max < min)
		return DROP_SNAT_NO_PORT;
	range = max - min + 1;
	hash = lb_flow_hash(p->saddr, p->daddr, p->sport, p->dport, p->proto);

	ent.last_seen_ns = bpf_ktime_get_ns();
	ent.svc_id = svc_id;
	ct_life_init(skb, p, &ent); /* lifetime and TCP state bits, the same for both directions */
	/* reply: backend -> node:port; source back to the VIP, destination back to the client */
	ent.flags |= CT_F_REPLY | CT_F_REVNAT | CT_F_SNAT | CT_F_FIB;
	ent.nat_addr = p->daddr;
	ent.nat_port = p->dport;
	ent.snat_addr = p->saddr;
	ent.snat_port = p->sport;
	reply.daddr = node;
	for (i = 0; i < SNAT_PORT_TRIES; i++) {
		port = bpf_htons((__u16)(min + (hash + i) % range));
		reply.dport = port;
		if (bpf_map_update_elem(&conntrack, &reply, &ent, BPF_NOEXIST) == 0)
			break;
		/* a port whose flow has expired (not yet collected by ct-gc) is free again */
		old = bpf_map_lookup_elem(&conntrack, &reply);
		if (old && ct_expired(old, ent.last_seen_ns) &&
		    bpf_map_update_elem(&conntrack, &reply, &ent, BPF_EXIST) == 0)
			break;
	}
	if (i == SNAT_PORT_TRIES)
		return DROP_SNAT_NO_PORT;

	/* original: client -> VIP; destination to the backend, source to node:port */
	ent.flags = (ent.flags & CT_F_TCP_STATE) | CT_F_DNAT | CT_F_SNAT | CT_F_FIB;
	ent.nat_addr = baddr;
	ent.nat_port = bport;
	ent.snat_addr = node;
	ent.snat_port = port;
	if (bpf_map_update_elem(&conntrack, &orig, &ent, BPF_ANY)) {
		bpf_map_delete_elem(&conntrack, &reply);
		return DROP_CT_CREATE_FAILED;
	}
	*node_out = node;
	*port_out = port;
	return 0;
}

/* A flow to an external address whose backend is local (no SNAT: the client address is kept):
 * its replies leave with the node's address as source, so they are forwarded by FIB lookup too. */
static __always_inline void snat_mark_reply_fib(const struct pkt *p, __be32 baddr, __be16 bport)
{
	struct ct_key reply = { .saddr = baddr, .daddr = p->saddr, .sport = bport,
				.dport = p->sport, .proto = p->proto };
	struct ct_entry *ent = bpf_map_lookup_elem(&conntrack, &reply);

	if (ent)
		ent->flags |= CT_F_FIB;
}

/* The SNAT half of an established flow's rewrite (after the DNAT/REVNAT half). 0 or -1. */
static __always_inline int snat_rewrite(struct __sk_buff *skb, const struct pkt *p, __u16 flags,
					__be32 addr, __be16 port)
{
	if (!(flags & CT_F_SNAT))
		return 0;
	return nat_rewrite(skb, p, flags & CT_F_DNAT ? NAT_SRC : NAT_DST, addr, port);
}

/* ICMP fragmentation-needed as snat_fib_forward() builds it: IPv4 + ICMP + the quoted IPv4 header
 * and the first 8 bytes of its L4 header (RFC 792), 56 bytes after the Ethernet header. */
struct snat_icmp_frag {
	struct iphdr ip;
	__u8 type;
	__u8 code;
	__sum16 check;
	__be16 unused;
	__be16 mtu;      /* next-hop MTU (RFC 1191) */
	struct iphdr qip;
	__u8 ql4[8];
};

/* The FIB lookup's parameters, and then (once the lookup has said FRAG_NEEDED) the ICMP being built:
 * one stack area for both, because tc_lb's stack is within a few dozen bytes of the verifier's 512. */
union snat_fib_buf {
	struct bpf_fib_lookup fib;
	struct snat_icmp_frag icmp;
	__u8 eth[2 * ETH_ALEN];
};
_Static_assert(sizeof(struct snat_icmp_frag) == 56, "snat_icmp_frag layout");
_Static_assert(sizeof(union snat_fib_buf) == sizeof(struct bpf_fib_lookup), "snat_fib_buf fits the FIB's");

#define SNAT_IP_DF 0x4000
#define SNAT_IPV4_MIN_MTU 68

static __always_inline __u16 snat_csum_fold(__s64 sum)
{
	__u32 s = (__u32)sum;

	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)~s;
}

/*
 * The path MTU toward fib's destination after bpf_fib_lookup() said FRAG_NEEDED for tot_len bytes.
 * Kernels from 5.12 write it to mtu_result (a union with tot_len); 5.10 leaves tot_len as it was, and
 * then it is found by bisection: lookups with a smaller tot_len until the largest that fits (at most
 * 16 lookups, only for a packet that is about to be refused anyway).
 */
static __always_inline __u16 snat_path_mtu(struct __sk_buff *skb, struct bpf_fib_lookup *fib,
					   __u16 tot_len)
{
	__u32 lo = SNAT_IPV4_MIN_MTU, hi = tot_len - 1, mid, i;
	long rc;

	if (fib->tot_len < tot_len)
		return fib->tot_len < SNAT_IPV4_MIN_MTU ? SNAT_IPV4_MIN_MTU : fib->tot_len;
	for (i = 0; i < 16 && lo < hi; i++) {
		mid = (lo + hi + 1) / 2;
		fib->ifindex = skb->ifindex; /* a successful lookup wrote the egress device here */
		fib->tot_len = (__u16)mid;
		rc = bpf_fib_lookup(skb, fib, sizeof(*fib), 0);
		if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED)
			hi = mid - 1;
		else
			lo = mid;
	}
	return (__u16)lo;
}

/*
 * Turn the packet into ICMP fragmentation-needed (type 3 code 4) to its sender, as a router would,
 * with next-hop MTU mtu. p is the packet as it was received (before DNAT/SNAT): the quote carries
 * p's addresses and ports, so the sender matches it to its socket, with the IPv4 header checksum
 * and the UDP checksum made right for them. The ICMP comes from the address the sender wrote
 * (p->daddr: the NodePort's node address, or the load balancer IP) and goes back to the Ethernet
 * source it came from; the caller redirects it out of the device it came in on. ip is the packet's
 * IPv4 header as it is now (rewritten). 0, or -1 when the packet is now unusable (drop it).
 */
static __always_inline int snat_icmp_frag_needed(struct __sk_buff *skb, const struct pkt *p,
						 const struct iphdr *ip, union snat_fib_buf *b, __u16 mtu)
{
	__s64 sum;
	__u16 old;

	/* Ethernet: back to where it came from */
	if (bpf_skb_load_bytes(skb, 0, b->eth, sizeof(b->eth)) ||
	    bpf_skb_store_bytes(skb, 0, b->eth + ETH_ALEN, ETH_ALEN, 0) ||
	    bpf_skb_store_bytes(skb, ETH_ALEN, b->eth, ETH_ALEN, 0))
		return -1;

	/* the quote: the packet's header and 8 bytes of L4 with the addresses and ports it came with */
	b->icmp.qip = *ip;
	if (bpf_skb_load_bytes(skb, p->l4_off, b->icmp.ql4, sizeof(b->icmp.ql4)))
		return -1;
	if (p->proto == IPPROTO_UDP) {
		__builtin_memcpy(&old, b->icmp.ql4 + 6, sizeof(old));
		if (old) { /* undo the NAT's update of the UDP checksum: from the rewritten tuple to p's */
			sum = bpf_csum_diff(&b->icmp.qip.saddr, 8, (__be32 *)&p->saddr, 8, (__u16)~old);
			sum = bpf_csum_diff((__be32 *)b->icmp.ql4, 4, (__be32 *)&p->sport, 4, sum);
			old = snat_csum_fold(sum);
			if (!old)
				old = 0xffff;
			__builtin_memcpy(b->icmp.ql4 + 6, &old, sizeof(old));
		}
	}
	b->icmp.qip.saddr = p->saddr;
	b->icmp.qip.daddr = p->daddr;
	__builtin_memcpy(b->icmp.ql4, &p->sport, 2 * sizeof(__be16)); /* TCP, UDP, SCTP: ports first */
	b->icmp.qip.check = 0;
	b->icmp.qip.check = snat_csum_fold(bpf_csum_diff(NULL, 0, (__be32 *)&b->icmp.qip,
							 sizeof(b->icmp.qip), 0));

	b->icmp.type = ICMP_DEST_UNREACH_T;
	b->icmp.code = ICMP_FRAG_NEEDED_C;
	b->icmp.check = 0;
	b->icmp.unused = 0;
	b->icmp.mtu = bpf_htons(mtu);
	b->icmp.check = snat_csum_fold(bpf_csum_diff(NULL, 0, (__be32 *)&b->icmp.type,
						     sizeof(b->icmp) - sizeof(b->icmp.ip), 0));

	__builtin_memset(&b->icmp.ip, 0, sizeof(b->icmp.ip));
	b->icmp.ip.version = 4;
	b->icmp.ip.ihl = 5;
	b->icmp.ip.tos = 0xc0; /* IPTOS_PREC_INTERNETCONTROL, as the kernel's icmp_send() */
	b->icmp.ip.tot_len = bpf_htons(sizeof(b->icmp));
	b->icmp.ip.ttl = 64;
	b->icmp.ip.protocol = IPPROTO_ICMP;
	b->icmp.ip.saddr = p->daddr;
	b->icmp.ip.daddr = p->saddr;
	b->icmp.ip.check = snat_csum_fold(bpf_csum_diff(NULL, 0, (__be32 *)&b->icmp.ip,
							sizeof(b->icmp.ip), 0));

	if (bpf_skb_change_tail(skb, L3_OFF + sizeof(b->icmp), 0) ||
	    bpf_skb_store_bytes(skb, L3_OFF, &b->icmp, sizeof(b->icmp), 0))
		return -1;
	return 0;
}

/*
 * Forward a rewritten packet by FIB lookup: TTL decremented, MACs from the neighbour table (or
 * bpf_redirect_neigh() resolves them), redirected to the egress device. A TC_ACT_* verdict, or
 * -DROP_* for the caller to count.
 *
 * A packet bigger than the route's MTU (FRAG_NEEDED) is refused as a router refuses it, so path MTU
 * discovery works through a NodePort to a remote backend (cilium answers it from BPF too): with DF
 * set, a received packet p (not NULL: the caller's parse of it, before NAT) becomes ICMP
 * fragmentation-needed to its sender, and -DROP_FRAG_NEEDED tells the caller to count it and send
 * it back out of skb->ifindex. Without DF, with IPv4 options (the quote would need them whole), or
 * with p NULL (an ICMP error itself, which is never answered with one): -DROP_FRAG_NEEDED_NO_ICMP.
 * A GSO packet (GRO on the way in, or TSO from a local veth) is checked by the length of its
 * segments, as the kernel's ip_forward() does (skb_gso_validate_network_len): its IPv4 total length
 * is the whole aggregate's, and checking that refused every aggregate; without p, or for other than
 * TCP and UDP, the kernel's own check (tot_len 0: is_skb_forwardable(), which passes GSO) is used.
 */
static __always_inline __u16 snat_gso_seg_len(struct __sk_buff *skb, const struct pkt *p)
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

static __always_inline int snat_fib_forward(struct __sk_buff *skb, const struct pkt *p)
{
	union snat_fib_buf b = {};
	struct iphdr ip;
	__u16 old_ttl, new_ttl, mtu, len;
	long rc;

	if (bpf_skb_load_bytes(skb, L3_OFF, &ip, sizeof(ip)))
		return -DROP_TRUNCATED_IP;
	b.fib.family = AF_INET;
	b.fib.tos = ip.tos;
	b.fib.l4_protocol = ip.protocol;
	len = skb->gso_segs > 1 ? snat_gso_seg_len(skb, p) : bpf_ntohs(ip.tot_len);
	b.fib.tot_len = len;
	b.fib.ipv4_src = ip.saddr;
	b.fib.ipv4_dst = ip.daddr;
	b.fib.ifindex = skb->ifindex;
	rc = bpf_fib_lookup(skb, &b.fib, sizeof(b.fib), 0);
	if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED) {
		if (!p || !(ip.frag_off & bpf_htons(SNAT_IP_DF)) || ip.ihl != 5 || !p->has_l4 ||
		    p->l4_off != L3_OFF + sizeof(ip) || !len)
			return -DROP_FRAG_NEEDED_NO_ICMP;
		mtu = snat_path_mtu(skb, &b.fib, len);
		if (snat_icmp_frag_needed(skb, p, &ip, &b, mtu))
			return -DROP_FRAG_NEEDED_NO_ICMP;
		return -DROP_FRAG_NEEDED;
	}
	if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH)
		return -DROP_FIB_LOOKUP_FAILED;
	if (ip.ttl <= 1)
		return TC_ACT_OK; /* the stack sends time-exceeded (and drops it) */
	old_ttl = bpf_htons((__u16)ip.ttl << 8);
	new_ttl = bpf_htons((__u16)(ip.ttl - 1) << 8);
	ip.ttl--;
	if (bpf_l3_csum_replace(skb, L3_OFF + offsetof(struct iphdr, check), old_ttl, new_ttl, 2) ||
	    bpf_skb_store_bytes(skb, L3_OFF + offsetof(struct iphdr, ttl), &ip.ttl, 1, 0))
		return -DROP_NAT_FAILED;
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH)
		return bpf_redirect_neigh(b.fib.ifindex, NULL, 0, 0);
	if (bpf_skb_store_bytes(skb, offsetof(struct ethhdr, h_dest), b.fib.dmac, ETH_ALEN, 0) ||
	    bpf_skb_store_bytes(skb, offsetof(struct ethhdr, h_source), b.fib.smac, ETH_ALEN, 0))
		return -DROP_NAT_FAILED;
	return bpf_redirect(b.fib.ifindex, 0);
}

#endif /* PREP_NODE_SNAT_H */
