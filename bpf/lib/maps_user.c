// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Userspace writers for the datapath maps (see maps_user.h). */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "maps_user.h"

static int update(int fd, const void *key, const void *val)
{
	return bpf_map_update_elem(fd, key, val, BPF_ANY) ? -errno : 0;
}

int dp_service_set(int fd, __be32 vip, __be16 port, __u8 proto, __u32 svc_id, __u32 backend_count,
		   __u32 flags, __u32 affinity_timeout_s)
{
	struct lb_svc_key key = { .vip = vip, .port = port, .proto = proto };
	struct lb_service val = { .svc_id = svc_id, .backend_count = backend_count, .flags = flags,
				  .affinity_timeout_s = affinity_timeout_s };

	return update(fd, &key, &val);
}

int dp_backend_set(int fd, __u32 svc_id, __u32 slot, __be32 addr, __be16 port, __u32 backend_id)
{
	struct lb_backend_key key = { .svc_id = svc_id, .slot = slot };
	struct lb_backend val = { .addr = addr, .port = port, .backend_id = backend_id };

	return update(fd, &key, &val);
}

int dp_maglev_set(int fd, __u32 svc_id, const __u16 *table)
{
	struct lb_maglev_table *val = malloc(sizeof(*val));
	int err;

	if (!val)
		return -ENOMEM;
	memcpy(val->slot, table, sizeof(val->slot));
	err = update(fd, &svc_id, val);
	free(val);
	return err;
}

int dp_endpoint_set(int fd, __be32 addr, __u32 identity, __u32 flags)
{
	struct endpoint_info val = { .identity = identity, .flags = flags };

	return update(fd, &addr, &val);
}

int dp_ipcache_set(int fd, __be32 addr, __u32 prefixlen, __u32 identity)
{
	struct ipcache_key key = { .prefixlen = prefixlen, .addr = addr };
	struct ipcache_entry val = { .identity = identity };

	if (prefixlen > 32)
		return -EINVAL;
	return update(fd, &key, &val);
}

int dp_endpoint6_set(int fd, const __be32 addr[4], __u32 identity, __u32 flags)
{
	struct endpoint6_key key;
	struct endpoint_info val = { .identity = identity, .flags = flags };

	memcpy(key.addr, addr, sizeof(key.addr));
	return update(fd, &key, &val);
}

int dp_ipcache6_set(int fd, const __be32 addr[4], __u32 prefixlen, __u32 identity)
{
	struct ipcache6_key key = { .prefixlen = prefixlen };
	struct ipcache_entry val = { .identity = identity };

	if (prefixlen > 128)
		return -EINVAL;
	memcpy(key.addr, addr, sizeof(key.addr));
	return update(fd, &key, &val);
}

int dp_policy_set(int fd, __u32 local_id, __u32 remote_id, __u8 direction, __u8 proto, __u16 port,
		  unsigned port_bits, __u8 action, __u32 rule_id)
{
	struct policy_key key = { .local_id = local_id, .remote_id = remote_id, .direction = direction };
	struct policy_entry val = { .action = action, .rule_id = rule_id };

	if (port_bits > 16)
		return -EINVAL;
	if (proto == 0) {
		key.prefixlen = POLICY_PREFIX_ANY_PROTO;
	} else {
		/* LPM compares masked bits only, but keep the key canonical: zero the bits past the prefix */
		__u16 mask = port_bits ? (__u16)(0xffffu << (16 - port_bits)) : 0;

		key.prefixlen = POLICY_PREFIX_ANY_PORT + port_bits;
		key.proto = proto;
		key.dport = htobe16(port & mask);
	}
	return update(fd, &key, &val);
}

int dp_policy_set_port_range(int fd, __u32 local_id, __u32 remote_id, __u8 direction, __u8 proto,
			     __u16 lo, __u16 hi, __u8 action, __u32 rule_id)
{
	__u32 start = lo, end = hi;
	int n = 0, err;

	if (lo > hi || proto == 0)
		return -EINVAL;
	while (start <= end) {
		/* the biggest block that starts at start (aligned) and does not pass end */
		unsigned size_bits = start ? __builtin_ctz(start) : 16;

		if (size_bits > 16)
			size_bits = 16;
		while (start + (1u << size_bits) - 1 > end)
			size_bits--;
		err = dp_policy_set(fd, local_id, remote_id, direction, proto, (__u16)start,
				    16 - size_bits, action, rule_id);
		if (err)
			return err;
		n++;
		start += 1u << size_bits;
	}
	return n;
}

int dp_map_clear(int fd)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);
	void *key, *next, *tmp;
	int err = 0, more;

	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		return -errno;
	key = calloc(1, info.key_size);
	next = calloc(1, info.key_size);
	if (!key || !next) {
		free(key);
		free(next);
		return -ENOMEM;
	}
	/*
	 * Find the next key before deleting the current one, so the walk goes on from where it is:
	 * restarting from the first key after every delete made clearing n entries O(n^2) (30k entries
	 * took a minute). A pass that raced with the datapath adding entries is repeated.
	 */
	while (!err && bpf_map_get_next_key(fd, NULL, key) == 0) {
		do {
			more = bpf_map_get_next_key(fd, key, next) == 0;
			if (bpf_map_delete_elem(fd, key) && errno != ENOENT) {
				err = -errno;
				break;
			}
			tmp = key;
			key = next;
			next = tmp;
		} while (more);
	}
	free(key);
	free(next);
	return err;
}

int dp_drop_count(int fd, __u32 reason, struct drop_counter *sum)
{
	int ncpu = libbpf_num_possible_cpus();
	struct drop_counter *per;
	int i;

	if (ncpu < 0)
		return ncpu;
	per = calloc(ncpu, sizeof(*per));
	if (!per)
		return -ENOMEM;
	if (bpf_map_lookup_elem(fd, &reason, per)) {
		free(per);
		return -errno;
	}
	memset(sum, 0, sizeof(*sum));
	for (i = 0; i < ncpu; i++) {
		sum->packets += per[i].packets;
		sum->bytes += per[i].bytes;
	}
	free(per);
	return 0;
}

const char *dp_drop_reason(__u32 reason)
{
	switch (reason) {
#define DROP_REASON(num, name, desc)                                               \
	case num:                                                                  \
		_Static_assert(num > 0 && num < DROP_REASON_MAX, "reason out of range"); \
		return #name ": " desc;
#include "drop_reasons.h"
#undef DROP_REASON
	default:
		return NULL;
	}
}
