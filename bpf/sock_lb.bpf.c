// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Socket load balancing: cgroup sock_addr programs on the cgroup v2 root translate a service
 * VIP:port to a backend once, at connect() (TCP, connected UDP) and at each sendmsg() (unconnected
 * UDP); no packet of the connection is rewritten afterwards. getpeername() and recvmsg() translate
 * back through sock_revnat, so applications only ever see the VIP.
 *
 * A service without backends rejects: connect()/sendmsg() fail. What errno the application sees:
 *   - kernel >= 5.18 and cfg_has_set_retval = 1 (the loader probes BPF_FUNC_set_retval):
 *     ECONNREFUSED, like a closed port (bpf_set_retval(-ECONNREFUSED), then return 0);
 *   - older kernels: EPERM, the fixed errno of a sock_addr program returning 0. (Rewriting to an
 *     address nothing listens on would give ECONNREFUSED for TCP only after a round trip, and not
 *     at all for UDP; cilium also returns EPERM there.)
 * The rejection is counted and reported like a packet drop (DROP_NO_BACKEND, HOOK_SOCK_*).
 *
 * A translation is a new flow: one FORWARDED event (cfg_flow_events) and one connection in the
 * service's svc_counters. Bytes are not visible here (the packets never pass a program of ours),
 * so socket-translated traffic counts connections, not packets or bytes.
 *
 * IPv6: connect6/sendmsg6 translate [VIP6]:port through services6/backends6 and getpeername6/
 * recvmsg6 back through sock_revnat6, the same way. A dual-stack socket that addresses an IPv4
 * service as ::ffff:VIP goes through the IPv4 services (and sock_revnat) with the backend written
 * back as ::ffff:backend, as cilium does. Unconnected UDP to ::ffff: never reaches sendmsg6: the
 * kernel hands it to udp_sendmsg(), whose sendmsg4 hook translates it.
 */
#include "lib/common.h"
#include "lib/maps.h"
#include "lib/drop.h"
#include "lib/lb.h"

/* knob: the kernel has bpf_set_retval() for sock_addr programs (5.18+); set by the loader.
 * With 0 the call below is dead code the verifier removes, so the object loads on 5.10. */
const volatile __u8 cfg_has_set_retval = 0;
/* knob: errno a rejected connect()/sendmsg() returns when cfg_has_set_retval (default ECONNREFUSED) */
const volatile __u32 cfg_reject_errno = ECONNREFUSED;

/* Reject the syscall: count, report, and set the errno the application sees. Returns 0 (reject).
 * daddr/saddr: the IPv4 addresses the event carries (0 for an IPv6 flow); daddr6/saddr6: an IPv6
 * flow's addresses (the event is then a struct drop_event6), else NULL. */
static __always_inline int sock_reject6(__be32 daddr, __be16 dport, __be32 saddr, const __be32 *daddr6,
					const __be32 *saddr6, __u8 proto, __u8 hook, __u32 svc_id, __u32 reason)
{
	struct drop_event ev = {};

	ev.reason = reason;
	ev.hook = hook;
	ev.proto = proto;
	ev.daddr = daddr;
	ev.dport = dport;
	ev.saddr = saddr;
	ev.svc_id = svc_id;
	drop_record6(&ev, saddr6, daddr6);
	if (cfg_has_set_retval)
		bpf_set_retval(-(int)cfg_reject_errno);
	return 0;
}

static __always_inline int sock_reject(__be32 daddr, __be16 dport, __be32 saddr, __u8 proto, __u8 hook,
				       __u32 svc_id, __u32 reason)
{
	return sock_reject6(daddr, dport, saddr, NULL, NULL, proto, hook, svc_id, reason);
}

/* A new translated flow: a connection in the service's counters and a FORWARDED event (daddr6/
 * saddr6 as sock_reject6's). */
