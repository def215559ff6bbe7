// The datapath module's public face: what the `datapath` command (and the agent) call. Desired state
// in, map ops out through a MapWriter (writer.ts): the node-side loader over a Host here
// (LoaderMapWriter), the pinned maps in-process in the agent. Planning (compile, diff) is pure and
// done before the first write; a writer validates a whole batch before applying any of it.
import { removedUdpBackends, type FlushTarget } from './ct-flush.js';
import type { Host } from '../host/host.js';
import { NodeRefusal } from '../errors.js';
import { compileState, type Compiled } from './compile.js';
import { CAPACITY, MAPS } from './consts.js';
import { PolicyCapacityError } from './policy.js';
import { DROP_REASONS } from './drop-reasons.js';
import { ensureLoader, loader, loaderIfPresent, LoaderMapWriter, type EventDoc, type InstallDoc, type InstallOptions, type StatusDoc } from './loader.js';
import type { DatapathState } from './schema.js';
import { fullSync, incrementalSync, type CurrentEntries, type SyncPlan } from './sync.js';
import type { BatchResult, MapWriter } from './writer.js';
import type { MapEntry } from './compile.js';
import type { Desired } from './k8s/index.js';
import { installTextfile, removeTextfile, type TextfileResult } from './metrics.js';
import { installCtGcTimer, removeCtGcTimer, type CtGcTimerResult } from './ct-gc-timer.js';
import { buildNames, NAMES_PATH, removeNames, writeNames } from './observe.js';

export { loadState, parseState } from './state.js';
export type { DatapathState } from './schema.js';
export type { InstallOptions, StatusDoc, ApplyResult, EventDoc } from './loader.js';
export { LoaderMapWriter } from './loader.js';
export type { SyncPlan, CurrentEntries } from './sync.js';
export type { MapEntry } from './compile.js';
export type { MapWriter, MapOp, BatchResult } from './writer.js';
export { ALL_MAPS, MAPS, type MapName } from './consts.js';
export { loadDesired, formatLeftOut, type Desired } from './k8s/index.js';
export { checkTextfileDir as checkMetricsTextfileDir, type TextfileResult } from './metrics.js';
export { VERDICTS, decorate, formatFlow, readNames, verdictMatches, type NamesIndex, type VerdictFilter } from './observe.js';
export { formatIpv4, parseIpv4, parseIpv6 } from './ip.js';
export { selftest, type SelftestResult, type SelftestStep, type SelftestOptions } from './selftest.js';
export { DROP_REASONS, dropReason } from './drop-reasons.js';
export { compileState } from './compile.js';

/** Upload the loader (if this version is not there) and install: load, pin, attach. */
export function install(host: Host, options: InstallOptions = {}): Promise<InstallDoc> {
  return loader.install(host, options);
}

export interface SyncOptions {
  /** clear the owned maps and write everything (default: only what differs from the node's maps) */
  full?: boolean;
  /** plan only: nothing is written */
  dryRun?: boolean;
}

export interface SyncResult {
  plan: SyncPlan;
  compiled: Compiled;
  /** what the writer reports (the loader's whole apply document); null on a dry run */
  applied: BatchResult | null;
  /** UDP backends that left (`addr:port/udp`) and the conntrack entries of their flows deleted */
  ctFlushed?: { backends: FlushTarget[]; entries: number };
}

/** What the node's owned maps hold now (every map's dump in one round-trip). */
export function currentEntries(host: Host, loaderPath?: string): Promise<CurrentEntries> {
  return new LoaderMapWriter(host, loaderPath).dump(MAPS);
}

/**
 * Compile against the policy map's default capacity; only a state above it costs a round trip, to
 * read the capacity the node was installed with (--cap policy=N) and count against that instead.
 */
async function compileFor(host: Host, state: DatapathState, options: SyncOptions): Promise<Compiled> {
  try {
    return compileState(state);
  } catch (err) {
    if (!(err instanceof PolicyCapacityError) || (options.dryRun && options.full)) throw err;
    const bin = options.dryRun ? await loaderIfPresent(host) : undefined;
    if (bin === null) throw err;
    const st = await loader.status(host, bin);
    const cap = st.maps.find((m) => m.name === 'policy')?.max_entries;
    if (cap === undefined || cap <= CAPACITY.POLICY_MAX) throw err;
    return compileState(state, cap);
  }
}

/**
 * Make the maps behind `writer` hold exactly `entries`: a full sync clears and writes everything
 * (no dump), an incremental one dumps once and writes what differs; one batch either way, none when
 * nothing differs. writer null: a full dry run (nothing read, nothing written). The same plan goes to
 * any MapWriter: the loader over a Host (the CLI) or the pinned maps in-process (the agent).
 */
