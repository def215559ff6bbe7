// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Packet tables for tc_lb, run through the real verifier and JIT with BPF_PROG_TEST_RUN (katran's
 * fixtures are the model): each case is {description, input packet, expected verdict, expected
 * output packet, expected drop reason}. Expected outputs are built from scratch with fresh
 * checksums, so they check the program's incremental checksum updates. A drop case also checks that
 * its reason's counter went up by one and that one event with that reason reached the ring buffer;
 * a pass case checks that no event was sent. Output: TAP, one line per case. Needs root.
 */
#define _GNU_SOURCE /* unshare() */
#include <arpa/inet.h>
#include <errno.h>
#include <sched.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/pkt_cls.h>
#include "tc_lb.skel.h"
#include "maps_user.h"
#include "lb_hash.h"
#include "pkt.h"
#include "tap.h"

#define CLIENT "192.0.2.10"
#define CLIENT2 "192.0.2.11"
#define VIP "10.96.0.10"
#define BE1 "10.0.1.5"
#define BE2 "10.0.1.6"

#define PASS TC_ACT_OK
#define SNAT6_PORT_MIN 61000
#define SNAT6_PORT_MAX 61007
#define DROP TC_ACT_SHOT

/* fragment mode of a case: the input (and expected output) is a fragment of the built datagram */
#define FRAG_FIRST 1 /* IP payload bytes 0..FRAG_SPLIT-1, MF set */
#define FRAG_LATER 2 /* the rest, offset FRAG_SPLIT */
#define FRAG_SPLIT 64

struct tcase {
	const char *desc;
	struct pkt_spec in;
	void (*mutate)(uint8_t *frame, size_t *len); /* deliberate damage to the input */
	int verdict;
	const struct pkt_spec *out; /* expected output; NULL = the input, unchanged */
	uint32_t reason;            /* expected drop reason, 0 = none */
	int frag;                   /* FRAG_FIRST / FRAG_LATER / 0 */
	int flags;                  /* CASE_* */
	uint32_t rule_id;           /* policy deny (or CASE_FWD allow): the rule id the event must name */
	int fwd;                    /* CASE_FWD: forwarded events expected (0 or 1) */
	uint32_t svc;               /* CASE_FWD: service whose counter must go up by one packet, 0 none */
};

/* apply mutate to the expected output as well (same edit on both sides) */
#define CASE_MUTATE_OUT 1
/* the kernel's test_run may refuse this input (EINVAL): then the case is a TAP skip, not a pass */
#define CASE_MAY_EINVAL 2
/* check forwarded events (fwd) and the service counter (svc); other cases ignore forwarded events */
#define CASE_FWD 4

static struct tc_lb_bpf *skel;
static struct ring_buffer *rb;
static struct drop_event last_event, last_fwd;
/* the last drop's record as sent: size, and its IPv6 addresses when it was a struct drop_event6 */
static struct drop_event6 last_event6;
static size_t last_event_len;
static int events_seen, fwd_seen;

static __be32 ip4(const char *s)
{
	struct in_addr a;

	inet_pton(AF_INET, s, &a);
	return a.s_addr;
}

static int on_event(void *ctx, void *data, size_t len)
{
	const struct drop_event *e = data;

	(void)ctx;
	if (len < sizeof(last_event))
		return 0;
	if (e->verdict == EVENT_VERDICT_FORWARDED) {
		memcpy(&last_fwd, data, sizeof(last_fwd));
		fwd_seen++;
		return 0;
	}
	memcpy(&last_event, data, sizeof(last_event));
	memset(&last_event6, 0, sizeof(last_event6));
	memcpy(&last_event6, data, len < sizeof(last_event6) ? len : sizeof(last_event6));
	last_event_len = len;
	events_seen++;
	return 0;
}

static int maps_fd(const struct bpf_map *m)
{
	return bpf_map__fd(m);
}

/* empty every map the cases write (counters are checked as deltas and stay) */
static void reset_maps(void)
{
	const struct bpf_map *maps[] = { skel->maps.services, skel->maps.backends, skel->maps.maglev,
					 skel->maps.affinity, skel->maps.conntrack, skel->maps.frags,
					 skel->maps.endpoints, skel->maps.ipcache, skel->maps.policy,
					 skel->maps.endpoints6, skel->maps.ipcache6, skel->maps.conntrack6,
					 skel->maps.services6, skel->maps.backends6, skel->maps.affinity6 };
	size_t i;

	for (i = 0; i < sizeof(maps) / sizeof(maps[0]); i++)
		if (dp_map_clear(maps_fd(maps[i])))
			fprintf(stderr, "# clearing %s failed\n", bpf_map__name(maps[i]));
}

static uint64_t drops(uint32_t reason)
{
	struct drop_counter c = {};

	dp_drop_count(maps_fd(skel->maps.drop_counters), reason, &c);
	return c.packets;
}

/* svc_counters[svc_id] summed over CPUs (zeros when the service has no entry yet) */
static struct svc_counter svc_counted(uint32_t svc_id)
{
	int ncpu = libbpf_num_possible_cpus(), i;
	struct svc_counter sum = {}, *per = calloc((size_t)ncpu, sizeof(*per));

	if (per && bpf_map_lookup_elem(maps_fd(skel->maps.svc_counters), &svc_id, per) == 0)
		for (i = 0; i < ncpu; i++) {
			sum.packets += per[i].packets;
			sum.bytes += per[i].bytes;
			sum.connections += per[i].connections;
		}
	free(per);
	return sum;
}

/* run one frame through tc_lb; returns the verdict, output in out/out_len */
static int run(const uint8_t *in, size_t in_len, uint8_t *out, size_t *out_len)
{
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = in, .data_size_in = (__u32)in_len,
		    .data_out = out, .data_size_out = PKT_MAX, .repeat = 1);
	int err = bpf_prog_test_run_opts(bpf_program__fd(skel->progs.tc_lb), &opts);

	if (err) {
		tap_fail("BPF_PROG_TEST_RUN: %s", strerror(errno));
		return -1;
	}
	*out_len = opts.data_size_out;
	return (int)opts.retval;
}

static size_t frame_of(const struct pkt_spec *s, int frag, uint8_t *buf)
{
	uint8_t full[PKT_MAX];
	size_t len = pkt_build(s, full);

	if (frag == FRAG_FIRST)
		return pkt_fragment(full, len, 0, FRAG_SPLIT, true, buf);
	if (frag == FRAG_LATER)
		return pkt_fragment(full, len, FRAG_SPLIT, PKT_MAX, false, buf);
	memcpy(buf, full, len);
	return len;
}

static void run_case(const struct tcase *c)
{
	uint8_t in[PKT_MAX], want[PKT_MAX], got[PKT_MAX];
	size_t in_len, want_len, got_len = 0;
	uint64_t before = c->reason ? drops(c->reason) : 0;
	struct svc_counter svc_before = svc_counted(c->svc), svc_after;
	int verdict;

	in_len = frame_of(&c->in, c->frag, in);
	if (c->mutate)
		c->mutate(in, &in_len);
	if (c->out) {
		want_len = frame_of(c->out, c->frag, want);
		if (c->mutate && (c->flags & CASE_MUTATE_OUT))
			c->mutate(want, &want_len);
	} else {
		memcpy(want, in, want_len = in_len);
	}

	ring_buffer__consume(rb); /* nothing stale */
	events_seen = 0;
	fwd_seen = 0;
	verdict = run(in, in_len, got, &got_len);
	ring_buffer__consume(rb);
	if (verdict < 0 && errno == EINVAL && (c->flags & CASE_MAY_EINVAL)) {
		tap_why[0] = 0;
		tap_skip(c->desc, "this kernel's BPF_PROG_TEST_RUN refuses the frame (EINVAL): "
				  "it wants a whole IPv4 header");
		return;
	}

	if (verdict >= 0 && verdict != c->verdict)
		tap_fail("verdict %d, expected %d (last drop event: %s)", verdict, c->verdict,
			 events_seen ? dp_drop_reason(last_event.reason) : "none");
	if (verdict == PASS && c->verdict == PASS &&
	    (got_len != want_len || memcmp(got, want, want_len)))
		tap_fail("output packet differs: %s", pkt_diff(got, got_len, want, want_len));
	if (c->reason) {
		uint64_t after = drops(c->reason);

		if (after != before + 1)
			tap_fail("drop counter of reason %u went %llu -> %llu, expected +1", c->reason,
				 (unsigned long long)before, (unsigned long long)after);
		if (events_seen != 1 || last_event.reason != c->reason)
			tap_fail("%d events, last reason %u; expected 1 event with reason %s", events_seen,
				 last_event.reason, dp_drop_reason(c->reason));
		if (c->rule_id && last_event.rule_id != c->rule_id)
			tap_fail("event names rule %u, expected %u", last_event.rule_id, c->rule_id);
		if (last_event.len != in_len || last_event.hook != HOOK_TC)
			tap_fail("event len %u hook %u, expected %zu and HOOK_TC", last_event.len,
				 last_event.hook, in_len);
	} else if (events_seen) {
		tap_fail("%d unexpected drop events (reason %u)", events_seen, last_event.reason);
	}
	if (c->flags & CASE_FWD) {
		if (fwd_seen != c->fwd)
			tap_fail("%d forwarded events, expected %d", fwd_seen, c->fwd);
		if (c->fwd && fwd_seen == 1 &&
		    (last_fwd.reason != 0 || last_fwd.hook != HOOK_TC || last_fwd.svc_id != c->svc ||
		     last_fwd.len != in_len || last_fwd.rule_id != c->rule_id))
			tap_fail("forwarded event: reason %u hook %u svc %u len %u rule %u; expected 0, HOOK_TC, "
				 "%u, %zu, %u", last_fwd.reason, last_fwd.hook, last_fwd.svc_id, last_fwd.len,
				 last_fwd.rule_id, c->svc, in_len, c->rule_id);
		if (c->fwd && c->out && fwd_seen == 1 &&
		    (last_fwd.daddr != ip4(c->out->dst) || last_fwd.dport != htons(c->out->dport)))
			tap_fail("forwarded event does not name the backend %s:%u", c->out->dst, c->out->dport);
		svc_after = svc_counted(c->svc);
		if (c->svc && (svc_after.packets != svc_before.packets + 1 ||
			       svc_after.bytes != svc_before.bytes + in_len))
			tap_fail("service %u counter went %llu/%llu -> %llu/%llu packets/bytes, expected +1/+%zu",
				 c->svc, (unsigned long long)svc_before.packets,
				 (unsigned long long)svc_before.bytes, (unsigned long long)svc_after.packets,
				 (unsigned long long)svc_after.bytes, in_len);
	}
	tap_result(c->desc);
}

static void run_table(const struct tcase *cases, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		run_case(&cases[i]);
}

#define TCP(s, sp, d, dp, ...) { .src = s, .sport = sp, .dst = d, .dport = dp, .proto = IPPROTO_TCP, .payload_len = 100, __VA_ARGS__ }
#define UDP(s, sp, d, dp, ...) { .src = s, .sport = sp, .dst = d, .dport = dp, .proto = IPPROTO_UDP, .payload_len = 100, __VA_ARGS__ }
#define SCTP(s, sp, d, dp, ...) { .src = s, .sport = sp, .dst = d, .dport = dp, .proto = IPPROTO_SCTP, .payload_len = 100, __VA_ARGS__ }
#define ICMP(s, d, t, c, ...) { .src = s, .dst = d, .proto = IPPROTO_ICMP, .icmp_type = t, .icmp_code = c, .icmp_id = 77, .payload_len = 56, __VA_ARGS__ }
#define OUT(...) (&(const struct pkt_spec)__VA_ARGS__)
#define N(a) (sizeof(a) / sizeof((a)[0]))

/* ---------------------------------------------------------------- load balancing */

#define SVC_TCP 1
#define SVC_UDP 2
#define SVC_EMPTY 3
#define SVC_HOLE 4
#define SVC_NOTABLE 5
#define SVC_MAGLEV 6
#define SVC_RANDOM 7
#define SVC_WEIGHTED 8
#define SVC_AFFINITY 9
#define SVC_SCTP 10

static void setup_lb(void)
{
	int s = maps_fd(skel->maps.services), b = maps_fd(skel->maps.backends);
	static __u16 table[LB_MAGLEV_M];
	int i, err = 0;

	err |= dp_service_set(s, ip4(VIP), htons(80), IPPROTO_TCP, SVC_TCP, 1, 0, 0);
	err |= dp_backend_set(b, SVC_TCP, 0, ip4(BE1), htons(8080), 101);
	err |= dp_service_set(s, ip4(VIP), htons(53), IPPROTO_UDP, SVC_UDP, 1, 0, 0);
	err |= dp_backend_set(b, SVC_UDP, 0, ip4(BE1), htons(5353), 101);
	err |= dp_service_set(s, ip4(VIP), htons(81), IPPROTO_TCP, SVC_EMPTY, 0, 0, 0);
	err |= dp_service_set(s, ip4(VIP), htons(82), IPPROTO_TCP, SVC_HOLE, 1, 0, 0);
	err |= dp_service_set(s, ip4(VIP), htons(83), IPPROTO_TCP, SVC_NOTABLE, 2, SVC_F_MAGLEV, 0);
	err |= dp_service_set(s, ip4(VIP), htons(84), IPPROTO_TCP, SVC_MAGLEV, 2, SVC_F_MAGLEV, 0);
	err |= dp_backend_set(b, SVC_MAGLEV, 0, ip4(BE1), htons(8080), 101);
	err |= dp_backend_set(b, SVC_MAGLEV, 1, ip4(BE2), htons(8080), 102);
	for (i = 0; i < LB_MAGLEV_M; i++)
		table[i] = (__u16)(i % 2);
	err |= dp_maglev_set(maps_fd(skel->maps.maglev), SVC_MAGLEV, table);
	err |= dp_service_set(s, ip4(VIP), htons(85), IPPROTO_TCP, SVC_RANDOM, 2, 0, 0);
	err |= dp_backend_set(b, SVC_RANDOM, 0, ip4(BE1), htons(8080), 101);
	err |= dp_backend_set(b, SVC_RANDOM, 1, ip4(BE2), htons(8080), 102);
	/* weight 3:1 as slots: BE1 in three of four */
	err |= dp_service_set(s, ip4(VIP), htons(86), IPPROTO_TCP, SVC_WEIGHTED, 4, 0, 0);
	for (i = 0; i < 3; i++)
		err |= dp_backend_set(b, SVC_WEIGHTED, i, ip4(BE1), htons(8080), 101);
	err |= dp_backend_set(b, SVC_WEIGHTED, 3, ip4(BE2), htons(8080), 102);
	/* SCTP: the backend listens on the service's port (addresses are translated, ports are not) */
	err |= dp_service_set(s, ip4(VIP), htons(3868), IPPROTO_SCTP, SVC_SCTP, 1, 0, 0);
	err |= dp_backend_set(b, SVC_SCTP, 0, ip4(BE1), htons(3868), 101);
	err |= dp_service_set(s, ip4(VIP), htons(87), IPPROTO_TCP, SVC_AFFINITY, 2, SVC_F_AFFINITY, 60);
	err |= dp_backend_set(b, SVC_AFFINITY, 0, ip4(BE1), htons(8080), 101);
	err |= dp_backend_set(b, SVC_AFFINITY, 1, ip4(BE2), htons(8080), 102);
	if (err)
		fprintf(stderr, "# setup_lb: a map write failed\n");
}

static void set_ihl_4(uint8_t *f, size_t *len)
{
	(void)len;
	f[PKT_IP_OFF] = 0x44;
	pkt_fix_ip_csum(f);
}

