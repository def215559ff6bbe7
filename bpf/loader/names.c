// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The names index `datapath sync` leaves on the node (/var/lib/prep-node/datapath/names.json, one
 * JSON document, src/datapath/observe.ts): `metrics` reads service names from it. Only what metrics
 * needs is kept: `"services": {"<svc_id>": {"name": "..."}}` of a `"version": 1` document. The
 * reader is a strict JSON walker (RFC 8259 syntax, nesting capped), not a general parser: a
 * document that does not parse, or is not version 1, gives no names at all (as observe.ts's
 * readNames gives null), and metrics then labels every service with service="".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "dp.h"

/* sync writes about 200 bytes per endpoint: 64 MiB is far past any node's index */
#define NAMES_MAX_BYTES (64u << 20)
#define JSON_MAX_DEPTH 64

struct cur {
	const char *p, *end;
};

static void ws(struct cur *c)
{
	while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
		c->p++;
}

static bool eat(struct cur *c, char ch)
{
	ws(c);
	if (c->p < c->end && *c->p == ch) {
		c->p++;
		return true;
	}
	return false;
}

static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

static bool hex4(struct cur *c, unsigned *out)
{
	int i, v;

	if (c->end - c->p < 4)
		return false;
	for (*out = 0, i = 0; i < 4; i++) {
		if ((v = hexval(c->p[i])) < 0)
			return false;
		*out = *out << 4 | (unsigned)v;
	}
	c->p += 4;
	return true;
}

static size_t utf8(unsigned cp, char *o)
{
	if (cp < 0x80)
		return o[0] = (char)cp, 1;
	if (cp < 0x800)
		return o[0] = (char)(0xc0 | cp >> 6), o[1] = (char)(0x80 | (cp & 0x3f)), 2;
	if (cp < 0x10000)
		return o[0] = (char)(0xe0 | cp >> 12), o[1] = (char)(0x80 | (cp >> 6 & 0x3f)),
		       o[2] = (char)(0x80 | (cp & 0x3f)), 3;
	return o[0] = (char)(0xf0 | cp >> 18), o[1] = (char)(0x80 | (cp >> 12 & 0x3f)),
	       o[2] = (char)(0x80 | (cp >> 6 & 0x3f)), o[3] = (char)(0x80 | (cp & 0x3f)), 4;
}

/* A string at c (after whitespace). out (may be NULL: skip): the decoded bytes, malloc'd, *len
 * their count; a lone surrogate becomes U+FFFD, as JavaScript writes one out as UTF-8. */
static bool string(struct cur *c, char **out, size_t *len)
{
	char *buf = NULL;
	size_t n = 0;

	const char *q;

	if (!eat(c, '"'))
		return false;
	/* the raw span first: decoding never makes a string longer than it is written */
	for (q = c->p; q < c->end && *q != '"'; q++)
		if (*q == '\\' && q + 1 < c->end)
			q++;
	if (out && !(buf = malloc((size_t)(q - c->p) + 1)))
		return false;
	while (c->p < c->end && *c->p != '"') {
		unsigned char ch = (unsigned char)*c->p++;
		unsigned cp, lo;
		char tmp[4];
		size_t k;

		if (ch < 0x20)
			goto bad;
		if (ch != '\\') {
			if (buf)
				buf[n] = (char)ch;
			n++;
			continue;
		}
		if (c->p >= c->end)
			goto bad;
		switch (*c->p++) {
		case '"': tmp[0] = '"', k = 1; break;
		case '\\': tmp[0] = '\\', k = 1; break;
		case '/': tmp[0] = '/', k = 1; break;
		case 'b': tmp[0] = '\b', k = 1; break;
		case 'f': tmp[0] = '\f', k = 1; break;
		case 'n': tmp[0] = '\n', k = 1; break;
		case 'r': tmp[0] = '\r', k = 1; break;
		case 't': tmp[0] = '\t', k = 1; break;
		case 'u':
			if (!hex4(c, &cp))
				goto bad;
			if (cp >= 0xd800 && cp < 0xdc00 && c->end - c->p >= 6 && c->p[0] == '\\' && c->p[1] == 'u') {
				struct cur save = *c;

				c->p += 2;
				if (hex4(c, &lo) && lo >= 0xdc00 && lo < 0xe000)
					cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
				else
					*c = save;
			}
			if (cp >= 0xd800 && cp < 0xe000)
				cp = 0xfffd;
			k = utf8(cp, tmp);
			break;
		default:
			goto bad;
		}
		/* an escape never decodes to more bytes than it took (\uXXXX: 6 for at most 3; pairs 12 for 4) */
		if (buf)
			memcpy(buf + n, tmp, k);
		n += k;
	}
	if (!eat(c, '"'))
		goto bad;
	if (out) {
		buf[n] = '\0';
		*out = buf;
		*len = n;
	}
	return true;
bad:
	free(buf);
	return false;
}

static bool value(struct cur *c, int depth);

/* An object's members: fn (may be NULL) gets each key and reads its value itself. */
static bool members(struct cur *c, int depth, bool (*fn)(struct cur *c, const char *key, int depth, void *ctx),
		    void *ctx)
{
	if (depth > JSON_MAX_DEPTH || !eat(c, '{'))
		return false;
	if (eat(c, '}'))
		return true;
	do {
		char *key;
		size_t klen;
		bool ok;

		if (!string(c, &key, &klen))
			return false;
		ok = eat(c, ':') && (fn ? fn(c, key, depth + 1, ctx) : value(c, depth + 1));
		free(key);
		if (!ok)
			return false;
	} while (eat(c, ','));
	return eat(c, '}');
}

