// Map keys and values as the bytes of the C structs in bpf/include/datapath_structs.h. Addresses and
// ports are network order (__be32/__be16) exactly where the C says so; every other field is host
// order, which on every platform the loader is built for (x86_64, arm64) is little-endian. Padding
// is zero, as the C writers in bpf/lib/maps_user.c leave it (C initialisers zero the rest).
import { LB_MAGLEV_M, POLICY_PREFIX_ANY_PORT, POLICY_PREFIX_ANY_PROTO, STRUCT_SIZE } from './consts.js';
import { ipv6Bytes, prefixMaskAny } from './ip.js';

/** struct lb_svc_key { __be32 vip; __be16 port; __u8 proto; __u8 scope; } */
export function svcKey(vip: number, port: number, proto: number): Buffer {
  const b = Buffer.alloc(STRUCT_SIZE.lb_svc_key);
  b.writeUInt32BE(vip, 0);
  b.writeUInt16BE(port, 4);
  b.writeUInt8(proto, 6);
  return b;
}

/** struct lb_service { __u32 svc_id, backend_count, flags, affinity_timeout_s; } */
export function serviceValue(svcId: number, backendCount: number, flags: number, affinityTimeoutS: number): Buffer {
  const b = Buffer.alloc(STRUCT_SIZE.lb_service);
  b.writeUInt32LE(svcId, 0);
  b.writeUInt32LE(backendCount, 4);
  b.writeUInt32LE(flags, 8);
  b.writeUInt32LE(affinityTimeoutS, 12);
  return b;
}

/** struct lb_backend_key { __u32 svc_id; __u32 slot; } */
export function backendKey(svcId: number, slot: number): Buffer {
  const b = Buffer.alloc(STRUCT_SIZE.lb_backend_key);
  b.writeUInt32LE(svcId, 0);
  b.writeUInt32LE(slot, 4);
  return b;
}

/** struct lb_backend { __be32 addr; __be16 port; __u16 flags; __u32 backend_id; } */
export function backendValue(addr: number, port: number, backendId: number, flags = 0): Buffer {
  const b = Buffer.alloc(STRUCT_SIZE.lb_backend);
  b.writeUInt32BE(addr, 0);
  b.writeUInt16BE(port, 4);
  b.writeUInt16LE(flags, 6);
  b.writeUInt32LE(backendId, 8);
  return b;
}

/** struct lb6_svc_key { __be32 vip[4]; __be16 port; __u8 proto; __u8 scope; } */
export function svc6Key(vip: bigint, port: number, proto: number): Buffer {
  const b = Buffer.alloc(STRUCT_SIZE.lb6_svc_key);
  ipv6Bytes(vip).copy(b, 0);
  b.writeUInt16BE(port, 16);
  b.writeUInt8(proto, 18);
  return b;
}

/** struct lb6_backend { __be32 addr[4]; __be16 port; __u16 flags; __u32 backend_id; } (key: backendKey, as backends) */
export function backend6Value(addr: bigint, port: number, backendId: number, flags = 0): Buffer {
  const b = Buffer.alloc(STRUCT_SIZE.lb6_backend);
  ipv6Bytes(addr).copy(b, 0);
  b.writeUInt16BE(port, 16);
  b.writeUInt16LE(flags, 18);
  b.writeUInt32LE(backendId, 20);
  return b;
}

/** struct node_cfg { __be32 snat_addr; __u32 flags; } (key: u32Key(0)) */
export function nodeCfgValue(snatAddr: number): Buffer {
  const b = Buffer.alloc(STRUCT_SIZE.node_cfg);
  b.writeUInt32BE(snatAddr, 0);
  return b;
}

/** struct node_cfg6 { __be32 snat_addr[4]; __u32 flags; } (key: u32Key(0)) */
export function nodeCfg6Value(snatAddr: bigint): Buffer {
  const b = Buffer.alloc(STRUCT_SIZE.node_cfg6);
  ipv6Bytes(snatAddr).copy(b, 0);
  return b;
}

/** maglev key: __u32 svc_id */
export function u32Key(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n, 0);
  return b;
}

