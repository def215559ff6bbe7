import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NET_FACTS_SCRIPT, parseNetFacts } from '../../src/probes/net.js';
import { judgeMultiqueue } from '../../src/checks/net-multiqueue.js';
import { NodeRefusal } from '../../src/errors.js';
import { CHANNELS_RULE, CHANNELS_SCRIPT, channelsBootCommands, channelsFiles, channelsTuner } from '../../src/tuners/channels.js';
import { readFilesCommand } from '../../src/tuners/files.js';
import type { TunerPlan } from '../../src/tuners/types.js';
import { parseProfile } from '../../src/profiles/load.js';
import { FixtureHost, type Answer } from '../helpers/fixture-host.js';
import { fixture } from '../helpers/fixtures.js';

const DIR = fileURLToPath(new URL('../../../test/fixtures/tuners/channels/', import.meta.url));
const expected = (name: string) => readFileSync(DIR + name, 'utf8');

const BASE = `name: test\ndescription: t\nkernel: {min: "5.10", recommended: "5.15"}\n`;
const profile = (channels?: string) => parseProfile(`${BASE}${channels === undefined ? '' : `channels: ${channels}\n`}`, 'test.yaml');
const PATHS = [CHANNELS_SCRIPT, CHANNELS_RULE];
const READ = readFilesCommand(PATHS);

/** readFilesCommand's answer: both files absent, or present with these contents. */
function files(present: string[] = []): string {
  return PATHS.map((p, n) => (present[n] === undefined ? `@@ ${p}\nA\n` : `@@ ${p}\nF 644 0 0\n${Buffer.from(present[n]).toString('base64')}\n`)).join('');
}

async function plan(facts: string, channels?: string, extra: Record<string, Answer> = {}): Promise<{ plan: TunerPlan; host: FixtureHost }> {
  const host = new FixtureHost({ [NET_FACTS_SCRIPT]: facts, [READ]: files(), ...extra }, 'node1');
  return { plan: await channelsTuner.plan({ host, profile: profile(channels), cache: new Map() }), host };
}

test('the udev rule and script are exactly as recorded in the fixtures', () => {
  const [script, rule] = channelsFiles(profile());
  assert.deepEqual(script, { path: CHANNELS_SCRIPT, content: expected('prep-node-channels-vcpus.sh'), mode: 0o755 });
  assert.deepEqual(rule, { path: CHANNELS_RULE, content: expected('90-prep-node-channels.rules'), mode: 0o644 });
  assert.equal(channelsFiles(profile('3'))[0]!.content, expected('prep-node-channels-3.sh'));
  execFileSync('sh', ['-n', '-c', script.content]);
  assert.deepEqual(channelsFiles(profile('keep')), []);
  assert.deepEqual(channelsBootCommands(profile('keep')), []);
  assert.deepEqual(channelsBootCommands(profile()), ['if command -v udevadm >/dev/null 2>&1; then udevadm control --reload 2>/dev/null || true; fi', CHANNELS_SCRIPT]);
});

test('vcpus on a virtio NIC using 1 of 2 queues (recorded Vagrant VM): combined 2, the rule and script written; net.multiqueue passes after', async () => {
  const facts = fixture('net/vagrant-debian12-virtio-1of2.txt');
  const { plan: p } = await plan(facts);
  assert.deepEqual(p.changes, [{ key: 'eth0', current: '1 combined', desired: '2 combined', persist: `udev rule (${CHANNELS_RULE})` }]);
  assert.deepEqual(p.originals, [{ tuner: 'channels', key: 'eth0', value: '1' }]);
  assert.deepEqual(p.files, channelsFiles(profile()));
  assert.equal(judgeMultiqueue(parseNetFacts(facts)).status, 'fail');
  const after = facts.replace(/(Current hardware settings:[\s\S]*ethtool-l Combined:\t)1/, '$12').replace(/^rxq 1$/m, 'rxq 2').replace(/^txq 1$/m, 'txq 2');
  assert.equal(judgeMultiqueue(parseNetFacts(after)).status, 'pass');
  const { plan: again } = await plan(after, undefined, { [READ]: files(channelsFiles(profile()).map((f) => f.content!)) });
  assert.deepEqual([again.changes, again.files, again.unchanged], [[], [], ['eth0 2 combined']]);
});

test('ethtool missing and a change needed: NodeRefusal saying how to install it', async () => {
  await assert.rejects(
    plan(fixture('net/local-debian12-noethtool.txt')),
    (e: unknown) => e instanceof NodeRefusal && e.exitCode === 5 && /^node1: eth0 has 1 queue and ethtool is missing to change that: install ethtool: apt-get install ethtool/.test(e.message),
  );
});

test('ethtool missing but already a queue per vCPU: nothing to do, no refusal', async () => {
  const { plan: p } = await plan(fixture('net/debian-11-virtio-noethtool.txt'));
  assert.deepEqual([p.changes, p.files, p.unchanged], [[], [], ['eth0 2 combined']]);
});

test('already right (the NIC maximum below the vCPUs counts as right): nothing to change, no files', async () => {
  const { plan: p } = await plan(fixture('net/vm-debian12-virtio-1q.txt'));
  assert.deepEqual(p, { tuner: 'channels', changes: [], files: [], originals: [], unchanged: ["eth0 1 combined (the NIC's maximum; 2 vCPUs)"], notes: [] });
});

