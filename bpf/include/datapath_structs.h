/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Map keys and values shared by the BPF programs and userspace. Byte order: addresses and ports are
 * network order (__be32/__be16, as they are on the wire and in struct bpf_sock_addr); everything else
 * is host order. Every struct is padded explicitly so the layout is the same for clang -target bpf,
 * gcc on x86_64/arm64 and the TypeScript encoder; _Static_asserts at the end pin the sizes.
 *
 * IPv6 has parallel structs and maps, as cilium does (lb4_* / lb6_*), so the v4 keys stay small:
 * endpoint6_key, ipcache6_key, ct6_key (policy for IPv6 endpoints at tc), and for IPv6 services
 * lb6_svc_key, lb6_backend, lb6_affinity_key, lb6_sock_revnat_key/lb6_sock_revnat. Service ids are
 * one space over both families: an IPv6 service's lb_service (the same value struct) has an svc_id
 * no IPv4 service has, and maglev, svc_counters and socket-keyed affinity take it as they are.
 */
#ifndef PREP_NODE_DATAPATH_STRUCTS_H
#define PREP_NODE_DATAPATH_STRUCTS_H

#include <linux/types.h>
#include "datapath_consts.h"

/* services key: what a client addresses. */
struct lb_svc_key {
	__be32 vip;    /* service IPv4 address (ClusterIP, NodePort's node address, ...) */
	__be16 port;   /* service port */
	__u8 proto;    /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 scope;    /* 0 for now; reserved for "external/internal traffic" variants of one VIP */
};

/* services value. */
struct lb_service {
	__u32 svc_id;             /* userspace-allocated id, > 0; keys backends, maglev and affinity */
	__u32 backend_count;      /* number of backend slots 0..count-1; 0 = reject (ECONNREFUSED / drop) */
	__u32 flags;              /* SVC_F_MAGLEV, SVC_F_AFFINITY */
	__u32 affinity_timeout_s; /* session-affinity timeout in seconds (SVC_F_AFFINITY) */
};

/*
 * backends key: slot `slot` of service `svc_id`. Weights are realised by userspace: a backend with
 * weight w occupies w slots (random choice picks slot prandom % backend_count), and Maglev weights go
 * into the table computation (a backend's share of the M table entries).
 */
struct lb_backend_key {
	__u32 svc_id; /* lb_service.svc_id */
	__u32 slot;   /* 0 .. backend_count-1 */
};

/* backends value. */
struct lb_backend {
	__be32 addr;       /* backend IPv4 address */
	__be16 port;       /* backend port */
	__u16 flags;       /* BE_F_*: BE_F_REMOTE = the backend runs on another node (was padding, 0) */
	__u32 backend_id;  /* stable id of the backend (slots move when backends change; ids do not) */
};

/* maglev value (key: __u32 svc_id): slot index for each of the M table entries, computed by userspace. */
struct lb_maglev_table {
	__u16 slot[LB_MAGLEV_M]; /* backend slot (lb_backend_key.slot) for hash % M; <= 65535 slots */
};

/* affinity key: a client of a service. */
struct lb_affinity_key {
	__u64 client;  /* IPv4 address (AFFINITY_CLIENT_IP) or netns cookie (AFFINITY_CLIENT_NETNS) */
	__u32 svc_id;  /* service */
	__u8 kind;     /* AFFINITY_CLIENT_* */
	__u8 pad[3];
};

/* affinity value: the backend the client used last. */
struct lb_affinity {
	__u64 last_used_ns; /* bpf_ktime_get_ns() of the last use; older than the timeout = expired */
	__u32 backend_id;   /* checked against the slot's current backend before reuse */
	__u32 slot;         /* backend slot it was in */
};

/* sock_revnat key: a translated socket and the backend it talks to (a UDP socket may talk to many). */
struct lb_sock_revnat_key {
	__u64 cookie;  /* bpf_get_socket_cookie() */
	__be32 addr;   /* backend address */
	__be16 port;   /* backend port */
	__u16 pad;
};

/* sock_revnat value: what the application asked for. */
struct lb_sock_revnat {
	__be32 vip;    /* service address */
	__be16 port;   /* service port */
	__u16 pad;
	__u32 svc_id;
};

/* conntrack key: a flow as the packet carries it at the tc hook (before NAT). */
struct ct_key {
	__be32 saddr;
	__be32 daddr;
	__be16 sport;  /* TCP/UDP source port; ICMP echo identifier */
	__be16 dport;  /* TCP/UDP destination port; ICMP echo identifier */
	__u8 proto;
	__u8 pad[3];
};

