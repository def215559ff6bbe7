// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * ct-gc: garbage collection of the conntrack maps (conntrack, and conntrack6 for IPv6 flows), from
 * userspace so the datapath never walks a map (5.10 has no bpf_timer, and a timer callback walking
 * 2^18 entries would still be a stall). Walks each map in batches (BPF_MAP_LOOKUP_BATCH, 5.6+; key
 * by key where the kernel refuses batches), deletes every entry whose lifetime has passed
 * (last_seen_ns + lifetime_s against CLOCK_MONOTONIC, the clock bpf_ktime_get_ns reads), and with
 * --backend ADDR:PORT[/PROTO] (IPv6: [ADDR]:PORT[/PROTO]) also every entry of flows to that backend
 * (both directions): the flows of a backend that went away stop being sent to it (--backend
 * repeats, up to 256). Prints {"scanned","expired","flushed" (both maps), "entries","capacity",
 * "fill_pct" (conntrack), "conntrack6": {the same for conntrack6, or null when the install has
 * none}, "warning"}.
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
	bool v6;
	__be32 addr;
	__be32 addr6[4];
	__be16 port;
	__u8 proto; /* 0: any */
};

static int parse_backend(const char *s, struct gc_backend *b)
{
	char buf[80], *colon, *slash, *end, *host;
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
	host = buf;
	if (host[0] == '[') { /* [IPv6]:port */
		size_t n = strlen(host);

		if (n < 3 || host[n - 1] != ']')
			return -1;
		host[n - 1] = 0;
		if (inet_pton(AF_INET6, host + 1, b->addr6) != 1)
			return -1;
		b->v6 = true;
	} else if (inet_pton(AF_INET, host, &b->addr) != 1) {
		return -1;
	}
	b->port = htons((__u16)port);
	b->set = true;
	return 0;
}

static struct gc_backend gc_backends[GC_MAX_BACKENDS];
static int gc_nbackends;

/* Is this IPv4 entry one of a flow to the backend b? DNAT entries name it as nat_*, reply entries
 * as their source. */
static bool to_one_backend(const struct ct_key *k, const struct ct_entry *e, const struct gc_backend *b)
{
	if (!b->set || b->v6 || (b->proto && k->proto != b->proto))
		return false;
	if ((e->flags & CT_F_DNAT) && e->nat_addr == b->addr && e->nat_port == b->port)
		return true;
	return (e->flags & CT_F_REVNAT) && k->saddr == b->addr && k->sport == b->port;
}

/* The same for an IPv6 entry. */
static bool to_one_backend6(const struct ct6_key *k, const struct ct6_entry *e,
			    const struct gc_backend *b)
{
	if (!b->set || !b->v6 || (b->proto && k->proto != b->proto))
		return false;
	if ((e->flags & CT_F_DNAT) && !memcmp(e->nat_addr, b->addr6, 16) && e->nat_port == b->port)
		return true;
	return (e->flags & CT_F_REVNAT) && !memcmp(k->saddr, b->addr6, 16) && k->sport == b->port;
}

/* Is this entry (of conntrack, or of conntrack6 when v6) one of a flow to any --backend? */
static bool to_backend(const void *k, const void *e, bool v6)
{
	int i;

	for (i = 0; i < gc_nbackends; i++)
		if (v6 ? to_one_backend6(k, e, &gc_backends[i]) : to_one_backend(k, e, &gc_backends[i]))
			return true;
	return false;
}

static __u64 now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000000000ULL + (__u64)ts.tv_nsec;
}

static bool expired(__u64 last_seen_ns, __u32 lifetime_s, __u64 now)
{
	return lifetime_s && now > last_seen_ns && now - last_seen_ns > (__u64)lifetime_s * 1000000000ULL;
}

/* one conntrack map: its layout and what a walk of it found */
struct gc_map {
	const char *name;
	bool v6;
	__u32 key_size, value_size;
	int fd;
	__u32 capacity;
	unsigned long long scanned, exp, flushed, entries;
};

