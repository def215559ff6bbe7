// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * bench-pkt: the installed tc program's cost per packet, as the kernel measures it
 * (BPF_PROG_TEST_RUN's duration: the time of the program runs only, no syscall), beside a trivial
 * tc program that returns TC_ACT_OK: the harness's floor. katran measures its XDP program the
 * same way. The datapath's maps are the installed ones: `prep-node bench` fills them through
 * `apply` first.
 *
 * One case per line on stdin:  NAME MODE PROTO SRC SPORT DST DPORT
 *   MODE repeat  one packet run --repeat times in the kernel's own loop; only for packets the
 *                program leaves as they were and that change no state the next run depends on
 *                (a drop, a conntrack hit without NAT): the kernel runs the same buffer again.
 *   MODE flows   --flows packets, source ports SPORT, SPORT+1, ...: one test run each (repeat 1),
 *                for first packets of flows (they create conntrack entries, and NAT rewrites the
 *                buffer, so a repeated run would measure another path). The same case line again
 *                sends the same flows again: conntrack hits.
 * Per case: ns per packet, the return codes seen, and the first run's output addresses (what the
 * program made of the packet: the NAT it applied).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <getopt.h>
#include <linux/bpf.h>
#include <bpf/bpf.h>
#include "dp.h"
#include "pkt.h"

#define BENCH_MAX_CASES 64
#define BENCH_MAX_FLOWS 50000
#define BENCH_MAX_REPEAT 100000000ULL

struct bench_case {
	char name[48];
	bool flows;  /* MODE flows; else repeat */
	bool v6;
	__u8 proto;
	char src[64], dst[64]; /* validated by inet_pton */
	__u16 sport, dport;
};

/* the floor: r0 = TC_ACT_OK (0); exit */
static int load_floor(void)
{
	const struct bpf_insn insns[] = {
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = 0 },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	int fd = bpf_prog_load(BPF_PROG_TYPE_SCHED_CLS, "pn_bench_floor", "Dual BSD/GPL", insns, 2, NULL);

	if (fd < 0)
		return dp_fail(DP_EXIT_LOAD, "load-failed", "load the floor program (return TC_ACT_OK): %s",
			       strerror(errno));
	return fd;
}

static int parse_case(char *line, struct bench_case *c, unsigned long lineno)
{
	char name[48], mode[16], proto[8], src[64], dst[64];
	unsigned sport, dport;
	struct in6_addr a6;
	struct in_addr a4;
	char extra;

	if (sscanf(line, "%47s %15s %7s %63s %u %63s %u %c", name, mode, proto, src, &sport, dst, &dport,
		   &extra) != 7)
		goto bad;
	memset(c, 0, sizeof(*c));
	snprintf(c->name, sizeof(c->name), "%s", name);
	if (!strcmp(mode, "flows"))
		c->flows = true;
	else if (strcmp(mode, "repeat"))
		goto bad;
	if (!strcmp(proto, "tcp"))
		c->proto = IPPROTO_TCP;
	else if (!strcmp(proto, "udp"))
		c->proto = IPPROTO_UDP;
	else
		goto bad;
	c->v6 = strchr(src, ':') != NULL;
	if (c->v6 ? inet_pton(AF_INET6, src, &a6) != 1 || inet_pton(AF_INET6, dst, &a6) != 1
		  : inet_pton(AF_INET, src, &a4) != 1 || inet_pton(AF_INET, dst, &a4) != 1)
		goto bad;
	if (sport < 1 || sport > 65535 || dport < 1 || dport > 65535)
		goto bad;
	snprintf(c->src, sizeof(c->src), "%s", src);
	snprintf(c->dst, sizeof(c->dst), "%s", dst);
	c->sport = (__u16)sport;
	c->dport = (__u16)dport;
	return 0;
bad:
	dp_fail(DP_EXIT_USAGE, "usage",
		"bench-pkt input line %lu: expected NAME flows|repeat tcp|udp SRC SPORT DST DPORT "
		"(addresses both IPv4 or both IPv6, ports 1-65535)", lineno);
	dp_fail_num("line", lineno);
	return -1;
}

