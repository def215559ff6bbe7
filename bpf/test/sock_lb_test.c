// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Socket-level tests of sock_lb on this machine's kernel. The programs are attached to a cgroup v2
 * the test creates; the cases run in a child process that moved itself into that cgroup and into a
 * network namespace of its own (unshare), so only the child's sockets are translated and all
 * traffic stays on that namespace's loopback. Backends listen on 127.0.0.x there; the VIPs exist
 * only in the maps. Everything is removed at the end, also on failure or SIGINT/SIGTERM: the links
 * are closed, the child is gone (and its namespace with it), the cgroup directory is removed.
 * Output: TAP, one line per case. Needs root.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <mntent.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "sock_lb.skel.h"
#include "maps_user.h"
#include "tap.h"

#define VIP "10.96.0.10"
#define BE_A "127.0.0.1"
#define BE_B "127.0.0.2"

static char cg_path[512];
static pid_t child_pid;

static __be32 ip4(const char *s)
{
	struct in_addr a;

	inet_pton(AF_INET, s, &a);
	return a.s_addr;
}

static struct sockaddr_in sa(const char *ip, uint16_t port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };

	a.sin_addr.s_addr = ip4(ip);
	return a;
}

static const char *fmt_sa(const struct sockaddr_in *a)
{
	static char buf[2][64];
	static int i;
	char ip[INET_ADDRSTRLEN];

	i ^= 1;
	inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
	snprintf(buf[i], sizeof(buf[i]), "%s:%u", ip, ntohs(a->sin_port));
	return buf[i];
}

static bool sa_eq(const struct sockaddr_in *a, const struct sockaddr_in *b)
{
	return a->sin_addr.s_addr == b->sin_addr.s_addr && a->sin_port == b->sin_port;
}

static void cleanup(void)
{
	if (child_pid > 0) {
		kill(child_pid, SIGKILL);
		waitpid(child_pid, NULL, 0);
		child_pid = 0;
	}
	if (cg_path[0]) {
		if (rmdir(cg_path) && errno != ENOENT)
			fprintf(stderr, "# could not remove %s: %s\n", cg_path, strerror(errno));
		cg_path[0] = 0;
	}
}

static void on_signal(int sig)
{
	cleanup();
	signal(sig, SIG_DFL);
	raise(sig);
}

/* the cgroup v2 mount point, or "" */
static void cgroup2_mount(char *out, size_t len)
{
	FILE *f = setmntent("/proc/self/mounts", "r");
	struct mntent *m;

	out[0] = 0;
	while (f && (m = getmntent(f)))
		if (!strcmp(m->mnt_type, "cgroup2")) {
			snprintf(out, len, "%s", m->mnt_dir);
			break;
		}
	if (f)
		endmntent(f);
}

/* ---------------------------------------------------------------- child side: in cgroup + netns */