static const struct tcase lb_cases[] = {
	{ "TCP SYN to VIP:80 is DNATed to its backend 10.0.1.5:8080, IPv4 and TCP checksums updated",
	  TCP(CLIENT, 40000, VIP, 80), NULL, PASS, OUT(TCP(CLIENT, 40000, BE1, 8080)), 0, 0 },
	{ "a later packet of the same flow (ACK) follows the conntrack entry to the same backend",
	  TCP(CLIENT, 40000, VIP, 80, .tcp_flags = 0x10), NULL, PASS,
	  OUT(TCP(CLIENT, 40000, BE1, 8080, .tcp_flags = 0x10)), 0, 0 },
	{ "the backend's reply is reverse-NATed: source 10.0.1.5:8080 becomes VIP:80",
	  TCP(BE1, 8080, CLIENT, 40000, .tcp_flags = 0x12), NULL, PASS,
	  OUT(TCP(VIP, 80, CLIENT, 40000, .tcp_flags = 0x12)), 0, 0 },
	{ "UDP to VIP:53 is DNATed to 10.0.1.5:5353, UDP checksum updated",
	  UDP(CLIENT, 40001, VIP, 53), NULL, PASS, OUT(UDP(CLIENT, 40001, BE1, 5353)), 0, 0 },
	{ "UDP reply is reverse-NATed to VIP:53",
	  UDP(BE1, 5353, CLIENT, 40001), NULL, PASS, OUT(UDP(VIP, 53, CLIENT, 40001)), 0, 0 },
	{ "UDP without checksum (0) is DNATed and keeps checksum 0",
	  UDP(CLIENT, 40002, VIP, 53, .udp_zero_csum = true), NULL, PASS,
	  OUT(UDP(CLIENT, 40002, BE1, 5353, .udp_zero_csum = true)), 0, 0 },
	{ "IPv4 options (ihl 7): DNAT finds the TCP header after them",
	  TCP(CLIENT, 40003, VIP, 80, .ip_options = 2), NULL, PASS,
	  OUT(TCP(CLIENT, 40003, BE1, 8080, .ip_options = 2)), 0, 0 },
	{ "a service is VIP+port+protocol: UDP to the TCP-only VIP:80 passes untouched",
	  UDP(CLIENT, 40004, VIP, 80), NULL, PASS, NULL, 0, 0 },
	{ "traffic to an address that is no service passes untouched",
	  TCP(CLIENT, 40005, "10.96.0.11", 80), NULL, PASS, NULL, 0, 0 },
	{ "service without backends: dropped, NO_BACKEND counted and sent as an event",
	  TCP(CLIENT, 40006, VIP, 81), NULL, DROP, NULL, DROP_NO_BACKEND, 0 },
	{ "service whose slot has no backend entry: dropped as BACKEND_MISSING",
	  TCP(CLIENT, 40007, VIP, 82), NULL, DROP, NULL, DROP_BACKEND_MISSING, 0 },
	{ "Maglev service without its table: dropped as MAGLEV_MISSING",
	  TCP(CLIENT, 40008, VIP, 83), NULL, DROP, NULL, DROP_MAGLEV_MISSING, 0 },
	{ "first fragment of a UDP datagram to a VIP: addresses, port and UDP checksum rewritten",
	  UDP(CLIENT, 40009, VIP, 53, .ip_id = 4242, .payload_len = 200), NULL, PASS,
	  OUT(UDP(CLIENT, 40009, BE1, 5353, .ip_id = 4242, .payload_len = 200)), 0, FRAG_FIRST },
	{ "later fragment of that datagram: only the IPv4 destination and header checksum change",
	  UDP(CLIENT, 40009, VIP, 53, .ip_id = 4242, .payload_len = 200), NULL, PASS,
	  OUT(UDP(CLIENT, 40009, BE1, 5353, .ip_id = 4242, .payload_len = 200)), 0, FRAG_LATER },
	{ "later fragment whose first fragment was never seen: dropped as FRAG_NO_FIRST",
	  UDP(CLIENT, 40010, VIP, 53, .ip_id = 4343, .payload_len = 200), NULL, DROP, NULL,
	  DROP_FRAG_NO_FIRST, FRAG_LATER },
	{ "SCTP to VIP:3868 is DNATed to 10.0.1.5:3868: the address and IPv4 checksum change, the SCTP "
	  "CRC32c (no pseudo header) stays valid untouched",
	  SCTP(CLIENT, 40012, VIP, 3868), NULL, PASS, OUT(SCTP(CLIENT, 40012, BE1, 3868)), 0, 0 },
	{ "the SCTP backend's reply is reverse-NATed to VIP:3868",
	  SCTP(BE1, 3868, CLIENT, 40012), NULL, PASS, OUT(SCTP(VIP, 3868, CLIENT, 40012)), 0, 0 },
	{ "SCTP to a TCP-only VIP:80 passes untouched (a service is VIP+port+protocol)",
	  SCTP(CLIENT, 40013, VIP, 80), NULL, PASS, NULL, 0, 0 },
	{ "a malformed packet to a VIP is dropped before any service lookup (ihl 4: MALFORMED_IP)",
	  TCP(CLIENT, 40011, VIP, 81), set_ihl_4, DROP, NULL, DROP_MALFORMED_IP, 0 },
};

/* the backend a flow was DNATed to (0 if it was not) */
static __be32 dnat_backend(const char *client, uint16_t sport, uint16_t vport)
{
	struct pkt_spec s = TCP(client, sport, VIP, vport);
	uint8_t in[PKT_MAX], out[PKT_MAX];
	size_t in_len = pkt_build(&s, in), out_len;
	__be32 dst;

	if (run(in, in_len, out, &out_len) != PASS)
		return 0;
	memcpy(&dst, out + PKT_IP_OFF + 16, 4);
	return dst;
}

static void lb_selection_cases(void)
{
	int i, be1 = 0, be2 = 0, wrong = 0;
	__be32 first, got;

	/* Maglev: the slot is table[hash % M] with the shared hash; the table maps even entries to BE1 */
	for (i = 0; i < 64; i++) {
		uint16_t sport = (uint16_t)(41000 + i);
		__u32 h = lb_flow_hash(ip4(CLIENT), ip4(VIP), htons(sport), htons(84), IPPROTO_TCP);
		__be32 want = (h % LB_MAGLEV_M) % 2 ? ip4(BE2) : ip4(BE1);

		got = dnat_backend(CLIENT, sport, 84);
		if (got != want)
			wrong++;
		be1 += got == ip4(BE1);
	}
	if (wrong)
		tap_fail("%d of 64 flows not on the backend the Maglev table predicts", wrong);
	if (be1 == 0 || be1 == 64)
		tap_fail("all 64 flows on one backend");
	tap_result("Maglev: 64 flows each land on table[flow_hash % M], the hash userspace computes too");

	/* random: 64 new flows over 2 backends; all on one has probability 2^-63 */
	be1 = be2 = 0;
	for (i = 0; i < 64; i++) {
		got = dnat_backend(CLIENT, (uint16_t)(42000 + i), 85);
		be1 += got == ip4(BE1);
		be2 += got == ip4(BE2);
	}
	if (be1 + be2 != 64 || !be1 || !be2)
		tap_fail("BE1 %d, BE2 %d of 64", be1, be2);
	tap_result("random: 64 new flows over two backends use both");

	/* weights as slots 3:1 -> ~300 of 400 on BE1 (sd ~8.7; 240..360 is ~7 sd) */
	be1 = be2 = 0;
	for (i = 0; i < 400; i++) {
		got = dnat_backend(CLIENT, (uint16_t)(43000 + i), 86);
		be1 += got == ip4(BE1);
		be2 += got == ip4(BE2);
	}
	if (be1 + be2 != 400 || be1 < 240 || be1 > 360)
		tap_fail("BE1 %d, BE2 %d of 400, expected about 300:100", be1, be2);
	tap_result("weights: a backend in 3 of 4 slots gets about 3/4 of 400 flows");

	/* affinity: every new flow of one client goes where its first went */
	first = dnat_backend(CLIENT, 44000, 87);
	for (i = 1; i < 32; i++)
		if (dnat_backend(CLIENT, (uint16_t)(44000 + i), 87) != first)
			wrong = -1;
	if (!first || wrong < 0)
		tap_fail("a later flow of the client went to another backend");
	tap_result("session affinity: 32 new flows of one client all reach its first backend");

	/* affinity is per client: 32 other clients do not all share the first one's backend */
	be1 = 0;
	for (i = 0; i < 32; i++) {
		char c[32];

		snprintf(c, sizeof(c), "192.0.2.%d", 100 + i);
		be1 += dnat_backend(c, 44000, 87) == first;
	}
	if (be1 == 32)
		tap_fail("all 32 other clients got the same backend");
	tap_result("session affinity is per client: 32 other clients spread over the backends");
}

/* ---------------------------------------------------------------- ICMP errors of NATed flows */

#define ROUTER "10.0.2.1"      /* a router between the node and the backend */
#define ROUTER_C "192.0.2.1"   /* a router on the client's side */

/* run a packet through and expect PASS (for setting up a flow) */
static void flow_open(const struct pkt_spec *s)
{
	uint8_t in[PKT_MAX], out[PKT_MAX];
	size_t in_len = pkt_build(s, in), out_len;

	if (run(in, in_len, out, &out_len) != PASS)
		tap_fail("setting up the flow %s:%u -> %s:%u: not passed", s->src, s->sport, s->dst, s->dport);
}

struct icmp_case {
	const char *desc;
	const char *src, *dst, *want_src, *want_dst; /* outer addresses in and expected out */
	uint8_t type, code;
	struct pkt_spec quote, want_quote;           /* quoted packet in, and as it must come out */
	size_t quote_max;                            /* bytes of the quoted IPv4 packet */
};

static void icmp_case(const struct icmp_case *c)
{
	uint8_t q[PKT_MAX], wq[PKT_MAX], in[PKT_MAX], want[PKT_MAX], got[PKT_MAX];
	size_t q_len = pkt_build(&c->quote, q), wq_len = pkt_build(&c->want_quote, wq);
	size_t in_len = pkt_icmp_error(c->src, c->dst, c->type, c->code, 1280, q, q_len, c->quote_max, in);
	size_t want_len = pkt_icmp_error(c->want_src, c->want_dst, c->type, c->code, 1280, wq, wq_len,
					 c->quote_max, want);
	size_t got_len = 0;
	int verdict;

	ring_buffer__consume(rb);
	events_seen = 0;
	verdict = run(in, in_len, got, &got_len);
	ring_buffer__consume(rb);
	if (verdict != PASS)
		tap_fail("verdict %d, expected PASS (last drop event: %s)", verdict,
			 events_seen ? dp_drop_reason(last_event.reason) : "none");
	else if (got_len != want_len || memcmp(got, want, want_len))
		tap_fail("output packet differs: %s", pkt_diff(got, got_len, want, want_len));
	if (events_seen)
		tap_fail("%d unexpected drop events (reason %u)", events_seen, last_event.reason);
	tap_result(c->desc);
}

static void icmp_error_cases(void)
{
	static const struct icmp_case cases[] = {
		{ "fragmentation needed from a router about a DNATed TCP segment: the quote's backend "
		  "10.0.1.5:8080 becomes VIP:80, inner IPv4, TCP and ICMP checksums updated",
		  ROUTER, CLIENT, ROUTER, CLIENT, 3, 4,
		  TCP(CLIENT, 45000, BE1, 8080, .tcp_flags = 0x10, .payload_len = 1400),
		  TCP(CLIENT, 45000, VIP, 80, .tcp_flags = 0x10, .payload_len = 1400), 548 },
		{ "fragmentation needed quoting only 8 bytes of TCP (no checksum quoted): addresses and "
		  "port translated, ICMP checksum updated",
		  ROUTER, CLIENT, ROUTER, CLIENT, 3, 4,
		  TCP(CLIENT, 45000, BE1, 8080, .tcp_flags = 0x10, .payload_len = 1400),
		  TCP(CLIENT, 45000, VIP, 80, .tcp_flags = 0x10, .payload_len = 1400), 28 },
		{ "port unreachable sent by the UDP backend itself: outer source 10.0.1.5 becomes the VIP, "
		  "quote C -> 10.0.1.5:5353 becomes C -> VIP:53",
		  BE1, CLIENT, VIP, CLIENT, 3, 3,
		  UDP(CLIENT, 45001, BE1, 5353), UDP(CLIENT, 45001, VIP, 53), 548 },
		{ "port unreachable quoting a UDP datagram without checksum: the quoted checksum stays 0",
		  BE1, CLIENT, VIP, CLIENT, 3, 3,
		  UDP(CLIENT, 45002, BE1, 5353, .udp_zero_csum = true),
		  UDP(CLIENT, 45002, VIP, 53, .udp_zero_csum = true), 548 },
		{ "time exceeded on the client's side about a reverse-NATed reply VIP:80 -> C: sent to the "
		  "VIP, it reaches the backend as 10.0.1.5 quoting 10.0.1.5:8080 -> C",
		  ROUTER_C, VIP, ROUTER_C, BE1, 11, 0,
		  TCP(VIP, 80, CLIENT, 45000, .tcp_flags = 0x12, .payload_len = 100),
		  TCP(BE1, 8080, CLIENT, 45000, .tcp_flags = 0x12, .payload_len = 100), 548 },
		{ "an ICMP error quoting a flow conntrack does not know passes untouched",
		  ROUTER, CLIENT, ROUTER, CLIENT, 3, 4,
		  TCP(CLIENT, 45999, BE1, 8080, .tcp_flags = 0x10, .payload_len = 100),
		  TCP(CLIENT, 45999, BE1, 8080, .tcp_flags = 0x10, .payload_len = 100), 548 },
	};
	size_t i;

	flow_open(&(const struct pkt_spec)TCP(CLIENT, 45000, VIP, 80));
	flow_open(&(const struct pkt_spec)UDP(CLIENT, 45001, VIP, 53));
	flow_open(&(const struct pkt_spec)UDP(CLIENT, 45002, VIP, 53, .udp_zero_csum = true));
	for (i = 0; i < N(cases); i++)
		icmp_case(&cases[i]);
}

/* ICMP errors of SNATed flows (a NodePort to a remote backend): the node N is the VIP too */
#define NODE "10.0.0.2"
#define BE_R "10.0.3.7" /* a backend on another node */

/* Both conntrack entries of a SNATed flow C:cport -> N:vport, DNATed to BE_R:bport and SNATed to
 * N:sport, as snat_ct_create() writes them (without CT_F_FIB: the test checks the translation, and a
 * FIB lookup here would depend on this machine's routes) */
static void snat_flow_flags(uint8_t proto, uint16_t cport, uint16_t vport, uint16_t bport, uint16_t sport,
			    uint16_t extra)
{
	struct ct_key orig = { .saddr = ip4(CLIENT), .daddr = ip4(NODE), .sport = htons(cport),
			       .dport = htons(vport), .proto = proto };
	struct ct_key reply = { .saddr = ip4(BE_R), .daddr = ip4(NODE), .sport = htons(bport),
				.dport = htons(sport), .proto = proto };
	struct ct_entry o = { .nat_addr = ip4(BE_R), .nat_port = htons(bport), .flags = CT_F_DNAT | CT_F_SNAT | extra,
			      .svc_id = 7, .snat_addr = ip4(NODE), .snat_port = htons(sport) };
	struct ct_entry r = { .nat_addr = ip4(NODE), .nat_port = htons(vport),
			      .flags = CT_F_REPLY | CT_F_REVNAT | CT_F_SNAT | extra, .svc_id = 7,
			      .snat_addr = ip4(CLIENT), .snat_port = htons(cport) };
	int fd = maps_fd(skel->maps.conntrack);

	if (bpf_map_update_elem(fd, &orig, &o, BPF_ANY) || bpf_map_update_elem(fd, &reply, &r, BPF_ANY))
		tap_fail("writing the SNATed flow's conntrack entries: %s", strerror(errno));
}

static void snat_flow(uint8_t proto, uint16_t cport, uint16_t vport, uint16_t bport, uint16_t sport)
{
	snat_flow_flags(proto, cport, vport, bport, sport, 0);
}

