// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * status: what is attached (read back from the kernel, not from memory), the maps with their fill
 * and memory, the per-reason drop counters, forwarded totals (svc_counters summed). Entries are
 * counted by walking the keys: O(entries) syscalls, fine for a status command (1M entries take well
 * under a second). The program and map walks are shared with `metrics` (metrics.c).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "dp.h"
#include "maps_user.h"

/* name: the pin's (the kernel keeps only 15 characters of a program name) */
static void prog_row(dp_prog_fn fn, void *ctx, const char *name, __u32 id, const char *attach,
		     __u32 link_id, bool attached)
{
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info);
	int fd = bpf_prog_get_fd_by_id(id);
	struct dp_prog_row r = { .name = name, .id = id, .attach = attach, .link_id = link_id,
				 .attached = attached };

	if (fd >= 0 && bpf_obj_get_info_by_fd(fd, &info, &len) == 0)
		r.type = dp_prog_type_name(info.type);
	fn(&r, ctx);
	if (fd >= 0)
		close(fd);
}

void dp_walk_programs(const struct dp_state *st, dp_prog_fn fn, void *ctx)
{
	DECLARE_LIBBPF_OPTS(bpf_tc_hook, hook, .attach_point = BPF_TC_INGRESS);
	char path[1024], attach[400], name[IF_NAMESIZE];
	struct dirent *e;
	DIR *d;
	__u32 i;

	d = opendir(dp_pin_path(path, sizeof(path), "links"));
	while (d && (e = readdir(d))) {
		struct bpf_link_info info = {};
		__u32 len = sizeof(info);
		int fd;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s/links/%s", dp_bpffs, DP_PIN_DIR, e->d_name);
		fd = bpf_obj_get(path);
		if (fd < 0 || bpf_obj_get_info_by_fd(fd, &info, &len)) {
			if (fd >= 0)
				close(fd);
			continue;
		}
		snprintf(attach, sizeof(attach), "cgroup/%s %s", dp_attach_type_name(info.cgroup.attach_type),
			 st->cgroup);
		/* a detached link keeps its program but has no cgroup any more */
		prog_row(fn, ctx, e->d_name, info.prog_id, attach, info.id, info.cgroup.cgroup_id != 0);
		close(fd);
	}
	if (d)
		closedir(d);
	for (i = 0; i < st->ntc && i < DP_MAX_TC; i++) {
		DECLARE_LIBBPF_OPTS(bpf_tc_opts, opts, .handle = DP_TC_HANDLE, .priority = DP_TC_PRIO);
		const struct dp_tc_rec *r = &st->tc[i];
		bool here = if_indextoname(r->ifindex, name) && !strcmp(name, r->ifname);

		hook.ifindex = (int)r->ifindex;
		snprintf(attach, sizeof(attach), "tc/ingress %s", r->ifname);
		prog_row(fn, ctx, "tc_lb", r->prog_id, attach, 0,
			 here && bpf_tc_query(&hook, &opts) == 0 && opts.prog_id == r->prog_id);
	}
}

static void prog_json(const struct dp_prog_row *r, void *ctx)
{
	struct jw *w = ctx;

	jw_open(w, NULL);
	jw_str(w, "name", r->name);
	jw_str(w, "type", r->type);
	jw_str(w, "attach", r->attach);
	jw_u64(w, "id", r->id);
	if (r->link_id)
		jw_u64(w, "link_id", r->link_id);
	jw_bool(w, "attached", r->attached);
	jw_close_obj(w);
}

/* "memlock:" of the map's fdinfo: what the kernel charges for it */
static long long memlock(int fd)
{
	char path[64], line[256];
	long long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = fopen(path, "r");
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "memlock: %lld", &v) == 1)
			break;
	if (f)
		fclose(f);
	return v;
}

static long long count_entries(int fd, const struct bpf_map_info *info)
{
	char key[512], next[512];
	long long n = 0;
	void *prev = NULL;

	if (info->type == BPF_MAP_TYPE_ARRAY || info->type == BPF_MAP_TYPE_PERCPU_ARRAY)
		return info->max_entries;
	if (info->type == BPF_MAP_TYPE_RINGBUF || info->key_size > sizeof(key))
		return -1;
	while (bpf_map_get_next_key(fd, prev, next) == 0) {
		n++;
		memcpy(key, next, info->key_size);
		prev = key;
	}
	return n;
}

void dp_walk_maps(dp_map_fn fn, void *ctx)
{
	char path[1024];
	struct dirent *e;
	DIR *d;

	d = opendir(dp_pin_path(path, sizeof(path), "maps"));
	while (d && (e = readdir(d))) {
		struct dp_map_row r = { .name = e->d_name };
		__u32 len = sizeof(r.info);
		int fd;

		if (e->d_name[0] == '.')
			continue;
		fd = dp_map_open(e->d_name);
		if (fd < 0 || bpf_obj_get_info_by_fd(fd, &r.info, &len)) {
			if (fd >= 0)
				close(fd);
			continue;
		}
		r.entries = count_entries(fd, &r.info);
		r.memlock = memlock(fd);
		fn(&r, ctx);
		close(fd);
	}
	if (d)
		closedir(d);
}

