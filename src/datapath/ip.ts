// IPv4 addresses and prefixes as unsigned 32-bit numbers: parsing (strict dotted quad), formatting,
// containment; IPv6 and prefixes of either family below (endpoints and policy CIDRs take IPv6).

/** An IPv4 prefix: network address (host bits zero) and length. */
export interface Cidr {
  addr: number;
  len: number;
}

/** A dotted quad as an unsigned number, or null when it is not one (no leading zeros, each part <= 255). */
export function parseIpv4(s: string): number | null {
  // by character codes, nothing allocated: the agent parses every backend's address on each sync
  if (s.length < 7 || s.length > 15) return null;
  let n = 0;
  let part = 0;
  let digits = 0;
  let parts = 0;
  for (let i = 0; i <= s.length; i++) {
    const c = i < s.length ? s.charCodeAt(i) : 46;
    if (c === 46) {
      if (digits === 0 || ++parts > 4) return null;
      n = n * 256 + part;
      part = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57) {
      if (digits === 1 && part === 0) return null; // a leading zero
      part = part * 10 + (c - 48);
      if (++digits > 3 || part > 255) return null;
    } else return null;
  }
  return parts === 4 ? n : null;
}

export function formatIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

/** The mask of a prefix length as an unsigned number. */
export function prefixMask(len: number): number {
  return len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
}

/** "a.b.c.d/len" (or a bare address = /32); null when malformed. hostBits: the address had bits past the prefix. */
export function parseCidr(s: string): (Cidr & { hostBits: boolean }) | null {
  const [ip, len, extra] = s.split('/');
  if (extra !== undefined || ip === undefined) return null;
  const addr = parseIpv4(ip);
  const n = len === undefined ? 32 : /^\d{1,2}$/.test(len) ? Number(len) : NaN;
  if (addr === null || !(n >= 0 && n <= 32)) return null;
  const net = (addr & prefixMask(n)) >>> 0;
  return { addr: net, len: n, hostBits: net !== addr };
}

export function formatCidr(c: Cidr): string {
  return `${formatIpv4(c.addr)}/${c.len}`;
}

/** Whether `inner` lies inside `outer` (equal counts). */
export function cidrContains(outer: Cidr, inner: Cidr): boolean {
  return inner.len >= outer.len && ((inner.addr & prefixMask(outer.len)) >>> 0) === outer.addr;
}

// ---- IPv6, and prefixes of either family (addresses as bigint: 128 bits do not fit a number) ----

export type Family = 4 | 6;

/** A prefix of either family: network address (host bits zero) as a bigint, and length. */
export interface AnyCidr {
  family: Family;
  addr: bigint;
  len: number;
}

const HEXGROUP = /^[0-9a-fA-F]{1,4}$/;

/** An IPv6 address (RFC 4291 text: ::, an embedded dotted quad at the end) as a bigint, or null. Zones (%eth0) are refused. */
export function parseIpv6(s: string): bigint | null {
  if (s.length > 45 || !s.includes(':')) return null;
  const halves = s.split('::');
  if (halves.length > 2) return null;
  const groups = (part: string): number[] | null => {
    if (part === '') return [];
    const out: number[] = [];
    const items = part.split(':');
    for (let i = 0; i < items.length; i++) {
      const g = items[i]!;
      if (i === items.length - 1 && g.includes('.')) {
        const v4 = parseIpv4(g);
        if (v4 === null) return null;
        out.push(v4 >>> 16, v4 & 0xffff);
      } else if (HEXGROUP.test(g)) out.push(parseInt(g, 16));
      else return null;
    }
    return out;
  };
  const head = groups(halves[0]!);
  const tail = halves.length === 2 ? groups(halves[1]!) : [];
  if (!head || !tail) return null;
  // an embedded dotted quad may only end the address
  if (halves.length === 2 && halves[0]!.includes('.')) return null;
  const n = head.length + tail.length;
  if (halves.length === 1 ? n !== 8 : n > 7) return null;
  const all = [...head, ...new Array<number>(8 - n).fill(0), ...tail];
  return all.reduce((acc, g) => (acc << 16n) | BigInt(g), 0n);
}

/** RFC 5952 text: lowercase, no leading zeros, the longest run of two or more zero groups as ::. */
export function formatIpv6(n: bigint): string {
  const g = Array.from({ length: 8 }, (_, i) => Number((n >> BigInt(112 - 16 * i)) & 0xffffn));
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (a: number[]) => a.map((x) => x.toString(16)).join(':');
  return best < 0 ? hex(g) : `${hex(g.slice(0, best))}::${hex(g.slice(best + bestLen))}`;
}

/** An address of either family, or null. */
export function parseIp(s: string): { family: Family; addr: bigint } | null {
  const v4 = parseIpv4(s);
  if (v4 !== null) return { family: 4, addr: BigInt(v4) };
  const v6 = parseIpv6(s);
  return v6 === null ? null : { family: 6, addr: v6 };
}

const bits = (f: Family) => (f === 4 ? 32 : 128);

/** The mask of a prefix length in a family, as a bigint. */
export function prefixMaskAny(family: Family, len: number): bigint {
  const all = (1n << BigInt(bits(family))) - 1n;
  return len === 0 ? 0n : (all << BigInt(bits(family) - len)) & all;
}

/** "addr/len" of either family (a bare address is a host prefix); null when malformed. hostBits: bits past the prefix were set. */
export function parseCidrAny(s: string): (AnyCidr & { hostBits: boolean }) | null {
  const [ip, len, extra] = s.split('/');
  if (extra !== undefined || ip === undefined) return null;
  const a = parseIp(ip);
  if (!a) return null;
  const max = bits(a.family);
  const n = len === undefined ? max : /^\d{1,3}$/.test(len) ? Number(len) : NaN;
  if (!(n >= 0 && n <= max)) return null;
  const net = a.addr & prefixMaskAny(a.family, n);
  return { family: a.family, addr: net, len: n, hostBits: net !== a.addr };
}

export function formatCidrAny(c: AnyCidr): string {
  return `${c.family === 4 ? formatIpv4(Number(c.addr)) : formatIpv6(c.addr)}/${c.len}`;
}

/** Whether `inner` lies inside `outer` (same family; equal counts). */
export function cidrContainsAny(outer: AnyCidr, inner: AnyCidr): boolean {
  return outer.family === inner.family && inner.len >= outer.len && (inner.addr & prefixMaskAny(outer.family, outer.len)) === outer.addr;
}

/** 16 bytes, network order. */
export function ipv6Bytes(n: bigint): Buffer {
  const b = Buffer.alloc(16);
  b.writeBigUInt64BE(n >> 64n, 0);
  b.writeBigUInt64BE(n & 0xffffffffffffffffn, 8);
  return b;
}
