// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * features: what this kernel does, probed rather than guessed from its version (an EL kernel with
 * backports says 4.18 and has half of 5.x). Every probe asks the kernel itself: a tiny program or
 * map is loaded and freed at once; the tc probe attaches in a network namespace of a child process
 * that dies with it. Nothing is pinned or left behind. One JSON document:
 *   {"kernel", "prog_types": {...}, "attach": {...}, "helpers": {...}, "maps": {...},
 *    "batch_ops", "btf", "modules": {"sch_ingress": {"present": "builtin|loaded|module|missing|unknown",
 *    "works": bool}, "cls_bpf": {...}},
 *    "no_backend_errno", "missing": [...], "degraded": [...]}
 * "missing" lists what the datapath cannot do without (install refuses); "degraded" what it does
 * differently (a Service without backends gives EPERM instead of ECONNREFUSED without set_retval).
 * Needs root (CAP_BPF/CAP_SYS_ADMIN) like install; without it the probes fail with EPERM and the
 * command says so (exit 7) instead of reporting a kernel without BPF.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include "dp.h"

/* r0 = 1; exit: a program every hook accepts (sock_addr hooks want 1 = allow) */
static const struct bpf_insn ret1[] = {
	{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = 1 },
	{ .code = BPF_JMP | BPF_EXIT },
};

static bool denied;

/* 1 yes, 0 no; a refusal for want of privilege is remembered (the report would lie) */
static int verdict(int ret)
{
	if (ret == -EPERM || ret == -EACCES)
		denied = true;
	return ret == 1;
}

/* load a sock_addr program for one hook: the kernel rejects an attach type it does not know */
static int probe_attach(enum bpf_attach_type at)
{
	LIBBPF_OPTS(bpf_prog_load_opts, o, .expected_attach_type = at);
	int fd = bpf_prog_load(BPF_PROG_TYPE_CGROUP_SOCK_ADDR, NULL, "GPL", ret1, 2, &o);

	if (fd >= 0) {
		close(fd);
		return 1;
	}
	return -errno;
}

/* a hash map, then one batch update and one batch lookup (5.6) */
static int probe_batch(void)
{
	__u32 keys[2] = { 1, 2 }, vals[2] = { 3, 4 }, out_k[2], out_v[2], n = 2, batch;
	int fd = bpf_map_create(BPF_MAP_TYPE_HASH, NULL, sizeof(__u32), sizeof(__u32), 4, NULL);
	int ret = 1;

	if (fd < 0)
		return -errno;
	if (bpf_map_update_batch(fd, keys, vals, &n, NULL))
		ret = -errno;
	n = 2;
	if (ret == 1 && bpf_map_lookup_batch(fd, NULL, &batch, out_k, out_v, &n, NULL) && errno != ENOENT)
		ret = -errno;
	close(fd);
	return ret;
}

/* does `needle` start a line of file (modules.builtin, modules.dep: "kernel/net/sched/x.ko...") */
static bool file_has_module(const char *file, const char *needle)
{
	char line[1024];
	bool found = false;
	FILE *f = fopen(file, "re");

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		const char *slash = strrchr(strtok(line, ":\n") ?: "", '/');

		found = slash && !strncmp(slash + 1, needle, strlen(needle)) && slash[1 + strlen(needle)] == '.';
	}
	fclose(f);
	return found;
}

/* How a module is present, read before the tc probe (which makes the kernel load it): built in,
 * loaded, on disk, or "unknown" (no modules.builtin/modules.dep: a kernel without module files) */
static const char *module_state(const char *rel, const char *name)
{
	char path[512], line[256];
	bool loaded = false;
	FILE *f;

	snprintf(path, sizeof(path), "/lib/modules/%s/modules.builtin", rel);
	if (file_has_module(path, name))
		return "builtin";
	f = fopen("/proc/modules", "re");
	while (f && !loaded && fgets(line, sizeof(line), f))
		loaded = !strncmp(line, name, strlen(name)) && line[strlen(name)] == ' ';
	if (f)
		fclose(f);
	if (loaded)
		return "loaded";
	snprintf(path, sizeof(path), "/lib/modules/%s/modules.dep", rel);
	if (file_has_module(path, name))
		return "module";
	return access(path, R_OK) ? "unknown" : "missing";
}

