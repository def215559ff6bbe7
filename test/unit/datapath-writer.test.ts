// Issue 11 item 3: one MapWriter interface, two implementations. The same sync goes through the
// in-memory writer (what the agent's libbpf writer is tested against) and through the CLI's
// LoaderMapWriter (the node-side loader over a Host, here a host that answers as the loader does
// from maps it holds); both must be given the same ops, and the loader's in one dump and one apply.
// The loader writing real pinned maps is test/kernel/datapath-cli.test.ts and dp-loader.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { compileState, type MapEntry } from '../../src/datapath/compile.js';
import { MAPS, type MapName } from '../../src/datapath/consts.js';
import { LoaderMapWriter, syncEntries, type MapOp } from '../../src/datapath/index.js';
import { DatapathStateSchema } from '../../src/datapath/schema.js';
import { loadState } from '../../src/datapath/state.js';
import { opLines } from '../../src/datapath/writer.js';
import { BaseHost, type SpawnOptions } from '../../src/host/base.js';
import { shQuote, type RunOptions, type RunResult } from '../../src/host/host.js';
import { MemWriter } from '../helpers/mem-writer.js';

const FIXTURE = fileURLToPath(new URL('../../../test/fixtures/datapath/state.yaml', import.meta.url));
const BIN = '/var/lib/prep-node/bin/prep-node-dp-test';

