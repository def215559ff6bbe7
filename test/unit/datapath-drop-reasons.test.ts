import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { DROP_REASONS, dropReason } from '../../src/datapath/drop-reasons.js';
import { DROP_REASON_MAX } from '../../src/datapath/consts.js';

const HEADER = readFileSync(new URL('../../../bpf/include/drop_reasons.h', import.meta.url), 'utf8');

test('the drop-reason mirror equals bpf/include/drop_reasons.h line by line', () => {
  const table = HEADER.split('\n')
    .map((l) => /^DROP_REASON\((\d+), (\w+), "(.*)"\)$/.exec(l))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ num: Number(m[1]), name: m[2]!, description: m[3]! }));
  assert.ok(table.length >= 12, 'the header parses to a table');
  // every DROP_REASON( line must match the format, or the parse above would silently skip it
  assert.equal(HEADER.split('\n').filter((l) => l.startsWith('DROP_REASON(')).length, table.length);
  assert.deepEqual(DROP_REASONS, table);
});

test('reason numbers are unique, positive and below DROP_REASON_MAX', () => {
  const nums = DROP_REASONS.map((r) => r.num);
  assert.equal(new Set(nums).size, nums.length);
  assert.ok(nums.every((n) => n > 0 && n < DROP_REASON_MAX));
  assert.equal(dropReason(1)?.name, 'POLICY_DENY');
  assert.equal(dropReason('NO_BACKEND')?.num, 3);
});