static int listen_on(const char *ip, uint16_t port, int type)
{
	struct sockaddr_in a = sa(ip, port);
	int one = 1, fd = socket(AF_INET, type, 0);

	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) || (type == SOCK_STREAM && listen(fd, 64))) {
		tap_fail("bind/listen %s:%u: %s", ip, port, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* connect a TCP socket to ip:port; returns the fd or -errno */
static int tcp_connect(const char *ip, uint16_t port)
{
	struct sockaddr_in a = sa(ip, port);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		int err = errno;

		close(fd);
		return -err;
	}
	return fd;
}

static void setup_netns(void)
{
	struct ifreq ifr = {};
	int fd;

	if (unshare(CLONE_NEWNET)) {
		tap_fail("unshare(CLONE_NEWNET): %s", strerror(errno));
		return;
	}
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	strcpy(ifr.ifr_name, "lo");
	ifr.ifr_flags = IFF_UP | IFF_LOOPBACK | IFF_RUNNING;
	if (ioctl(fd, SIOCSIFFLAGS, &ifr))
		tap_fail("bringing lo up: %s", strerror(errno));
	close(fd);
}

static void case_tcp(void)
{
	struct sockaddr_in peer, local, want_peer = sa(VIP, 80), want_local = sa(BE_A, 8080);
	socklen_t len = sizeof(peer);
	int lfd = listen_on(BE_A, 8080, SOCK_STREAM), cfd, afd = -1;
	char buf[8] = {};

	cfd = tcp_connect(VIP, 80);
	if (cfd < 0) {
		tap_fail("connect to %s:80: %s", VIP, strerror(-cfd));
	} else {
		afd = accept(lfd, NULL, NULL);
		if (afd < 0 || write(cfd, "hello", 5) != 5 || read(afd, buf, 5) != 5 || strcmp(buf, "hello"))
			tap_fail("backend did not get the connection and its data");
	}
	tap_result("TCP connect() to VIP 10.96.0.10:80 reaches the backend listening on 127.0.0.1:8080");

	if (cfd >= 0 && getpeername(cfd, (struct sockaddr *)&peer, &len) == 0) {
		if (!sa_eq(&peer, &want_peer))
			tap_fail("getpeername() says %s, expected %s", fmt_sa(&peer), fmt_sa(&want_peer));
	} else {
		tap_fail("getpeername(): %s", strerror(errno));
	}
	tap_result("getpeername() on the client socket returns the VIP, not the backend");

	len = sizeof(local);
	if (afd >= 0 && getsockname(afd, (struct sockaddr *)&local, &len) == 0) {
		if (!sa_eq(&local, &want_local))
			tap_fail("server side local address %s, expected %s", fmt_sa(&local), fmt_sa(&want_local));
	} else {
		tap_fail("no accepted socket");
	}
	tap_result("the backend sees a connection to its own address 127.0.0.1:8080 (translated at connect)");
	if (afd >= 0)
		close(afd);
	if (cfd >= 0)
		close(cfd);
	if (lfd >= 0)
		close(lfd);
}

static void case_udp(void)
{
	struct sockaddr_in vip = sa(VIP, 53), from, want_peer = sa(VIP, 53), client;
	socklen_t len;
	int bfd = listen_on(BE_A, 5353, SOCK_DGRAM), cfd, ufd;
	char buf[16] = {};

	/* connected UDP */
	cfd = socket(AF_INET, SOCK_DGRAM, 0);
	if (connect(cfd, (struct sockaddr *)&vip, sizeof(vip)) || send(cfd, "q1", 2, 0) != 2) {
		tap_fail("connected UDP to VIP:53: %s", strerror(errno));
	} else {
		len = sizeof(client);
		if (recvfrom(bfd, buf, sizeof(buf), 0, (struct sockaddr *)&client, &len) != 2)
			tap_fail("backend got nothing");
		else if (sendto(bfd, "a1", 2, 0, (struct sockaddr *)&client, len) != 2 ||
			 recv(cfd, buf, sizeof(buf), 0) != 2 || memcmp(buf, "a1", 2))
			tap_fail("the reply did not reach the connected client");
		len = sizeof(from);
		if (getpeername(cfd, (struct sockaddr *)&from, &len) || !sa_eq(&from, &want_peer))
			tap_fail("getpeername() says %s, expected %s", fmt_sa(&from), fmt_sa(&want_peer));
	}
	tap_result("connected UDP to VIP:53 reaches 127.0.0.1:5353, the reply comes back, getpeername() is the VIP");
	close(cfd);

	/* unconnected UDP: sendmsg4 forward, recvmsg4 reverse */
	ufd = socket(AF_INET, SOCK_DGRAM, 0);
	if (sendto(ufd, "q2", 2, 0, (struct sockaddr *)&vip, sizeof(vip)) != 2) {
		tap_fail("sendto VIP:53: %s", strerror(errno));
	} else {
		len = sizeof(client);
		if (recvfrom(bfd, buf, sizeof(buf), 0, (struct sockaddr *)&client, &len) != 2)
			tap_fail("backend got nothing");
		else if (sendto(bfd, "a2", 2, 0, (struct sockaddr *)&client, len) != 2)
			tap_fail("backend reply: %s", strerror(errno));
		len = sizeof(from);
		memset(&from, 0, sizeof(from));
		if (recvfrom(ufd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &len) != 2)
			tap_fail("the reply did not arrive");
		else if (!sa_eq(&from, &want_peer))
			tap_fail("recvfrom() says the reply came from %s, expected %s", fmt_sa(&from),
				 fmt_sa(&want_peer));
	}
	tap_result("unconnected UDP sendto(VIP:53) reaches the backend and recvfrom() shows the reply from the VIP");
	close(ufd);
	close(bfd);
}

/* ---------------------------------------------------------------- forwarded flows */

static struct sock_lb_bpf *cur_skel; /* the round's programs (the child inherits the pointer and fds) */
static struct drop_event last_fwd;
/* the last event of each kind as sent: its size and (a struct drop_event6) its IPv6 addresses */
static struct drop_event6 last_fwd6, last_drop6;
static size_t last_fwd_len, last_drop_len;
static int fwd_seen, drop_seen;

static int on_event(void *ctx, void *data, size_t len)
{
	const struct drop_event *e = data;
	size_t n = len < sizeof(struct drop_event6) ? len : sizeof(struct drop_event6);

	(void)ctx;
	if (len < sizeof(*e))
		return 0;
	if (e->verdict == EVENT_VERDICT_FORWARDED) {
		last_fwd = *e;
		memset(&last_fwd6, 0, sizeof(last_fwd6));
		memcpy(&last_fwd6, data, n);
		last_fwd_len = len;
		fwd_seen++;
	} else {
		memset(&last_drop6, 0, sizeof(last_drop6));
		memcpy(&last_drop6, data, n);
		last_drop_len = len;
		drop_seen++;
	}
	return 0;
}

static struct svc_counter svc_counted(uint32_t svc_id)
{
	int ncpu = libbpf_num_possible_cpus(), i;
	struct svc_counter sum = {}, *per = calloc((size_t)ncpu, sizeof(*per));

	if (per && bpf_map_lookup_elem(bpf_map__fd(cur_skel->maps.svc_counters), &svc_id, per) == 0)
		for (i = 0; i < ncpu; i++) {
			sum.packets += per[i].packets;
			sum.bytes += per[i].bytes;
			sum.connections += per[i].connections;
		}
	free(per);
	return sum;
}

static void check_fwd(const char *what, __u8 hook, uint32_t svc, const char *be, uint16_t port)
{
	if (fwd_seen != 1 || drop_seen)
		tap_fail("%s: %d forwarded and %d drop events, expected exactly 1 forwarded", what, fwd_seen,
			 drop_seen);
	else if (last_fwd.reason != 0 || last_fwd.hook != hook || last_fwd.svc_id != svc ||
		 last_fwd.daddr != ip4(be) || last_fwd.dport != htons(port) || !last_fwd.ts_ns)
		tap_fail("%s: event reason %u hook %u svc %u; expected 0, %u, %u to %s:%u", what,
			 last_fwd.reason, last_fwd.hook, last_fwd.svc_id, hook, svc, be, port);
}

static void case_flow(void)
{
	struct ring_buffer *rb = ring_buffer__new(bpf_map__fd(cur_skel->maps.events), on_event, NULL, NULL);
	struct sockaddr_in vip = sa(VIP, 53);
	struct svc_counter tcp0 = svc_counted(1), udp0 = svc_counted(2), c;
	int lfd = listen_on(BE_A, 8080, SOCK_STREAM), bfd = listen_on(BE_A, 5353, SOCK_DGRAM), fd, i;

	if (!rb) {
		tap_fail("ring buffer: %s", strerror(errno));
		goto out;
	}
	ring_buffer__consume(rb);
	fwd_seen = drop_seen = 0;
	fd = tcp_connect(VIP, 80);
	if (fd < 0)
		tap_fail("connect to VIP:80: %s", strerror(-fd));
	else if (write(fd, "hello", 5) != 5)
		tap_fail("write: %s", strerror(errno));
	ring_buffer__consume(rb);
	check_fwd("TCP connect", HOOK_SOCK_CONNECT, 1, BE_A, 8080);
	c = svc_counted(1);
	if (c.connections != tcp0.connections + 1 || c.packets != tcp0.packets || c.bytes != tcp0.bytes)
		tap_fail("service 1: connections %llu -> %llu (packets %llu, bytes %llu); expected +1, no packets/bytes",
			 (unsigned long long)tcp0.connections, (unsigned long long)c.connections,
			 (unsigned long long)c.packets, (unsigned long long)c.bytes);
	if (fd >= 0)
		close(fd);
	tap_result("flow: a connect() to VIP:80 sends one FORWARDED event (connect4, service 1, the backend) "
		   "and counts one connection, no packets or bytes");

	fwd_seen = drop_seen = 0;
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	for (i = 0; i < 3; i++)
		if (sendto(fd, "q", 1, 0, (struct sockaddr *)&vip, sizeof(vip)) != 1)
			tap_fail("sendto VIP:53: %s", strerror(errno));
	close(fd);
	ring_buffer__consume(rb);
	check_fwd("unconnected UDP", HOOK_SOCK_SENDMSG, 2, BE_A, 5353);
	c = svc_counted(2);
	if (c.connections != udp0.connections + 1)
		tap_fail("service 2: connections %llu -> %llu, expected +1", (unsigned long long)udp0.connections,
			 (unsigned long long)c.connections);
	tap_result("flow: three sendto(VIP:53) on one unconnected UDP socket send one FORWARDED event "
		   "(sendmsg4) and count one connection (a new socket-backend pair)");
out:
	ring_buffer__free(rb);
	if (lfd >= 0)
		close(lfd);
	if (bfd >= 0)
		close(bfd);
}

static uint64_t drops(int fd)
{
	struct drop_counter c = {};

	dp_drop_count(fd, DROP_NO_BACKEND, &c);
	return c.packets;
}

static void case_no_backend(int counters_fd, int want_errno)
{
	struct sockaddr_in vip = sa(VIP, 81);
	uint64_t before = drops(counters_fd);
	char desc[160];
	int fd, err;

	fd = tcp_connect(VIP, 81);
	if (fd >= 0) {
		tap_fail("connect() succeeded");
		close(fd);
	} else if (-fd != want_errno) {
		tap_fail("connect() failed with %s, expected %s", strerror(-fd), strerror(want_errno));
	}
	if (drops(counters_fd) != before + 1)
		tap_fail("NO_BACKEND counter did not go up by one");
	snprintf(desc, sizeof(desc), "TCP connect() to a service without backends fails with %s, counted as NO_BACKEND",
		 want_errno == ECONNREFUSED ? "ECONNREFUSED" : "EPERM");
	tap_result(desc);

	fd = socket(AF_INET, SOCK_DGRAM, 0);
	err = sendto(fd, "x", 1, 0, (struct sockaddr *)&vip, sizeof(vip)) < 0 ? errno : 0;
	if (err != want_errno)
		tap_fail("sendto() gave %s, expected %s", err ? strerror(err) : "success", strerror(want_errno));
	close(fd);
	snprintf(desc, sizeof(desc), "UDP sendto() to a service without backends fails with %s",
		 want_errno == ECONNREFUSED ? "ECONNREFUSED" : "EPERM");
	tap_result(desc);
}

static void case_passthrough(void)
{
	struct sockaddr_in peer, want = sa(BE_A, 8080);
	socklen_t len = sizeof(peer);
	int lfd = listen_on(BE_A, 8080, SOCK_STREAM), fd = tcp_connect(BE_A, 8080);

	if (fd < 0)
		tap_fail("connect to 127.0.0.1:8080: %s", strerror(-fd));
	else if (getpeername(fd, (struct sockaddr *)&peer, &len) || !sa_eq(&peer, &want))
		tap_fail("getpeername() says %s", fmt_sa(&peer));
	tap_result("a connect() to an address that is no service is left alone");
	if (fd >= 0)
		close(fd);
	close(lfd);
}

/* n connects to VIP:vport, counting which of the two backends (127.0.0.1 / .2 :9000) accepted */
static void spread(uint16_t vport, int n, int *a, int *b)
{
	int la = listen_on(BE_A, 9000, SOCK_STREAM), lb = listen_on(BE_B, 9000, SOCK_STREAM), i;

	*a = *b = 0;
	fcntl(la, F_SETFL, O_NONBLOCK);
	fcntl(lb, F_SETFL, O_NONBLOCK);
	for (i = 0; i < n; i++) {
		int fd = tcp_connect(VIP, vport), s;

		if (fd < 0)
			continue;
		if ((s = accept(la, NULL, NULL)) >= 0) {
			(*a)++;
			close(s);
		} else if ((s = accept(lb, NULL, NULL)) >= 0) {
			(*b)++;
			close(s);
		}
		close(fd);
	}
	close(la);
	close(lb);
}

static void case_selection(void)
{
	int a, b;

	spread(85, 32, &a, &b);
	if (a + b != 32 || !a || !b)
		tap_fail("127.0.0.1 got %d, 127.0.0.2 got %d of 32", a, b);
	tap_result("random: 32 connects to a two-backend service reach both backends");

	spread(87, 32, &a, &b);
	if (a + b != 32 || (a && b))
		tap_fail("127.0.0.1 got %d, 127.0.0.2 got %d of 32: affinity should keep one", a, b);
	tap_result("session affinity: 32 connects from one network namespace all reach the same backend");
}

/* ---------------------------------------------------------------- IPv6 (connect6/sendmsg6/getpeername6/recvmsg6) */

#define VIP6 "fd00::10"
#define BE6 "::1"

static struct sockaddr_in6 sa6(const char *ip, uint16_t port)
{
	struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_port = htons(port) };

	inet_pton(AF_INET6, ip, &a.sin6_addr);
	return a;
}

