// The conntrack garbage collection timer `datapath install` leaves on a systemd node (sync-fed nodes;
// the agent runs ct-gc itself): a oneshot service that runs only while the datapath is installed, a
// timer every N seconds, both removed by `datapath remove`; on a node without systemd, nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ctGcService, ctGcTimer, installCtGcTimer, removeCtGcTimer } from '../../src/datapath/ct-gc-timer.js';
import { FixtureHost } from '../helpers/fixture-host.js';

test('the service runs the loader\'s ct-gc once, only while the datapath is installed (pins are gone after a reboot)', () => {
  const unit = ctGcService("'/var/lib/prep-node/bin/prep-node-dp'");
  assert.match(unit, /^ConditionPathExists=\/sys\/fs\/bpf\/prep-node\/state$/m);
  assert.match(unit, /^Type=oneshot$/m);
  assert.match(unit, /^ExecStart='\/var\/lib\/prep-node\/bin\/prep-node-dp' ct-gc$/m);
});

test('the timer fires every interval after the last run', () => {
  const t = ctGcTimer(300);
  assert.match(t, /^OnActiveSec=300s$/m);
  assert.match(t, /^OnUnitActiveSec=300s$/m);
  assert.match(t, /^AccuracySec=30s$/m);
  assert.match(t, /^WantedBy=timers\.target$/m);
  assert.match(ctGcTimer(10), /^AccuracySec=1s$/m);
  assert.match(ctGcTimer(43200), /^AccuracySec=60s$/m);
});

test('no systemd on the node: no timer, nothing written; remove finds nothing', async () => {
  const host = new FixtureHost({ 'test -d /run/systemd/system': { code: 1 } });
  assert.deepEqual(await installCtGcTimer(host, { bin: '/x', intervalSeconds: 300 }), { runner: 'none', intervalSeconds: 300 });
  assert.deepEqual(host.commands, ['test -d /run/systemd/system']);
  const rm = new FixtureHost({});
  // the removal script answers found=0 when neither unit file is there
  (rm as unknown as { run: (c: string) => Promise<unknown> }).run = (c: string) => {
    assert.match(c, /rm -f \/etc\/systemd\/system\/prep-node-dp-ct-gc\.timer \/etc\/systemd\/system\/prep-node-dp-ct-gc\.service/);
    return Promise.resolve({ stdout: 'found=0\n', stderr: '', code: 0, timedOut: false });
  };
  assert.equal(await removeCtGcTimer(rm), false);
});
