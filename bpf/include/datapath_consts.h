/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Constants shared by the BPF programs and userspace (loader, tests, TypeScript mirror).
 * Map sizes are defaults only: the loader sets the real capacity with bpf_map__set_max_entries()
 * between open and load, so none of these needs a recompile; #ifndef lets a build override them.
 */
#ifndef PREP_NODE_DATAPATH_CONSTS_H
#define PREP_NODE_DATAPATH_CONSTS_H

/* Drop reasons as an enum: DROP_POLICY_DENY = 1, ... (table in drop_reasons.h). */
enum drop_reason {
	DROP_NONE = 0, /* not dropped; never sent as an event */
#define DROP_REASON(num, name, desc) DROP_##name = num,
#include "drop_reasons.h"
#undef DROP_REASON
};

/* Size of the per-reason counter array; every reason number must stay below it. */
#ifndef DROP_REASON_MAX
#define DROP_REASON_MAX 64
#endif

/* ---- default capacities (entries), overridden at load time by the loader ---- */

/* services: 2^20 = 1,048,576 >= the 1,000,000 services the issue asks for (hash, not preallocated). */
#ifndef LB_SERVICES_MAX
#define LB_SERVICES_MAX (1 << 20)
#endif
/* backend slots over all services (hash, not preallocated: costs only its bucket array up front). */
#ifndef LB_BACKENDS_MAX
#define LB_BACKENDS_MAX (1 << 21)
#endif
/* services that use Maglev; each entry is a whole table of LB_MAGLEV_M slots (not preallocated). */
#ifndef LB_MAGLEV_SERVICES_MAX
#define LB_MAGLEV_SERVICES_MAX (1 << 14)
#endif
/* Maglev table size M per service: a prime, the table is computed by userspace. 1021 keeps the
 * per-backend share within ~1% for up to 10 backends (Maglev paper: M >> 100 * N); raise it for
 * bigger services with -DLB_MAGLEV_M=4093 (or 16381, cilium's default). */
#ifndef LB_MAGLEV_M
#define LB_MAGLEV_M 1021
#endif
/* session-affinity entries {client, service} -> backend (LRU: the oldest clients fall out first). */
#ifndef LB_AFFINITY_MAX
#define LB_AFFINITY_MAX (1 << 16)
#endif
/* socket cookie + backend -> VIP, so getpeername()/recvmsg() show the VIP (LRU). */
#ifndef LB_SOCK_REVNAT_MAX
#define LB_SOCK_REVNAT_MAX (1 << 18)
#endif
/* conntrack entries for tc: two per flow (original and reply direction) (LRU). */
#ifndef CT_MAX
#define CT_MAX (1 << 18)
#endif
/* IPv6 conntrack entries for tc (IPv6 service and policy-tracked flows, two per flow) (LRU). */
#ifndef CT6_MAX
#define CT6_MAX (1 << 16)
#endif
/* IPv6 services: {VIP6, port, proto} -> service (hash, not preallocated; ids shared with IPv4). */
#ifndef LB6_SERVICES_MAX
#define LB6_SERVICES_MAX (1 << 18)
#endif
/* IPv6 backend slots over all IPv6 services (hash, not preallocated). */
#ifndef LB6_BACKENDS_MAX
#define LB6_BACKENDS_MAX (1 << 19)
#endif
/* session-affinity entries {IPv6 client, service} -> backend, tc only (LRU). */
#ifndef LB6_AFFINITY_MAX
#define LB6_AFFINITY_MAX (1 << 14)
#endif
/* socket cookie + IPv6 backend -> VIP6 for getpeername6()/recvmsg6() (LRU). */
#ifndef LB6_SOCK_REVNAT_MAX
#define LB6_SOCK_REVNAT_MAX (1 << 16)
#endif
/* IPv4 datagrams being fragmented: {src, dst, id, proto} -> ports of the first fragment (LRU). */
#ifndef FRAG_MAX
#define FRAG_MAX 8192
#endif
/* local endpoints: address -> identity and which directions are default-deny. */
#ifndef ENDPOINTS_MAX
#define ENDPOINTS_MAX (1 << 16)
#endif
/* local IPv6 endpoint addresses (a dual-stack pod has one here and one in endpoints). */
#ifndef ENDPOINTS6_MAX
#define ENDPOINTS6_MAX (1 << 16)
#endif
/* remote prefixes (CIDRs, remote pods, nodes) -> identity: an LPM trie. */
#ifndef IPCACHE_MAX
#define IPCACHE_MAX (1 << 16)
#endif
/* remote IPv6 prefixes -> identity: an LPM trie (CIDR rules in IPv6). */
#ifndef IPCACHE6_MAX
#define IPCACHE6_MAX (1 << 16)
#endif
/* IPv6 extension headers the tc parser walks before the L4 header; a longer chain is refused
 * (DROP_IPV6_EXTHDR_LIMIT). Hop-by-hop, routing, destination options, fragment and AH count. */
#ifndef IPV6_MAX_EXTHDRS
#define IPV6_MAX_EXTHDRS 6
#endif
/* policy entries {local id, remote id, direction, proto, port prefix} -> allow/deny: an LPM trie. */
#ifndef POLICY_MAX
#define POLICY_MAX (1 << 18)
#endif
/* per-service forwarded counters (per-CPU hash keyed by svc_id; ids are hashes, not dense); the
 * loader sizes it like services unless --cap svc_counters=N says otherwise. */
#ifndef LB_SVC_COUNTERS_MAX
#define LB_SVC_COUNTERS_MAX (1 << 20)
#endif
/* drop-event ring buffer in bytes (a power of two and a multiple of the page size). */
#ifndef EVENTS_RINGBUF_BYTES
#define EVENTS_RINGBUF_BYTES (256 * 1024)
#endif

