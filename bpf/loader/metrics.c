// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * metrics: the datapath's counters in the Prometheus text exposition format (0.0.4). The one
 * renderer: `prep-node datapath metrics` runs it over SSH, the textfile writer `install
 * --metrics-textfile` leaves on the node runs it for node_exporter, the agent's /metrics runs it
 * locally. It reads the maps with the structs of the shared headers and names drop reasons from
 * drop_reasons.h, so nothing decodes map bytes a second time.
 *
 * What there is: drops by reason (packets and bytes), forwarded traffic by service (svc_counters:
 * packets and bytes the tc program NATed, both directions; connections the socket programs
 * translated, whose bytes no program of ours sees), lost events, map fill levels, attachment.
 * Services are named from the names index (--names FILE, names.c); a service the index does not
 * know has service="" and its svc_id. Not installed: only prep_node_datapath_up 0.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "dp.h"
#include "maps_user.h"

struct family {
	const char *name, *type, *help;
};

/* Every family, in output order. Names, types and HELP texts are an interface (dashboards, alerts):
 * test/kernel/dp-metrics.test.ts pins them. */
static const struct family F_UP = { "prep_node_datapath_up", "gauge",
	"Whether the prep-node datapath is installed (programs loaded, maps pinned)." };
static const struct family F_DROPS = { "prep_node_datapath_drops_total", "counter",
	"Packets dropped (or socket calls rejected) by the datapath, by reason (bpf/include/drop_reasons.h)." };
static const struct family F_DROP_BYTES = { "prep_node_datapath_drop_bytes_total", "counter",
	"Bytes of the packets dropped by the datapath, by reason (0 for rejected socket calls)." };
static const struct family F_FWD_PACKETS = { "prep_node_datapath_forwarded_packets_total", "counter",
	"Packets the tc program forwarded to or from a service backend (NATed, both directions), by service." };
static const struct family F_FWD_BYTES = { "prep_node_datapath_forwarded_bytes_total", "counter",
	"Bytes of the packets the tc program forwarded to or from a service backend, by service." };
static const struct family F_CONNECTIONS = { "prep_node_datapath_service_connections_total", "counter",
	"Connections translated to a service backend at the socket (connect(), new socket-backend pairs of sendmsg()); their bytes are not counted." };
static const struct family F_LOST = { "prep_node_datapath_events_lost_total", "counter",
	"Events (drops, forwarded flows) the datapath could not queue because the ring buffer was full." };
static const struct family F_ENTRIES = { "prep_node_datapath_map_entries", "gauge",
	"Entries in each datapath map (arrays: their size)." };
static const struct family F_CAPACITY = { "prep_node_datapath_map_capacity", "gauge",
	"max_entries of each datapath map (ring buffer: bytes)." };
static const struct family F_ATTACHED = { "prep_node_datapath_program_attached", "gauge",
	"Whether each datapath program is attached where the install put it." };

static void header(FILE *f, const struct family *fam)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", fam->name, fam->help, fam->name, fam->type);
}

/* a label value as the exposition format wants it: backslash, double quote and newline escaped */
static void label(FILE *f, const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (s[i] == '\\')
			fputs("\\\\", f);
		else if (s[i] == '"')
			fputs("\\\"", f);
		else if (s[i] == '\n')
			fputs("\\n", f);
		else
			fputc(s[i], f);
	}
}

static void drops(FILE *f)
{
	int fd = dp_map_open("drop_counters");
	struct drop_counter c;

	/* one pass per family: each family's samples are contiguous */
	header(f, &F_DROPS);
#define DROP_REASON(num, id, desc)                                                                    \
	fprintf(f, "%s{reason=\"%s\",code=\"%d\"} %llu\n", F_DROPS.name, #id, num,                  \
		fd >= 0 && dp_drop_count(fd, num, &c) == 0 ? (unsigned long long)c.packets : 0ull);
#include "drop_reasons.h"
#undef DROP_REASON
	header(f, &F_DROP_BYTES);
#define DROP_REASON(num, id, desc)                                                                    \
	fprintf(f, "%s{reason=\"%s\",code=\"%d\"} %llu\n", F_DROP_BYTES.name, #id, num,             \
		fd >= 0 && dp_drop_count(fd, num, &c) == 0 ? (unsigned long long)c.bytes : 0ull);
#include "drop_reasons.h"
#undef DROP_REASON
	if (fd >= 0)
		close(fd);
}

struct svc_row {
	__u32 id;
	struct svc_counter sum;
};

/* svc_counters summed over CPUs, in the kernel's key order; *n rows (an older install without
 * the map: none). 0 or -ENOMEM. */
