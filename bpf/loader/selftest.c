// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Self-test traffic, so a node needs no other tools:
 *   serve --port P --name NAME [--addr A]   TCP and UDP on A:P (default 0.0.0.0); answers each
 *       connection/datagram with "NAME <peer ip:port>\n" (the peer as the server saw it). Prints
 *       {"listening": "A:P", ...} once ready, then runs until killed.
 *   probe --connect IP:PORT [--count N] [--timeout-ms T] [--udp]   N TCP connects (or N unconnected
 *       UDP datagrams: exercises sendmsg4/recvmsg4); {"results": [{"ok", "errno", "reply", "peer"}]}
 *       where peer is getpeername() (UDP: the reply's source), i.e. what the application sees.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "dp.h"

static const char *fmt_sa(const struct sockaddr_in *a, char *buf, size_t len)
{
	char ip[INET_ADDRSTRLEN];

	inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
	snprintf(buf, len, "%s:%u", ip, ntohs(a->sin_port));
	return buf;
}

static int parse_sa(const char *s, struct sockaddr_in *a)
{
	char ip[64];
	const char *colon = strrchr(s, ':');
	unsigned long long port;

	memset(a, 0, sizeof(*a));
	a->sin_family = AF_INET;
	if (!colon || (size_t)(colon - s) >= sizeof(ip) || dp_parse_u64(colon + 1, &port) || port > 65535)
		return -1;
	memcpy(ip, s, (size_t)(colon - s));
	ip[colon - s] = 0;
	a->sin_port = htons((uint16_t)port);
	return inet_pton(AF_INET, ip, &a->sin_addr) == 1 ? 0 : -1;
}

/* ---------------------------------------------------------------- serve */

int cmd_serve(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "port", required_argument, NULL, 'p' },
		{ "name", required_argument, NULL, 'n' },
		{ "addr", required_argument, NULL, 'a' },
		{}
	};
	const char *name = NULL, *addr = "0.0.0.0";
	unsigned long long port = 0;
	struct sockaddr_in sa = { .sin_family = AF_INET };
	char where[64], line[512], peer[64];
	struct pollfd pfd[2];
	int c, one = 1, tcp, udp;
	struct jw w = {};

	optind = 1;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		if (c == 'p' && dp_parse_u64(optarg, &port) == 0 && port > 0 && port < 65536)
			continue;
		if (c == 'n')
			name = optarg;
		else if (c == 'a')
			addr = optarg;
		else
			return dp_fail(DP_EXIT_USAGE, "usage", "serve --port P --name NAME [--addr A]");
	}
	if (!port || !name || optind != argc || inet_pton(AF_INET, addr, &sa.sin_addr) != 1)
		return dp_fail(DP_EXIT_USAGE, "usage", "serve --port P --name NAME [--addr IPv4]");
	sa.sin_port = htons((uint16_t)port);

	tcp = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	setsockopt(tcp, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (tcp < 0 || bind(tcp, (struct sockaddr *)&sa, sizeof(sa)) || listen(tcp, 128))
		return dp_fail(DP_EXIT_ENV, "listen-failed", "TCP %s:%llu: %s", addr, port, strerror(errno));
	/* UDP is a bonus: a port taken for UDP only does not stop the TCP server */
	if (udp >= 0 && bind(udp, (struct sockaddr *)&sa, sizeof(sa))) {
		close(udp);
		udp = -1;
	}
	signal(SIGPIPE, SIG_IGN);
	jw_open(&w, NULL);
	jw_str(&w, "listening", fmt_sa(&sa, where, sizeof(where)));
	jw_str(&w, "name", name);
	jw_bool(&w, "tcp", true);
	jw_bool(&w, "udp", udp >= 0);
	jw_close_obj(&w);
	jw_print(&w);

	pfd[0] = (struct pollfd){ .fd = tcp, .events = POLLIN };
	pfd[1] = (struct pollfd){ .fd = udp, .events = POLLIN };
	for (;;) {
		struct sockaddr_in from;
		socklen_t flen = sizeof(from);
		int n;

		if (poll(pfd, udp >= 0 ? 2 : 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			return dp_fail(DP_EXIT_INTERNAL, "internal", "poll: %s", strerror(errno));
		}
		if (pfd[0].revents & POLLIN) {
			int fd = accept4(tcp, (struct sockaddr *)&from, &flen, SOCK_CLOEXEC);

			if (fd >= 0) {
				n = snprintf(line, sizeof(line), "%s %s\n", name, fmt_sa(&from, peer, sizeof(peer)));
				if (write(fd, line, (size_t)n) < 0) { /* the client left: nothing to do */ }
				close(fd);
			}
		}
		if (udp >= 0 && (pfd[1].revents & POLLIN)) {
			char buf[512];

			flen = sizeof(from);
			if (recvfrom(udp, buf, sizeof(buf), 0, (struct sockaddr *)&from, &flen) >= 0) {
				n = snprintf(line, sizeof(line), "%s %s\n", name, fmt_sa(&from, peer, sizeof(peer)));
				sendto(udp, line, (size_t)n, 0, (struct sockaddr *)&from, flen);
			}
		}
	}
}

/* ---------------------------------------------------------------- probe */

/* wait for fd to become ready for events; 0, or -ETIMEDOUT / -errno */
static int wait_fd(int fd, short events, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = events };
	int n;

	do
		n = poll(&p, 1, timeout_ms);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return n == 0 ? -ETIMEDOUT : 0;
}

