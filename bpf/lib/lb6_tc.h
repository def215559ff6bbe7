/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * IPv6 backend selection at tc: services6 -> backends6, the same lb_service and flags as IPv4
 * (lib/lb.h): random slot or Maglev table (maglev is keyed by svc_id, one id space over both
 * families), session affinity by the client's IPv6 address (affinity6). O(1), no loops.
 */
#ifndef PREP_NODE_LB6_TC_H
#define PREP_NODE_LB6_TC_H

#include "common.h"
#include "maps.h"
#include "lb_hash.h"

static __always_inline struct lb_service *lb6_tc_lookup_service(const __be32 *vip, __be16 port,
								__u8 proto)
{
	struct lb6_svc_key key = { .port = port, .proto = proto, .scope = 0 };

	__builtin_memcpy(key.vip, vip, sizeof(key.vip));
	return bpf_map_lookup_elem(&services6, &key);
}

/*
 * Pick an IPv6 backend of svc for client (its address) by hash (the flow hash, for Maglev).
 * Returns the backend, or NULL with *reason set (DROP_NO_BACKEND, DROP_NO_LOCAL_BACKEND, ...).
 * The order is lb_select_backend's: a live affinity entry whose slot still holds the same backend,
 * else Maglev or random, then remembered for affinity.
 */
static __always_inline struct lb6_backend *lb6_tc_select_backend(const struct lb_service *svc,
								 __u32 hash, const __be32 *client,
								 __u32 *reason)
{
	struct lb_backend_key bkey = { .svc_id = svc->svc_id, .slot = 0 };
	struct lb6_affinity_key akey = { .svc_id = svc->svc_id };
	struct lb_affinity aval = {};
	struct lb_affinity *aff;
	struct lb6_backend *be;
	__u32 count = svc->backend_count;
	__u64 now = 0;

	if (count == 0) {
		*reason = svc->flags & SVC_F_LOCAL_ONLY ? DROP_NO_LOCAL_BACKEND : DROP_NO_BACKEND;
		return NULL;
	}

	if (svc->flags & SVC_F_AFFINITY) {
		now = bpf_ktime_get_ns();
		__builtin_memcpy(akey.client, client, sizeof(akey.client));
		aff = bpf_map_lookup_elem(&affinity6, &akey);
		if (aff && now - aff->last_used_ns <= (__u64)svc->affinity_timeout_s * NSEC_PER_SEC &&
		    aff->slot < count) {
			bkey.slot = aff->slot;
			be = bpf_map_lookup_elem(&backends6, &bkey);
			if (be && be->backend_id == aff->backend_id) {
				aff->last_used_ns = now;
				return be;
			}
		}
	}

	if (svc->flags & SVC_F_MAGLEV) {
		__u32 id = svc->svc_id;
		struct lb_maglev_table *table = bpf_map_lookup_elem(&maglev, &id);

		if (!table) {
			*reason = DROP_MAGLEV_MISSING;
			return NULL;
		}
		__u64 idx = hash % LB_MAGLEV_M;

		asm volatile("" : "+r"(idx)); /* as lib/lb.h: keep the bound the verifier sees */
		if (idx >= LB_MAGLEV_M)
			idx = 0;
		bkey.slot = table->slot[idx];
	} else {
		bkey.slot = bpf_get_prandom_u32() % count;
	}

	be = bpf_map_lookup_elem(&backends6, &bkey);
	if (!be) {
		*reason = DROP_BACKEND_MISSING;
		return NULL;
	}

	if (svc->flags & SVC_F_AFFINITY) {
		aval.last_used_ns = now;
		aval.backend_id = be->backend_id;
		aval.slot = bkey.slot;
		bpf_map_update_elem(&affinity6, &akey, &aval, BPF_ANY); /* best effort: LRU */
	}
	return be;
}

#endif /* PREP_NODE_LB6_TC_H */
