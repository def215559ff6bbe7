// Maglev consistent hashing (Eisenbud et al., NSDI 2016, section 3.4): each backend walks its own
// permutation of the M table entries (offset and skip from two hashes of its address and port) and
// backends take turns claiming their next free entry until the table is full. A backend of weight w
// claims w entries per turn, so its share is w / (sum of weights). Removing a backend changes few
// entries besides its own. Also the flow hashes of bpf/include/lb_hash.h, so userspace can predict
// which entry a flow or socket picks.
import { LB_HASH_SEED, LB_MAGLEV_M } from './consts.js';

function rol32(w: number, s: number): number {
  return ((w << s) | (w >>> (32 - s))) >>> 0;
}

/** lb_hash_3words() (jhash_3words: lookup3's final mix) of bpf/include/lb_hash.h. */
export function lbHash3Words(a0: number, b0: number, c0: number, seed: number): number {
  const init = (0xdeadbeef + (3 << 2) + seed) >>> 0;
  let a = (a0 + init) >>> 0;
  let b = (b0 + init) >>> 0;
  let c = (c0 + init) >>> 0;
  c = ((c ^ b) - rol32(b, 14)) >>> 0;
  a = ((a ^ c) - rol32(c, 11)) >>> 0;
  b = ((b ^ a) - rol32(a, 25)) >>> 0;
  c = ((c ^ b) - rol32(b, 16)) >>> 0;
  a = ((a ^ c) - rol32(c, 4)) >>> 0;
  b = ((b ^ a) - rol32(a, 14)) >>> 0;
  c = ((c ^ b) - rol32(b, 24)) >>> 0;
  return c;
}

/** Read a network-order value as the C code's (__u32) cast of it sees it on a little-endian CPU. */
function beAsHost32(n: number): number {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0, 0);
  return b.readUInt32LE(0);
}
function beAsHost16(n: number): number {
  return ((n & 0xff) << 8) | ((n >>> 8) & 0xff);
}

/** lb_flow_hash(): addresses and ports as numbers (10.0.0.1 = 0x0a000001), converted as the datapath sees them. */
export function lbFlowHash(saddr: number, daddr: number, sport: number, dport: number, proto: number): number {
  const ports = (((beAsHost16(sport) << 16) | beAsHost16(dport)) ^ proto) >>> 0;
  return lbHash3Words(beAsHost32(saddr), beAsHost32(daddr), ports, LB_HASH_SEED);
}

/** lb_cookie_hash() of a socket cookie. */
export function lbCookieHash(cookie: bigint): number {
  return lbHash3Words(Number(cookie & 0xffffffffn), Number((cookie >> 32n) & 0xffffffffn), 0, LB_HASH_SEED);
}

// Seeds of the two permutation hashes: any two different constants; fixed so every run and every
// node computes the same table.
const OFFSET_SEED = 0x6d61676c;
const SKIP_SEED = 0x65766c6e;

export interface MaglevBackend {
  addr: number;
  port: number;
  weight: number;
  /** what the table stores for it: its (first) backend slot */
  slot: number;
}

/** The M-entry table: entry i = the slot of the backend that owns it. Empty input: all zero. */
export function maglevTable(backends: readonly MaglevBackend[], m: number = LB_MAGLEV_M): Uint16Array {
  const table = new Uint16Array(m);
  if (backends.length === 0) return table;
  // Order by address so the table does not depend on the order the backends were listed in.
  const order = [...backends].sort((x, y) => x.addr - y.addr || x.port - y.port);
  const offset = order.map((b) => lbHash3Words(b.addr, b.port, 0, OFFSET_SEED) % m);
  const skip = order.map((b) => (lbHash3Words(b.addr, b.port, 0, SKIP_SEED) % (m - 1)) + 1);
  const next = order.map(() => 0);
  const owner = new Int32Array(m).fill(-1);
  let filled = 0;
  while (filled < m) {
    for (let i = 0; i < order.length && filled < m; i++) {
      for (let w = 0; w < order[i]!.weight && filled < m; w++) {
        let e: number;
        do e = (offset[i]! + next[i]!++ * skip[i]!) % m;
        while (owner[e]! >= 0);
        owner[e] = i;
        filled++;
      }
    }
  }
  for (let e = 0; e < m; e++) table[e] = order[owner[e]!]!.slot;
  return table;
}
