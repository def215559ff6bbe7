// Runs a catalogue on one host: dependency order, skips naming the failed prerequisite, --ignore.
// A HostError (connection lost, sudo refused) ends the host; any other error is that check's `error`.
import { HostError, UsageError, oneLine } from '../errors.js';
import type { Check, CheckContext, CheckResult } from './types.js';

export interface RunnerOptions {
  /** Check ids, or `all`, whose failures are reported but do not set the exit code. */
  ignore?: string[];
  /** Called as each check finishes (progress views). */
  onResult?: (result: CheckResult) => void;
}

/** Reject unknown --ignore ids before anything runs. */
export function validateIgnore(checks: readonly Pick<Check, 'id'>[], ignore: string[]): void {
  const known = new Set(checks.map((c) => c.id));
  const unknown = ignore.filter((id) => id !== 'all' && !known.has(id));
  if (unknown.length > 0) {
    throw new UsageError(`--ignore: unknown check ${unknown.map((u) => `"${u}"`).join(', ')} (known: ${[...known].join(', ')}, or all)`);
  }
}

export async function runChecks(ctx: CheckContext, checks: readonly Check[], options: RunnerOptions = {}): Promise<CheckResult[]> {
  const ignore = new Set(options.ignore ?? []);
  const byId = new Map<string, CheckResult>();
  for (const check of checks) {
    const ignored = ignore.has('all') || ignore.has(check.id);
    const blocked = (check.requires ?? []).filter((id) => !['pass', 'warn'].includes(byId.get(id)?.status ?? 'skip'));
    let result: CheckResult;
    if (blocked.length > 0) {
      result = {
        id: check.id,
        title: check.title,
        status: 'skip',
        observed: '-',
        expected: '-',
        detail: `skipped: ${blocked.map((id) => `${id} is ${byId.get(id)?.status ?? 'missing'}`).join(', ')}`,
        ignored,
      };
    } else {
      try {
        result = { id: check.id, title: check.title, ...(await check.run(ctx)), ignored };
      } catch (err) {
        if (err instanceof HostError) throw err;
        result = { id: check.id, title: check.title, status: 'error', observed: '-', expected: '-', detail: `could not check: ${oneLine(err)}`, ignored };
      }
    }
    byId.set(check.id, result);
    options.onResult?.(result);
  }
  return [...byId.values()];
}
