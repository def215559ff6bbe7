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

/* Reject the syscall: count, report, and set the errno the application sees. Returns 0 (reject). */
static __always_inline int sock4_reject(struct bpf_sock_addr *ctx, __u8 proto, __u8 hook,
					__u32 svc_id, __u32 reason)
{
	struct drop_event ev = {};

	ev.reason = reason;
	ev.hook = hook;
	ev.proto = proto;
	ev.daddr = ctx->user_ip4;
	ev.dport = (__be16)ctx->user_port;
	ev.svc_id = svc_id;
	if (hook == HOOK_SOCK_SENDMSG)
		ev.saddr = ctx->msg_src_ip4;
	drop_record(&ev);
	if (cfg_has_set_retval)
		bpf_set_retval(-(int)cfg_reject_errno);
	return 0;
}

/* VIP:port -> backend for connect4/sendmsg4. Returns the program's verdict (1 allow, 0 reject). */
static __always_inline int sock4_xlate(struct bpf_sock_addr *ctx, __u8 hook)
{
	struct lb_sock_revnat_key rkey = {};
	struct lb_sock_revnat rval = {}, *known;
	struct lb_service *svc;
	struct lb_backend *be;
	__be32 vip = ctx->user_ip4;
	__be16 vport = (__be16)ctx->user_port;
	__u32 reason = 0;
	__u64 cookie;
	__u8 proto;

	/* the socket's protocol, not its type: an SCTP socket is SOCK_STREAM or SOCK_SEQPACKET */
	proto = (__u8)ctx->protocol;
	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP && proto != IPPROTO_SCTP)
		return 1;

	svc = lb_lookup_service(vip, vport, proto);
	if (!svc)
		return 1;

	cookie = bpf_get_socket_cookie(ctx);
	be = lb_select_backend(svc, lb_cookie_hash(cookie), bpf_get_netns_cookie(ctx),
			       AFFINITY_CLIENT_NETNS, &reason);
	if (!be)
		return sock4_reject(ctx, proto, hook, svc->svc_id, reason);

	rkey.cookie = cookie;
	rkey.addr = be->addr;
	rkey.port = be->port;
	rval.vip = vip;
	rval.port = vport;
	rval.svc_id = svc->svc_id;
	/* a new flow: every connect(), and a sendmsg() whose socket has not sent to this backend for
	 * this service yet (unconnected UDP calls sendmsg per datagram: no event, no count per datagram) */
	known = hook == HOOK_SOCK_SENDMSG ? bpf_map_lookup_elem(&sock_revnat, &rkey) : NULL;
	if (!known || known->vip != vip || known->port != vport || known->svc_id != rval.svc_id) {
		/* best effort: without it getpeername()/recvmsg() would show the backend, the data still flows */
		bpf_map_update_elem(&sock_revnat, &rkey, &rval, BPF_ANY);
		svc_count(rval.svc_id, 0, 0, 1);
		if (cfg_flow_events) {
			struct drop_event ev = {};

			ev.hook = hook;
			ev.proto = proto;
			ev.daddr = be->addr;
			ev.dport = be->port;
			ev.svc_id = rval.svc_id;
			if (hook == HOOK_SOCK_SENDMSG)
				ev.saddr = ctx->msg_src_ip4;
			flow_record(&ev);
		}
	}

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

char LICENSE[] SEC("license") = "Dual BSD/GPL";