/* conntrack value. */
struct ct_entry {
	__u64 last_seen_ns; /* bpf_ktime_get_ns() at creation and on later packets (coarse) */
	__be32 nat_addr;    /* CT_F_DNAT: backend; CT_F_REVNAT: VIP */
	__be16 nat_port;
	__u16 flags;        /* CT_F_* */
	__u32 svc_id;       /* service for NATed flows, 0 otherwise */
	__u32 lifetime_s;   /* seconds it lives after last_seen_ns, by state (ct_gc.h); 0 = no expiry */
	/* CT_F_SNAT (added at the end, issue 13 item 2): the flow's second rewrite. Original direction:
	 * source -> snat_addr:snat_port (the node's address, a port of the SNAT range); reply direction:
	 * destination -> snat_addr:snat_port (the client as it sent the flow). */
	__be32 snat_addr;
	__be16 snat_port;
	__u16 pad2;
};

/* node_cfg value (key: __u32 0): what this node is, from the state's node: section. */
struct node_cfg {
	__be32 snat_addr;   /* the node's IPv4 address: source of SNATed flows (remote backends, hairpin) */
	__u32 flags;        /* none yet: 0 */
};

/* node_cfg6 value (key: __u32 0): the node's IPv6 address, from the state's node.addresses (the
 * first IPv6 one). A map of its own, not a wider node_cfg: pinned maps of existing installs keep
 * their layout. */
struct node_cfg6 {
	__be32 snat_addr[4]; /* source of SNATed IPv6 flows (remote backends, hairpin) */
	__u32 flags;         /* none yet: 0 */
};

/* frag key: one fragmented IPv4 datagram. */
struct frag_key {
	__be32 saddr;
	__be32 daddr;
	__be16 id;     /* IPv4 identification */
	__u8 proto;
	__u8 pad;
};

/* frag value: the L4 ports, which only the first fragment carries. */
struct frag_ports {
	__be16 sport;
	__be16 dport;
};

/* endpoints value (key: __be32 local endpoint address). */
struct endpoint_info {
	__u32 identity; /* numeric identity of the endpoint's label set */
	__u32 flags;    /* EP_F_ENFORCE_INGRESS / EP_F_ENFORCE_EGRESS: default-deny directions */
};

/* ipcache key (LPM trie): a remote prefix. */
struct ipcache_key {
	__u32 prefixlen; /* 0..32 */
	__be32 addr;
};

/* ipcache value. */
struct ipcache_entry {
	__u32 identity; /* identity of the prefix: a CIDR identity, a remote endpoint's, IDENTITY_HOST */
};

/* endpoints6 key: a local endpoint's IPv6 address (value: struct endpoint_info). */
struct endpoint6_key {
	__be32 addr[4];
};

/* ipcache6 key (LPM trie): a remote IPv6 prefix (value: struct ipcache_entry). */
struct ipcache6_key {
	__u32 prefixlen; /* 0..128 */
	__be32 addr[4];
};

/* conntrack6 key: an IPv6 flow at the tc hook (value: struct ct6_entry). */
struct ct6_key {
	__be32 saddr[4];
	__be32 daddr[4];
	__be16 sport;  /* TCP/UDP source port; ICMPv6 echo identifier */
	__be16 dport;
	__u8 proto;
	__u8 pad[3];
};

/*
 * conntrack6 value: struct ct_entry with room for IPv6 addresses. The same flags (CT_F_*),
 * lifetimes by state (lib/ct_gc.h knobs) and meaning as IPv4, SNAT fields included (lib/snat6.h;
 * the entry grew from 40 to 64 bytes with them: an install made before keeps its 40-byte map until
 * `datapath install --force`, and ct-gc refuses its layout until then).
 */
struct ct6_entry {
	__u64 last_seen_ns; /* bpf_ktime_get_ns() at creation and on later packets (coarse) */
	__be32 nat_addr[4]; /* CT_F_DNAT: backend; CT_F_REVNAT: VIP */
	__be16 nat_port;
	__u16 flags;        /* CT_F_* */
	__u32 svc_id;       /* service for NATed flows, 0 otherwise */
	__u32 lifetime_s;   /* seconds it lives after last_seen_ns, by state; 0 = no expiry */
	__u32 pad;
	/* CT_F_SNAT, as struct ct_entry: original direction, source -> snat_addr:snat_port (the
	 * node's IPv6 address, a port of the SNAT range); reply direction, destination ->
	 * snat_addr:snat_port (the client as it sent the flow). */
	__be32 snat_addr[4];
	__be16 snat_port;
	__u16 pad2;
	__u32 pad3;
};

