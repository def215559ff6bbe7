// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Where an install lives and how it goes away. Layout under <bpffs>/prep-node/:
 *   state            the install record (struct dp_state), a one-entry array map
 *   maps/<name>      every datapath map (services, backends, ...)
 *   progs/<name>     every program (tc_lb is attached from here to new devices later)
 *   links/<name>     the cgroup links of the sock programs: pinned so they outlive the loader
 * An install is built under <bpffs>/prep-node-new-<pid>/ and renamed into place only when
 * everything is attached, so prep-node/ is always complete. dp_teardown() undoes either.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>
#include <linux/magic.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "dp.h"

const char *dp_bpffs = DP_BPFFS_DEFAULT;

const char *dp_pin_path(char *buf, size_t len, const char *sub)
{
	if (sub)
		snprintf(buf, len, "%s/%s/%s", dp_bpffs, DP_PIN_DIR, sub);
	else
		snprintf(buf, len, "%s/%s", dp_bpffs, DP_PIN_DIR);
	return buf;
}

bool dp_bpffs_mounted(void)
{
	struct statfs sfs;

	return statfs(dp_bpffs, &sfs) == 0 && sfs.f_type == BPF_FS_MAGIC;
}

int dp_check_bpffs(void)
{
	if (dp_bpffs_mounted())
		return 0;
	return dp_fail(DP_EXIT_ENV, "no-bpffs",
		       "no bpffs mounted at %s: mount it with `mount -t bpf bpf %s` and keep it across "
		       "reboots with the /etc/fstab line `bpffs %s bpf defaults 0 0`",
		       dp_bpffs, dp_bpffs, dp_bpffs);
}

bool dp_installed(void)
{
	char path[512];

	return access(dp_pin_path(path, sizeof(path), "state"), F_OK) == 0;
}

int dp_netns_id(__u64 *ino, __u64 *dev)
{
	struct stat s;

	if (stat("/proc/self/ns/net", &s))
		return -errno;
	*ino = s.st_ino;
	*dev = s.st_dev;
	return 0;
}

int dp_state_read(const char *dir, struct dp_state *st)
{
	char path[512];
	__u32 zero = 0;
	int fd, err = 0;

	memset(st, 0, sizeof(*st));
	snprintf(path, sizeof(path), "%s/state", dir);
	fd = bpf_obj_get(path);
	if (fd < 0)
		return -errno;
	if (bpf_map_lookup_elem(fd, &zero, st))
		err = -errno;
	else if (st->magic != DP_STATE_MAGIC || st->version != DP_STATE_VERSION)
		err = -EPROTO; /* written by another loader version: its layout is unknown */
	close(fd);
	return err;
}

int dp_state_write(int fd, const struct dp_state *st)
{
	__u32 zero = 0;

	return bpf_map_update_elem(fd, &zero, st, BPF_ANY) ? -errno : 0;
}

int dp_state_create(const char *dir, const struct dp_state *st)
{
	char path[512];
	int fd, err;

	fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "pn_state", sizeof(__u32), sizeof(*st), 1, NULL);
	if (fd < 0)
		return dp_fail(DP_EXIT_LOAD, "load-failed", "creating the install record map: %s",
			       strerror(errno));
	snprintf(path, sizeof(path), "%s/state", dir);
	err = bpf_obj_pin(fd, path) ? -errno : dp_state_write(fd, st);
	if (err) {
		close(fd);
		return dp_fail(DP_EXIT_INTERNAL, "internal", "writing the install record %s: %s", path,
			       strerror(-err));
	}
	return fd;
}

int dp_map_open(const char *name)
{
	char path[512], sub[300];
	int fd;

	if (strchr(name, '/') || !*name || name[0] == '.')
		return -EINVAL;
	snprintf(sub, sizeof(sub), "maps/%s", name);
	fd = bpf_obj_get(dp_pin_path(path, sizeof(path), sub));
	return fd < 0 ? -errno : fd;
}

int dp_mkdir(const char *path)
{
	if (mkdir(path, 0700) && errno != EEXIST)
		return dp_fail(DP_EXIT_INTERNAL, "internal", "mkdir %s: %s", path, strerror(errno));
	return 0;
}

/* ---------------------------------------------------------------- teardown */

/* warnings of one teardown: a JSON array built aside, spliced into the output at the end */
static struct jw warnings;

static void warn(const char *fmt, const char *a, const char *b)
{
	char msg[600];

	snprintf(msg, sizeof(msg), fmt, a, b);
	fprintf(stderr, "prep-node-dp: %s\n", msg);
	if (warnings.len == 0)
		jw_array(&warnings, NULL);
	jw_str(&warnings, NULL, msg);
}

/* Our tc filter off one device, and the clsact qdisc if we created it. */
static void tc_teardown(const struct dp_tc_rec *r, struct jw *det)
{
	DECLARE_LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = (int)r->ifindex, .attach_point = BPF_TC_INGRESS);
	DECLARE_LIBBPF_OPTS(bpf_tc_opts, opts, .handle = DP_TC_HANDLE, .priority = DP_TC_PRIO);
	char name[IF_NAMESIZE] = "", what[64];
	int err;

	snprintf(what, sizeof(what), "tc/ingress %s", r->ifname);
	if (!if_indextoname(r->ifindex, name) || strcmp(name, r->ifname)) {
		/* device deleted (its filters went with it) or renamed/replaced: not ours to touch */
		warn("%s: device gone or renamed (now '%s'), nothing to detach", what, name);
		return;
	}
	err = bpf_tc_query(&hook, &opts);
	if (err == 0 && opts.prog_id == r->prog_id) {
		opts.prog_id = 0; /* detach wants only handle and priority */
		opts.flags = 0;
		opts.prog_fd = 0;
		err = bpf_tc_detach(&hook, &opts);
		if (err)
			warn("%s: detach failed: %s", what, strerror(-err));
		else if (det)
			jw_str(det, NULL, what);
	} else if (err == 0) {
		warn("%s: filter %s runs another program now, left alone", what, "1:1");
	} else if (r->attached) {
		warn("%s: our filter is gone already (%s)", what, strerror(-err));
	}
	if (r->hook_created) {
		/* INGRESS|EGRESS deletes the clsact qdisc itself (INGRESS alone would flush all filters) */
		hook.attach_point = BPF_TC_INGRESS | BPF_TC_EGRESS;
		err = bpf_tc_hook_destroy(&hook);
		if (err && err != -ENOENT && err != -EINVAL)
			warn("%s: deleting the clsact qdisc failed: %s", what, strerror(-err));
	}
}

