/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Backend selection, shared by the socket and the tc load balancer. O(1): a service lookup, at most
 * one affinity, one Maglev and two backend lookups; never a loop over services or backends.
 */
#ifndef PREP_NODE_LB_H
#define PREP_NODE_LB_H

#include "common.h"
#include "maps.h"
#include "lb_hash.h"

static __always_inline struct lb_service *lb_lookup_service(__be32 vip, __be16 port, __u8 proto)
{
	struct lb_svc_key key = { .vip = vip, .port = port, .proto = proto, .scope = 0 };

	return bpf_map_lookup_elem(&services, &key);
}

/*
 * Pick a backend of svc. hash: the flow hash for Maglev; client/kind: who the client is for
 * session affinity. Returns the backend, or NULL with *reason set (DROP_NO_BACKEND, ...).
 * Order: a live affinity entry whose slot still holds the same backend wins; else Maglev table or
 * random slot; the choice is then remembered for affinity.
 */
static __always_inline struct lb_backend *lb_select_backend(const struct lb_service *svc, __u32 hash,
							    __u64 client, __u8 kind, __u32 *reason)
{
	struct lb_backend_key bkey = { .svc_id = svc->svc_id, .slot = 0 };
	struct lb_affinity_key akey = {};
	struct lb_affinity aval = {};
	struct lb_affinity *aff;
	struct lb_backend *be;
	__u32 count = svc->backend_count;
	__u64 now = 0;

	if (count == 0) {
		*reason = svc->flags & SVC_F_LOCAL_ONLY ? DROP_NO_LOCAL_BACKEND : DROP_NO_BACKEND;
		return NULL;
	}

	if (svc->flags & SVC_F_AFFINITY) {
		now = bpf_ktime_get_ns();
		akey.client = client;
		akey.svc_id = svc->svc_id;
		akey.kind = kind;
		aff = bpf_map_lookup_elem(&affinity, &akey);
		if (aff && now - aff->last_used_ns <= (__u64)svc->affinity_timeout_s * NSEC_PER_SEC &&
		    aff->slot < count) {
			bkey.slot = aff->slot;
			be = bpf_map_lookup_elem(&backends, &bkey);
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
		__u64 idx = hash % LB_MAGLEV_M; /* 64-bit: no zero-extension copies that lose the bound */

		/* the compiler turns % into div/mul/sub and the verifier loses the bound: re-check it
		 * on a value the compiler cannot reason about */
		asm volatile("" : "+r"(idx));
		if (idx >= LB_MAGLEV_M)
			idx = 0;
		bkey.slot = table->slot[idx];
	} else {
		bkey.slot = bpf_get_prandom_u32() % count;
	}

	be = bpf_map_lookup_elem(&backends, &bkey);
	if (!be) {
		*reason = DROP_BACKEND_MISSING;
		return NULL;
	}

	if (svc->flags & SVC_F_AFFINITY) {
		aval.last_used_ns = now;
		aval.backend_id = be->backend_id;
		aval.slot = bkey.slot;
		bpf_map_update_elem(&affinity, &akey, &aval, BPF_ANY); /* best effort: LRU */
	}
	return be;
}

/* ---- IPv6 services (services6, backends6): the same selection over IPv6 backends ---- */

static __always_inline struct lb_service *lb6_lookup_service(const __be32 vip[4], __be16 port, __u8 proto)
{
	struct lb6_svc_key key = {};

	key.vip[0] = vip[0];
	key.vip[1] = vip[1];
	key.vip[2] = vip[2];
	key.vip[3] = vip[3];
	key.port = port;
	key.proto = proto;
	return bpf_map_lookup_elem(&services6, &key);
}

/*
 * lb_select_backend() for an IPv6 service: the same order (live affinity entry, then Maglev or a
 * random slot), slots in backends6. aff_map/akey: where the client's affinity entry lives, with a
 * struct lb_affinity value: sockets pass &affinity and a netns-cookie lb_affinity_key (as IPv4
 * sockets do), tc passes &affinity6 and an lb6_affinity_key. svc_ids are one space over both
 * families, so the two families' entries never meet in one map.
 */
static __always_inline struct lb6_backend *lb6_select_backend(const struct lb_service *svc, __u32 hash,
							      void *aff_map, const void *akey,
							      __u32 *reason)
{
	struct lb_backend_key bkey = { .svc_id = svc->svc_id, .slot = 0 };
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
		aff = bpf_map_lookup_elem(aff_map, akey);
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

		asm volatile("" : "+r"(idx)); /* as lb_select_backend() */
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
		bpf_map_update_elem(aff_map, akey, &aval, BPF_ANY); /* best effort: LRU */
	}
	return be;
}

#endif /* PREP_NODE_LB_H */
