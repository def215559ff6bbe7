// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * install: load both objects with one shared set of maps, pin them, attach sock_lb to a cgroup v2
 * and tc_lb to the ingress of each --tc-dev. Everything that can be checked without touching the
 * kernel is checked first (arguments, bpffs, cgroup, devices, kernel features); then the install is
 * built under <bpffs>/prep-node-new-<pid>/ and renamed to <bpffs>/prep-node/ only once all of it is
 * attached. Any failure tears the half-built install down again: nothing stays attached or pinned.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <mntent.h>
#include <net/if.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysinfo.h>
#include <time.h>
#include <unistd.h>
#include <linux/magic.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "dp.h"
#include "tc_lb.skel.h"
#include "sock_lb.skel.h"

#define MAX_CAPS 32

struct install_opts {
	struct { char map[32]; unsigned long long n; } cap[MAX_CAPS];
	int ncap;
	const char *tc_dev[DP_MAX_TC];
	int ntc;
	const char *cgroup; /* NULL: detect the cgroup v2 root */
	bool force;
	bool no_flow_events; /* --no-flow-events: cfg_flow_events = 0 (drop events only) */
	unsigned long long ram_mib; /* --ram-mib: size the maps for this much RAM (0: the node's) */
	unsigned snat_min, snat_max; /* --snat-ports MIN-MAX (0: choose, see snat_ports()) */
	/* --ct-timeout: conntrack lifetimes in seconds, 0 = the datapath's default (lib/ct_gc.h) */
	__u32 ct_tcp_syn, ct_tcp_established, ct_tcp_closing, ct_udp, ct_other;
};

/* the SNAT source port range chosen (0-0: none) and why, for the install output */
static unsigned snat_min, snat_max;
static char snat_why[160];

/*
 * Default capacities follow the node's RAM (cilium's bpf-map-dynamic-size-ratio idea): the
 * datapath_consts.h defaults are for a node of DP_RAM_REF_MIB or more (131 MiB of map memory,
 * about 3 % of 4 GiB); below that every map whose size is a capacity (hash, LRU, LPM; not arrays
 * and not the ring buffer) gets default x RAM / DP_RAM_REF_MIB entries, rounded down to a power of
 * two and at least DP_RAM_MIN_ENTRIES. A 1 GiB node gets a quarter: about 33 MiB. --cap overrides.
 */
#define DP_RAM_REF_MIB 4096ULL
#define DP_RAM_MIN_ENTRIES 1024U
static unsigned long long sized_for_mib; /* what the install sized for (reported) */

/* the pieces being built; torn down on failure */
struct install {
	struct tc_lb_bpf *tc;
	struct sock_lb_bpf *sock;
	struct bpf_link *links[12]; /* sock_lb's programs: connect, sendmsg, getpeername, recvmsg x 4/6 */
	int nlinks;
	int cg_fd, state_fd;
	char dir[512];
	struct dp_state st;
};

static int usage_err(const char *msg, const char *arg)
{
	return dp_fail(DP_EXIT_USAGE, "usage", "install: %s%s%s", msg, arg ? ": " : "", arg ? arg : "");
}

