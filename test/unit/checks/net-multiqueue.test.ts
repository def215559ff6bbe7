import { test } from 'node:test';
import assert from 'node:assert/strict';
import { judgeMultiqueue, netMultiqueue } from '../../../src/checks/net-multiqueue.js';
import { parseChannels } from '../../../src/probes/net.js';
import { NET_FACTS_SCRIPT, parseNetFacts } from '../../../src/probes/net.js';
import { fixtureContext } from '../../helpers/fixture-host.js';
import { fixture } from '../../helpers/fixtures.js';

// [ethtool -l fixture, max, current] as {rx, tx, other, combined}; null = n/a.
const channelCases: [string, (number | null)[], (number | null)[]][] = [
  ['virtio-1q-netlink.txt', [null, null, null, 1], [null, null, null, 1]],
  ['virtio-2q-netlink.txt', [null, null, null, 2], [null, null, null, 2]],
  ['virtio-4q-ioctl.txt', [0, 0, 0, 4], [0, 0, 0, 4]],
  ['virtio-8q-netlink.txt', [null, null, null, 8], [null, null, null, 8]],
  ['virtio-1of4-ioctl.txt', [0, 0, 0, 4], [0, 0, 0, 1]],
  ['ena-combined-netlink.txt', [null, null, null, 8], [null, null, null, 8]],
  ['ena-rxtx-ioctl.txt', [8, 8, 0, 0], [8, 8, 0, 0]],
  ['vmxnet3-netlink.txt', [null, null, 1, 2], [null, null, 1, 2]],
];

for (const [file, max, current] of channelCases) {
  test(`ethtool -l: ${file}`, () => {
    const c = parseChannels(fixture(`ethtool-l/${file}`));
    assert.equal(c.kind, 'ok');
    if (c.kind !== 'ok') return;
    const counts = (x: typeof c.max) => [x.rx, x.tx, x.other, x.combined];
    assert.deepEqual(counts(c.max), max);
    assert.deepEqual(counts(c.current), current);
  });
}

test('ethtool -l: e1000 has no channels, in the netlink (recorded) and ioctl formats', () => {
  assert.deepEqual(parseChannels(fixture('ethtool-l/e1000-netlink.txt')), { kind: 'unsupported' });
  assert.deepEqual(parseChannels(fixture('ethtool-l/e1000-ioctl.txt')), { kind: 'unsupported' });
  assert.deepEqual(parseChannels('netlink error: No such device\n'), { kind: 'unreadable', reason: 'netlink error: No such device' });
});