static int svc_rows(struct svc_row **out, size_t *n)
{
	int ncpu = libbpf_num_possible_cpus(), fd = dp_map_open("svc_counters"), i;
	struct svc_counter *per = NULL;
	struct svc_row *rows = NULL;
	__u32 key, last, *prev = NULL;
	size_t cap = 0;

	*n = 0;
	if (fd < 0 || ncpu <= 0)
		goto done;
	if (!(per = calloc((size_t)ncpu, sizeof(*per))))
		goto nomem;
	while (bpf_map_get_next_key(fd, prev, &key) == 0) {
		last = key;
		prev = &last;
		if (bpf_map_lookup_elem(fd, &key, per))
			continue; /* deleted under us */
		if (*n == cap) {
			struct svc_row *r = reallocarray(rows, cap ? cap * 2 : 64, sizeof(*rows));

			if (!r)
				goto nomem;
			rows = r;
			cap = cap ? cap * 2 : 64;
		}
		rows[*n] = (struct svc_row){ .id = key };
		for (i = 0; i < ncpu; i++) {
			rows[*n].sum.packets += per[i].packets;
			rows[*n].sum.bytes += per[i].bytes;
			rows[*n].sum.connections += per[i].connections;
		}
		(*n)++;
	}
done:
	free(per);
	if (fd >= 0)
		close(fd);
	*out = rows;
	return 0;
nomem:
	free(per);
	free(rows);
	close(fd);
	return dp_fail(DP_EXIT_INTERNAL, "internal", "metrics: out of memory reading svc_counters");
}

static void forwarded(FILE *f, const struct svc_row *rows, size_t n, const struct dp_names *names)
{
	const struct family *fams[] = { &F_FWD_PACKETS, &F_FWD_BYTES, &F_CONNECTIONS };
	size_t i, k;

	for (k = 0; k < 3; k++) {
		header(f, fams[k]);
		for (i = 0; i < n; i++) {
			const struct dp_name *nm = dp_names_find(names, rows[i].id);
			const struct svc_counter *s = &rows[i].sum;

			fprintf(f, "%s{service=\"", fams[k]->name);
			if (nm)
				label(f, nm->name, nm->len);
			fprintf(f, "\",svc_id=\"%u\"} %llu\n", rows[i].id,
				(unsigned long long)(k == 0 ? s->packets : k == 1 ? s->bytes : s->connections));
		}
	}
}

static void map_entries(const struct dp_map_row *r, void *ctx)
{
	FILE *f = ctx;

	if (r->entries < 0)
		return; /* the ring buffer has no entry count */
	fprintf(f, "%s{map=\"", F_ENTRIES.name);
	label(f, r->name, strlen(r->name));
	fprintf(f, "\"} %lld\n", r->entries);
}

static void map_capacity(const struct dp_map_row *r, void *ctx)
{
	FILE *f = ctx;

	fprintf(f, "%s{map=\"", F_CAPACITY.name);
	label(f, r->name, strlen(r->name));
	fprintf(f, "\"} %u\n", r->info.max_entries);
}

static void attached(const struct dp_prog_row *r, void *ctx)
{
	FILE *f = ctx;

	fprintf(f, "%s{program=\"", F_ATTACHED.name);
	label(f, r->name, strlen(r->name));
	fputs("\",attach=\"", f);
	label(f, r->attach, strlen(r->attach));
	fprintf(f, "\"} %d\n", r->attached ? 1 : 0);
}

/* The exposition into f; 0 or a recorded failure. */
static int render(FILE *f, const struct dp_names *names)
{
	static struct dp_state st;
	struct svc_row *rows = NULL;
	bool installed;
	size_t n;

	if (dp_status_open(&st, &installed))
		return -1;
	header(f, &F_UP);
	fprintf(f, "%s %d\n", F_UP.name, installed ? 1 : 0);
	if (!installed)
		return 0;
	drops(f);
	if (svc_rows(&rows, &n))
		return -1;
	forwarded(f, rows, n, names);
	free(rows);
	header(f, &F_LOST);
	fprintf(f, "%s %llu\n", F_LOST.name, dp_events_lost());
	header(f, &F_ENTRIES);
	dp_walk_maps(map_entries, f);
	header(f, &F_CAPACITY);
	dp_walk_maps(map_capacity, f);
	header(f, &F_ATTACHED);
	dp_walk_programs(&st, attached, f);
	return 0;
}

int cmd_metrics(int argc, char **argv)
{
	struct dp_names names = {};
	const char *names_path = NULL;
	char *text = NULL;
	size_t len = 0;
	FILE *f;
	int a, r;

	for (a = 1; a < argc; a++) {
		if (!strcmp(argv[a], "--names") && a + 1 < argc)
			names_path = argv[++a];
		else
			return dp_fail(DP_EXIT_USAGE, "usage", "metrics: unknown argument '%s' (metrics [--names FILE])", argv[a]);
	}
	/* an index that cannot be used costs the names only: metrics are still worth having */
	if (names_path && (r = dp_names_load(names_path, &names)) < 0)
		fprintf(stderr, "prep-node-dp metrics: no service names from %s: %s\n", names_path,
			r == -EBADMSG ? "not a version-1 names index (JSON)" : r == -EFBIG ? "larger than 64 MiB" : strerror(-r));
	/* the whole text first: a failure prints the error document only, never half an exposition */
	f = open_memstream(&text, &len);
	if (!f) {
		dp_names_free(&names);
		return dp_fail(DP_EXIT_INTERNAL, "internal", "metrics: open_memstream: %s", strerror(errno));
	}
	r = render(f, &names);
	dp_names_free(&names);
	if (fclose(f) || r) {
		free(text);
		return r ? -1 : dp_fail(DP_EXIT_INTERNAL, "internal", "metrics: out of memory");
	}
	r = fwrite(text, 1, len, stdout) == len && fflush(stdout) == 0 ? 0 : -1;
	free(text);
	return r ? dp_fail(DP_EXIT_INTERNAL, "internal", "metrics: writing stdout: %s", strerror(errno)) : 0;
}
