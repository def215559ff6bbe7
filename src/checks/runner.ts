// Runs a catalogue on one host: dependency order, skips naming the failed prerequisite, --ignore.
// A HostError (connection lost, sudo refused) ends the host; any other error is that check's `error`.
import { HostError, UsageError, oneLine } from '../errors.js';
import type { Check, CheckContext, CheckResult } from './types.js';

export interface RunnerOptions {
  /** Check ids, or `all`, whose failures are reported but do not set the exit code. */
  ignore?: string[];
  /** Called as each check finishes (progress views). */
  onResult?: (result: CheckResult) => void;
  /**
   * Start every check at once (a prerequisite is awaited, not assumed): with a BatchingHost, what
   * they read travels together. Results and onResult stay in catalogue order.
   */
  concurrent?: boolean;
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
  const started = new Map<string, Promise<CheckResult>>();
  const runOne = async (check: Check): Promise<CheckResult> => {
    const ignored = ignore.has('all') || ignore.has(check.id);
    // A prerequisite is judged once it has finished: in order, or (concurrent) by awaiting it.
    const prereqs = new Map<string, CheckResult | undefined>();
    for (const id of check.requires ?? []) prereqs.set(id, options.concurrent ? await started.get(id) : byId.get(id));
    const blocked = [...prereqs].filter(([, r]) => !['pass', 'warn'].includes(r?.status ?? 'skip'));
    if (blocked.length > 0) {
      return {
        id: check.id,
        title: check.title,
        status: 'skip',
        observed: '-',
        expected: '-',
        detail: `skipped: ${blocked.map(([id, r]) => `${id} is ${r?.status ?? 'missing'}`).join(', ')}`,
        ignored,
      };
    }
    try {
      return { id: check.id, title: check.title, ...(await check.run(ctx)), ignored };
    } catch (err) {
      if (err instanceof HostError) throw err;
      return { id: check.id, title: check.title, status: 'error', observed: '-', expected: '-', detail: `could not check: ${oneLine(err)}`, ignored };
    }
  };
  if (options.concurrent) {
    // Every check starts now, so the commands they start together share one round trip (a
    // BatchingHost); results are still reported in catalogue order, and a HostError still ends the
    // host at the first check (in that order) that met it.
    for (const check of checks) {
      const p = runOne(check);
      p.catch(() => undefined);
      started.set(check.id, p);
    }
  }
  for (const check of checks) {
    const result = await (started.get(check.id) ?? runOne(check));
    byId.set(check.id, result);
    options.onResult?.(result);
  }
  return [...byId.values()];
}