static void icmp_snat_cases(void)
{
	static const struct icmp_case cases[] = {
		{ "SNAT: fragmentation needed from a router on the way to a remote backend, quoting "
		  "N:61001 -> 10.0.3.7:8080: both rewrites undone, quote C:45100 -> N:30080, sent to C",
		  ROUTER, NODE, ROUTER, CLIENT, 3, 4,
		  TCP(NODE, 61001, BE_R, 8080, .tcp_flags = 0x10, .payload_len = 1400),
		  TCP(CLIENT, 45100, NODE, 30080, .tcp_flags = 0x10, .payload_len = 1400), 548 },
		{ "SNAT: fragmentation needed quoting 8 bytes of TCP: ports and addresses put back, ICMP "
		  "checksum updated",
		  ROUTER, NODE, ROUTER, CLIENT, 3, 4,
		  TCP(NODE, 61001, BE_R, 8080, .tcp_flags = 0x10, .payload_len = 1400),
		  TCP(CLIENT, 45100, NODE, 30080, .tcp_flags = 0x10, .payload_len = 1400), 28 },
		{ "SNAT: port unreachable sent by the remote UDP backend itself: outer 10.0.3.7 -> N "
		  "becomes N -> C, quote C:45101 -> N:30053",
		  BE_R, NODE, NODE, CLIENT, 3, 3,
		  UDP(NODE, 61002, BE_R, 5353), UDP(CLIENT, 45101, NODE, 30053), 548 },
		{ "SNAT: time exceeded on the client's side about a reply N:30080 -> C:45100: it reaches "
		  "the backend quoting 10.0.3.7:8080 -> N:61001, as the backend sent it",
		  ROUTER_C, NODE, ROUTER_C, BE_R, 11, 0,
		  TCP(NODE, 30080, CLIENT, 45100, .tcp_flags = 0x12, .payload_len = 100),
		  TCP(BE_R, 8080, NODE, 61001, .tcp_flags = 0x12, .payload_len = 100), 548 },
	};
	size_t i;

	snat_flow(IPPROTO_TCP, 45100, 30080, 8080, 61001);
	snat_flow(IPPROTO_UDP, 45101, 30053, 5353, 61002);
	for (i = 0; i < N(cases); i++)
		icmp_case(&cases[i]);
}

/* ---------------------------------------------------------------- path MTU through a NodePort */

/*
 * A SNATed flow (CT_F_FIB: forwarded by FIB lookup) whose next hop, the remote backend BE_R, is on a
 * 1280-byte link: run in a network namespace of the harness's own (BPF_PROG_TEST_RUN looks routes up
 * in the caller's), with a veth pn0 of MTU 1280 toward 10.0.3.0/24. A 1440-byte packet with
 * DF becomes ICMP fragmentation-needed (MTU 1280) from N to C quoting C:cport -> N:vport as the client
 * sent it, MACs swapped, for tc to redirect out of the device it came in on.
 */
static int pmtu_netns(void)
{
	if (unshare(CLONE_NEWNET)) {
		tap_fail("unshare(CLONE_NEWNET): %s", strerror(errno));
		tap_result("PMTU: the harness's own network namespace");
		return -1;
	}
	if (system("ip link set lo up && ip link add pn0 type veth peer name pn1 && ip link set pn1 up && "
		   "ip link set pn0 mtu 1280 up && "
		   "ip addr add 10.0.3.1/24 dev pn0 && "
		   "ip neigh replace 10.0.3.7 lladdr 02:00:00:00:03:07 dev pn0 nud permanent && "
		   "sysctl -qw net.ipv4.ip_forward=1") != 0) {
		tap_fail("setting up the namespace's 1280-byte link (ip, sysctl)");
		tap_result("PMTU: the harness's own network namespace");
		return -1;
	}
	return 0;
}

struct pmtu_case {
	const char *desc;
	struct pkt_spec in;
	int verdict;
	uint32_t reason;
	uint16_t mtu; /* ICMP expected: its next-hop MTU; 0 = none */
};

static void pmtu_case(const struct pmtu_case *c)
{
	uint8_t in[PKT_MAX], want[PKT_MAX], got[PKT_MAX], mac[6];
	size_t in_len = pkt_build(&c->in, in), want_len = 0, got_len = 0;
	uint64_t before = drops(c->reason);
	int verdict;

	if (c->mtu) {
		want_len = pkt_icmp_error(c->in.dst, c->in.src, 3, 4, c->mtu, in, in_len, 28, want);
		memcpy(mac, want, 6); /* back to where it came from: the input's MACs swapped */
		memcpy(want, want + 6, 6);
		memcpy(want + 6, mac, 6);
		want[PKT_IP_OFF + 1] = 0xc0; /* the tos of the kernel's own ICMP errors */
		pkt_fix_ip_csum(want);
	}
	ring_buffer__consume(rb);
	events_seen = 0;
	verdict = run(in, in_len, got, &got_len);
	ring_buffer__consume(rb);
	if (verdict != c->verdict)
		tap_fail("verdict %d, expected %d (last drop event: %s)", verdict, c->verdict,
			 events_seen ? dp_drop_reason(last_event.reason) : "none");
	else if (c->mtu && (got_len != want_len || memcmp(got, want, want_len)))
		tap_fail("ICMP differs: %s", pkt_diff(got, got_len, want, want_len));
	else if (!c->mtu && c->verdict == TC_ACT_REDIRECT &&
		 (got[PKT_IP_OFF + 8] != 63 || memcmp(got + PKT_IP_OFF + 16, (uint8_t[]){ 10, 0, 3, 7 }, 4)))
		tap_fail("forwarded packet: ttl %u, destination %u.%u.%u.%u; expected 63 and 10.0.3.7",
			 got[PKT_IP_OFF + 8], got[PKT_IP_OFF + 16], got[PKT_IP_OFF + 17],
			 got[PKT_IP_OFF + 18], got[PKT_IP_OFF + 19]);
	if (c->reason && (drops(c->reason) != before + 1 || events_seen != 1 ||
			  last_event.reason != c->reason || last_event.len != in_len))
		tap_fail("reason %s: counter %llu -> %llu, %d events (last reason %u, len %u); expected +1, "
			 "one event of len %zu", dp_drop_reason(c->reason), (unsigned long long)before,
			 (unsigned long long)drops(c->reason), events_seen, last_event.reason,
			 last_event.len, in_len);
	if (!c->reason && events_seen)
		tap_fail("%d unexpected drop events (reason %u)", events_seen, last_event.reason);
	tap_result(c->desc);
}

static void pmtu_cases(void)
{
	static const struct pmtu_case cases[] = {
		{ "PMTU: a 1440-byte TCP segment with DF to N:30080, SNATed to the remote backend behind a "
		  "1280-byte link, becomes ICMP fragmentation-needed MTU 1280 from N to C quoting C:45200 -> "
		  "N:30080 (redirected back, counted as FRAG_NEEDED)",
		  TCP(CLIENT, 45200, NODE, 30080, .tcp_flags = 0x10, .payload_len = 1400, .df = true),
		  TC_ACT_REDIRECT, DROP_FRAG_NEEDED, 1280 },
		{ "PMTU: a 1428-byte UDP datagram with DF: the quote's UDP checksum is the client's again "
		  "(the NAT's update undone)",
		  UDP(CLIENT, 45201, NODE, 30053, .payload_len = 1400, .df = true),
		  TC_ACT_REDIRECT, DROP_FRAG_NEEDED, 1280 },
		{ "PMTU: a 1440-byte TCP segment without DF is dropped as FRAG_NEEDED_NO_ICMP (no ICMP: the "
		  "datapath does not fragment)",
		  TCP(CLIENT, 45200, NODE, 30080, .tcp_flags = 0x10, .payload_len = 1400),
		  TC_ACT_SHOT, DROP_FRAG_NEEDED_NO_ICMP, 0 },
		{ "PMTU: a 1280-byte TCP segment with DF fits the link: forwarded to 10.0.3.7, TTL 63",
		  TCP(CLIENT, 45200, NODE, 30080, .tcp_flags = 0x10, .payload_len = 1240, .df = true),
		  TC_ACT_REDIRECT, 0, 0 },
	};
	size_t i;

	if (pmtu_netns())
		return;
	snat_flow_flags(IPPROTO_TCP, 45200, 30080, 8080, 61100, CT_F_FIB);
	snat_flow_flags(IPPROTO_UDP, 45201, 30053, 5353, 61101, CT_F_FIB);
	for (i = 0; i < N(cases); i++)
		pmtu_case(&cases[i]);
}

/* ---------------------------------------------------------------- conntrack lifetimes */

/* a second tc_lb with lifetimes short enough to wait out (2 s; established stays 1 h) */
static struct tc_lb_bpf *life_open(void)
{
	struct tc_lb_bpf *s = tc_lb_bpf__open();

	if (!s)
		return NULL;
	bpf_map__set_max_entries(s->maps.services, 64);
	bpf_map__set_max_entries(s->maps.backends, 64);
	bpf_map__set_max_entries(s->maps.maglev, 4);
	bpf_map__set_max_entries(s->maps.conntrack, 1024);
	bpf_map__set_max_entries(s->maps.conntrack6, 1024);
	s->rodata->cfg_ct_tcp_syn_s = 2;
	s->rodata->cfg_ct_tcp_established_s = 3600;
	s->rodata->cfg_ct_tcp_closing_s = 2;
	s->rodata->cfg_ct_udp_s = 2;
	s->rodata->cfg_ct_other_s = 2;
	if (tc_lb_bpf__load(s)) {
		tc_lb_bpf__destroy(s);
		return NULL;
	}
	return s;
}

/* the destination a packet leaves with (0: not passed) */
static __be32 dst_of(const struct pkt_spec *s)
{
	uint8_t in[PKT_MAX], out[PKT_MAX];
	size_t in_len = pkt_build(s, in), out_len;
	__be32 dst;

	if (run(in, in_len, out, &out_len) != PASS)
		return 0;
	memcpy(&dst, out + PKT_IP_OFF + 16, 4);
	return dst;
}

/* IPv6 in the same wait: a UDP flow to an IPv6 service, and an established TCP one */
static void in6(const char *s, __be32 *a);
static int svc6_set(int fd, const char *vip, uint16_t port, __u8 proto, __u32 svc_id, __u32 count,
		    __u32 flags, __u32 timeout);
static int be6_set(int fd, __u32 svc_id, __u32 slot, const char *addr, uint16_t port, __u16 flags,
		   __u32 backend_id);
static int dnat6_backend(const struct pkt6_spec *s, __be32 *dst);

#define L6_CLIENT "fd00:c::20"
#define L6_VIP "fd00:96::10"
#define L6_BE1 "fd00:1::5"
#define L6_BE2 "fd00:1::6"
#define UDP6_FLOW { .src = L6_CLIENT, .sport = 47000, .dst = L6_VIP, .dport = 53, .proto = IPPROTO_UDP, .payload_len = 20 }
#define TCP6_EST(f) { .src = L6_CLIENT, .sport = 47001, .dst = L6_VIP, .dport = 80, .proto = IPPROTO_TCP, .tcp_flags = f, .payload_len = 20 }

/* the backend (1 or 2) an IPv6 flow reaches, 0 if neither */
static int to6(const struct pkt6_spec *s)
{
	__be32 got[4], b1[4], b2[4];

	in6(L6_BE1, b1);
	in6(L6_BE2, b2);
	if (dnat6_backend(s, got))
		return 0;
	return !memcmp(got, b1, 16) ? 1 : !memcmp(got, b2, 16) ? 2 : 0;
}
#define TO6(...) to6(&(const struct pkt6_spec)__VA_ARGS__)

static void life6_setup(void)
{
	int s = maps_fd(skel->maps.services6), b = maps_fd(skel->maps.backends6), err = 0;

	err |= svc6_set(s, L6_VIP, 53, IPPROTO_UDP, 102, 1, 0, 0);
	err |= be6_set(b, 102, 0, L6_BE1, 5353, 0, 201);
	err |= svc6_set(s, L6_VIP, 80, IPPROTO_TCP, 101, 1, 0, 0);
	err |= be6_set(b, 101, 0, L6_BE1, 8080, 0, 201);
	if (err || TO6(UDP6_FLOW) != 1 || TO6(TCP6_EST(0x02)) != 1 || TO6(TCP6_EST(0x10)) != 1)
		tap_fail("the IPv6 flows did not start on BE1");
}

static void life6_move(void)
{
	int b = maps_fd(skel->maps.backends6);
	struct ct6_key k = { .sport = htons(47000), .dport = htons(53), .proto = IPPROTO_UDP };
	struct ct6_entry e;

	if (be6_set(b, 102, 0, L6_BE2, 5353, 0, 202) || be6_set(b, 101, 0, L6_BE2, 8080, 0, 202))
		tap_fail("changing the IPv6 backends failed");
	if (TO6(UDP6_FLOW) != 1 || TO6(TCP6_EST(0x10)) != 1)
		tap_fail("an IPv6 flow left its backend before its lifetime passed");
	in6(L6_CLIENT, k.saddr);
	in6(L6_VIP, k.daddr);
	if (bpf_map_lookup_elem(maps_fd(skel->maps.conntrack6), &k, &e) || e.lifetime_s != 2 ||
	    !(e.flags & CT_F_DNAT) || e.svc_id != 102)
		tap_fail("conntrack6 entry of the UDP flow: no entry, or lifetime %u flags %#x svc %u "
			 "(expected 2 s, DNAT, 102)", e.lifetime_s, e.flags, e.svc_id);
	tap_result("conntrack6 lifetimes: live entries (udp=2s) keep IPv6 UDP and TCP flows on their "
		   "backend after the service moved");
}

static void life6_after(void)
{
	if (TO6(UDP6_FLOW) != 2)
		tap_fail("IPv6 UDP flow idle past udp=2s still went to BE1");
	if (TO6(TCP6_EST(0x10)) != 1)
		tap_fail("established IPv6 TCP flow (lifetime 1 h) left BE1");
	tap_result("conntrack6 lifetimes: an IPv6 UDP flow idle past its lifetime gets the service's "
		   "current backend; an established TCP flow keeps its own");
}

#define UDP_FLOW UDP(CLIENT, 46000, VIP, 53)
#define TCP_EST(f) TCP(CLIENT, 46001, VIP, 80, .tcp_flags = f)
#define TCP_FIN(f) TCP(CLIENT, 46002, VIP, 80, .tcp_flags = f)
#define TCP_SYN(f) TCP(CLIENT, 46003, VIP, 80, .tcp_flags = f)
#define TO(...) dst_of(&(const struct pkt_spec)__VA_ARGS__)

static void lifetime_cases(void)
{
	struct tc_lb_bpf *main_skel = skel;
	int s, b, err = 0;
	__be32 be1 = ip4(BE1), be2 = ip4(BE2);

	skel = life_open();
	if (!skel) {
		skel = main_skel;
		tap_fail("loading tc_lb with short lifetimes: %s", strerror(errno));
		tap_result("conntrack lifetimes");
		return;
	}
	s = maps_fd(skel->maps.services);
	b = maps_fd(skel->maps.backends);
	err |= dp_service_set(s, ip4(VIP), htons(53), IPPROTO_UDP, SVC_UDP, 1, 0, 0);
	err |= dp_backend_set(b, SVC_UDP, 0, be1, htons(5353), 101);
	err |= dp_service_set(s, ip4(VIP), htons(80), IPPROTO_TCP, SVC_TCP, 1, 0, 0);
	err |= dp_backend_set(b, SVC_TCP, 0, be1, htons(8080), 101);
	if (err)
		tap_fail("setting up the services failed");

	life6_setup();
	/* four flows on BE1: UDP; TCP established; TCP closed by a FIN; TCP that only sent a SYN */
	if (TO(UDP_FLOW) != be1 || TO(TCP_EST(0x02)) != be1 || TO(TCP_EST(0x10)) != be1 ||
	    TO(TCP_FIN(0x02)) != be1 || TO(TCP_FIN(0x10)) != be1 || TO(TCP_FIN(0x11)) != be1 ||
	    TO(TCP_SYN(0x02)) != be1)
		tap_fail("the flows did not start on BE1");
	/* the service's backend becomes BE2: live entries keep their flows where they were */
	err |= dp_backend_set(b, SVC_UDP, 0, be2, htons(5353), 102);
	err |= dp_backend_set(b, SVC_TCP, 0, be2, htons(8080), 102);
	if (err)
		tap_fail("changing the backends failed");
	if (TO(UDP_FLOW) != be1 || TO(TCP_EST(0x10)) != be1 || TO(TCP_FIN(0x10)) != be1)
		tap_fail("a flow left its backend before its lifetime passed");
	life6_move();
	tap_result("conntrack lifetimes: live entries keep UDP, established and closing TCP flows on their "
		   "backend after the service moved to another");

	/* 2 s lifetimes, last_seen_ns kept to the second: 3.5 s later they are over */
	usleep(3500 * 1000);
	if (TO(UDP_FLOW) != be2)
		tap_fail("UDP flow idle past udp=2s still went to BE1");
	tap_result("conntrack lifetimes: a UDP flow idle past its lifetime is a new flow: the service's "
		   "current backend");
	if (TO(TCP_EST(0x10)) != be1)
		tap_fail("established TCP flow (lifetime 1 h) left BE1 after 3.5 s");
	tap_result("conntrack lifetimes: an established TCP flow keeps its backend (tcp-established=1h)");
	if (TO(TCP_FIN(0x10)) != be2)
		tap_fail("TCP flow closed by a FIN still on BE1 after tcp-closing=2s");
	tap_result("conntrack lifetimes: a TCP flow past a FIN expires after tcp-closing");
	if (TO(TCP_SYN(0x10)) != be2)
		tap_fail("TCP flow that only sent a SYN still on BE1 after tcp-syn=2s");
	tap_result("conntrack lifetimes: a TCP flow that never got past its SYN expires after tcp-syn");
	life6_after();

	tc_lb_bpf__destroy(skel);
	skel = main_skel;
}

