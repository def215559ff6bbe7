// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * tc (clsact, direct-action) datapath for packets that do not come from a local socket: forwarded
 * and NodePort traffic. Per packet, in this order:
 *   0. IPv6: the same steps with the IPv6 maps (services6, backends6, conntrack6, endpoints6,
 *      node_cfg6), SNAT included (tc_lb6 below, lib/snat6.h);
 *   1. parse IPv4 (malformed/truncated -> numbered drops; neither IPv4 nor IPv6 -> pass untouched);
 *   2. ICMP errors quoting a NATed flow are translated back, inner header included (icmp_nat.h),
 *      and pass; ICMP fragmentation-needed passes, always (path MTU discovery must keep working);
 *   3. fragments: ports from the first fragment (frags map);
 *   4. conntrack hit: established flow or reply of an allowed one -> NAT as recorded, pass;
 *   5. new flow: service lookup -> backend (DNAT), then policy on the translated tuple, then two
 *      conntrack entries (original and reply direction), then the rewrite, then one FORWARDED
 *      event (cfg_flow_events) for the flow. A flow to a remote backend of an external address,
 *      or a hairpin flow, is also SNATed to the node's address (lib/snat.h); packets whose source
 *      becomes the node's address are forwarded by FIB lookup and redirect; one too big for the
 *      route, with DF, goes back to its sender as ICMP fragmentation-needed (lib/snat.h).
 * Service flows (new and established, both directions) count packets and bytes in svc_counters.
 * Attach on ingress of the node's uplink and of the host side of pod veths (the loader's job).
 */
#include "lib/common.h"
#include "lib/maps.h"
#include "lib/drop.h"
#include "lib/parse.h"
#include "lib/parse6.h"
#include "lib/nat.h"
#include "lib/lb.h"
#include "lib/policy.h"
#include "lib/icmp_nat.h"
#include "lib/ct_gc.h"
#include "lib/snat.h"
#include "lib/nat6.h"
#include "lib/ct6.h"
#include "lib/icmp6_nat.h"
#include "lib/snat6.h"

/* Count, report and drop. */
static __always_inline int tc_drop(struct __sk_buff *skb, struct drop_event *ev, __u32 reason)
{
	ev->reason = reason;
	drop_record(ev);
	return TC_ACT_SHOT;
}

/* IPv6: count, report with the flow's addresses (saddr, daddr: 16 bytes each) and drop. */
static __always_inline int tc6_drop(struct drop_event *ev, const __be32 *saddr, const __be32 *daddr,
				    __u32 reason)
{
	ev->reason = reason;
	drop_record6(ev, saddr, daddr);
	return TC_ACT_SHOT;
}

/* lib/snat.h's forward: its verdict, or its -DROP_* counted and dropped. FRAG_NEEDED is counted too,
 * and the packet, now ICMP fragmentation-needed to its sender, goes back out of the device it came
 * in on. p: the packet as received (NULL for an ICMP error, never answered with one). */
static __always_inline int tc_fib_forward(struct __sk_buff *skb, const struct pkt *p,
					  struct drop_event *ev)
{
	int ret = snat_fib_forward(skb, p);

	if (ret == -DROP_FRAG_NEEDED) {
		ev->reason = DROP_FRAG_NEEDED;
		drop_record(ev);
		return bpf_redirect(skb->ifindex, 0);
	}
	return ret < 0 ? tc_drop(skb, ev, -ret) : ret;
}

/* lib/snat6.h's forward, as tc_fib_forward: its verdict, or its -DROP_* counted and dropped; FRAG_NEEDED
 * counted and the packet, now ICMPv6 packet too big to its sender, sent back out of the device it came
 * in on. p: the packet as received (NULL for an ICMPv6 error, never answered with one); saddr, daddr:
 * what the event names. */
static __always_inline int tc_fib_forward6(struct __sk_buff *skb, const struct pkt6 *p,
					   struct drop_event *ev, const __be32 *saddr, const __be32 *daddr)
{
	int ret = snat6_fib_forward(skb, p);

	if (ret == -DROP_FRAG_NEEDED) {
		ev->reason = DROP_FRAG_NEEDED;
		drop_record6(ev, saddr, daddr);
		return bpf_redirect(skb->ifindex, 0);
	}
	return ret < 0 ? tc6_drop(ev, saddr, daddr, -ret) : ret;
}

