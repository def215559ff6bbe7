// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * apply: map writes from stdin, one per line, all parsed and checked against the pinned maps'
 * key/value sizes before the first write:
 *     put <map> <keyhex> <valuehex>
 *     del <map> <keyhex>
 *     clear <map>
 * Blank lines and lines starting with '#' are skipped. Hex is the raw bytes of the structs in
 * include/datapath_structs.h. Per-CPU maps take one value, written to every CPU.
 * dump: the entries of one map, "<keyhex> <valuehex>" per line.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "dp.h"
#include "maps_user.h"

enum op_kind { OP_PUT, OP_DEL, OP_CLEAR };

struct map_ref {
	char name[64];
	int fd;
	struct bpf_map_info info;
};

struct op {
	enum op_kind kind;
	int line;
	struct map_ref *map;
	void *key, *value; /* value: already replicated for per-CPU maps */
};

static bool percpu(const struct bpf_map_info *i)
{
	return i->type == BPF_MAP_TYPE_PERCPU_ARRAY || i->type == BPF_MAP_TYPE_PERCPU_HASH ||
	       i->type == BPF_MAP_TYPE_LRU_PERCPU_HASH;
}

static bool array(const struct bpf_map_info *i)
{
	return i->type == BPF_MAP_TYPE_ARRAY || i->type == BPF_MAP_TYPE_PERCPU_ARRAY;
}

/* bytes of one value as the syscall wants it: per-CPU values are 8-byte aligned, one per CPU */
static size_t value_bytes(const struct bpf_map_info *i)
{
	int ncpu = libbpf_num_possible_cpus();

	if (!percpu(i))
		return i->value_size;
	return (size_t)((i->value_size + 7) & ~7u) * (size_t)(ncpu > 0 ? ncpu : 1);
}

static struct map_ref maps[64];
static int nmaps;

/* the pinned map by name (opened once) or NULL */
static struct map_ref *map_ref(const char *name)
{
	__u32 len = sizeof(struct bpf_map_info);
	struct map_ref *m;
	int i, fd;

	for (i = 0; i < nmaps; i++)
		if (!strcmp(maps[i].name, name))
			return &maps[i];
	if (nmaps == 64 || strlen(name) >= sizeof(maps[0].name))
		return NULL;
	fd = dp_map_open(name);
	if (fd < 0)
		return NULL;
	m = &maps[nmaps];
	memset(m, 0, sizeof(*m));
	if (bpf_obj_get_info_by_fd(fd, &m->info, &len)) {
		close(fd);
		return NULL;
	}
	snprintf(m->name, sizeof(m->name), "%s", name);
	m->fd = fd;
	nmaps++;
	return m;
}

static int bad_line(int line, const char *fmt, const char *a, unsigned long long b)
{
	char msg[512];

	snprintf(msg, sizeof(msg), fmt, a, b);
	dp_fail(DP_EXIT_USAGE, "bad-input", "line %d: %s (nothing was written)", line, msg);
	dp_fail_num("line", (unsigned)line);
	return -1;
}

/* hex of exactly size bytes into a new buffer */
static void *decode(const char *hex, size_t size, int line, const char *what, const char *map)
{
	void *buf = calloc(1, size ? size : 1);

	if (!hex) {
		bad_line(line, "%s missing", what, 0);
		free(buf);
		return NULL;
	}
	if (!buf || dp_hex_decode(hex, buf, size)) {
		free(buf);
		dp_fail(DP_EXIT_USAGE, "bad-input",
			"line %d: %s of %s must be %zu bytes as hex (%zu hex digits), got '%.40s' (nothing was written)",
			line, what, map, size, 2 * size, hex);
		dp_fail_num("line", (unsigned)line);
		return NULL;
	}
	return buf;
}

