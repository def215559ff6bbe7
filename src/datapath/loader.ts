// The TypeScript side of the node-side loader (bpf/build/prep-node-dp, a static C binary with the
// BPF objects embedded). The binary is uploaded once per version to a path named by its sha256, so
// several prep-node versions never overwrite each other's loader and an unchanged one is not sent
// again. Every command prints one JSON document; a failure prints {"error","code"} and exits non-zero,
// which becomes one PrepNodeError line here.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { parseSections, sectionHeader } from '../probes/sections.js';
import { besideSea } from '../sea.js';
import { ExitCode, NodeRefusal, PrepNodeError, UsageError } from '../errors.js';
import { shQuote, type Host, type RunResult } from '../host/host.js';
import { MAPS, type MapName } from './consts.js';
import { parseDump, type CurrentEntries } from './sync.js';
import { opLines, type BatchResult, type MapOp, type MapWriter } from './writer.js';

/** The loader built by `make -C bpf` (dist/src/datapath → repo root/bpf/build), or beside the single executable. */
export const LOCAL_LOADER = besideSea('prep-node-dp', resolve(dirname(fileURLToPath(import.meta.url)), '../../../bpf/build/prep-node-dp'));
/** Where loaders live on the node, one file per version. */
export const REMOTE_BIN_DIR = '/var/lib/prep-node/bin';

const uploaded = new WeakMap<Host, Promise<string>>();

/**
 * The node's path of this loader version, uploading it when the node does not have it (checked by
 * sha256). binDir: tests only (a directory of their own instead of REMOTE_BIN_DIR).
 */
export function ensureLoader(host: Host, localPath: string = LOCAL_LOADER, binDir: string = REMOTE_BIN_DIR): Promise<string> {
  let p = uploaded.get(host);
  if (!p) {
    p = upload(host, localPath, binDir);
    uploaded.set(host, p);
    p.catch(() => uploaded.delete(host));
  }
  return p;
}

/**
 * The loader runs as root from binDir: if another account could write the binary, binDir or its
 * parent (our /var/lib/prep-node), it could swap the binary between our sha256 check and the run.
 * So each of them that exists must be root's and writable by nobody else (a sticky directory of
 * root's is fine: others cannot replace what root put in it); checked in the same
 * command as the sha256 (no extra round trip), before every first use per connection.
 */
function trustedLoaderScript(binDir: string, remote: string): string {
  const paths = [dirname(binDir), binDir, remote].map(shQuote).join(' ');
  return `for p in ${paths}; do [ -e "$p" ] || continue; set -- "$p" $(stat -L -c '%u %a' "$p"); if [ "$2" != 0 ] || { [ $((0$3 & 022)) -ne 0 ] && ! { [ -d "$p" ] && [ $((0$3 & 01000)) -ne 0 ]; }; }; then echo "untrusted $*"; exit 0; fi; done; sha256sum ${shQuote(remote)} 2>/dev/null`;
}

/** Whether the node has this loader (by sha256) where it may run it as root; refuses an untrusted directory. */
async function present(host: Host, binDir: string, remote: string, sha: string): Promise<boolean> {
  const out = (await host.run(trustedLoaderScript(binDir, remote), { sudo: true })).stdout;
  const bad = /^untrusted (.*) (\d+) (\d+)$/m.exec(out);
  if (bad) throw new NodeRefusal(host.name, `${bad[1]} is owned by uid ${bad[2]} with mode ${bad[3]}: the datapath loader runs from there as root, so it must be root's and writable by root only (chown root ${bad[1]}; chmod go-w ${bad[1]})`);
  return out.startsWith(sha);
}

async function localLoader(localPath: string, binDir: string): Promise<{ data: Buffer; sha: string; remote: string }> {
  let data: Buffer;
  try {
    data = await readFile(localPath);
  } catch (err) {
    throw new UsageError(`the datapath loader ${localPath} is missing: build it with \`make -C bpf\``, { cause: err });
  }
  const sha = createHash('sha256').update(data).digest('hex');
  await checkBuildSum(localPath, sha);
  return { data, sha, remote: `${binDir}/prep-node-dp-${sha.slice(0, 12)}` };
}