#define GC_KEY_MAX sizeof(struct ct6_key)
#define GC_VALUE_MAX sizeof(struct ct6_entry)

/* entries of fd in total (a walk of the keys: LRU and hash maps keep no count userspace can read) */
static unsigned long long count_entries(const struct gc_map *m)
{
	unsigned char k[GC_KEY_MAX], next[GC_KEY_MAX];
	unsigned long long n = 0;
	void *prev = NULL;

	while (bpf_map_get_next_key(m->fd, prev, next) == 0) {
		n++;
		memcpy(k, next, m->key_size);
		prev = k;
	}
	return n;
}

/* one decision per entry: delete it (expired or to the backend) or keep it */
static int gc_one(struct gc_map *m, const void *k, const void *e, __u64 now)
{
	bool flush = to_backend(k, e, m->v6), old;

	if (m->v6) {
		const struct ct6_entry *v = e;

		old = !flush && expired(v->last_seen_ns, v->lifetime_s, now);
	} else {
		const struct ct_entry *v = e;

		old = !flush && expired(v->last_seen_ns, v->lifetime_s, now);
	}
	if (!flush && !old)
		return 0;
	if (bpf_map_delete_elem(m->fd, k) && errno != ENOENT)
		return -1;
	if (flush)
		m->flushed++;
	else
		m->exp++;
	return 0;
}

/* Walk one map: 0, or -1 with a message printed (dp_fail). */
static int gc_walk(struct gc_map *m, __u64 now)
{
	static unsigned char keys[GC_BATCH * GC_KEY_MAX], vals[GC_BATCH * GC_VALUE_MAX];
	__u32 batch = 0, count, i;
	bool more = true, first = true, batched = true;
	int err;

	/* batches: a batch's keys are copied out before anything is deleted, so deleting does not
	 * disturb the walk (the kernel resumes from its bucket token) */
	while (more) {
		LIBBPF_OPTS(bpf_map_batch_opts, opts);

		count = GC_BATCH;
		err = bpf_map_lookup_batch(m->fd, first ? NULL : &batch, &batch, keys, vals, &count, &opts);
		first = false;
		if (err && errno != ENOENT) {
			if (errno == EINVAL || errno == EOPNOTSUPP || errno == 524 /* ENOTSUPP */) {
				batched = false; /* no batch ops for this map on this kernel */
				break;
			}
			return dp_fail(DP_EXIT_INTERNAL, "internal", "walking %s: %s", m->name, strerror(errno));
		}
		more = !err;
		for (i = 0; i < count; i++) {
			m->scanned++;
			if (gc_one(m, keys + i * m->key_size, vals + i * m->value_size, now))
				return dp_fail(DP_EXIT_INTERNAL, "internal", "deleting a %s entry: %s", m->name,
					       strerror(errno));
		}
	}
	if (!batched) { /* key by key: collect first, then delete (deleting the cursor restarts a walk) */
		unsigned char k[GC_KEY_MAX], next[GC_KEY_MAX], e[GC_VALUE_MAX];
		void *prev = NULL;

		m->scanned = 0;
		while (bpf_map_get_next_key(m->fd, prev, next) == 0) {
			memcpy(k, next, m->key_size);
			prev = k;
			m->scanned++;
			if (bpf_map_lookup_elem(m->fd, k, e) == 0 && gc_one(m, k, e, now))
				return dp_fail(DP_EXIT_INTERNAL, "internal", "deleting a %s entry: %s", m->name,
					       strerror(errno));
		}
	}
	m->entries = count_entries(m);
	return 0;
}

/* Open m's pinned map and check its layout: 0, 1 (absent and optional), or -1 (dp_fail printed). */
static int gc_open(struct gc_map *m, bool optional)
{
	struct bpf_map_info info = {};
	__u32 info_len = sizeof(info);

	m->fd = dp_map_open(m->name);
	if (m->fd < 0) {
		if (optional)
			return 1;
		return dp_fail(DP_EXIT_NOT_INSTALLED, "not-installed", "no %s map in this install: %s",
			       m->name, strerror(-m->fd));
	}
	if (bpf_obj_get_info_by_fd(m->fd, &info, &info_len) || info.key_size != m->key_size ||
	    info.value_size != m->value_size)
		return dp_fail(DP_EXIT_INTERNAL, "internal",
			       "the %s map's layout is not this loader's: reinstall (datapath install --force)",
			       m->name);
	m->capacity = info.max_entries;
	return 0;
}

