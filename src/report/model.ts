// The result of a run, per host, and the exit code it gives.
import { ExitCode, type HostErrorKind } from '../errors.js';
import type { CheckResult, Status } from '../checks/types.js';
import type { FleetResult } from '../checks/fleet.js';

export interface HostReport {
  /** The target as given (alias, user@host:port, local). */
  target: string;
  profile: string;
  /** Set when the host could not be reached or used; then `checks` is empty. */
  error?: { kind: HostErrorKind | 'usage' | 'internal'; message: string };
  checks: CheckResult[];
}

export type Counts = Record<Status, number>;

export function countStatuses(checks: readonly { status: Status }[]): Counts {
  const c: Counts = { pass: 0, warn: 0, fail: 0, error: 0, skip: 0 };
  for (const r of checks) c[r.status]++;
  return c;
}

/**
 * 3 when a host could not be reached (connection, authentication, host key), else 4 when sudo was
 * refused, else 70 when a host met a bug, else 1 when a check (a node's, or a fleet check) not ignored
 * failed or could not tell, else 0 (warnings pass, as in kubeadm).
 */
export function exitCodeFor(reports: HostReport[], fleet: readonly FleetResult[] = []): ExitCode {
  if (reports.some((r) => r.error && !r.error.kind.startsWith('sudo') && r.error.kind !== 'internal')) return ExitCode.unreachable;
  if (reports.some((r) => r.error?.kind.startsWith('sudo'))) return ExitCode.privilege;
  if (reports.some((r) => r.error)) return ExitCode.internal;
  const failing = (c: { ignored: boolean; status: Status }) => !c.ignored && (c.status === 'fail' || c.status === 'error');
  const bad = reports.some((r) => r.checks.some(failing)) || fleet.some(failing);
  return bad ? ExitCode.findings : ExitCode.ok;
}
