/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Address and port rewrite with incremental checksum updates (RFC 1624 via the kernel helpers).
 * The TCP/UDP checksum covers the pseudo header, so an address change updates it too
 * (BPF_F_PSEUDO_HDR); a UDP checksum of 0 means "none" and stays 0 (BPF_F_MARK_MANGLED_0).
 * Later fragments carry no L4 header: only the IPv4 header changes, the first fragment's L4
 * checksum already covers the whole datagram.
 */
#ifndef PREP_NODE_NAT_H
#define PREP_NODE_NAT_H

#include "common.h"
#include "parse.h"

#define NAT_SRC 0
#define NAT_DST 1

/* Rewrite the source (NAT_SRC) or destination (NAT_DST) of p to addr:port. 0 or -1. */
static __always_inline int nat_rewrite(struct __sk_buff *skb, const struct pkt *p, int which,
				       __be32 addr, __be16 port)
{
	__be32 old_addr = which == NAT_DST ? p->daddr : p->saddr;
	__be16 old_port = which == NAT_DST ? p->dport : p->sport;
	__u32 addr_off = L3_OFF + (which == NAT_DST ? offsetof(struct iphdr, daddr)
						    : offsetof(struct iphdr, saddr));
	/* TCP and UDP have source port at 0 and destination port at 2 */
	__u32 port_off = p->l4_off + (which == NAT_DST ? 2 : 0);
	__u64 l4_flags = p->proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0;

	if (old_addr != addr) {
		if (p->csum_off &&
		    bpf_l4_csum_replace(skb, p->csum_off, old_addr, addr, l4_flags | BPF_F_PSEUDO_HDR | 4))
			return -1;
		if (bpf_l3_csum_replace(skb, L3_OFF + offsetof(struct iphdr, check), old_addr, addr, 4))
			return -1;
		if (bpf_skb_store_bytes(skb, addr_off, &addr, 4, 0))
			return -1;
	}
	if (p->csum_off && old_port != port) {
		if (bpf_l4_csum_replace(skb, p->csum_off, old_port, port, l4_flags | 2))
			return -1;
		if (bpf_skb_store_bytes(skb, port_off, &port, 2, 0))
			return -1;
	}
	return 0;
}

#endif /* PREP_NODE_NAT_H */