struct result {
	int err;          /* 0 or an errno */
	char reply[256];  /* first line received */
	char peer[64];    /* what the application sees as its peer */
};

static void tcp_once(const struct sockaddr_in *to, int timeout_ms, struct result *r)
{
	struct sockaddr_in peer;
	socklen_t plen = sizeof(peer);
	size_t got = 0;
	int fd, err;
	socklen_t elen = sizeof(err);

	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		r->err = errno;
		return;
	}
	if (connect(fd, (const struct sockaddr *)to, sizeof(*to))) {
		if (errno != EINPROGRESS) {
			r->err = errno;
			goto out;
		}
		if ((err = wait_fd(fd, POLLOUT, timeout_ms))) {
			r->err = -err;
			goto out;
		}
		getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen);
		if (err) {
			r->err = err;
			goto out;
		}
	}
	if (getpeername(fd, (struct sockaddr *)&peer, &plen) == 0)
		fmt_sa(&peer, r->peer, sizeof(r->peer));
	while (got < sizeof(r->reply) - 1 && !memchr(r->reply, '\n', got)) {
		ssize_t n;

		if ((err = wait_fd(fd, POLLIN, timeout_ms))) {
			r->err = -err;
			break;
		}
		n = read(fd, r->reply + got, sizeof(r->reply) - 1 - got);
		if (n < 0 && errno == EAGAIN)
			continue;
		if (n <= 0) {
			if (n < 0)
				r->err = errno;
			else if (!got)
				r->err = ECONNRESET; /* closed without a word: not our server */
			break;
		}
		got += (size_t)n;
	}
out:
	r->reply[strcspn(r->reply, "\r\n")] = 0;
	close(fd);
}

static void udp_once(const struct sockaddr_in *to, int timeout_ms, struct result *r)
{
	struct sockaddr_in from;
	socklen_t flen = sizeof(from);
	ssize_t n;
	int fd, err;

	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		r->err = errno;
		return;
	}
	if (sendto(fd, "probe\n", 6, 0, (const struct sockaddr *)to, sizeof(*to)) < 0) {
		r->err = errno;
	} else if ((err = wait_fd(fd, POLLIN, timeout_ms))) {
		r->err = -err;
	} else if ((n = recvfrom(fd, r->reply, sizeof(r->reply) - 1, 0, (struct sockaddr *)&from, &flen)) < 0) {
		r->err = errno;
	} else {
		r->reply[n] = 0;
		r->reply[strcspn(r->reply, "\r\n")] = 0;
		fmt_sa(&from, r->peer, sizeof(r->peer));
	}
	close(fd);
}

int cmd_probe(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "connect", required_argument, NULL, 'c' },
		{ "count", required_argument, NULL, 'n' },
		{ "timeout-ms", required_argument, NULL, 't' },
		{ "udp", no_argument, NULL, 'u' },
		{}
	};
	unsigned long long count = 1, timeout = 2000, i;
	struct sockaddr_in to;
	bool have_to = false, udp = false;
	struct jw w = {};
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		if (c == 'c' && parse_sa(optarg, &to) == 0)
			have_to = true;
		else if (c == 'n' && dp_parse_u64(optarg, &count) == 0 && count > 0 && count <= 100000)
			continue;
		else if (c == 't' && dp_parse_u64(optarg, &timeout) == 0 && timeout > 0 && timeout < 3600000)
			continue;
		else if (c == 'u')
			udp = true;
		else
			return dp_fail(DP_EXIT_USAGE, "usage",
				       "probe --connect IPv4:PORT [--count N] [--timeout-ms T] [--udp]");
	}
	if (!have_to || optind != argc)
		return dp_fail(DP_EXIT_USAGE, "usage", "probe --connect IPv4:PORT [--count N] [--timeout-ms T] [--udp]");
	signal(SIGPIPE, SIG_IGN);
	jw_open(&w, NULL);
	jw_array(&w, "results");
	for (i = 0; i < count; i++) {
		struct result r = {};

		if (udp)
			udp_once(&to, (int)timeout, &r);
		else
			tcp_once(&to, (int)timeout, &r);
		jw_open(&w, NULL);
		jw_bool(&w, "ok", r.err == 0 && r.reply[0]);
		if (r.err)
			jw_str(&w, "errno", dp_errno_name(r.err));
		else
			jw_null(&w, "errno");
		jw_str(&w, "reply", r.reply[0] ? r.reply : NULL);
		jw_str(&w, "peer", r.peer[0] ? r.peer : NULL);
		jw_close_obj(&w);
	}
	jw_close_arr(&w);
	jw_close_obj(&w);
	jw_print(&w);
	return 0;
}
