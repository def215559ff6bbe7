// Shared by every command that works on nodes: which hosts, how to reach them, and running a
// piece of work on each (in parallel, with a listr2 progress view on a terminal).
import { Listr } from 'listr2';
import { HostError, UsageError, oneLine } from '../errors.js';
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
  concurrency: number;
}

/** Targets from argv plus the inventory; none at all means this machine. */
export async function resolveHosts(targets: string[], options: HostOptions): Promise<HostSpec[]> {
  const specs: HostSpec[] = targets.map((t) => ({ target: parseTarget(t) }));
  if (options.inventory) for (const s of await loadInventory(options.inventory)) specs.push(s); // no spread: an inventory may hold 200k hosts
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

/** The outcome of work on one host: its value, or why the host could not be used. */
export type HostOutcome<R> = { spec: HostSpec; value: R } | { spec: HostSpec; error: HostError };

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
      if (err instanceof HostError) return { spec, error: err };
      throw err;
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
