import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpuSteal, judgeSteal, stealCommand, stealPercentages } from '../../../src/checks/cpu-steal.js';
import type { RunOptions } from '../../../src/host/host.js';
import { fixtureContext } from '../../helpers/fixture-host.js';
import { fixture } from '../../helpers/fixtures.js';

// [fixture, status, observed] with the k8s-worker thresholds (warn above 5 %, fail above 10 %).
const cases: [string, string, string][] = [
  ['local-debian12.txt', 'pass', '0.0 % (worst cpu0 0.0 %) over 5 s'],
  ['vm-debian12.txt', 'pass', '0.0 % (worst cpu0 0.0 %) over 5 s'],
  ['vagrant-debian12.txt', 'pass', '0.0 % (worst cpu0 0.0 %) over 5 s'],
  ['rhel-9-no-steal.txt', 'pass', '0.0 % (worst cpu0 0.0 %) over 5 s'],
  ['amazon-linux-2023-steal-at-threshold.txt', 'pass', '5.0 % (worst cpu0 5.0 %) over 5 s'],
  ['ubuntu-22.04-steal-warn.txt', 'warn', '7.0 % (worst cpu2 12.0 %) over 5 s'],
  ['debian-11-steal-fail.txt', 'fail', '15.0 % (worst cpu1 18.0 %) over 5 s'],
];

for (const [file, status, observed] of cases) {
  test(`cpu.steal on ${file} is ${status}`, () => {
    const f = judgeSteal(fixture(`proc-stat/${file}`), 5, 5, 10);
    assert.equal(f.status, status);
    assert.equal(f.observed, observed);
    assert.equal(f.expected, '<= 5 % (warn above, fail above 10 %)');
    if (status === 'pass') {
      assert.equal(f.remedy, undefined);
    } else {
      assert.match(f.remedy ?? '', /less contended host or plan.*dedicated vCPUs.*vmstat 5/);
      assert.match(f.detail ?? '', /steal is time a runnable vCPU waited/);
    }
  });
}

test('percentages per CPU over the first eight columns', () => {
  const p = stealPercentages(fixture('proc-stat/ubuntu-22.04-steal-warn.txt'));
  assert.ok(p instanceof Map);
  assert.deepEqual([...p.entries()].map(([k, v]) => [k, v.toFixed(1)]), [
    ['cpu', '7.0'],
    ['cpu0', '5.0'],
    ['cpu1', '6.0'],
    ['cpu2', '12.0'],
    ['cpu3', '5.0'],
  ]);
});

test('guest time is already in user time: it is not counted twice', () => {
  // 100 ticks: 40 user (of which 30 guest), 50 idle, 10 steal -> 10 %, not 10/130.
  const out = 'cpu  0 0 0 0 0 0 0 0 0 0\ncpu  40 0 0 50 0 0 0 10 30 0\n';
  const p = stealPercentages(out);
  assert.ok(p instanceof Map);
  assert.equal(p.get('cpu'), 10);
});

test('cannot tell is an error: a kernel without the steal column, one snapshot, no time passing', () => {
  const old = judgeSteal(fixture('proc-stat/rhel-4-no-steal-column.txt'), 5, 5, 10);
  assert.equal(old.status, 'error');
  assert.match(old.detail ?? '', /no steal column in \/proc\/stat \(it needs Linux >= 2\.6\.11\)/);
  const one = judgeSteal('cpu  1 2 3 4 5 6 7 8 0 0\n', 5, 5, 10);
  assert.equal(one.status, 'error');
  assert.match(one.detail ?? '', /expected two \/proc\/stat snapshots, found 1/);
  const still = judgeSteal('cpu  1 2 3 4 5 6 7 8 0 0\ncpu  1 2 3 4 5 6 7 8 0 0\n', 5, 5, 10);
  assert.equal(still.status, 'error');
});

test('the check samples in one command with a timeout longer than the sample, using the profile thresholds', async () => {
  const ctx = await fixtureContext(
    { [stealCommand(3)]: fixture('proc-stat/ubuntu-22.04-steal-warn.txt') },
    'name: cp\ndescription: d\nkernel: {min: "5.10", recommended: "5.15"}\nsteal: {warnPercent: 3, failPercent: 6}\n',
    { stealSeconds: 3 },
  );
  const seen: (RunOptions | undefined)[] = [];
  const run = ctx.host.run.bind(ctx.host);
  ctx.host.run = (command: string, options?: RunOptions) => {
    seen.push(options);
    return run(command, options);
  };
  const f = await cpuSteal.run(ctx);
  assert.equal(stealCommand(3), 'cat /proc/stat; sleep 3; cat /proc/stat');
  assert.equal(f.status, 'fail');
  assert.equal(f.observed, '7.0 % (worst cpu2 12.0 %) over 3 s');
  assert.equal(f.expected, '<= 3 % (warn above, fail above 6 %)');
  assert.deepEqual(ctx.host.commands, ['cat /proc/stat; sleep 3; cat /proc/stat']);
  assert.ok((seen[0]?.timeoutMs ?? 0) > 3000, 'timeout above the sample');
});
