// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* remove: detach everything of the install, unpin it, remove <bpffs>/prep-node. Idempotent. */
#include <stdio.h>
#include "dp.h"

int cmd_remove(int argc, char **argv)
{
	struct jw w = {};
	char dir[512];

	(void)argv;
	if (argc > 1)
		return dp_fail(DP_EXIT_USAGE, "usage", "remove takes no arguments");
	if (!dp_bpffs_mounted()) {
		/* without a bpffs there are no pins, so nothing of ours can be installed */
		struct jw nw = {};

		jw_open(&nw, NULL);
		jw_bool(&nw, "removed", false);
		jw_str(&nw, "reason", "not installed");
		jw_close_obj(&nw);
		jw_print(&nw);
		return 0;
	}
	dp_teardown_stale();
	jw_open(&w, NULL);
	if (!dp_installed()) {
		jw_bool(&w, "removed", false);
		jw_str(&w, "reason", "not installed");
	} else {
		jw_bool(&w, "removed", true);
		if (dp_teardown(dp_pin_path(dir, sizeof(dir), NULL), &w)) {
			jw_free(&w);
			return -1;
		}
	}
	jw_close_obj(&w);
	jw_print(&w);
	return 0;
}
