/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * prep-node-dp, the node-side loader: shared declarations. One file per command (install.c,
 * remove.c, status.c, apply.c, events.c, selftest.c); pins and the install record in pins.c; JSON
 * output and errors in out.c. Every command returns 0 or a failure recorded with dp_fail(), which
 * main() prints as {"error", "code"} with the exit code below (the table is in bpf/README.md).
 */
#ifndef PREP_NODE_DP_H
#define PREP_NODE_DP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/types.h>
#include <linux/bpf.h>

/* exit codes: stable, the TypeScript side maps them (bpf/README.md "Loader") */
enum dp_exit {
	DP_EXIT_OK = 0,
	DP_EXIT_INTERNAL = 1,      /* unexpected syscall failure, out of memory */
	DP_EXIT_USAGE = 2,         /* bad arguments or bad `apply` input; nothing was changed */
	DP_EXIT_NOT_INSTALLED = 3, /* the command needs an installed datapath */
	DP_EXIT_LOAD = 4,          /* the kernel refused a map or program (verifier log in the message) */
	DP_EXIT_ATTACH = 5,        /* cgroup or tc attach failed, or a --tc-dev does not exist */
	DP_EXIT_KERNEL = 6,        /* kernel too old or a needed feature is missing */
	DP_EXIT_ENV = 7,           /* node setup: no bpffs, no cgroup v2, wrong network namespace */
	DP_EXIT_WRITE = 8,         /* `apply`: a map write failed after validation (map full, ...) */
};

/* ---- out.c: JSON writer and errors ---- */

/* A JSON document under construction: commas and nesting are tracked, strings escaped. */
struct jw {
	char *buf;
	size_t len, cap;
	int depth;
	bool first[32]; /* no comma needed yet at this depth */
};

void jw_open(struct jw *w, const char *key);  /* '{' (key for a member, NULL in arrays/top) */
void jw_array(struct jw *w, const char *key); /* '[' */
void jw_close_obj(struct jw *w);
void jw_close_arr(struct jw *w);
void jw_str(struct jw *w, const char *key, const char *val); /* NULL val prints null */
void jw_u64(struct jw *w, const char *key, unsigned long long val);
void jw_i64(struct jw *w, const char *key, long long val);
void jw_bool(struct jw *w, const char *key, bool val);
void jw_null(struct jw *w, const char *key);
/* a member whose value is already JSON */
void jw_raw(struct jw *w, const char *key, const char *json);
/* print the document and a newline on stdout, free it */
void jw_print(struct jw *w);
void jw_free(struct jw *w);