/* --cap services=N,backends=N,... (N with k/m/g suffixes) */
static int parse_caps(struct install_opts *o, char *spec)
{
	char *save = NULL, *item, *eq;

	for (item = strtok_r(spec, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		eq = strchr(item, '=');
		if (!eq || o->ncap == MAX_CAPS)
			return usage_err("--cap wants map=entries[,map=entries...]", item);
		*eq = 0;
		snprintf(o->cap[o->ncap].map, sizeof(o->cap[0].map), "%s", item);
		if (dp_parse_u64(eq + 1, &o->cap[o->ncap].n) || o->cap[o->ncap].n == 0 ||
		    o->cap[o->ncap].n > 0xffffffffull)
			return usage_err("--cap: entries must be a number from 1 to 2^32-1", eq + 1);
		o->ncap++;
	}
	return 0;
}

/* a duration: seconds, or a number with s/m/h/d; 1 s .. 30 days */
static int parse_secs(const char *v, __u32 *out)
{
	char *end;
	unsigned long long n, mul = 1;

	errno = 0;
	n = strtoull(v, &end, 10);
	if (errno || end == v)
		return -1;
	if (*end) {
		if (end[1])
			return -1;
		switch (*end) {
		case 's': mul = 1; break;
		case 'm': mul = 60; break;
		case 'h': mul = 3600; break;
		case 'd': mul = 86400; break;
		default: return -1;
		}
	}
	if (n == 0 || n > 30ULL * 86400 / mul)
		return -1;
	*out = (__u32)(n * mul);
	return 0;
}

/* --ct-timeout tcp-syn=60,tcp-established=6h,tcp-closing=10,udp=60,other=60 (any subset) */
static int parse_ct_timeouts(struct install_opts *o, char *spec)
{
	char *save = NULL, *item, *eq;
	__u32 *slot;

	for (item = strtok_r(spec, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		eq = strchr(item, '=');
		if (!eq)
			return usage_err("--ct-timeout wants name=duration[,name=duration...] "
					 "(tcp-syn, tcp-established, tcp-closing, udp, other)", item);
		*eq = 0;
		if (!strcmp(item, "tcp-syn"))
			slot = &o->ct_tcp_syn;
		else if (!strcmp(item, "tcp-established"))
			slot = &o->ct_tcp_established;
		else if (!strcmp(item, "tcp-closing"))
			slot = &o->ct_tcp_closing;
		else if (!strcmp(item, "udp"))
			slot = &o->ct_udp;
		else if (!strcmp(item, "other"))
			slot = &o->ct_other;
		else
			return usage_err("--ct-timeout: no such timeout (tcp-syn, tcp-established, tcp-closing, "
					 "udp, other)", item);
		if (parse_secs(eq + 1, slot))
			return usage_err("--ct-timeout: a duration from 1s to 30d (seconds, or with s/m/h/d)",
					 eq + 1);
	}
	return 0;
}

static int parse_args(struct install_opts *o, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "cap", required_argument, NULL, 'c' },
		{ "tc-dev", required_argument, NULL, 't' },
		{ "cgroup", required_argument, NULL, 'g' },
		{ "force", no_argument, NULL, 'f' },
		{ "no-flow-events", no_argument, NULL, 'n' },
		{ "ram-mib", required_argument, NULL, 'r' },
		{ "snat-ports", required_argument, NULL, 's' },
		{ "ct-timeout", required_argument, NULL, 'T' },
		{}
	};
	int c, i;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			if (parse_caps(o, optarg))
				return -1;
			break;
		case 't':
			if (o->ntc == DP_MAX_TC)
				return usage_err("too many --tc-dev", optarg);
			for (i = 0; i < o->ntc; i++)
				if (!strcmp(o->tc_dev[i], optarg))
					return usage_err("--tc-dev given twice", optarg);
			if (strlen(optarg) >= IF_NAMESIZE)
				return usage_err("--tc-dev: interface name too long", optarg);
			o->tc_dev[o->ntc++] = optarg;
			break;
		case 'g':
			o->cgroup = optarg;
			break;
		case 'f':
			o->force = true;
			break;
		case 'n':
			o->no_flow_events = true;
			break;
		case 'r':
			if (dp_parse_u64(optarg, &o->ram_mib) || o->ram_mib < 64 || o->ram_mib > (1ULL << 30))
				return usage_err("--ram-mib: a number of MiB from 64 to 2^30", optarg);
			break;
		case 's': {
			char tail;

			if (sscanf(optarg, "%u-%u%c", &o->snat_min, &o->snat_max, &tail) != 2 ||
			    o->snat_min < 1024 || o->snat_max > 65535 || o->snat_min > o->snat_max)
				return usage_err("--snat-ports wants MIN-MAX with 1024 <= MIN <= MAX <= 65535", optarg);
			break;
		}
		case 'T':
			if (parse_ct_timeouts(o, optarg))
				return -1;
			break;
		default:
			return usage_err("unknown option (see prep-node-dp --help)", NULL);
		}
	}
	if (optind < argc)
		return usage_err("unexpected argument", argv[optind]);
	return 0;
}

