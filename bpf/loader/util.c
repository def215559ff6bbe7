// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Small helpers: names of BPF types (as bpftool prints them), errno names, hex, numbers. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/bpf.h>
#include "dp.h"

const char *dp_map_type_name(__u32 type)
{
	switch (type) {
	case BPF_MAP_TYPE_HASH: return "hash";
	case BPF_MAP_TYPE_ARRAY: return "array";
	case BPF_MAP_TYPE_PERCPU_HASH: return "percpu_hash";
	case BPF_MAP_TYPE_PERCPU_ARRAY: return "percpu_array";
	case BPF_MAP_TYPE_LRU_HASH: return "lru_hash";
	case BPF_MAP_TYPE_LRU_PERCPU_HASH: return "lru_percpu_hash";
	case BPF_MAP_TYPE_LPM_TRIE: return "lpm_trie";
	case BPF_MAP_TYPE_RINGBUF: return "ringbuf";
	default: return "other";
	}
}

const char *dp_prog_type_name(__u32 type)
{
	switch (type) {
	case BPF_PROG_TYPE_SCHED_CLS: return "sched_cls";
	case BPF_PROG_TYPE_CGROUP_SOCK_ADDR: return "cgroup_sock_addr";
	default: return "other";
	}
}

const char *dp_attach_type_name(__u32 type)
{
	switch (type) {
	case BPF_CGROUP_INET4_CONNECT: return "connect4";
	case BPF_CGROUP_UDP4_SENDMSG: return "sendmsg4";
	case BPF_CGROUP_INET4_GETPEERNAME: return "getpeername4";
	case BPF_CGROUP_UDP4_RECVMSG: return "recvmsg4";
	case BPF_CGROUP_INET6_CONNECT: return "connect6";
	case BPF_CGROUP_UDP6_SENDMSG: return "sendmsg6";
	case BPF_CGROUP_INET6_GETPEERNAME: return "getpeername6";
	case BPF_CGROUP_UDP6_RECVMSG: return "recvmsg6";
	default: return "other";
	}
}

const char *dp_errno_name(int err)
{
	static char buf[16];
	const char *name = strerrorname_np(err < 0 ? -err : err);

	if (name)
		return name;
	snprintf(buf, sizeof(buf), "E%d", err < 0 ? -err : err);
	return buf;
}

void dp_hex_encode(const void *data, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";
	const unsigned char *p = data;
	size_t i;

	for (i = 0; i < len; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * len] = 0;
}

static int nibble(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int dp_hex_decode(const char *hex, void *out, size_t len)
{
	unsigned char *p = out;
	size_t i;

	if (strlen(hex) != 2 * len)
		return -1;
	for (i = 0; i < len; i++) {
		int hi = nibble(hex[2 * i]), lo = nibble(hex[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -1;
		p[i] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}

int dp_parse_u64(const char *s, unsigned long long *out)
{
	unsigned long long v;
	char *end;

	if (!s || !*s || *s == '-')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno)
		return -1;
	switch (*end) {
	case 'k': case 'K': v <<= 10; end++; break;
	case 'm': case 'M': v <<= 20; end++; break;
	case 'g': case 'G': v <<= 30; end++; break;
	}
	if (*end)
		return -1;
	*out = v;
	return 0;
}