/* ---------------------------------------------------------------- policy */

#define P1 "10.0.1.5" /* identity 1000, ingress default-deny */
#define P2 "10.0.1.7" /* identity 1001, ingress and egress default-deny */
#define P3 "10.0.1.9" /* identity 1002, selected by no policy */
#define CIDR_HOST "198.51.100.7" /* in 198.51.100.0/24 -> CIDR identity 5000 */
#define WORLD "203.0.113.9"
#define ID_P1 1000
#define ID_P2 1001
#define ID_P3 1002
#define ID_CIDR 5000

static void setup_policy(void)
{
	int e = maps_fd(skel->maps.endpoints), pol = maps_fd(skel->maps.policy);
	int err = 0, n;

	err |= dp_endpoint_set(e, ip4(P1), ID_P1, EP_F_ENFORCE_INGRESS);
	err |= dp_endpoint_set(e, ip4(P2), ID_P2, EP_F_ENFORCE_INGRESS | EP_F_ENFORCE_EGRESS);
	err |= dp_endpoint_set(e, ip4(P3), ID_P3, 0);
	err |= dp_ipcache_set(maps_fd(skel->maps.ipcache), ip4("198.51.100.0"), 24, ID_CIDR);
	/* rule 1: P1 ingress from P3, TCP 80 */
	err |= dp_policy_set(pol, ID_P1, ID_P3, POLICY_INGRESS, IPPROTO_TCP, 80, 16, POLICY_ALLOW, 1);
	/* rule 2: P1 ingress from 198.51.100.0/24, every protocol */
	err |= dp_policy_set(pol, ID_P1, ID_CIDR, POLICY_INGRESS, 0, 0, 0, POLICY_ALLOW, 2);
	/* rule 3: P1 ingress from anyone, UDP 53 */
	err |= dp_policy_set(pol, ID_P1, IDENTITY_ANY, POLICY_INGRESS, IPPROTO_UDP, 53, 16, POLICY_ALLOW, 3);
	/* rule 4: P1 ingress from P3, TCP 1000-1999 (7 prefix entries) */
	n = dp_policy_set_port_range(pol, ID_P1, ID_P3, POLICY_INGRESS, IPPROTO_TCP, 1000, 1999,
				     POLICY_ALLOW, 4);
	if (n != 7)
		fprintf(stderr, "# port range 1000-1999 gave %d entries, expected 7\n", n);
	/* rule 5: P1 ingress from P2, all TCP; rule 6: P1 ingress deny anyone TCP 23 */
	err |= dp_policy_set(pol, ID_P1, ID_P2, POLICY_INGRESS, IPPROTO_TCP, 0, 0, POLICY_ALLOW, 5);
	err |= dp_policy_set(pol, ID_P1, IDENTITY_ANY, POLICY_INGRESS, IPPROTO_TCP, 23, 16, POLICY_DENY, 6);
	/* rule 7: P2 egress to P1, all TCP; rule 8: P2 egress ICMP echo (type 8) to anyone */
	err |= dp_policy_set(pol, ID_P2, ID_P1, POLICY_EGRESS, IPPROTO_TCP, 0, 0, POLICY_ALLOW, 7);
	err |= dp_policy_set(pol, ID_P2, IDENTITY_ANY, POLICY_EGRESS, IPPROTO_ICMP, 8, 16, POLICY_ALLOW, 8);
	/* rule 11: P1 ingress from P3, SCTP 3868 */
	err |= dp_policy_set(pol, ID_P1, ID_P3, POLICY_INGRESS, IPPROTO_SCTP, 3868, 16, POLICY_ALLOW, 11);
	if (err || n < 0)
		fprintf(stderr, "# setup_policy: a map write failed\n");
}

static const struct tcase policy_cases[] = {
	{ "identity + port: P3 -> P1 TCP 80 allowed (rule 1)",
	  TCP(P3, 50000, P1, 80), NULL, PASS, NULL, 0, 0 },
	{ "identity + port: P3 -> P1 TCP 81 is not covered: default deny",
	  TCP(P3, 50001, P1, 81), NULL, DROP, NULL, DROP_POLICY_DEFAULT_DENY, 0 },
	{ "SCTP port: P3 -> P1 SCTP 3868 allowed (rule 11)",
	  SCTP(P3, 50040, P1, 3868), NULL, PASS, NULL, 0, 0 },
	{ "SCTP port: P3 -> P1 SCTP 3869 is not covered: default deny",
	  SCTP(P3, 50041, P1, 3869), NULL, DROP, NULL, DROP_POLICY_DEFAULT_DENY, 0 },
	{ "SCTP port: P3 -> P1 SCTP 80 is not rule 1's (TCP 80): default deny",
	  SCTP(P3, 50042, P1, 80), NULL, DROP, NULL, DROP_POLICY_DEFAULT_DENY, 0 },
	{ "identity + port: P3 -> P1 UDP 80 (other protocol) is not covered: default deny",
	  UDP(P3, 50002, P1, 80), NULL, DROP, NULL, DROP_POLICY_DEFAULT_DENY, 0 },
	{ "port range 1000-1999: lower bound 1000 allowed",
	  TCP(P3, 50003, P1, 1000), NULL, PASS, NULL, 0, 0 },
	{ "port range 1000-1999: 1500 allowed",
	  TCP(P3, 50004, P1, 1500), NULL, PASS, NULL, 0, 0 },
	{ "port range 1000-1999: upper bound 1999 allowed",
	  TCP(P3, 50005, P1, 1999), NULL, PASS, NULL, 0, 0 },
	{ "port range 1000-1999: 999 denied",
	  TCP(P3, 50006, P1, 999), NULL, DROP, NULL, DROP_POLICY_DEFAULT_DENY, 0 },
	{ "port range 1000-1999: 2000 denied",
	  TCP(P3, 50007, P1, 2000), NULL, DROP, NULL, DROP_POLICY_DEFAULT_DENY, 0 },
	{ "CIDR: 198.51.100.7 (in the allowed /24) -> P1 UDP 5555 allowed (rule 2, any protocol)",
	  UDP(CIDR_HOST, 50008, P1, 5555), NULL, PASS, NULL, 0, 0 },
	{ "CIDR: 203.0.113.9 (world, outside the /24) -> P1 UDP 5555 denied by default",
	  UDP(WORLD, 50009, P1, 5555), NULL, DROP, NULL, DROP_POLICY_DEFAULT_DENY, 0 },
	{ "any-peer rule: world -> P1 UDP 53 allowed (rule 3)",
	  UDP(WORLD, 50010, P1, 53), NULL, PASS, NULL, 0, 0 },
	{ "both ends checked: P2 -> P1 TCP 8000 allowed by P2's egress (7) and P1's ingress (5)",
	  TCP(P2, 50011, P1, 8000), NULL, PASS, NULL, 0, 0 },
	{ "deny wins: P2 -> P1 TCP 23 denied by rule 6 though rule 5 allows P2 all TCP",
	  TCP(P2, 50012, P1, 23), NULL, DROP, NULL, DROP_POLICY_DENY, 0, 0, 6 },
	{ "egress default deny: P2 -> world TCP 443 (no egress rule) denied",
	  TCP(P2, 50013, WORLD, 443), NULL, DROP, NULL, DROP_POLICY_DEFAULT_DENY, 0 },
	{ "reply of an allowed connection passes: P1:8000 -> P2 (P2 ingress is default-deny)",
	  TCP(P1, 8000, P2, 50011, .tcp_flags = 0x12), NULL, PASS, NULL, 0, 0 },
	{ "not a reply: a new flow P1 -> P2 TCP 50011 from another port is denied (P2 ingress)",
	  TCP(P1, 8001, P2, 50011), NULL, DROP, NULL, DROP_POLICY_DEFAULT_DENY, 0 },
	{ "reply of a CIDR-allowed UDP flow passes back out (P1 -> 198.51.100.7)",
	  UDP(P1, 5555, CIDR_HOST, 50008), NULL, PASS, NULL, 0, 0 },
	{ "endpoint selected by no policy: P3 -> world passes",
	  TCP(P3, 50014, WORLD, 443), NULL, PASS, NULL, 0, 0 },
	{ "no endpoint involved: world -> world passes",
	  TCP(WORLD, 50015, "203.0.113.10", 443), NULL, PASS, NULL, 0, 0 },
	{ "ICMP fragmentation-needed from world into default-deny P1 always passes",
	  ICMP(WORLD, P1, 3, 4), NULL, PASS, NULL, 0, 0 },
	{ "ICMP fragmentation-needed from default-deny P2 out to world always passes",
	  ICMP(P2, WORLD, 3, 4), NULL, PASS, NULL, 0, 0 },
	{ "other ICMP unreachable (port unreachable) from world into P1: default deny",
	  ICMP(WORLD, P1, 3, 3), NULL, DROP, NULL, DROP_POLICY_DEFAULT_DENY, 0 },
	{ "ICMP echo request world -> P1: default deny",
	  ICMP(WORLD, P1, 8, 0), NULL, DROP, NULL, DROP_POLICY_DEFAULT_DENY, 0 },
	{ "ICMP echo P2 -> P1 allowed by P2's egress rule 8 (type 8)... but P1 ingress has no ICMP rule",
	  ICMP(P2, P1, 8, 0), NULL, DROP, NULL, DROP_POLICY_DEFAULT_DENY, 0 },
	{ "ICMP echo P2 -> world allowed by egress rule 8",
	  ICMP(P2, WORLD, 8, 0), NULL, PASS, NULL, 0, 0 },
	{ "its echo reply world -> P2 passes as a reply (P2 ingress is default-deny)",
	  ICMP(WORLD, P2, 0, 0), NULL, PASS, NULL, 0, 0 },
	{ "a first fragment P3 -> P1 TCP 80 is allowed",
	  TCP(P3, 50016, P1, 80, .ip_id = 777, .payload_len = 200), NULL, PASS, NULL, 0, FRAG_FIRST },
	{ "its later fragment (no TCP header) is allowed through the ports of the first",
	  TCP(P3, 50016, P1, 80, .ip_id = 777, .payload_len = 200), NULL, PASS, NULL, 0, FRAG_LATER },
	{ "a first fragment P3 -> P1 TCP 81 is denied",
	  TCP(P3, 50017, P1, 81, .ip_id = 778, .payload_len = 200), NULL, DROP, NULL,
	  DROP_POLICY_DEFAULT_DENY, FRAG_FIRST },
	{ "its later fragment is denied too (same ports, same verdict)",
	  TCP(P3, 50017, P1, 81, .ip_id = 778, .payload_len = 200), NULL, DROP, NULL,
	  DROP_POLICY_DEFAULT_DENY, FRAG_LATER },
};

/* policy applies after DNAT: a service in front of P1 */
static void setup_policy_lb(void)
{
	dp_service_set(maps_fd(skel->maps.services), ip4(VIP), htons(80), IPPROTO_TCP, 1, 1, 0, 0);
	dp_backend_set(maps_fd(skel->maps.backends), 1, 0, ip4(P1), htons(81), 101);
	dp_service_set(maps_fd(skel->maps.services), ip4(VIP), htons(88), IPPROTO_TCP, 2, 1, 0, 0);
	dp_backend_set(maps_fd(skel->maps.backends), 2, 0, ip4(P1), htons(80), 101);
}

static const struct tcase policy_lb_cases[] = {
	{ "policy sees the backend: P3 -> VIP:88 -> P1:80 allowed and DNATed",
	  TCP(P3, 50100, VIP, 88), NULL, PASS, OUT(TCP(P3, 50100, P1, 80)), 0, 0 },
	{ "policy sees the backend: P3 -> VIP:80 -> P1:81 denied (no rule for 81)",
	  TCP(P3, 50101, VIP, 80), NULL, DROP, NULL, DROP_POLICY_DEFAULT_DENY, 0 },
	{ "the reply P1:80 -> P3 is reverse-NATed to VIP:88 and passes",
	  TCP(P1, 80, P3, 50100, .tcp_flags = 0x12), NULL, PASS,
	  OUT(TCP(VIP, 88, P3, 50100, .tcp_flags = 0x12)), 0, 0 },
};

/* ---------------------------------------------------------------- forwarded flows */

/* with setup_lb(): one event per new flow, packets and bytes of both directions per service */
static const struct tcase flow_cases[] = {
	{ "flow: a DNATed SYN CLIENT2 -> VIP:80 sends exactly one FORWARDED event naming the service and "
	  "backend, and counts one packet and its bytes for the service",
	  TCP(CLIENT2, 41000, VIP, 80, .tcp_flags = 0x02), NULL, PASS,
	  OUT(TCP(CLIENT2, 41000, BE1, 8080, .tcp_flags = 0x02)), 0, 0, CASE_FWD, 0, 1, SVC_TCP },
	{ "flow: the second packet of the same flow sends no event but is counted",
	  TCP(CLIENT2, 41000, VIP, 80, .tcp_flags = 0x10, .payload_len = 300), NULL, PASS,
	  OUT(TCP(CLIENT2, 41000, BE1, 8080, .tcp_flags = 0x10, .payload_len = 300)), 0, 0, CASE_FWD, 0, 0,
	  SVC_TCP },
	{ "flow: the reply (reverse NAT) sends no event and counts for the service too",
	  TCP(BE1, 8080, CLIENT2, 41000, .tcp_flags = 0x12), NULL, PASS,
	  OUT(TCP(VIP, 80, CLIENT2, 41000, .tcp_flags = 0x12)), 0, 0, CASE_FWD, 0, 0, SVC_TCP },
	{ "flow: a packet to no service and no endpoint keeps no state: no event, no counter",
	  TCP(CLIENT2, 41001, "203.0.113.10", 443), NULL, PASS, NULL, 0, 0, CASE_FWD, 0, 0, 0 },
};

/* with setup_policy() + setup_policy_lb(): a policy-tracked flow names the rule that allowed it */
static const struct tcase flow_policy_cases[] = {
	{ "flow: P3 -> P1 TCP 80 allowed by rule 1 sends one FORWARDED event naming rule 1 (no service)",
	  TCP(P3, 51000, P1, 80), NULL, PASS, NULL, 0, 0, CASE_FWD, 1, 1, 0 },
	{ "flow: P3 -> VIP:88 -> P1:80 sends one FORWARDED event with service 2 and rule 1",
	  TCP(P3, 51001, VIP, 88), NULL, PASS, OUT(TCP(P3, 51001, P1, 80)), 0, 0, CASE_FWD, 1, 1, 2 },
	{ "flow: a default-deny drop after an allowing egress check names no rule (P2 -> P1 ICMP echo)",
	  ICMP(P2, P1, 8, 0), NULL, DROP, NULL, DROP_POLICY_DEFAULT_DENY, 0, CASE_FWD, 0, 0, 0 },
};

/* the drop event of the last case must not carry the egress allow's rule id */
static void flow_deny_rule_case(void)
{
	struct pkt_spec in = ICMP(P2, P1, 8, 0);
	uint8_t f[PKT_MAX], o[PKT_MAX];
	size_t fl = pkt_build(&in, f), ol;

	ring_buffer__consume(rb);
	events_seen = 0;
	if (run(f, fl, o, &ol) != DROP)
		tap_fail("not dropped");
	ring_buffer__consume(rb);
	if (events_seen != 1 || last_event.rule_id != 0 || last_event.direction != POLICY_INGRESS)
		tap_fail("%d drop events, rule %u direction %u; expected 1, rule 0, ingress", events_seen,
			 last_event.rule_id, last_event.direction);
	tap_result("flow: default deny at P1's ingress after P2's egress allowed (rule 8): the drop names "
		   "no rule and the ingress direction");
}