/* Read a /proc/sys file into buf (NUL-terminated); 0 or -1. */
static int read_sysctl(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");
	size_t n;

	if (!f)
		return -1;
	n = fread(buf, 1, len - 1, f);
	fclose(f);
	buf[n] = 0;
	return 0;
}

/* Is every port of lo..hi in net.ipv4.ip_local_reserved_ports ("8080,9000-9100")? */
static bool ports_reserved(const char *reserved, unsigned lo, unsigned hi)
{
	const char *s = reserved;
	unsigned a, b, next = lo;
	int n;

	while (next <= hi && *s) {
		if (sscanf(s, "%u%n", &a, &n) != 1)
			return false;
		s += n;
		b = a;
		if (*s == '-') {
			if (sscanf(s + 1, "%u%n", &b, &n) != 1)
				return false;
			s += 1 + n;
		}
		if (a <= next && b >= next)
			next = b + 1;
		while (*s == ',' || *s == ' ' || *s == '\n' || *s == '\t')
			s++;
	}
	return next > hi;
}

/*
 * The SNAT source port range (lib/snat.h), so that SNATed flows never take a port the node's own
 * connections may take: the ports above net.ipv4.ip_local_port_range (kernel default 32768-60999:
 * 61000-65535), if that leaves at least 1024; --snat-ports MIN-MAX takes a range that must lie
 * outside ip_local_port_range or inside ip_local_reserved_ports. No room and no --snat-ports: no
 * range (install still succeeds; flows that need SNAT drop with DROP_SNAT_NO_PORT, and the
 * install output says why).
 */
static int snat_ports(const struct install_opts *o)
{
	char buf[4096], reserved[4096] = "";
	unsigned lo, hi;

	if (read_sysctl("/proc/sys/net/ipv4/ip_local_port_range", buf, sizeof(buf)) ||
	    sscanf(buf, "%u %u", &lo, &hi) != 2)
		return dp_fail(DP_EXIT_ENV, "no-port-range",
			       "cannot read /proc/sys/net/ipv4/ip_local_port_range (is /proc mounted?)");
	read_sysctl("/proc/sys/net/ipv4/ip_local_reserved_ports", reserved, sizeof(reserved));
	if (o->snat_max) {
		if (!(o->snat_max < lo || o->snat_min > hi) &&
		    !ports_reserved(reserved, o->snat_min, o->snat_max))
			return dp_fail(DP_EXIT_USAGE, "usage",
				       "install: --snat-ports %u-%u overlaps net.ipv4.ip_local_port_range %u-%u, "
				       "where the node's own connections take their ports: reserve them with "
				       "`sysctl -w net.ipv4.ip_local_reserved_ports=%u-%u` or pick ports outside it",
				       o->snat_min, o->snat_max, lo, hi, o->snat_min, o->snat_max);
		snat_min = o->snat_min;
		snat_max = o->snat_max;
		snprintf(snat_why, sizeof(snat_why), "--snat-ports (ip_local_port_range %u-%u)", lo, hi);
		return 0;
	}
	if (hi <= 65535 - 1024) {
		snat_min = hi + 1;
		snat_max = 65535;
		snprintf(snat_why, sizeof(snat_why), "above ip_local_port_range %u-%u", lo, hi);
	} else {
		snprintf(snat_why, sizeof(snat_why),
			 "none: ip_local_port_range %u-%u leaves under 1024 ports above it; give --snat-ports "
			 "(reserved with ip_local_reserved_ports)", lo, hi);
	}
	return 0;
}

/* The cgroup v2 root: /sys/fs/cgroup (unified), /sys/fs/cgroup/unified (hybrid), else any cgroup2. */
static int find_cgroup2(char *out, size_t len)
{
	static const char *preferred[] = { "/sys/fs/cgroup", "/sys/fs/cgroup/unified" };
	struct statfs sfs;
	struct mntent *m;
	FILE *f;
	size_t i;

	for (i = 0; i < sizeof(preferred) / sizeof(preferred[0]); i++)
		if (statfs(preferred[i], &sfs) == 0 && sfs.f_type == CGROUP2_SUPER_MAGIC) {
			snprintf(out, len, "%s", preferred[i]);
			return 0;
		}
	f = setmntent("/proc/self/mounts", "r");
	while (f && (m = getmntent(f)))
		if (!strcmp(m->mnt_type, "cgroup2")) {
			snprintf(out, len, "%s", m->mnt_dir);
			endmntent(f);
			return 0;
		}
	if (f)
		endmntent(f);
	return dp_fail(DP_EXIT_ENV, "no-cgroup2",
		       "no cgroup v2 mounted (not at /sys/fs/cgroup nor /sys/fs/cgroup/unified): mount it with "
		       "`mkdir -p /sys/fs/cgroup/unified && mount -t cgroup2 none /sys/fs/cgroup/unified`, or "
		       "boot with systemd.unified_cgroup_hierarchy=1");
}

