// Distro kernel release strings (`uname -r`) → a semver version and what the suffix tells us.
// Examples: 5.15.0-91-generic (Ubuntu), 6.1.0-28-cloud-amd64 (Debian), 6.8.0-1015-aws (Ubuntu on
// AWS), 4.18.0-513.5.1.el8_9.x86_64 (RHEL 8.9), 5.14.0-427.13.1.el9_4.x86_64 (RHEL 9.4),
// 6.1.79-99.164.amzn2023.x86_64 (Amazon Linux 2023), 6.18.44-fc-v669 (a custom build).
import semver from 'semver';

export interface KernelRelease {
  raw: string;
  /** major.minor.patch as semver (the upstream base the distro kernel was cut from). */
  version: string;
  /** RHEL major.minor when the string is a RHEL (or rebuild) kernel: el8_9 → "8.9". */
  rhel?: { major: number; minor: number | null; build: number };
}

// RHEL 8 GA kernel builds (4.18.0-N), for `el8` strings without the `_minor` suffix.
// Source: Red Hat, "Red Hat Enterprise Linux Release Dates" (kernel versions per minor release).
const RHEL8_BUILDS: [number, number][] = [
  [553, 10], [513, 9], [477, 8], [425, 7], [372, 6], [348, 5], [305, 4], [240, 3], [193, 2], [147, 1], [80, 0],
];

/** Parse `uname -r`; null when it does not start with a version number. */
export function parseKernelRelease(raw: string): KernelRelease | null {
  const s = raw.trim();
  const m = /^(\d+)\.(\d+)(?:\.(\d+))?/.exec(s);
  if (!m) return null;
  const version = semver.valid(`${m[1]}.${m[2]}.${m[3] ?? 0}`);
  if (!version) return null;
  const el = /-(\d+)(?:\.[\d.]+)?\.el(\d+)(?:_(\d+))?/.exec(s);
  if (!el) return { raw: s, version };
  const build = Number(el[1]);
  const major = Number(el[2]);
  let minor: number | null = el[3] !== undefined ? Number(el[3]) : null;
  if (minor === null && major === 8) minor = RHEL8_BUILDS.find(([b]) => build >= b)?.[1] ?? null;
  return { raw: s, version, rhel: { major, minor, build } };
}

/** "5.10" or "5.10.0" → a semver string; null when it is not a version. */
export function coerceVersion(text: string): string | null {
  const m = /^(\d+)\.(\d+)(?:\.(\d+))?$/.exec(text.trim());
  return m ? `${m[1]}.${m[2]}.${m[3] ?? 0}` : null;
}