static const char *fmt_sa6(const struct sockaddr_in6 *a)
{
	static char buf[2][80];
	static int i;
	char ip[INET6_ADDRSTRLEN];

	i ^= 1;
	inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof(ip));
	snprintf(buf[i], sizeof(buf[i]), "[%s]:%u", ip, ntohs(a->sin6_port));
	return buf[i];
}

static bool sa6_eq(const struct sockaddr_in6 *a, const struct sockaddr_in6 *b)
{
	return !memcmp(&a->sin6_addr, &b->sin6_addr, 16) && a->sin6_port == b->sin6_port;
}

static int listen6_on(const char *ip, uint16_t port, int type)
{
	struct sockaddr_in6 a = sa6(ip, port);
	int one = 1, fd = socket(AF_INET6, type, 0);

	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) || (type == SOCK_STREAM && listen(fd, 64))) {
		tap_fail("bind/listen %s: %s", fmt_sa6(&a), strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* a TCP socket of family AF_INET6 (dual-stack: IPV6_V6ONLY off) connected to ip:port; fd or -errno */
static int tcp6_connect(const char *ip, uint16_t port)
{
	struct sockaddr_in6 a = sa6(ip, port);
	int zero = 0, fd = socket(AF_INET6, SOCK_STREAM, 0);

	setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		int err = errno;

		close(fd);
		return -err;
	}
	return fd;
}

static void case_tcp6(void)
{
	struct sockaddr_in6 peer, want = sa6(VIP6, 80);
	socklen_t len = sizeof(peer);
	int lfd = listen6_on(BE6, 8080, SOCK_STREAM), cfd = tcp6_connect(VIP6, 80), afd = -1;

	if (cfd < 0)
		tap_fail("connect [%s]:80: %s", VIP6, strerror(-cfd));
	else if ((afd = accept(lfd, NULL, NULL)) < 0)
		tap_fail("the backend [::1]:8080 accepted nothing");
	tap_result("IPv6: TCP connect() to [fd00::10]:80 reaches the backend [::1]:8080");
	if (cfd >= 0 && (getpeername(cfd, (struct sockaddr *)&peer, &len) || !sa6_eq(&peer, &want)))
		tap_fail("getpeername() says %s, expected %s", fmt_sa6(&peer), fmt_sa6(&want));
	tap_result("IPv6: getpeername() on the client socket returns the VIP, not the backend");
	if (afd >= 0)
		close(afd);
	if (cfd >= 0)
		close(cfd);
	if (lfd >= 0)
		close(lfd);
}

static void case_udp6(void)
{
	struct sockaddr_in6 vip = sa6(VIP6, 53), from, client;
	int bfd = listen6_on(BE6, 5353, SOCK_DGRAM), ufd = socket(AF_INET6, SOCK_DGRAM, 0);
	socklen_t len = sizeof(client);
	char buf[8];

	if (sendto(ufd, "q6", 2, 0, (struct sockaddr *)&vip, sizeof(vip)) != 2)
		tap_fail("sendto [%s]:53: %s", VIP6, strerror(errno));
	else if (recvfrom(bfd, buf, sizeof(buf), 0, (struct sockaddr *)&client, &len) != 2)
		tap_fail("the backend [::1]:5353 got nothing");
	else if (sendto(bfd, "a6", 2, 0, (struct sockaddr *)&client, len) != 2)
		tap_fail("the backend could not answer");
	else {
		len = sizeof(from);
		if (recvfrom(ufd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &len) != 2)
			tap_fail("no answer on the client socket");
		else if (!sa6_eq(&from, &vip))
			tap_fail("recvfrom() says the answer came from %s, expected %s", fmt_sa6(&from), fmt_sa6(&vip));
	}
	tap_result("IPv6: unconnected UDP sendto([fd00::10]:53) reaches the backend and recvfrom() shows the VIP");
	close(ufd);
	if (bfd >= 0)
		close(bfd);
}

/* a dual-stack socket addressing the IPv4 service as ::ffff:10.96.0.10 (connect6 -> IPv4 services) */
static void case_mapped(void)
{
	struct sockaddr_in6 peer, want = sa6("::ffff:" VIP, 80);
	socklen_t len = sizeof(peer);
	int lfd = listen_on(BE_A, 8080, SOCK_STREAM), cfd = tcp6_connect("::ffff:" VIP, 80), afd = -1;

	if (cfd < 0)
		tap_fail("connect [::ffff:%s]:80: %s", VIP, strerror(-cfd));
	else if ((afd = accept(lfd, NULL, NULL)) < 0)
		tap_fail("the IPv4 backend 127.0.0.1:8080 accepted nothing");
	else if (getpeername(cfd, (struct sockaddr *)&peer, &len) || !sa6_eq(&peer, &want))
		tap_fail("getpeername() says %s, expected %s", fmt_sa6(&peer), fmt_sa6(&want));
	tap_result("IPv4-mapped: a dual-stack socket's connect() to ::ffff:VIP reaches the IPv4 backend, getpeername() shows ::ffff:VIP");
	if (afd >= 0)
		close(afd);
	if (cfd >= 0)
		close(cfd);
	if (lfd >= 0)
		close(lfd);
}

/* an IPv6 record (struct drop_event6, 88 bytes): the hook, port, and both IPv6 addresses; IPv4's 0 */
static void check_event6(const char *what, size_t len, const struct drop_event6 *e, __u8 hook,
			 const char *src, const char *dst, uint16_t dport)
{
	struct in6_addr s = {}, d = {};
	char gs[INET6_ADDRSTRLEN], gd[INET6_ADDRSTRLEN];

	inet_pton(AF_INET6, src, &s);
	inet_pton(AF_INET6, dst, &d);
	inet_ntop(AF_INET6, e->saddr6, gs, sizeof(gs));
	inet_ntop(AF_INET6, e->daddr6, gd, sizeof(gd));
	if (len != sizeof(struct drop_event6))
		tap_fail("%s: a %zu-byte event, expected a %zu-byte drop_event6", what, len, sizeof(*e));
	else if (e->ev.hook != hook || e->ev.dport != htons(dport) || e->ev.saddr || e->ev.daddr ||
		 memcmp(e->saddr6, &s, 16) || memcmp(e->daddr6, &d, 16))
		tap_fail("%s: hook %u [%s] -> [%s]:%u (IPv4 %08x -> %08x); expected hook %u [%s] -> [%s]:%u",
			 what, e->ev.hook, gs, gd, ntohs(e->ev.dport), e->ev.saddr, e->ev.daddr, hook, src, dst,
			 dport);
}

/* IPv6 events carry both addresses; an IPv4-mapped flow's event is IPv4's, with its IPv4 addresses */
static void case_events6(void)
{
	struct ring_buffer *rb = ring_buffer__new(bpf_map__fd(cur_skel->maps.events), on_event, NULL, NULL);
	int lfd = listen6_on(BE6, 8080, SOCK_STREAM), lfd4 = listen_on(BE_A, 8080, SOCK_STREAM), fd;

	if (!rb) {
		tap_fail("ring buffer: %s", strerror(errno));
		goto out;
	}
	ring_buffer__consume(rb);
	fwd_seen = drop_seen = 0;
	fd = tcp6_connect(VIP6, 80);
	ring_buffer__consume(rb);
	if (fd < 0)
		tap_fail("connect [%s]:80: %s", VIP6, strerror(-fd));
	else if (fwd_seen != 1 || drop_seen)
		tap_fail("%d forwarded and %d drop events, expected 1 forwarded", fwd_seen, drop_seen);
	else
		check_event6("connect6 flow", last_fwd_len, &last_fwd6, HOOK_SOCK_CONNECT6, "::", BE6, 8080);
	if (fd >= 0)
		close(fd);
	tap_result("events6: a connect() to [fd00::10]:80 sends a FORWARDED drop_event6 naming [::1]:8080 "
		   "(no source yet: ::)");

	fwd_seen = drop_seen = 0;
	fd = tcp6_connect(VIP6, 81);
	ring_buffer__consume(rb);
	if (fd >= 0)
		close(fd);
	if (drop_seen != 1 || fwd_seen)
		tap_fail("%d drop and %d forwarded events, expected 1 drop", drop_seen, fwd_seen);
	else if (last_drop6.ev.reason != DROP_NO_BACKEND)
		tap_fail("drop reason %u, expected NO_BACKEND", last_drop6.ev.reason);
	else
		check_event6("connect6 reject", last_drop_len, &last_drop6, HOOK_SOCK_CONNECT6, "::", VIP6, 81);
	tap_result("events6: a connect() to [fd00::10]:81 (no backends) sends a NO_BACKEND drop_event6 naming "
		   "the VIP");

	/* sendmsg6 with the source chosen per datagram (IPV6_PKTINFO): the event names it */
	fwd_seen = drop_seen = 0;
	fd = socket(AF_INET6, SOCK_DGRAM, 0);
	{
		struct sockaddr_in6 to = sa6(VIP6, 53);
		char cbuf[CMSG_SPACE(sizeof(struct in6_pktinfo))] = {};
		struct iovec iov = { .iov_base = "q6", .iov_len = 2 };
		struct msghdr msg = { .msg_name = &to, .msg_namelen = sizeof(to), .msg_iov = &iov, .msg_iovlen = 1,
				      .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
		struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
		struct in6_pktinfo pi = {};

		inet_pton(AF_INET6, "::1", &pi.ipi6_addr);
		cm->cmsg_level = IPPROTO_IPV6;
		cm->cmsg_type = IPV6_PKTINFO;
		cm->cmsg_len = CMSG_LEN(sizeof(pi));
		memcpy(CMSG_DATA(cm), &pi, sizeof(pi));
		if (sendmsg(fd, &msg, 0) != 2)
			tap_fail("sendmsg [%s]:53 from [::1]: %s", VIP6, strerror(errno));
	}
	close(fd);
	ring_buffer__consume(rb);
	if (fwd_seen != 1 || drop_seen)
		tap_fail("%d forwarded and %d drop events, expected 1 forwarded", fwd_seen, drop_seen);
	else
		check_event6("sendmsg6 flow", last_fwd_len, &last_fwd6, HOOK_SOCK_SENDMSG6, "::1", BE6, 5353);
	tap_result("events6: a sendmsg() to [fd00::10]:53 from [::1] (IPV6_PKTINFO) sends a FORWARDED drop_event6 "
		   "naming [::1] -> [::1]:5353");

	fwd_seen = drop_seen = 0;
	fd = tcp6_connect("::ffff:" VIP, 80);
	ring_buffer__consume(rb);
	if (fd < 0)
		tap_fail("connect [::ffff:%s]:80: %s", VIP, strerror(-fd));
	else if (fwd_seen != 1 || drop_seen)
		tap_fail("%d forwarded and %d drop events, expected 1 forwarded", fwd_seen, drop_seen);
	else if (last_fwd_len != sizeof(struct drop_event) || last_fwd.hook != HOOK_SOCK_CONNECT6 ||
		 last_fwd.daddr != ip4(BE_A) || last_fwd.dport != htons(8080))
		tap_fail("a %zu-byte event, hook %u daddr %08x port %u; expected a %zu-byte drop_event, "
			 "connect6, %s:8080", last_fwd_len, last_fwd.hook, last_fwd.daddr, ntohs(last_fwd.dport),
			 sizeof(struct drop_event), BE_A);
	if (fd >= 0)
		close(fd);
	tap_result("events6: an IPv4-mapped connect() to ::ffff:VIP:80 sends an IPv4 drop_event naming the "
		   "IPv4 backend");
out:
	ring_buffer__free(rb);
	if (lfd >= 0)
		close(lfd);
	if (lfd4 >= 0)
		close(lfd4);
}

static void case_no_backend6(int want_errno)
{
	int fd = tcp6_connect(VIP6, 81);

	if (fd >= 0) {
		tap_fail("connect() succeeded");
		close(fd);
	} else if (-fd != want_errno) {
		tap_fail("connect() failed with %s, expected %s", strerror(-fd), strerror(want_errno));
	}
	tap_result(want_errno == ECONNREFUSED ? "IPv6: TCP connect() to a service without backends fails with ECONNREFUSED" :
						"IPv6: TCP connect() to a service without backends fails with EPERM");
}

/* the cases that need the programs, run in the child */
static int child_main(int counters_fd, int want_errno, bool full)
{
	char procs[600], pid[32];
	int fd;

	snprintf(procs, sizeof(procs), "%s/cgroup.procs", cg_path);
	fd = open(procs, O_WRONLY);
	snprintf(pid, sizeof(pid), "%d", getpid());
	if (fd < 0 || write(fd, pid, strlen(pid)) < 0)
		tap_fail("joining the cgroup: %s", strerror(errno));
	if (fd >= 0)
		close(fd);
	setup_netns();
	tap_result("child joined the test cgroup and a network namespace of its own with lo up");
	if (full) {
		case_tcp();
		case_udp();
		case_passthrough();
		case_selection();
		case_flow();
		case_tcp6();
		case_udp6();
		case_mapped();
		case_events6();
	}
	case_no_backend(counters_fd, want_errno);
	case_no_backend6(want_errno);
	return 0;
}

/* ---------------------------------------------------------------- parent side */

static int svc6_set(struct sock_lb_bpf *skel, const char *vip, uint16_t port, __u8 proto, __u32 id, __u32 count)
{
	struct lb6_svc_key k = { .port = htons(port), .proto = proto };
	struct lb_service v = { .svc_id = id, .backend_count = count };

	inet_pton(AF_INET6, vip, k.vip);
	return bpf_map_update_elem(bpf_map__fd(skel->maps.services6), &k, &v, BPF_ANY);
}

static int backend6_set(struct sock_lb_bpf *skel, __u32 id, __u32 slot, const char *ip, uint16_t port, __u32 be_id)
{
	struct lb_backend_key k = { .svc_id = id, .slot = slot };
	struct lb6_backend v = { .port = htons(port), .backend_id = be_id };

	inet_pton(AF_INET6, ip, v.addr);
	return bpf_map_update_elem(bpf_map__fd(skel->maps.backends6), &k, &v, BPF_ANY);
}

static void setup_maps(struct sock_lb_bpf *skel)
{
	int s = bpf_map__fd(skel->maps.services), b = bpf_map__fd(skel->maps.backends), err = 0;

	err |= dp_service_set(s, ip4(VIP), htons(80), IPPROTO_TCP, 1, 1, 0, 0);
	err |= dp_backend_set(b, 1, 0, ip4(BE_A), htons(8080), 101);
	err |= dp_service_set(s, ip4(VIP), htons(53), IPPROTO_UDP, 2, 1, 0, 0);
	err |= dp_backend_set(b, 2, 0, ip4(BE_A), htons(5353), 102);
	err |= dp_service_set(s, ip4(VIP), htons(81), IPPROTO_TCP, 3, 0, 0, 0);
	err |= dp_service_set(s, ip4(VIP), htons(81), IPPROTO_UDP, 4, 0, 0, 0);
	err |= dp_service_set(s, ip4(VIP), htons(85), IPPROTO_TCP, 5, 2, 0, 0);
	err |= dp_backend_set(b, 5, 0, ip4(BE_A), htons(9000), 103);
	err |= dp_backend_set(b, 5, 1, ip4(BE_B), htons(9000), 104);
	err |= dp_service_set(s, ip4(VIP), htons(87), IPPROTO_TCP, 6, 2, SVC_F_AFFINITY, 60);
	err |= dp_backend_set(b, 6, 0, ip4(BE_A), htons(9000), 103);
	err |= dp_backend_set(b, 6, 1, ip4(BE_B), htons(9000), 104);
	err |= svc6_set(skel, VIP6, 80, IPPROTO_TCP, 11, 1);
	err |= backend6_set(skel, 11, 0, BE6, 8080, 111);
	err |= svc6_set(skel, VIP6, 53, IPPROTO_UDP, 12, 1);
	err |= backend6_set(skel, 12, 0, BE6, 5353, 112);
	err |= svc6_set(skel, VIP6, 81, IPPROTO_TCP, 13, 0);
	if (err)
		tap_fail("writing the service maps failed");
}

/* load with the set_retval knob, attach the four programs to the cgroup, run the child */
static void run_round(bool has_set_retval, bool full)
{
	struct bpf_link *links[8] = {};
	struct sock_lb_bpf *skel;
	struct { int n, failed; } res;
	int cg = -1, i, pipefd[2], status;
	char desc[128];

	skel = sock_lb_bpf__open();
	if (!skel) {
		tap_fail("open: %s", strerror(errno));
		tap_result("sock_lb loads");
		return;
	}
	skel->rodata->cfg_has_set_retval = has_set_retval;
	if (sock_lb_bpf__load(skel))
		tap_fail("load: %s", strerror(errno));
	snprintf(desc, sizeof(desc), "sock_lb loads and passes the verifier (cfg_has_set_retval=%d)",
		 has_set_retval);
	tap_result(desc);
	if (tap_failed)
		goto out;

	setup_maps(skel);
	cur_skel = skel;
	cg = open(cg_path, O_RDONLY | O_DIRECTORY);
	links[0] = bpf_program__attach_cgroup(skel->progs.sock4_connect, cg);
	links[1] = bpf_program__attach_cgroup(skel->progs.sock4_sendmsg, cg);
	links[2] = bpf_program__attach_cgroup(skel->progs.sock4_getpeername, cg);
	links[3] = bpf_program__attach_cgroup(skel->progs.sock4_recvmsg, cg);
	links[4] = bpf_program__attach_cgroup(skel->progs.sock6_connect, cg);
	links[5] = bpf_program__attach_cgroup(skel->progs.sock6_sendmsg, cg);
	links[6] = bpf_program__attach_cgroup(skel->progs.sock6_getpeername, cg);
	links[7] = bpf_program__attach_cgroup(skel->progs.sock6_recvmsg, cg);
	for (i = 0; i < 8; i++)
		if (!links[i])
			tap_fail("attaching program %d to %s: %s", i, cg_path, strerror(errno));
	tap_result("connect4/6, sendmsg4/6, getpeername4/6 and recvmsg4/6 attach to the test cgroup");
	if (tap_failed)
		goto out;

	if (pipe(pipefd))
		goto out;
	fflush(stdout);
	child_pid = fork();
	if (child_pid == 0) {
		close(pipefd[0]);
		child_main(bpf_map__fd(skel->maps.drop_counters), has_set_retval ? ECONNREFUSED : EPERM, full);
		res.n = tap_n;
		res.failed = tap_failed;
		if (write(pipefd[1], &res, sizeof(res)) != sizeof(res))
			_exit(2);
		_exit(0);
	}
	close(pipefd[1]);
	if (read(pipefd[0], &res, sizeof(res)) == sizeof(res)) {
		tap_n = res.n;
		tap_failed = res.failed;
	} else {
		tap_fail("the child died before reporting");
		tap_result("child ran its cases");
	}
	close(pipefd[0]);
	waitpid(child_pid, &status, 0);
	child_pid = 0;
out:
	for (i = 0; i < 8; i++)
		bpf_link__destroy(links[i]);
	if (cg >= 0)
		close(cg);
	sock_lb_bpf__destroy(skel);
}

int main(void)
{
	char mnt[256];
	int probe;

	printf("TAP version 13\n");
	cgroup2_mount(mnt, sizeof(mnt));
	if (!mnt[0]) {
		printf("not ok 1 - a cgroup v2 hierarchy is mounted\n# none in /proc/self/mounts\n1..1\n");
		return 1;
	}
	snprintf(cg_path, sizeof(cg_path), "%s/prep-node-sock-lb-test-%d", mnt, getpid());
	atexit(cleanup);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	if (mkdir(cg_path, 0755))
		tap_fail("mkdir %s: %s", cg_path, strerror(errno));
	tap_result("a test cgroup can be created under the cgroup v2 mount");
	if (tap_failed)
		return tap_done();

	probe = libbpf_probe_bpf_helper(BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_FUNC_set_retval, NULL);
	if (probe > 0) {
		run_round(true, true);
		run_round(false, false); /* what a 5.10-5.17 kernel does: the knob off */
	} else {
		printf("# bpf_set_retval is not available here (probe %d): connect() sees EPERM\n", probe);
		run_round(false, true);
	}

	cleanup();
	if (access(cg_path, F_OK) == 0)
		tap_fail("%s still exists", cg_path);
	return tap_done();
}