static int open_cgroup(const char *path)
{
	struct statfs sfs;
	int fd;

	if (statfs(path, &sfs) || sfs.f_type != CGROUP2_SUPER_MAGIC)
		return dp_fail(DP_EXIT_ENV, "no-cgroup2", "%s is not a cgroup v2 directory%s", path,
			       errno == ENOENT ? " (it does not exist)" : "");
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return dp_fail(DP_EXIT_ENV, "no-cgroup2", "open %s: %s", path, strerror(errno));
	return fd;
}

/* Kernel features the objects need (README: 5.8+), checked before loading anything. */
static int probe_kernel(void)
{
	static const struct { int kind, type, helper_prog; const char *what; } need[] = {
		{ 0, BPF_PROG_TYPE_SCHED_CLS, 0, "tc (sched_cls) programs" },
		{ 0, BPF_PROG_TYPE_CGROUP_SOCK_ADDR, 0, "cgroup sock_addr programs (4.17)" },
		{ 1, BPF_MAP_TYPE_LRU_HASH, 0, "LRU hash maps (4.10)" },
		{ 1, BPF_MAP_TYPE_LPM_TRIE, 0, "LPM trie maps (4.11)" },
		{ 1, BPF_MAP_TYPE_RINGBUF, 0, "ring buffer maps (5.8)" },
		{ 2, BPF_FUNC_get_netns_cookie, BPF_PROG_TYPE_CGROUP_SOCK_ADDR,
		  "bpf_get_netns_cookie in sock_addr programs (5.7)" },
		{ 2, BPF_FUNC_redirect_neigh, BPF_PROG_TYPE_SCHED_CLS,
		  "bpf_redirect_neigh in tc programs (5.10; SNAT forwarding)" },
	};
	size_t i;
	int ret;

	for (i = 0; i < sizeof(need) / sizeof(need[0]); i++) {
		if (need[i].kind == 0)
			ret = libbpf_probe_bpf_prog_type(need[i].type, NULL);
		else if (need[i].kind == 1)
			ret = libbpf_probe_bpf_map_type(need[i].type, NULL);
		else
			ret = libbpf_probe_bpf_helper(need[i].helper_prog, need[i].type, NULL);
		if (ret == -EPERM || ret == -EACCES)
			return dp_fail(DP_EXIT_ENV, "not-permitted",
				       "the kernel refused a BPF probe (%s): run as root (CAP_BPF + CAP_NET_ADMIN + "
				       "CAP_SYS_ADMIN)", strerror(-ret));
		if (ret != 1)
			return dp_fail(DP_EXIT_KERNEL, "kernel-too-old",
				       "this kernel lacks %s; the datapath needs Linux 5.8 or newer (5.10+ supported)",
				       need[i].what);
	}
	return 0;
}

static int load_failed(const char *obj, int err)
{
	char *lines[16];
	const char *why = "";
	int n = dp_libbpf_log_lines(lines, 16), i;

	/* the verifier says why in its last line; libbpf's first "failed" line names the map/program */
	if (n && dp_libbpf_log_is_verifier())
		why = lines[n - 1];
	for (i = 0; !*why && i < n; i++)
		if (strstr(lines[i], "failed"))
			why = lines[i];
	dp_fail(DP_EXIT_LOAD, "load-failed", "loading %s: %s%s%s", obj, strerror(-err), *why ? ": " : "", why);
	if (n)
		dp_fail_lines(dp_libbpf_log_is_verifier() ? "verifier_log" : "log", lines, n);
	return -1;
}

