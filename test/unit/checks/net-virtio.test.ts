import { test } from 'node:test';
import assert from 'node:assert/strict';
import { judgeVirtio, netVirtio } from '../../../src/checks/net-virtio.js';
import { NET_FACTS_SCRIPT, parseNetFacts } from '../../../src/probes/net.js';
import { fixtureContext } from '../../helpers/fixture-host.js';
import { fixture } from '../../helpers/fixtures.js';

// [fixture, status, observed, remedy (a pattern, or undefined when passing)]
const cases: [string, string, string, RegExp | undefined][] = [
  ['local-debian12-noethtool.txt', 'pass', 'eth0: virtio_net', undefined],
  ['vm-debian12-virtio-1q.txt', 'pass', 'eth0: virtio_net', undefined],
  ['vagrant-debian12-virtio-2q.txt', 'pass', 'eth0: virtio_net', undefined],
  ['vm-debian12-e1000-4cpu.txt', 'warn', 'eth0: e1000 (emulated); eth1: virtio_net', /^ask the provider to switch eth0 to a virtio NIC \(libvirt <model type='virtio'\/>/],
  ['debian-10-e1000.txt', 'warn', 'ens3: e1000 (emulated)', /switch ens3 to a virtio NIC.*readlink \/sys\/class\/net\/ens3\/device\/driver$/],
  ['rhel-8-vmxnet3.txt', 'warn', 'ens192: vmxnet3 (emulated)', /switch ens192 to a virtio NIC/],
  ['ubuntu-24.04-virtio-8q-two-defaults.txt', 'pass', 'enp1s0: virtio_net; enp2s0: virtio_net', undefined],
  ['amazon-linux-2023-ena.txt', 'pass', 'ens5: ena (paravirtual/SR-IOV, not virtio)', undefined],
  ['rhel-9-bridge.txt', 'pass', 'eth0: virtio_net; eth1: virtio_net', undefined],
];

for (const [file, status, observed, remedy] of cases) {
  test(`net.virtio on ${file} is ${status}`, () => {
    const f = judgeVirtio(parseNetFacts(fixture(`net/${file}`)));
    assert.equal(f.status, status);
    assert.equal(f.observed, observed);
    assert.equal(f.expected, 'virtio_net on every physical interface');
    if (remedy) {
      assert.match(f.remedy ?? '', remedy);
      assert.match(f.detail ?? '', /traps to the hypervisor.*linux-kvm\.org\/page\/Virtio/);
    } else {
      assert.equal(f.remedy, undefined);
    }
  });
}

test('the remedy names only the emulated interfaces', () => {
  const f = judgeVirtio(parseNetFacts(fixture('net/vm-debian12-e1000-4cpu.txt')));
  assert.doesNotMatch(f.remedy ?? '', /eth1/);
});

test('no physical interface is an error, not a pass', () => {
  const f = judgeVirtio(parseNetFacts(fixture('net/no-physical.txt')));
  assert.equal(f.status, 'error');
  assert.match(f.observed, /^no physical interface/);
  assert.match(f.detail ?? '', /cannot tell/);
});

test('a device without a driver is an error; an unknown driver is a warning that says so', () => {
  const facts = parseNetFacts('nproc 2\niface eth0\ndriver \nmtu 1500\niface eth1\ndriver fancy_nic\nmtu 1500\n');
  const f = judgeVirtio(facts);
  assert.equal(f.status, 'error');
  assert.equal(f.observed, 'eth0: no driver bound; eth1: fancy_nic (unrecognised)');
  assert.match(f.remedy ?? '', /ls -l \/sys\/class\/net\/eth0\/device\//);
  const g = judgeVirtio({ ...facts, interfaces: facts.interfaces.slice(1) });
  assert.equal(g.status, 'warn');
  assert.match(g.detail ?? '', /unrecognised driver may be fine/);
});

test('the check reads the shared facts with one command', async () => {
  const ctx = await fixtureContext({ [NET_FACTS_SCRIPT]: fixture('net/debian-10-e1000.txt') });
  const f = await netVirtio.run(ctx);
  assert.equal(f.status, 'warn');
  assert.deepEqual(ctx.host.commands, [NET_FACTS_SCRIPT]);
});
