// `prep-node check`: run the check catalogue on each host and report.
import { CHECKS } from '../checks/index.js';
import { runChecks, validateIgnore } from '../checks/runner.js';
import { FLEET_CHECKS, judgeFleet, readFleetFacts, type FleetFacts } from '../checks/fleet.js';
import { countStatuses, exitCodeFor, type HostReport } from '../report/model.js';
import { checkDocument } from '../report/json.js';
import { renderFleet, renderHost, renderMatrix } from '../report/table.js';
import { DEFAULT_PROFILE, loadProfile } from '../profiles/load.js';
import type { Profile } from '../profiles/schema.js';
import { resolveHosts, runOnHosts, throwIfOnlyHostFailed, type HostOptions } from './hosts.js';
import type { ExitCode } from '../errors.js';
import { HostError } from '../errors.js';
import { BatchingHost } from '../host/batch.js';

export interface CheckOptions extends HostOptions {
  profile?: string;
  json?: boolean;
  ignore?: string[];
  stealSeconds: number;
}

export interface Io {
  stdout: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  stderr: NodeJS.WritableStream;
  version: string;
}

export async function check(targets: string[], options: CheckOptions, io: Io): Promise<ExitCode> {
  const started = new Date();
  const specs = await resolveHosts(targets, options);
  validateIgnore([...CHECKS, ...FLEET_CHECKS], options.ignore ?? []);
  // Every profile is loaded and validated before the first connection.
  const profiles = new Map<string, Profile>();
  for (const name of new Set(specs.map((s) => s.profile ?? options.profile ?? DEFAULT_PROFILE))) profiles.set(name, await loadProfile(name));

  const interactive = !options.json && io.stdout.isTTY === true;
  const outcomes = await runOnHosts(
    specs,
    options,
    {
      work: async (node, spec, progress) => {
        // Checks run side by side and their commands travel together: one gather round trip for
        // everything the catalogue reads first, one more for what depends on it (README, "Round trips").
        const host = new BatchingHost(node);
        const ctx = {
          host,
          profile: profiles.get(spec.profile ?? options.profile ?? DEFAULT_PROFILE)!,
          options: { stealSeconds: options.stealSeconds },
          cache: new Map(),
        };
        const results = await runChecks(ctx, CHECKS, {
          concurrent: true,
          ...(options.ignore && { ignore: options.ignore }),
          onResult: (r) => progress(`${r.id}: ${r.status}`),
        });
        // Fleet facts come from the same connection, after the node's own checks (one more round trip: the clock).
        const fleet = specs.length > 1 ? await readFleetFacts(ctx, spec.target.spec) : undefined;
        return { results, fleet };
      },
      summarize: ({ results }) => {
        const n = countStatuses(results);
        return `${n.pass} pass, ${n.warn} warn, ${n.fail} fail, ${n.error} error`;
      },
    },
    interactive,
  );
  const reports: HostReport[] = outcomes.map((o) => ({
    target: o.spec.target.spec,
    profile: profiles.get(o.spec.profile ?? options.profile ?? DEFAULT_PROFILE)!.name,
    checks: 'value' in o ? o.value.results : [],
    ...('error' in o && { error: { kind: o.error instanceof HostError ? o.error.kind : 'internal', message: o.error.message } }),
  }));

  const fleetFacts = outcomes.flatMap((o) => ('value' in o && o.value.fleet ? [o.value.fleet] : [])) satisfies FleetFacts[];
  const fleet = specs.length > 1 ? judgeFleet(fleetFacts, options.ignore ?? []) : undefined;

  if (options.json) {
    const doc = checkDocument(reports, { version: io.version, startedAt: started, durationMs: Date.now() - started.getTime() }, fleet);
    io.stdout.write(JSON.stringify(doc, null, 2) + '\n');
    return exitCodeFor(reports, fleet);
  }
  // A single host that could not be reached is one line, like ssh's own errors.
  throwIfOnlyHostFailed(outcomes);
  const tty = io.stdout.isTTY === true;
  const style = { color: tty && !process.env.NO_COLOR, ...(tty && (io.stdout.columns ?? 0) > 0 && { width: io.stdout.columns! }) };
  for (const r of reports) io.stdout.write(renderHost(r, style) + '\n');
  if (reports.length > 1) io.stdout.write(renderMatrix(reports, style));
  if (fleet) io.stdout.write(renderFleet(fleet, style));
  return exitCodeFor(reports, fleet);
}