/** The node's path of this loader version when the node has it, else null: nothing is uploaded (dry runs). */
export async function loaderIfPresent(host: Host, localPath: string = LOCAL_LOADER, binDir: string = REMOTE_BIN_DIR): Promise<string | null> {
  const cached = uploaded.get(host);
  if (cached) return cached;
  const { sha, remote } = await localLoader(localPath, binDir);
  if (!(await present(host, binDir, remote, sha))) return null;
  uploaded.set(host, Promise.resolve(remote));
  return remote;
}

async function upload(host: Host, localPath: string, binDir: string): Promise<string> {
  const { data, sha, remote } = await localLoader(localPath, binDir);
  const has = () => present(host, binDir, remote, sha);
  if (await has()) return remote;
  await host.exec(`mkdir -p -m 0755 ${shQuote(binDir)}`, { sudo: true });
  await host.writeFile(remote, data, { sudo: true, mode: 0o755 });
  if (!(await has())) throw new PrepNodeError(`${host.name}: the uploaded loader ${remote} does not match its sha256 ${sha.slice(0, 12)}`, ExitCode.internal);
  return remote;
}

/** The sha256 `make -C bpf` recorded beside the loader (`<loader>.sha256`, sha256sum format) must
 * match the file about to be uploaded: a loader changed after the build is refused, never sent. */
async function checkBuildSum(localPath: string, sha: string): Promise<void> {
  const sumFile = `${localPath}.sha256`;
  let text: string;
  try {
    text = await readFile(sumFile, 'utf8');
  } catch (err) {
    throw new UsageError(`the datapath loader's checksum ${sumFile} is missing: rebuild with \`make -C bpf\` or reinstall prep-node`, { cause: err });
  }
  const recorded = /^([0-9a-f]{64}) [ *]?\S/.exec(text)?.[1];
  if (!recorded) throw new UsageError(`${sumFile}: expected "<sha256>  prep-node-dp" as sha256sum writes it: rebuild with \`make -C bpf\` or reinstall prep-node`);
  if (recorded !== sha) {
    throw new UsageError(
      `the datapath loader ${localPath} (sha256 ${sha.slice(0, 12)}) does not match the sha256 recorded at build time (${recorded.slice(0, 12)}): not uploading it; rebuild with \`make -C bpf\` or reinstall prep-node`,
    );
  }
}

const ErrorDoc = z.object({ error: z.string(), code: z.union([z.string(), z.number()]).optional() });

// The loader's exit codes (bpf/loader/dp.h, enum dp_exit): 1 internal and 2 usage/bad input are
// prep-node's own bugs; 3-8 (not installed, verifier, attach, kernel too old, node setup, a map write
// failing after validation) are the node refusing, with the loader's message saying why.
const LOADER_REFUSALS = new Set([3, 4, 5, 6, 7, 8]);

/** A loader failure as one line: host, command, the loader's message and code. */
export function loaderError(host: string, command: string, r: RunResult): PrepNodeError {
  const text = r.stdout.trim() || r.stderr.trim();
  let doc: unknown;
  try {
    doc = JSON.parse(text.split('\n').pop() ?? '');
  } catch {
    doc = undefined;
  }
  const parsed = ErrorDoc.safeParse(doc);
  if (parsed.success) {
    const code = parsed.data.code === undefined ? '' : ` [${parsed.data.code}]`;
    const exit = r.code !== null && LOADER_REFUSALS.has(r.code) ? ExitCode.refused : ExitCode.internal;
    return new PrepNodeError(`${host}: prep-node-dp ${command}: ${parsed.data.error.split('\n')[0]}${code}`, exit);
  }
  const why = r.timedOut ? 'timed out' : (text.split('\n').pop() ?? '') || `exit ${r.code}`;
  return new PrepNodeError(`${host}: prep-node-dp ${command} failed: ${why}`, ExitCode.internal);
}