static void map_json(const struct dp_map_row *r, void *ctx)
{
	struct jw *w = ctx;

	jw_open(w, NULL);
	jw_str(w, "name", r->name);
	jw_str(w, "type", dp_map_type_name(r->info.type));
	jw_u64(w, "max_entries", r->info.max_entries);
	/* left out when unknown (the ring buffer has no entries), never null */
	if (r->entries >= 0)
		jw_i64(w, "entries", r->entries);
	if (r->memlock >= 0)
		jw_i64(w, "memlock_bytes", r->memlock);
	jw_u64(w, "key_size", r->info.key_size);
	jw_u64(w, "value_size", r->info.value_size);
	jw_u64(w, "id", r->info.id);
	jw_close_obj(w);
}

/* drops: every reason of drop_reasons.h by name, packets summed over CPUs */
static void drops(struct jw *w)
{
	struct drop_counter c;
	int fd = dp_map_open("drop_counters");

	jw_open(w, "drops");
#define DROP_REASON(num, name, desc) \
	jw_u64(w, #name, fd >= 0 && dp_drop_count(fd, num, &c) == 0 ? c.packets : 0);
#include "drop_reasons.h"
#undef DROP_REASON
	jw_close_obj(w);
	if (fd >= 0)
		close(fd);
}

/* forwarded: svc_counters summed over services and CPUs (per service: `dump svc_counters`) */
static void forwarded(struct jw *w)
{
	int ncpu = libbpf_num_possible_cpus(), fd = dp_map_open("svc_counters"), i;
	unsigned long long n = 0, pk = 0, by = 0, co = 0;
	struct svc_counter *per = NULL;
	__u32 key, *prev = NULL;

	if (fd >= 0 && ncpu > 0)
		per = calloc((size_t)ncpu, sizeof(*per));
	while (per && bpf_map_get_next_key(fd, prev, &key) == 0) {
		static __u32 last;

		if (bpf_map_lookup_elem(fd, &key, per) == 0) {
			n++;
			for (i = 0; i < ncpu; i++) {
				pk += per[i].packets;
				by += per[i].bytes;
				co += per[i].connections;
			}
		}
		last = key;
		prev = &last;
	}
	free(per);
	if (fd >= 0)
		close(fd);
	jw_open(w, "forwarded");
	jw_u64(w, "services", n);
	jw_u64(w, "packets", pk);
	jw_u64(w, "bytes", by);
	jw_u64(w, "connections", co);
	jw_close_obj(w);
}

/* the SNAT port range and the conntrack lifetimes tc_lb was loaded with (left out if unreadable) */
static void tc_config(struct jw *w)
{
	struct dp_tc_config c;

	if (dp_tc_config_read(&c))
		return;
	jw_u64(w, "snat_port_min", c.snat_port_min);
	jw_u64(w, "snat_port_max", c.snat_port_max);
	jw_open(w, "ct_timeouts");
	jw_u64(w, "tcp-syn", c.ct_tcp_syn);
	jw_u64(w, "tcp-established", c.ct_tcp_established);
	jw_u64(w, "tcp-closing", c.ct_tcp_closing);
	jw_u64(w, "udp", c.ct_udp);
	jw_u64(w, "other", c.ct_other);
	jw_close_obj(w);
}

int dp_status_open(struct dp_state *st, bool *installed)
{
	char dir[512];

	*installed = dp_bpffs_mounted() && dp_installed();
	if (*installed && dp_state_read(dp_pin_path(dir, sizeof(dir), NULL), st))
		return dp_fail(DP_EXIT_ENV, "state-version",
			       "the install record under %s is unreadable (another prep-node-dp version?)", dir);
	return 0;
}

int dp_status_members(struct jw *w)
{
	static struct dp_state st;
	struct utsname u;
	char dir[512];
	bool installed;
	__u32 i;

	uname(&u);
	if (dp_status_open(&st, &installed))
		return -1;
	dp_pin_path(dir, sizeof(dir), NULL);
	jw_bool(w, "installed", installed);
	jw_str(w, "kernel", u.release);
	if (!installed) {
		jw_array(w, "programs");
		jw_close_arr(w);
		jw_array(w, "maps");
		jw_close_arr(w);
		jw_open(w, "drops");
		jw_close_obj(w);
		/* what an install would get on this kernel */
		jw_bool(w, "set_retval",
			libbpf_probe_bpf_helper(BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_FUNC_set_retval, NULL) == 1);
		jw_bool(w, "bpffs", dp_bpffs_mounted());
		return 0;
	}
	jw_array(w, "programs");
	dp_walk_programs(&st, prog_json, w);
	jw_close_arr(w);
	jw_array(w, "maps");
	dp_walk_maps(map_json, w);
	jw_close_arr(w);
	drops(w);
	forwarded(w);
	jw_u64(w, "events_lost", dp_events_lost());
	jw_bool(w, "set_retval", st.set_retval);
	jw_str(w, "cgroup", st.cgroup);
	jw_array(w, "tc_devs");
	for (i = 0; i < st.ntc && i < DP_MAX_TC; i++)
		jw_str(w, NULL, st.tc[i].ifname);
	jw_close_arr(w);
	jw_u64(w, "installed_at", st.installed_at);
	jw_str(w, "pin_dir", dir);
	tc_config(w);
	return 0;
}

int cmd_status(int argc, char **argv)
{
	struct jw w = {};

	(void)argv;
	if (argc > 1)
		return dp_fail(DP_EXIT_USAGE, "usage", "status takes no arguments");
	jw_open(&w, NULL);
	if (dp_status_members(&w)) {
		jw_free(&w);
		return -1;
	}
	jw_close_obj(&w);
	jw_print(&w);
	return 0;
}