static unsigned long long fill_pct(const struct gc_map *m)
{
	return m->capacity ? m->entries * 100 / m->capacity : 0;
}

int cmd_ct_gc(int argc, char **argv)
{
	static const struct option longopts[] = { { "backend", required_argument, NULL, 'b' }, {} };
	struct gc_map v4 = { .name = "conntrack", .key_size = sizeof(struct ct_key),
			     .value_size = sizeof(struct ct_entry) };
	struct gc_map v6 = { .name = "conntrack6", .v6 = true, .key_size = sizeof(struct ct6_key),
			     .value_size = sizeof(struct ct6_entry) };
	__u64 now = now_ns();
	struct jw w = {};
	int c, have6;
	const char *warn = NULL;

	optind = 1;
	gc_nbackends = 0;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		if (c == 'b' && gc_nbackends == GC_MAX_BACKENDS)
			return dp_fail(DP_EXIT_USAGE, "usage", "ct-gc: at most %d --backend per call",
				       GC_MAX_BACKENDS);
		memset(&gc_backends[gc_nbackends], 0, sizeof(gc_backends[0]));
		if (c != 'b' || parse_backend(optarg, &gc_backends[gc_nbackends]))
			return dp_fail(DP_EXIT_USAGE, "usage", "ct-gc [--backend ADDR:PORT[/tcp|udp|sctp]]...%s%s",
				       c == 'b' ? ": not an IPv4 address:port or [IPv6 address]:port, " : "",
				       c == 'b' ? optarg : "");
		gc_nbackends++;
	}
	if (optind != argc)
		return dp_fail(DP_EXIT_USAGE, "usage", "ct-gc: unexpected argument %s", argv[optind]);
	if (dp_check_bpffs())
		return -1;
	if (!dp_installed())
		return dp_fail(DP_EXIT_NOT_INSTALLED, "not-installed", "the datapath is not installed: run install first");
	if (gc_open(&v4, false))
		return -1;
	have6 = gc_open(&v6, true); /* an install from before IPv6 services may have none */
	if (have6 < 0)
		return -1;
	if (gc_walk(&v4, now) || (have6 == 0 && gc_walk(&v6, now)))
		return -1;

	jw_open(&w, NULL);
	jw_u64(&w, "scanned", v4.scanned + v6.scanned);
	jw_u64(&w, "expired", v4.exp + v6.exp);
	jw_u64(&w, "flushed", v4.flushed + v6.flushed);
	jw_u64(&w, "entries", v4.entries);
	jw_u64(&w, "capacity", v4.capacity);
	jw_u64(&w, "fill_pct", fill_pct(&v4));
	if (have6 == 0) {
		jw_open(&w, "conntrack6");
		jw_u64(&w, "scanned", v6.scanned);
		jw_u64(&w, "expired", v6.exp);
		jw_u64(&w, "flushed", v6.flushed);
		jw_u64(&w, "entries", v6.entries);
		jw_u64(&w, "capacity", v6.capacity);
		jw_u64(&w, "fill_pct", fill_pct(&v6));
		jw_close_obj(&w);
	} else {
		jw_null(&w, "conntrack6");
	}
	if (fill_pct(&v4) >= CT_FILL_WARN_PCT)
		warn = "conntrack is nearly full: new flows evict the least recently used ones; raise it "
		       "with install --cap conntrack=N";
	else if (have6 == 0 && fill_pct(&v6) >= CT_FILL_WARN_PCT)
		warn = "conntrack6 is nearly full: new IPv6 flows evict the least recently used ones; "
		       "raise it with install --cap conntrack6=N";
	jw_str(&w, "warning", warn);
	jw_close_obj(&w);
	jw_print(&w);
	return 0;
}
