/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * L3/L4 policy. Both local ends of a packet are checked wherever the program sees it: the source's
 * egress (if the source is a local endpoint) and the destination's ingress (if the destination is).
 * Each check is at most two LPM lookups (peer identity, IDENTITY_ANY): no loop over rules. CIDR
 * rules work through identities: userspace gives each CIDR an identity in the ipcache trie and
 * writes policy entries for it (a wider CIDR rule also covers the identities of CIDRs inside it).
 */
#ifndef PREP_NODE_POLICY_H
#define PREP_NODE_POLICY_H

#include "common.h"
#include "maps.h"

/* Identity of a peer address: local endpoint, else longest ipcache prefix, else IDENTITY_WORLD. */
static __always_inline __u32 policy_identity(__be32 addr, const struct endpoint_info *ep)
{
	struct ipcache_key key = { .prefixlen = 32, .addr = addr };
	struct ipcache_entry *ent;

	if (ep)
		return ep->identity;
	ent = bpf_map_lookup_elem(&ipcache, &key);
	return ent ? ent->identity : IDENTITY_WORLD;
}

/* The same for an IPv6 peer: endpoints6 entry, else longest ipcache6 prefix, else
 * IDENTITY_WORLD_IPV6 (a rule for 0.0.0.0/0 allows IDENTITY_WORLD, which is not this). */
static __always_inline __u32 policy_identity6(const __be32 *addr, const struct endpoint_info *ep)
{
	struct ipcache6_key key = { .prefixlen = 128 };
	struct ipcache_entry *ent;

	if (ep)
		return ep->identity;
	__builtin_memcpy(key.addr, addr, sizeof(key.addr));
	ent = bpf_map_lookup_elem(&ipcache6, &key);
	return ent ? ent->identity : IDENTITY_WORLD_IPV6;
}

/* Verdict for one direction of one endpoint: 0 (allowed) or a DROP_POLICY_* reason; *rule_id is
 * the rule that decided (deny or allow), 0 for default deny. */
static __always_inline __u32 policy_verdict(__u32 local_id, __u32 remote_id, __u8 direction,
					    __u8 proto, __be16 port, __u32 *rule_id)
{
	struct policy_key key = {
		.prefixlen = POLICY_PREFIX_FULL,
		.local_id = local_id,
		.remote_id = remote_id,
		.direction = direction,
		.proto = proto,
		.dport = port,
	};
	struct policy_entry *by_peer, *by_any;

	by_peer = bpf_map_lookup_elem(&policy, &key);
	key.remote_id = IDENTITY_ANY;
	by_any = bpf_map_lookup_elem(&policy, &key);

	/* deny wins over allow, whichever lookup found it */
	if (by_peer && by_peer->action == POLICY_DENY) {
		*rule_id = by_peer->rule_id;
		return DROP_POLICY_DENY;
	}
	if (by_any && by_any->action == POLICY_DENY) {
		*rule_id = by_any->rule_id;
		return DROP_POLICY_DENY;
	}
	/* allowed: name the rule (the peer's own entry before the any-peer one), for flow events */
	if (by_peer) {
		*rule_id = by_peer->rule_id;
		return 0;
	}
	if (by_any) {
		*rule_id = by_any->rule_id;
		return 0;
	}
	*rule_id = 0; /* an earlier check's allow must not be named in this drop */
	return DROP_POLICY_DEFAULT_DENY; /* the endpoint is selected in this direction: default deny */
}

/*
 * Both checks of a new flow, whatever the address family: the source's egress (if it is a local
 * endpoint enforcing egress) and the destination's ingress. 0 or a DROP_POLICY_* reason; ev gets
 * the direction, identities and rule of the check that decided.
 */
static __always_inline __u32 policy_check(const struct endpoint_info *src_ep,
					  const struct endpoint_info *dst_ep, __u32 src_id,
					  __u32 dst_id, __u8 proto, __be16 port, struct drop_event *ev)
{
	__u32 reason;

	/* the event names the check that decided: the denying one, or for an allowed flow the last
	 * that ran (ingress when the destination enforces it) */
	if (src_ep && (src_ep->flags & EP_F_ENFORCE_EGRESS)) {
		ev->direction = POLICY_EGRESS;
		ev->local_identity = src_id;
		ev->remote_identity = dst_id;
		reason = policy_verdict(src_id, dst_id, POLICY_EGRESS, proto, port, &ev->rule_id);
		if (reason)
			return reason;
	}
	if (dst_ep && (dst_ep->flags & EP_F_ENFORCE_INGRESS)) {
		ev->direction = POLICY_INGRESS;
		ev->local_identity = dst_id;
		ev->remote_identity = src_id;
		reason = policy_verdict(dst_id, src_id, POLICY_INGRESS, proto, port, &ev->rule_id);
		if (reason)
			return reason;
	}
	return 0;
}

#endif /* PREP_NODE_POLICY_H */