/* Detach one pinned link (cgroup): BPF_LINK_DETACH works whoever else holds the link. */
static void link_teardown(const char *path, const char *cgroup, struct jw *det)
{
	struct bpf_link_info info = {};
	__u32 len = sizeof(info);
	char what[400];
	int fd = bpf_obj_get(path);

	if (fd < 0)
		return;
	bpf_obj_get_info_by_fd(fd, &info, &len);
	snprintf(what, sizeof(what), "cgroup/%s %s", dp_attach_type_name(info.cgroup.attach_type),
		 cgroup);
	if (bpf_link_detach(fd))
		warn("%s: detach failed: %s (unpinning releases it)", what, strerror(errno));
	else if (det)
		jw_str(det, NULL, what);
	close(fd);
}

/* Remove a pin directory tree; links under it are detached first by the caller. */
static int rm_tree(const char *dir, int *count)
{
	char path[1024];
	struct dirent *e;
	DIR *d = opendir(dir);
	int err = 0;

	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (e->d_type == DT_DIR) {
			if (rm_tree(path, count))
				err = -errno;
		} else if (unlink(path)) {
			err = -errno;
		} else {
			(*count)++;
		}
	}
	closedir(d);
	if (rmdir(dir) && !err)
		err = -errno;
	return err;
}

int dp_teardown(const char *dir, struct jw *w)
{
	struct dp_state st;
	char path[1024];
	__u64 ino = 0, dev = 0;
	struct dirent *e;
	int unpinned = 0, err;
	__u32 i;
	DIR *d;

	err = dp_state_read(dir, &st);
	if (err == -EPROTO)
		return dp_fail(DP_EXIT_ENV, "state-version",
			       "%s was installed by another prep-node-dp version: remove it with that version", dir);
	dp_netns_id(&ino, &dev);
	if (st.ntc && (st.netns_ino != ino || st.netns_dev != dev))
		return dp_fail(DP_EXIT_ENV, "wrong-netns",
			       "tc filters were attached from another network namespace (inode %llu, this is %llu): "
			       "run remove there (e.g. nsenter --net=/run/netns/NAME)",
			       (unsigned long long)st.netns_ino, (unsigned long long)ino);

	jw_free(&warnings);
	if (w)
		jw_array(w, "detached");
	for (i = 0; i < st.ntc && i < DP_MAX_TC; i++)
		tc_teardown(&st.tc[i], w);
	snprintf(path, sizeof(path), "%s/links", dir);
	d = opendir(path);
	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/links/%s", dir, e->d_name);
		link_teardown(path, st.cgroup[0] ? st.cgroup : "?", w);
	}
	if (d)
		closedir(d);
	if (w)
		jw_close_arr(w);
	err = rm_tree(dir, &unpinned);
	if (w) {
		jw_u64(w, "unpinned", unpinned);
		if (warnings.len) {
			jw_close_arr(&warnings);
			jw_raw(w, "warnings", warnings.buf);
		}
	}
	jw_free(&warnings);
	if (err)
		return dp_fail(DP_EXIT_INTERNAL, "internal", "removing %s: %s", dir, strerror(-err));
	return 0;
}

void dp_teardown_stale(void)
{
	static struct dp_state st;
	__u64 ino = 0, dev = 0;
	char path[1024];
	struct dirent *e;
	DIR *d = opendir(dp_bpffs);

	while (d && (e = readdir(d))) {
		if (strncmp(e->d_name, "prep-node-new-", 14))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dp_bpffs, e->d_name);
		/* a loader still running has its pid in the name: leave its work alone */
		if (kill((pid_t)atoi(e->d_name + 14), 0) == 0 && atoi(e->d_name + 14) != getpid())
			continue;
		/* its tc filters are reachable only from the namespace it ran in */
		if (dp_state_read(path, &st) == 0 && st.ntc && dp_netns_id(&ino, &dev) == 0 &&
		    (st.netns_ino != ino || st.netns_dev != dev))
			continue;
		fprintf(stderr, "prep-node-dp: removing %s left by an install that did not finish\n", path);
		dp_teardown(path, NULL);
	}
	if (d)
		closedir(d);
}

/* Events the ring buffer had no room for, summed over CPUs (0 when not installed). */
unsigned long long dp_events_lost(void)
{
	int ncpu = libbpf_num_possible_cpus(), fd = dp_map_open("events_lost"), i;
	unsigned long long sum = 0;
	__u32 zero = 0;
	__u64 *per;

	if (fd < 0 || ncpu <= 0)
		return 0;
	per = calloc((size_t)ncpu, sizeof(*per));
	if (per && bpf_map_lookup_elem(fd, &zero, per) == 0)
		for (i = 0; i < ncpu; i++)
			sum += per[i];
	free(per);
	close(fd);
	return sum;
}
