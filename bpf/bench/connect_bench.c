// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * prep-node-bench: the load generator of `prep-node bench`. Node's event loop would measure itself;
 * this measures the kernel: one blocking connect() at a time, timed with CLOCK_MONOTONIC, the
 * process's own CPU time from getrusage().
 *
 *   serve   --netns PATH --port P [--backlog N]
 *       TCP listener on 0.0.0.0:P inside the network namespace PATH (a /run/netns/NAME file):
 *       accepts and closes, nothing else. Prints {"listening": "0.0.0.0:P"} once bound.
 *   connect --netns PATH [--cgroup DIR] --target IP:PORT [--duration-ms D] [--max N]
 *           [--warmup N]
 *       Joins the cgroup v2 directory DIR (so its sockets see that cgroup's sock_addr programs),
 *       enters the namespace, makes `warmup` connections that are not counted, then connects to
 *       IP:PORT until D ms have passed or N connections were made. Each connection: socket(),
 *       connect() (timed), SO_LINGER {1, 0}, close(): the close sends a RST, so neither side keeps
 *       a TIME_WAIT socket and the client never runs out of ports. A connect() that gets no answer
 *       takes as long as the namespace's net.ipv4.tcp_syn_retries allows (the bench sets it low).
 *       The loop stops at the first check past the deadline. Prints one JSON document:
 *       {"target", "connections", "failed", "errors": {"ECONNREFUSED": n, ...}, "elapsed_ns",
 *        "per_sec", "latency_ns": {"min", "p50", "p90", "p99", "max", "mean"},
 *        "utime_ns", "stime_ns"}       (CPU times of the measured loop only)
 *
 *   exec    [--netns PATH] [--cgroup DIR]... -- COMMAND [ARGS]
 *       Joins the cgroups (v1 or v2 directories: a memory cgroup charges the kernel memory the
 *       command allocates, nf_tables rules or BPF map entries, to a place the bench can read), enters
 *       the namespace and execs COMMAND (exit 127 when it cannot be run). Unlike `ip netns exec`
 *       it leaves /sys alone, so the loader still sees bpffs and the cgroup mounts.
 *
 * All three exit when their parent dies (PR_SET_PDEATHSIG), so a killed bench leaves no process holding
 * a namespace. Exit 0 on a finished run (failed connections are data), 2 on bad usage, 1 otherwise.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int fail(int code, const char *fmt, const char *arg)
{
	char msg[512];

	snprintf(msg, sizeof(msg), fmt, arg);
	/* the message never contains a quote or backslash we did not put there: escape the few */
	printf("{\"error\":\"");
	for (const char *p = msg; *p; p++)
		printf(*p == '"' || *p == '\\' ? "\\%c" : "%c", *p);
	printf("\"}\n");
	return code;
}

static int parse_u64(const char *s, unsigned long long *out)
{
	char *end;

	if (!s || !*s || *s == '-')
		return -1;
	errno = 0;
	*out = strtoull(s, &end, 10);
	return errno || *end ? -1 : 0;
}

static int parse_sa(const char *s, struct sockaddr_in *a)
{
	char ip[64];
	const char *colon = strrchr(s, ':');
	unsigned long long port;

	memset(a, 0, sizeof(*a));
	a->sin_family = AF_INET;
	if (!colon || (size_t)(colon - s) >= sizeof(ip) || parse_u64(colon + 1, &port) || port == 0 || port > 65535)
		return -1;
	memcpy(ip, s, (size_t)(colon - s));
	ip[colon - s] = 0;
	a->sin_port = htons((uint16_t)port);
	return inet_pton(AF_INET, ip, &a->sin_addr) == 1 ? 0 : -1;
}

/* die with the parent; then join the cgroups (v1 or v2 directories) and the network namespace */
static int enter(const char *netns, const char *const *cgroups, int ncgroups)
{
	pid_t parent = getppid();
	int fd, i;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		return fail(1, "%s", "parent already gone");
	for (i = 0; i < ncgroups; i++) {
		char path[4096], pid[32];
		int n = snprintf(pid, sizeof(pid), "%d\n", getpid());

		snprintf(path, sizeof(path), "%s/cgroup.procs", cgroups[i]);
		fd = open(path, O_WRONLY | O_CLOEXEC);
		if (fd < 0 || write(fd, pid, (size_t)n) != n)
			return fail(1, "cannot join cgroup %s", cgroups[i]);
		close(fd);
	}
	if (netns) {
		fd = open(netns, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || setns(fd, CLONE_NEWNET))
			return fail(1, "cannot enter network namespace %s", netns);
		close(fd);
	}
	return 0;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t tv_ns(struct timeval tv)
{
	return (uint64_t)tv.tv_sec * 1000000000ull + (uint64_t)tv.tv_usec * 1000ull;
}

/* ---------------------------------------------------------------- serve */

static int cmd_serve(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "netns", required_argument, NULL, 'n' },
		{ "port", required_argument, NULL, 'p' },
		{ "backlog", required_argument, NULL, 'b' },
		{}
	};
	const char *netns = NULL;
	unsigned long long port = 0, backlog = 4096;
	struct sockaddr_in sa = { .sin_family = AF_INET };
	int c, one = 1, fd, rc;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		if (c == 'n')
			netns = optarg;
		else if (c == 'p' && parse_u64(optarg, &port) == 0 && port > 0 && port < 65536)
			continue;
		else if (c == 'b' && parse_u64(optarg, &backlog) == 0 && backlog > 0 && backlog < 1u << 20)
			continue;
		else
			return fail(2, "%s", "usage: serve --netns PATH --port P [--backlog N]");
	}
	if (!port || optind != argc)
		return fail(2, "%s", "usage: serve --netns PATH --port P [--backlog N]");
	if ((rc = enter(netns, NULL, 0)))
		return rc;
	sa.sin_port = htons((uint16_t)port);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, (int)backlog))
		return fail(1, "listen: %s", strerror(errno));
	printf("{\"listening\":\"0.0.0.0:%llu\"}\n", port);
	fflush(stdout);
	for (;;) {
		int s = accept4(fd, NULL, NULL, SOCK_CLOEXEC);

		if (s >= 0)
			close(s);
		else if (errno != EINTR && errno != ECONNABORTED && errno != EMFILE && errno != ENFILE)
			return fail(1, "accept: %s", strerror(errno));
	}
}