/* capacities by RAM (above), before --cap */
static int size_by_ram(struct bpf_object *obj, const struct install_opts *o)
{
	unsigned long long mib = o->ram_mib;
	struct bpf_map *m;
	struct sysinfo si;

	if (!mib) {
		if (sysinfo(&si))
			return dp_fail(DP_EXIT_INTERNAL, "internal", "sysinfo: %s", strerror(errno));
		mib = (unsigned long long)si.totalram * si.mem_unit >> 20;
	}
	sized_for_mib = mib;
	if (mib >= DP_RAM_REF_MIB)
		return 0;
	bpf_object__for_each_map(m, obj) {
		enum bpf_map_type t = bpf_map__type(m);
		unsigned long long n;
		__u32 p2 = 1;

		if (bpf_map__is_internal(m) || t == BPF_MAP_TYPE_ARRAY || t == BPF_MAP_TYPE_PERCPU_ARRAY ||
		    t == BPF_MAP_TYPE_RINGBUF)
			continue;
		n = (unsigned long long)bpf_map__max_entries(m) * mib / DP_RAM_REF_MIB;
		while ((unsigned long long)p2 * 2 <= n)
			p2 *= 2;
		if (p2 < DP_RAM_MIN_ENTRIES)
			p2 = DP_RAM_MIN_ENTRIES;
		if (p2 < bpf_map__max_entries(m) && bpf_map__set_max_entries(m, p2))
			return usage_err("cannot size", bpf_map__name(m));
	}
	return 0;
}

/* max_entries from --cap, between open and load (README "What userspace must do") */
static int set_caps(struct bpf_object *obj, const struct install_opts *o)
{
	long page = sysconf(_SC_PAGESIZE);
	struct bpf_map *m;
	int i;

	if (size_by_ram(obj, o))
		return -1;
	for (i = 0; i < o->ncap; i++) {
		m = bpf_object__find_map_by_name(obj, o->cap[i].map);
		if (!m || bpf_map__is_internal(m))
			return usage_err("--cap: no such map", o->cap[i].map);
		if (bpf_map__type(m) == BPF_MAP_TYPE_ARRAY || bpf_map__type(m) == BPF_MAP_TYPE_PERCPU_ARRAY)
			return usage_err("--cap: this map's size is fixed (indexed by number)", o->cap[i].map);
		if (bpf_map__type(m) == BPF_MAP_TYPE_RINGBUF &&
		    ((o->cap[i].n & (o->cap[i].n - 1)) || o->cap[i].n % (unsigned long long)page))
			return usage_err("--cap: the ring buffer size is bytes, a power of two and a multiple of "
					 "the page size", o->cap[i].map);
		if (bpf_map__set_max_entries(m, (__u32)o->cap[i].n))
			return usage_err("--cap: cannot set", o->cap[i].map);
	}
	/* one counter entry per service: svc_counters follows services unless capped itself */
	for (i = 0; i < o->ncap && strcmp(o->cap[i].map, "svc_counters"); i++)
		;
	if (i == o->ncap) {
		struct bpf_map *svc = bpf_object__find_map_by_name(obj, "services");

		m = bpf_object__find_map_by_name(obj, "svc_counters");
		if (svc && m && bpf_map__set_max_entries(m, bpf_map__max_entries(svc)))
			return usage_err("--cap: cannot set", "svc_counters");
	}
	return 0;
}

static int pin_all(struct install *in)
{
	char path[1024];
	struct bpf_program *p;
	struct bpf_map *m;
	int err;

	bpf_object__for_each_map(m, in->tc->obj) {
		if (bpf_map__is_internal(m))
			continue;
		snprintf(path, sizeof(path), "%s/maps/%s", in->dir, bpf_map__name(m));
		if ((err = bpf_map__pin(m, path)))
			return dp_fail(DP_EXIT_INTERNAL, "internal", "pin %s: %s", path, strerror(-err));
	}
	bpf_object__for_each_program(p, in->tc->obj) {
		snprintf(path, sizeof(path), "%s/progs/%s", in->dir, bpf_program__name(p));
		if ((err = bpf_program__pin(p, path)))
			return dp_fail(DP_EXIT_INTERNAL, "internal", "pin %s: %s", path, strerror(-err));
	}
	bpf_object__for_each_program(p, in->sock->obj) {
		snprintf(path, sizeof(path), "%s/progs/%s", in->dir, bpf_program__name(p));
		if ((err = bpf_program__pin(p, path)))
			return dp_fail(DP_EXIT_INTERNAL, "internal", "pin %s: %s", path, strerror(-err));
	}
	return 0;
}

