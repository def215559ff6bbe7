// Shared by every command that works on nodes: which hosts, how to reach them, and running a
// piece of work on each (in parallel, with a listr2 progress view on a terminal).
import { Listr } from 'listr2';
import { ExitCode, HostError, InternalError, PrepNodeError, UsageError, oneLine } from '../errors.js';
import { pool } from '../fleet.js';
import { openHost, type ConnectOptions } from '../host/connect.js';
import type { Host } from '../host/host.js';
import { parseTarget } from '../host/target.js';
import { loadInventory, type HostSpec } from '../inventory.js';

/** Options every node command takes (see cli.ts). */
export interface HostOptions {
  identity?: string[];
  port?: number;
  login?: string;
  sshConfig?: string;
  acceptNewHostKey?: boolean;
  connectTimeout?: number;
  inventory?: string;
  /** Ansible host pattern selecting inventory hosts (`--limit`). */
  limit?: string;
  concurrency: number;
}

/** Targets from argv plus the inventory; none at all means this machine. */
export async function resolveHosts(targets: string[], options: HostOptions): Promise<HostSpec[]> {
  const specs: HostSpec[] = targets.map((t) => ({ target: parseTarget(t) }));
  if (options.limit !== undefined && !options.inventory) throw new UsageError('--limit selects hosts of an inventory: give --inventory FILE too');
  // one by one: an inventory can hold more hosts than a call's argument list
  if (options.inventory) for (const s of await loadInventory(options.inventory, options.limit)) specs.push(s);
  if (specs.length === 0) specs.push({ target: parseTarget('local') });
  const seen = new Set<string>();
  for (const s of specs) {
    if (seen.has(s.target.spec)) throw new UsageError(`target "${s.target.spec}" is given twice`);
    seen.add(s.target.spec);
  }
  if (options.login) for (const s of specs) if (!s.target.local && !s.target.user) s.target.user = options.login;
  return specs;
}

export function connectOptions(options: HostOptions): ConnectOptions {
  return {
    ...(options.identity && { identityFiles: options.identity }),
    ...(options.port && { port: options.port }),
    ...(options.sshConfig && { configFile: options.sshConfig }),
    ...(options.acceptNewHostKey && { acceptNewHostKey: true }),
    ...(options.connectTimeout && { connectTimeoutSec: options.connectTimeout }),
  };
}

/**
 * The outcome of work on one host: its value, or why it failed. Every failure is a PrepNodeError: a
 * HostError (not reached or not root), a refusal, or an InternalError wrapping a bug; one host's
 * failure never stops the others.
 */
export type HostOutcome<R> = { spec: HostSpec; value: R } | { spec: HostSpec; error: PrepNodeError };

/** A failure's stable kind for --json: the HostError's kind, else what its exit code means. */
export function failureKind(err: PrepNodeError): string {
  if (err instanceof HostError) return err.kind;
  const names: Partial<Record<ExitCode, string>> = { [ExitCode.usage]: 'usage', [ExitCode.refused]: 'refused', [ExitCode.reverted]: 'reverted', [ExitCode.rollbackFailed]: 'rollback-failed', [ExitCode.applyFailed]: 'apply-failed', [ExitCode.internal]: 'internal' };
  return names[err.exitCode] ?? 'failed';
}

/** The line a failed host prints in a fleet run: its message, prefixed with the target unless it starts with it. */
export function failureLine(spec: HostSpec, err: PrepNodeError): string {
  const line = oneLine(err);
  return line.startsWith(`${spec.target.spec}: `) ? line : `${spec.target.spec}: ${line}`;
}

/** The order in which failures decide a fleet run's exit code: the first present wins. */
const FAILURE_ORDER: ExitCode[] = [ExitCode.unreachable, ExitCode.privilege, ExitCode.refused, ExitCode.reverted, ExitCode.rollbackFailed, ExitCode.applyFailed, ExitCode.internal];

/** A fleet run's exit code: the first of 3, 4, 5, 6, 7, 8, 70 among the failed hosts, else `otherwise` (from the hosts that finished). */
export function fleetExitCode(outcomes: HostOutcome<unknown>[], otherwise: ExitCode): ExitCode {
  const codes = new Set(outcomes.flatMap((o) => ('error' in o ? [o.error.exitCode] : [])));
  return FAILURE_ORDER.find((c) => codes.has(c)) ?? ([...codes][0] ?? otherwise);
}

/** With a single host, its failure is the command's own one-line error (as ssh's errors are). */
export function throwIfOnlyHostFailed(outcomes: HostOutcome<unknown>[]): void {
  const only = outcomes.length === 1 ? outcomes[0]! : undefined;
  if (only && 'error' in only) throw only.error;
}

export interface FleetRun<R> {
  /** The work on a connected host; `progress` updates the progress line. */
  work: (host: Host, spec: HostSpec, progress: (text: string) => void) => Promise<R>;
  /** A one-line summary of a finished host for the progress view. */
  summarize: (value: R) => string;
}

/** Connect to each host, run the work, close; at most `concurrency` hosts at a time. */
export async function runOnHosts<R>(specs: HostSpec[], options: HostOptions, run: FleetRun<R>, showProgress: boolean): Promise<HostOutcome<R>[]> {
  const conn = connectOptions(options);
  const one = async (spec: HostSpec, progress: (text: string) => void): Promise<HostOutcome<R>> => {
    let host: Host | undefined;
    try {
      progress('connecting');
      host = await openHost(spec.target, conn);
      return { spec, value: await run.work(host, spec, progress) };
    } catch (err) {
      return { spec, error: err instanceof PrepNodeError ? err : new InternalError(spec.target.spec, err) };
    } finally {
      await host?.close();
    }
  };
  if (!showProgress) return pool(specs, options.concurrency, (spec) => one(spec, () => {}));

  const outcomes = new Array<HostOutcome<R>>(specs.length);
  const tasks = new Listr(
    specs.map((spec, i) => ({
      title: spec.target.spec,
      task: async (_ctx: unknown, task: { title: string; output: string }) => {
        const outcome = await one(spec, (text) => (task.output = text));
        outcomes[i] = outcome;
        if ('error' in outcome) throw new Error(oneLine(outcome.error));
        task.title = `${spec.target.spec}: ${run.summarize(outcome.value)}`;
      },
    })),
    { concurrent: options.concurrency, exitOnError: false, rendererOptions: { collapseErrors: false } },
  );
  await tasks.run();
  return outcomes;
}
