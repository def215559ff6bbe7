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

/*
 * Forward a rewritten packet by FIB lookup: TTL decremented, MACs from the neighbour table (or
 * bpf_redirect_neigh() resolves them), redirected to the egress device. A TC_ACT_* verdict, or
 * -DROP_* for the caller to count.
 */
static __always_inline int snat_fib_forward(struct __sk_buff *skb)
{
	struct bpf_fib_lookup fib = {};
	struct iphdr ip;
	__u16 old_ttl, new_ttl;
	long rc;

	if (bpf_skb_load_bytes(skb, L3_OFF, &ip, sizeof(ip)))
		return -DROP_TRUNCATED_IP;
	fib.family = AF_INET;
	fib.tos = ip.tos;
	fib.l4_protocol = ip.protocol;
	fib.tot_len = bpf_ntohs(ip.tot_len);
	fib.ipv4_src = ip.saddr;
	fib.ipv4_dst = ip.daddr;
	fib.ifindex = skb->ifindex;
	rc = bpf_fib_lookup(skb, &fib, sizeof(fib), 0);
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
		return bpf_redirect_neigh(fib.ifindex, NULL, 0, 0);
	if (bpf_skb_store_bytes(skb, offsetof(struct ethhdr, h_dest), fib.dmac, ETH_ALEN, 0) ||
	    bpf_skb_store_bytes(skb, offsetof(struct ethhdr, h_source), fib.smac, ETH_ALEN, 0))
		return -DROP_NAT_FAILED;
	return bpf_redirect(fib.ifindex, 0);
}

#endif /* PREP_NODE_SNAT_H */