static size_t build(const struct bench_case *c, __u16 sport, __u8 *buf)
{
	if (c->v6) {
		struct pkt6_spec s = { .src = c->src, .dst = c->dst, .proto = c->proto, .sport = sport,
				       .dport = c->dport };
		return pkt6_build(&s, buf);
	}
	struct pkt_spec s = { .src = c->src, .dst = c->dst, .proto = c->proto, .sport = sport,
			      .dport = c->dport };
	return pkt_build(&s, buf);
}

/* "addr:port" of the output frame's source or destination */
static void out_addr(const __u8 *frame, __u32 len, bool v6, bool dst, char *out, size_t outlen)
{
	char ip[INET6_ADDRSTRLEN] = "?";
	size_t l4 = PKT_IP_OFF + (v6 ? PKT6_IP_LEN : 20);
	__u16 port = 0;

	if (len < l4 + 4) {
		snprintf(out, outlen, "?");
		return;
	}
	if (v6)
		inet_ntop(AF_INET6, frame + PKT_IP_OFF + (dst ? 24 : 8), ip, sizeof(ip));
	else
		inet_ntop(AF_INET, frame + PKT_IP_OFF + (dst ? 16 : 12), ip, sizeof(ip));
	port = (__u16)(frame[l4 + (dst ? 2 : 0)] << 8 | frame[l4 + (dst ? 3 : 1)]);
	snprintf(out, outlen, v6 ? "[%s]:%u" : "%s:%u", ip, port);
}

struct result {
	unsigned long long packets, total_ns;
	unsigned long long retvals[8]; /* TC_ACT_* 0..6; [7]: anything else */
	char out_src[64], out_dst[64];
};

/* one test run; adds to r */
static int run_one(int prog_fd, const __u8 *in, size_t len, unsigned repeat, bool v6, struct result *r)
{
	__u8 out[PKT_MAX];
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = in, .data_size_in = (__u32)len, .data_out = out,
		    .data_size_out = sizeof(out), .repeat = repeat);

	if (bpf_prog_test_run_opts(prog_fd, &opts))
		return dp_fail(DP_EXIT_KERNEL, "test-run-failed", "BPF_PROG_TEST_RUN: %s", strerror(errno));
	if (!r->packets) {
		out_addr(out, opts.data_size_out, v6, false, r->out_src, sizeof(r->out_src));
		out_addr(out, opts.data_size_out, v6, true, r->out_dst, sizeof(r->out_dst));
	}
	r->packets += repeat;
	r->total_ns += (unsigned long long)opts.duration * repeat;
	r->retvals[opts.retval < 7 ? opts.retval : 7]++;
	return 0;
}

static int run_case(int prog_fd, const struct bench_case *c, unsigned flows, unsigned repeat,
		    struct result *r)
{
	__u8 buf[PKT_MAX];
	size_t len;
	unsigned i;

	memset(r, 0, sizeof(*r));
	if (!c->flows) {
		len = build(c, c->sport, buf);
		return run_one(prog_fd, buf, len, repeat, c->v6, r);
	}
	for (i = 0; i < flows; i++) {
		len = build(c, (__u16)(c->sport + i), buf);
		if (run_one(prog_fd, buf, len, 1, c->v6, r))
			return -1;
	}
	return 0;
}

static void result_members(struct jw *w, const struct result *r)
{
	static const char *const act[8] = { "OK", "RECLASSIFY", "SHOT", "PIPE", "STOLEN", "QUEUED",
					    "REPEAT", "OTHER" };
	char ns[32];
	int i;

	jw_u64(w, "packets", r->packets);
	jw_u64(w, "total_ns", r->total_ns);
	snprintf(ns, sizeof(ns), "%.1f", r->packets ? (double)r->total_ns / (double)r->packets : 0.0);
	jw_raw(w, "ns_per_packet", ns);
	jw_open(w, "retvals");
	for (i = 0; i < 8; i++)
		if (r->retvals[i])
			jw_u64(w, act[i], r->retvals[i]);
	jw_close_obj(w);
}

