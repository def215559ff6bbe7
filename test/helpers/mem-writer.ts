// An in-memory MapWriter for the agent's unit tests: what the pinned maps would hold, and every batch
// written, so a test can count writes and see what a sync changed. The real one (libbpf) is tested on
// real pinned maps in test/kernel/agent-map-writer.test.ts.
import type { MapName } from '../../src/datapath/consts.js';
import type { CurrentEntries } from '../../src/datapath/sync.js';
import type { BatchResult, MapOp, MapWriter } from '../../src/datapath/writer.js';

export class MemWriter implements MapWriter {
  readonly maps = new Map<MapName, Map<string, string>>();
  readonly batches: MapOp[][] = [];
  dumps = 0;
  /** the next batch fails with this error (a full map, bpffs gone) */
  failNext: Error | null = null;

  dump(maps: readonly MapName[]): Promise<CurrentEntries> {
    this.dumps++;
    const out: CurrentEntries = {};
    for (const m of maps) out[m] = new Map(this.maps.get(m) ?? []);
    return Promise.resolve(out);
  }

  batch(ops: readonly MapOp[]): Promise<BatchResult> {
    if (this.failNext) {
      const e = this.failNext;
      this.failNext = null;
      return Promise.reject(e);
    }
    this.batches.push([...ops]);
    const r: BatchResult = { put: 0, deleted: 0, cleared: 0 };
    for (const op of ops) {
      const m = this.maps.get(op.map) ?? new Map<string, string>();
      this.maps.set(op.map, m);
      if (op.op === 'put') {
        m.set(op.keyHex, op.valueHex);
        r.put++;
      } else if (op.op === 'del') {
        if (m.delete(op.keyHex)) r.deleted++;
      } else {
        m.clear();
        r.cleared++;
      }
    }
    return Promise.resolve(r);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  size(map: MapName): number {
    return this.maps.get(map)?.size ?? 0;
  }
}