/* --no-flow-events: the same DNAT sends no event, the service is still counted */
static void flow_knob_case(void)
{
	struct tc_lb_bpf *quiet = tc_lb_bpf__open(), *saved = skel;
	struct ring_buffer *qrb = NULL;
	struct pkt_spec in = TCP(CLIENT, 42000, VIP, 80);
	uint8_t f[PKT_MAX], o[PKT_MAX];
	size_t fl = pkt_build(&in, f), ol;
	struct svc_counter got;

	if (!quiet) {
		tap_fail("open: %s", strerror(errno));
		goto out;
	}
	quiet->rodata->cfg_flow_events = 0;
	bpf_map__set_max_entries(quiet->maps.services, 16);
	bpf_map__set_max_entries(quiet->maps.backends, 16);
	bpf_map__set_max_entries(quiet->maps.maglev, 1);
	if (tc_lb_bpf__load(quiet)) {
		tap_fail("load with cfg_flow_events = 0: %s", strerror(errno));
		goto out;
	}
	dp_service_set(bpf_map__fd(quiet->maps.services), ip4(VIP), htons(80), IPPROTO_TCP, SVC_TCP, 1, 0, 0);
	dp_backend_set(bpf_map__fd(quiet->maps.backends), SVC_TCP, 0, ip4(BE1), htons(8080), 101);
	qrb = ring_buffer__new(bpf_map__fd(quiet->maps.events), on_event, NULL, NULL);
	skel = quiet;
	fwd_seen = 0;
	if (run(f, fl, o, &ol) != PASS)
		tap_fail("not passed");
	if (qrb)
		ring_buffer__consume(qrb);
	got = svc_counted(SVC_TCP);
	if (fwd_seen != 0)
		tap_fail("%d forwarded events with cfg_flow_events = 0", fwd_seen);
	if (got.packets != 1 || got.bytes != fl)
		tap_fail("service counted %llu packets %llu bytes, expected 1 and %zu",
			 (unsigned long long)got.packets, (unsigned long long)got.bytes, fl);
out:
	skel = saved;
	ring_buffer__free(qrb);
	tc_lb_bpf__destroy(quiet);
	tap_result("flow: cfg_flow_events = 0 (install --no-flow-events) sends no forwarded event, the "
		   "service is still counted");
}

/* ---------------------------------------------------------------- malformed and truncated */

static void set_version_6(uint8_t *f, size_t *len)
{
	(void)len;
	f[PKT_IP_OFF] = 0x65;
	pkt_fix_ip_csum(f);
}

static void set_totlen_10(uint8_t *f, size_t *len)
{
	(void)len;
	f[PKT_IP_OFF + 2] = 0;
	f[PKT_IP_OFF + 3] = 10;
	pkt_fix_ip_csum(f);
}

static void set_totlen_past_end(uint8_t *f, size_t *len)
{
	unsigned tot = (unsigned)(*len - PKT_ETH_LEN + 1);

	f[PKT_IP_OFF + 2] = (uint8_t)(tot >> 8);
	f[PKT_IP_OFF + 3] = (uint8_t)tot;
	pkt_fix_ip_csum(f);
}

static void cut_ip_10(uint8_t *f, size_t *len)
{
	(void)f;
	*len = PKT_ETH_LEN + 10;
}

/* cut the frame to n bytes of L4 and say so in the IPv4 total length (a short, consistent packet) */
static void cut_l4(uint8_t *f, size_t *len, unsigned n)
{
	unsigned tot = 20 + n;

	*len = PKT_ETH_LEN + tot;
	f[PKT_IP_OFF + 2] = (uint8_t)(tot >> 8);
	f[PKT_IP_OFF + 3] = (uint8_t)tot;
	pkt_fix_ip_csum(f);
}

static void cut_l4_12(uint8_t *f, size_t *len) { cut_l4(f, len, 12); }
static void cut_l4_4(uint8_t *f, size_t *len) { cut_l4(f, len, 4); }

static void set_doff_4(uint8_t *f, size_t *len)
{
	(void)len;
	f[PKT_IP_OFF + 20 + 12] = 4 << 4;
}

static void set_doff_15(uint8_t *f, size_t *len)
{
	(void)len;
	f[PKT_IP_OFF + 20 + 12] = 15 << 4;
	cut_l4(f, len, 40); /* 40 bytes of TCP, the header claims 60 */
}

static void pad_to_128(uint8_t *f, size_t *len)
{
	memset(f + *len, 0, 128 - *len);
	*len = 128;
}

static void make_arp(uint8_t *f, size_t *len)
{
	f[12] = 0x08;
	f[13] = 0x06;
	*len = 42;
}

static const struct tcase malformed_cases[] = {
	{ "IPv4 header length 4 words (< 5): MALFORMED_IP",
	  TCP(CLIENT, 40100, VIP, 80), set_ihl_4, DROP, NULL, DROP_MALFORMED_IP, 0 },
	{ "version 6 inside an IPv4 ethertype: MALFORMED_IP",
	  TCP(CLIENT, 40101, VIP, 80), set_version_6, DROP, NULL, DROP_MALFORMED_IP, 0 },
	{ "total length 10, below the header length: MALFORMED_IP",
	  TCP(CLIENT, 40102, VIP, 80), set_totlen_10, DROP, NULL, DROP_MALFORMED_IP, 0 },
	{ "total length one byte past the end of the frame: TRUNCATED_IP",
	  TCP(CLIENT, 40103, VIP, 80), set_totlen_past_end, DROP, NULL, DROP_TRUNCATED_IP, 0 },
	{ "frame ends 10 bytes into the IPv4 header: TRUNCATED_IP",
	  TCP(CLIENT, 40104, VIP, 80), cut_ip_10, DROP, NULL, DROP_TRUNCATED_IP, 0, CASE_MAY_EINVAL },
	{ "TCP header cut at 12 bytes: TRUNCATED_L4",
	  TCP(CLIENT, 40105, VIP, 80), cut_l4_12, DROP, NULL, DROP_TRUNCATED_L4, 0 },
	{ "TCP data offset 4 words (< 5): MALFORMED_L4",
	  TCP(CLIENT, 40106, VIP, 80), set_doff_4, DROP, NULL, DROP_MALFORMED_L4, 0 },
	{ "TCP data offset 15 words but 10 words of TCP in the packet: TRUNCATED_L4",
	  TCP(CLIENT, 40107, VIP, 80), set_doff_15, DROP, NULL, DROP_TRUNCATED_L4, 0 },
	{ "UDP header cut at 4 bytes: TRUNCATED_L4",
	  UDP(CLIENT, 40108, VIP, 53), cut_l4_4, DROP, NULL, DROP_TRUNCATED_L4, 0 },
	{ "ICMP header cut at 4 bytes: TRUNCATED_L4",
	  ICMP(CLIENT, P1, 8, 0), cut_l4_4, DROP, NULL, DROP_TRUNCATED_L4, 0 },
	{ "Ethernet padding after the IPv4 total length is fine: DNAT, padding kept",
	  TCP(CLIENT, 40109, VIP, 80, .payload_len = 0), pad_to_128, PASS,
	  OUT(TCP(CLIENT, 40109, BE1, 8080, .payload_len = 0)), 0, 0, CASE_MUTATE_OUT },
	{ "ARP passes untouched",
	  TCP(CLIENT, 40110, VIP, 80), make_arp, PASS, NULL, 0, 0 },
};

/* ---------------------------------------------------------------- scale */

#define MANY 1000000

/* A second instance at the default capacities: 1,000,000 services written in one batch, then a
 * packet to the last one. Costs ~100 MB of kernel memory for a second; freed when destroyed. */
static void scale_case(void)
{
	struct tc_lb_bpf *big = tc_lb_bpf__open();
	struct lb_svc_key *keys = calloc(MANY, sizeof(*keys));
	struct lb_service *vals = calloc(MANY, sizeof(*vals));
	struct tc_lb_bpf *saved = skel;
	__u32 count = MANY, i;
	int err;

	if (!big || !keys || !vals || tc_lb_bpf__load(big)) {
		tap_fail("loading a second instance at default sizes: %s", strerror(errno));
		goto out;
	}
	if (bpf_map__max_entries(big->maps.services) < MANY)
		tap_fail("default services capacity %u < %u", bpf_map__max_entries(big->maps.services), MANY);
	for (i = 0; i < MANY; i++) {
		keys[i].vip = htonl(0x0a800000 + i / 64); /* 10.128.0.0/10: 64 ports per VIP */
		keys[i].port = htons((uint16_t)(1000 + i % 64));
		keys[i].proto = IPPROTO_TCP;
		vals[i].svc_id = i + 1;
		vals[i].backend_count = 1;
	}
	err = bpf_map_update_batch(bpf_map__fd(big->maps.services), keys, vals, &count, NULL);
	if (err || count != MANY) {
		tap_fail("batch update wrote %u of %u: %s", count, MANY, strerror(errno));
		goto out;
	}
	dp_backend_set(bpf_map__fd(big->maps.backends), MANY, 0, ip4(BE2), htons(8443), 1);
	skel = big;
	{
		/* the last service: 10.128.0.0 + (MANY-1)/64, port 1000 + (MANY-1)%64 */
		uint32_t vip = 0x0a800000 + (MANY - 1) / 64;
		char vs[INET_ADDRSTRLEN];
		struct in_addr a = { .s_addr = htonl(vip) };
		__be32 got;

		inet_ntop(AF_INET, &a, vs, sizeof(vs));
		{
			struct pkt_spec in = TCP(CLIENT, 45000, vs, (uint16_t)(1000 + (MANY - 1) % 64));
			uint8_t f[PKT_MAX], o[PKT_MAX];
			size_t fl = pkt_build(&in, f), ol;

			if (run(f, fl, o, &ol) != PASS)
				tap_fail("packet to the last service not passed");
			memcpy(&got, o + PKT_IP_OFF + 16, 4);
			if (got != ip4(BE2))
				tap_fail("packet to the last service not DNATed to its backend");
		}
	}
out:
	skel = saved;
	free(keys);
	free(vals);
	tc_lb_bpf__destroy(big);
	tap_result("1,000,000 services fit the default capacity; a packet to the last one is DNATed (one hash lookup)");
}

/* ---------------------------------------------------------------- IPv6 policy */

#define P1_6 "fd00::1"
#define P2_6 "fd00::2"
#define P3_6 "fd00::3"
#define CIDR6_HOST "fd00:cafe::7" /* in fd00:cafe::/32 -> CIDR identity 5000 */
#define WORLD6 "fd00:beef::9"
#define WORLD6B "fd00:beef::10"

#define TCP6(s, sp, d, dp, ...) { .src = s, .sport = sp, .dst = d, .dport = dp, .proto = IPPROTO_TCP, .payload_len = 100, __VA_ARGS__ }
#define UDP6(s, sp, d, dp, ...) { .src = s, .sport = sp, .dst = d, .dport = dp, .proto = IPPROTO_UDP, .payload_len = 100, __VA_ARGS__ }
#define ICMP6(s, d, t, ...) { .src = s, .dst = d, .proto = 58, .icmp_type = t, .icmp_id = 7, .payload_len = 32, __VA_ARGS__ }
/* hop-by-hop, destination options, routing: a chain of three before the L4 header */
#define CHAIN3 .ext = { 0, 60, 43 }, .n_ext = 3
/* seven headers: one more than IPV6_MAX_EXTHDRS */
#define CHAIN7 .ext = { 0, 60, 60, 60, 60, 60, 60 }, .n_ext = 7

struct tcase6 {
	const char *desc;
	struct pkt6_spec in;
	void (*mutate)(uint8_t *frame, size_t *len);
	int verdict;     /* PASS cases must leave the packet as out says (NULL: as it was) */
	uint32_t reason; /* expected drop reason, 0 = none */
	int flags;       /* CASE_MAY_EINVAL, CASE_MUTATE_OUT */
	const struct pkt6_spec *out; /* expected output (service flows: translated), NULL = the input */
	uint32_t svc;    /* service whose counter must go up by one packet, 0 none */
	const char *ev_dst; /* the drop event's destination if not the packet's (a service's backend) */
};

static void setup_policy6(void)
{
	int e = maps_fd(skel->maps.endpoints6), err = 0;
	struct in6_addr a;

	inet_pton(AF_INET6, P1_6, &a);
	err |= dp_endpoint6_set(e, (const __be32 *)&a, ID_P1, EP_F_ENFORCE_INGRESS);
	inet_pton(AF_INET6, P2_6, &a);
	err |= dp_endpoint6_set(e, (const __be32 *)&a, ID_P2, EP_F_ENFORCE_INGRESS | EP_F_ENFORCE_EGRESS);
	inet_pton(AF_INET6, P3_6, &a);
	err |= dp_endpoint6_set(e, (const __be32 *)&a, ID_P3, 0);
	inet_pton(AF_INET6, "fd00:cafe::", &a);
	err |= dp_ipcache6_set(maps_fd(skel->maps.ipcache6), (const __be32 *)&a, 32, ID_CIDR);
	/* rule 9: P2 egress ICMPv6 echo request (type 128) to anyone */
	err |= dp_policy_set(maps_fd(skel->maps.policy), ID_P2, IDENTITY_ANY, POLICY_EGRESS, 58, 128, 16,
			     POLICY_ALLOW, 9);
	if (err)
		fprintf(stderr, "# setup_policy6: a map write failed\n");
}

static void cut6_at_30(uint8_t *f, size_t *len)
{
	(void)f;
	*len = PKT_ETH_LEN + 30;
}

static void payload_len_plus_1(uint8_t *f, size_t *len)
{
	uint8_t *ip = f + PKT_IP_OFF;
	unsigned plen = (unsigned)(ip[4] << 8 | ip[5]) + 1;

	ip[4] = (uint8_t)(plen >> 8);
	ip[5] = (uint8_t)plen;
	(void)len;
}

/* the frame ends 4 bytes into the first extension header (payload length says so too) */
static void cut6_in_exthdr(uint8_t *f, size_t *len)
{
	f[PKT_IP_OFF + 4] = 0;
	f[PKT_IP_OFF + 5] = 4;
	*len = PKT_ETH_LEN + PKT6_IP_LEN + 4;
}

static void version6_is_4(uint8_t *f, size_t *len)
{
	f[PKT_IP_OFF] = 0x40;
	(void)len;
}

static void doff6_4(uint8_t *f, size_t *len)
{
	f[PKT_IP_OFF + PKT6_IP_LEN + 12] = 4 << 4;
	(void)len;
}