// [fixture, status, observed, remedy pattern or undefined]
const cases: [string, string, string, RegExp | undefined][] = [
  [
    'local-debian12-noethtool.txt',
    'warn',
    'eth0: 1 queue (maximum unknown: no ethtool); 2 vCPUs',
    /^install ethtool \(apt-get install ethtool, or dnf install ethtool\) and check again: ethtool -l eth0/,
  ],
  [
    'vm-debian12-virtio-1q.txt',
    'warn',
    'eth0: 1 of max 1 combined (the NIC offers fewer queues than vCPUs); 2 vCPUs',
    /^ask the provider for multiqueue virtio-net on eth0 \(libvirt <driver queues='2'\/>: one queue per vCPU\), then reboot$/,
  ],
  [
    'vm-debian12-e1000-4cpu.txt',
    'warn',
    'eth0: 1 queue, fixed (e1000 has no channel support); eth1: 1 of max 1 combined (the NIC offers fewer queues than vCPUs); 4 vCPUs',
    /^ask the provider for multiqueue virtio-net on eth0, eth1 \(libvirt <driver queues='4'\/>/,
  ],
  ['vagrant-debian12-virtio-2q.txt', 'pass', 'eth0: 2 of max 2 combined; 2 vCPUs', undefined],
  ['vagrant-debian12-virtio-1of2.txt', 'fail', 'eth0: 1 of max 2 combined; 2 vCPUs', /^ethtool -L eth0 combined 2 \(prep-node apply makes it persistent\)$/],
  ['ubuntu-20.04-virtio-4q.txt', 'pass', 'ens3: 4 of max 4 combined; 4 vCPUs', undefined],
  ['ubuntu-22.04-virtio-2of4-private.txt', 'fail', 'ens10: 4 of max 4 combined; ens3: 2 of max 4 combined; 4 vCPUs', /^ethtool -L ens3 combined 4 \(prep-node apply makes it persistent\)$/],
  ['ubuntu-24.04-virtio-8q-two-defaults.txt', 'pass', 'enp1s0: 8 of max 8 combined; enp2s0: 8 of max 8 combined; 8 vCPUs', undefined],
  ['debian-10-virtio-1of4.txt', 'fail', 'ens3: 1 of max 4 combined; 4 vCPUs', /^ethtool -L ens3 combined 4 /],
  ['debian-10-e1000.txt', 'warn', 'ens3: 1 queue, fixed (e1000 has no channel support); 2 vCPUs', /multiqueue virtio-net on ens3 \(libvirt <driver queues='2'\/>/],
  ['debian-11-virtio-noethtool.txt', 'pass', 'eth0: 2 queues (maximum unknown: no ethtool); 2 vCPUs', undefined],
  ['rhel-8-vmxnet3.txt', 'warn', 'ens192: 2 of max 2 combined (the NIC offers fewer queues than vCPUs); 4 vCPUs', /on ens192 \(libvirt <driver queues='4'\/>/],
  ['rhel-9-bridge.txt', 'pass', 'eth0: 2 of max 2 combined; eth1: 2 of max 2 combined; 2 vCPUs', undefined],
  ['amazon-linux-2023-ena.txt', 'pass', 'ens5: 8 of max 8 combined; 8 vCPUs', undefined],
];

for (const [file, status, observed, remedy] of cases) {
  test(`net.multiqueue on ${file} is ${status}`, () => {
    const f = judgeMultiqueue(parseNetFacts(fixture(`net/${file}`)));
    assert.equal(f.status, status);
    assert.equal(f.observed, observed);
    if (remedy) {
      assert.match(f.remedy ?? '', remedy);
      assert.match(f.detail ?? '', /RSS spread.*scaling\.rst.*linux-kvm\.org\/page\/Multiqueue/);
    } else {
      assert.equal(f.remedy, undefined);
    }
  });
}

test('one vCPU needs one queue: pass even when the NIC could do more', () => {
  const facts = { ...parseNetFacts(fixture('net/debian-10-virtio-1of4.txt')), cpus: 1 };
  const f = judgeMultiqueue(facts);
  assert.equal(f.status, 'pass');
  assert.equal(f.observed, 'ens3: 1 of max 4 combined; 1 vCPU');
});

test('drivers that count RX and TX apart get an rx/tx remedy', () => {
  const text = fixture('ethtool-l/ena-rxtx-ioctl.txt').replace('Current hardware settings:\nRX:\t\t8\nTX:\t\t8', 'Current hardware settings:\nRX:\t\t2\nTX:\t\t2');
  const facts = parseNetFacts(`nproc 8\nethtool /sbin/ethtool\niface eth0\ndriver ena\nrxq 2\nethtool-l-rc 0\n${text.replace(/^/gm, 'ethtool-l ')}`);
  const f = judgeMultiqueue(facts);
  assert.equal(f.status, 'fail');
  assert.equal(f.observed, 'eth0: 2 of max 8 rx/tx; 8 vCPUs');
  assert.match(f.remedy ?? '', /^ethtool -L eth0 rx 8 tx 8 /);
});

test('cannot tell is an error: ethtool failing, no CPU count, no interface', () => {
  const bad = parseNetFacts('nproc 2\nethtool /usr/sbin/ethtool\niface eth0\ndriver virtio_net\nrxq 1\nethtool-l-rc 1\nethtool-l netlink error: No such device\n');
  const f = judgeMultiqueue(bad);
  assert.equal(f.status, 'error');
  assert.equal(f.observed, 'eth0: ethtool -l failed (netlink error: No such device); 2 vCPUs');
  const g = judgeMultiqueue({ ...parseNetFacts(fixture('net/vm-debian12-virtio-1q.txt')), cpus: null });
  assert.equal(g.status, 'error');
  assert.equal(g.observed, 'vCPU count unknown');
  assert.equal(judgeMultiqueue(parseNetFacts(fixture('net/no-physical.txt'))).status, 'error');
});

test('the check requires net.virtio and shares its facts', async () => {
  assert.deepEqual(netMultiqueue.requires, ['net.virtio']);
  const ctx = await fixtureContext({ [NET_FACTS_SCRIPT]: fixture('net/debian-10-virtio-1of4.txt') });
  assert.equal((await netMultiqueue.run(ctx)).status, 'fail');
  assert.deepEqual(ctx.host.commands, [NET_FACTS_SCRIPT]);
});

test('one queue short of the vCPUs is still a fail when the NIC offers more', () => {
  const out = fixture('net/debian-10-virtio-1of4.txt').replace('ethtool-l Combined:\t1', 'ethtool-l Combined:\t3');
  const f = judgeMultiqueue(parseNetFacts(out));
  assert.equal(f.status, 'fail');
  assert.equal(f.observed, 'ens3: 3 of max 4 combined; 4 vCPUs');
  assert.match(f.remedy ?? '', /^ethtool -L ens3 combined 4 /);
});

test('a profile with a fixed channel count is judged against it, not the vCPUs', async () => {
  const { fixtureContext } = await import('../../helpers/fixture-host.js');
  const { NET_FACTS_SCRIPT } = await import('../../../src/probes/net.js');
  const out = fixture('net/vm-debian12-virtio-1q.txt');
  const base = 'name: p\ndescription: d\nkernel: {min: "5.10", recommended: "5.15"}\n';
  const one = await netMultiqueue.run(await fixtureContext({ [NET_FACTS_SCRIPT]: out }, `${base}channels: 1\n`));
  assert.equal(one.status, 'pass');
  assert.match(one.observed, /profile wants 1 queue \(\d+ vCPUs?\)$/);
});