/* node_cfg: one entry (key 0); a hash so that sync can clear and rewrite it like the others */
#ifndef NODE_CFG_MAX
#define NODE_CFG_MAX 1
#endif

/* ---- service flags (struct lb_service.flags) ---- */

/* pick the backend with the service's Maglev table instead of at random */
#define SVC_F_MAGLEV (1 << 0)
/* remember the client's backend for affinity_timeout_s seconds (ClientIP session affinity) */
#define SVC_F_AFFINITY (1 << 1)
/* an external address (NodePort, load balancer IP, externalIP): a flow to a remote backend
 * (BE_F_REMOTE) is SNATed to the node's address so the reply comes back through this node */
#define SVC_F_EXTERNAL (1 << 2)
/* externalTrafficPolicy / internalTrafficPolicy Local: the backends are this node's only; none
 * (backend_count 0) drops with DROP_NO_LOCAL_BACKEND instead of DROP_NO_BACKEND */
#define SVC_F_LOCAL_ONLY (1 << 3)

/* ---- backend flags (struct lb_backend.flags) ---- */

/* the backend runs on another node (reached through the node network, not a local veth) */
#define BE_F_REMOTE (1 << 0)

/* ---- SNAT ---- */

/* source ports tried for one new SNATed flow (hash, then the next ones) before DROP_SNAT_NO_PORT */
#define SNAT_PORT_TRIES 8

/* affinity client kinds (struct lb_affinity_key.kind): who "the client" is */
#define AFFINITY_CLIENT_IP 0    /* tc: the client's IPv4 address */
#define AFFINITY_CLIENT_NETNS 1 /* sockets: the network namespace cookie (no source address yet at connect) */

/* ---- conntrack flags (struct ct_entry.flags) ---- */

/* original direction of a service flow: rewrite destination to nat_addr:nat_port */
#define CT_F_DNAT (1 << 0)
/* reply direction of a service flow: rewrite source to nat_addr:nat_port (the VIP) */
#define CT_F_REVNAT (1 << 1)
/* this entry is the reply direction of a flow that passed policy */
#define CT_F_REPLY (1 << 2)
/* SNATed flow: also rewrite the source (original direction) or destination (reply direction) to
 * snat_addr:snat_port */
#define CT_F_SNAT (1 << 4)
/* after the rewrite, forward by FIB lookup and redirect: the packet's source is now this node's
 * own address (SNAT, or a reply from an external VIP that is the node's address), which the
 * kernel's input route would drop as a martian */
#define CT_F_FIB (1 << 5)
/* TCP state (lib/ct_gc.h), high bits so other CT_F_* flags can grow from the bottom: a plain ACK
 * was seen (lifetime: established), a FIN or RST was seen in either direction (lifetime: closing) */
#define CT_F_TCP_ESTABLISHED (1 << 8)
#define CT_F_TCP_CLOSING (1 << 9)
/* the state bits, which both directions' entries of a new flow start with */
#define CT_F_TCP_STATE (CT_F_TCP_ESTABLISHED | CT_F_TCP_CLOSING)

/* ---- identities (cilium's numbering for the reserved ones) ---- */

/* wildcard remote identity in policy keys: "any peer" */
#define IDENTITY_ANY 0
/* the node itself */
#define IDENTITY_HOST 1
/* any address no endpoint or ipcache prefix claims */
#define IDENTITY_WORLD 2
/* any IPv6 address no endpoint or ipcache6 prefix claims (cilium's world-ipv6): so that a rule
 * allowing 0.0.0.0/0 does not also open IPv6 */
#define IDENTITY_WORLD_IPV6 10
/* first identity userspace may allocate for label sets and CIDRs */
#define IDENTITY_USER_MIN 256

/* ---- endpoint flags (struct endpoint_info.flags): selected by some policy in that direction ---- */

/* ingress is default-deny: only policy entries allow */
#define EP_F_ENFORCE_INGRESS (1 << 0)
/* egress is default-deny: only policy entries allow */
#define EP_F_ENFORCE_EGRESS (1 << 1)

/* ---- policy ---- */

/* direction of a policy key, seen from the local endpoint */
#define POLICY_INGRESS 0
#define POLICY_EGRESS 1

/* verdicts (struct policy_entry.action) */
#define POLICY_ALLOW 1
#define POLICY_DENY 2

/* LPM prefix lengths of struct policy_key (bits after prefixlen): local_id, remote_id and
 * direction are always exact (32+32+8 = 72 bits) */
#define POLICY_PREFIX_ANY_PROTO 72 /* any protocol, any port */
#define POLICY_PREFIX_ANY_PORT 80  /* this protocol, any port */
#define POLICY_PREFIX_FULL 96      /* this protocol and port; 80+k matches a port range block of 2^(16-k) */

/* ---- events ---- */

/* where a drop happened (struct drop_event.hook) */
#define HOOK_TC 1
#define HOOK_SOCK_CONNECT 2
#define HOOK_SOCK_SENDMSG 3
/* tc, an IPv6 packet: a struct drop_event6 record (the IPv6 addresses follow the drop_event) */
#define HOOK_TC6 4
/* the IPv6 socket hooks; a pure IPv6 flow is a struct drop_event6 record, an IPv4-mapped one
 * (::ffff:a.b.c.d, a dual-stack socket to an IPv4 service) a drop_event with its IPv4 addresses */
#define HOOK_SOCK_CONNECT6 5
#define HOOK_SOCK_SENDMSG6 6

/* what happened to the flow (struct drop_event.verdict) */
#define EVENT_VERDICT_DROPPED 0
#define EVENT_VERDICT_FORWARDED 1

#endif /* PREP_NODE_DATAPATH_CONSTS_H */
