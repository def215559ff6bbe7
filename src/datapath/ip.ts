// IPv4 addresses and prefixes as unsigned 32-bit numbers: parsing (strict dotted quad), formatting,
// containment. The datapath keys are IPv4 only (datapath_structs.h), so is this.

/** An IPv4 prefix: network address (host bits zero) and length. */
export interface Cidr {
  addr: number;
  len: number;
}

const QUAD = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/** A dotted quad as an unsigned number, or null when it is not one (no leading zeros, each part <= 255). */
export function parseIpv4(s: string): number | null {
  const m = QUAD.exec(s);
  if (!m) return null;
  let n = 0;
  for (const part of m.slice(1)) {
    if (part.length > 1 && part.startsWith('0')) return null;
    const v = Number(part);
    if (v > 255) return null;
    n = n * 256 + v;
  }
  return n;
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