/* Record a failure (first one wins) and return -1. msg is made one line. */
int dp_fail(enum dp_exit exit_code, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Add a string array member to the error document (e.g. the verifier log). */
void dp_fail_lines(const char *key, char **lines, int n);
/* Add a number member to the error document (e.g. the input line). */
void dp_fail_num(const char *key, unsigned long long val);
bool dp_failed(void);
/* print the recorded error on stdout, return its exit code */
int dp_print_error(void);

/* libbpf's messages are kept (last 64 KiB) instead of printed; -v prints them on stderr too */
void dp_libbpf_log_init(bool verbose);
/* Up to max lines of the last verifier log libbpf printed (or its last warnings); returns count. */
int dp_libbpf_log_lines(char **out, int max);
void dp_libbpf_log_reset(void);
/* the lines of the last dp_libbpf_log_lines() call came from a verifier log */
bool dp_libbpf_log_is_verifier(void);

/* ---- pins.c: where things live, and the install record ---- */

#define DP_BPFFS_DEFAULT "/sys/fs/bpf"
#define DP_PIN_DIR "prep-node"
/* tc filter identity on each device: fixed so remove/status find exactly ours */
#define DP_TC_HANDLE 1
#define DP_TC_PRIO 1
#define DP_MAX_TC 256

/* The install record, pinned as a one-entry array map (prep-node/state): it lives and dies with
 * the pins (a reboot clears both), so it can never describe attachments that are gone. */
struct dp_state {
	__u32 magic;        /* DP_STATE_MAGIC */
	__u32 version;      /* layout version: DP_STATE_VERSION */
	__u64 netns_ino;    /* network namespace install ran in: tc filters are only reachable there */
	__u64 netns_dev;
	__u64 installed_at; /* unix seconds */
	__u32 set_retval;   /* cfg_has_set_retval as loaded */
	__u32 ntc;          /* entries used in tc[] */
	char cgroup[256];   /* cgroup v2 directory the sock programs are attached to */
	struct dp_tc_rec {
		char ifname[16];
		__u32 ifindex;
		__u32 prog_id;     /* what we attached: remove detaches only a filter still running it */
		__u8 hook_created; /* the clsact qdisc was created by us: remove deletes it */
		__u8 attached;     /* filter in place (written before attach, set after) */
		__u8 pad[6];
	} tc[DP_MAX_TC];
};
#define DP_STATE_MAGIC 0x706e6470u /* "pndp" */
#define DP_STATE_VERSION 1

/* global options */
extern const char *dp_bpffs;   /* --bpffs DIR (default /sys/fs/bpf) */

/* "<bpffs>/prep-node[/sub]" into buf */
const char *dp_pin_path(char *buf, size_t len, const char *sub);
bool dp_bpffs_mounted(void);
/* 0 if dp_bpffs is a mounted bpffs, else a recorded "no-bpffs" failure */
int dp_check_bpffs(void);
/* true when <bpffs>/prep-node/state exists */
bool dp_installed(void);
/* read the record of the install at dir (a prep-node pin directory); 0 or -errno */
int dp_state_read(const char *dir, struct dp_state *st);
/* create, pin at <dir>/state and fill the record map; returns its fd or a recorded failure */
int dp_state_create(const char *dir, const struct dp_state *st);
int dp_state_write(int fd, const struct dp_state *st);
/* this process's network namespace */
int dp_netns_id(__u64 *ino, __u64 *dev);
/* open a pinned map of the install by name (maps/<name>); fd or -errno */
int dp_map_open(const char *name);
/* events lost for want of ring buffer room, summed over CPUs; 0 when not installed */
unsigned long long dp_events_lost(void);
/* mkdir -p for one level under bpffs */
int dp_mkdir(const char *path);
/* Detach and unpin everything recorded/pinned under dir (an install or a half-done one), then
 * remove dir. Adds what it did to w (arrays "detached" and "warnings") when w is not NULL.
 * Refuses (recorded "wrong-netns" failure, nothing changed) when tc filters were attached from
 * another network namespace. */
int dp_teardown(const char *dir, struct jw *w);
/* remove leftovers of installs that died half-way (<bpffs>/.prep-node-new-*) */
void dp_teardown_stale(void);

/* ---- helpers shared by commands ---- */

/* BPF_MAP_TYPE_* / BPF_PROG_TYPE_* / attach type as the short names bpftool uses */
const char *dp_map_type_name(__u32 type);
const char *dp_prog_type_name(__u32 type);
const char *dp_attach_type_name(__u32 type);
/* "ECONNREFUSED" for ECONNREFUSED; "E<n>" if unknown */
const char *dp_errno_name(int err);
/* hex encoding (lowercase) and decoding; decode returns -1 on odd length/bad digit/wrong size */
void dp_hex_encode(const void *data, size_t len, char *out);
int dp_hex_decode(const char *hex, void *out, size_t len);
/* parse a decimal/hex number with optional k/m/g suffix (powers of 1024) */
int dp_parse_u64(const char *s, unsigned long long *out);

/* ---- names.c: service names from the names index `datapath sync` leaves on the node ---- */

struct dp_name {
	__u32 id;
	char *name; /* decoded from JSON (UTF-8), len bytes */
	size_t len;
};
struct dp_names {
	struct dp_name *v; /* sorted by id */
	size_t n;
};
/* 0: loaded; 1: no such file; -errno: unreadable, too large (EFBIG), not a version-1 index
 * (EBADMSG). Anything but 0 leaves names empty. */
int dp_names_load(const char *path, struct dp_names *names);
const struct dp_name *dp_names_find(const struct dp_names *names, __u32 id);
void dp_names_free(struct dp_names *names);

/* ---- commands ---- */

int cmd_install(int argc, char **argv);
int cmd_remove(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_apply(int argc, char **argv);
int cmd_dump(int argc, char **argv);
int cmd_events(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_probe(int argc, char **argv);
int cmd_features(int argc, char **argv);
int cmd_metrics(int argc, char **argv);
int cmd_bench_pkt(int argc, char **argv);
int cmd_ct_gc(int argc, char **argv);

/* status as JSON members of w (shared by `status` and an idempotent `install`) */
int dp_status_members(struct jw *w);

/* What install set in tc_lb's load-time knobs (its .rodata), read back from the pinned program. */
struct dp_tc_config {
	__u32 snat_port_min, snat_port_max; /* 0-0: no SNAT range */
	__u32 ct_tcp_syn, ct_tcp_established, ct_tcp_closing, ct_udp, ct_other; /* seconds; 0: default */
};
/* 0, or -errno when the pinned tc_lb or its .rodata cannot be read (or is not this loader's layout) */
int dp_tc_config_read(struct dp_tc_config *c);
/* installed: bpffs mounted and an install record there; st: that record (0, or a recorded
 * "state-version" failure when the record is unreadable) */
int dp_status_open(struct dp_state *st, bool *installed);

/* One attached (or recorded) program, as status and metrics show it. */
struct dp_prog_row {
	const char *name;   /* the pin's name (links/<name>), or tc_lb */
	const char *type;   /* dp_prog_type_name(), NULL when the program is gone */
	const char *attach; /* "cgroup/<attach type> <cgroup>" or "tc/ingress <ifname>" */
	__u32 id, link_id;  /* link_id 0: not a link (tc) */
	bool attached;      /* read back from the kernel */
};
typedef void (*dp_prog_fn)(const struct dp_prog_row *r, void *ctx);
/* every program of the install: cgroup links (in pin directory order), then tc filters */
void dp_walk_programs(const struct dp_state *st, dp_prog_fn fn, void *ctx);

/* One pinned map of the install. */
struct dp_map_row {
	const char *name;
	struct bpf_map_info info;
	long long entries; /* arrays: max_entries; -1: unknown (ring buffer) */
	long long memlock; /* bytes charged, -1: unknown */
};
typedef void (*dp_map_fn)(const struct dp_map_row *r, void *ctx);
/* every pinned map of the install, in pin directory order */
void dp_walk_maps(dp_map_fn fn, void *ctx);

#endif /* PREP_NODE_DP_H */
