// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include "pkt.h"

static uint32_t sum16(const uint8_t *p, size_t n, uint32_t acc)
{
	size_t i;

	for (i = 0; i + 1 < n; i += 2)
		acc += (uint32_t)p[i] << 8 | p[i + 1];
	if (n & 1)
		acc += (uint32_t)p[n - 1] << 8;
	return acc;
}

static uint16_t fold(uint32_t acc)
{
	while (acc >> 16)
		acc = (acc & 0xffff) + (acc >> 16);
	return (uint16_t)~acc;
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = v >> 8;
	p[1] = v & 0xff;
}

void pkt_fix_ip_csum(uint8_t *frame)
{
	uint8_t *ip = frame + PKT_IP_OFF;
	size_t ihl = (ip[0] & 0x0f) * 4;

	put16(ip + 10, 0);
	put16(ip + 10, fold(sum16(ip, ihl, 0)));
}

/* CRC32c (Castagnoli), as SCTP's checksum (RFC 4960 appendix B): reflected, init and final ~0 */
static uint32_t crc32c(const uint8_t *p, size_t n)
{
	uint32_t crc = 0xffffffffu;
	size_t i;
	int k;

	for (i = 0; i < n; i++) {
		crc ^= p[i];
		for (k = 0; k < 8; k++)
			crc = crc & 1 ? (crc >> 1) ^ 0x82f63b78u : crc >> 1;
	}
	return ~crc;
}

size_t pkt_build(const struct pkt_spec *s, uint8_t *buf)
{
	static const uint8_t dmac[6] = { 0x02, 0, 0, 0, 0, 0x02 }, smac[6] = { 0x02, 0, 0, 0, 0, 0x01 };
	uint8_t *ip = buf + PKT_IP_OFF, *l4;
	size_t ihl = 20 + 4 * s->ip_options, l4_len, i;
	struct in_addr a;
	uint32_t acc;

	memset(buf, 0, PKT_MAX);
	memcpy(buf, dmac, 6);
	memcpy(buf + 6, smac, 6);
	put16(buf + 12, 0x0800);

	l4 = ip + ihl;
	switch (s->proto) {
	case IPPROTO_TCP: l4_len = 20; break;
	case IPPROTO_UDP: l4_len = 8; break;
	case IPPROTO_SCTP: l4_len = 12; break; /* the common header; the payload stands for chunks */
	default: l4_len = 8; break; /* ICMP */
	}
	for (i = 0; i < s->payload_len; i++)
		l4[l4_len + i] = (uint8_t)(i * 7 + 3);

	ip[0] = 0x40 | (uint8_t)(ihl / 4);
	put16(ip + 2, (uint16_t)(ihl + l4_len + s->payload_len));
	put16(ip + 4, s->ip_id);
	if (s->df)
		ip[6] = 0x40;
	ip[8] = 64;
	ip[9] = s->proto;
	inet_pton(AF_INET, s->src, &a);
	memcpy(ip + 12, &a, 4);
	inet_pton(AF_INET, s->dst, &a);
	memcpy(ip + 16, &a, 4);
	for (i = 20; i < ihl; i++)
		ip[i] = 1; /* NOP options */
	pkt_fix_ip_csum(buf);

	/* pseudo header: src, dst, zero+proto, L4 length */
	acc = sum16(ip + 12, 8, 0) + s->proto + (uint32_t)(l4_len + s->payload_len);
	if (s->proto == IPPROTO_TCP) {
		put16(l4, s->sport);
		put16(l4 + 2, s->dport);
		put16(l4 + 4, 0x1234); /* seq */
		l4[12] = 5 << 4;
		l4[13] = s->tcp_flags ? s->tcp_flags : 0x02;
		put16(l4 + 14, 65535);
		put16(l4 + 16, fold(sum16(l4, l4_len + s->payload_len, acc)));
	} else if (s->proto == IPPROTO_UDP) {
		uint16_t c;

		put16(l4, s->sport);
		put16(l4 + 2, s->dport);
		put16(l4 + 4, (uint16_t)(l4_len + s->payload_len));
		c = fold(sum16(l4, l4_len + s->payload_len, acc));
		put16(l4 + 6, s->udp_zero_csum ? 0 : (c ? c : 0xffff));
	} else if (s->proto == IPPROTO_SCTP) {
		uint32_t c;

		put16(l4, s->sport);
		put16(l4 + 2, s->dport);
		put16(l4 + 4, 0xbeef); /* verification tag */
		c = crc32c(l4, l4_len + s->payload_len); /* over the SCTP packet only: no pseudo header */
		l4[8] = c & 0xff; /* sent least significant byte first, as Linux's sctp_compute_cksum() */
		l4[9] = (c >> 8) & 0xff;
		l4[10] = (c >> 16) & 0xff;
		l4[11] = c >> 24;
	} else {
		l4[0] = s->icmp_type;
		l4[1] = s->icmp_code;
		put16(l4 + 4, s->icmp_id);
		put16(l4 + 6, 1);
		put16(l4 + 2, fold(sum16(l4, l4_len + s->payload_len, 0)));
	}
	return PKT_ETH_LEN + ihl + l4_len + s->payload_len;
}