/** Run one loader command as root; its stdout when it succeeded, else the loader's error. */
export async function runLoader(host: Host, args: string[], options: { stdin?: string; timeoutMs?: number } = {}, loaderPath?: string): Promise<string> {
  const bin = loaderPath ?? (await ensureLoader(host));
  const command = args.map(shQuote).join(' ');
  const r = await host.run(`${shQuote(bin)} ${command}`, { sudo: true, ...options });
  if (r.code !== 0) throw loaderError(host.name, args[0] ?? '', r);
  return r.stdout;
}

/** Parse a loader's JSON output with a schema; a mismatch is an internal error naming the command. */
export function parseOutput<T>(host: string, command: string, stdout: string, schema: z.ZodType<T>): T {
  let doc: unknown;
  try {
    doc = JSON.parse(stdout);
  } catch {
    throw new PrepNodeError(`${host}: prep-node-dp ${command} printed no JSON: ${stdout.trim().split('\n')[0]?.slice(0, 120) ?? ''}`, ExitCode.internal);
  }
  const r = schema.safeParse(doc);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    throw new PrepNodeError(`${host}: prep-node-dp ${command} printed unexpected JSON: ${issue.path.join('.') || '(top level)'}: ${issue.message}`, ExitCode.internal);
  }
  return r.data;
}

// Output documents. Loose objects: a newer loader may add fields; what we read must be there.
export const ApplyResult = z.looseObject({ put: z.number(), deleted: z.number(), cleared: z.number() });
export type ApplyResult = z.output<typeof ApplyResult>;

export const StatusDoc = z.looseObject({
  installed: z.boolean(),
  kernel: z.string().optional(),
  programs: z.array(z.looseObject({ name: z.string(), type: z.string().optional(), attach: z.string().optional(), id: z.number().optional() })).default([]),
  maps: z.array(z.looseObject({ name: z.string(), type: z.string().optional(), max_entries: z.number().optional(), entries: z.number().optional(), memlock_bytes: z.number().optional() })).default([]),
  drops: z.record(z.string(), z.number()).default({}),
  set_retval: z.union([z.boolean(), z.number()]).optional(),
  /** the SNAT source port range tc_lb was loaded with (0-0: none); absent from older loaders */
  snat_port_min: z.number().optional(),
  snat_port_max: z.number().optional(),
  /** conntrack lifetimes in seconds by name, as loaded */
  ct_timeouts: z.record(z.string(), z.number()).optional(),
});
export type StatusDoc = z.output<typeof StatusDoc>;

/** `ct-gc`'s document (bpf/loader/ct.c). */
export const CtGcDoc = z.looseObject({
  scanned: z.number(),
  expired: z.number(),
  flushed: z.number(),
  entries: z.number(),
  capacity: z.number(),
  fill_pct: z.number(),
  warning: z.string().nullable(),
});
export type CtGcDoc = z.output<typeof CtGcDoc>;

export const InstallDoc = z.looseObject({ installed: z.boolean().optional(), already_installed: z.boolean().optional(), matches_request: z.boolean().optional() });
export type InstallDoc = z.output<typeof InstallDoc>;

/** One event as the loader prints it (bpf/loader/events.c); fields past these are passed through.
 * verdict: "dropped" or "forwarded"; absent from older loaders, whose events are all drops. */
export const EventDoc = z.looseObject({ reason: z.number(), reason_name: z.string().nullable().optional(), hook: z.string().nullable().optional(), verdict: z.enum(['dropped', 'forwarded']).optional() });
export type EventDoc = z.output<typeof EventDoc>;
const EventsTail = z.looseObject({ lost: z.number() });