static __always_inline void sock_new_flow6(__u32 svc_id, __be32 daddr, __be16 dport, __be32 saddr,
					   const __be32 *daddr6, const __be32 *saddr6, __u8 proto, __u8 hook)
{
	svc_count(svc_id, 0, 0, 1);
	if (cfg_flow_events) {
		struct drop_event ev = {};

		ev.hook = hook;
		ev.proto = proto;
		ev.daddr = daddr;
		ev.dport = dport;
		ev.saddr = saddr;
		ev.svc_id = svc_id;
		flow_record6(&ev, saddr6, daddr6);
	}
}

static __always_inline void sock_new_flow(__u32 svc_id, __be32 daddr, __be16 dport, __be32 saddr, __u8 proto,
					  __u8 hook)
{
	sock_new_flow6(svc_id, daddr, dport, saddr, NULL, NULL, proto, hook);
}

/* the socket's protocol, not its type: an SCTP socket is SOCK_STREAM or SOCK_SEQPACKET */
static __always_inline bool sock_lb_proto(__u8 proto)
{
	return proto == IPPROTO_TCP || proto == IPPROTO_UDP || proto == IPPROTO_SCTP;
}

/*
 * IPv4 service VIP:port -> backend, for connect4/sendmsg4 and for a dual-stack IPv6 socket that
 * addresses an IPv4 service as ::ffff:VIP (connect6/sendmsg6). saddr: the source the event names.
 * Returns -1 (not a service: leave the call alone), 0 (rejected: the program returns 0) or 1 with
 * *out the backend to write into the context.
 */
static __always_inline int sock4_pick(struct bpf_sock_addr *ctx, __be32 vip, __be16 vport, __be32 saddr,
				      __u8 proto, __u8 hook, bool sendmsg, struct lb_backend **out)
{
	struct lb_sock_revnat_key rkey = {};
	struct lb_sock_revnat rval = {}, *known;
	struct lb_service *svc;
	struct lb_backend *be;
	__u32 reason = 0;
	__u64 cookie;

	svc = lb_lookup_service(vip, vport, proto);
	if (!svc)
		return -1;

	cookie = bpf_get_socket_cookie(ctx);
	be = lb_select_backend(svc, lb_cookie_hash(cookie), bpf_get_netns_cookie(ctx),
			       AFFINITY_CLIENT_NETNS, &reason);
	if (!be)
		return sock_reject(vip, vport, saddr, proto, hook, svc->svc_id, reason);

	rkey.cookie = cookie;
	rkey.addr = be->addr;
	rkey.port = be->port;
	rval.vip = vip;
	rval.port = vport;
	rval.svc_id = svc->svc_id;
	/* a new flow: every connect(), and a sendmsg() whose socket has not sent to this backend for
	 * this service yet (unconnected UDP calls sendmsg per datagram: no event, no count per datagram) */
	known = sendmsg ? bpf_map_lookup_elem(&sock_revnat, &rkey) : NULL;
	if (!known || known->vip != vip || known->port != vport || known->svc_id != rval.svc_id) {
		/* best effort: without it getpeername()/recvmsg() would show the backend, the data still flows */
		bpf_map_update_elem(&sock_revnat, &rkey, &rval, BPF_ANY);
		sock_new_flow(rval.svc_id, be->addr, be->port, saddr, proto, hook);
	}
	*out = be;
	return 1;
}

/* VIP:port -> backend for connect4/sendmsg4. Returns the program's verdict (1 allow, 0 reject). */
static __always_inline int sock4_xlate(struct bpf_sock_addr *ctx, __u8 hook)
{
	struct lb_backend *be = NULL;
	bool sendmsg = hook == HOOK_SOCK_SENDMSG;
	__u8 proto = (__u8)ctx->protocol;
	int r;

	if (!sock_lb_proto(proto))
		return 1;
	r = sock4_pick(ctx, ctx->user_ip4, (__be16)ctx->user_port, sendmsg ? ctx->msg_src_ip4 : 0, proto,
		       hook, sendmsg, &be);
	if (r <= 0 || !be)
		return r < 0 ? 1 : 0;
	ctx->user_ip4 = be->addr;
	ctx->user_port = (__u32)be->port;
	return 1;
}