size_t pkt6_build(const struct pkt6_spec *s, uint8_t *buf)
{
	static const uint8_t dmac[6] = { 0x02, 0, 0, 0, 0, 0x02 }, smac[6] = { 0x02, 0, 0, 0, 0, 0x01 };
	uint8_t *ip = buf + PKT_IP_OFF, *h, *l4;
	size_t l4_len, i, plen;
	uint32_t acc;
	bool later = false;

	memset(buf, 0, PKT_MAX);
	memcpy(buf, dmac, 6);
	memcpy(buf + 6, smac, 6);
	put16(buf + 12, 0x86dd);
	ip[0] = 0x60;
	ip[7] = 64;
	inet_pton(AF_INET6, s->src, ip + 8);
	inet_pton(AF_INET6, s->dst, ip + 24);

	/* the chain: each header's first byte names the next */
	h = ip + 6; /* where the "next header" of the previous header lives */
	l4 = ip + PKT6_IP_LEN;
	for (i = 0; i < s->n_ext; i++) {
		*h = s->ext[i];
		l4[1] = 0; /* header length 0: 8 bytes, (0+1)*8 (AH: (0+2)*4) */
		if (s->ext[i] == 44) {
			put16(l4 + 2, (uint16_t)(s->frag_off << 3 | (s->frag_more ? 1 : 0)));
			put16(l4 + 6, 0x4242); /* identification (low half) */
			later = s->frag_off > 0;
		} else if (s->ext[i] != 51) {
			l4[2] = 1; /* PadN option, 4 bytes of padding: a valid options area */
			l4[3] = 4;
		}
		h = l4;
		l4 += 8;
	}
	*h = s->proto;

	switch (s->proto) {
	case IPPROTO_TCP: l4_len = 20; break;
	case IPPROTO_UDP: l4_len = 8; break;
	case IPPROTO_SCTP: l4_len = 12; break;
	default: l4_len = 8; break; /* ICMPv6 */
	}
	if (later)
		l4_len = 0;
	for (i = 0; i < s->payload_len; i++)
		l4[l4_len + i] = (uint8_t)(i * 7 + 3);
	plen = (size_t)(l4 - ip - PKT6_IP_LEN) + l4_len + s->payload_len;
	put16(ip + 4, (uint16_t)plen);
	if (later)
		return PKT_ETH_LEN + PKT6_IP_LEN + plen;

	/* pseudo header: src, dst, upper-layer length, next header */
	acc = sum16(ip + 8, 32, 0) + (uint32_t)(l4_len + s->payload_len) + s->proto;
	if (s->proto == IPPROTO_TCP) {
		put16(l4, s->sport);
		put16(l4 + 2, s->dport);
		put16(l4 + 4, 0x1234);
		l4[12] = 5 << 4;
		l4[13] = s->tcp_flags ? s->tcp_flags : 0x02;
		put16(l4 + 14, 65535);
		put16(l4 + 16, fold(sum16(l4, l4_len + s->payload_len, acc)));
	} else if (s->proto == IPPROTO_UDP) {
		uint16_t c;

		put16(l4, s->sport);
		put16(l4 + 2, s->dport);
		put16(l4 + 4, (uint16_t)(l4_len + s->payload_len));
		c = fold(sum16(l4, l4_len + s->payload_len, acc));
		put16(l4 + 6, c ? c : 0xffff);
	} else if (s->proto == IPPROTO_SCTP) {
		uint32_t c;

		put16(l4, s->sport);
		put16(l4 + 2, s->dport);
		put16(l4 + 4, 0xbeef);
		c = crc32c(l4, l4_len + s->payload_len); /* no pseudo header, as IPv4 */
		l4[8] = c & 0xff;
		l4[9] = (c >> 8) & 0xff;
		l4[10] = (c >> 16) & 0xff;
		l4[11] = c >> 24;
	} else {
		l4[0] = s->icmp_type;
		l4[1] = s->icmp_code;
		put16(l4 + 4, s->icmp_id);
		put16(l4 + 6, 1);
		put16(l4 + 2, fold(sum16(l4, l4_len + s->payload_len, acc)));
	}
	return PKT_ETH_LEN + PKT6_IP_LEN + plen;
}