static const struct tcase6 policy6_cases[] = {
	{ "IPv6 allowed: P3 -> P1 TCP 80 (rule 1 by identity) passes unchanged",
	  TCP6(P3_6, 51000, P1_6, 80), NULL, PASS, 0, 0 },
	{ "IPv6 default deny: P3 -> P1 TCP 81 is dropped (no v6 bypass of P1's ingress policy)",
	  TCP6(P3_6, 51001, P1_6, 81), NULL, DROP, DROP_POLICY_DEFAULT_DENY, 0 },
	{ "IPv6 default deny: world -> P1 UDP 5555 is dropped",
	  UDP6(WORLD6, 51002, P1_6, 5555), NULL, DROP, DROP_POLICY_DEFAULT_DENY, 0 },
	{ "IPv6 CIDR rule: fd00:cafe::7 (in fd00:cafe::/32, ipcache6) -> P1 UDP 5555 allowed (rule 2)",
	  UDP6(CIDR6_HOST, 51003, P1_6, 5555), NULL, PASS, 0, 0 },
	{ "IPv6 any-peer rule: world -> P1 UDP 53 allowed (rule 3)",
	  UDP6(WORLD6, 51004, P1_6, 53), NULL, PASS, 0, 0 },
	{ "IPv6 deny wins: P2 -> P1 TCP 23 denied by rule 6",
	  TCP6(P2_6, 51005, P1_6, 23), NULL, DROP, DROP_POLICY_DENY, 0 },
	{ "IPv6 both ends: P2 -> P1 TCP 8000 allowed by P2's egress (7) and P1's ingress (5)",
	  TCP6(P2_6, 51006, P1_6, 8000), NULL, PASS, 0, 0 },
	{ "IPv6 reply of that connection P1:8000 -> P2 passes (conntrack6; P2 ingress is default-deny)",
	  TCP6(P1_6, 8000, P2_6, 51006, .tcp_flags = 0x12), NULL, PASS, 0, 0 },
	{ "IPv6 not a reply: P1:8001 -> P2 TCP 51006 is a new flow, denied by P2's ingress",
	  TCP6(P1_6, 8001, P2_6, 51006), NULL, DROP, DROP_POLICY_DEFAULT_DENY, 0 },
	{ "IPv6 egress default deny: P2 -> world TCP 443 denied",
	  TCP6(P2_6, 51007, WORLD6, 443), NULL, DROP, DROP_POLICY_DEFAULT_DENY, 0 },
	{ "IPv6 no enforcing endpoint: P3 -> world passes",
	  TCP6(P3_6, 51008, WORLD6, 443), NULL, PASS, 0, 0 },
	{ "IPv6 no endpoint at all: world -> world passes",
	  TCP6(WORLD6, 51009, WORLD6B, 443), NULL, PASS, 0, 0 },
	{ "IPv6 extension headers (hop-by-hop, dest opts, routing) walked to TCP: P3 -> P1 80 allowed",
	  TCP6(P3_6, 51010, P1_6, 80, CHAIN3), NULL, PASS, 0, 0 },
	{ "IPv6 the same chain to port 81: the ports behind the chain are seen, default deny",
	  TCP6(P3_6, 51011, P1_6, 81, CHAIN3), NULL, DROP, DROP_POLICY_DEFAULT_DENY, 0 },
	{ "IPv6 an AH header before UDP 53 into P1: walked, allowed (rule 3)",
	  UDP6(WORLD6, 51012, P1_6, 53, .ext = { 51 }, .n_ext = 1), NULL, PASS, 0, 0 },
	{ "IPv6 seven extension headers (more than IPV6_MAX_EXTHDRS): IPV6_EXTHDR_LIMIT",
	  TCP6(P3_6, 51013, P1_6, 80, CHAIN7), NULL, DROP, DROP_IPV6_EXTHDR_LIMIT, 0 },
	{ "IPv6 header cut at 30 bytes: TRUNCATED_IPV6",
	  TCP6(P3_6, 51014, P1_6, 80), cut6_at_30, DROP, DROP_TRUNCATED_IPV6, CASE_MAY_EINVAL },
	{ "IPv6 payload length one byte past the frame: TRUNCATED_IPV6",
	  TCP6(P3_6, 51015, P1_6, 80), payload_len_plus_1, DROP, DROP_TRUNCATED_IPV6, 0 },
	{ "IPv6 frame ends inside the hop-by-hop header: TRUNCATED_IPV6",
	  TCP6(P3_6, 51016, P1_6, 80, CHAIN3), cut6_in_exthdr, DROP, DROP_TRUNCATED_IPV6, 0 },
	{ "IPv6 ethertype with version 4 in the header: MALFORMED_IPV6",
	  TCP6(P3_6, 51020, P1_6, 80), version6_is_4, DROP, DROP_MALFORMED_IPV6, 0 },
	{ "IPv6 TCP data offset 4 words: MALFORMED_L4",
	  TCP6(P3_6, 51017, P1_6, 80), doff6_4, DROP, DROP_MALFORMED_L4, 0 },
	{ "IPv6 first fragment P3 -> P1 TCP 80: IPV6_FRAGMENT (v6 fragments of policed flows refused)",
	  TCP6(P3_6, 51018, P1_6, 80, .ext = { 44 }, .n_ext = 1, .frag_more = true), NULL, DROP,
	  DROP_IPV6_FRAGMENT, 0 },
	{ "IPv6 later fragment (no ports) into P1: IPV6_FRAGMENT, never passed unchecked",
	  TCP6(P3_6, 51018, P1_6, 80, .ext = { 44 }, .n_ext = 1, .frag_off = 8), NULL, DROP,
	  DROP_IPV6_FRAGMENT, 0 },
	{ "IPv6 later fragment between addresses no policy selects passes",
	  TCP6(WORLD6, 51019, WORLD6B, 80, .ext = { 44 }, .n_ext = 1, .frag_off = 8), NULL, PASS, 0, 0 },
	{ "ICMPv6 neighbor solicitation world -> P1 always passes (neighbor discovery)",
	  ICMP6(WORLD6, P1_6, 135), NULL, PASS, 0, 0 },
	{ "ICMPv6 packet too big world -> P1 always passes (path MTU discovery)",
	  ICMP6(WORLD6, P1_6, 2), NULL, PASS, 0, 0 },
	{ "ICMPv6 echo request world -> P1: default deny",
	  ICMP6(WORLD6, P1_6, 128), NULL, DROP, DROP_POLICY_DEFAULT_DENY, 0 },
	{ "ICMPv6 echo request P2 -> world allowed by egress rule 9 (type 128)",
	  ICMP6(P2_6, WORLD6, 128), NULL, PASS, 0, 0 },
	{ "ICMPv6 its echo reply world -> P2 passes as a reply",
	  ICMP6(WORLD6, P2_6, 129), NULL, PASS, 0, 0 },
};

/*
 * An IPv6 drop's record: a struct drop_event6 (88 bytes) whose IPv4 fields are 0 and whose addresses
 * are the packet's (a header cut short names none: parse stopped before them). A service drop after
 * backend selection names the backend (c->ev_dst), as IPv4's.
 */
static void check_event6(const struct tcase6 *c)
{
	struct in6_addr src = {}, dst = {};
	bool cut = c->reason == DROP_TRUNCATED_IPV6 || c->reason == DROP_MALFORMED_IPV6;
	char got_s[INET6_ADDRSTRLEN], got_d[INET6_ADDRSTRLEN];

	inet_pton(AF_INET6, c->in.src, &src);
	inet_pton(AF_INET6, c->ev_dst ? c->ev_dst : c->in.dst, &dst);
	inet_ntop(AF_INET6, last_event6.saddr6, got_s, sizeof(got_s));
	inet_ntop(AF_INET6, last_event6.daddr6, got_d, sizeof(got_d));
	if (last_event_len != sizeof(struct drop_event6))
		tap_fail("the drop event is %zu bytes, expected a %zu-byte drop_event6", last_event_len,
			 sizeof(struct drop_event6));
	else if (last_event.saddr || last_event.daddr)
		tap_fail("an IPv6 drop event has IPv4 addresses %08x -> %08x", last_event.saddr,
			 last_event.daddr);
	else if (!cut && memcmp(last_event6.saddr6, &src, 16))
		tap_fail("the drop event's source is %s, expected %s", got_s, c->in.src);
	else if (!cut && memcmp(last_event6.daddr6, &dst, 16))
		tap_fail("the drop event's destination is %s, expected %s", got_d,
			 c->ev_dst ? c->ev_dst : c->in.dst);
}

static void run6_case(const struct tcase6 *c)
{
	uint8_t in[PKT_MAX], want[PKT_MAX], got[PKT_MAX];
	size_t in_len, want_len, got_len = 0;
	uint64_t before = c->reason ? drops(c->reason) : 0;
	struct svc_counter svc_before = svc_counted(c->svc), svc_after;
	int verdict;

	in_len = pkt6_build(&c->in, in);
	if (c->mutate)
		c->mutate(in, &in_len);
	if (c->out) {
		want_len = pkt6_build(c->out, want);
		if (c->mutate && (c->flags & CASE_MUTATE_OUT))
			c->mutate(want, &want_len);
	} else {
		memcpy(want, in, want_len = in_len);
	}
	ring_buffer__consume(rb);
	events_seen = 0;
	verdict = run(in, in_len, got, &got_len);
	ring_buffer__consume(rb);
	if (verdict < 0 && errno == EINVAL && (c->flags & CASE_MAY_EINVAL)) {
		tap_why[0] = 0;
		tap_skip(c->desc, "this kernel's BPF_PROG_TEST_RUN refuses the frame (EINVAL): "
				  "it wants a whole IPv6 header");
		return;
	}
	if (verdict >= 0 && verdict != c->verdict)
		tap_fail("verdict %d, expected %d (last drop event: %s)", verdict, c->verdict,
			 events_seen ? dp_drop_reason(last_event.reason) : "none");
	if (verdict == PASS && (got_len != want_len || memcmp(got, want, want_len)))
		tap_fail("output packet differs: %s", pkt_diff(got, got_len, want, want_len));
	if (c->reason) {
		uint64_t after = drops(c->reason);

		if (after != before + 1)
			tap_fail("drop counter of reason %u went %llu -> %llu, expected +1", c->reason,
				 (unsigned long long)before, (unsigned long long)after);
		if (events_seen != 1 || last_event.reason != c->reason || last_event.hook != HOOK_TC6)
			tap_fail("%d events, last reason %u hook %u; expected 1 event with reason %s, HOOK_TC6",
				 events_seen, last_event.reason, last_event.hook, dp_drop_reason(c->reason));
		else
			check_event6(c);
	} else if (events_seen) {
		tap_fail("%d unexpected drop events (reason %u)", events_seen, last_event.reason);
	}
	svc_after = svc_counted(c->svc);
	if (c->svc && (svc_after.packets != svc_before.packets + 1 ||
		       svc_after.bytes != svc_before.bytes + in_len))
		tap_fail("service %u counter went %llu/%llu -> %llu/%llu packets/bytes, expected +1/+%zu",
			 c->svc, (unsigned long long)svc_before.packets,
			 (unsigned long long)svc_before.bytes, (unsigned long long)svc_after.packets,
			 (unsigned long long)svc_after.bytes, in_len);
	tap_result(c->desc);
}

static void run6_table(const struct tcase6 *cases, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		run6_case(&cases[i]);
}

/* ---------------------------------------------------------------- IPv6 services */

#define C6 "fd00:c::10"
#define C6B "fd00:c::11"
#define VIP6 "fd00:96::10"
#define BE6_1 "fd00:1::5"
#define BE6_2 "fd00:1::6"
#define ROUTER6 "fd00:2::1"   /* a router between the node and the backend */
#define ROUTER6_C "fd00:c::1" /* a router on the client's side */

#define SVC6_TCP 101
#define SVC6_UDP 102
#define SVC6_EMPTY 103
#define SVC6_LOCAL 104
#define SVC6_SCTP 105
#define SVC6_MAGLEV 106
#define SVC6_AFFINITY 107
#define SVC6_POLICY 108
#define SVC6_EXTERNAL 109

static void in6(const char *s, __be32 *a)
{
	inet_pton(AF_INET6, s, a);
}

/* services6[{vip, port, proto}] = {svc_id, count, flags, affinity timeout} */
static int svc6_set(int fd, const char *vip, uint16_t port, __u8 proto, __u32 svc_id, __u32 count,
		    __u32 flags, __u32 timeout)
{
	struct lb6_svc_key k = { .port = htons(port), .proto = proto };
	struct lb_service v = { .svc_id = svc_id, .backend_count = count, .flags = flags,
				.affinity_timeout_s = timeout };

	in6(vip, k.vip);
	return bpf_map_update_elem(fd, &k, &v, BPF_ANY);
}

/* backends6[{svc_id, slot}] = {addr, port, flags, backend_id} */
static int be6_set(int fd, __u32 svc_id, __u32 slot, const char *addr, uint16_t port, __u16 flags,
		   __u32 backend_id)
{
	struct lb_backend_key k = { .svc_id = svc_id, .slot = slot };
	struct lb6_backend v = { .port = htons(port), .flags = flags, .backend_id = backend_id };

	in6(addr, v.addr);
	return bpf_map_update_elem(fd, &k, &v, BPF_ANY);
}

static void setup_lb6(void)
{
	int s = maps_fd(skel->maps.services6), b = maps_fd(skel->maps.backends6), i, err = 0;
	static __u16 table[LB_MAGLEV_M];

	err |= svc6_set(s, VIP6, 80, IPPROTO_TCP, SVC6_TCP, 1, 0, 0);
	err |= be6_set(b, SVC6_TCP, 0, BE6_1, 8080, 0, 201);
	err |= svc6_set(s, VIP6, 53, IPPROTO_UDP, SVC6_UDP, 1, 0, 0);
	err |= be6_set(b, SVC6_UDP, 0, BE6_1, 5353, 0, 201);
	err |= svc6_set(s, VIP6, 81, IPPROTO_TCP, SVC6_EMPTY, 0, 0, 0);
	err |= svc6_set(s, VIP6, 82, IPPROTO_TCP, SVC6_LOCAL, 0, SVC_F_LOCAL_ONLY, 0);
	err |= svc6_set(s, VIP6, 3868, IPPROTO_SCTP, SVC6_SCTP, 1, 0, 0);
	err |= be6_set(b, SVC6_SCTP, 0, BE6_1, 3868, 0, 201);
	/* Maglev: a table that sends every hash to slot 1 */
	err |= svc6_set(s, VIP6, 84, IPPROTO_TCP, SVC6_MAGLEV, 2, SVC_F_MAGLEV, 0);
	err |= be6_set(b, SVC6_MAGLEV, 0, BE6_1, 8080, 0, 201);
	err |= be6_set(b, SVC6_MAGLEV, 1, BE6_2, 8080, 0, 202);
	for (i = 0; i < LB_MAGLEV_M; i++)
		table[i] = 1;
	err |= dp_maglev_set(maps_fd(skel->maps.maglev), SVC6_MAGLEV, table);
	err |= svc6_set(s, VIP6, 87, IPPROTO_TCP, SVC6_AFFINITY, 2, SVC_F_AFFINITY, 60);
	err |= be6_set(b, SVC6_AFFINITY, 0, BE6_1, 8080, 0, 201);
	err |= be6_set(b, SVC6_AFFINITY, 1, BE6_2, 8080, 0, 202);
	/* policy on the translated tuple: backend P1_6:80 (ingress default-deny, rule 1 lets P3 in) */
	err |= svc6_set(s, VIP6, 90, IPPROTO_TCP, SVC6_POLICY, 1, 0, 0);
	err |= be6_set(b, SVC6_POLICY, 0, P1_6, 80, 0, 203);
	/* an external address whose backend is on another node: SNAT (snat6_cases) */
	err |= svc6_set(s, VIP6, 30080, IPPROTO_TCP, SVC6_EXTERNAL, 1, SVC_F_EXTERNAL, 0);
	err |= be6_set(b, SVC6_EXTERNAL, 0, BE6_2, 8080, BE_F_REMOTE, 202);
	if (err)
		fprintf(stderr, "# setup_lb6: a map write failed\n");
}

/* zero the UDP checksum of a frame built without extension headers (invalid over IPv6) */
static void udp6_csum_0(uint8_t *f, size_t *len)
{
	(void)len;
	f[PKT_IP_OFF + PKT6_IP_LEN + 6] = 0;
	f[PKT_IP_OFF + PKT6_IP_LEN + 7] = 0;
}

#define SCTP6(s, sp, d, dp, ...) { .src = s, .sport = sp, .dst = d, .dport = dp, .proto = IPPROTO_SCTP, .payload_len = 100, __VA_ARGS__ }
#define OUT6(...) (&(const struct pkt6_spec)__VA_ARGS__)

