// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* JSON output, the one error document, and libbpf's log (kept for verifier messages). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/libbpf.h>
#include "dp.h"

/* ---------------------------------------------------------------- JSON writer */

static void put(struct jw *w, const char *s, size_t n)
{
	if (w->len + n + 1 > w->cap) {
		size_t cap = w->cap ? w->cap : 1024;

		while (w->len + n + 1 > cap)
			cap *= 2;
		w->buf = realloc(w->buf, cap);
		if (!w->buf)
			abort(); /* out of memory while printing: nothing sensible left to do */
		w->cap = cap;
	}
	memcpy(w->buf + w->len, s, n);
	w->len += n;
	w->buf[w->len] = 0;
}

static void puts_(struct jw *w, const char *s)
{
	put(w, s, strlen(s));
}

static void put_string(struct jw *w, const char *s)
{
	char esc[8];

	put(w, "\"", 1);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			put(w, esc, 2);
		} else if (c < 0x20) {
			snprintf(esc, sizeof(esc), "\\u%04x", c);
			put(w, esc, 6);
		} else {
			put(w, (const char *)&c, 1);
		}
	}
	put(w, "\"", 1);
}

/* comma and "key": before a member */
static void member(struct jw *w, const char *key)
{
	if (!w->first[w->depth])
		put(w, ",", 1);
	w->first[w->depth] = false;
	if (key) {
		put_string(w, key);
		put(w, ":", 1);
	}
}

static void open_(struct jw *w, const char *key, const char *brace)
{
	if (w->depth == 0 && w->len == 0)
		w->first[0] = true;
	member(w, key);
	puts_(w, brace);
	w->depth++;
	w->first[w->depth] = true;
}

void jw_open(struct jw *w, const char *key)
{
	open_(w, key, "{");
}

void jw_array(struct jw *w, const char *key)
{
	open_(w, key, "[");
}

void jw_close_obj(struct jw *w)
{
	w->depth--;
	puts_(w, "}");
}

void jw_close_arr(struct jw *w)
{
	w->depth--;
	puts_(w, "]");
}

void jw_str(struct jw *w, const char *key, const char *val)
{
	member(w, key);
	if (val)
		put_string(w, val);
	else
		puts_(w, "null");
}

void jw_u64(struct jw *w, const char *key, unsigned long long val)
{
	char num[32];

	member(w, key);
	snprintf(num, sizeof(num), "%llu", val);
	puts_(w, num);
}

void jw_i64(struct jw *w, const char *key, long long val)
{
	char num[32];

	member(w, key);
	snprintf(num, sizeof(num), "%lld", val);
	puts_(w, num);
}

void jw_bool(struct jw *w, const char *key, bool val)
{
	member(w, key);
	puts_(w, val ? "true" : "false");
}

void jw_null(struct jw *w, const char *key)
{
	member(w, key);
	puts_(w, "null");
}

void jw_raw(struct jw *w, const char *key, const char *json)
{
	member(w, key);
	puts_(w, json);
}

void jw_print(struct jw *w)
{
	if (w->buf)
		printf("%s\n", w->buf);
	fflush(stdout);
	jw_free(w);
}

void jw_free(struct jw *w)
{
	free(w->buf);
	memset(w, 0, sizeof(*w));
}

/* ---------------------------------------------------------------- errors */

static struct {
	bool set;
	enum dp_exit exit_code;
	char code[32];
	char msg[2048];
	struct jw extra; /* extra members, rendered without braces */
} err;

int dp_fail(enum dp_exit exit_code, const char *code, const char *fmt, ...)
{
	va_list ap;
	char *p;

	if (err.set)
		return -1; /* keep the first cause; rollback failures are warnings after it */
	err.set = true;
	err.exit_code = exit_code;
	snprintf(err.code, sizeof(err.code), "%s", code);
	va_start(ap, fmt);
	vsnprintf(err.msg, sizeof(err.msg), fmt, ap);
	va_end(ap);
	for (p = err.msg; *p; p++)
		if (*p == '\n' || *p == '\r' || *p == '\t')
			*p = ' ';
	return -1;
}

void dp_fail_lines(const char *key, char **lines, int n)
{
	int i;

	if (err.extra.len == 0)
		err.extra.first[0] = true;
	jw_array(&err.extra, key);
	for (i = 0; i < n; i++)
		jw_str(&err.extra, NULL, lines[i]);
	jw_close_arr(&err.extra);
}

void dp_fail_num(const char *key, unsigned long long val)
{
	if (err.extra.len == 0)
		err.extra.first[0] = true;
	jw_u64(&err.extra, key, val);
}

bool dp_failed(void)
{
	return err.set;
}

int dp_print_error(void)
{
	struct jw w = {};

	if (!err.set)
		dp_fail(DP_EXIT_INTERNAL, "internal", "failed without a message");
	jw_open(&w, NULL);
	jw_str(&w, "error", err.msg);
	jw_str(&w, "code", err.code);
	if (err.extra.len) {
		puts_(&w, ",");
		puts_(&w, err.extra.buf);
	}
	jw_close_obj(&w);
	jw_print(&w);
	jw_free(&err.extra);
	return err.exit_code;
}

/* ---------------------------------------------------------------- libbpf log */

#define LOG_CAP (64 * 1024)
static char logbuf[LOG_CAP];
static size_t loglen;
static bool log_verbose;

static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	char line[4096];
	int n;

	if (level == LIBBPF_DEBUG && !log_verbose)
		return 0;
	n = vsnprintf(line, sizeof(line), fmt, ap);
	if (n < 0)
		return 0;
	if ((size_t)n >= sizeof(line))
		n = sizeof(line) - 1;
	if (log_verbose)
		fputs(line, stderr);
	if (loglen + (size_t)n >= LOG_CAP) /* keep the newest: a verifier log comes last */
		loglen = 0;
	memcpy(logbuf + loglen, line, (size_t)n);
	loglen += (size_t)n;
	logbuf[loglen] = 0;
	return n;
}

void dp_libbpf_log_init(bool verbose)
{
	log_verbose = verbose;
	libbpf_set_print(libbpf_print);
}

void dp_libbpf_log_reset(void)
{
	loglen = 0;
	logbuf[0] = 0;
}

static bool had_verifier_log;

bool dp_libbpf_log_is_verifier(void)
{
	return had_verifier_log;
}

int dp_libbpf_log_lines(char **out, int max)
{
	static char copy[LOG_CAP];
	static char ellipsis[] = "...";
	char *start, *p, *save = NULL, *all[4096];
	int n = 0, i, head;

	memcpy(copy, logbuf, loglen + 1);
	/* the verifier's own words if libbpf printed a load log, else libbpf's messages */
	start = strstr(copy, "-- BEGIN PROG LOAD LOG --");
	had_verifier_log = start != NULL;
	if (start)
		start = strchr(start, '\n');
	start = start ? start + 1 : copy;
	for (p = strtok_r(start, "\n", &save); p && n < 4096; p = strtok_r(NULL, "\n", &save)) {
		if (!*p || strstr(p, "-- END PROG LOAD LOG --"))
			continue;
		all[n++] = p;
	}
	if (n <= max) {
		memcpy(out, all, sizeof(*out) * n);
		return n;
	}
	/* the first lines say where it started, the last ones why the verifier gave up */
	head = max / 3;
	for (i = 0; i < head; i++)
		out[i] = all[i];
	out[head] = ellipsis;
	for (i = head + 1; i < max; i++)
		out[i] = all[n - (max - i)];
	return max;
}
