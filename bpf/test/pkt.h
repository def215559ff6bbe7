/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Test packet builder: Ethernet + IPv4 + TCP/UDP/ICMP with checksums computed from scratch, so an
 * expected output built here checks the datapath's incremental checksum updates independently.
 */
#ifndef PREP_NODE_TEST_PKT_H
#define PREP_NODE_TEST_PKT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PKT_MAX 2048

/* offsets in a built frame */
#define PKT_ETH_LEN 14
#define PKT_IP_OFF 14

struct pkt_spec {
	const char *src;        /* dotted IPv4 */
	const char *dst;
	uint8_t proto;          /* IPPROTO_TCP / UDP / SCTP (CRC32c from scratch) / ICMP */
	uint16_t sport, dport;  /* host order */
	uint8_t tcp_flags;      /* default 0x02 (SYN) when 0 */
	uint8_t icmp_type, icmp_code;
	uint16_t icmp_id;       /* host order */
	uint16_t ip_id;         /* host order */
	uint8_t ip_options;     /* number of 4-byte NOP option words after the IPv4 header */
	uint16_t payload_len;   /* bytes of pattern payload after the L4 header */
	bool udp_zero_csum;     /* UDP: send checksum 0 (none) */
	bool df;                /* IPv4: set don't-fragment */
};

/* Build a whole frame into buf (PKT_MAX); returns its length. */
size_t pkt_build(const struct pkt_spec *s, uint8_t *buf);

/* Cut an unfragmented frame into the fragment carrying IP payload bytes [off, off+len); more: MF.
 * off must be a multiple of 8. Returns the fragment's length. */
size_t pkt_fragment(const uint8_t *frame, size_t frame_len, size_t off, size_t len, bool more,
		    uint8_t *out);

/* An IPv6 frame: Ethernet + IPv6 + extension headers + TCP/UDP/ICMPv6, checksums from scratch. */
struct pkt6_spec {
	const char *src;        /* IPv6 text */
	const char *dst;
	uint8_t proto;          /* IPPROTO_TCP / UDP / SCTP / ICMPV6 (58) */
	uint16_t sport, dport;  /* host order */
	uint8_t tcp_flags;      /* default 0x02 (SYN) when 0 */
	uint8_t icmp_type, icmp_code;
	uint16_t icmp_id;
	uint8_t ext[8];         /* extension headers in order (0 hop-by-hop, 43 routing, 44 fragment,
				 * 51 AH, 60 destination options), each 8 bytes; n_ext of them */
	uint8_t n_ext;
	uint16_t frag_off;      /* fragment header: offset in 8-byte units; frag_more: M flag */
	bool frag_more;
	uint16_t payload_len;   /* bytes of pattern payload after the L4 header */
};

#define PKT6_IP_LEN 40

/* Build a whole IPv6 frame into buf (PKT_MAX); returns its length. A fragment header with
 * frag_off > 0 is followed by pattern bytes only (a later fragment: no L4 header). */
size_t pkt6_build(const struct pkt6_spec *s, uint8_t *buf);

/* An ICMP error (type, code; mtu for fragmentation needed) from src to dst quoting the first
 * quote_max bytes of the IPv4 packet in quoted (a frame from pkt_build), checksums from scratch. */
size_t pkt_icmp_error(const char *src, const char *dst, uint8_t type, uint8_t code, uint16_t mtu,
		      const uint8_t *quoted, size_t quoted_len, size_t quote_max, uint8_t *buf);

/* The same for IPv6: an ICMPv6 error (type, code; mtu for packet too big) from src to dst quoting
 * the first quote_max bytes of the IPv6 packet in quoted (a frame from pkt6_build). */
size_t pkt6_icmp_error(const char *src, const char *dst, uint8_t type, uint8_t code, uint32_t mtu,
		       const uint8_t *quoted, size_t quoted_len, size_t quote_max, uint8_t *buf);

/* Recompute the IPv4 header checksum (after a test edits the header on purpose). */
void pkt_fix_ip_csum(uint8_t *frame);

/* Hex dump of the first difference between a and b into a short string (for TAP diagnostics). */
const char *pkt_diff(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen);

#endif /* PREP_NODE_TEST_PKT_H */
