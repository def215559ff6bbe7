// `prep-node apply` and `prep-node rollback`: tune nodes from a profile, and undo it exactly.
import { ExitCode } from '../errors.js';
import { openHost } from '../host/connect.js';
import { BatchingHost } from '../host/batch.js';
import { DEFAULT_PROFILE, loadProfile } from '../profiles/load.js';
import type { Profile } from '../profiles/schema.js';
import { JOURNAL_FILE } from '../tuners/journal.js';
import { applyProfile, planSize, rollback, type ApplyReport, type Refusal, type RollbackReport } from '../tuners/runner.js';
import type { Io } from './check.js';
import type { HostSpec } from '../inventory.js';
import { connectOptions, failureLine, fleetExitCode, resolveHosts, runOnHosts, throwIfOnlyHostFailed, type HostOptions, type HostOutcome } from './hosts.js';

export interface ApplyOptions extends HostOptions {
  profile?: string;
  dryRun?: boolean;
  confirmTimeout: number;
}

/** Render one host's plan (and what became of it). */
export function renderPlan(target: string, profile: string, r: Pick<ApplyReport, 'plans' | 'recovered' | 'applied' | 'unverified'> & { refused?: Refusal[] }, dryRun: boolean): string {
  const out: string[] = [];
  const n = planSize(r.plans);
  const refused = r.refused ?? [];
  const what = n === 0 && refused.length === 0 ? 'nothing to change' : `${n} change${n === 1 ? '' : 's'}${dryRun ? ' planned (dry run: nothing changed)' : ''}`;
  const stop = refused.length > 0 ? `; ${refused.length} refused (apply would stop before the first write)` : '';
  out.push(`${target}: profile ${profile}: ${what}${stop}`);
  for (const note of r.recovered) out.push(`  ! ${note}`);
  const rows: string[][] = [];
  for (const p of r.plans) {
    for (const c of p.changes) rows.push([p.tuner, c.key, `${c.current} → ${c.desired}`, `persist: ${c.persist}`]);
    for (const f of p.files) rows.push([p.tuner, f.path, f.symlink !== undefined ? `link → ${f.symlink}` : 'write file', '']);
  }
  const w = [0, 1, 2].map((i) => Math.max(0, ...rows.map((row) => row[i]!.length)));
  for (const row of rows) out.push(`  ${row[0]!.padEnd(w[0]!)}  ${row[1]!.padEnd(w[1]!)}  ${row[2]!.padEnd(w[2]!)}  ${row[3]}`.trimEnd());
  const unchanged = r.plans.reduce((k, p) => k + p.unchanged.length, 0);
  if (unchanged > 0) out.push(`  ${unchanged} item${unchanged === 1 ? '' : 's'} already as wanted`);
  for (const p of r.plans) for (const note of p.notes) out.push(`  note: ${p.tuner}: ${note}`);
  for (const x of refused) out.push(`  REFUSED: ${x.tuner}: ${x.reason}`);
  if (!dryRun && r.applied) {
    if (r.unverified.length > 0) for (const u of r.unverified) out.push(`  FAILED to verify: ${u}`);
    else if (n > 0) out.push(`  applied and verified; originals journaled in ${JOURNAL_FILE} (undo: prep-node rollback ${target})`);
  }
  return out.join('\n') + '\n';
}

async function profilesFor(specs: { profile?: string }[], fallback: string | undefined): Promise<Map<string, Profile>> {
  const profiles = new Map<string, Profile>();
  for (const name of new Set(specs.map((s) => s.profile ?? fallback ?? DEFAULT_PROFILE))) profiles.set(name, await loadProfile(name));
  return profiles;
}

/** One finished host's exit code: a dry run that found refusals exits 5 as the real run would; unverified changes are findings. */
export function applyExitCode(r: Pick<ApplyReport, 'refused' | 'unverified'>): ExitCode {
  return r.refused.length > 0 ? ExitCode.refused : r.unverified.length > 0 ? ExitCode.findings : ExitCode.ok;
}

