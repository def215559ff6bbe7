// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * events: drop events (and forwarded-flow events: "verdict":"forwarded", reason 0) from the ring
 * buffer, one JSON object per line, then {"lost": n} (events the
 * datapath could not queue since install: the ring buffer was full). Reading consumes: the ring
 * buffer has one consumer position, so two readers split the events between them.
 *   (no option)        what is queued now, then exit
 *   --follow           keep reading until SIGINT/SIGTERM, --timeout-ms or --max
 *   --timeout-ms N     read for N ms (implies --follow)
 *   --max N            stop after N events
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <net/if.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "dp.h"
#include "maps_user.h"

#define STOP_MAX (-1000) /* callback's "enough": not an errno */

static volatile sig_atomic_t stop;
static unsigned long long seen, max_events;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static const char *hook_name(__u8 hook)
{
	switch (hook) {
	case HOOK_TC: return "tc";
	case HOOK_TC6: return "tc6";
	case HOOK_SOCK_CONNECT: return "connect4";
	case HOOK_SOCK_SENDMSG: return "sendmsg4";
	case HOOK_SOCK_CONNECT6: return "connect6";
	case HOOK_SOCK_SENDMSG6: return "sendmsg6";
	default: return "unknown";
	}
}

static void proto_member(struct jw *w, __u8 proto)
{
	switch (proto) {
	case 6: jw_str(w, "proto", "tcp"); break;
	case 17: jw_str(w, "proto", "udp"); break;
	case 1: jw_str(w, "proto", "icmp"); break;
	default: jw_u64(w, "proto", proto); break;
	}
}

/* bpf_ktime_get_ns() is CLOCK_MONOTONIC: wall time = now - (monotonic now - ts) */
static void time_member(struct jw *w, __u64 ts_ns)
{
	struct timespec mono, real;
	long long wall_ns;
	time_t secs;
	struct tm tm;
	char buf[64], iso[80];

	clock_gettime(CLOCK_MONOTONIC, &mono);
	clock_gettime(CLOCK_REALTIME, &real);
	wall_ns = (long long)real.tv_sec * 1000000000LL + real.tv_nsec -
		  ((long long)mono.tv_sec * 1000000000LL + mono.tv_nsec - (long long)ts_ns);
	secs = (time_t)(wall_ns / 1000000000LL);
	gmtime_r(&secs, &tm);
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(iso, sizeof(iso), "%s.%03lldZ", buf, (wall_ns % 1000000000LL) / 1000000LL);
	jw_str(w, "time", iso);
}