static int attach_cgroup(struct install *in)
{
	struct bpf_program *p;
	struct bpf_link *l;
	char path[1024];
	int err;

	bpf_object__for_each_program(p, in->sock->obj) {
		if (in->nlinks == (int)(sizeof(in->links) / sizeof(in->links[0])))
			return dp_fail(DP_EXIT_INTERNAL, "internal", "sock_lb has more programs than links[] holds");
		l = bpf_program__attach_cgroup(p, in->cg_fd);
		if (!l)
			return dp_fail(DP_EXIT_ATTACH, "attach-failed", "attaching %s to cgroup %s: %s",
				       bpf_program__name(p), in->st.cgroup, strerror(errno));
		in->links[in->nlinks++] = l;
		snprintf(path, sizeof(path), "%s/links/%s", in->dir, bpf_program__name(p));
		if ((err = bpf_link__pin(l, path)))
			return dp_fail(DP_EXIT_INTERNAL, "internal", "pin %s: %s", path, strerror(-err));
	}
	return 0;
}

/* tc_lb on the ingress of one device; recorded before attaching so a crash leaves a trail */
static int attach_tc(struct install *in, const char *dev, __u32 ifindex, __u32 prog_id)
{
	DECLARE_LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = (int)ifindex, .attach_point = BPF_TC_INGRESS);
	DECLARE_LIBBPF_OPTS(bpf_tc_opts, opts, .handle = DP_TC_HANDLE, .priority = DP_TC_PRIO,
			    .prog_fd = bpf_program__fd(in->tc->progs.tc_lb));
	struct dp_tc_rec *r = &in->st.tc[in->st.ntc++];
	int err;

	snprintf(r->ifname, sizeof(r->ifname), "%s", dev);
	r->ifindex = ifindex;
	r->prog_id = prog_id;
	err = bpf_tc_hook_create(&hook);
	if (err && err != -EEXIST)
		return dp_fail(DP_EXIT_ATTACH, "attach-failed", "creating the clsact qdisc on %s: %s", dev,
			       strerror(-err));
	r->hook_created = err == 0;
	if ((err = dp_state_write(in->state_fd, &in->st)))
		return dp_fail(DP_EXIT_INTERNAL, "internal", "writing the install record: %s", strerror(-err));
	err = bpf_tc_attach(&hook, &opts);
	if (err)
		return dp_fail(DP_EXIT_ATTACH, "attach-failed",
			       "attaching tc_lb to ingress of %s (handle %d prio %d): %s%s", dev, DP_TC_HANDLE,
			       DP_TC_PRIO, strerror(-err),
			       err == -EEXIST || err == -EINVAL ?
				       " (another filter holds that priority: see `tc filter show dev IF ingress`)" : "");
	r->attached = 1;
	if ((err = dp_state_write(in->state_fd, &in->st)))
		return dp_fail(DP_EXIT_INTERNAL, "internal", "writing the install record: %s", strerror(-err));
	return 0;
}

static __u32 prog_id(int fd)
{
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info);

	return bpf_obj_get_info_by_fd(fd, &info, &len) ? 0 : info.id;
}