export async function syncEntries(writer: MapWriter | null, entries: readonly MapEntry[], options: SyncOptions = {}): Promise<{ plan: SyncPlan; applied: BatchResult | null; removedUdp: FlushTarget[] }> {
  if (writer === null && !(options.full && options.dryRun)) throw new Error('syncEntries: only a full dry run goes without a writer');
  const current = options.full ? undefined : await writer!.dump(MAPS);
  const plan = current ? incrementalSync(entries, current) : fullSync(entries);
  // a full sync clears every map: it reads the services and backends first (one dump, not on a dry
  // run) to tell which UDP backends leave, as an incremental one does from its own dump
  const before = current ?? (options.dryRun ? undefined : await writer!.dump(['services', 'backends']));
  const removedUdp = before ? removedUdpBackends(before, entries) : [];
  if (options.dryRun) return { plan, applied: null, removedUdp };
  return { plan, applied: await writer!.batch(plan.ops), removedUdp };
}

/** Make the node's maps hold exactly the desired state, through the loader (LoaderMapWriter). */
export async function syncState(host: Host, state: DatapathState, options: SyncOptions = {}): Promise<SyncResult> {
  const compiled = await compileFor(host, state, options);
  let writer: MapWriter | null = new LoaderMapWriter(host);
  if (options.dryRun) {
    // a dry run writes nothing, the loader included: it reads the maps with the loader already there
    const bin = options.full ? null : await loaderIfPresent(host);
    if (!options.full && bin === null) throw new NodeRefusal(host.name, 'datapath sync --dry-run: this prep-node\'s loader is not on the node, and a dry run uploads nothing (run datapath install first, or --dry-run --full to list every entry)');
    writer = bin === null ? null : new LoaderMapWriter(host, bin);
  }
  const { plan, applied, removedUdp } = await syncEntries(writer, compiled.entries, options);
  if (options.dryRun || removedUdp.length === 0) return { plan, compiled, applied };
  // their live UDP flows would stay on them: flush after the maps no longer name them
  const gc = await loader.ctGc(host, removedUdp);
  return { plan, compiled, applied, ctFlushed: { backends: removedUdp, entries: gc.flushed } };
}

/** Leave the names index on the node (services, pods, policies by id) that observe and metrics read. */
export function recordNames(host: Host, desired: Desired, compiled: Compiled, source: string): Promise<void> {
  return writeNames(host, buildNames(desired.state, compiled, desired.origins, source));
}

/** The node's datapath counters in the Prometheus text exposition format, services named from the node's index (one loader run). */
export function metrics(host: Host): Promise<string> {
  return loader.metrics(host, { names: NAMES_PATH });
}

/** Keep the node's metrics textfile for node_exporter (after checkMetricsTextfileDir and install). */
export async function installMetricsTextfile(host: Host, dir: string, intervalSeconds: number): Promise<TextfileResult> {
  return installTextfile(host, { bin: await ensureLoader(host), dir, intervalSeconds });
}

/** Run the loader's ct-gc every `intervalSeconds` on the node (a systemd timer; none without systemd). */
export async function installCtGc(host: Host, intervalSeconds: number): Promise<CtGcTimerResult> {
  return installCtGcTimer(host, { bin: await ensureLoader(host), intervalSeconds });
}

export interface DropCount {
  num: number;
  name: string;
  description: string;
  count: number;
}

/** The loader's status, with each drop counter named and described from the drop-reason table. */
export async function status(host: Host): Promise<StatusDoc & { dropReasons: DropCount[] }> {
  const st = await loader.status(host);
  const dropReasons = DROP_REASONS.map((r) => ({ ...r, count: st.drops[r.name] ?? st.drops[`DROP_${r.name}`] ?? 0 }));
  return { ...st, dropReasons };
}

/** Events (drops, forwarded flows) recorded so far (at most `max`, waiting at most `timeoutMs`). */
export function events(host: Host, options: { timeoutMs?: number; max?: number } = {}): Promise<{ events: EventDoc[]; lost: number }> {
  return loader.events(host, options);
}

/** Detach everything and unpin the maps; stop the metrics textfile writer and the ct-gc timer, remove the names index. */
export async function remove(host: Host): Promise<InstallDoc & { textfileRemoved: boolean; ctGcTimerRemoved: boolean }> {
  const doc = await loader.remove(host);
  const textfileRemoved = await removeTextfile(host);
  const ctGcTimerRemoved = await removeCtGcTimer(host);
  await removeNames(host);
  return { ...doc, textfileRemoved, ctGcTimerRemoved };
}
