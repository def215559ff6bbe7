// Which UDP backends a sync flushes from conntrack: the ones the node's maps have and the desired
// state no longer has, read from the map entries as compiled (services give each svc_id its protocol).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileState } from '../../src/datapath/compile.js';
import { removedUdpBackends } from '../../src/datapath/ct-flush.js';
import { DatapathStateSchema } from '../../src/datapath/schema.js';
import type { CurrentEntries } from '../../src/datapath/writer.js';

const entries = (services: unknown[]) => compileState(DatapathStateSchema.parse({ services })).entries;
/** what a node holds after syncing these entries */
function onNode(es: ReturnType<typeof entries>): CurrentEntries {
  const out: CurrentEntries = {};
  for (const e of es) (out[e.map] ??= new Map()).set(e.keyHex, e.valueHex);
  return out;
}
const dns = (backends: string[]) => ({ name: 'dns', vip: '10.96.0.10', port: 53, protocol: 'udp', backends: backends.map((ip) => ({ ip, port: 5353 })) });
const web = (backends: string[]) => ({ name: 'web', vip: '10.96.0.10', port: 80, protocol: 'tcp', backends: backends.map((ip) => ({ ip, port: 5353 })) });

test('a UDP backend that left its service is flushed; one that stays is not', () => {
  const now = onNode(entries([dns(['10.0.1.1', '10.0.1.2'])]));
  assert.deepEqual(removedUdpBackends(now, entries([dns(['10.0.1.2'])])), ['10.0.1.1:5353/udp']);
  assert.deepEqual(removedUdpBackends(now, entries([dns(['10.0.1.2', '10.0.1.1'])])), [], 'order and slots do not matter');
  assert.deepEqual(removedUdpBackends(now, entries([])), ['10.0.1.1:5353/udp', '10.0.1.2:5353/udp'], 'a removed service removes its backends');
});

test('TCP backends are left to drain (their entries expire by lifetime), and a new node has nothing to flush', () => {
  const now = onNode(entries([web(['10.0.1.1']), dns(['10.0.1.3'])]));
  assert.deepEqual(removedUdpBackends(now, entries([web([]), dns(['10.0.1.3'])])), []);
  assert.deepEqual(removedUdpBackends({}, entries([dns(['10.0.1.1'])])), []);
});

test('the same address:port leaving a UDP service while staying in a TCP one is still flushed for UDP', () => {
  const now = onNode(entries([web(['10.0.1.1']), dns(['10.0.1.1'])]));
  assert.deepEqual(removedUdpBackends(now, entries([web(['10.0.1.1']), dns([])])), ['10.0.1.1:5353/udp']);
});

test('IPv6 UDP backends that left their service are flushed as [addr]:port/udp, the loader\'s ct-gc form', () => {
  const dns6 = (backends: string[]) => ({ name: 'dns6', vip: 'fd00:96::10', port: 53, protocol: 'udp', backends: backends.map((ip) => ({ ip, port: 5353 })) });
  const now = onNode(entries([dns(['10.0.1.1']), dns6(['fd00:1::1', 'fd00:1:0::2'])]));
  assert.deepEqual(removedUdpBackends(now, entries([dns(['10.0.1.1']), dns6(['fd00:1::2'])])), ['[fd00:1::1]:5353/udp']);
  assert.deepEqual(removedUdpBackends(now, entries([])), ['10.0.1.1:5353/udp', '[fd00:1::1]:5353/udp', '[fd00:1::2]:5353/udp']);
});