/*
 * policy key (LPM trie). prefixlen counts bits after itself: local_id, remote_id and direction are
 * always exact (POLICY_PREFIX_ANY_PROTO = 72), then proto (80), then dport bits (up to 96). A port
 * range is written by userspace as the aligned power-of-two blocks that cover it (1024-2047 is one
 * entry: dport 1024, prefixlen 80 + 6; 1000-1999 takes 7), so the datapath does one lookup whatever
 * the range.
 *
 * Deny wins. The datapath does two lookups (remote_id = the peer's identity, and IDENTITY_ANY) and
 * drops if either longest match is a deny. Inside one lookup only the longest match counts, so
 * userspace must not let a narrower allow hide a wider deny for the same (local, remote, direction):
 * it writes that narrower entry as a deny.
 */
struct policy_key {
	__u32 prefixlen;
	__u32 local_id;  /* identity of the local endpoint the policy selects */
	__u32 remote_id; /* identity of the peer, or IDENTITY_ANY */
	__u8 direction;  /* POLICY_INGRESS / POLICY_EGRESS */
	__u8 proto;      /* IPPROTO_*; ignored when prefixlen <= POLICY_PREFIX_ANY_PROTO */
	__be16 dport;    /* destination port; ICMP: htons(type) */
};

/* policy value. */
struct policy_entry {
	__u8 action;   /* POLICY_ALLOW / POLICY_DENY */
	__u8 pad[3];
	__u32 rule_id; /* userspace's id of the rule, for events and observe */
};

/* counters value (PERCPU_ARRAY indexed by drop reason). */
struct drop_counter {
	__u64 packets; /* drops (packets, or rejected connect/sendmsg calls) */
	__u64 bytes;   /* bytes of dropped packets (0 for socket rejects) */
};

/*
 * events record (ring buffer): one per drop, and (cfg_flow_events) one per new forwarded flow: at tc
 * when conntrack entries are created for a NATed or policy-tracked flow, at connect4 / sendmsg4 when
 * a service is translated (sendmsg4: once per new socket-backend pair). Forwarded events have
 * verdict EVENT_VERDICT_FORWARDED and reason 0; the byte that holds verdict was padding (always 0)
 * before, so a reader that knows only drops sees verdict 0 = dropped, as it always did.
 */
struct drop_event {
	__u64 ts_ns;           /* bpf_ktime_get_ns() */
	__u32 reason;          /* enum drop_reason */
	__u32 ifindex;         /* skb->ifindex (tc) or 0 */
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 hook;             /* HOOK_* */
	__u8 direction;        /* POLICY_INGRESS/EGRESS of the policy check named (local/remote identity) */
	__u8 verdict;          /* EVENT_VERDICT_DROPPED (0: every event before flow events) / _FORWARDED */
	__u32 local_identity;  /* policy drops: the endpoint's identity */
	__u32 remote_identity; /* policy drops: the peer's identity */
	__u32 svc_id;          /* the service (drops of a service, forwarded flows to one), else 0 */
	__u32 len;             /* packet length (tc) */
	__u32 rule_id;         /* policy: the rule's id (policy_entry.rule_id) that denied or allowed; else 0 */
};

/*
 * events record of an IPv6 flow (hooks tc6, connect6, sendmsg6; an IPv4-mapped ::ffff: flow at the
 * socket hooks is a plain drop_event with its IPv4 addresses): the drop_event, its saddr/daddr 0,
 * followed by the IPv6 addresses. Told apart from drop_event by its size (88 bytes, not 56); a
 * reader that knows only drop_event reads the first 56 bytes as before. Built in the ring buffer's
 * reserved memory at send time (no stack: tc_lb's is near the verifier's limit).
 */
struct drop_event6 {
	struct drop_event ev;
	__be32 saddr6[4];
	__be32 daddr6[4];
};

/* svc_counters value (PERCPU_HASH keyed by __u32 svc_id): forwarded traffic of a service. */
struct svc_counter {
	__u64 packets;     /* tc: packets DNATed to a backend or reverse-NATed back (both directions) */
	__u64 bytes;       /* tc: their bytes (skb->len) */
	__u64 connections; /* sockets: connect() calls translated, and new socket-backend pairs of sendmsg() */
};

