/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Includes and small definitions every BPF entry file needs. Plain uapi headers: no vmlinux.h. */
#ifndef PREP_NODE_COMMON_H
#define PREP_NODE_COMMON_H

#include <linux/bpf.h>
#include <linux/types.h>
#include <linux/in.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <linux/pkt_cls.h>
#include <linux/errno.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <stddef.h>
#include <stdbool.h>

#include "datapath_structs.h"

#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif

/* from <sys/socket.h>, which is not usable from -target bpf */
#define SOCK_STREAM 1
#define SOCK_DGRAM 2

#define NSEC_PER_SEC 1000000000ULL

/* the first 8 bytes of an ICMP message (<linux/icmp.h> drags in libc's <sys/socket.h>) */
struct icmp_hdr8 {
	__u8 type;
	__u8 code;
	__sum16 checksum;
	__be16 id;       /* echo request/reply identifier */
	__be16 sequence;
};

#endif /* PREP_NODE_COMMON_H */
