// What a check is and what it returns. A check reads a Host and returns data; it never prints.

import type { ProbeContext } from '../probes/context.js';
import type { Profile } from '../profiles/schema.js';

export { memo } from '../probes/context.js';

/** pass: as wanted; warn: works, but not as recommended; fail: the node is wrong; error: could not tell; skip: not run. */
export type Status = 'pass' | 'warn' | 'fail' | 'error' | 'skip';

/** Knobs from the command line that change how checks measure. */
export interface CheckOptions {
  /** How long cpu.steal samples /proc/stat (--steal-seconds). */
  stealSeconds: number;
}

/** A check's view of the node (host and memo, as probes take them) plus the profile and the command line's knobs. */
export interface CheckContext extends ProbeContext {
  profile: Profile;
  options: CheckOptions;
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

// How bad a per-interface status is when several are folded into one finding.
const RANK: Record<Status, number> = { skip: 0, pass: 1, warn: 2, error: 3, fail: 4 };

/** The worst of several statuses (fail > error > warn > pass). */
export function worstStatus(statuses: Status[]): Status {
  return statuses.reduce<Status>((a, b) => (RANK[b] > RANK[a] ? b : a), 'pass');
}