/* ---- IPv6 services (maps services6, backends6, affinity6, sock_revnat6) ---- */

/* services6 key: an IPv6 VIP (value: struct lb_service, svc_id shared with IPv4's id space). */
struct lb6_svc_key {
	__be32 vip[4]; /* service IPv6 address */
	__be16 port;   /* service port */
	__u8 proto;    /* IPPROTO_TCP, IPPROTO_UDP or IPPROTO_SCTP */
	__u8 scope;    /* 0, as lb_svc_key.scope */
};

/* backends6 value (key: struct lb_backend_key {svc_id, slot}, as backends). */
struct lb6_backend {
	__be32 addr[4];   /* backend IPv6 address */
	__be16 port;      /* backend port */
	__u16 flags;      /* BE_F_* */
	__u32 backend_id; /* stable id of the backend */
};

/* affinity6 key: an IPv6 client of a service at tc (value: struct lb_affinity). Socket clients
 * (AFFINITY_CLIENT_NETNS) of IPv6 services use the affinity map's netns-cookie keys as IPv4. */
struct lb6_affinity_key {
	__be32 client[4]; /* IPv6 client address */
	__u32 svc_id;
	__u32 pad;
};

/* sock_revnat6 key: a translated IPv6 socket and the backend it talks to. */
struct lb6_sock_revnat_key {
	__u64 cookie;  /* bpf_get_socket_cookie() */
	__be32 addr[4];/* backend address */
	__be16 port;   /* backend port */
	__u16 pad;
	__u32 pad2;
};

/* sock_revnat6 value: what the application asked for. */
struct lb6_sock_revnat {
	__be32 vip[4]; /* service address */
	__be16 port;   /* service port */
	__u16 pad;
	__u32 svc_id;
};

_Static_assert(sizeof(struct lb_svc_key) == 8, "lb_svc_key layout");
_Static_assert(sizeof(struct lb_service) == 16, "lb_service layout");
_Static_assert(sizeof(struct lb_backend_key) == 8, "lb_backend_key layout");
_Static_assert(sizeof(struct lb_backend) == 12, "lb_backend layout");
_Static_assert(sizeof(struct lb_affinity_key) == 16, "lb_affinity_key layout");
_Static_assert(sizeof(struct lb_affinity) == 16, "lb_affinity layout");
_Static_assert(sizeof(struct lb_sock_revnat_key) == 16, "lb_sock_revnat_key layout");
_Static_assert(sizeof(struct lb_sock_revnat) == 12, "lb_sock_revnat layout");
_Static_assert(sizeof(struct ct_key) == 16, "ct_key layout");
_Static_assert(sizeof(struct ct_entry) == 32, "ct_entry layout");
_Static_assert(sizeof(struct node_cfg) == 8, "node_cfg layout");
_Static_assert(sizeof(struct node_cfg6) == 20, "node_cfg6 layout");
_Static_assert(sizeof(struct frag_key) == 12, "frag_key layout");
_Static_assert(sizeof(struct endpoint6_key) == 16, "endpoint6_key layout");
_Static_assert(sizeof(struct ipcache6_key) == 20, "ipcache6_key layout");
_Static_assert(sizeof(struct ct6_key) == 40, "ct6_key layout");
_Static_assert(sizeof(struct ct6_entry) == 64, "ct6_entry layout");
_Static_assert(sizeof(struct policy_key) == 16, "policy_key layout");
_Static_assert(sizeof(struct policy_entry) == 8, "policy_entry layout");
_Static_assert(sizeof(struct drop_event) == 56, "drop_event layout");
_Static_assert(sizeof(struct drop_event6) == 88, "drop_event6 layout");
_Static_assert(sizeof(struct svc_counter) == 24, "svc_counter layout");
_Static_assert(sizeof(struct lb6_svc_key) == 20, "lb6_svc_key layout");
_Static_assert(sizeof(struct lb6_backend) == 24, "lb6_backend layout");
_Static_assert(sizeof(struct lb6_affinity_key) == 24, "lb6_affinity_key layout");
_Static_assert(sizeof(struct lb6_sock_revnat_key) == 32, "lb6_sock_revnat_key layout");
_Static_assert(sizeof(struct lb6_sock_revnat) == 24, "lb6_sock_revnat layout");

#endif /* PREP_NODE_DATAPATH_STRUCTS_H */