/* ---------------------------------------------------------------- connect */

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* nearest-rank percentile of sorted v[0..n-1] */
static uint32_t pct(const uint32_t *v, size_t n, double p)
{
	size_t rank = (size_t)(p / 100.0 * (double)n + 0.999999);

	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return v[rank - 1];
}

/* errno -> count, for the few a connect loop can meet */
struct errcount {
	int err;
	unsigned long long n;
};

/* one connection; returns 0 or an errno, *lat_ns the time connect() took */
static int connect_once(const struct sockaddr_in *to, uint64_t *lat_ns)
{
	static const struct linger rst = { .l_onoff = 1, .l_linger = 0 };
	uint64_t t0, t1;
	int fd, rc = 0;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return errno;
	t0 = now_ns();
	if (connect(fd, (const struct sockaddr *)to, sizeof(*to)))
		rc = errno;
	t1 = now_ns();
	*lat_ns = t1 - t0;
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &rst, sizeof(rst));
	close(fd);
	return rc;
}

static int cmd_connect(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "netns", required_argument, NULL, 'n' },
		{ "cgroup", required_argument, NULL, 'g' },
		{ "target", required_argument, NULL, 't' },
		{ "duration-ms", required_argument, NULL, 'd' },
		{ "max", required_argument, NULL, 'm' },
		{ "warmup", required_argument, NULL, 'w' },
		{}
	};
	static const char use[] = "usage: connect --netns PATH [--cgroup DIR] --target IP:PORT [--duration-ms D] "
				  "[--max N] [--warmup N]";
	const char *netns = NULL, *cgroup = NULL, *target = NULL;
	unsigned long long duration_ms = 1000, max = 10000000, warmup = 100;
	struct sockaddr_in to;
	struct errcount errs[16] = {};
	struct rusage ru0, ru1;
	uint32_t *lat;
	uint64_t start, deadline, end, l, sum = 0;
	size_t n = 0, nerr = 0, failed = 0, i;
	char ip[INET_ADDRSTRLEN];
	int c, rc;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		unsigned long long *dst = c == 'd' ? &duration_ms : c == 'm' ? &max : c == 'w' ? &warmup : NULL;

		if (c == 'n')
			netns = optarg;
		else if (c == 'g')
			cgroup = optarg;
		else if (c == 't')
			target = optarg;
		else if (!dst || parse_u64(optarg, dst))
			return fail(2, "%s", use);
	}
	if (!target || optind != argc || parse_sa(target, &to) || max == 0 || max > 100000000)
		return fail(2, "%s", use);
	if ((rc = enter(netns, &cgroup, cgroup ? 1 : 0)))
		return rc;
	lat = malloc(max * sizeof(*lat) > (64u << 20) ? (64u << 20) : max * sizeof(*lat));
	if (!lat)
		return fail(1, "%s", "out of memory");
	if (max > (64u << 20) / sizeof(*lat))
		max = (64u << 20) / sizeof(*lat);
	for (i = 0; i < warmup; i++)
		connect_once(&to, &l);

	getrusage(RUSAGE_SELF, &ru0);
	start = now_ns();
	deadline = start + duration_ms * 1000000ull;
	while (n + failed < max) {
		int err = connect_once(&to, &l);

		if (err) {
			size_t k;

			failed++;
			for (k = 0; k < nerr && errs[k].err != err; k++)
				;
			if (k == nerr && nerr < sizeof(errs) / sizeof(errs[0]))
				errs[nerr++].err = err;
			if (k < nerr)
				errs[k].n++;
		} else {
			lat[n++] = l > UINT32_MAX ? UINT32_MAX : (uint32_t)l;
			sum += l;
		}
		if (now_ns() >= deadline)
			break;
	}
	end = now_ns();
	getrusage(RUSAGE_SELF, &ru1);
	qsort(lat, n, sizeof(*lat), cmp_u32);

	inet_ntop(AF_INET, &to.sin_addr, ip, sizeof(ip));
	printf("{\"target\":\"%s:%u\",\"connections\":%zu,\"failed\":%zu,\"errors\":{", ip, ntohs(to.sin_port), n, failed);
	for (i = 0; i < nerr; i++)
		printf("%s\"%s\":%llu", i ? "," : "", strerrorname_np(errs[i].err) ? strerrorname_np(errs[i].err) : "unknown", errs[i].n);
	printf("},\"elapsed_ns\":%llu,\"per_sec\":%.1f", (unsigned long long)(end - start), (double)n * 1e9 / (double)(end - start));
	if (n)
		printf(",\"latency_ns\":{\"min\":%u,\"p50\":%u,\"p90\":%u,\"p99\":%u,\"max\":%u,\"mean\":%llu}", lat[0],
		       pct(lat, n, 50), pct(lat, n, 90), pct(lat, n, 99), lat[n - 1], (unsigned long long)(sum / n));
	else
		printf(",\"latency_ns\":null");
	printf(",\"utime_ns\":%llu,\"stime_ns\":%llu}\n",
	       (unsigned long long)(tv_ns(ru1.ru_utime) - tv_ns(ru0.ru_utime)),
	       (unsigned long long)(tv_ns(ru1.ru_stime) - tv_ns(ru0.ru_stime)));
	free(lat);
	return 0;
}