static int on_event(void *ctx, void *data, size_t size)
{
	const struct drop_event *e = data;
	/* an IPv6 flow's record: the drop_event followed by its addresses (struct drop_event6) */
	const struct drop_event6 *e6 = size >= sizeof(struct drop_event6) ? data : NULL;
	char addr[INET6_ADDRSTRLEN], ifname[IF_NAMESIZE], reason[64];
	const char *desc;
	struct jw w = {};

	(void)ctx;
	if (size < sizeof(*e))
		return 0;
	desc = dp_drop_reason(e->reason);
	snprintf(reason, sizeof(reason), "%.*s", desc ? (int)strcspn(desc, ":") : 7, desc ? desc : "UNKNOWN");
	jw_open(&w, NULL);
	jw_u64(&w, "ts_ns", e->ts_ns);
	time_member(&w, e->ts_ns);
	jw_str(&w, "verdict", e->verdict == EVENT_VERDICT_FORWARDED ? "forwarded" : "dropped");
	jw_u64(&w, "reason", e->reason);
	jw_str(&w, "reason_name", e->verdict == EVENT_VERDICT_FORWARDED ? "NONE" : reason);
	jw_str(&w, "hook", hook_name(e->hook));
	jw_u64(&w, "ifindex", e->ifindex);
	if (e->ifindex && if_indextoname(e->ifindex, ifname))
		jw_str(&w, "ifname", ifname);
	jw_str(&w, "family", e6 ? "ipv6" : "ipv4");
	jw_str(&w, "saddr", e6 ? inet_ntop(AF_INET6, e6->saddr6, addr, sizeof(addr))
			       : inet_ntop(AF_INET, &e->saddr, addr, sizeof(addr)));
	jw_str(&w, "daddr", e6 ? inet_ntop(AF_INET6, e6->daddr6, addr, sizeof(addr))
			       : inet_ntop(AF_INET, &e->daddr, addr, sizeof(addr)));
	jw_u64(&w, "sport", ntohs(e->sport));
	jw_u64(&w, "dport", ntohs(e->dport));
	proto_member(&w, e->proto);
	/* policy drops, and forwarded flows a policy check let through (it names the local endpoint) */
	if (e->reason == DROP_POLICY_DENY || e->reason == DROP_POLICY_DEFAULT_DENY ||
	    (e->verdict == EVENT_VERDICT_FORWARDED && e->local_identity))
		jw_str(&w, "direction", e->direction == POLICY_EGRESS ? "egress" : "ingress");
	else
		jw_null(&w, "direction");
	jw_u64(&w, "local_identity", e->local_identity);
	jw_u64(&w, "remote_identity", e->remote_identity);
	jw_u64(&w, "svc_id", e->svc_id);
	jw_u64(&w, "len", e->len);
	jw_u64(&w, "rule_id", e->rule_id);
	jw_close_obj(&w);
	jw_print(&w);
	seen++;
	return max_events && seen >= max_events ? STOP_MAX : 0;
}

static long long now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

int cmd_events(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "follow", no_argument, NULL, 'f' },
		{ "timeout-ms", required_argument, NULL, 't' },
		{ "max", required_argument, NULL, 'm' },
		{}
	};
	unsigned long long timeout_ms = 0;
	bool follow = false;
	struct ring_buffer *rb;
	long long deadline;
	int c, fd, err = 0;
	struct jw w = {};

	optind = 1;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		if (c == 'f')
			follow = true;
		else if (c == 't' && dp_parse_u64(optarg, &timeout_ms) == 0)
			follow = true;
		else if (c != 'm' || dp_parse_u64(optarg, &max_events))
			return dp_fail(DP_EXIT_USAGE, "usage", "events [--follow] [--timeout-ms N] [--max N]");
	}
	if (optind != argc)
		return dp_fail(DP_EXIT_USAGE, "usage", "events [--follow] [--timeout-ms N] [--max N]");
	if (dp_check_bpffs())
		return -1;
	if (!dp_installed())
		return dp_fail(DP_EXIT_NOT_INSTALLED, "not-installed", "the datapath is not installed: run install first");
	fd = dp_map_open("events");
	if (fd < 0)
		return dp_fail(DP_EXIT_INTERNAL, "internal", "open the events map: %s", strerror(-fd));
	rb = ring_buffer__new(fd, on_event, NULL, NULL);
	if (!rb) {
		close(fd);
		return dp_fail(DP_EXIT_INTERNAL, "internal", "ring buffer: %s", strerror(errno));
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGPIPE, on_signal);
	deadline = timeout_ms ? now_ms() + (long long)timeout_ms : 0;
	err = ring_buffer__consume(rb);
	while (follow && !stop && err >= 0 && !(max_events && seen >= max_events)) {
		long long left = deadline ? deadline - now_ms() : 200;

		if (left <= 0)
			break;
		err = ring_buffer__poll(rb, (int)(left < 200 ? left : 200));
		if (err == -EINTR)
			err = 0;
	}
	ring_buffer__free(rb);
	close(fd);
	if (err < 0 && err != STOP_MAX)
		return dp_fail(DP_EXIT_INTERNAL, "internal", "reading events: %s", strerror(-err));
	jw_open(&w, NULL);
	jw_u64(&w, "lost", dp_events_lost());
	jw_close_obj(&w);
	jw_print(&w);
	return 0;
}