/** Print each host's result (or its failure line) and give the run's exit code (`codeOf` judges a finished host). */
function settle<R>(outcomes: HostOutcome<R>[], io: Io, render: (spec: HostSpec, value: R) => string, codeOf: (value: R) => ExitCode): ExitCode {
  throwIfOnlyHostFailed(outcomes);
  const codes = new Set<ExitCode>();
  for (const o of outcomes) {
    if ('error' in o) io.stdout.write(`${failureLine(o.spec, o.error)}\n`);
    else {
      codes.add(codeOf(o.value));
      io.stdout.write(render(o.spec, o.value));
    }
  }
  return fleetExitCode(outcomes, codes.has(ExitCode.refused) ? ExitCode.refused : codes.has(ExitCode.findings) ? ExitCode.findings : ExitCode.ok);
}

export async function apply(targets: string[], options: ApplyOptions, io: Io): Promise<ExitCode> {
  const specs = await resolveHosts(targets, options);
  const profiles = await profilesFor(specs, options.profile);
  const profileOf = (p?: string) => profiles.get(p ?? options.profile ?? DEFAULT_PROFILE)!;
  const conn = connectOptions(options);
  const outcomes = await runOnHosts<ApplyReport>(
    specs,
    options,
    {
      work: async (host, spec, progress) => {
        // Reads started together (tuners planning side by side) travel as one script.
        const batched = new BatchingHost(host);
        const report = await applyProfile(batched, profileOf(spec.profile), {
          dryRun: options.dryRun === true,
          confirmTimeout: options.confirmTimeout,
          reconnect: async () => new BatchingHost(await openHost(spec.target, conn)),
          progress,
        });
        if (report.host !== batched) await report.host.close();
        return report;
      },
      summarize: (r) => `${planSize(r.plans)} changes${options.dryRun ? ' planned' : ''}`,
    },
    io.stdout.isTTY === true,
  );
  return settle(outcomes, io, (spec, r) => renderPlan(spec.target.spec, profileOf(spec.profile).name, r, options.dryRun === true), applyExitCode);
}

export interface RollbackOptions extends HostOptions {
  dryRun?: boolean;
}

/** Render one host's rollback. */
export function renderRollback(target: string, r: RollbackReport, dryRun: boolean): string {
  const out: string[] = [];
  if (!r.journal) return `${target}: nothing to roll back (no ${JOURNAL_FILE}: prep-node has not changed this node)\n`;
  const j = r.journal;
  out.push(`${target}: ${dryRun ? 'would roll back' : 'rolled back'} profile ${j.run.profile} (run ${j.run.id}, ${j.run.state})`);
  for (const note of r.recovered) out.push(`  ! ${note}`);
  for (const v of j.values) out.push(`  ${v.tuner}  ${v.key}  → ${v.value.trim() === '' ? '(empty)' : v.value.trim().replace(/\s+/g, ' ')}`);
  for (const f of j.files) out.push(`  file  ${f.path}  → ${f.original.kind === 'absent' ? 'removed' : f.original.kind === 'symlink' ? `link → ${f.original.target}` : 'original content, mode and owner'}`);
  for (const w of r.warnings) out.push(`  warning: ${w.replace(/^prep-node: /, '')}`);
  if (!dryRun) out.push(r.mismatched.length === 0 ? `  verified: every file is byte for byte as before` : `  FAILED: not as before: ${r.mismatched.join(', ')}`);
  return out.join('\n') + '\n';
}

export async function rollbackCommand(targets: string[], options: RollbackOptions, io: Io): Promise<ExitCode> {
  const outcomes = await runOnHosts<RollbackReport>(
    await resolveHosts(targets, options),
    options,
    { work: (host) => rollback(new BatchingHost(host), options.dryRun === true), summarize: (r) => (r.journal ? 'rolled back' : 'nothing to roll back') },
    io.stdout.isTTY === true,
  );
  return settle(outcomes, io, (spec, r) => renderRollback(spec.target.spec, r, options.dryRun === true), (r) => (r.mismatched.length > 0 ? ExitCode.findings : ExitCode.ok));
}