/* backend -> VIP for getpeername4/recvmsg4 (these hooks must return 1) */
static __always_inline void sock4_revnat(struct bpf_sock_addr *ctx)
{
	struct lb_sock_revnat_key rkey = {};
	struct lb_sock_revnat *rval;

	rkey.cookie = bpf_get_socket_cookie(ctx);
	rkey.addr = ctx->user_ip4;
	rkey.port = (__be16)ctx->user_port;
	rval = bpf_map_lookup_elem(&sock_revnat, &rkey);
	if (!rval)
		return;
	ctx->user_ip4 = rval->vip;
	ctx->user_port = (__u32)rval->port;
}

/* ::ffff:a.b.c.d, an IPv4 address in an IPv6 socket's address (RFC 4291 2.5.5.2) */
static __always_inline bool sock6_v4mapped(const __be32 a[4])
{
	return a[0] == 0 && a[1] == 0 && a[2] == bpf_htonl(0xffff);
}

/*
 * [VIP6]:port -> backend for connect6/sendmsg6; ::ffff:VIP goes through the IPv4 services (a
 * dual-stack socket reaching an IPv4 Service, as cilium's sock6_xlate_v4_in_v6 does). Returns the
 * program's verdict (1 allow, 0 reject).
 */
static __always_inline int sock6_xlate(struct bpf_sock_addr *ctx, __u8 hook)
{
	struct lb6_sock_revnat_key rkey = {};
	struct lb6_sock_revnat rval = {}, *known;
	struct lb_affinity_key akey = {};
	bool sendmsg = hook == HOOK_SOCK_SENDMSG6;
	__u8 proto = (__u8)ctx->protocol;
	__be16 vport = (__be16)ctx->user_port;
	struct lb_service *svc;
	struct lb6_backend *be;
	__u32 reason = 0;
	__be32 vip[4], src[4] = {};
	__u64 cookie;

	if (!sock_lb_proto(proto))
		return 1;
	/* the context's address fields are read and written 4 bytes at a time */
	vip[0] = ctx->user_ip6[0];
	vip[1] = ctx->user_ip6[1];
	vip[2] = ctx->user_ip6[2];
	vip[3] = ctx->user_ip6[3];

	if (sock6_v4mapped(vip)) {
		struct lb_backend *be4 = NULL;
		int r = sock4_pick(ctx, vip[3], vport, sendmsg ? ctx->msg_src_ip6[3] : 0, proto, hook, sendmsg,
				   &be4);

		if (r <= 0 || !be4)
			return r < 0 ? 1 : 0;
		ctx->user_ip6[3] = be4->addr;
		ctx->user_port = (__u32)be4->port;
		return 1;
	}

	svc = lb6_lookup_service(vip, vport, proto);
	if (!svc)
		return 1;
	if (sendmsg) { /* the source the application chose, if any (connect: not bound yet, as IPv4's 0) */
		src[0] = ctx->msg_src_ip6[0];
		src[1] = ctx->msg_src_ip6[1];
		src[2] = ctx->msg_src_ip6[2];
		src[3] = ctx->msg_src_ip6[3];
	}

	cookie = bpf_get_socket_cookie(ctx);
	akey.client = bpf_get_netns_cookie(ctx);
	akey.svc_id = svc->svc_id;
	akey.kind = AFFINITY_CLIENT_NETNS;
	be = lb6_select_backend(svc, lb_cookie_hash(cookie), &affinity, &akey, &reason);
	if (!be)
		return sock_reject6(0, vport, 0, vip, src, proto, hook, svc->svc_id, reason);

	rkey.cookie = cookie;
	rkey.addr[0] = be->addr[0];
	rkey.addr[1] = be->addr[1];
	rkey.addr[2] = be->addr[2];
	rkey.addr[3] = be->addr[3];
	rkey.port = be->port;
	rval.vip[0] = vip[0];
	rval.vip[1] = vip[1];
	rval.vip[2] = vip[2];
	rval.vip[3] = vip[3];
	rval.port = vport;
	rval.svc_id = svc->svc_id;
	known = sendmsg ? bpf_map_lookup_elem(&sock_revnat6, &rkey) : NULL;
	if (!known || known->vip[0] != vip[0] || known->vip[1] != vip[1] || known->vip[2] != vip[2] ||
	    known->vip[3] != vip[3] || known->port != vport || known->svc_id != rval.svc_id) {
		bpf_map_update_elem(&sock_revnat6, &rkey, &rval, BPF_ANY);
		sock_new_flow6(rval.svc_id, 0, be->port, 0, be->addr, src, proto, hook);
	}

	ctx->user_ip6[0] = be->addr[0];
	ctx->user_ip6[1] = be->addr[1];
	ctx->user_ip6[2] = be->addr[2];
	ctx->user_ip6[3] = be->addr[3];
	ctx->user_port = (__u32)be->port;
	return 1;
}

