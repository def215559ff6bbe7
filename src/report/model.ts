// The result of a run, per host, and the exit code it gives.
import { ExitCode, type HostErrorKind } from '../errors.js';
import type { CheckResult, Status } from '../checks/types.js';

export interface HostReport {
  /** The target as given (alias, user@host:port, local). */
  target: string;
  profile: string;
  /** Set when the host could not be reached or used; then `checks` is empty. */
  error?: { kind: HostErrorKind | 'usage' | 'internal'; message: string };
  checks: CheckResult[];
}

export type Counts = Record<Status, number>;

export function countStatuses(checks: CheckResult[]): Counts {
  const c: Counts = { pass: 0, warn: 0, fail: 0, error: 0, skip: 0 };
  for (const r of checks) c[r.status]++;
  return c;
}

/**
 * 3 when a host could not be reached (connection, authentication, host key), else 4 when sudo was
 * refused, else 70 when a host met a bug, else 1 when a check not ignored failed or could not tell,
 * else 0 (warnings pass, as in kubeadm).
 */
export function exitCodeFor(reports: HostReport[]): ExitCode {
  if (reports.some((r) => r.error && !r.error.kind.startsWith('sudo') && r.error.kind !== 'internal')) return ExitCode.unreachable;
  if (reports.some((r) => r.error?.kind.startsWith('sudo'))) return ExitCode.privilege;
  if (reports.some((r) => r.error)) return ExitCode.internal;
  const bad = reports.some((r) => r.checks.some((c) => !c.ignored && (c.status === 'fail' || c.status === 'error')));
  return bad ? ExitCode.findings : ExitCode.ok;
}