static int build(struct install *in, const struct install_opts *o, const __u32 *ifindex)
{
	struct bpf_map *m, *shared;
	char path[1024];
	int err, i;

	in->st.set_retval = libbpf_probe_bpf_helper(BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_FUNC_set_retval,
						    NULL) == 1;
	in->tc = tc_lb_bpf__open();
	in->sock = sock_lb_bpf__open();
	if (!in->tc || !in->sock)
		return dp_fail(DP_EXIT_LOAD, "load-failed", "opening the embedded objects: %s", strerror(errno));
	if (set_caps(in->tc->obj, o))
		return -1;
	in->sock->rodata->cfg_has_set_retval = (__u8)in->st.set_retval;
	in->tc->rodata->cfg_flow_events = !o->no_flow_events;
	in->tc->rodata->cfg_snat_port_min = (__u16)snat_min;
	in->tc->rodata->cfg_snat_port_max = (__u16)snat_max;
	in->sock->rodata->cfg_flow_events = !o->no_flow_events;
	if (o->ct_tcp_syn)
		in->tc->rodata->cfg_ct_tcp_syn_s = o->ct_tcp_syn;
	if (o->ct_tcp_established)
		in->tc->rodata->cfg_ct_tcp_established_s = o->ct_tcp_established;
	if (o->ct_tcp_closing)
		in->tc->rodata->cfg_ct_tcp_closing_s = o->ct_tcp_closing;
	if (o->ct_udp)
		in->tc->rodata->cfg_ct_udp_s = o->ct_udp;
	if (o->ct_other)
		in->tc->rodata->cfg_ct_other_s = o->ct_other;

	dp_libbpf_log_reset();
	if ((err = tc_lb_bpf__load(in->tc)))
		return load_failed("tc_lb", err);
	/* one instance of every map: sock_lb uses tc_lb's */
	bpf_object__for_each_map(m, in->sock->obj) {
		if (bpf_map__is_internal(m))
			continue;
		shared = bpf_object__find_map_by_name(in->tc->obj, bpf_map__name(m));
		if (!shared || (err = bpf_map__reuse_fd(m, bpf_map__fd(shared))))
			return dp_fail(DP_EXIT_LOAD, "load-failed", "sharing map %s with sock_lb: %s",
				       bpf_map__name(m), shared ? strerror(-err) : "not in tc_lb");
	}
	dp_libbpf_log_reset();
	if ((err = sock_lb_bpf__load(in->sock)))
		return load_failed("sock_lb", err);

	snprintf(in->dir, sizeof(in->dir), "%s/prep-node-new-%d", dp_bpffs, (int)getpid());
	if (dp_mkdir(in->dir))
		return -1;
	for (i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s/%s", in->dir, (const char *[]){ "maps", "progs", "links" }[i]);
		if (dp_mkdir(path))
			return -1;
	}
	in->state_fd = dp_state_create(in->dir, &in->st);
	if (in->state_fd < 0 || pin_all(in) || attach_cgroup(in))
		return -1;
	for (i = 0; i < o->ntc; i++)
		if (attach_tc(in, o->tc_dev[i], ifindex[i], prog_id(bpf_program__fd(in->tc->progs.tc_lb))))
			return -1;
	if (rename(in->dir, dp_pin_path(path, sizeof(path), NULL)))
		return dp_fail(DP_EXIT_INTERNAL, "internal", "rename %s -> %s: %s", in->dir, path,
			       strerror(errno));
	in->dir[0] = 0; /* in place: nothing to roll back */
	return 0;
}

static void release(struct install *in)
{
	int i;

	if (in->dir[0]) /* failed half-way: detach and unpin what was done */
		dp_teardown(in->dir, NULL);
	for (i = 0; i < in->nlinks; i++)
		bpf_link__destroy(in->links[i]);
	sock_lb_bpf__destroy(in->sock);
	tc_lb_bpf__destroy(in->tc);
	if (in->cg_fd > 0)
		close(in->cg_fd);
	if (in->state_fd > 0)
		close(in->state_fd);
}