test('installed before with another profile: the files are rewritten even when nothing runs differently', async () => {
  const old = channelsFiles(profile('2')).map((f) => f.content!);
  const { plan: p } = await plan(fixture('net/vagrant-debian12-virtio-2q.txt'), undefined, { [READ]: files(old) });
  assert.deepEqual(p.changes, []);
  assert.deepEqual(p.files.map((f) => f.path), [CHANNELS_SCRIPT]);
});

test('a number above the NIC maximum is refused; a number within it is set', async () => {
  await assert.rejects(plan(fixture('net/ubuntu-22.04-virtio-2of4-private.txt'), '8'), /node1: ens10 offers at most 4 combined channels \(ethtool -l\), the profile's channels asks 8: set channels to 4 or less, or "vcpus"$/);
  const { plan: p } = await plan(fixture('net/ubuntu-22.04-virtio-2of4-private.txt'), '3');
  assert.deepEqual(p.changes.map((c) => [c.key, c.current, c.desired]), [['ens10', '4 combined', '3 combined'], ['ens3', '2 combined', '3 combined']]);
});

test('keep plans nothing and reads nothing; other drivers are noted, not touched', async () => {
  const { plan: p, host } = await plan('', 'keep');
  assert.deepEqual(p.changes, []);
  assert.deepEqual(host.commands, []);
  const { plan: q } = await plan(fixture('net/amazon-linux-2023-ena.txt'));
  assert.deepEqual([q.changes, q.notes], [[], ['ens5: ena, not virtio-net: channels left alone']]);
});

test('apply runs ethtool -L through a guard; restoreCommand puts the original back', () => {
  const cmd = channelsTuner.restoreCommand({ tuner: 'channels', key: 'eth0', value: '1' });
  assert.match(cmd, /if \[ "\$\("\$E" -l eth0 2>\/dev\/null \| awk .*\)" != 1 \]; then "\$E" -L eth0 combined 1; fi$/);
  const apply = channelsTuner.applyCommand({ tuner: 'channels', changes: [{ key: 'eth0', current: '1 combined', desired: '2 combined', persist: '' }], files: [], originals: [], unchanged: [], notes: [] });
  assert.equal(apply, `{ ${channelsTuner.restoreCommand({ tuner: 'channels', key: 'eth0', value: '2' })}; }`);
  assert.equal(channelsTuner.cutsSession, true);
  assert.match(channelsTuner.reloadCommand!, /udevadm control --reload/);
});

test('the script sets min(vCPUs, max) on virtio-net interfaces only (fake /sys and ethtool)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'prep-node-channels-'));
  try {
    const sys = join(dir, 'sys');
    const nic = (name: string, index: number, driver: string) => {
      mkdirSync(join(sys, 'bus', driver), { recursive: true });
      mkdirSync(join(sys, 'devices', name), { recursive: true });
      symlinkSync(join(sys, 'bus', driver), join(sys, 'devices', name, 'driver'));
      mkdirSync(join(sys, 'class/net', name), { recursive: true });
      symlinkSync(join(sys, 'devices', name), join(sys, 'class/net', name, 'device'));
      writeFileSync(join(sys, 'class/net', name, 'ifindex'), `${index}\n`);
    };
    mkdirSync(join(sys, 'devices/system/cpu'), { recursive: true });
    writeFileSync(join(sys, 'devices/system/cpu/online'), '0-2,5\n');
    nic('eth0', 2, 'virtio_net');
    nic('eth1', 3, 'virtio_net');
    nic('ens5', 4, 'ena');
    mkdirSync(join(dir, 'bin'));
    // Max 8 on eth0 (current 1), 2 on eth1 (current 2); -L calls are logged.
    writeFileSync(
      join(dir, 'bin/ethtool'),
      `#!/bin/sh\nif [ "$1" = -L ]; then echo "$*" >> ${dir}/calls; exit 0; fi\nmax=8; cur=1; [ "$2" = eth1 ] && { max=2; cur=2; }\n` +
        `printf 'Channel parameters for %s:\\nPre-set maximums:\\nRX:\\t\\tn/a\\nCombined:\\t%s\\nCurrent hardware settings:\\nRX:\\t\\tn/a\\nCombined:\\t%s\\n' "$2" $max $cur\n`,
    );
    chmodSync(join(dir, 'bin/ethtool'), 0o755);
    const script = join(dir, 'script');
    writeFileSync(script, channelsFiles(profile())[0]!.content!);
    const env = { ...process.env, PATH: `${dir}/bin:${process.env.PATH}`, PREP_NODE_SYSFS: sys };
    execFileSync('sh', [script], { env });
    assert.equal(readFileSync(join(dir, 'calls'), 'utf8'), '-L eth0 combined 4\n', '4 online CPUs, eth1 already at its max 2, ens5 not virtio');
    rmSync(join(dir, 'calls'));
    execFileSync('sh', [script, '3'], { env });
    assert.throws(() => readFileSync(join(dir, 'calls')), 'IFINDEX 3 is eth1: nothing to change');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
