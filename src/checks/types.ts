// What a check is and what it returns. A check reads a Host and returns data; it never prints.

import type { Host } from '../host/host.js';
import type { Profile } from '../profiles/schema.js';

/** pass: as wanted; warn: works, but not as recommended; fail: the node is wrong; error: could not tell; skip: not run. */
export type Status = 'pass' | 'warn' | 'fail' | 'error' | 'skip';

/** Knobs from the command line that change how checks measure. */
export interface CheckOptions {
  /** How long cpu.steal samples /proc/stat (--steal-seconds). */
  stealSeconds: number;
}

export interface CheckContext {
  host: Host;
  profile: Profile;
  options: CheckOptions;
  /** Per-host memo: facts several checks read (vCPUs, interfaces, sysctls) cost one round-trip. */
  cache: Map<string, Promise<unknown>>;
}

/** Compute a fact once per host and run; later callers share the first call's promise. */
export function memo<T>(ctx: CheckContext, key: string, compute: () => Promise<T>): Promise<T> {
  let p = ctx.cache.get(key) as Promise<T> | undefined;
  if (!p) {
    p = compute();
    ctx.cache.set(key, p);
  }
  return p;
}

/** What a check found. `remedy` is a command or instruction a person can paste, set when not passing. */
export interface Finding {
  status: Status;
  observed: string;
  expected: string;
  remedy?: string;
  /** Why, in a sentence, with the source of the requirement when it helps. */
  detail?: string;
}

export interface CheckResult extends Finding {
  id: string;
  title: string;
  /** True when --ignore named this check: its status no longer sets the exit code. */
  ignored: boolean;
}

export interface Check {
  /** Stable dotted id: what --ignore and --json use. */
  id: string;
  title: string;
  /** Checks that must pass (or warn) first; otherwise this one is skipped, naming them. */
  requires?: string[];
  run(ctx: CheckContext): Promise<Finding>;
}
