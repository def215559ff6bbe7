import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NET_FACTS_SCRIPT, countCpuList, defaultRouteV4, defaultRouteV6, netFacts, parseNetFacts } from '../../../src/probes/net.js';
import { worstStatus } from '../../../src/checks/types.js';
import { fixtureContext } from '../../helpers/fixture-host.js';
import { fixture } from '../../helpers/fixtures.js';

test('this machine (recorded): one virtio NIC at MTU 1400, no ethtool, 2 CPUs, default route on eth0', () => {
  const f = parseNetFacts(fixture('net/local-debian12-noethtool.txt'));
  assert.equal(f.cpus, 2);
  assert.equal(f.ethtool, null);
  assert.equal(f.defaultRoute, 'eth0');
  assert.deepEqual(f.interfaces, [{ name: 'eth0', driver: 'virtio_net', mtu: 1400, operstate: 'up', master: null, rxQueues: 1, txQueues: 1, channels: null }]);
});

test('the test VM (recorded): no IPv4 gateway, so the default route comes from ipv6_route', () => {
  const out = fixture('net/vm-debian12-virtio-1q.txt');
  const f = parseNetFacts(out);
  assert.equal(defaultRouteV4(fixture('route/vm-debian12.route')), null);
  assert.equal(f.defaultRoute, 'eth0');
  assert.equal(f.ethtool, '/usr/sbin/ethtool');
  assert.equal(f.interfaces[0]!.channels?.code, 0);
  assert.match(f.interfaces[0]!.channels.text, /^Channel parameters for eth0:\nPre-set maximums:\n/);
});

test('the e1000 VM (recorded): two NICs in sysfs order, the unconfigured one down, ethtool -l exit status kept', () => {
  const f = parseNetFacts(fixture('net/vm-debian12-e1000-4cpu.txt'));
  assert.equal(f.cpus, 4);
  assert.deepEqual(
    f.interfaces.map((i) => [i.name, i.driver, i.operstate, i.channels?.code]),
    [
      ['eth0', 'e1000', 'up', 1],
      ['eth1', 'virtio_net', 'down', 0],
    ],
  );
  assert.equal(f.interfaces[0]!.channels!.text, 'netlink error: Operation not supported\n');
});

test('IPv4 default route: lowest metric wins, bridges count, no default is null', () => {
  assert.equal(defaultRouteV4(fixture('route/local-debian12.route')), 'eth0');
  assert.equal(parseNetFacts(fixture('net/ubuntu-24.04-virtio-8q-two-defaults.txt')).defaultRoute, 'enp1s0');
  assert.equal(parseNetFacts(fixture('net/rhel-9-bridge.txt')).defaultRoute, 'br0');
  assert.equal(parseNetFacts(fixture('net/rhel-9-bridge.txt')).interfaces[0]!.master, 'br0');
});

test("IPv6 default route: lo's reject route is not a default route", () => {
  const table = fixture('route/vm-debian12.ipv6_route');
  assert.equal(defaultRouteV6(table), 'eth0');
  const withoutGateway = table
    .split('\n')
    .filter((l) => !l.includes('fe800000000000000000000000000002'))
    .join('\n');
  assert.equal(defaultRouteV6(withoutGateway), null);
});

test('CPU lists count ranges and singles; anything else is unknown', () => {
  assert.equal(countCpuList('0-1'), 2);
  assert.equal(countCpuList('0'), 1);
  assert.equal(countCpuList('0-3,6,8-9\n'), 7);
  assert.equal(countCpuList(''), null);
  assert.equal(countCpuList('zero'), null);
  // nproc stands in when the online list cannot be read.
  assert.equal(parseNetFacts('nproc 3\nonline \nethtool -\n').cpus, 3);
});

test('worstStatus: fail > error > warn > pass', () => {
  assert.equal(worstStatus(['pass', 'warn', 'pass']), 'warn');
  assert.equal(worstStatus(['warn', 'error']), 'error');
  assert.equal(worstStatus(['error', 'fail', 'warn']), 'fail');
  assert.equal(worstStatus([]), 'pass');
});

test('netFacts runs the script once per host, however many checks ask', async () => {
  const ctx = await fixtureContext({ [NET_FACTS_SCRIPT]: fixture('net/local-debian12-noethtool.txt') });
  const [a, b] = await Promise.all([netFacts(ctx), netFacts(ctx)]);
  assert.equal(a, b);
  assert.equal(ctx.host.commands.length, 1);
});

test('netFacts says why when the script fails', async () => {
  const ctx = await fixtureContext({ [NET_FACTS_SCRIPT]: { code: 2, stderr: 'sh: 1: /sys/class/net: Permission denied' } });
  await assert.rejects(netFacts(ctx), /listing network interfaces failed \(exit 2\): sh: 1: \/sys\/class\/net: Permission denied/);
});