/* Both directions of a new flow into conntrack: orig (as received) and its reply after NAT. */
static __always_inline int ct_create(struct __sk_buff *skb, const struct pkt *p, __be32 daddr,
				     __be16 dport, bool nat, __u32 svc_id)
{
	struct ct_key orig = { .saddr = p->saddr, .daddr = p->daddr, .sport = p->sport,
			       .dport = p->dport, .proto = p->proto };
	struct ct_key reply = { .saddr = daddr, .daddr = p->saddr, .sport = dport,
				.dport = p->sport, .proto = p->proto };
	struct ct_entry ent = {};

	ent.last_seen_ns = bpf_ktime_get_ns();
	ent.svc_id = svc_id;
	ct_life_init(skb, p, &ent); /* lifetime and TCP state bits, the same for both directions */
	if (nat) {
		ent.flags |= CT_F_DNAT;
		ent.nat_addr = daddr;
		ent.nat_port = dport;
	}
	if (bpf_map_update_elem(&conntrack, &orig, &ent, BPF_ANY))
		return -1;
	ent.flags = (ent.flags & CT_F_TCP_STATE) | CT_F_REPLY;
	if (nat) {
		ent.flags |= CT_F_REVNAT;
		ent.nat_addr = p->daddr; /* the VIP */
		ent.nat_port = p->dport;
	}
	if (bpf_map_update_elem(&conntrack, &reply, &ent, BPF_ANY))
		return -1;
	return 0;
}

/* Policy for a new flow saddr:sport -> daddr:dport (after DNAT). 0 or a DROP_POLICY_* reason. */
static __always_inline __u32 tc_policy(const struct pkt *p, __be32 daddr, __be16 policy_port,
				       struct drop_event *ev, bool *tracked)
{
	struct endpoint_info *src_ep = bpf_map_lookup_elem(&endpoints, &p->saddr);
	struct endpoint_info *dst_ep = bpf_map_lookup_elem(&endpoints, &daddr);
	__u32 src_id, dst_id;

	/* replies must pass an enforcing endpoint later: track every flow that touches one */
	*tracked = (src_ep && src_ep->flags) || (dst_ep && dst_ep->flags);
	if (!*tracked)
		return 0;

	src_id = policy_identity(p->saddr, src_ep);
	dst_id = policy_identity(daddr, dst_ep);
	return policy_check(src_ep, dst_ep, src_id, dst_id, p->proto, policy_port, ev);
}

/* Is addr an IPv6 endpoint that enforces a direction? *ep gets its entry (NULL: not a local one). */
static __always_inline bool tc6_enforcing(const __be32 *addr, struct endpoint_info **ep)
{
	struct endpoint6_key ek = {};

	__builtin_memcpy(ek.addr, addr, sizeof(ek.addr));
	*ep = bpf_map_lookup_elem(&endpoints6, &ek);
	return *ep && (*ep)->flags;
}

/*
 * IPv6 fragments (not tracked: reassembly state for IPv6 is not kept). A fragment to or from a
 * policy-enforcing endpoint is dropped (a later fragment carries no ports: passing it unchecked
 * would be a bypass), and so is a first fragment to an IPv6 service or of a flow conntrack6 knows
 * (its later fragments could not follow it to the backend). DROP_IPV6_FRAGMENT either way. A later
 * fragment toward a VIP passes untouched: without its first fragment nothing can reassemble it.
 */
static __always_inline int tc6_fragment(struct __sk_buff *skb, const struct pkt6 *p,
					struct drop_event *ev)
{
	struct endpoint_info *src_ep, *dst_ep;
	struct ct6_key ckey = {};
	bool enforcing = tc6_enforcing(p->saddr, &src_ep);

	enforcing |= tc6_enforcing(p->daddr, &dst_ep);
	if (enforcing)
		return tc6_drop(ev, p->saddr, p->daddr, DROP_IPV6_FRAGMENT);
	if (p->fragment != 1)
		return TC_ACT_OK;
	ct6_key_of(p, &ckey);
	if (ct6_lookup_live(&ckey, bpf_ktime_get_ns()) ||
	    ((p->proto == IPPROTO_TCP || p->proto == IPPROTO_UDP || p->proto == IPPROTO_SCTP) &&
	     lb6_lookup_service(p->daddr, p->dport, p->proto)))
		return tc6_drop(ev, p->saddr, p->daddr, DROP_IPV6_FRAGMENT);
	return TC_ACT_OK;
}

