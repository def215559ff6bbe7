// The --json document: one per run, nothing else on stdout. Its shape is documented in the README
// ("JSON output"); `schema` changes only when a field changes meaning or is removed.
import type { CheckResult } from '../checks/types.js';
import type { FleetResult } from '../checks/fleet.js';
import { countStatuses, exitCodeFor, type Counts, type HostReport } from './model.js';

export const CHECK_SCHEMA = 'prep-node/check/v1';

export interface CheckDocument {
  schema: typeof CHECK_SCHEMA;
  version: string;
  startedAt: string;
  durationMs: number;
  hosts: {
    target: string;
    profile: string;
    reachable: boolean;
    error: { kind: string; message: string } | null;
    counts: Counts;
    checks: (Omit<CheckResult, 'remedy' | 'detail'> & { remedy: string | null; detail: string | null })[];
  }[];
  summary: { hosts: number; unreachable: number } & Counts;
  /** Checks across the hosts (several hosts only; null for one): each names the hosts that disagree. */
  fleet: { counts: Counts; checks: (Omit<FleetResult, 'remedy' | 'detail'> & { remedy: string | null; detail: string | null })[] } | null;
  exitCode: number;
}

export function checkDocument(reports: HostReport[], meta: { version: string; startedAt: Date; durationMs: number }, fleet?: readonly FleetResult[]): CheckDocument {
  const hosts = reports.map((r) => ({
    target: r.target,
    profile: r.profile,
    reachable: r.error === undefined,
    error: r.error ?? null,
    counts: countStatuses(r.checks),
    checks: r.checks.map((c) => ({ ...c, remedy: c.remedy ?? null, detail: c.detail ?? null })),
  }));
  const total = countStatuses(reports.flatMap((r) => r.checks));
  return {
    schema: CHECK_SCHEMA,
    version: meta.version,
    startedAt: meta.startedAt.toISOString(),
    durationMs: meta.durationMs,
    hosts,
    summary: { hosts: reports.length, unreachable: reports.filter((r) => r.error).length, ...total },
    fleet: fleet ? { counts: countStatuses(fleet), checks: fleet.map((c) => ({ ...c, remedy: c.remedy ?? null, detail: c.detail ?? null })) } : null,
    exitCode: exitCodeFor(reports, fleet),
  };
}
