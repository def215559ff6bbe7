// What every kind module shares: reading optional fields as the API server does (a key present
// with a null value is the same as an absent one), the one parser for ports, the one parser for
// CIDRs, unknown-key checks, and the sink a module reports findings and notes into.
import { formatCidrAny, parseCidrAny, parseIp, formatIpv6, type Family } from '../../ip.js';
import { Findings } from '../findings.js';
import { isObject, type InputObject, type Path } from '../manifests.js';

export const ALLOW_LEFT = 'this rule is left out: the traffic it allows stays denied';
export const DENY_LEFT = 'this rule is left out: the traffic it denies is NOT denied';

/** Where a kind module reports what it cannot enforce (findings) and what it read but did not use (notes). */
export interface Sink {
  findings: Findings;
  notes: string[];
}

export const newSink = (): Sink => ({ findings: new Findings(), notes: [] });

export function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}
export function arr(v: unknown): unknown[] {
  return Array.isArray(v) ? v : [];
}
export function obj(v: unknown): Record<string, unknown> {
  return isObject(v) ? v : {};
}
export function labelsOf(v: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(obj(v))) if (typeof x === 'string') out[k] = x;
  return out;
}
export const lower = (s: string) => s.toLowerCase();

/**
 * The object as the API server would hold it: every map key whose value is null removed, at every
 * depth (Go's JSON decoding leaves a nil pointer, map or slice for null: the field is absent). List
 * elements are kept (a null list element decodes to the zero value, which the modules read as {}).
 */
export function withoutNulls<T>(v: T): T {
  return hasNull(v) ? dropNulls(v) : v; // most objects have none: no copy
}

function hasNull(v: unknown): boolean {
  if (Array.isArray(v)) return v.some(hasNull);
  if (!isObject(v)) return false;
  for (const k in v) if (v[k] === null || hasNull(v[k])) return true;
  return false;
}

function dropNulls<T>(v: T): T {
  if (Array.isArray(v)) return v.map(dropNulls) as T;
  if (!isObject(v)) return v;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) if (x !== null) out[k] = dropNulls(x);
  return out as T;
}

export const nsOf = (o: InputObject) => str(obj(o.obj.metadata).namespace) ?? 'default';
export const nameOf = (o: InputObject) => str(obj(o.obj.metadata).name) ?? '';

/** A finding for each key of `v` that is not in `allowed`. */
export function checkKeys(sink: Sink, o: InputObject, v: Record<string, unknown>, at: Path, allowed: readonly string[], what: string, leftOut: string): void {
  for (const k of Object.keys(v)) if (!allowed.includes(k)) sink.findings.add(o.origin, [...at, k], `unknown ${what} field (expected ${allowed.join(', ')})`, leftOut);
}

/**
 * The one port parser: a number 1-65535, a numeric string, or an IANA-style port name (at most 15
 * characters, lowercase letters, digits and inner dashes). undefined when absent (cilium's "0" is
 * every port), null when it is none of these.
 */
export function parsePort(v: unknown): number | string | undefined | null {
  if (v === undefined) return undefined;
  if (typeof v === 'number') return Number.isInteger(v) && v >= 1 && v <= 65535 ? v : null;
  if (typeof v === 'string' && /^\d+$/.test(v)) {
    const n = Number(v);
    if (n === 0) return undefined;
    return n <= 65535 ? n : null;
  }
  if (typeof v === 'string' && /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/.test(v) && v.length <= 15) return v;
  return null;
}

/** A port that must be a number (a Service's port and nodePort): the number, or null. */
export function parsePortNumber(v: unknown): number | null {
  return typeof v === 'number' ? ((p) => (typeof p === 'number' ? p : null))(parsePort(v)) : null;
}

/** The one CIDR parser: an IPv4 or IPv6 CIDR (or a bare address, read as /32 or /128) in canonical form, or why not. */
export function parseCidrField(s: unknown): { cidr: string } | { why: string } {
  if (typeof s !== 'string') return { why: 'expected a CIDR such as 10.0.0.0/8 or fd00::/8' };
  const c = parseCidrAny(s);
  if (!c) return { why: `expected an IPv4 or IPv6 CIDR such as 10.0.0.0/8 or fd00::/8, got "${s}"` };
  return { cidr: formatCidrAny(c) };
}

/** An address of either family in canonical text (IPv6 as RFC 5952: fd00:0::A and fd00::a are one), or null. */
export function parseAddress(s: unknown): { ip: string; family: Family } | null {
  if (typeof s !== 'string') return null;
  const a = parseIp(s);
  if (!a) return null;
  return { ip: a.family === 4 ? s : formatIpv6(a.addr), family: a.family };
}

/** A value as a finding quotes it: a string in double quotes as it is (printing escapes control characters), anything else as JSON; at most 80 characters. */
export const shown = (v: unknown): string => (typeof v === 'string' ? `"${v.slice(0, 80)}"` : (JSON.stringify(v) ?? String(v)).slice(0, 80));

/** The family of an address already in canonical text. */
export const familyOf = (ip: string): Family => (ip.includes(':') ? 6 : 4);