/* backend -> VIP for getpeername6/recvmsg6, ::ffff:backend through sock_revnat (must return 1) */
static __always_inline void sock6_revnat(struct bpf_sock_addr *ctx)
{
	struct lb6_sock_revnat_key rkey = {};
	struct lb6_sock_revnat *rval;
	__be32 a[4];

	a[0] = ctx->user_ip6[0];
	a[1] = ctx->user_ip6[1];
	a[2] = ctx->user_ip6[2];
	a[3] = ctx->user_ip6[3];
	if (sock6_v4mapped(a)) {
		struct lb_sock_revnat_key rkey4 = {};
		struct lb_sock_revnat *rval4;

		rkey4.cookie = bpf_get_socket_cookie(ctx);
		rkey4.addr = a[3];
		rkey4.port = (__be16)ctx->user_port;
		rval4 = bpf_map_lookup_elem(&sock_revnat, &rkey4);
		if (!rval4)
			return;
		ctx->user_ip6[3] = rval4->vip;
		ctx->user_port = (__u32)rval4->port;
		return;
	}
	rkey.cookie = bpf_get_socket_cookie(ctx);
	rkey.addr[0] = a[0];
	rkey.addr[1] = a[1];
	rkey.addr[2] = a[2];
	rkey.addr[3] = a[3];
	rkey.port = (__be16)ctx->user_port;
	rval = bpf_map_lookup_elem(&sock_revnat6, &rkey);
	if (!rval)
		return;
	ctx->user_ip6[0] = rval->vip[0];
	ctx->user_ip6[1] = rval->vip[1];
	ctx->user_ip6[2] = rval->vip[2];
	ctx->user_ip6[3] = rval->vip[3];
	ctx->user_port = (__u32)rval->port;
}

SEC("cgroup/connect4")
int sock4_connect(struct bpf_sock_addr *ctx)
{
	return sock4_xlate(ctx, HOOK_SOCK_CONNECT);
}

SEC("cgroup/sendmsg4")
int sock4_sendmsg(struct bpf_sock_addr *ctx)
{
	return sock4_xlate(ctx, HOOK_SOCK_SENDMSG);
}

SEC("cgroup/getpeername4")
int sock4_getpeername(struct bpf_sock_addr *ctx)
{
	sock4_revnat(ctx);
	return 1;
}

SEC("cgroup/recvmsg4")
int sock4_recvmsg(struct bpf_sock_addr *ctx)
{
	sock4_revnat(ctx);
	return 1;
}

SEC("cgroup/connect6")
int sock6_connect(struct bpf_sock_addr *ctx)
{
	return sock6_xlate(ctx, HOOK_SOCK_CONNECT6);
}

SEC("cgroup/sendmsg6")
int sock6_sendmsg(struct bpf_sock_addr *ctx)
{
	return sock6_xlate(ctx, HOOK_SOCK_SENDMSG6);
}

SEC("cgroup/getpeername6")
int sock6_getpeername(struct bpf_sock_addr *ctx)
{
	sock6_revnat(ctx);
	return 1;
}

SEC("cgroup/recvmsg6")
int sock6_recvmsg(struct bpf_sock_addr *ctx)
{
	sock6_revnat(ctx);
	return 1;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
