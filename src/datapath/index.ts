// The datapath control plane as the `datapath` command calls it: desired state in, map entries out,
// the node-side loader doing the writes. Planning (compile, diff) is pure and done before the first
// write; the loader validates a whole batch before applying any of it.
import type { Host } from '../host/host.js';
import { NodeRefusal } from '../errors.js';
import { compileState, type Compiled } from './compile.js';
import { CAPACITY, MAPS } from './consts.js';
import { PolicyCapacityError } from './policy.js';
import { DROP_REASONS } from './drop-reasons.js';
import { loader, loaderIfPresent, type ApplyResult, type EventDoc, type InstallDoc, type InstallOptions, type StatusDoc } from './loader.js';
import type { DatapathState } from './schema.js';
import { fullSync, incrementalSync, parseDump, type CurrentEntries, type SyncPlan } from './sync.js';

export { loadState, parseState } from './state.js';
export type { DatapathState } from './schema.js';
export type { InstallOptions, StatusDoc, ApplyResult, EventDoc } from './loader.js';
export type { SyncPlan } from './sync.js';
export type { MapEntry } from './compile.js';
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
  /** what the loader reports; null on a dry run */
  applied: ApplyResult | null;
}

/** What the node's owned maps hold now (every map's dump in one round-trip). */
export async function currentEntries(host: Host, loaderPath?: string): Promise<CurrentEntries> {
  const dumps = await loader.dumpAll(host, MAPS, loaderPath);
  const out: CurrentEntries = {};
  for (const map of MAPS) {
    const text = dumps.get(map);
    if (text === undefined) throw new Error(`${host.name}: prep-node-dp dump printed nothing for ${map}`);
    out[map] = parseDump(text, map);
  }
  return out;
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

/** Make the node's maps hold exactly the desired state. */
export async function syncState(host: Host, state: DatapathState, options: SyncOptions = {}): Promise<SyncResult> {
  const compiled = await compileFor(host, state, options);
  if (options.dryRun) {
    // a dry run writes nothing, the loader included: it reads the maps with the loader already there
    if (options.full) return { plan: fullSync(compiled.entries), compiled, applied: null };
    const bin = await loaderIfPresent(host);
    if (bin === null) throw new NodeRefusal(host.name, 'datapath sync --dry-run: this prep-node\'s loader is not on the node, and a dry run uploads nothing (run datapath install first, or --dry-run --full to list every entry)');
    return { plan: incrementalSync(compiled.entries, await currentEntries(host, bin)), compiled, applied: null };
  }
  const plan = options.full ? fullSync(compiled.entries) : incrementalSync(compiled.entries, await currentEntries(host));
  const applied = plan.lines.length === 0 ? { put: 0, deleted: 0, cleared: 0 } : await loader.apply(host, plan.lines);
  return { plan, compiled, applied };
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

/** Detach everything and unpin the maps. */
export function remove(host: Host): Promise<InstallDoc> {
  return loader.remove(host);
}
