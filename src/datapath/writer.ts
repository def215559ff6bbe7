// The one way map entries reach the kernel: dump, put, delete and batch behind one interface. The
// CLI's implementation drives the node-side loader over a Host (one process and one round-trip per
// batch); the agent's opens the pinned maps in-process through libbpf. Keys and values are the
// encoded structs of datapath_structs.h as lowercase hex, exactly as compile.ts produces them.
import type { MapName } from './consts.js';

/** What a map holds now: key hex → value hex. */
export type MapContents = Map<string, string>;
/** What the owned maps hold now. */
export type CurrentEntries = Partial<Record<MapName, MapContents>>;

/** One change to one owned map. `clear` empties the map (full syncs only). */
export type MapOp =
  | { op: 'put'; map: MapName; keyHex: string; valueHex: string }
  | { op: 'del'; map: MapName; keyHex: string }
  | { op: 'clear'; map: MapName };

/** What a batch did. */
export interface BatchResult {
  put: number;
  deleted: number;
  cleared: number;
}

export interface MapWriter {
  /** What the named maps hold now (key hex → value hex per map). */
  dump(maps: readonly MapName[]): Promise<CurrentEntries>;
  /** Apply the ops in order; the whole batch is validated (map names, key and value sizes) before the first write. */
  batch(ops: readonly MapOp[]): Promise<BatchResult>;
  /** Release what the writer holds (map fds, a connection); the maps stay pinned. */
  close(): Promise<void>;
}

/** One op as a line of the loader's `apply` input (`put <map> <key> <value>`, `del <map> <key>`, `clear <map>`). */
export function opLine(op: MapOp): string {
  if (op.op === 'put') return `put ${op.map} ${op.keyHex} ${op.valueHex}`;
  if (op.op === 'del') return `del ${op.map} ${op.keyHex}`;
  return `clear ${op.map}`;
}

/** The loader's `apply` input for a batch, one op a line. */
export function opLines(ops: readonly MapOp[]): string[] {
  return ops.map(opLine);
}