/*
 * IPv6, the same steps as IPv4 (the file's header) with the IPv6 maps: ICMPv6 errors quoting a
 * NATed flow translated back (icmp6_nat.h), packet too big and neighbor discovery always pass;
 * fragments as tc6_fragment says; conntrack6 hit -> NAT as recorded; a new flow to a services6 VIP
 * gets a backends6 backend (DNAT), policy runs on the translated tuple (endpoints6, ipcache6), two
 * conntrack6 entries with IPv4's lifetimes. Hairpin and an external address's remote backend are
 * SNATed to the node's IPv6 address (lib/snat6.h, node_cfg6); packets whose source becomes the
 * node's address are forwarded by FIB lookup. Extension headers before the L4 header are walked by
 * parse6.h and NAT works behind them (the L4 offset is parse6's). Locals live in the narrowest
 * block: tc_lb's stack (both families inlined) is near the 512 bytes 5.10 and 6.1 allow.
 */
static __always_inline int tc_lb6(struct __sk_buff *skb, struct drop_event *ev)
{
	struct pkt6 p = {};
	struct endpoint_info *src_ep, *dst_ep;
	struct lb_service *svc = NULL;
	struct lb6_backend *be;
	__be32 daddr[4], snat_addr[4];
	__be16 dport, policy_port, snat_port = 0;
	__u32 src_id, dst_id, reason = 0;
	bool nat = false, tracked, snat = false, external = false;
	int ret = 0;

	ev->hook = HOOK_TC6;
	ret = parse_ipv6(skb, &p);
	ev->proto = p.proto;
	ev->sport = p.sport;
	ev->dport = p.dport;
	if (ret)
		return tc6_drop(ev, p.saddr, p.daddr, ret);

	if (icmp6_is_error(&p)) { /* of a NATed flow: translated back, inner header too */
		bool fib = false;

		ret = icmp6_err_nat(skb, &p, &ev->svc_id, &fib);
		if (ret > 0)
			return tc6_drop(ev, p.saddr, p.daddr, ret);
		if (ret == 0)
			return fib ? tc_fib_forward6(skb, NULL, ev, p.saddr, p.daddr) : TC_ACT_OK;
		ret = 0;
	}
	if (p.proto == IPPROTO_ICMPV6 && p.has_l4 &&
	    (p.icmp_type == ICMPV6_PKT_TOOBIG_T ||
	     (p.icmp_type >= ICMPV6_NDISC_FIRST_T && p.icmp_type <= ICMPV6_NDISC_LAST_T)))
		return TC_ACT_OK;
	if (p.fragment)
		return tc6_fragment(skb, &p, ev);

	/* established flows and replies of allowed ones: as recorded, no policy */
	{
		struct ct6_key ckey = {};
		struct ct6_entry *ct;
		__u16 ct_flags;
		__u32 svc_id;

		ct6_key_of(&p, &ckey);
		ct = ct6_lookup_live(&ckey, bpf_ktime_get_ns());
		if (ct) {
			ct6_refresh(skb, &p, ct, bpf_ktime_get_ns());
			if (ct->flags & CT_F_DNAT)
				ret = nat6_rewrite(skb, &p, NAT_DST, ct->nat_addr, ct->nat_port);
			else if (ct->flags & CT_F_REVNAT)
				ret = nat6_rewrite(skb, &p, NAT_SRC, ct->nat_addr, ct->nat_port);
			ct_flags = ct->flags;
			svc_id = ct->svc_id;
			if (!ret)
				ret = snat6_rewrite(skb, &p, ct_flags, ct->snat_addr, ct->snat_port);
			if (ret)
				return tc6_drop(ev, p.saddr, p.daddr, DROP_NAT_FAILED);
			if (ct_flags & (CT_F_DNAT | CT_F_REVNAT))
				svc_count(svc_id, 1, skb->len, 0);
			if (ct_flags & CT_F_FIB)
				return tc_fib_forward6(skb, &p, ev, p.saddr, p.daddr);
			return TC_ACT_OK;
		}
	}

	/* a new flow: IPv6 service? */
	__builtin_memcpy(daddr, p.daddr, sizeof(daddr));
	dport = p.dport;
	policy_port = p.policy_port;
	if (p.proto == IPPROTO_TCP || p.proto == IPPROTO_UDP || p.proto == IPPROTO_SCTP)
		svc = lb6_lookup_service(p.daddr, p.dport, p.proto);
	if (svc) {
		struct lb6_affinity_key akey = {};

		ev->svc_id = svc->svc_id;
		__builtin_memcpy(akey.client, p.saddr, sizeof(akey.client));
		akey.svc_id = svc->svc_id;
		be = lb6_select_backend(svc, lb_flow_hash6(p.saddr, p.daddr, p.sport, p.dport, p.proto),
					&affinity6, &akey, &reason);
		if (!be)
			return tc6_drop(ev, p.saddr, daddr, reason);
		__builtin_memcpy(daddr, be->addr, sizeof(daddr));
		dport = be->port;
		policy_port = be->port;
		nat = true;
		ev->dport = dport;
		/* hairpin, or an external address's remote backend: SNAT to the node's address */
		snat = snat6_needed(svc, be, &p);
		external = svc->flags & SVC_F_EXTERNAL;
	}

	tracked = tc6_enforcing(p.saddr, &src_ep);
	tracked |= tc6_enforcing(daddr, &dst_ep);
	if (!nat && !tracked)
		return TC_ACT_OK; /* no service, no enforcing endpoint: nothing to decide or track */
	if (tracked) {
		src_id = policy_identity6(p.saddr, src_ep);
		dst_id = policy_identity6(daddr, dst_ep);
		reason = policy_check(src_ep, dst_ep, src_id, dst_id, p.proto, policy_port, ev);
		if (reason)
			return tc6_drop(ev, p.saddr, daddr, reason);
	}
	if (snat) {
		reason = snat6_ct_create(skb, &p, daddr, dport, ev->svc_id, snat_addr, &snat_port);
		if (reason)
			return tc6_drop(ev, p.saddr, daddr, reason);
	} else {
		if (ct6_create(skb, &p, daddr, dport, nat, ev->svc_id))
			return tc6_drop(ev, p.saddr, daddr, DROP_CT_CREATE_FAILED);
		if (external)
			snat6_mark_reply_fib(&p, daddr, dport);
	}
	if (nat && nat6_rewrite(skb, &p, NAT_DST, daddr, dport))
		return tc6_drop(ev, p.saddr, daddr, DROP_NAT_FAILED);
	if (snat && nat6_rewrite(skb, &p, NAT_SRC, snat_addr, snat_port))
		return tc6_drop(ev, p.saddr, daddr, DROP_NAT_FAILED);
	flow_record6(ev, p.saddr, daddr); /* a new flow with state: one event (later packets hit conntrack6) */
	if (nat)
		svc_count(ev->svc_id, 1, skb->len, 0);
	if (snat)
		return tc_fib_forward6(skb, &p, ev, p.saddr, daddr);
	return TC_ACT_OK;
}

