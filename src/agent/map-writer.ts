// The agent's MapWriter: the pinned maps (<bpffs>/prep-node/maps/<name>) opened once and written
// in-process through libbpf. One change costs a few bpf() syscalls, not a loader process and an SSH
// round trip. A batch is validated whole (map known, hex well-formed, key and value sizes equal to
// the map's own info) before its first write; consecutive puts to a hash map go down as one
// BPF_MAP_UPDATE_BATCH (LPM tries have no batch ops: one update each).
import { ExitCode, PrepNodeError } from '../errors.js';
import { MAPS, type MapName } from '../datapath/consts.js';
import type { CurrentEntries, MapContents } from '../datapath/sync.js';
import type { BatchResult, MapOp, MapWriter } from '../datapath/writer.js';
import { BPF_MAP_TYPE_HASH, errnoName, libbpf, mapInfo, type Libbpf, type MapInfo } from './libbpf.js';

const ENOENT = -2;

/** The pinned maps' directory under a bpffs mount. */
export const pinnedMapsDir = (bpffs: string): string => `${bpffs}/prep-node/maps`;

interface OpenMap {
  fd: number;
  info: MapInfo;
}

/** Open every owned map; a map that is not pinned means the datapath is not installed (exit 5). */
export function openPinnedMaps(bpffs = '/sys/fs/bpf'): LibbpfMapWriter {
  const lib = libbpf();
  const maps = new Map<MapName, OpenMap>();
  try {
    for (const name of MAPS) {
      const path = `${pinnedMapsDir(bpffs)}/${name}`;
      const fd = lib.objGet(path);
      if (fd < 0) throw new PrepNodeError(`cannot open the pinned map ${path}: ${errnoName(fd)} (is the datapath installed? \`prep-node datapath install\`)`, ExitCode.refused);
      const info = mapInfo(lib, fd);
      if (typeof info === 'number') {
        lib.close(fd);
        throw new PrepNodeError(`cannot read the info of the pinned map ${path}: ${errnoName(info)}`, ExitCode.refused);
      }
      maps.set(name, { fd, info });
    }
  } catch (err) {
    for (const m of maps.values()) lib.close(m.fd);
    throw err;
  }
  return new LibbpfMapWriter(lib, maps);
}

const HEX = /^(?:[0-9a-f]{2})*$/;

export class LibbpfMapWriter implements MapWriter {
  /** bpf() calls made, for tests and metrics: updates, batch updates, deletes, lookups */
  readonly calls = { update: 0, updateBatch: 0, delete: 0, lookup: 0 };

  constructor(
    private readonly lib: Libbpf,
    private maps: Map<MapName, OpenMap> | null,
  ) {}

  private open(): Map<MapName, OpenMap> {
    if (!this.maps) throw new Error('the map writer is closed');
    return this.maps;
  }

  /** max_entries of each owned map (the install's capacities). */
  capacities(): Record<MapName, number> {
    return Object.fromEntries([...this.open()].map(([n, m]) => [n, m.info.maxEntries])) as Record<MapName, number>;
  }

  private read(map: MapName): MapContents {
    const m = this.open().get(map)!;
    const out: MapContents = new Map();
    const key = Buffer.alloc(m.info.keySize);
    const next = Buffer.alloc(m.info.keySize);
    const value = Buffer.alloc(m.info.valueSize);
    let prev: Buffer | null = null;
    for (;;) {
      const rc = this.lib.nextKey(m.fd, prev, next);
      if (rc === ENOENT) break;
      if (rc < 0) throw new PrepNodeError(`reading the map ${map}: ${errnoName(rc)}`, ExitCode.refused);
      this.calls.lookup++;
      const lr = this.lib.lookup(m.fd, next, value);
      if (lr === 0) out.set(next.toString('hex'), value.toString('hex'));
      else if (lr !== ENOENT) throw new PrepNodeError(`reading the map ${map}: ${errnoName(lr)}`, ExitCode.refused);
      next.copy(key);
      prev = key;
    }
    return out;
  }

