// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * ct-gc: garbage collection of the IPv4 conntrack map, from userspace so the datapath never walks a
 * map (5.10 has no bpf_timer, and a timer callback walking 2^18 entries would still be a stall).
 * Walks the map in batches (BPF_MAP_LOOKUP_BATCH, 5.6+; key by key where the kernel refuses
 * batches), deletes every entry whose lifetime has passed (last_seen_ns + lifetime_s against
 * CLOCK_MONOTONIC, the clock bpf_ktime_get_ns reads), and with --backend ADDR:PORT[/PROTO] also every
 * entry of flows to that backend (both directions): the flows of a backend that went away stop being
 * sent to it (--backend repeats, up to 256). Prints {"scanned","expired","flushed","entries","capacity","fill_pct","warning"}.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <bpf/bpf.h>
#include "dp.h"
#include "datapath_structs.h"

#define GC_BATCH 4096
/* --backend given at most this often in one call */
#define GC_MAX_BACKENDS 256
/* fill level above which status and ct-gc warn (new flows start evicting live ones near full) */
#define CT_FILL_WARN_PCT 90

struct gc_backend {
	bool set;
	__be32 addr;
	__be16 port;
	__u8 proto; /* 0: any */
};

static int parse_backend(const char *s, struct gc_backend *b)
{
	char buf[64], *colon, *slash, *end;
	unsigned long port;

	if (strlen(s) >= sizeof(buf))
		return -1;
	strcpy(buf, s);
	slash = strchr(buf, '/');
	if (slash) {
		*slash++ = 0;
		if (!strcmp(slash, "tcp"))
			b->proto = IPPROTO_TCP;
		else if (!strcmp(slash, "udp"))
			b->proto = IPPROTO_UDP;
		else if (!strcmp(slash, "sctp"))
			b->proto = IPPROTO_SCTP;
		else
			return -1;
	}
	colon = strrchr(buf, ':');
	if (!colon)
		return -1;
	*colon++ = 0;
	errno = 0;
	port = strtoul(colon, &end, 10);
	if (errno || *end || !*colon || port == 0 || port > 65535)
		return -1;
	if (inet_pton(AF_INET, buf, &b->addr) != 1)
		return -1;
	b->port = htons((__u16)port);
	b->set = true;
	return 0;
}

/* Is this entry one of a flow to the backend b? DNAT entries name it as nat_*, reply entries as
 * their source. */
static bool to_one_backend(const struct ct_key *k, const struct ct_entry *e, const struct gc_backend *b)
{
	if (!b->set || (b->proto && k->proto != b->proto))
		return false;
	if ((e->flags & CT_F_DNAT) && e->nat_addr == b->addr && e->nat_port == b->port)
		return true;
	return (e->flags & CT_F_REVNAT) && k->saddr == b->addr && k->sport == b->port;
}

static struct gc_backend gc_backends[GC_MAX_BACKENDS];
static int gc_nbackends;

/* Is this entry one of a flow to any --backend? */
static bool to_backend(const struct ct_key *k, const struct ct_entry *e)
{
	int i;

	for (i = 0; i < gc_nbackends; i++)
		if (to_one_backend(k, e, &gc_backends[i]))
			return true;
	return false;
}

static __u64 now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000000000ULL + (__u64)ts.tv_nsec;
}

static bool expired(const struct ct_entry *e, __u64 now)
{
	return e->lifetime_s && now > e->last_seen_ns &&
	       now - e->last_seen_ns > (__u64)e->lifetime_s * 1000000000ULL;
}

/* entries of fd in total (a walk of the keys: LRU and hash maps keep no count userspace can read) */
static unsigned long long count_entries(int fd)
{
	struct ct_key k, next;
	unsigned long long n = 0;
	void *prev = NULL;

	while (bpf_map_get_next_key(fd, prev, &next) == 0) {
		n++;
		k = next;
		prev = &k;
	}
	return n;
}

/* one decision per entry: delete it (expired or to the backend) or keep it */
static int gc_one(int fd, const struct ct_key *k, const struct ct_entry *e, __u64 now,
		  unsigned long long *exp, unsigned long long *flushed)
{
	bool flush = to_backend(k, e), old = !flush && expired(e, now);

	if (!flush && !old)
		return 0;
	if (bpf_map_delete_elem(fd, k) && errno != ENOENT)
		return -1;
	if (flush)
		(*flushed)++;
	else
		(*exp)++;
	return 0;
}