static int parse_line(char *text, int line, struct op *op)
{
	char *save = NULL, *verb = strtok_r(text, " \t\r\n", &save);
	char *name = strtok_r(NULL, " \t\r\n", &save);
	char *key = strtok_r(NULL, " \t\r\n", &save);
	char *value = strtok_r(NULL, " \t\r\n", &save);
	char *extra = strtok_r(NULL, " \t\r\n", &save);
	int nwant;

	op->line = line;
	if (!strcmp(verb, "put"))
		op->kind = OP_PUT, nwant = 3;
	else if (!strcmp(verb, "del"))
		op->kind = OP_DEL, nwant = 2;
	else if (!strcmp(verb, "clear"))
		op->kind = OP_CLEAR, nwant = 1;
	else
		return bad_line(line, "unknown verb '%s' (put, del or clear)", verb, 0);
	if (!name || (nwant < 3 && (nwant < 2 ? key : value)) || extra)
		return bad_line(line, "'%s' takes %llu arguments", verb, (unsigned long long)nwant);
	op->map = map_ref(name);
	if (!op->map)
		return bad_line(line, "no map '%s' in this install (see `prep-node-dp status`)", name, 0);
	if (op->map->info.type == BPF_MAP_TYPE_RINGBUF)
		return bad_line(line, "map '%s' is a ring buffer: read it with `events`", name, 0);
	if (op->kind == OP_DEL && array(&op->map->info))
		return bad_line(line, "map '%s' is an array: entries cannot be deleted, put zeros", name, 0);
	if (op->kind == OP_CLEAR)
		return 0;
	op->key = decode(key, op->map->info.key_size, line, "key", name);
	if (!op->key)
		return -1;
	if (op->kind == OP_PUT) {
		size_t one = op->map->info.value_size, stride = (one + 7) & ~(size_t)7, total, off;

		op->value = decode(value, one, line, "value", name);
		if (!op->value)
			return -1;
		if (percpu(&op->map->info)) {
			void *all;

			total = value_bytes(&op->map->info);
			all = calloc(1, total);
			if (!all)
				return dp_fail(DP_EXIT_INTERNAL, "internal", "out of memory");
			for (off = 0; off < total; off += stride)
				memcpy((char *)all + off, op->value, one);
			free(op->value);
			op->value = all;
		}
	}
	return 0;
}

/* every element of an array map to zeros (arrays have no delete) */
static int zero_array(const struct map_ref *m)
{
	void *zero = calloc(1, value_bytes(&m->info));
	__u32 i;
	int err = 0;

	if (!zero)
		return -ENOMEM;
	for (i = 0; i < m->info.max_entries && !err; i++)
		if (bpf_map_update_elem(m->fd, &i, zero, BPF_ANY))
			err = -errno;
	free(zero);
	return err;
}

static int write_failed(const struct op *op, const char *verb, int err, unsigned long done)
{
	dp_fail(DP_EXIT_WRITE, "write-failed", "line %d: %s %s: %s%s; %lu earlier lines were applied",
		       op->line, verb, op->map->name, strerror(-err),
		       err == -E2BIG || err == -ENOMEM ? " (map full: raise it with install --cap)" : "", done);
	dp_fail_num("line", (unsigned)op->line);
	dp_fail_num("applied", done);
	return -1;
}

int cmd_apply(int argc, char **argv)
{
	unsigned long put = 0, deleted = 0, missing = 0, cleared = 0;
	struct op *ops = NULL;
	size_t nops = 0, cap = 0, i, n = 0;
	char *text = NULL, *p;
	int line = 0, err = 0;
	ssize_t len;
	struct jw w = {};

	(void)argv;
	if (argc > 1)
		return dp_fail(DP_EXIT_USAGE, "usage", "apply reads its lines from stdin and takes no arguments");
	if (dp_check_bpffs())
		return -1;
	if (!dp_installed())
		return dp_fail(DP_EXIT_NOT_INSTALLED, "not-installed", "the datapath is not installed: run install first");

	/* 1. parse and check everything */
	while ((len = getline(&text, &n, stdin)) >= 0) {
		line++;
		for (p = text; *p == ' ' || *p == '\t'; p++)
			;
		if (!*p || *p == '\n' || *p == '\r' || *p == '#')
			continue;
		if (nops == cap) {
			cap = cap ? cap * 2 : 256;
			ops = realloc(ops, cap * sizeof(*ops));
			if (!ops)
				return dp_fail(DP_EXIT_INTERNAL, "internal", "out of memory");
		}
		memset(&ops[nops], 0, sizeof(ops[nops]));
		if (parse_line(p, line, &ops[nops++])) {
			err = -1;
			break;
		}
	}
	free(text);

	/* 2. write, in order */
	for (i = 0; !err && i < nops; i++) {
		struct op *op = &ops[i];

		switch (op->kind) {
		case OP_PUT:
			if (bpf_map_update_elem(op->map->fd, op->key, op->value, BPF_ANY))
				err = write_failed(op, "put", -errno, i);
			else
				put++;
			break;
		case OP_DEL:
			if (bpf_map_delete_elem(op->map->fd, op->key) == 0)
				deleted++;
			else if (errno == ENOENT)
				missing++;
			else
				err = write_failed(op, "del", -errno, i);
			break;
		case OP_CLEAR: {
			int e = array(&op->map->info) ? zero_array(op->map) : dp_map_clear(op->map->fd);

			if (e)
				err = write_failed(op, "clear", e, i);
			else
				cleared++;
			break;
		}
		}
	}
	for (i = 0; i < nops; i++) {
		free(ops[i].key);
		free(ops[i].value);
	}
	free(ops);
	if (err)
		return -1;
	jw_open(&w, NULL);
	jw_u64(&w, "put", put);
	jw_u64(&w, "deleted", deleted);
	jw_u64(&w, "missing", missing);
	jw_u64(&w, "cleared", cleared);
	jw_close_obj(&w);
	jw_print(&w);
	return 0;
}

