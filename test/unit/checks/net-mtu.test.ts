import { test } from 'node:test';
import assert from 'node:assert/strict';
import { judgeMtu, netMtu } from '../../../src/checks/net-mtu.js';
import { NET_FACTS_SCRIPT, parseNetFacts } from '../../../src/probes/net.js';
import { fixtureContext } from '../../helpers/fixture-host.js';
import { fixture } from '../../helpers/fixtures.js';

const WORKER = { primary: 1500, private: 1500, overlay: 'vxlan', apply: true } as const;
const facts = (file: string) => parseNetFacts(fixture(`net/${file}`));

test('this machine (recorded): 1400 on the default-route interface fails, with the command and the profile way out', () => {
  const f = judgeMtu(facts('local-debian12-noethtool.txt'), WORKER);
  assert.equal(f.status, 'fail');
  assert.equal(f.observed, 'eth0 1400 (default route, pods 1350)');
  assert.equal(f.expected, 'default-route interface 1500 (mtu.primary), others 1500 (mtu.private); pods get 1450 under vxlan');
  assert.equal(f.remedy, 'ip link set dev eth0 mtu 1500 (takes effect now, lost at reboot; prep-node apply makes it persistent)');
  assert.match(f.detail ?? '', /set mtu\.primary\/mtu\.private in your profile/);
  assert.match(f.detail ?? '', /outer IPv4 20 \+ UDP 8 \+ VXLAN 8 \+ inner Ethernet 14; RFC 7348/);
});

test('the test VM (recorded): 1500 passes', () => {
  const f = judgeMtu(facts('vm-debian12-virtio-1q.txt'), WORKER);
  assert.equal(f.status, 'pass');
  assert.equal(f.observed, 'eth0 1500 (default route, pods 1450)');
  assert.equal(f.remedy, undefined);
});

test('a provider private network at 1450 fails against mtu.private 1500, and passes when the profile says 1450', () => {
  const f = judgeMtu(facts('ubuntu-22.04-virtio-2of4-private.txt'), WORKER);
  assert.equal(f.status, 'fail');
  assert.equal(f.observed, 'ens10 1450 (private, pods 1400); ens3 1500 (default route, pods 1450)');
  assert.match(f.remedy ?? '', /^ip link set dev ens10 mtu 1500 /);
  assert.doesNotMatch(f.remedy ?? '', /ens3/);
  assert.equal(judgeMtu(facts('ubuntu-22.04-virtio-2of4-private.txt'), { ...WORKER, private: 1450 }).status, 'pass');
});

test("AWS's 9001 on the default-route interface warns about PMTU black holes", () => {
  const f = judgeMtu(facts('amazon-linux-2023-ena.txt'), WORKER);
  assert.equal(f.status, 'warn');
  assert.equal(f.observed, 'ens5 9001 (default route, pods 8951)');
  assert.match(f.remedy ?? '', /^ip link set dev ens5 mtu 1500 /);
  assert.match(f.detail ?? '', /PMTU black holes, RFC 2923/);
});

test('an interface enslaved to the default-route bridge is the primary; a jumbo private one warns', () => {
  const f = judgeMtu(facts('rhel-9-bridge.txt'), WORKER);
  assert.equal(f.status, 'warn');
  assert.equal(f.observed, 'eth0 1500 (default route, pods 1450); eth1 9000 (private, pods 8950)');
  assert.match(f.detail ?? '', /jumbo frames, raise mtu\.private/);
  assert.doesNotMatch(f.detail ?? '', /PMTU/);
});

test('overlay none has no pod arithmetic; geneve cites its RFC', () => {
  const none = judgeMtu(facts('local-debian12-noethtool.txt'), { ...WORKER, overlay: 'none' });
  assert.equal(none.observed, 'eth0 1400 (default route)');
  assert.equal(none.expected, 'default-route interface 1500 (mtu.primary), others 1500 (mtu.private)');
  assert.doesNotMatch(none.detail ?? '', /encapsulation/);
  const geneve = judgeMtu(facts('local-debian12-noethtool.txt'), { ...WORKER, overlay: 'geneve' });
  assert.match(geneve.detail ?? '', /geneve encapsulation costs 50 bytes .*Geneve 8 .*RFC 8926/);
});

test('without a default route every interface is private, and the observation says so', () => {
  // Recorded: the Vagrant VM's namespace has no gateway.
  const vagrant = judgeMtu(facts('vagrant-debian12-virtio-2q.txt'), WORKER);
  assert.equal(vagrant.status, 'pass');
  assert.equal(vagrant.observed, 'eth0 1500 (private, pods 1450); no default route');
  const f = judgeMtu({ ...facts('vm-debian12-virtio-1q.txt'), defaultRoute: null }, { ...WORKER, private: 9000 });
  assert.equal(f.status, 'fail');
  assert.equal(f.observed, 'eth0 1500 (private, pods 1450); no default route');
});

test('no physical interface, or an unreadable MTU, is an error', () => {
  assert.equal(judgeMtu(facts('no-physical.txt'), WORKER).status, 'error');
  const f = judgeMtu(parseNetFacts('nproc 1\niface eth0\ndriver virtio_net\nmtu \n'), WORKER);
  assert.equal(f.status, 'error');
  assert.equal(f.observed, 'eth0 unknown (private); no default route');
});

test('the check reads mtu from the profile', async () => {
  const ctx = await fixtureContext(
    { [NET_FACTS_SCRIPT]: fixture('net/local-debian12-noethtool.txt') },
    'name: p\ndescription: d\nkernel: {min: "5.10", recommended: "5.15"}\nmtu: {primary: 1400, overlay: geneve}\n',
  );
  const f = await netMtu.run(ctx);
  assert.equal(f.status, 'pass');
  assert.equal(f.expected, 'default-route interface 1400 (mtu.primary), others 1500 (mtu.private); pods get 1350 under geneve');
});