static const struct tcase6 lb6_cases[] = {
	{ "IPv6 service: TCP SYN C -> [VIP]:80 is DNATed to [fd00:1::5]:8080, TCP checksum as computed "
	  "from scratch", TCP6(C6, 40000, VIP6, 80), NULL, PASS, 0, 0,
	  OUT6(TCP6(C6, 40000, BE6_1, 8080)), SVC6_TCP },
	{ "IPv6 service: the backend's SYN-ACK is reverse-NATed to come from [VIP]:80",
	  TCP6(BE6_1, 8080, C6, 40000, .tcp_flags = 0x12), NULL, PASS, 0, 0,
	  OUT6(TCP6(VIP6, 80, C6, 40000, .tcp_flags = 0x12)), SVC6_TCP },
	{ "IPv6 service: the client's ACK hits conntrack6 and is DNATed as recorded",
	  TCP6(C6, 40000, VIP6, 80, .tcp_flags = 0x10), NULL, PASS, 0, 0,
	  OUT6(TCP6(C6, 40000, BE6_1, 8080, .tcp_flags = 0x10)), SVC6_TCP },
	{ "IPv6 service: UDP C -> [VIP]:53 DNATed to [fd00:1::5]:5353, UDP checksum as computed",
	  UDP6(C6, 40001, VIP6, 53), NULL, PASS, 0, 0, OUT6(UDP6(C6, 40001, BE6_1, 5353)), SVC6_UDP },
	{ "IPv6 service: its UDP reply comes back from [VIP]:53",
	  UDP6(BE6_1, 5353, C6, 40001), NULL, PASS, 0, 0, OUT6(UDP6(VIP6, 53, C6, 40001)), SVC6_UDP },
	{ "IPv6 service: a UDP datagram with checksum 0 (invalid over IPv6) is translated, the 0 kept "
	  "(the receiver drops it as it would have)", UDP6(C6, 40002, VIP6, 53), udp6_csum_0, PASS, 0,
	  CASE_MUTATE_OUT, OUT6(UDP6(C6, 40002, BE6_1, 5353)), SVC6_UDP },
	{ "IPv6 service behind extension headers (hop-by-hop, dest opts, routing): DNATed at parse6's "
	  "L4 offset, the chain kept", TCP6(C6, 40003, VIP6, 80, CHAIN3), NULL, PASS, 0, 0,
	  OUT6(TCP6(C6, 40003, BE6_1, 8080, CHAIN3)), SVC6_TCP },
	{ "IPv6 service behind an AH header: UDP DNATed",
	  UDP6(C6, 40004, VIP6, 53, .ext = { 51 }, .n_ext = 1), NULL, PASS, 0, 0,
	  OUT6(UDP6(C6, 40004, BE6_1, 5353, .ext = { 51 }, .n_ext = 1)), SVC6_UDP },
	{ "IPv6 SCTP service: the address is translated, the port and CRC32c stay (no pseudo header)",
	  SCTP6(C6, 40005, VIP6, 3868), NULL, PASS, 0, 0, OUT6(SCTP6(C6, 40005, BE6_1, 3868)),
	  SVC6_SCTP },
	{ "IPv6 service without backends: NO_BACKEND",
	  TCP6(C6, 40006, VIP6, 81), NULL, DROP, DROP_NO_BACKEND, 0, NULL, 0 },
	{ "IPv6 service with traffic policy Local and no local backend: NO_LOCAL_BACKEND",
	  TCP6(C6, 40007, VIP6, 82), NULL, DROP, DROP_NO_LOCAL_BACKEND, 0, NULL, 0 },
	{ "IPv6 Maglev service: the table's slot 1 ([fd00:1::6]) for every flow",
	  TCP6(C6, 40008, VIP6, 84), NULL, PASS, 0, 0, OUT6(TCP6(C6, 40008, BE6_2, 8080)),
	  SVC6_MAGLEV },
	{ "IPv6 service port with no service: passes untouched",
	  TCP6(C6, 40009, VIP6, 8443), NULL, PASS, 0, 0, NULL, 0 },
	{ "IPv6 hairpin (the backend is the client) with no IPv6 node address (node_cfg6 empty): "
	  "SNAT_NO_ADDRESS", TCP6(BE6_1, 40010, VIP6, 80), NULL, DROP, DROP_SNAT_NO_ADDRESS, 0, NULL, 0,
	  BE6_1 },
	{ "IPv6 external address with a remote backend, no IPv6 node address: SNAT_NO_ADDRESS",
	  TCP6(C6, 40011, VIP6, 30080), NULL, DROP, DROP_SNAT_NO_ADDRESS, 0, NULL, 0, BE6_2 },
	{ "IPv6 first fragment to a service: IPV6_FRAGMENT (IPv6 fragments are not tracked)",
	  UDP6(C6, 40012, VIP6, 53, .ext = { 44 }, .n_ext = 1, .frag_more = true), NULL, DROP,
	  DROP_IPV6_FRAGMENT, 0, NULL, 0 },
	{ "IPv6 policy on the translated tuple: P3 -> [VIP]:90 -> P1:80 allowed by rule 1",
	  TCP6(P3_6, 40013, VIP6, 90), NULL, PASS, 0, 0, OUT6(TCP6(P3_6, 40013, P1_6, 80)), SVC6_POLICY },
	{ "IPv6 policy on the translated tuple: world -> [VIP]:90 -> P1:80 default deny",
	  TCP6(WORLD6, 40014, VIP6, 90), NULL, DROP, DROP_POLICY_DEFAULT_DENY, 0, NULL, 0, P1_6 },
	{ "IPv6 the allowed flow's reply P1:80 -> P3 leaves as [VIP]:90",
	  TCP6(P1_6, 80, P3_6, 40013, .tcp_flags = 0x12), NULL, PASS, 0, 0,
	  OUT6(TCP6(VIP6, 90, P3_6, 40013, .tcp_flags = 0x12)), SVC6_POLICY },
};

/* the destination (16 bytes into out6) a frame leaves with; 0 = passed, -1 = not passed */
static int dnat6_backend(const struct pkt6_spec *s, __be32 *dst)
{
	uint8_t in[PKT_MAX], out[PKT_MAX];
	size_t in_len = pkt6_build(s, in), out_len;

	if (run(in, in_len, out, &out_len) != PASS)
		return -1;
	memcpy(dst, out + PKT_IP_OFF + 24, 16);
	return 0;
}

static void lb6_selection_cases(void)
{
	__be32 first[4], got[4], be1[4], be2[4];
	int i, wrong = 0, n1 = 0, n2 = 0;
	struct lb6_affinity_key ak = { .svc_id = SVC6_AFFINITY };
	struct lb_affinity av;

	in6(BE6_1, be1);
	in6(BE6_2, be2);
	if (dnat6_backend(&(const struct pkt6_spec)TCP6(C6, 41000, VIP6, 87), first))
		wrong++;
	for (i = 1; i < 32; i++)
		if (dnat6_backend(&(const struct pkt6_spec)TCP6(C6, (uint16_t)(41000 + i), VIP6, 87), got) ||
		    memcmp(got, first, 16))
			wrong++;
	if (wrong)
		tap_fail("%d of 32 flows of one client not on its first backend", wrong);
	in6(C6, ak.client);
	if (bpf_map_lookup_elem(maps_fd(skel->maps.affinity6), &ak, &av) ||
	    av.backend_id != (memcmp(first, be1, 16) ? 202u : 201u))
		tap_fail("no affinity6 entry for the client naming its backend");
	tap_result("IPv6 session affinity: 32 new flows of one client reach its first backend "
		   "(affinity6 keyed by the client's address)");

	/* random: 64 clients over 2 backends (all on one: probability 2^-63 with affinity per client) */
	for (i = 0; i < 64; i++) {
		char c[48];

		snprintf(c, sizeof(c), "fd00:c::%x", 0x100 + i);
		if (dnat6_backend(&(const struct pkt6_spec)TCP6(c, 41100, VIP6, 87), got))
			continue;
		n1 += !memcmp(got, be1, 16);
		n2 += !memcmp(got, be2, 16);
	}
	if (n1 + n2 != 64 || !n1 || !n2)
		tap_fail("BE1 %d, BE2 %d of 64 clients", n1, n2);
	tap_result("IPv6 backend choice: 64 clients spread over both backends");
}

/* ICMPv6 errors quoting NATed IPv6 flows */
struct icmp6_case {
	const char *desc;
	const char *src, *dst, *want_src, *want_dst;
	uint8_t type, code;
	struct pkt6_spec quote, want_quote;
	size_t quote_max;
};

static void icmp6_case(const struct icmp6_case *c)
{
	uint8_t q[PKT_MAX], wq[PKT_MAX], in[PKT_MAX], want[PKT_MAX], got[PKT_MAX];
	size_t q_len = pkt6_build(&c->quote, q), wq_len = pkt6_build(&c->want_quote, wq);
	size_t in_len = pkt6_icmp_error(c->src, c->dst, c->type, c->code, 1280, q, q_len, c->quote_max, in);
	size_t want_len = pkt6_icmp_error(c->want_src, c->want_dst, c->type, c->code, 1280, wq, wq_len,
					  c->quote_max, want);
	size_t got_len = 0;
	int verdict;

	ring_buffer__consume(rb);
	events_seen = 0;
	verdict = run(in, in_len, got, &got_len);
	ring_buffer__consume(rb);
	if (verdict != PASS)
		tap_fail("verdict %d, expected PASS (last drop event: %s)", verdict,
			 events_seen ? dp_drop_reason(last_event.reason) : "none");
	else if (got_len != want_len || memcmp(got, want, want_len))
		tap_fail("output packet differs: %s", pkt_diff(got, got_len, want, want_len));
	if (events_seen)
		tap_fail("%d unexpected drop events (reason %u)", events_seen, last_event.reason);
	tap_result(c->desc);
}

static void flow6_open(const struct pkt6_spec *s)
{
	uint8_t in[PKT_MAX], out[PKT_MAX];
	size_t in_len = pkt6_build(s, in), out_len;

	if (run(in, in_len, out, &out_len) != PASS)
		tap_fail("setting up the flow %s:%u -> %s:%u: not passed", s->src, s->sport, s->dst, s->dport);
}

static void icmp6_error_cases(void)
{
	static const struct icmp6_case cases[] = {
		{ "ICMPv6 packet too big from a router about a DNATed TCP segment: the quote's "
		  "[fd00:1::5]:8080 becomes [VIP]:80, TCP and ICMPv6 checksums as computed from scratch",
		  ROUTER6, C6, ROUTER6, C6, 2, 0,
		  TCP6(C6, 42000, BE6_1, 8080, .tcp_flags = 0x10, .payload_len = 1400),
		  TCP6(C6, 42000, VIP6, 80, .tcp_flags = 0x10, .payload_len = 1400), 1232 },
		{ "ICMPv6 packet too big quoting only 8 bytes of TCP (no checksum quoted): address and "
		  "port translated, ICMPv6 checksum updated",
		  ROUTER6, C6, ROUTER6, C6, 2, 0,
		  TCP6(C6, 42000, BE6_1, 8080, .tcp_flags = 0x10, .payload_len = 1400),
		  TCP6(C6, 42000, VIP6, 80, .tcp_flags = 0x10, .payload_len = 1400), 48 },
		{ "ICMPv6 port unreachable sent by the UDP backend itself: outer source becomes the VIP "
		  "(ICMPv6 pseudo header), quote C -> [fd00:1::5]:5353 becomes C -> [VIP]:53",
		  BE6_1, C6, VIP6, C6, 1, 4,
		  UDP6(C6, 42001, BE6_1, 5353), UDP6(C6, 42001, VIP6, 53), 1232 },
		{ "ICMPv6 time exceeded on the client's side about a reverse-NATed reply [VIP]:80 -> C: "
		  "sent to the VIP, it reaches the backend quoting [fd00:1::5]:8080 -> C",
		  ROUTER6_C, VIP6, ROUTER6_C, BE6_1, 3, 0,
		  TCP6(VIP6, 80, C6, 42000, .tcp_flags = 0x12, .payload_len = 100),
		  TCP6(BE6_1, 8080, C6, 42000, .tcp_flags = 0x12, .payload_len = 100), 1232 },
		{ "ICMPv6 packet too big quoting a DNATed TCP segment behind hop-by-hop and destination "
		  "options headers: the quote's extension headers are walked, backend becomes [VIP]:80",
		  ROUTER6, C6, ROUTER6, C6, 2, 0,
		  TCP6(C6, 42000, BE6_1, 8080, .tcp_flags = 0x10, .payload_len = 1400, .ext = { 0, 60 },
		       .n_ext = 2),
		  TCP6(C6, 42000, VIP6, 80, .tcp_flags = 0x10, .payload_len = 1400, .ext = { 0, 60 },
		       .n_ext = 2), 1232 },
		{ "ICMPv6 port unreachable from the UDP backend quoting a datagram behind a first-fragment "
		  "header and an AH: translated, outer source becomes the VIP",
		  BE6_1, C6, VIP6, C6, 1, 4,
		  UDP6(C6, 42001, BE6_1, 5353, .ext = { 44, 51 }, .n_ext = 2, .frag_more = true),
		  UDP6(C6, 42001, VIP6, 53, .ext = { 44, 51 }, .n_ext = 2, .frag_more = true), 1232 },
		{ "ICMPv6 packet too big quoting a later fragment of a NATed flow (no ports in the quote): "
		  "not ours, passes untouched",
		  ROUTER6, C6, ROUTER6, C6, 2, 0,
		  TCP6(C6, 42000, BE6_1, 8080, .ext = { 44 }, .n_ext = 1, .frag_off = 8),
		  TCP6(C6, 42000, BE6_1, 8080, .ext = { 44 }, .n_ext = 1, .frag_off = 8), 1232 },
		{ "ICMPv6 packet too big quoting a TCP segment behind more extension headers than tc_lb "
		  "walks (it would have dropped that packet): not ours, passes untouched",
		  ROUTER6, C6, ROUTER6, C6, 2, 0,
		  TCP6(C6, 42000, BE6_1, 8080, .ext = { 0, 60, 60, 60, 60, 60, 60, 60 }, .n_ext = 8),
		  TCP6(C6, 42000, BE6_1, 8080, .ext = { 0, 60, 60, 60, 60, 60, 60, 60 }, .n_ext = 8), 1232 },
		{ "ICMPv6 packet too big quoting a flow conntrack6 does not know passes untouched",
		  ROUTER6, C6, ROUTER6, C6, 2, 0,
		  TCP6(C6, 42999, BE6_1, 8080, .tcp_flags = 0x10, .payload_len = 100),
		  TCP6(C6, 42999, BE6_1, 8080, .tcp_flags = 0x10, .payload_len = 100), 1232 },
	};
	size_t i;

	flow6_open(&(const struct pkt6_spec)TCP6(C6, 42000, VIP6, 80));
	flow6_open(&(const struct pkt6_spec)UDP6(C6, 42001, VIP6, 53));
	for (i = 0; i < N(cases); i++)
		icmp6_case(&cases[i]);
}

/* ---------------------------------------------------------------- IPv6 SNAT */

/*
 * IPv6 SNAT (lib/snat6.h) with its FIB forwarding. The harness moves into a network namespace of
 * its own (unshare: nothing of this machine's is touched, and it goes when the harness exits) with
 * one veth device that routes the backends' and clients' prefixes, permanent neighbours and
 * forwarding on: bpf_fib_lookup(AF_INET6) then succeeds and the program redirects with these MACs.
 */
#define NODE6 "fd00:2::2"
#define SNAT6_DEV_MAC "\x02\x00\x00\x00\x00\xaa"
#define BE6_2_MAC "\x02\x00\x00\x00\x00\x06"
#define BE6_1_MAC "\x02\x00\x00\x00\x00\x05"
#define C6_MAC "\x02\x00\x00\x00\x00\x10"
#define SVC6_ETP_LOCAL 110
#define SVC6_ETP_NONE 111

static int snat6_netns(void)
{
	if (unshare(CLONE_NEWNET))
		return -1;
	return system("set -e; ip link set lo up; ip link add snat6 address 02:00:00:00:00:aa type veth"
		      " peer name snat6p; ip link set snat6p up; ip link set snat6 up; sysctl -qw net.ipv6.conf.all.forwarding=1;"
		      " ip -6 addr add fd00:1::1/64 dev snat6 nodad; ip -6 addr add fd00:c::1/64 dev snat6 nodad;"
		      " ip -6 neigh add fd00:1::6 lladdr 02:00:00:00:00:06 nud permanent dev snat6;"
		      " ip -6 neigh add fd00:1::5 lladdr 02:00:00:00:00:05 nud permanent dev snat6;"
		      " ip -6 neigh add fd00:c::10 lladdr 02:00:00:00:00:10 nud permanent dev snat6") ? -1 : 0;
}

/* the frame as bpf_fib_lookup forwarding leaves it: MACs of the veth device and the next hop,
 * hop limit one less */
static void fwd6(uint8_t *f, const char *dmac)
{
	memcpy(f, dmac, 6);
	memcpy(f + 6, SNAT6_DEV_MAC, 6);
	f[PKT_IP_OFF + 7]--;
}

/* run s, expect verdict and (want != NULL) the output frame want, forwarded to dmac (NULL: not
 * forwarded, the frame as built). 0 or -1 (tap_fail said why). */
static int snat6_run(const struct pkt6_spec *s, int verdict, const struct pkt6_spec *want,
		     const char *dmac)
{
	uint8_t in[PKT_MAX], w[PKT_MAX], got[PKT_MAX];
	size_t in_len = pkt6_build(s, in), w_len = 0, got_len = 0;
	int v;

	ring_buffer__consume(rb);
	events_seen = 0;
	v = run(in, in_len, got, &got_len);
	ring_buffer__consume(rb);
	if (v != verdict) {
		tap_fail("verdict %d, expected %d (last drop event: %s)", v, verdict,
			 events_seen ? dp_drop_reason(last_event.reason) : "none");
		return -1;
	}
	if (!want)
		return 0;
	w_len = pkt6_build(want, w);
	if (dmac)
		fwd6(w, dmac);
	if (got_len != w_len || memcmp(got, w, w_len)) {
		tap_fail("output packet differs: %s", pkt_diff(got, got_len, w, w_len));
		return -1;
	}
	return 0;
}