int cmd_bench_pkt(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "repeat", required_argument, NULL, 'r' },
		{ "flows", required_argument, NULL, 'f' },
		{ 0 },
	};
	struct bench_case cases[BENCH_MAX_CASES];
	unsigned long long repeat = 1000000, flows = 10000;
	unsigned long lineno = 0;
	int ncases = 0, prog_fd = -1, floor_fd = -1, opt, i, ret = -1;
	struct result floor_rep, floor_one, r;
	char line[512], path[1024];
	struct bench_case floor_case;
	struct jw w = {};

	optind = 1;
	while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		if (opt == 'r' && !dp_parse_u64(optarg, &repeat) && repeat >= 1 && repeat <= BENCH_MAX_REPEAT)
			continue;
		if (opt == 'f' && !dp_parse_u64(optarg, &flows) && flows >= 1 && flows <= BENCH_MAX_FLOWS)
			continue;
		return dp_fail(DP_EXIT_USAGE, "usage",
			       "bench-pkt: --repeat N (1 to 100m) and --flows N (1 to 50000) only");
	}
	if (optind != argc)
		return dp_fail(DP_EXIT_USAGE, "usage", "bench-pkt takes its cases on stdin, not '%s'",
			       argv[optind]);
	while (fgets(line, sizeof(line), stdin)) {
		lineno++;
		if (line[strspn(line, " \t\r\n")] == '\0' || line[0] == '#')
			continue;
		if (ncases == BENCH_MAX_CASES)
			return dp_fail(DP_EXIT_USAGE, "usage", "bench-pkt: at most %d cases", BENCH_MAX_CASES);
		if (parse_case(line, &cases[ncases], lineno))
			return -1;
		if (cases[ncases].flows && cases[ncases].sport + flows - 1 > 65535)
			return dp_fail(DP_EXIT_USAGE, "usage",
				       "bench-pkt input line %lu: SPORT %u + --flows %llu runs past port 65535",
				       lineno, cases[ncases].sport, flows);
		ncases++;
	}
	if (!ncases)
		return dp_fail(DP_EXIT_USAGE, "usage", "bench-pkt: no case on stdin (see prep-node-dp --help)");
	if (dp_check_bpffs())
		return -1;
	if (!dp_installed())
		return dp_fail(DP_EXIT_NOT_INSTALLED, "not-installed",
			       "the datapath is not installed under %s: install it first",
			       dp_pin_path(path, sizeof(path), NULL));
	prog_fd = bpf_obj_get(dp_pin_path(path, sizeof(path), "progs/tc_lb"));
	if (prog_fd < 0)
		return dp_fail(DP_EXIT_NOT_INSTALLED, "not-installed", "open %s: %s", path, strerror(errno));
	floor_fd = load_floor();
	if (floor_fd < 0)
		goto out;

	/* the floor both ways: the kernel's loop, and one run per call like `flows` cases */
	floor_case = cases[0];
	floor_case.flows = false;
	if (run_case(floor_fd, &floor_case, 1, (unsigned)repeat, &floor_rep))
		goto out;
	floor_case.flows = true;
	if (run_case(floor_fd, &floor_case, (unsigned)flows, 1, &floor_one))
		goto out;

	jw_open(&w, NULL);
	jw_u64(&w, "repeat", repeat);
	jw_u64(&w, "flows", flows);
	jw_open(&w, "floor");
	jw_open(&w, "repeat");
	result_members(&w, &floor_rep);
	jw_close_obj(&w);
	jw_open(&w, "flows");
	result_members(&w, &floor_one);
	jw_close_obj(&w);
	jw_close_obj(&w);
	jw_array(&w, "cases");
	for (i = 0; i < ncases; i++) {
		if (run_case(prog_fd, &cases[i], (unsigned)flows, (unsigned)repeat, &r)) {
			jw_free(&w);
			goto out;
		}
		jw_open(&w, NULL);
		jw_str(&w, "name", cases[i].name);
		jw_str(&w, "mode", cases[i].flows ? "flows" : "repeat");
		jw_u64(&w, "family", cases[i].v6 ? 6 : 4);
		result_members(&w, &r);
		jw_str(&w, "out_src", r.out_src);
		jw_str(&w, "out_dst", r.out_dst);
		jw_close_obj(&w);
	}
	jw_close_arr(&w);
	jw_close_obj(&w);
	jw_print(&w);
	ret = 0;
out:
	if (floor_fd >= 0)
		close(floor_fd);
	close(prog_fd);
	return ret;
}