/* What tc does: in a private network namespace of a child process (gone when it exits), a clsact
 * qdisc on lo (sch_ingress) and a BPF filter in it (cls_bpf); the kernel loads either module on
 * request. Exit status: bit 0 clsact failed, bit 1 cls_bpf failed, 4 no namespace. */
static int probe_tc(void)
{
	pid_t pid = fork();
	int status;

	if (pid < 0)
		return -errno;
	if (pid == 0) {
		DECLARE_LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = 1, .attach_point = BPF_TC_INGRESS);
		DECLARE_LIBBPF_OPTS(bpf_tc_opts, opts, .handle = 1, .priority = 1);
		int fd;

		if (unshare(CLONE_NEWNET))
			_exit(4);
		if (bpf_tc_hook_create(&hook))
			_exit(3);
		fd = bpf_prog_load(BPF_PROG_TYPE_SCHED_CLS, NULL, "GPL", ret1, 2, NULL);
		opts.prog_fd = fd;
		_exit(fd < 0 || bpf_tc_attach(&hook, &opts) ? 2 : 0);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 4;
}

int cmd_features(int argc, char **argv __attribute__((unused)))
{
	static const struct { const char *name; enum bpf_prog_type type; bool need; } progs[] = {
		{ "sched_cls", BPF_PROG_TYPE_SCHED_CLS, true },
		{ "cgroup_sock_addr", BPF_PROG_TYPE_CGROUP_SOCK_ADDR, true },
	};
	static const struct { const char *name; enum bpf_attach_type type; bool need; } hooks[] = {
		{ "connect4", BPF_CGROUP_INET4_CONNECT, true },   /* 4.17 */
		{ "sendmsg4", BPF_CGROUP_UDP4_SENDMSG, true },    /* 4.18 */
		{ "recvmsg4", BPF_CGROUP_UDP4_RECVMSG, true },    /* 5.2 */
		{ "getpeername4", BPF_CGROUP_INET4_GETPEERNAME, true }, /* 5.8 */
		{ "connect6", BPF_CGROUP_INET6_CONNECT, false },
		{ "sendmsg6", BPF_CGROUP_UDP6_SENDMSG, false },
		{ "recvmsg6", BPF_CGROUP_UDP6_RECVMSG, false },
		{ "getpeername6", BPF_CGROUP_INET6_GETPEERNAME, false },
	};
	static const struct { const char *name; enum bpf_prog_type prog; enum bpf_func_id id; bool need; } helpers[] = {
		{ "sock_addr/get_socket_cookie", BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_FUNC_get_socket_cookie, true },
		{ "sock_addr/get_netns_cookie", BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_FUNC_get_netns_cookie, true },
		{ "sock_addr/ringbuf_reserve", BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_FUNC_ringbuf_reserve, true },
		{ "sock_addr/set_retval", BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_FUNC_set_retval, false }, /* 5.18 */
		{ "sched_cls/ringbuf_reserve", BPF_PROG_TYPE_SCHED_CLS, BPF_FUNC_ringbuf_reserve, true },
		{ "sched_cls/skb_store_bytes", BPF_PROG_TYPE_SCHED_CLS, BPF_FUNC_skb_store_bytes, true },
		{ "sched_cls/l3_csum_replace", BPF_PROG_TYPE_SCHED_CLS, BPF_FUNC_l3_csum_replace, true },
		{ "sched_cls/l4_csum_replace", BPF_PROG_TYPE_SCHED_CLS, BPF_FUNC_l4_csum_replace, true },
		{ "sched_cls/ktime_get_coarse_ns", BPF_PROG_TYPE_SCHED_CLS, BPF_FUNC_ktime_get_coarse_ns, false }, /* 5.11 */
	};
	static const struct { const char *name; enum bpf_map_type type; bool need; } maps[] = {
		{ "hash", BPF_MAP_TYPE_HASH, true },           { "array", BPF_MAP_TYPE_ARRAY, true },
		{ "percpu_hash", BPF_MAP_TYPE_PERCPU_HASH, true }, { "percpu_array", BPF_MAP_TYPE_PERCPU_ARRAY, true },
		{ "lru_hash", BPF_MAP_TYPE_LRU_HASH, true },   { "lpm_trie", BPF_MAP_TYPE_LPM_TRIE, true },
		{ "ringbuf", BPF_MAP_TYPE_RINGBUF, true },
	};
	static const char *mods[] = { "sch_ingress", "cls_bpf" };
	const char *missing[64], *degraded[16], *how[2];
	int nmissing = 0, ndegraded = 0, ok, ret, tc;
	bool set_retval = false;
	struct utsname u;
	struct jw w = {};
	size_t i;

	if (argc != 1)
		return dp_fail(DP_EXIT_USAGE, "usage", "features takes no arguments");
	uname(&u);
	jw_open(&w, NULL);
	jw_str(&w, "kernel", u.release);

	jw_open(&w, "prog_types");
	for (i = 0; i < sizeof(progs) / sizeof(progs[0]); i++) {
		ok = verdict(libbpf_probe_bpf_prog_type(progs[i].type, NULL));
		jw_bool(&w, progs[i].name, ok);
		if (!ok && progs[i].need)
			missing[nmissing++] = progs[i].name;
	}
	jw_close_obj(&w);

	jw_open(&w, "attach");
	for (i = 0; i < sizeof(hooks) / sizeof(hooks[0]); i++) {
		ok = verdict(probe_attach(hooks[i].type));
		jw_bool(&w, hooks[i].name, ok);
		if (!ok && hooks[i].need)
			missing[nmissing++] = hooks[i].name;
	}
	jw_close_obj(&w);

	jw_open(&w, "helpers");
	for (i = 0; i < sizeof(helpers) / sizeof(helpers[0]); i++) {
		ok = verdict(libbpf_probe_bpf_helper(helpers[i].prog, helpers[i].id, NULL));
		jw_bool(&w, helpers[i].name, ok);
		if (!ok && helpers[i].need)
			missing[nmissing++] = helpers[i].name;
		if (helpers[i].id == BPF_FUNC_set_retval)
			set_retval = ok;
	}
	jw_close_obj(&w);

	jw_open(&w, "maps");
	for (i = 0; i < sizeof(maps) / sizeof(maps[0]); i++) {
		ok = verdict(libbpf_probe_bpf_map_type(maps[i].type, NULL));
		jw_bool(&w, maps[i].name, ok);
		if (!ok && maps[i].need)
			missing[nmissing++] = maps[i].name;
	}
	jw_close_obj(&w);

	/* prep-node writes a sync in one batch when it can, entry by entry otherwise */
	ret = verdict(probe_batch());
	jw_bool(&w, "batch_ops", ret);
	if (!ret)
		degraded[ndegraded++] = "batch_ops: map writes go one entry per syscall";
	jw_bool(&w, "btf", access("/sys/kernel/btf/vmlinux", R_OK) == 0);

	for (i = 0; i < sizeof(mods) / sizeof(mods[0]); i++)
		how[i] = module_state(u.release, mods[i]);
	tc = probe_tc();
	jw_open(&w, "modules");
	for (i = 0; i < sizeof(mods) / sizeof(mods[0]); i++) {
		/* clsact failing means no filter could be tried: cls_bpf counts as not working then */
		ok = tc >= 0 && tc != 4 && !(tc & (1 << i)) && !(i == 1 && tc == 3);
		jw_open(&w, mods[i]);
		jw_str(&w, "present", how[i]);
		jw_bool(&w, "works", ok);
		jw_close_obj(&w);
		if (!ok)
			missing[nmissing++] = mods[i];
	}
	jw_close_obj(&w);

	jw_str(&w, "no_backend_errno", set_retval ? "ECONNREFUSED" : "EPERM");
	if (!set_retval)
		degraded[ndegraded++] = "set_retval: a Service without backends fails connect() with EPERM, "
					"not ECONNREFUSED (needs 5.18)";
	jw_array(&w, "missing");
	for (ret = 0; ret < nmissing; ret++)
		jw_str(&w, NULL, missing[ret]);
	jw_close_arr(&w);
	jw_array(&w, "degraded");
	for (ret = 0; ret < ndegraded; ret++)
		jw_str(&w, NULL, degraded[ret]);
	jw_close_arr(&w);
	jw_close_obj(&w);

	if (denied) {
		jw_free(&w);
		return dp_fail(DP_EXIT_ENV, "not-permitted",
			       "the kernel refused the BPF probes: run as root (CAP_BPF + CAP_NET_ADMIN + CAP_SYS_ADMIN)");
	}
	jw_print(&w);
	return 0;
}