SEC("tc")
int tc_lb(struct __sk_buff *skb)
{
	struct pkt p = {};
	struct drop_event ev = {};
	struct ct_key ckey = {};
	struct ct_entry *ct;
	struct lb_service *svc = NULL;
	struct lb_backend *be;
	__be32 daddr;
	__be16 dport, policy_port;
	__u32 reason = 0;
	bool nat = false, tracked = false, snat = false, external = false;
	__be32 snat_addr = 0;
	__be16 snat_port = 0;
	__u16 ct_flags;
	int ret;

	ev.hook = HOOK_TC;
	ev.ifindex = skb->ifindex;
	ev.len = skb->len;

	if (skb->protocol == bpf_htons(ETH_P_IPV6))
		return tc_lb6(skb, &ev);
	ret = parse_ipv4(skb, &p);
	if (ret == PARSE_NOT_IPV4)
		return TC_ACT_OK;
	ev.saddr = p.saddr;
	ev.daddr = p.daddr;
	ev.proto = p.proto;
	ev.sport = p.sport;
	ev.dport = p.dport;
	if (ret)
		return tc_drop(skb, &ev, ret);

	if (icmp_is_error(&p)) { /* of a NATed flow: translated back, inner header too */
		bool fib = false;

		ret = icmp_err_nat(skb, &p, &ev.svc_id, &fib);
		if (ret > 0)
			return tc_drop(skb, &ev, ret);
		if (ret == 0)
			return fib ? tc_fib_forward(skb, NULL, &ev) : TC_ACT_OK;
		ret = 0;
	}
	if (p.proto == IPPROTO_ICMP && p.has_l4 && p.icmp_type == ICMP_DEST_UNREACH_T &&
	    p.icmp_code == ICMP_FRAG_NEEDED_C)
		return TC_ACT_OK;

	if (p.fragment) {
		ret = frag_track(&p);
		if (ret)
			return tc_drop(skb, &ev, ret);
		ev.sport = p.sport;
		ev.dport = p.dport;
	}

	/* established flows and replies of allowed ones: as recorded, no policy */
	ckey.saddr = p.saddr;
	ckey.daddr = p.daddr;
	ckey.sport = p.sport;
	ckey.dport = p.dport;
	ckey.proto = p.proto;
	ct = ct_lookup_live(&ckey, bpf_ktime_get_ns()); /* expired = absent: a new flow again */
	if (ct) {
		ct_refresh(skb, &p, ct, bpf_ktime_get_ns());
		if (ct->flags & CT_F_DNAT)
			ret = nat_rewrite(skb, &p, NAT_DST, ct->nat_addr, ct->nat_port);
		else if (ct->flags & CT_F_REVNAT)
			ret = nat_rewrite(skb, &p, NAT_SRC, ct->nat_addr, ct->nat_port);
		ct_flags = ct->flags;
		if (!ret)
			ret = snat_rewrite(skb, &p, ct_flags, ct->snat_addr, ct->snat_port);
		if (ret)
			return tc_drop(skb, &ev, DROP_NAT_FAILED);
		if (ct_flags & (CT_F_DNAT | CT_F_REVNAT))
			svc_count(ct->svc_id, 1, skb->len, 0); /* both directions of a service flow */
		if (ct_flags & CT_F_FIB)
			return tc_fib_forward(skb, &p, &ev);
		return TC_ACT_OK;
	}

	/* a new flow: service? */
	daddr = p.daddr;
	dport = p.dport;
	policy_port = p.policy_port;
	if (p.proto == IPPROTO_TCP || p.proto == IPPROTO_UDP || p.proto == IPPROTO_SCTP)
		svc = lb_lookup_service(p.daddr, p.dport, p.proto);
	if (svc) {
		ev.svc_id = svc->svc_id;
		be = lb_select_backend(svc, lb_flow_hash(p.saddr, p.daddr, p.sport, p.dport, p.proto),
				       (__u64)p.saddr, AFFINITY_CLIENT_IP, &reason);
		if (!be)
			return tc_drop(skb, &ev, reason);
		daddr = be->addr;
		dport = be->port;
		policy_port = be->port;
		nat = true;
		snat = snat_needed(svc, be, &p);
		external = svc->flags & SVC_F_EXTERNAL;
	}

	ev.daddr = daddr;
	ev.dport = dport;
	reason = tc_policy(&p, daddr, policy_port, &ev, &tracked);
	if (reason)
		return tc_drop(skb, &ev, reason);

	if (snat) {
		reason = snat_ct_create(skb, &p, daddr, dport, ev.svc_id, &snat_addr, &snat_port);
		if (reason)
			return tc_drop(skb, &ev, reason);
	} else if (nat || tracked) {
		if (ct_create(skb, &p, daddr, dport, nat, ev.svc_id))
			return tc_drop(skb, &ev, DROP_CT_CREATE_FAILED);
		if (external)
			snat_mark_reply_fib(&p, daddr, dport);
	}
	if (nat && nat_rewrite(skb, &p, NAT_DST, daddr, dport))
		return tc_drop(skb, &ev, DROP_NAT_FAILED);
	if (snat && nat_rewrite(skb, &p, NAT_SRC, snat_addr, snat_port))
		return tc_drop(skb, &ev, DROP_NAT_FAILED);
	if (nat || tracked) {
		/* a new flow with state: one event (later packets hit conntrack above) */
		ev.daddr = daddr;
		ev.dport = dport;
		flow_record(&ev);
	}
	if (nat)
		svc_count(ev.svc_id, 1, skb->len, 0);
	if (snat)
		return tc_fib_forward(skb, &p, &ev);
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
