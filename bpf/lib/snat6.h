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

/*
 * Forward a rewritten IPv6 packet by FIB lookup (snat_fib_forward for IPv6): hop limit
 * decremented (IPv6 has no header checksum), MACs from the neighbour table (or
 * bpf_redirect_neigh() resolves them), redirected to the egress device. A TC_ACT_* verdict, or
 * -DROP_* for the caller to count.
 */
static __always_inline int snat6_fib_forward(struct __sk_buff *skb)
{
	struct bpf_fib_lookup fib = {};
	__u8 hdr[8]; /* vtc, flow label, payload length, next header, hop limit */
	long rc;

	if (bpf_skb_load_bytes(skb, L3_OFF, hdr, sizeof(hdr)) ||
	    bpf_skb_load_bytes(skb, L3_OFF + offsetof(struct ip6_hdr40, saddr), fib.ipv6_src, 16) ||
	    bpf_skb_load_bytes(skb, L3_OFF + offsetof(struct ip6_hdr40, daddr), fib.ipv6_dst, 16))
		return -DROP_TRUNCATED_IP;
	fib.family = AF_INET6;
	fib.flowinfo = *(__be32 *)hdr & bpf_htonl(0x0FFFFFFF);
	fib.l4_protocol = hdr[6];
	fib.tot_len = IPV6_HDR_LEN + ((__u16)hdr[4] << 8 | hdr[5]);
	fib.ifindex = skb->ifindex;
	rc = bpf_fib_lookup(skb, &fib, sizeof(fib), 0);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH)
		return -DROP_FIB_LOOKUP_FAILED;
	if (hdr[7] <= 1)
		return TC_ACT_OK; /* the stack sends time-exceeded (and drops it) */
	hdr[7]--;
	if (bpf_skb_store_bytes(skb, L3_OFF + offsetof(struct ip6_hdr40, hop_limit), &hdr[7], 1, 0))
		return -DROP_NAT_FAILED;
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH)
		return bpf_redirect_neigh(fib.ifindex, NULL, 0, 0);
	if (bpf_skb_store_bytes(skb, offsetof(struct ethhdr, h_dest), fib.dmac, ETH_ALEN, 0) ||
	    bpf_skb_store_bytes(skb, offsetof(struct ethhdr, h_source), fib.smac, ETH_ALEN, 0))
		return -DROP_NAT_FAILED;
	return bpf_redirect(fib.ifindex, 0);
}

#endif /* PREP_NODE_SNAT6_H */
