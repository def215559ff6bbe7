import { test } from 'node:test';
import assert from 'node:assert/strict';
import { capacityForRam, datapathMapMemory, judgeDatapathMemory } from '../../../src/checks/datapath-memory.js';
import { ALL_MAPS, CAPACITY } from '../../../src/datapath/consts.js';

test('every map of the datapath is in the estimate, once', () => {
  const est = datapathMapMemory(CAPACITY, 2);
  assert.deepEqual(est.maps.map((m) => m.map).sort(), [...ALL_MAPS].sort());
});

test('layouts worked by hand: a preallocated LRU, a NO_PREALLOC hash, a per-CPU array', () => {
  const m = new Map(datapathMapMemory(CAPACITY, 4).maps.map((x) => [x.map, x]));
  // conntrack: LRU, 2^18 entries, preallocated: 16-byte buckets + (htab_elem 48 + key 16 + value 32) each.
  assert.deepEqual(m.get('conntrack'), { map: 'conntrack', atLoad: 16 * 262144 + 262144 * 96, atCapacity: 16 * 262144 + 262144 * 96 });
  // services: NO_PREALLOC, 2^20 entries: only buckets at load; 48 + 8 + 16 = 72 → kmalloc-96 per entry.
  assert.deepEqual(m.get('services'), { map: 'services', atLoad: 16 * 1048576, atCapacity: 16 * 1048576 + 1048576 * 96 });
  // drop_counters: 64 reasons × 16 bytes × 4 CPUs.
  assert.equal(m.get('drop_counters')!.atLoad, 64 * 16 * 4);
});

test('more CPUs cost more (per-CPU maps); smaller capacities cost less', () => {
  assert.ok(datapathMapMemory(CAPACITY, 16).atCapacity > datapathMapMemory(CAPACITY, 2).atCapacity);
  const small = { ...CAPACITY, LB_SERVICES_MAX: 1 << 12, LB_BACKENDS_MAX: 1 << 14, LB_SVC_COUNTERS_MAX: 1 << 12, CT_MAX: 1 << 16, CT6_MAX: 1 << 12, LB_MAGLEV_SERVICES_MAX: 1 << 10, LB6_SERVICES_MAX: 1 << 10, LB6_BACKENDS_MAX: 1 << 12 };
  assert.ok(datapathMapMemory(small, 2).atCapacity < datapathMapMemory(CAPACITY, 2).atCapacity / 4);
});

test('verdicts: 24 GiB passes, 1 GiB warns (full maps > 10 %), 256 MiB fails (preallocated > 25 %)', () => {
  const limits = { warnPercent: 10, failPercent: 25 };
  assert.equal(judgeDatapathMemory(24683628, 2, CAPACITY, limits).status, 'pass');
  const w = judgeDatapathMemory(1010884, 1, CAPACITY, limits);
  assert.equal(w.status, 'warn');
  assert.match(w.observed, /^1\d\d MiB at load \(\d+\.\d %\), \d+ MiB full \(\d+\.\d %\) of 987 MiB; largest: backends/);
  assert.match(w.remedy ?? '', /--cap/);
  assert.equal(judgeDatapathMemory(256 * 1024, 1, CAPACITY, limits).status, 'fail');
  assert.equal(judgeDatapathMemory(null, 2, CAPACITY, limits).status, 'error');
});

test('capacities follow the RAM as the loader sizes them: a 1 GiB node gets a quarter, a 4 GiB node the defaults', () => {
  assert.deepEqual(capacityForRam(4096), CAPACITY);
  const q = capacityForRam(1024);
  assert.equal(q.LB_SERVICES_MAX, CAPACITY.LB_SERVICES_MAX / 4);
  assert.equal(q.CT_MAX, CAPACITY.CT_MAX / 4);
  assert.equal(q.FRAG_MAX, 2048);
  assert.equal(q.EVENTS_RINGBUF_BYTES, CAPACITY.EVENTS_RINGBUF_BYTES);
  assert.equal(capacityForRam(64).ENDPOINTS_MAX, 1024, 'never below 1024 entries');
  // what the 1 GiB node's maps take at load stays within the 64 MiB the cluster-datapath issue allows
  assert.ok(datapathMapMemory(q, 1).atLoad <= 64 * 1024 * 1024);
});
