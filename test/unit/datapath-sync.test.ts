import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { compileState, type MapEntry } from '../../src/datapath/compile.js';
import { loadState } from '../../src/datapath/state.js';
import { deleteEntries, fullSync, incrementalSync, parseDump, type CurrentEntries } from '../../src/datapath/sync.js';
import type { DatapathState } from '../../src/datapath/schema.js';
import { opLines } from '../../src/datapath/writer.js';

const FIXTURE = fileURLToPath(new URL('../../../test/fixtures/datapath/state.yaml', import.meta.url));

function asCurrent(entries: readonly MapEntry[]): CurrentEntries {
  const out: CurrentEntries = {};
  for (const e of entries) (out[e.map] ??= new Map()).set(e.keyHex, e.valueHex);
  return out;
}
const mapsOf = (lines: string[]) => lines.map((l) => l.split(' ').slice(0, 2).join(' '));

test('the fixture compiles to entries in every owned map, each key once per map', async () => {
  const { entries } = compileState(await loadState(FIXTURE));
  const maps = new Set(entries.map((e) => e.map));
  assert.deepEqual([...maps].sort(), ['backends', 'endpoints', 'ipcache', 'maglev', 'policy', 'services']);
  const keys = entries.map((e) => `${e.map} ${e.keyHex}`);
  assert.equal(new Set(keys).size, keys.length);
  // web: weights 1 + 2 = 3 slots, Maglev; dns: 1 slot with affinity
  assert.equal(entries.filter((e) => e.map === 'backends').length, 4);
  assert.equal(entries.filter((e) => e.map === 'maglev').length, 1);
});

test('compiling does not depend on the order of the lists', async () => {
  const s = await loadState(FIXTURE);
  const shuffled: DatapathState = {
    endpoints: [...s.endpoints].reverse(),
    services: [...s.services].reverse().map((v) => ({ ...v, backends: [...v.backends].reverse() })),
    policies: s.policies,
  };
  const sorted = (x: MapEntry[]) => x.map((e) => `${e.map} ${e.keyHex} ${e.valueHex}`).sort();
  assert.deepEqual(sorted(compileState(shuffled).entries), sorted(compileState(s).entries));
});

test('full sync: clears every owned map, then puts backends and tables before services, policy before endpoints', async () => {
  const { entries } = compileState(await loadState(FIXTURE));
  const plan = fullSync(entries);
  assert.deepEqual(plan.lines.slice(0, 12), ['clear services', 'clear services6', 'clear maglev', 'clear backends', 'clear backends6', 'clear node_cfg', 'clear node_cfg6', 'clear endpoints', 'clear endpoints6', 'clear ipcache', 'clear ipcache6', 'clear policy']);
  assert.equal(plan.puts, entries.length);
  const order = [...new Set(mapsOf(plan.lines.slice(12)))];
  assert.deepEqual(order, ['put backends', 'put maglev', 'put services', 'put policy', 'put ipcache', 'put endpoints']);
});

test('incremental sync of an unchanged state does nothing', async () => {
  const { entries } = compileState(await loadState(FIXTURE));
  assert.deepEqual(incrementalSync(entries, asCurrent(entries)).lines, []);
});

test('incremental sync: a removed backend rewrites only that service (slots before count, deletes after)', async () => {
  const s = await loadState(FIXTURE);
  const before = compileState(s).entries;
  const web = s.services[0]!;
  const after = compileState({ ...s, services: [{ ...web, backends: [web.backends[0]!] }, s.services[1]!] }).entries;
  const plan = incrementalSync(after, asCurrent(before));
  assert.deepEqual(mapsOf(plan.lines), ['put maglev', 'put services', 'del backends', 'del backends']);
  assert.equal(plan.lines[1]!.split(' ')[3]!.slice(8, 16), '01000000', 'backend_count 1');
  // the surviving backend keeps slot 0 and is not rewritten
  assert.equal(plan.lines.filter((l) => l.startsWith('put backends')).length, 0);
});

test('incremental sync: an added backend writes its slots before the service count', async () => {
  const s = await loadState(FIXTURE);
  const before = compileState(s).entries;
  const dns = s.services[1]!;
  const after = compileState({ ...s, services: [s.services[0]!, { ...dns, backends: [...dns.backends, { ip: '10.1.0.8', port: 53, weight: 1 }] }] }).entries;
  assert.deepEqual(mapsOf(incrementalSync(after, asCurrent(before)).lines), ['put backends', 'put services']);
});

test('incremental sync: a new endpoint and a removed policy touch only their entries, in a safe order', async () => {
  const s = await loadState(FIXTURE);
  const before = compileState(s).entries;
  const after = compileState({ ...s, endpoints: [...s.endpoints, { name: 'x', ip: '10.1.0.30', labels: { app: 'other' } }], policies: [s.policies[0]!] }).entries;
  const plan = incrementalSync(after, asCurrent(before));
  // client-1 is no longer selected: its endpoint entry changes (flags 0); x is new; client-egress's entries go
  assert.deepEqual([...new Set(mapsOf(plan.lines))], ['put endpoints', 'del policy']);
  assert.equal(plan.lines.filter((l) => l.startsWith('put endpoints')).length, 2);
  // the ipcache entries of web-ingress's CIDRs stay; 0.0.0.0/0 never had one (it is WORLD)
  assert.equal(plan.lines.filter((l) => l.startsWith('del ipcache')).length, 0);
});

test('incremental sync deletes entries the node has and the state does not (a service gone)', async () => {
  const s = await loadState(FIXTURE);
  const before = compileState(s).entries;
  const after = compileState({ ...s, services: [s.services[0]!] }).entries;
  assert.deepEqual(mapsOf(incrementalSync(after, asCurrent(before)).lines), ['del services', 'del backends']);
});

test('dump output parses to key → value; junk is an error naming the line', () => {
  const m = parseDump('0a000001 0100000000000000\n\nC0A80001 02000000AA000000\n', 'endpoints');
  assert.deepEqual([...m], [['0a000001', '0100000000000000'], ['c0a80001', '02000000aa000000']]);
  assert.throws(() => parseDump('0a000001\n', 'endpoints'), /dump endpoints line 1: expected "<keyhex> <valuehex>"/);
});

test('deleteEntries removes exactly the given entries, services first', async () => {
  const { entries } = compileState(await loadState(FIXTURE));
  const lines = opLines(deleteEntries(entries));
  assert.equal(lines.length, entries.length);
  assert.ok(lines[0]!.startsWith('del services'));
  assert.ok(lines.at(-1)!.startsWith('del policy'));
});