static bool literal(struct cur *c)
{
	static const char *const words[] = { "true", "false", "null" };
	const char *s = c->p;
	size_t i;

	for (i = 0; i < 3; i++) {
		size_t n = strlen(words[i]);

		if ((size_t)(c->end - s) >= n && !memcmp(s, words[i], n)) {
			c->p += n;
			return true;
		}
	}
	/* a number: -?int frac? exp? */
	if (s < c->end && *s == '-')
		s++;
	if (s >= c->end || *s < '0' || *s > '9')
		return false;
	if (*s == '0')
		s++;
	else
		while (s < c->end && *s >= '0' && *s <= '9')
			s++;
	if (s < c->end && *s == '.') {
		if (++s >= c->end || *s < '0' || *s > '9')
			return false;
		while (s < c->end && *s >= '0' && *s <= '9')
			s++;
	}
	if (s < c->end && (*s == 'e' || *s == 'E')) {
		if (++s < c->end && (*s == '+' || *s == '-'))
			s++;
		if (s >= c->end || *s < '0' || *s > '9')
			return false;
		while (s < c->end && *s >= '0' && *s <= '9')
			s++;
	}
	c->p = s;
	return true;
}

static bool value(struct cur *c, int depth)
{
	ws(c);
	if (c->p >= c->end || depth > JSON_MAX_DEPTH)
		return false;
	if (*c->p == '"')
		return string(c, NULL, NULL);
	if (*c->p == '{')
		return members(c, depth, NULL, NULL);
	if (*c->p == '[') {
		c->p++;
		if (eat(c, ']'))
			return true;
		do
			if (!value(c, depth + 1))
				return false;
		while (eat(c, ','));
		return eat(c, ']');
	}
	return literal(c);
}

/* ---- the index's shape ---- */

struct walk {
	struct dp_names *names;
	__u32 id;       /* the service being read */
	bool version_1; /* "version": 1 seen */
};

static bool service_member(struct cur *c, const char *key, int depth, void *ctx)
{
	struct walk *w = ctx;
	struct dp_name *n;
	char *name;
	size_t len;

	if (strcmp(key, "name"))
		return value(c, depth);
	ws(c);
	if (c->p >= c->end || *c->p != '"' || !string(c, &name, &len))
		return false;
	n = reallocarray(w->names->v, w->names->n + 1, sizeof(*n));
	if (!n) {
		free(name);
		return false;
	}
	w->names->v = n;
	n[w->names->n++] = (struct dp_name){ .id = w->id, .name = name, .len = len };
	return true;
}

/* "<svc_id>": {...}: a key that is not a u32 in decimal (as sync writes it) is skipped */
static bool service(struct cur *c, const char *key, int depth, void *ctx)
{
	struct walk *w = ctx;
	unsigned long long id = 0;
	const char *k;

	for (k = key; *k >= '0' && *k <= '9' && id <= 0xffffffffull; k++)
		id = id * 10 + (unsigned long long)(*k - '0');
	ws(c);
	if (c->p >= c->end || *c->p != '{')
		return false;
	if (*k || k == key || (key[0] == '0' && key[1]) || id > 0xffffffffull)
		return value(c, depth);
	w->id = (__u32)id;
	return members(c, depth, service_member, w);
}

static bool top(struct cur *c, const char *key, int depth, void *ctx)
{
	struct walk *w = ctx;

	if (!strcmp(key, "version")) {
		const char *s;

		ws(c);
		s = c->p;
		if (!literal(c))
			return false;
		w->version_1 = c->p - s == 1 && *s == '1';
		return true;
	}
	if (!strcmp(key, "services")) {
		ws(c);
		return c->p < c->end && *c->p == '{' && members(c, depth, service, w);
	}
	return value(c, depth);
}

static int by_id(const void *a, const void *b)
{
	__u32 x = ((const struct dp_name *)a)->id, y = ((const struct dp_name *)b)->id;

	return x < y ? -1 : x > y;
}

void dp_names_free(struct dp_names *names)
{
	size_t i;

	for (i = 0; i < names->n; i++)
		free(names->v[i].name);
	free(names->v);
	names->v = NULL;
	names->n = 0;
}

int dp_names_load(const char *path, struct dp_names *names)
{
	struct walk w = { .names = names };
	struct stat sb;
	struct cur c;
	char *buf;
	ssize_t r;
	size_t got = 0;
	bool ok;
	int fd;

	names->v = NULL;
	names->n = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0)
		return errno == ENOENT ? 1 : -errno;
	if (fstat(fd, &sb) || !S_ISREG(sb.st_mode) || (size_t)sb.st_size > NAMES_MAX_BYTES) {
		int err = S_ISREG(sb.st_mode) ? EFBIG : EINVAL;

		close(fd);
		return -err;
	}
	buf = malloc((size_t)sb.st_size + 1);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	while (got < (size_t)sb.st_size && (r = read(fd, buf + got, (size_t)sb.st_size - got)) > 0)
		got += (size_t)r;
	close(fd);
	c = (struct cur){ buf, buf + got };
	ok = members(&c, 0, top, &w);
	ws(&c);
	free(buf);
	if (!ok || c.p != c.end || !w.version_1) {
		dp_names_free(names);
		return -EBADMSG;
	}
	if (names->n)
		qsort(names->v, names->n, sizeof(*names->v), by_id);
	return 0;
}

const struct dp_name *dp_names_find(const struct dp_names *names, __u32 id)
{
	struct dp_name key = { .id = id };

	return names->n ? bsearch(&key, names->v, names->n, sizeof(key), by_id) : NULL;
}