export interface InstallOptions {
  /** map name → max_entries (`--cap services=N,...`) */
  caps?: Record<string, number>;
  /** devices to attach the tc program to (ingress) */
  tcDevs?: string[];
  /** cgroup v2 directory for the socket programs (default: the loader's, the cgroup root) */
  cgroup?: string;
  /** re-install over an existing install (its map contents are lost) */
  force?: boolean;
  /** false: no event per new forwarded flow (`--no-flow-events`; drops are still sent) */
  flowEvents?: boolean;
  /** conntrack lifetimes in seconds by name (`--ct-timeout tcp-established=21600,...`) */
  ctTimeouts?: Record<string, number>;
}

/** `install` arguments from options. */
export function installArgs(o: InstallOptions): string[] {
  const args = ['install'];
  const caps = Object.entries(o.caps ?? {});
  if (caps.length > 0) args.push('--cap', caps.map(([k, v]) => `${k}=${v}`).join(','));
  for (const dev of o.tcDevs ?? []) args.push('--tc-dev', dev);
  if (o.cgroup) args.push('--cgroup', o.cgroup);
  if (o.force) args.push('--force');
  if (o.flowEvents === false) args.push('--no-flow-events');
  const ct = Object.entries(o.ctTimeouts ?? {});
  if (ct.length > 0) args.push('--ct-timeout', ct.map(([k, v]) => `${k}=${v}`).join(','));
  return args;
}

/** A map this prep-node writes that the node's install lacks (installed by an older version): refused
 * with the reinstall (exit 5), whether a dump or an apply (a full sync writes without dumping) met it. */
function refuseMissingMap(hostName: string, r: { stdout: string }, maps: readonly string[]): void {
  const missing = /no map '([a-z0-9_]+)' in this install/.exec(r.stdout)?.[1];
  if (missing !== undefined && maps.includes(missing))
    throw new PrepNodeError(`${hostName}: the installed datapath has no ${missing} map: it was installed by an older prep-node; reinstall it with \`prep-node datapath install --force ${hostName}\``, ExitCode.refused);
}