/* per-CPU value as "<sum>" (__u64 words summed, the layout of both per-CPU maps) or every CPU's */
static void print_value(const struct bpf_map_info *info, const unsigned char *v, bool per_cpu, char *hex)
{
	int ncpu = libbpf_num_possible_cpus(), c;
	size_t stride = (info->value_size + 7) & ~7u, w;

	if (!percpu(info)) {
		dp_hex_encode(v, info->value_size, hex);
		fputs(hex, stdout);
		return;
	}
	if (per_cpu) {
		for (c = 0; c < ncpu; c++) {
			dp_hex_encode(v + (size_t)c * stride, info->value_size, hex);
			printf("%s%s", c ? " " : "", hex);
		}
		return;
	}
	{
		__u64 sum[stride / 8];

		memset(sum, 0, sizeof(sum));
		for (c = 0; c < ncpu; c++)
			for (w = 0; w < stride / 8; w++) {
				__u64 x;

				memcpy(&x, v + (size_t)c * stride + w * 8, 8);
				sum[w] += x;
			}
		dp_hex_encode(sum, info->value_size, hex);
		fputs(hex, stdout);
	}
}

int cmd_dump(int argc, char **argv)
{
	static const struct option longopts[] = { { "per-cpu", no_argument, NULL, 'p' }, {} };
	unsigned char *key, *prev = NULL, *val;
	bool per_cpu = false;
	struct map_ref *m;
	char *hex;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		if (c != 'p')
			return dp_fail(DP_EXIT_USAGE, "usage", "dump <map> [--per-cpu]");
		per_cpu = true;
	}
	if (optind != argc - 1)
		return dp_fail(DP_EXIT_USAGE, "usage", "dump <map> [--per-cpu]");
	if (dp_check_bpffs())
		return -1;
	if (!dp_installed())
		return dp_fail(DP_EXIT_NOT_INSTALLED, "not-installed", "the datapath is not installed: run install first");
	m = map_ref(argv[optind]);
	if (!m)
		return dp_fail(DP_EXIT_USAGE, "usage", "no map '%s' in this install", argv[optind]);
	if (m->info.type == BPF_MAP_TYPE_RINGBUF)
		return dp_fail(DP_EXIT_USAGE, "usage", "'%s' is a ring buffer: read it with `events`", m->name);
	if (percpu(&m->info) && m->info.value_size % 8 && !per_cpu)
		return dp_fail(DP_EXIT_USAGE, "usage", "'%s': per-CPU values that are not __u64 words: use --per-cpu",
			       m->name);
	key = malloc(m->info.key_size * 2u + 2);
	val = malloc(value_bytes(&m->info));
	hex = malloc(m->info.value_size * 2u + m->info.key_size * 2u + 2);
	if (!key || !val || !hex)
		return dp_fail(DP_EXIT_INTERNAL, "internal", "out of memory");
	while (bpf_map_get_next_key(m->fd, prev, key) == 0) {
		/* get_next_key writes into the second buffer; swap so prev stays valid */
		unsigned char *k = key;

		if (bpf_map_lookup_elem(m->fd, k, val) == 0) {
			dp_hex_encode(k, m->info.key_size, hex);
			printf("%s ", hex);
			print_value(&m->info, val, per_cpu, hex);
			putchar('\n');
		}
		if (!prev)
			prev = malloc(m->info.key_size);
		if (!prev)
			return dp_fail(DP_EXIT_INTERNAL, "internal", "out of memory");
		memcpy(prev, k, m->info.key_size);
	}
	fflush(stdout);
	free(key);
	free(prev);
	free(val);
	free(hex);
	return 0;
}
