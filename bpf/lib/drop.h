/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Every drop goes through drop_record(): count it per reason and send an event on the ring buffer. */
#ifndef PREP_NODE_DROP_H
#define PREP_NODE_DROP_H

#include "common.h"
#include "maps.h"

/* Count ev->reason (packets, and len bytes) and emit *ev; ev carries everything but the time. */
static __always_inline void drop_record(struct drop_event *ev)
{
	__u32 reason = ev->reason;
	__u32 zero = 0;
	struct drop_counter *c;
	__u64 *lost;

	if (reason >= DROP_REASON_MAX)
		reason = 0; /* cannot happen with drop_reasons.h; keeps the verifier's bounds simple */
	c = bpf_map_lookup_elem(&drop_counters, &reason);
	if (c) {
		c->packets++; /* per-CPU slot: no atomics needed */
		c->bytes += ev->len;
	}
	ev->ts_ns = bpf_ktime_get_ns();
	if (bpf_ringbuf_output(&events, ev, sizeof(*ev), 0)) {
		lost = bpf_map_lookup_elem(&events_lost, &zero);
		if (lost)
			(*lost)++;
	}
}

#endif /* PREP_NODE_DROP_H */