/** The loader's commands over a Host. */
export const loader = {
  async install(host: Host, o: InstallOptions = {}): Promise<InstallDoc> {
    return parseOutput(host.name, 'install', await runLoader(host, installArgs(o), { timeoutMs: 120_000 }), InstallDoc);
  },
  async apply(host: Host, lines: readonly string[], loaderPath?: string): Promise<ApplyResult> {
    const stdin = lines.length > 0 ? `${lines.join('\n')}\n` : '';
    const r = await host.run(`${shQuote(loaderPath ?? (await ensureLoader(host)))} apply`, { sudo: true, stdin, timeoutMs: 600_000 });
    if (r.code !== 0) {
      refuseMissingMap(host.name, r, MAPS);
      throw loaderError(host.name, 'apply', r);
    }
    return parseOutput(host.name, 'apply', r.stdout, ApplyResult);
  },
  async dump(host: Host, map: string): Promise<string> {
    return runLoader(host, ['dump', map], { timeoutMs: 300_000 });
  },
  /** Several maps' dumps in one round-trip: map name → its `<keyhex> <valuehex>` lines. */
  async dumpAll(host: Host, maps: readonly string[], loaderPath?: string): Promise<Map<string, string>> {
    const bin = shQuote(loaderPath ?? (await ensureLoader(host)));
    const script = maps.map((m) => `${sectionHeader(m)} && ${bin} dump ${shQuote(m)}`).join(' && ');
    const r = await host.run(script, { sudo: true, timeoutMs: 300_000 });
    if (r.code !== 0) {
      refuseMissingMap(host.name, r, maps);
      throw loaderError(host.name, 'dump', r);
    }
    return parseSections(r.stdout);
  },
  /** `ct-gc`: expired conntrack entries deleted, and every entry of these backends' flows (up to 256 a call). */
  async ctGc(host: Host, backends: readonly string[] = []): Promise<CtGcDoc> {
    let doc: CtGcDoc | undefined;
    let flushed = 0;
    for (let i = 0; i === 0 || i < backends.length; i += 256) {
      const args = ['ct-gc', ...backends.slice(i, i + 256).flatMap((b) => ['--backend', b])];
      doc = parseOutput(host.name, 'ct-gc', await runLoader(host, args, { timeoutMs: 300_000 }), CtGcDoc);
      flushed += doc.flushed;
    }
    return { ...doc!, flushed };
  },
  async status(host: Host, loaderPath?: string): Promise<StatusDoc> {
    return parseOutput(host.name, 'status', await runLoader(host, ['status'], {}, loaderPath), StatusDoc);
  },
  /**
   * The datapath's counters in the Prometheus text format, rendered by the loader (bpf/loader/
   * metrics.c); names: the node's names index for service names (a missing or unusable one costs
   * the names only). Not installed: `prep_node_datapath_up 0` alone.
   */
  async metrics(host: Host, o: { names?: string } = {}, loaderPath?: string): Promise<string> {
    return runLoader(host, ['metrics', ...(o.names ? ['--names', o.names] : [])], { timeoutMs: 300_000 }, loaderPath);
  },
  /** Drop events (one JSON line each) and the count the ring buffer lost (the last line). */
  async events(host: Host, o: { timeoutMs?: number; max?: number } = {}): Promise<{ events: EventDoc[]; lost: number }> {
    const args = ['events'];
    if (o.timeoutMs !== undefined) args.push('--timeout-ms', String(o.timeoutMs));
    if (o.max !== undefined) args.push('--max', String(o.max));
    const out = await runLoader(host, args, { timeoutMs: (o.timeoutMs ?? 0) + 30_000 });
    return parseEvents(host.name, out);
  },
  async remove(host: Host): Promise<InstallDoc> {
    return parseOutput(host.name, 'remove', await runLoader(host, ['remove'], { timeoutMs: 120_000 }), InstallDoc);
  },
};

/**
 * The CLI's MapWriter: the node-side loader over a Host. dump() is one round trip for all the maps
 * asked for (dumpAll); batch() is one `apply` (the loader validates the whole batch before its first
 * write); close() leaves the connection to its owner. loaderPath: a loader already known to be on
 * the node (dry runs, which upload nothing); else this version is uploaded when missing.
 */
export class LoaderMapWriter implements MapWriter {
  constructor(
    private readonly host: Host,
    private readonly loaderPath?: string,
  ) {}

  async dump(maps: readonly MapName[]): Promise<CurrentEntries> {
    const dumps = await loader.dumpAll(this.host, maps, this.loaderPath);
    const out: CurrentEntries = {};
    for (const map of maps) {
      const text = dumps.get(map);
      if (text === undefined) throw new PrepNodeError(`${this.host.name}: prep-node-dp dump printed nothing for ${map}`, ExitCode.internal);
      out[map] = parseDump(text, map);
    }
    return out;
  }

  async batch(ops: readonly MapOp[]): Promise<BatchResult> {
    if (ops.length === 0) return { put: 0, deleted: 0, cleared: 0 };
    // the loader's whole document (it also counts `missing`): `datapath sync --json` prints it
    return loader.apply(this.host, opLines(ops), this.loaderPath);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** `events` output: event lines, then {"lost": N}. */
export function parseEvents(host: string, out: string): { events: EventDoc[]; lost: number } {
  const events: EventDoc[] = [];
  let lost = 0;
  for (const line of out.split('\n')) {
    if (line.trim() === '') continue;
    const doc = parseOutput(host, 'events', line, z.union([EventDoc, EventsTail]));
    if ('reason' in doc && typeof doc.reason === 'number') events.push(doc as EventDoc);
    else lost = (doc as z.output<typeof EventsTail>).lost;
  }
  return { events, lost };
}