size_t pkt_fragment(const uint8_t *frame, size_t frame_len, size_t off, size_t len, bool more,
		    uint8_t *out)
{
	const uint8_t *ip = frame + PKT_IP_OFF;
	size_t ihl = (ip[0] & 0x0f) * 4;
	size_t payload = frame_len - PKT_ETH_LEN - ihl;

	if (off + len > payload)
		len = payload - off;
	memcpy(out, frame, PKT_ETH_LEN + ihl);
	memcpy(out + PKT_ETH_LEN + ihl, ip + ihl + off, len);
	put16(out + PKT_IP_OFF + 2, (uint16_t)(ihl + len));
	put16(out + PKT_IP_OFF + 6, (uint16_t)((more ? 0x2000 : 0) | (off / 8)));
	pkt_fix_ip_csum(out);
	return PKT_ETH_LEN + ihl + len;
}

const char *pkt_diff(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	static char msg[160];
	size_t i, n = alen < blen ? alen : blen;

	for (i = 0; i < n && a[i] == b[i]; i++)
		;
	if (i == n && alen == blen)
		return "identical";
	if (i == n)
		snprintf(msg, sizeof(msg), "length %zu, expected %zu", alen, blen);
	else
		snprintf(msg, sizeof(msg), "byte %zu is %02x, expected %02x (length %zu, expected %zu)",
			 i, a[i], b[i], alen, blen);
	return msg;
}

size_t pkt_icmp_error(const char *src, const char *dst, uint8_t type, uint8_t code, uint16_t mtu,
		      const uint8_t *quoted, size_t quoted_len, size_t quote_max, uint8_t *buf)
{
	static const uint8_t dmac[6] = { 0x02, 0, 0, 0, 0, 0x02 }, smac[6] = { 0x02, 0, 0, 0, 0, 0x01 };
	uint8_t *ip = buf + PKT_IP_OFF, *icmp = ip + 20;
	size_t q = quoted_len - PKT_ETH_LEN;
	struct in_addr a;

	if (q > quote_max)
		q = quote_max;
	memset(buf, 0, PKT_MAX);
	memcpy(buf, dmac, 6);
	memcpy(buf + 6, smac, 6);
	put16(buf + 12, 0x0800);
	ip[0] = 0x45;
	put16(ip + 2, (uint16_t)(20 + 8 + q));
	ip[8] = 64;
	ip[9] = IPPROTO_ICMP;
	inet_pton(AF_INET, src, &a);
	memcpy(ip + 12, &a, 4);
	inet_pton(AF_INET, dst, &a);
	memcpy(ip + 16, &a, 4);
	pkt_fix_ip_csum(buf);
	icmp[0] = type;
	icmp[1] = code;
	put16(icmp + 6, mtu);
	memcpy(icmp + 8, quoted + PKT_ETH_LEN, q);
	put16(icmp + 2, fold(sum16(icmp, 8 + q, 0)));
	return PKT_ETH_LEN + 20 + 8 + q;
}

size_t pkt6_icmp_error(const char *src, const char *dst, uint8_t type, uint8_t code, uint32_t mtu,
		       const uint8_t *quoted, size_t quoted_len, size_t quote_max, uint8_t *buf)
{
	static const uint8_t dmac[6] = { 0x02, 0, 0, 0, 0, 0x02 }, smac[6] = { 0x02, 0, 0, 0, 0, 0x01 };
	uint8_t *ip = buf + PKT_IP_OFF, *icmp = ip + PKT6_IP_LEN;
	size_t q = quoted_len - PKT_ETH_LEN;
	uint32_t acc;

	if (q > quote_max)
		q = quote_max;
	memset(buf, 0, PKT_MAX);
	memcpy(buf, dmac, 6);
	memcpy(buf + 6, smac, 6);
	put16(buf + 12, 0x86dd);
	ip[0] = 0x60;
	put16(ip + 4, (uint16_t)(8 + q));
	ip[6] = 58;
	ip[7] = 64;
	inet_pton(AF_INET6, src, ip + 8);
	inet_pton(AF_INET6, dst, ip + 24);
	icmp[0] = type;
	icmp[1] = code;
	put16(icmp + 4, (uint16_t)(mtu >> 16));
	put16(icmp + 6, (uint16_t)mtu);
	memcpy(icmp + 8, quoted + PKT_ETH_LEN, q);
	acc = sum16(ip + 8, 32, 0) + (uint32_t)(8 + q) + 58;
	put16(icmp + 2, fold(sum16(icmp, 8 + q, acc)));
	return PKT_ETH_LEN + PKT6_IP_LEN + 8 + q;
}
