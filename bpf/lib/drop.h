/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Every drop goes through drop_record(): count it per reason and send an event on the ring buffer.
 * Forwarded flows go through flow_record() (one event per new flow, when cfg_flow_events) and
 * svc_count() (per-service packets, bytes and connections).
 */
#ifndef PREP_NODE_DROP_H
#define PREP_NODE_DROP_H

#include "common.h"
#include "maps.h"

/* knob: send an event per new forwarded flow (1, default) or drops only (0); set by the loader
 * (install --no-flow-events) before load. With 0 the event code is dead and removed by the verifier. */
const volatile __u8 cfg_flow_events = 1;

/* Timestamp and queue *ev; a full ring buffer counts in events_lost. saddr6/daddr6: NULL, or an
 * IPv6 flow's addresses: the record is then a struct drop_event6, built in the ring buffer's
 * memory (no stack). Inlined with NULL constants the IPv6 branch is removed. */
static __always_inline void event_send6(struct drop_event *ev, const __be32 *saddr6, const __be32 *daddr6)
{
	struct drop_event6 *r;
	__u32 zero = 0;
	__u64 *lost;

	ev->ts_ns = bpf_ktime_get_ns();
	if (saddr6 && daddr6) {
		r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
		if (r) {
			__builtin_memcpy(&r->ev, ev, sizeof(*ev));
			__builtin_memcpy(r->saddr6, saddr6, sizeof(r->saddr6));
			__builtin_memcpy(r->daddr6, daddr6, sizeof(r->daddr6));
			bpf_ringbuf_submit(r, 0);
			return;
		}
	} else if (!bpf_ringbuf_output(&events, ev, sizeof(*ev), 0)) {
		return;
	}
	lost = bpf_map_lookup_elem(&events_lost, &zero);
	if (lost)
		(*lost)++;
}

static __always_inline void event_send(struct drop_event *ev)
{
	event_send6(ev, NULL, NULL);
}

/* Count ev->reason (packets, and len bytes) and emit *ev; ev carries everything but the time (and,
 * for an IPv6 flow, its addresses: saddr6/daddr6, else NULL). */
static __always_inline void drop_record6(struct drop_event *ev, const __be32 *saddr6, const __be32 *daddr6)
{
	__u32 reason = ev->reason;
	struct drop_counter *c;

	if (reason >= DROP_REASON_MAX)
		reason = 0; /* cannot happen with drop_reasons.h; keeps the verifier's bounds simple */
	c = bpf_map_lookup_elem(&drop_counters, &reason);
	if (c) {
		c->packets++; /* per-CPU slot: no atomics needed */
		c->bytes += ev->len;
	}
	ev->verdict = EVENT_VERDICT_DROPPED;
	event_send6(ev, saddr6, daddr6);
}

static __always_inline void drop_record(struct drop_event *ev)
{
	drop_record6(ev, NULL, NULL);
}

/* A new forwarded flow: emit *ev as FORWARDED (reason 0) if flow events are on. */
static __always_inline void flow_record6(struct drop_event *ev, const __be32 *saddr6, const __be32 *daddr6)
{
	if (!cfg_flow_events)
		return;
	ev->reason = DROP_NONE;
	ev->verdict = EVENT_VERDICT_FORWARDED;
	event_send6(ev, saddr6, daddr6);
}

static __always_inline void flow_record(struct drop_event *ev)
{
	flow_record6(ev, NULL, NULL);
}

/* Add to the service's per-CPU counters; the first use of a service creates its entry (a full map
 * loses the counts of services beyond its capacity, nothing else). */
static __always_inline void svc_count(__u32 svc_id, __u64 packets, __u64 bytes, __u64 connections)
{
	struct svc_counter *c, init = {};

	if (!svc_id)
		return;
	c = bpf_map_lookup_elem(&svc_counters, &svc_id);
	if (c) {
		c->packets += packets; /* per-CPU value: no atomics needed */
		c->bytes += bytes;
		c->connections += connections;
		return;
	}
	init.packets = packets;
	init.bytes = bytes;
	init.connections = connections;
	/* the value lands in this CPU's slot, the others start at 0 */
	if (bpf_map_update_elem(&svc_counters, &svc_id, &init, BPF_NOEXIST) == 0)
		return;
	c = bpf_map_lookup_elem(&svc_counters, &svc_id); /* another CPU made it meanwhile */
	if (c) {
		c->packets += packets;
		c->bytes += bytes;
		c->connections += connections;
	}
}

#endif /* PREP_NODE_DROP_H */
