/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Every map of the datapath, BTF-style. Both entry files include this; the loader shares one
 * instance of each map between the objects (bpf_map__reuse_fd) so sock_lb and tc_lb see the same
 * services. max_entries here are defaults; the loader sets the real capacity before load.
 * Hash maps that can be big are BPF_F_NO_PREALLOC: memory is charged per entry written, only the
 * bucket array (16 bytes x max_entries rounded up to a power of two) is allocated at load.
 */
#ifndef PREP_NODE_MAPS_H
#define PREP_NODE_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "datapath_structs.h"

/* services: {VIP, port, proto} -> service (backend count, flags, id) */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LB_SERVICES_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lb_svc_key);
	__type(value, struct lb_service);
} services SEC(".maps");

/* backends: {service id, slot} -> backend address and port */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LB_BACKENDS_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lb_backend_key);
	__type(value, struct lb_backend);
} backends SEC(".maps");

/* maglev: service id -> Maglev lookup table (M backend slots), for SVC_F_MAGLEV services */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LB_MAGLEV_SERVICES_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, struct lb_maglev_table);
} maglev SEC(".maps");

/* affinity: {client, service id} -> last backend and when (SVC_F_AFFINITY services) */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, LB_AFFINITY_MAX);
	__type(key, struct lb_affinity_key);
	__type(value, struct lb_affinity);
} affinity SEC(".maps");

/* sock_revnat: {socket cookie, backend} -> VIP, for getpeername()/recvmsg() */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, LB_SOCK_REVNAT_MAX);
	__type(key, struct lb_sock_revnat_key);
	__type(value, struct lb_sock_revnat);
} sock_revnat SEC(".maps");

/* conntrack: flow tuple -> NAT and direction of the tc datapath's flows */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, CT_MAX);
	__type(key, struct ct_key);
	__type(value, struct ct_entry);
} conntrack SEC(".maps");

/* frags: fragmented datagram -> ports from its first fragment */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, FRAG_MAX);
	__type(key, struct frag_key);
	__type(value, struct frag_ports);
} frags SEC(".maps");

/* endpoints: local endpoint IPv4 address -> identity and default-deny directions */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, ENDPOINTS_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __be32);
	__type(value, struct endpoint_info);
} endpoints SEC(".maps");

/* ipcache: remote prefix -> identity (CIDR identities, remote endpoints); miss = IDENTITY_WORLD */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, IPCACHE_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC); /* LPM tries require it */
	__type(key, struct ipcache_key);
	__type(value, struct ipcache_entry);
} ipcache SEC(".maps");

/* endpoints6: local endpoint IPv6 address -> identity and default-deny directions */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, ENDPOINTS6_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct endpoint6_key);
	__type(value, struct endpoint_info);
} endpoints6 SEC(".maps");

/* ipcache6: remote IPv6 prefix -> identity; miss = IDENTITY_WORLD */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, IPCACHE6_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct ipcache6_key);
	__type(value, struct ipcache_entry);
} ipcache6 SEC(".maps");

/* conntrack6: IPv6 flow tuple -> NAT and direction of the tc datapath's IPv6 flows */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, CT6_MAX);
	__type(key, struct ct6_key);
	__type(value, struct ct6_entry);
} conntrack6 SEC(".maps");

/* services6: {IPv6 VIP, port, proto} -> service (struct lb_service; svc_id shared with IPv4) */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LB6_SERVICES_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lb6_svc_key);
	__type(value, struct lb_service);
} services6 SEC(".maps");

/* backends6: {service id, slot} -> IPv6 backend address and port */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LB6_BACKENDS_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lb_backend_key);
	__type(value, struct lb6_backend);
} backends6 SEC(".maps");

/* affinity6: {IPv6 client, service id} -> last backend and when (tc, SVC_F_AFFINITY services) */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, LB6_AFFINITY_MAX);
	__type(key, struct lb6_affinity_key);
	__type(value, struct lb_affinity);
} affinity6 SEC(".maps");

/* sock_revnat6: {socket cookie, IPv6 backend} -> VIP, for getpeername6()/recvmsg6() */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, LB6_SOCK_REVNAT_MAX);
	__type(key, struct lb6_sock_revnat_key);
	__type(value, struct lb6_sock_revnat);
} sock_revnat6 SEC(".maps");

/* policy: {local id, remote id, direction, proto, port prefix} -> allow/deny */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, POLICY_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct policy_key);
	__type(value, struct policy_entry);
} policy SEC(".maps");

/* node_cfg: key 0 -> this node's SNAT address (state node.addresses); absent = SNAT impossible */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NODE_CFG_MAX);
	__type(key, __u32);
	__type(value, struct node_cfg);
} node_cfg SEC(".maps");

/* node_cfg6: key 0 -> this node's IPv6 SNAT address (state node.addresses, the first IPv6 one);
 * absent = IPv6 SNAT impossible */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NODE_CFG_MAX);
	__type(key, __u32);
	__type(value, struct node_cfg6);
} node_cfg6 SEC(".maps");

/* drop_counters: drop reason -> packets and bytes, per CPU */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, DROP_REASON_MAX);
	__type(key, __u32);
	__type(value, struct drop_counter);
} drop_counters SEC(".maps");

/* svc_counters: service id -> forwarded packets, bytes (tc) and connections (sockets), per CPU.
 * Not preallocated: an entry is made by the first packet/connection of a service. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, LB_SVC_COUNTERS_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, struct svc_counter);
} svc_counters SEC(".maps");

/* events_lost: drop events that did not fit in the ring buffer, per CPU (index 0) */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} events_lost SEC(".maps");

/* events: ring buffer of struct drop_event records, struct drop_event6 for IPv6 flows (drops, and
 * forwarded flows with cfg_flow_events) */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, EVENTS_RINGBUF_BYTES);
} events SEC(".maps");

#endif /* PREP_NODE_MAPS_H */
