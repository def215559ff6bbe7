/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Userspace side of the datapath maps: typed writers for each map, the port-range expansion for
 * policy keys, and counters. Used by the test harnesses; meant for the node loader too. Every
 * function takes a map fd (bpf_map__fd() of a skeleton map) and returns 0 or a negative errno.
 * Addresses and ports are network order, like the map structs.
 */
#ifndef PREP_NODE_MAPS_USER_H
#define PREP_NODE_MAPS_USER_H

#include <linux/types.h>
#include "datapath_structs.h"

/* services[{vip, port, proto}] = {svc_id, backend_count, flags, affinity_timeout_s} */
int dp_service_set(int fd, __be32 vip, __be16 port, __u8 proto, __u32 svc_id, __u32 backend_count,
		   __u32 flags, __u32 affinity_timeout_s);
/* backends[{svc_id, slot}] = {addr, port, backend_id} */
int dp_backend_set(int fd, __u32 svc_id, __u32 slot, __be32 addr, __be16 port, __u32 backend_id);
/* maglev[svc_id] = table (LB_MAGLEV_M slot numbers) */
int dp_maglev_set(int fd, __u32 svc_id, const __u16 *table);
/* endpoints[addr] = {identity, flags} */
int dp_endpoint_set(int fd, __be32 addr, __u32 identity, __u32 flags);
/* ipcache[addr/prefixlen] = identity */
int dp_ipcache_set(int fd, __be32 addr, __u32 prefixlen, __u32 identity);
/* endpoints6[addr] = {identity, flags} (addr: 16 bytes, network order) */
int dp_endpoint6_set(int fd, const __be32 addr[4], __u32 identity, __u32 flags);
/* ipcache6[addr/prefixlen] = identity (prefixlen 0..128; bits past it should be zero) */
int dp_ipcache6_set(int fd, const __be32 addr[4], __u32 prefixlen, __u32 identity);
/* policy: one entry; port_bits = how many leading bits of port count (16 = exact, 0 = any port),
 * proto 0 = any protocol (port ignored) */
int dp_policy_set(int fd, __u32 local_id, __u32 remote_id, __u8 direction, __u8 proto, __u16 port,
		  unsigned port_bits, __u8 action, __u32 rule_id);
/* policy: ports lo..hi (host order, inclusive) as the fewest aligned prefix blocks; returns the
 * number of entries written (>= 1) or a negative errno */
int dp_policy_set_port_range(int fd, __u32 local_id, __u32 remote_id, __u8 direction, __u8 proto,
			     __u16 lo, __u16 hi, __u8 action, __u32 rule_id);
/* delete every entry of a hash, LRU or LPM map (not arrays) */
int dp_map_clear(int fd);
/* drop_counters[reason] summed over CPUs */
int dp_drop_count(int fd, __u32 reason, struct drop_counter *sum);

/* "NAME: description" of a drop reason, NULL for an unknown number. Built with a switch over
 * drop_reasons.h, so a duplicated reason number is a compile error. */
const char *dp_drop_reason(__u32 reason);

#endif /* PREP_NODE_MAPS_USER_H */