int cmd_ct_gc(int argc, char **argv)
{
	static const struct option longopts[] = { { "backend", required_argument, NULL, 'b' }, {} };
	static struct ct_key keys[GC_BATCH];
	static struct ct_entry vals[GC_BATCH];
	unsigned long long scanned = 0, exp = 0, flushed = 0, entries, pct;
	struct bpf_map_info info = {};
	__u32 info_len = sizeof(info), batch = 0, count, i;
	bool more = true, first = true, batched = true;
	__u64 now = now_ns();
	struct jw w = {};
	int fd, c, err;

	optind = 1;
	gc_nbackends = 0;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		if (c == 'b' && gc_nbackends == GC_MAX_BACKENDS)
			return dp_fail(DP_EXIT_USAGE, "usage", "ct-gc: at most %d --backend per call",
				       GC_MAX_BACKENDS);
		if (c != 'b' || parse_backend(optarg, &gc_backends[gc_nbackends]))
			return dp_fail(DP_EXIT_USAGE, "usage", "ct-gc [--backend ADDR:PORT[/tcp|udp|sctp]]...%s%s",
				       c == 'b' ? ": not an IPv4 address:port, " : "", c == 'b' ? optarg : "");
		gc_nbackends++;
	}
	if (optind != argc)
		return dp_fail(DP_EXIT_USAGE, "usage", "ct-gc: unexpected argument %s", argv[optind]);
	if (dp_check_bpffs())
		return -1;
	if (!dp_installed())
		return dp_fail(DP_EXIT_NOT_INSTALLED, "not-installed", "the datapath is not installed: run install first");
	fd = dp_map_open("conntrack");
	if (fd < 0)
		return dp_fail(DP_EXIT_NOT_INSTALLED, "not-installed", "no conntrack map in this install: %s",
			       strerror(-fd));
	if (bpf_obj_get_info_by_fd(fd, &info, &info_len) || info.key_size != sizeof(struct ct_key) ||
	    info.value_size != sizeof(struct ct_entry))
		return dp_fail(DP_EXIT_INTERNAL, "internal", "the conntrack map's layout is not this loader's");

	/* batches: a batch's keys are copied out before anything is deleted, so deleting does not
	 * disturb the walk (the kernel resumes from its bucket token) */
	while (more) {
		LIBBPF_OPTS(bpf_map_batch_opts, opts);

		count = GC_BATCH;
		err = bpf_map_lookup_batch(fd, first ? NULL : &batch, &batch, keys, vals, &count, &opts);
		first = false;
		if (err && errno != ENOENT) {
			if (errno == EINVAL || errno == EOPNOTSUPP || errno == 524 /* ENOTSUPP */) {
				batched = false; /* no batch ops for this map on this kernel */
				break;
			}
			return dp_fail(DP_EXIT_INTERNAL, "internal", "walking conntrack: %s", strerror(errno));
		}
		more = !err;
		for (i = 0; i < count; i++) {
			scanned++;
			if (gc_one(fd, &keys[i], &vals[i], now, &exp, &flushed))
				return dp_fail(DP_EXIT_INTERNAL, "internal", "deleting a conntrack entry: %s",
					       strerror(errno));
		}
	}
	if (!batched) { /* key by key: collect first, then delete (deleting the cursor restarts a walk) */
		struct ct_key k, next;
		void *prev = NULL;

		scanned = 0;
		while (bpf_map_get_next_key(fd, prev, &next) == 0) {
			struct ct_entry e;

			k = next;
			prev = &k;
			scanned++;
			if (bpf_map_lookup_elem(fd, &k, &e) == 0 &&
			    gc_one(fd, &k, &e, now, &exp, &flushed))
				return dp_fail(DP_EXIT_INTERNAL, "internal", "deleting a conntrack entry: %s",
					       strerror(errno));
		}
	}

	entries = count_entries(fd);
	pct = info.max_entries ? entries * 100 / info.max_entries : 0;
	jw_open(&w, NULL);
	jw_u64(&w, "scanned", scanned);
	jw_u64(&w, "expired", exp);
	jw_u64(&w, "flushed", flushed);
	jw_u64(&w, "entries", entries);
	jw_u64(&w, "capacity", info.max_entries);
	jw_u64(&w, "fill_pct", pct);
	if (pct >= CT_FILL_WARN_PCT)
		jw_str(&w, "warning", "conntrack is nearly full: new flows evict the least recently used "
				      "ones; raise it with install --cap conntrack=N");
	else
		jw_null(&w, "warning");
	jw_close_obj(&w);
	jw_print(&w);
	return 0;
}
