/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Conntrack lifetimes (issue 13 item 3). Every IPv4 conntrack entry carries the seconds it lives
 * after its last packet (ct_entry.lifetime_s), chosen by the flow's state:
 *   TCP opening (a SYN seen, no plain ACK yet)  cfg_ct_tcp_syn_s       60 s
 *   TCP established (an ACK without SYN/FIN/RST) cfg_ct_tcp_established_s 21600 s (6 h)
 *   TCP closing (a FIN or RST seen, sticky)      cfg_ct_tcp_closing_s   10 s
 *   UDP, idle                                    cfg_ct_udp_s           60 s
 *   anything else (ICMP echo, ...), idle         cfg_ct_other_s         60 s
 * These are Cilium's CT_CONNECTION_LIFETIME_TCP / _NONTCP, CT_SYN_TIMEOUT and CT_CLOSE_TIMEOUT
 * (bpf/lib/conntrack.h), not the kernel's nf_conntrack 5 days established / 30-120 s UDP: the
 * entries sit in a bounded map on a small node, and an idle established flow held for 5 days costs
 * two entries for 5 days. The loader sets them at install (`install --ct-timeout name=secs,...`).
 *
 * An expired entry is treated as absent on lookup (ct_lookup_live): the packet is a new flow again
 * and gets a backend the service has now. Removing expired entries is userspace's job
 * (`prep-node-dp ct-gc`, a batch walk of the map): the datapath never walks a map, so it never
 * stalls. A lifetime of 0 (entries written before lifetimes existed, and conntrack6's) never
 * expires by time; the LRU still evicts it.
 */
#ifndef PREP_NODE_CT_GC_H
#define PREP_NODE_CT_GC_H

#include "common.h"
#include "maps.h"
#include "parse.h"

/* knobs, seconds (set by the loader before load: install --ct-timeout) */
const volatile __u32 cfg_ct_tcp_syn_s = 60;
const volatile __u32 cfg_ct_tcp_established_s = 21600;
const volatile __u32 cfg_ct_tcp_closing_s = 10;
const volatile __u32 cfg_ct_udp_s = 60;
const volatile __u32 cfg_ct_other_s = 60;

#define TCP_FLAG_FIN 0x01
#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_RST 0x04
#define TCP_FLAG_ACK 0x10

/* The TCP flags byte at l4_off (0 for anything else); both families' packets. */
static __always_inline __u8 ct_tcp_flags_at(struct __sk_buff *skb, __u8 proto, bool has_l4, __u32 l4_off)
{
	__u8 f = 0;

	if (proto != IPPROTO_TCP || !has_l4)
		return 0;
	if (bpf_skb_load_bytes(skb, l4_off + 13, &f, 1))
		return 0;
	return f;
}

/* the TCP flags byte of p (0 for anything else) */
static __always_inline __u8 ct_tcp_flags(struct __sk_buff *skb, const struct pkt *p)
{
	return ct_tcp_flags_at(skb, p->proto, p->has_l4, p->l4_off);
}

/* A new entry's lifetime, and its TCP state bits or-ed into *flags, from the first packet's protocol
 * and TCP flags: the one decision for conntrack and conntrack6 (lib/ct6.h). */
static __always_inline __u32 ct_life_of(__u8 proto, bool has_l4, __u8 tcp_flags, __u16 *flags)
{
	if (proto == IPPROTO_UDP)
		return cfg_ct_udp_s;
	if (proto != IPPROTO_TCP)
		return cfg_ct_other_s;
	if (tcp_flags & (TCP_FLAG_FIN | TCP_FLAG_RST)) {
		*flags |= CT_F_TCP_CLOSING;
		return cfg_ct_tcp_closing_s;
	}
	if (tcp_flags & TCP_FLAG_SYN || !has_l4)
		return cfg_ct_tcp_syn_s;
	*flags |= CT_F_TCP_ESTABLISHED; /* picked up mid-stream (an ACK): established */
	return cfg_ct_tcp_established_s;
}

/* Lifetime and state bits of a new entry for p, into *ent (flags are or-ed in). */
static __always_inline void ct_life_init(struct __sk_buff *skb, const struct pkt *p,
					 struct ct_entry *ent)
{
	ent->lifetime_s = ct_life_of(p->proto, p->has_l4, ct_tcp_flags(skb, p), &ent->flags);
}

/* Has ent outlived its lifetime at now (bpf_ktime_get_ns)? */
static __always_inline bool ct_expired(const struct ct_entry *ent, __u64 now)
{
	return ent->lifetime_s && now - ent->last_seen_ns > (__u64)ent->lifetime_s * NSEC_PER_SEC;
}

/* The entry for key if it is there and alive, else NULL. */
static __always_inline struct ct_entry *ct_lookup_live(const struct ct_key *key, __u64 now)
{
	struct ct_entry *ct = bpf_map_lookup_elem(&conntrack, key);

	return ct && !ct_expired(ct, now) ? ct : NULL;
}

/* The other direction's entry of the flow p hit as ct, made closing too (a RST is one-sided). */
static __always_inline void ct_close_other(const struct pkt *p, const struct ct_entry *ct)
{
	struct ct_key k = { .proto = p->proto };
	struct ct_entry *o;

	if (ct->flags & CT_F_DNAT) { /* orig C -> V: reply is B -> C (B -> node:port if SNATed) */
		k.saddr = ct->nat_addr;
		k.daddr = ct->flags & CT_F_SNAT ? ct->snat_addr : p->saddr;
		k.sport = ct->nat_port;
		k.dport = ct->flags & CT_F_SNAT ? ct->snat_port : p->sport;
	} else if (ct->flags & CT_F_REVNAT) { /* reply B -> C (or B -> node:port): orig is C -> V */
		k.saddr = ct->flags & CT_F_SNAT ? ct->snat_addr : p->daddr;
		k.daddr = ct->nat_addr;
		k.sport = ct->flags & CT_F_SNAT ? ct->snat_port : p->dport;
		k.dport = ct->nat_port;
	} else {
		k.saddr = p->daddr;
		k.daddr = p->saddr;
		k.sport = p->dport;
		k.dport = p->sport;
	}
	o = bpf_map_lookup_elem(&conntrack, &k);
	if (o && !(o->flags & CT_F_TCP_CLOSING)) {
		o->flags |= CT_F_TCP_CLOSING;
		o->lifetime_s = cfg_ct_tcp_closing_s;
	}
}

/* A packet of the flow hit ct: move its TCP state on and note the time (coarsely, to keep writes to
 * shared cache lines rare: once a second, or when the state changes). */
static __always_inline void ct_refresh(struct __sk_buff *skb, const struct pkt *p,
				       struct ct_entry *ct, __u64 now)
{
	__u8 f = ct_tcp_flags(skb, p);

	if (f & (TCP_FLAG_FIN | TCP_FLAG_RST)) {
		if (!(ct->flags & CT_F_TCP_CLOSING)) {
			ct->flags |= CT_F_TCP_CLOSING;
			ct->lifetime_s = cfg_ct_tcp_closing_s;
			ct_close_other(p, ct);
		}
	} else if ((f & TCP_FLAG_ACK) && !(f & TCP_FLAG_SYN) &&
		   !(ct->flags & (CT_F_TCP_CLOSING | CT_F_TCP_ESTABLISHED))) {
		ct->flags |= CT_F_TCP_ESTABLISHED;
		ct->lifetime_s = cfg_ct_tcp_established_s;
	}
	if (now - ct->last_seen_ns > NSEC_PER_SEC)
		ct->last_seen_ns = now;
}

#endif /* PREP_NODE_CT_GC_H */
