/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * conntrack6: the IPv6 flows of tc_lb6 (services and policy-tracked flows), two entries per flow
 * (original and reply direction) as conntrack. Lifetimes by state are IPv4's (lib/ct_gc.h: the
 * same cfg_ct_* knobs, install --ct-timeout, the same CT_F_TCP_* bits); an expired entry is absent
 * on lookup, and `prep-node-dp ct-gc` removes expired entries from both maps.
 */
#ifndef PREP_NODE_CT6_H
#define PREP_NODE_CT6_H

#include "common.h"
#include "maps.h"
#include "parse6.h"
#include "ct_gc.h"

/* the TCP flags byte of p (0 for anything else) */
static __always_inline __u8 ct6_tcp_flags(struct __sk_buff *skb, const struct pkt6 *p)
{
	return ct_tcp_flags_at(skb, p->proto, p->has_l4, p->l4_off);
}

/* Lifetime and state bits of a new entry for p (ct_life_init for IPv6: lib/ct_gc.h ct_life_of). */
static __always_inline void ct6_life_init(struct __sk_buff *skb, const struct pkt6 *p,
					  struct ct6_entry *ent)
{
	ent->lifetime_s = ct_life_of(p->proto, p->has_l4, ct6_tcp_flags(skb, p), &ent->flags);
}

static __always_inline bool ct6_expired(const struct ct6_entry *ent, __u64 now)
{
	return ent->lifetime_s && now - ent->last_seen_ns > (__u64)ent->lifetime_s * NSEC_PER_SEC;
}

/* The entry for key if it is there and alive, else NULL. */
static __always_inline struct ct6_entry *ct6_lookup_live(const struct ct6_key *key, __u64 now)
{
	struct ct6_entry *ct = bpf_map_lookup_elem(&conntrack6, key);

	return ct && !ct6_expired(ct, now) ? ct : NULL;
}

/* key of p's own direction */
static __always_inline void ct6_key_of(const struct pkt6 *p, struct ct6_key *k)
{
	__builtin_memcpy(k->saddr, p->saddr, sizeof(k->saddr));
	__builtin_memcpy(k->daddr, p->daddr, sizeof(k->daddr));
	k->sport = p->sport;
	k->dport = p->dport;
	k->proto = p->proto;
}

/* The other direction's entry of the flow p hit as ct, made closing too (a RST is one-sided). */
static __always_inline void ct6_close_other(const struct pkt6 *p, const struct ct6_entry *ct)
{
	struct ct6_key k = { .proto = p->proto };
	struct ct6_entry *o;

	if (ct->flags & CT_F_DNAT) { /* orig C -> V: reply is B -> C */
		__builtin_memcpy(k.saddr, ct->nat_addr, sizeof(k.saddr));
		__builtin_memcpy(k.daddr, p->saddr, sizeof(k.daddr));
		k.sport = ct->nat_port;
		k.dport = p->sport;
	} else if (ct->flags & CT_F_REVNAT) { /* reply B -> C: orig is C -> V */
		__builtin_memcpy(k.saddr, p->daddr, sizeof(k.saddr));
		__builtin_memcpy(k.daddr, ct->nat_addr, sizeof(k.daddr));
		k.sport = p->dport;
		k.dport = ct->nat_port;
	} else {
		__builtin_memcpy(k.saddr, p->daddr, sizeof(k.saddr));
		__builtin_memcpy(k.daddr, p->saddr, sizeof(k.daddr));
		k.sport = p->dport;
		k.dport = p->sport;
	}
	o = bpf_map_lookup_elem(&conntrack6, &k);
	if (o && !(o->flags & CT_F_TCP_CLOSING)) {
		o->flags |= CT_F_TCP_CLOSING;
		o->lifetime_s = cfg_ct_tcp_closing_s;
	}
}

/* A packet of the flow hit ct: TCP state on, time noted coarsely (ct_refresh for IPv6). */
static __always_inline void ct6_refresh(struct __sk_buff *skb, const struct pkt6 *p,
					struct ct6_entry *ct, __u64 now)
{
	__u8 f = ct6_tcp_flags(skb, p);

	if (f & (TCP_FLAG_FIN | TCP_FLAG_RST)) {
		if (!(ct->flags & CT_F_TCP_CLOSING)) {
			ct->flags |= CT_F_TCP_CLOSING;
			ct->lifetime_s = cfg_ct_tcp_closing_s;
			ct6_close_other(p, ct);
		}
	} else if ((f & TCP_FLAG_ACK) && !(f & TCP_FLAG_SYN) &&
		   !(ct->flags & (CT_F_TCP_CLOSING | CT_F_TCP_ESTABLISHED))) {
		ct->flags |= CT_F_TCP_ESTABLISHED;
		ct->lifetime_s = cfg_ct_tcp_established_s;
	}
	if (now - ct->last_seen_ns > NSEC_PER_SEC)
		ct->last_seen_ns = now;
}

/* Both directions of a new IPv6 flow: orig as received, reply after NAT to daddr:dport (nat) or
 * the plain reverse. 0 or -1. */
static __always_inline int ct6_create(struct __sk_buff *skb, const struct pkt6 *p,
				      const __be32 *daddr, __be16 dport, bool nat, __u32 svc_id)
{
	struct ct6_key k = {};
	struct ct6_entry ent = {};

	ct6_key_of(p, &k);
	ent.last_seen_ns = bpf_ktime_get_ns();
	ent.svc_id = svc_id;
	ct6_life_init(skb, p, &ent);
	if (nat) {
		ent.flags |= CT_F_DNAT;
		__builtin_memcpy(ent.nat_addr, daddr, sizeof(ent.nat_addr));
		ent.nat_port = dport;
	}
	if (bpf_map_update_elem(&conntrack6, &k, &ent, BPF_ANY))
		return -1;
	__builtin_memcpy(k.saddr, daddr, sizeof(k.saddr));
	__builtin_memcpy(k.daddr, p->saddr, sizeof(k.daddr));
	k.sport = dport;
	k.dport = p->sport;
	ent.flags = (ent.flags & CT_F_TCP_STATE) | CT_F_REPLY;
	if (nat) {
		ent.flags |= CT_F_REVNAT;
		__builtin_memcpy(ent.nat_addr, p->daddr, sizeof(ent.nat_addr)); /* the VIP */
		ent.nat_port = p->dport;
	}
	if (bpf_map_update_elem(&conntrack6, &k, &ent, BPF_ANY))
		return -1;
	return 0;
}

#endif /* PREP_NODE_CT6_H */