  dump(maps: readonly MapName[]): Promise<CurrentEntries> {
    const out: CurrentEntries = {};
    for (const m of maps) out[m] = this.read(m);
    return Promise.resolve(out);
  }

  /** Every op checked before the first write: a bad one throws (a bug in the caller: exit 70). */
  private validate(ops: readonly MapOp[]): void {
    const maps = this.open();
    ops.forEach((op, i) => {
      const m = maps.get(op.map);
      if (!m) throw new Error(`map op ${i + 1}: ${op.map} is not an owned map`);
      if (op.op === 'clear') return;
      if (!HEX.test(op.keyHex) || op.keyHex.length !== m.info.keySize * 2) throw new Error(`map op ${i + 1}: ${op.op} ${op.map}: the key is not ${m.info.keySize} bytes of hex`);
      if (op.op === 'put' && (!HEX.test(op.valueHex) || op.valueHex.length !== m.info.valueSize * 2)) throw new Error(`map op ${i + 1}: put ${op.map}: the value is not ${m.info.valueSize} bytes of hex`);
    });
  }

  private failed(op: MapOp, rc: number, done: number): PrepNodeError {
    const full = rc === -7 || rc === -12 || rc === -28 ? ' (map full: raise it with install --cap)' : '';
    return new PrepNodeError(`${op.op} ${op.map}: ${errnoName(rc)}${full}; ${done} earlier ops were applied`, ExitCode.refused);
  }

  batch(ops: readonly MapOp[]): Promise<BatchResult> {
    this.validate(ops);
    const maps = this.open();
    const res: BatchResult = { put: 0, deleted: 0, cleared: 0 };
    let i = 0;
    while (i < ops.length) {
      const op = ops[i]!;
      const m = maps.get(op.map)!;
      if (op.op === 'put') {
        let j = i + 1;
        while (j < ops.length && ops[j]!.op === 'put' && ops[j]!.map === op.map) j++;
        const run = ops.slice(i, j) as Extract<MapOp, { op: 'put' }>[];
        this.putRun(m, run, i);
        res.put += run.length;
        i = j;
        continue;
      }
      if (op.op === 'del') {
        this.calls.delete++;
        const rc = this.lib.del(m.fd, Buffer.from(op.keyHex, 'hex'));
        if (rc === 0) res.deleted++;
        else if (rc !== ENOENT) throw this.failed(op, rc, i);
      } else {
        for (const key of this.read(op.map).keys()) {
          this.calls.delete++;
          const rc = this.lib.del(m.fd, Buffer.from(key, 'hex'));
          if (rc < 0 && rc !== ENOENT) throw this.failed(op, rc, i);
        }
        res.cleared++;
      }
      i++;
    }
    return Promise.resolve(res);
  }

  private putRun(m: OpenMap, run: Extract<MapOp, { op: 'put' }>[], done: number): void {
    if (run.length > 1 && m.info.type === BPF_MAP_TYPE_HASH) {
      const keys = Buffer.from(run.map((o) => o.keyHex).join(''), 'hex');
      const values = Buffer.from(run.map((o) => o.valueHex).join(''), 'hex');
      const count = Buffer.alloc(4);
      count.writeUInt32LE(run.length);
      this.calls.updateBatch++;
      const rc = this.lib.updateBatch(m.fd, keys, values, count);
      if (rc === 0) return;
      // a kernel without batch ops for this map: fall back to one update each (updates are idempotent)
      if (rc !== -22 && rc !== -95 && rc !== -524) throw this.failed(run[count.readUInt32LE(0)] ?? run[0]!, rc, done + count.readUInt32LE(0));
    }
    run.forEach((o, k) => {
      this.calls.update++;
      const rc = this.lib.update(m.fd, Buffer.from(o.keyHex, 'hex'), Buffer.from(o.valueHex, 'hex'), 0);
      if (rc < 0) throw this.failed(o, rc, done + k);
    });
  }

  close(): Promise<void> {
    for (const m of this.maps?.values() ?? []) this.lib.close(m.fd);
    this.maps = null;
    return Promise.resolve();
  }
}