static void print_installed(const struct install *in, const struct install_opts *o)
{
	struct bpf_program *p;
	struct bpf_map *m;
	struct jw w = {};
	char path[512];
	int i;

	jw_open(&w, NULL);
	jw_bool(&w, "installed", true);
	jw_bool(&w, "already_installed", false);
	jw_array(&w, "programs");
	bpf_object__for_each_program(p, in->sock->obj)
		jw_str(&w, NULL, bpf_program__name(p));
	bpf_object__for_each_program(p, in->tc->obj)
		jw_str(&w, NULL, bpf_program__name(p));
	jw_close_arr(&w);
	jw_array(&w, "maps");
	bpf_object__for_each_map(m, in->tc->obj)
		if (!bpf_map__is_internal(m))
			jw_str(&w, NULL, bpf_map__name(m));
	jw_close_arr(&w);
	jw_bool(&w, "set_retval", in->st.set_retval);
	jw_u64(&w, "sized_for_ram_mib", sized_for_mib);
	jw_u64(&w, "snat_port_min", snat_min);
	jw_u64(&w, "snat_port_max", snat_max);
	jw_str(&w, "snat_ports_from", snat_why);
	jw_str(&w, "cgroup", in->st.cgroup);
	jw_array(&w, "tc_devs");
	for (i = 0; i < o->ntc; i++)
		jw_str(&w, NULL, o->tc_dev[i]);
	jw_close_arr(&w);
	jw_str(&w, "pin_dir", dp_pin_path(path, sizeof(path), NULL));
	jw_close_obj(&w);
	jw_print(&w);
}

/* Installed already: say so with the status, exit 0 (re-install only with --force). */
static int print_already(const struct install_opts *o)
{
	struct dp_state st;
	struct jw w = {};
	char dir[512];
	bool same;
	int i, j;

	dp_state_read(dp_pin_path(dir, sizeof(dir), NULL), &st);
	same = !o->cgroup || !strcmp(o->cgroup, st.cgroup);
	same = same && (__u32)o->ntc == st.ntc;
	for (i = 0; same && i < o->ntc; i++) {
		for (j = 0; j < (int)st.ntc && strcmp(st.tc[j].ifname, o->tc_dev[i]); j++)
			;
		same = j < (int)st.ntc;
	}
	jw_open(&w, NULL);
	if (dp_status_members(&w)) {
		jw_free(&w);
		return -1;
	}
	jw_bool(&w, "already_installed", true);
	/* false: the request asks for another cgroup or other devices; --force re-installs */
	jw_bool(&w, "matches_request", same);
	jw_close_obj(&w);
	jw_print(&w);
	return 0;
}

int cmd_install(int argc, char **argv)
{
	struct install_opts o = {};
	struct install in = { .cg_fd = -1, .state_fd = -1 };
	char cgroup[256], dir[512];
	__u32 ifindex[DP_MAX_TC];
	sigset_t block, old;
	int i, err;

	if (parse_args(&o, argc, argv) || dp_check_bpffs())
		return -1;
	dp_teardown_stale();
	if (dp_installed() && !o.force)
		return print_already(&o);
	if (o.cgroup)
		snprintf(cgroup, sizeof(cgroup), "%s", o.cgroup);
	else if (find_cgroup2(cgroup, sizeof(cgroup)))
		return -1;
	for (i = 0; i < o.ntc; i++) {
		ifindex[i] = if_nametoindex(o.tc_dev[i]);
		if (!ifindex[i])
			return dp_fail(DP_EXIT_ATTACH, "no-such-dev",
				       "--tc-dev %s: no such network device in this network namespace", o.tc_dev[i]);
	}
	if (probe_kernel() || snat_ports(&o))
		return -1;
	in.cg_fd = open_cgroup(cgroup);
	if (in.cg_fd < 0)
		return -1;
	if (dp_installed()) { /* --force: the old install goes first (map contents are lost) */
		if (dp_teardown(dp_pin_path(dir, sizeof(dir), NULL), NULL)) {
			close(in.cg_fd);
			return -1;
		}
	}

	in.st.magic = DP_STATE_MAGIC;
	in.st.version = DP_STATE_VERSION;
	in.st.installed_at = (__u64)time(NULL);
	snprintf(in.st.cgroup, sizeof(in.st.cgroup), "%s", cgroup);
	dp_netns_id(&in.st.netns_ino, &in.st.netns_dev);

	/* Ctrl-C or a dropped SSH session must not stop us between attach and rollback; a SIGKILL
	 * leaves prep-node-new-<pid>/, which the next install or remove tears down */
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGHUP);
	sigaddset(&block, SIGPIPE);
	sigprocmask(SIG_BLOCK, &block, &old);
	err = build(&in, &o, ifindex);
	if (!err)
		print_installed(&in, &o);
	release(&in);
	sigprocmask(SIG_SETMASK, &old, NULL);
	return err;
}
