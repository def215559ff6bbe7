// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * prep-node-dp: the node-side loader of the prep-node eBPF datapath. A static binary with both BPF
 * objects embedded (libbpf skeletons), uploaded by prep-node over SSH: a node needs nothing but its
 * kernel. Every command prints one JSON document on stdout (`events` and `dump` print lines,
 * `metrics` the Prometheus text format);
 * failures print {"error": "...", "code": "..."} and exit with the codes of enum dp_exit.
 */
#include <stdio.h>
#include <string.h>
#include "dp.h"

#ifndef DP_VERSION
#define DP_VERSION "dev"
#endif

static const struct {
	const char *name;
	int (*run)(int argc, char **argv);
} commands[] = {
	{ "install", cmd_install }, { "apply", cmd_apply },   { "dump", cmd_dump },
	{ "status", cmd_status },   { "events", cmd_events }, { "remove", cmd_remove },
	{ "serve", cmd_serve },     { "probe", cmd_probe },   { "features", cmd_features },
	{ "metrics", cmd_metrics },
	{ "bench-pkt", cmd_bench_pkt },
	{ "ct-gc", cmd_ct_gc },
};

static const char usage[] =
	"usage: prep-node-dp [--bpffs DIR] [-v] COMMAND [options]\n"
	"  install [--cap MAP=N,...] [--tc-dev IF]... [--cgroup PATH] [--force] [--no-flow-events]\n"
	"          [--ram-mib N]  (default capacities follow RAM below 4 GiB; --cap overrides)\n"
	"          [--snat-ports MIN-MAX]  (default: above net.ipv4.ip_local_port_range)\n"
	"          [--ct-timeout tcp-syn=60,tcp-established=6h,tcp-closing=10,udp=60,other=60]\n"
	"  ct-gc [--backend ADDR:PORT|[ADDR6]:PORT[/tcp|udp|sctp]]...  delete expired conntrack and conntrack6\n"
	"                                      entries (and those of flows to the backends)\n"
	"  apply                      lines on stdin: put MAP KEYHEX VALUEHEX | del MAP KEYHEX | clear MAP\n"
	"  dump MAP [--per-cpu]       KEYHEX VALUEHEX per line\n"
	"  status\n"
	"  metrics [--names FILE]     the counters in the Prometheus text format (FILE: sync's names index)\n"
	"  events [--follow] [--timeout-ms N] [--max N]\n"
	"  remove\n"
	"  serve --port P --name NAME [--addr A]\n"
	"  probe --connect IP:PORT [--count N] [--timeout-ms T] [--udp]\n"
	"  features                   what this kernel does (BPF program/attach types, helpers, maps, modules)\n"
	"  bench-pkt [--repeat N] [--flows N]   tc_lb's ns/packet (BPF_PROG_TEST_RUN) beside a floor program;\n"
	"                             cases on stdin: NAME flows|repeat tcp|udp SRC SPORT DST DPORT\n"
	"  version\n"
	"--bpffs DIR: the bpffs holding prep-node/ (default /sys/fs/bpf)\n"
	"-v: libbpf's messages on stderr\n"
	"exit codes: 0 ok, 1 internal, 2 usage, 3 not installed, 4 load (verifier), 5 attach,\n"
	"            6 kernel too old, 7 node setup (bpffs, cgroup v2, netns), 8 apply write failed\n";

int main(int argc, char **argv)
{
	bool verbose = false;
	size_t i;
	int a = 1;

	while (a < argc && argv[a][0] == '-') {
		if (!strcmp(argv[a], "--bpffs") && a + 1 < argc) {
			dp_bpffs = argv[a + 1];
			a += 2;
		} else if (!strcmp(argv[a], "-v")) {
			verbose = true;
			a++;
		} else if (!strcmp(argv[a], "--help") || !strcmp(argv[a], "-h")) {
			fputs(usage, stdout);
			return 0;
		} else {
			break;
		}
	}
	dp_libbpf_log_init(verbose);
	if (a >= argc) {
		fputs(usage, stderr);
		dp_fail(DP_EXIT_USAGE, "usage", "no command given (see prep-node-dp --help)");
		return dp_print_error();
	}
	if (!strcmp(argv[a], "version")) {
		printf("{\"version\":\"%s\"}\n", DP_VERSION);
		return 0;
	}
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(argv[a], commands[i].name))
			return commands[i].run(argc - a, argv + a) ? dp_print_error() : 0;
	dp_fail(DP_EXIT_USAGE, "usage", "unknown command '%s' (see prep-node-dp --help)", argv[a]);
	return dp_print_error();
}
