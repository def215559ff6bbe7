/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Minimal TAP 13 output: one "ok N - description" / "not ok N - description" line per case,
 * diagnostics as "# ..." lines after it, the plan at the end. */
#ifndef PREP_NODE_TEST_TAP_H
#define PREP_NODE_TEST_TAP_H

#include <stdarg.h>
#include <stdio.h>

static int tap_n, tap_failed;
static char tap_why[512];

/* remember why the current case fails (the first reason wins) */
static inline void tap_fail(const char *fmt, ...)
{
	va_list ap;

	if (tap_why[0])
		return;
	va_start(ap, fmt);
	vsnprintf(tap_why, sizeof(tap_why), fmt, ap);
	va_end(ap);
}

/* print the result line of one case and reset */
static inline void tap_result(const char *desc)
{
	tap_n++;
	if (tap_why[0]) {
		tap_failed++;
		printf("not ok %d - %s\n# %s\n", tap_n, desc, tap_why);
	} else {
		printf("ok %d - %s\n", tap_n, desc);
	}
	tap_why[0] = 0;
	fflush(stdout);
}

static inline void tap_skip(const char *desc, const char *why)
{
	tap_n++;
	printf("ok %d - %s # SKIP %s\n", tap_n, desc, why);
	fflush(stdout);
}

/* print the plan; the exit code is 1 when a case failed */
static inline int tap_done(void)
{
	printf("1..%d\n", tap_n);
	return tap_failed ? 1 : 0;
}

#endif /* PREP_NODE_TEST_TAP_H */