/** struct lb_maglev_table { __u16 slot[LB_MAGLEV_M]; } */
export function maglevValue(table: ArrayLike<number>): Buffer {
  if (table.length !== LB_MAGLEV_M) throw new Error(`a Maglev table has ${LB_MAGLEV_M} entries, not ${table.length}`);
  const b = Buffer.alloc(STRUCT_SIZE.lb_maglev_table);
  for (let i = 0; i < LB_MAGLEV_M; i++) b.writeUInt16LE(table[i]!, i * 2);
  return b;
}

/** endpoints key: __be32 address */
export function endpointKey(addr: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(addr, 0);
  return b;
}

/** struct endpoint_info { __u32 identity; __u32 flags; } */
export function endpointValue(identity: number, flags: number): Buffer {
  const b = Buffer.alloc(STRUCT_SIZE.endpoint_info);
  b.writeUInt32LE(identity, 0);
  b.writeUInt32LE(flags, 4);
  return b;
}

/** struct ipcache_key { __u32 prefixlen; __be32 addr; } (addr masked: the key is canonical) */
export function ipcacheKey(addr: number, prefixlen: number): Buffer {
  const b = Buffer.alloc(STRUCT_SIZE.ipcache_key);
  const mask = prefixlen === 0 ? 0 : (0xffffffff << (32 - prefixlen)) >>> 0;
  b.writeUInt32LE(prefixlen, 0);
  b.writeUInt32BE((addr & mask) >>> 0, 4);
  return b;
}

/** struct endpoint6_key { __be32 addr[4]; } */
export function endpoint6Key(addr: bigint): Buffer {
  return ipv6Bytes(addr);
}

/** struct ipcache6_key { __u32 prefixlen; __be32 addr[4]; } (addr masked: the key is canonical) */
export function ipcache6Key(addr: bigint, prefixlen: number): Buffer {
  if (prefixlen < 0 || prefixlen > 128) throw new Error(`IPv6 prefix length ${prefixlen} outside 0..128`);
  const b = Buffer.alloc(STRUCT_SIZE.ipcache6_key);
  b.writeUInt32LE(prefixlen, 0);
  ipv6Bytes(addr & prefixMaskAny(6, prefixlen)).copy(b, 4);
  return b;
}

/** struct ipcache_entry { __u32 identity; } */
export function ipcacheValue(identity: number): Buffer {
  return u32Key(identity);
}

/** What a policy entry matches besides local, remote and direction: proto 0 = anything; else portBits leading bits of port. */
export interface PortMatch {
  proto: number;
  port: number;
  portBits: number;
}

/**
 * struct policy_key { __u32 prefixlen, local_id, remote_id; __u8 direction, proto; __be16 dport; }
 * As dp_policy_set(): proto 0 → prefix 72 (proto and port zero); else 80 + portBits with the port's
 * bits past the prefix zeroed.
 */
export function policyKey(localId: number, remoteId: number, direction: number, m: PortMatch): Buffer {
  if (m.portBits < 0 || m.portBits > 16) throw new Error(`port prefix bits ${m.portBits} outside 0..16`);
  const b = Buffer.alloc(STRUCT_SIZE.policy_key);
  const anyProto = m.proto === 0;
  const mask = m.portBits === 0 ? 0 : (0xffff << (16 - m.portBits)) & 0xffff;
  b.writeUInt32LE(anyProto ? POLICY_PREFIX_ANY_PROTO : POLICY_PREFIX_ANY_PORT + m.portBits, 0);
  b.writeUInt32LE(localId, 4);
  b.writeUInt32LE(remoteId, 8);
  b.writeUInt8(direction, 12);
  b.writeUInt8(anyProto ? 0 : m.proto, 13);
  b.writeUInt16BE(anyProto ? 0 : m.port & mask, 14);
  return b;
}

/** struct policy_entry { __u8 action; __u8 pad[3]; __u32 rule_id; } */
export function policyValue(action: number, ruleId: number): Buffer {
  const b = Buffer.alloc(STRUCT_SIZE.policy_entry);
  b.writeUInt8(action, 0);
  b.writeUInt32LE(ruleId, 4);
  return b;
}

/** struct lb_service, read back (dump output). */
export function decodeServiceValue(b: Buffer): { svcId: number; backendCount: number; flags: number; affinityTimeoutS: number } {
  return { svcId: b.readUInt32LE(0), backendCount: b.readUInt32LE(4), flags: b.readUInt32LE(8), affinityTimeoutS: b.readUInt32LE(12) };
}
