/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The flow hash that picks a Maglev table entry. Shared by the BPF programs and userspace so a test
 * (or `datapath observe`) can predict which backend a flow gets. Bob Jenkins' lookup3 final mix, as
 * in the kernel's jhash_3words() and katran's jhash.
 */
#ifndef PREP_NODE_LB_HASH_H
#define PREP_NODE_LB_HASH_H

#include <linux/types.h>

/* seed of the flow hash; the same on every node so every node picks the same backend for a flow */
#define LB_HASH_SEED 0x5eed1b7eU

static inline __u32 lb_rol32(__u32 w, unsigned int s)
{
	return (w << s) | (w >> (32 - s));
}

/* jhash_3words(a, b, c, seed) */
static inline __u32 lb_hash_3words(__u32 a, __u32 b, __u32 c, __u32 seed)
{
	a += 0xdeadbeef + (3 << 2) + seed;
	b += 0xdeadbeef + (3 << 2) + seed;
	c += 0xdeadbeef + (3 << 2) + seed;
	c ^= b; c -= lb_rol32(b, 14);
	a ^= c; a -= lb_rol32(c, 11);
	b ^= a; b -= lb_rol32(a, 25);
	c ^= b; c -= lb_rol32(b, 16);
	a ^= c; a -= lb_rol32(c, 4);
	b ^= a; b -= lb_rol32(a, 14);
	c ^= b; c -= lb_rol32(b, 24);
	return c;
}

/* hash of a flow (addresses and ports in network order, as in the packet) */
static inline __u32 lb_flow_hash(__be32 saddr, __be32 daddr, __be16 sport, __be16 dport, __u8 proto)
{
	return lb_hash_3words((__u32)saddr, (__u32)daddr,
			      ((__u32)sport << 16 | (__u32)dport) ^ proto, LB_HASH_SEED);
}

/* hash of an IPv6 flow: each address folded to one word (xor of its four), then as IPv4 */
static inline __u32 lb_flow_hash6(const __be32 *saddr, const __be32 *daddr, __be16 sport,
				  __be16 dport, __u8 proto)
{
	return lb_flow_hash(saddr[0] ^ saddr[1] ^ saddr[2] ^ saddr[3],
			    daddr[0] ^ daddr[1] ^ daddr[2] ^ daddr[3], sport, dport, proto);
}

/* hash of a socket (socket LB: no source port at connect time; the cookie is unique per socket) */
static inline __u32 lb_cookie_hash(__u64 cookie)
{
	return lb_hash_3words((__u32)cookie, (__u32)(cookie >> 32), 0, LB_HASH_SEED);
}

#endif /* PREP_NODE_LB_HASH_H */