/** A host whose only program is a loader at BIN holding `maps`: `dump <map>` (as dumpAll's sections) and `apply` (stdin). */
class LoaderHost extends BaseHost {
  readonly name = 'node1';
  readonly user = 'root';
  readonly commands: string[] = [];
  readonly stdins: string[] = [];
  constructor(readonly maps: Map<MapName, Map<string, string>>) {
    super();
  }
  override run(command: string, options: RunOptions = {}): Promise<RunResult> {
    this.commands.push(command);
    const ok = (stdout: string) => Promise.resolve({ stdout, stderr: '', code: 0, timedOut: false });
    if (command === `${shQuote(BIN)} apply`) {
      const stdin = String(options.stdin ?? '');
      this.stdins.push(stdin);
      const r = { put: 0, deleted: 0, missing: 0, cleared: 0 };
      for (const line of stdin.split('\n').filter((l) => l !== '')) {
        const [op, map, key, value] = line.split(' ') as [string, MapName, string, string];
        const m = this.maps.get(map) ?? new Map<string, string>();
        this.maps.set(map, m);
        if (op === 'put') {
          m.set(key, value);
          r.put++;
        } else if (op === 'del') {
          if (m.delete(key)) r.deleted++;
          else r.missing++;
        } else if (op === 'clear') {
          m.clear();
          r.cleared++;
        } else return Promise.resolve({ stdout: '{"error":"bad line","code":"usage"}', stderr: '', code: 2, timedOut: false });
      }
      return ok(`${JSON.stringify(r)}\n`);
    }
    const sections = command.split(' && ');
    if (sections.length >= 2 && sections.length % 2 === 0 && sections[0]!.startsWith("echo '@@ ")) {
      let out = '';
      for (let i = 0; i < sections.length; i += 2) {
        const map = /^echo '@@ (\w+)'$/.exec(sections[i]!)![1] as MapName;
        assert.equal(sections[i + 1], `${shQuote(BIN)} dump ${shQuote(map)}`);
        out += `@@ ${map}\n${[...(this.maps.get(map) ?? [])].map(([k, v]) => `${k} ${v}\n`).join('')}`;
      }
      return ok(out);
    }
    return Promise.resolve({ stdout: '', stderr: `no such command: ${command}`, code: 127, timedOut: false });
  }
  protected spawn(_c: string, _o: SpawnOptions): Promise<RunResult> {
    throw new Error('not used');
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

const holding = (entries: readonly MapEntry[]) => {
  const maps = new Map<MapName, Map<string, string>>();
  for (const e of entries) (maps.get(e.map) ?? maps.set(e.map, new Map()).get(e.map)!).set(e.keyHex, e.valueHex);
  return maps;
};
const sorted = (maps: Map<MapName, Map<string, string>>) => MAPS.map((m) => [m, [...(maps.get(m) ?? [])].sort()]);

async function twoStates(): Promise<{ before: MapEntry[]; after: MapEntry[] }> {
  const s = await loadState(FIXTURE);
  const before = compileState(s).entries;
  // one backend fewer, one endpoint gone: puts (maglev, service count) and deletes
  const after = compileState({ ...s, endpoints: s.endpoints.slice(1), services: s.services.map((v, i) => (i === 0 ? { ...v, backends: v.backends.slice(1) } : v)) }).entries;
  return { before, after };
}

for (const full of [false, true]) {
  test(`a ${full ? 'full' : 'incremental'} sync gives the in-memory writer and the loader writer the same ops, and both maps end as desired`, async () => {
    const { before, after } = await twoStates();
    const mem = new MemWriter();
    for (const [m, c] of holding(before)) mem.maps.set(m, new Map(c));
    const host = new LoaderHost(holding(before));
    const viaMem = await syncEntries(mem, after, { full });
    const viaLoader = await syncEntries(new LoaderMapWriter(host, BIN), after, { full });

    assert.equal(mem.batches.length, 1);
    const ops: MapOp[] = mem.batches[0]!;
    assert.ok(ops.some((o) => o.op === 'put') && ops.some((o) => o.op === (full ? 'clear' : 'del')), JSON.stringify(ops.slice(0, 3)));
    assert.deepEqual(viaLoader.plan.ops, viaMem.plan.ops);
    // the loader got exactly these ops as its apply input, in one apply; either sync read the maps in one
    // round trip first (a full one only services and backends: which UDP backends leave)
    assert.deepEqual(host.stdins, [`${opLines(ops).join('\n')}\n`]);
    assert.equal(host.commands.length, 2, host.commands.join('\n'));
    assert.equal(mem.dumps, 1);
    if (full) assert.doesNotMatch(host.commands[0]!, /dump .?policy/, 'a full sync dumps services and backends only');
    assert.deepEqual(sorted(mem.maps), sorted(holding(after)));
    assert.deepEqual(sorted(host.maps), sorted(holding(after)));
    assert.deepEqual({ put: viaLoader.applied!.put, deleted: viaLoader.applied!.deleted, cleared: viaLoader.applied!.cleared }, viaMem.applied);
  });
}

test('a full sync, like an incremental one, names the UDP backends that leave (their flows are then flushed)', async () => {
  const dns = (ips: string[]) => compileState(DatapathStateSchema.parse({ services: [{ name: 'dns', vip: '10.96.0.10', port: 53, protocol: 'udp', backends: ips.map((ip) => ({ ip, port: 5353 })) }] })).entries;
  for (const full of [false, true]) {
    const mem = new MemWriter();
    for (const [m, c] of holding(dns(['10.0.1.1', '10.0.1.2']))) mem.maps.set(m, new Map(c));
    assert.deepEqual((await syncEntries(mem, dns(['10.0.1.2']), { full })).removedUdp, ['10.0.1.1:5353/udp'], full ? 'full' : 'incremental');
  }
  assert.deepEqual((await syncEntries(null, dns([]), { full: true, dryRun: true })).removedUdp, [], 'a full dry run reads nothing');
});

test('a sync with nothing to change writes nothing through either writer', async () => {
  const { after } = await twoStates();
  const mem = new MemWriter();
  for (const [m, c] of holding(after)) mem.maps.set(m, new Map(c));
  const host = new LoaderHost(holding(after));
  assert.deepEqual((await syncEntries(mem, after)).applied, { put: 0, deleted: 0, cleared: 0 });
  assert.deepEqual((await syncEntries(new LoaderMapWriter(host, BIN), after)).applied, { put: 0, deleted: 0, cleared: 0 });
  assert.equal(mem.batches.length, 1);
  assert.deepEqual(mem.batches[0], []);
  assert.deepEqual(host.stdins, [], 'the loader is not run for an empty batch');
  assert.equal(host.commands.length, 1, 'one dump');
});

test('a dry run reads through the writer and writes nothing', async () => {
  const { before, after } = await twoStates();
  const mem = new MemWriter();
  for (const [m, c] of holding(before)) mem.maps.set(m, new Map(c));
  const r = await syncEntries(mem, after, { dryRun: true });
  assert.equal(r.applied, null);
  assert.equal(mem.batches.length, 0);
  assert.ok(r.plan.ops.length > 0);
  assert.equal((await syncEntries(null, after, { full: true, dryRun: true })).plan.ops.length, after.length + MAPS.length); // a clear per owned map
});