/* ---------------------------------------------------------------- exec */

static int cmd_exec(int argc, char **argv)
{
	static const char use[] = "usage: exec [--netns PATH] [--cgroup DIR]... -- COMMAND [ARGS]";
	const char *netns = NULL, *cgroups[8];
	int a = 1, n = 0, rc;

	while (a < argc && strcmp(argv[a], "--")) {
		if (a + 1 < argc && !strcmp(argv[a], "--netns"))
			netns = argv[a + 1];
		else if (a + 1 < argc && !strcmp(argv[a], "--cgroup") && n < 8)
			cgroups[n++] = argv[a + 1];
		else
			return fail(2, "%s", use);
		a += 2;
	}
	if (a + 1 >= argc)
		return fail(2, "%s", use);
	if ((rc = enter(netns, cgroups, n)))
		return rc;
	execvp(argv[a + 1], argv + a + 1);
	fprintf(stderr, "prep-node-bench exec: %s: %s\n", argv[a + 1], strerror(errno));
	return 127;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc >= 2 && !strcmp(argv[1], "serve"))
		return cmd_serve(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "connect"))
		return cmd_connect(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "exec"))
		return cmd_exec(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "version")) {
		printf("{\"version\":\"1\"}\n");
		return 0;
	}
	fputs("usage: prep-node-bench serve --netns PATH --port P [--backlog N]\n"
	      "       prep-node-bench connect --netns PATH [--cgroup DIR] --target IP:PORT [--duration-ms D] [--max N]\n"
	      "                               [--warmup N]\n"
	      "       prep-node-bench exec [--netns PATH] [--cgroup DIR]... -- COMMAND [ARGS]\n",
	      stderr);
	return 2;
}