/* the SNAT port conntrack6 recorded for the flow src:sport -> dst:dport/TCP (host order), 0 if none */
static uint16_t snat6_port_of(const char *src, uint16_t sport, const char *dst, uint16_t dport)
{
	struct ct6_key k = { .sport = htons(sport), .dport = htons(dport), .proto = IPPROTO_TCP };
	struct ct6_entry e;

	in6(src, k.saddr);
	in6(dst, k.daddr);
	if (bpf_map_lookup_elem(maps_fd(skel->maps.conntrack6), &k, &e) || !(e.flags & CT_F_SNAT))
		return 0;
	return ntohs(e.snat_port);
}

static void snat6_cases(void)
{
	struct node_cfg6 cfg = {};
	__u32 zero = 0;
	uint16_t port, hport;
	int s = maps_fd(skel->maps.services6), b = maps_fd(skel->maps.backends6), err = 0;
	uint64_t before;

	if (snat6_netns()) {
		tap_fail("a network namespace with a veth device, routes and neighbours: %s",
			 strerror(errno));
		tap_result("IPv6 SNAT: the harness's network namespace");
		return;
	}
	in6(NODE6, cfg.snat_addr);
	err |= bpf_map_update_elem(maps_fd(skel->maps.node_cfg6), &zero, &cfg, BPF_ANY);
	err |= svc6_set(s, VIP6, 30081, IPPROTO_TCP, SVC6_ETP_LOCAL, 1, SVC_F_EXTERNAL | SVC_F_LOCAL_ONLY, 0);
	err |= be6_set(b, SVC6_ETP_LOCAL, 0, BE6_1, 8080, 0, 201);
	err |= svc6_set(s, VIP6, 30082, IPPROTO_TCP, SVC6_ETP_NONE, 0, SVC_F_EXTERNAL | SVC_F_LOCAL_ONLY, 0);
	if (err)
		tap_fail("writing node_cfg6 and the services: %s", strerror(errno));

	/* an external client -> [VIP]:30080, backend on another node */
	if (!snat6_run(&(const struct pkt6_spec)TCP6(C6, 43000, VIP6, 30080), TC_ACT_REDIRECT, NULL, NULL)) {
		port = snat6_port_of(C6, 43000, VIP6, 30080);
		if (port < SNAT6_PORT_MIN || port > SNAT6_PORT_MAX)
			tap_fail("SNAT port %u outside %u-%u", port, SNAT6_PORT_MIN, SNAT6_PORT_MAX);
		else
			snat6_run(&(const struct pkt6_spec)TCP6(C6, 43000, VIP6, 30080, .tcp_flags = 0x10),
				  TC_ACT_REDIRECT,
				  OUT6(TCP6(NODE6, port, BE6_2, 8080, .tcp_flags = 0x10)), BE6_2_MAC);
	}
	tap_result("IPv6 SNAT: external C -> [VIP]:30080 to a remote backend leaves as [node]:port -> "
		   "[fd00:1::6]:8080, port from the SNAT range, forwarded by FIB lookup (MACs, hop limit)");
	port = snat6_port_of(C6, 43000, VIP6, 30080);
	snat6_run(&(const struct pkt6_spec)TCP6(BE6_2, 8080, NODE6, port, .tcp_flags = 0x12),
		  TC_ACT_REDIRECT, OUT6(TCP6(VIP6, 30080, C6, 43000, .tcp_flags = 0x12)), C6_MAC);
	tap_result("IPv6 SNAT: the remote backend's reply to [node]:port is translated both ways "
		   "([VIP]:30080 -> C:43000) and forwarded to the client by FIB lookup");

	/* ICMPv6 packet too big from a router on the way to the backend, addressed to the node */
	{
		uint8_t q[PKT_MAX], wq[PKT_MAX], in[PKT_MAX], want[PKT_MAX], got[PKT_MAX];
		const struct pkt6_spec quote = TCP6(NODE6, port, BE6_2, 8080, .tcp_flags = 0x10, .payload_len = 1400);
		const struct pkt6_spec wquote = TCP6(C6, 43000, VIP6, 30080, .tcp_flags = 0x10, .payload_len = 1400);
		size_t q_len = pkt6_build(&quote, q), wq_len = pkt6_build(&wquote, wq);
		size_t in_len = pkt6_icmp_error(ROUTER6, NODE6, 2, 0, 1280, q, q_len, 1232, in);
		size_t want_len = pkt6_icmp_error(ROUTER6, C6, 2, 0, 1280, wq, wq_len, 1232, want);
		size_t got_len = 0;
		int v = run(in, in_len, got, &got_len);

		fwd6(want, C6_MAC);
		if (v != TC_ACT_REDIRECT)
			tap_fail("verdict %d, expected TC_ACT_REDIRECT", v);
		else if (got_len != want_len || memcmp(got, want, want_len))
			tap_fail("output packet differs: %s", pkt_diff(got, got_len, want, want_len));
		tap_result("IPv6 SNAT: ICMPv6 packet too big to the node quoting [node]:port -> backend: both "
			   "quoted ends put back (C:43000 -> [VIP]:30080), outer destination the client, "
			   "forwarded by FIB lookup");
	}

	/* hairpin: the backend fd00:1::5 reaches itself through [VIP]:80 */
	if (!snat6_run(&(const struct pkt6_spec)TCP6(BE6_1, 43001, VIP6, 80), TC_ACT_REDIRECT, NULL, NULL)) {
		hport = snat6_port_of(BE6_1, 43001, VIP6, 80);
		if (!hport)
			tap_fail("no SNAT entry for the hairpin flow");
		else if (!snat6_run(&(const struct pkt6_spec)TCP6(BE6_1, 43001, VIP6, 80, .tcp_flags = 0x10),
				    TC_ACT_REDIRECT, OUT6(TCP6(NODE6, hport, BE6_1, 8080, .tcp_flags = 0x10)),
				    BE6_1_MAC))
			snat6_run(&(const struct pkt6_spec)TCP6(BE6_1, 8080, NODE6, hport, .tcp_flags = 0x12),
				  TC_ACT_REDIRECT, OUT6(TCP6(VIP6, 80, BE6_1, 43001, .tcp_flags = 0x12)), BE6_1_MAC);
	}
	tap_result("IPv6 hairpin: [fd00:1::5] -> [VIP]:80 -> itself is SNATed to [node]:port, its reply "
		   "comes back from [VIP]:80");

	/* externalTrafficPolicy Local: the client address is kept, the reply forwarded by FIB lookup */
	if (!snat6_run(&(const struct pkt6_spec)TCP6(C6, 43002, VIP6, 30081), PASS,
		       OUT6(TCP6(C6, 43002, BE6_1, 8080)), NULL))
		snat6_run(&(const struct pkt6_spec)TCP6(BE6_1, 8080, C6, 43002, .tcp_flags = 0x12),
			  TC_ACT_REDIRECT, OUT6(TCP6(VIP6, 30081, C6, 43002, .tcp_flags = 0x12)), C6_MAC);
	if (snat6_port_of(C6, 43002, VIP6, 30081))
		tap_fail("an externalTrafficPolicy Local flow was SNATed");
	tap_result("IPv6 externalTrafficPolicy Local: no SNAT (the client address reaches the local "
		   "backend), the reply leaves from [VIP]:30081 by FIB lookup");
	before = drops(DROP_NO_LOCAL_BACKEND);
	snat6_run(&(const struct pkt6_spec)TCP6(C6, 43003, VIP6, 30082), DROP, NULL, NULL);
	if (drops(DROP_NO_LOCAL_BACKEND) != before + 1)
		tap_fail("NO_LOCAL_BACKEND not counted");
	tap_result("IPv6 externalTrafficPolicy Local without a local backend: NO_LOCAL_BACKEND");
}

/*
 * Path MTU through an IPv6 NodePort (issue 13 item 5): in snat6_cases' namespace, the routes to the
 * remote backend fd00:1::6 and to the client get MTU 1280 ("mtu lock": bpf_fib_lookup's IPv6 check,
 * ip6_mtu_from_fib6(), reads a route's MTU only when it is locked, else the device's). A TCP segment or UDP datagram bigger
 * than that, of a flow SNATed to the remote backend, becomes ICMPv6 packet too big (MTU 1280) from
 * the address the client wrote to the client, quoting its first 1232 bytes exactly as the client
 * sent them (addresses, ports, L4 checksum), MACs swapped, redirected back; counted FRAG_NEEDED.
 */
#define SVC6_PMTU_UDP 112

static void pmtu6_case(const char *desc, const struct pkt6_spec *s, int verdict, uint32_t reason,
		       bool icmp)
{
	uint8_t in[PKT_MAX], want[PKT_MAX], got[PKT_MAX];
	size_t in_len = pkt6_build(s, in), want_len = 0, got_len = 0;
	uint64_t before = drops(reason);
	int v;

	if (icmp) {
		want_len = pkt6_icmp_error(s->dst, s->src, 2, 0, 1280, in, in_len, 1232, want);
		memcpy(want, in + 6, 6); /* back to where it came from: the input's MACs swapped */
		memcpy(want + 6, in, 6);
	}
	ring_buffer__consume(rb);
	events_seen = 0;
	v = run(in, in_len, got, &got_len);
	ring_buffer__consume(rb);
	if (v != verdict)
		tap_fail("verdict %d, expected %d (last drop event: %s)", v, verdict,
			 events_seen ? dp_drop_reason(last_event.reason) : "none");
	else if (icmp && (got_len != want_len || memcmp(got, want, want_len)))
		tap_fail("ICMPv6 differs: %s", pkt_diff(got, got_len, want, want_len));
	else if (reason && (drops(reason) != before + 1 || events_seen != 1 ||
			    last_event.reason != reason || last_event.len != in_len))
		tap_fail("reason %s: counter %llu -> %llu, %d events (last reason %u, len %u); expected +1, "
			 "one event of len %zu", dp_drop_reason(reason), (unsigned long long)before,
			 (unsigned long long)drops(reason), events_seen, last_event.reason,
			 last_event.len, in_len);
	tap_result(desc);
}

static void pmtu6_cases(void)
{
	int s = maps_fd(skel->maps.services6), b = maps_fd(skel->maps.backends6);
	uint8_t q[PKT_MAX], in[PKT_MAX], got[PKT_MAX];
	uint16_t port;

	if (system("ip -6 route replace fd00:1::6/128 dev snat6 mtu lock 1280 && "
		   "ip -6 route replace fd00:c::10/128 dev snat6 mtu lock 1280") ||
	    svc6_set(s, VIP6, 30053, IPPROTO_UDP, SVC6_PMTU_UDP, 1, SVC_F_EXTERNAL, 0) ||
	    be6_set(b, SVC6_PMTU_UDP, 0, BE6_2, 5353, BE_F_REMOTE, 202)) {
		tap_fail("routes of MTU 1280 and a UDP service (ip, maps)");
		tap_result("IPv6 PMTU: setup");
		return;
	}
	/* a TCP flow to the remote backend: its SYN fits */
	if (snat6_run(&(const struct pkt6_spec)TCP6(C6, 43100, VIP6, 30080), TC_ACT_REDIRECT, NULL, NULL))
		tap_result("IPv6 PMTU: the flow's SYN");
	pmtu6_case("IPv6 PMTU: a 1460-byte TCP segment to [VIP]:30080, SNATed to the remote backend "
		   "behind a 1280-byte route, becomes ICMPv6 packet too big MTU 1280 from [VIP] to C "
		   "quoting its first 1232 bytes as C sent them (redirected back, FRAG_NEEDED)",
		   &(const struct pkt6_spec)TCP6(C6, 43100, VIP6, 30080, .tcp_flags = 0x10, .payload_len = 1400),
		   TC_ACT_REDIRECT, DROP_FRAG_NEEDED, true);
	pmtu6_case("IPv6 PMTU: a 1448-byte UDP datagram, the flow's first, to [VIP]:30053: ICMPv6 packet "
		   "too big with the client's own UDP checksum in the quote (the NAT's change undone)",
		   &(const struct pkt6_spec)UDP6(C6, 43101, VIP6, 30053, .payload_len = 1400),
		   TC_ACT_REDIRECT, DROP_FRAG_NEEDED, true);
	pmtu6_case("IPv6 PMTU: a 1280-byte TCP segment fits the route: forwarded, no drop counted",
		   &(const struct pkt6_spec)TCP6(C6, 43100, VIP6, 30080, .tcp_flags = 0x10, .payload_len = 1220),
		   TC_ACT_REDIRECT, 0, false);

	/* an ICMPv6 error bigger than the route to the client (a crafted 1400-byte quote): not
	 * answered with another */
	port = snat6_port_of(C6, 43100, VIP6, 30080);
	{
		const struct pkt6_spec quote = TCP6(NODE6, port, BE6_2, 8080, .tcp_flags = 0x10, .payload_len = 1400);
		size_t q_len = pkt6_build(&quote, q);
		size_t in_len = pkt6_icmp_error(ROUTER6, NODE6, 1, 0, 0, q, q_len, 1400, in), got_len = 0;
		uint64_t before = drops(DROP_FRAG_NEEDED_NO_ICMP), fn = drops(DROP_FRAG_NEEDED);
		int v = run(in, in_len, got, &got_len);

		if (!port)
			tap_fail("no SNAT port recorded for the TCP flow");
		else if (v != TC_ACT_SHOT || drops(DROP_FRAG_NEEDED_NO_ICMP) != before + 1 ||
			 drops(DROP_FRAG_NEEDED) != fn)
			tap_fail("verdict %d, FRAG_NEEDED_NO_ICMP %llu -> %llu, FRAG_NEEDED %llu -> %llu; "
				 "expected SHOT and +1, +0", v, (unsigned long long)before,
				 (unsigned long long)drops(DROP_FRAG_NEEDED_NO_ICMP), (unsigned long long)fn,
				 (unsigned long long)drops(DROP_FRAG_NEEDED));
		tap_result("IPv6 PMTU: a 1448-byte ICMPv6 error translated toward the client over the "
			   "1280-byte route is dropped as FRAG_NEEDED_NO_ICMP, not answered");
	}
}

/* ---------------------------------------------------------------- main */

static int load(void)
{
	skel = tc_lb_bpf__open();
	if (!skel)
		return -errno;
	/* small maps for the test; the loader sets production sizes the same way */
	bpf_map__set_max_entries(skel->maps.services, 1024);
	bpf_map__set_max_entries(skel->maps.backends, 4096);
	bpf_map__set_max_entries(skel->maps.maglev, 16);
	/* the SNAT port range (install picks it outside ip_local_port_range) */
	skel->rodata->cfg_snat_port_min = SNAT6_PORT_MIN;
	skel->rodata->cfg_snat_port_max = SNAT6_PORT_MAX;
	if (tc_lb_bpf__load(skel))
		return -errno;
	rb = ring_buffer__new(bpf_map__fd(skel->maps.events), on_event, NULL, NULL);
	return rb ? 0 : -errno;
}

int main(void)
{
	int err;

	printf("TAP version 13\n");
	err = load();
	if (err) {
		printf("not ok 1 - tc_lb loads and passes the verifier\n# %s\n1..1\n", strerror(-err));
		return 1;
	}
	tap_result("tc_lb loads and passes the verifier");

	setup_lb();
	run_table(lb_cases, N(lb_cases));
	run_table(flow_cases, N(flow_cases));
	flow_knob_case();
	lb_selection_cases();
	icmp_error_cases();
	icmp_snat_cases();
	lifetime_cases();

	reset_maps();
	setup_policy();
	run_table(policy_cases, N(policy_cases));
	setup_policy_lb();
	run_table(policy_lb_cases, N(policy_lb_cases));
	run_table(flow_policy_cases, N(flow_policy_cases));
	flow_deny_rule_case();
	setup_policy6();
	run6_table(policy6_cases, N(policy6_cases));
	setup_lb6();
	run6_table(lb6_cases, N(lb6_cases));
	lb6_selection_cases();
	icmp6_error_cases();
	snat6_cases();
	pmtu6_cases(); /* in snat6_cases' namespace */

	reset_maps();
	setup_lb();
	run_table(malformed_cases, N(malformed_cases));

	scale_case();

	/* last: it moves the harness into a network namespace of its own */
	reset_maps();
	pmtu_cases();

	ring_buffer__free(rb);
	tc_lb_bpf__destroy(skel);
	return tap_done();
}
