// Desired entries → the ops a MapWriter's batch() applies (writer.ts; as the loader's `apply` input:
// `put <map> <key> <value>`, `del <map> <key>`, `clear <map>`), in an order that never leaves the datapath pointing at something missing:
//   puts: node_cfg(6), backends(6), maglev, services(6) (the SNAT address, slots and tables exist before a
//         service count or flag uses them), then policy, ipcache(6), endpoints(6) (allows exist before an endpoint turns
//         default-deny);
//   dels: services(6), maglev, backends(6), node_cfg(6) (a service shrinks before its slots go), then endpoints(6),
//         ipcache(6), policy (enforcement goes before the entries it relied on).
// A full sync clears the owned maps first; an incremental one compares with `dump` output and
// touches only entries that are new, changed or gone.
import { MAPS, type MapName } from './consts.js';
import type { MapEntry } from './compile.js';
import { opLines, type CurrentEntries, type MapContents, type MapOp } from './writer.js';

const PUT_ORDER: readonly MapName[] = ['node_cfg', 'node_cfg6', 'backends', 'backends6', 'maglev', 'services', 'services6', 'policy', 'ipcache', 'ipcache6', 'endpoints', 'endpoints6'];
const DEL_ORDER: readonly MapName[] = ['services', 'services6', 'maglev', 'backends', 'backends6', 'node_cfg', 'node_cfg6', 'endpoints', 'endpoints6', 'ipcache', 'ipcache6', 'policy'];

export type { CurrentEntries, MapContents } from './writer.js';

export interface SyncPlan {
  /** what a MapWriter's batch() is given, in order */
  ops: MapOp[];
  /** the same ops as the loader's `apply` input lines */
  lines: string[];
  puts: number;
  dels: number;
  clears: number;
  /** the entries put (for a dry run's listing) and the keys deleted */
  put: MapEntry[];
  deleted: { map: MapName; keyHex: string }[];
}

/** Parse `prep-node-dp dump <map>` output: one `<keyhex> <valuehex>` per line. */
export function parseDump(text: string, map: string): MapContents {
  const out: MapContents = new Map();
  text.split('\n').forEach((line, i) => {
    const t = line.trim();
    if (t === '') return;
    const m = /^([0-9a-f]+) ([0-9a-f]+)$/i.exec(t);
    if (!m) throw new Error(`dump ${map} line ${i + 1}: expected "<keyhex> <valuehex>", got "${t.slice(0, 80)}"`);
    out.set(m[1]!.toLowerCase(), m[2]!.toLowerCase());
  });
  return out;
}

function byMap(entries: readonly MapEntry[]): Map<MapName, MapEntry[]> {
  const out = new Map<MapName, MapEntry[]>(MAPS.map((m) => [m, []]));
  for (const e of entries) out.get(e.map)!.push(e);
  return out;
}

const putOp = (e: MapEntry): MapOp => ({ op: 'put', map: e.map, keyHex: e.keyHex, valueHex: e.valueHex });

/** Clear every owned map, then put everything. */
export function fullSync(desired: readonly MapEntry[]): SyncPlan {
  const grouped = byMap(desired);
  const put = PUT_ORDER.flatMap((m) => grouped.get(m)!);
  const ops = [...DEL_ORDER.map((m): MapOp => ({ op: 'clear', map: m })), ...put.map(putOp)];
  return { ops, lines: opLines(ops), puts: put.length, dels: 0, clears: DEL_ORDER.length, put, deleted: [] };
}

/** Only what differs from `current`: puts for new or changed entries, dels for entries no longer desired. */
export function incrementalSync(desired: readonly MapEntry[], current: CurrentEntries): SyncPlan {
  const grouped = byMap(desired);
  const put: MapEntry[] = [];
  for (const m of PUT_ORDER) {
    const now = current[m] ?? new Map<string, string>();
    for (const e of grouped.get(m)!) if (now.get(e.keyHex) !== e.valueHex) put.push(e);
  }
  const deleted: { map: MapName; keyHex: string }[] = [];
  for (const m of DEL_ORDER) {
    const want = new Set(grouped.get(m)!.map((e) => e.keyHex));
    for (const key of [...(current[m]?.keys() ?? [])].sort()) if (!want.has(key)) deleted.push({ map: m, keyHex: key });
  }
  const ops = [...put.map(putOp), ...deleted.map((d): MapOp => ({ op: 'del', map: d.map, keyHex: d.keyHex }))];
  return { ops, lines: opLines(ops), puts: put.length, dels: deleted.length, clears: 0, put, deleted };
}

/** Ops that delete exactly these entries (the selftest removing its own, leaving others alone). */
export function deleteEntries(entries: readonly MapEntry[]): MapOp[] {
  const grouped = byMap(entries);
  return DEL_ORDER.flatMap((m) => grouped.get(m)!.map((e): MapOp => ({ op: 'del', map: m, keyHex: e.keyHex })));
}

/** One desired entry that changed: its new value, or null when it is no longer desired. */
export interface EntryChange {
  map: MapName;
  keyHex: string;
  valueHex: string | null;
  note: string;
}

/**
 * The ops for changed entries only (the agent's delta: no walk over everything desired), skipping
 * what `current` already holds, in the same safe order as incrementalSync.
 */
export function deltaSync(changes: readonly EntryChange[], current: CurrentEntries): SyncPlan {
  const put: MapEntry[] = [];
  const deleted: { map: MapName; keyHex: string }[] = [];
  for (const m of PUT_ORDER)
    for (const c of changes) if (c.map === m && c.valueHex !== null && current[m]?.get(c.keyHex) !== c.valueHex) put.push({ map: m, keyHex: c.keyHex, valueHex: c.valueHex, note: c.note });
  for (const m of DEL_ORDER) for (const c of changes) if (c.map === m && c.valueHex === null && current[m]?.has(c.keyHex)) deleted.push({ map: m, keyHex: c.keyHex });
  const ops = [...put.map(putOp), ...deleted.map((d): MapOp => ({ op: 'del', map: d.map, keyHex: d.keyHex }))];
  return { ops, lines: opLines(ops), puts: put.length, dels: deleted.length, clears: 0, put, deleted };
}
