import { test } from 'node:test';
import assert from 'node:assert/strict';
import { clockOffset, CLOCK_COMMAND, FLEET_CHECKS, judgeFleet, readFleetFacts, type FleetFacts } from '../../../src/checks/fleet.js';
import { nodeFactsScript } from '../../../src/probes/node-facts.js';
import { NET_FACTS_SCRIPT } from '../../../src/probes/net.js';
import { fixtureContext } from '../../helpers/fixture-host.js';
import { fixture } from '../../helpers/fixtures.js';

function node(target: string, over: Partial<FleetFacts> = {}): FleetFacts {
  const n = Number(target.replace(/\D/g, '')) || 1;
  return {
    target,
    hostname: `node-${n}`,
    machineId: `${n}`.padStart(32, 'a'),
    productUuid: `${n}`.padStart(36, '0'),
    primaryMac: `52:54:00:00:00:0${n}`,
    privateMtu: 1450,
    primaryMtu: 1500,
    kernelFamily: '6.1',
    cgroupVersion: 2,
    clock: { offsetMs: 3, uncertaintyMs: 2 },
    ...over,
  };
}

const byId = (results: ReturnType<typeof judgeFleet>) => new Map(results.map((r) => [r.id, r]));

test('three distinct, agreeing nodes: every fleet check passes', () => {
  const r = judgeFleet([node('n1'), node('n2'), node('n3')]);
  assert.deepEqual(r.map((x) => x.id), FLEET_CHECKS.map((c) => c.id));
  assert.deepEqual(r.filter((x) => x.status !== 'pass').map((x) => `${x.id}: ${x.observed}`), []);
});

test('a cloned image: shared machine-id, product_uuid and MAC fail, naming the clones only', () => {
  const clone = { machineId: node('n1').machineId, productUuid: node('n1').productUuid, primaryMac: node('n1').primaryMac };
  const r = byId(judgeFleet([node('n1'), node('n2'), node('n3', clone)]));
  for (const id of ['fleet.machine-id', 'fleet.product-uuid', 'fleet.mac']) {
    assert.equal(r.get(id)!.status, 'fail', id);
    assert.deepEqual(r.get(id)!.hosts, ['n1', 'n3'], id);
  }
  assert.equal(r.get('fleet.mac')!.observed, '52:54:00:00:00:01 on n1, n3');
  assert.equal(r.get('fleet.hostname')!.status, 'pass');
});

test('product_uuid unreadable on one node: warn saying why, not a pass', () => {
  const r = byId(judgeFleet([node('n1'), node('n2', { productUuid: null, productUuidMissing: 'needs root or passwordless sudo' })]));
  const u = r.get('fleet.product-uuid')!;
  assert.equal(u.status, 'warn');
  assert.equal(u.observed, '1 distinct; unknown on n2 (needs root or passwordless sudo)');
  assert.deepEqual(u.hosts, ['n2']);
});

test('clock: one node 2.5 s ahead is named; round trips are subtracted before judging', () => {
  const r = byId(judgeFleet([node('n1'), node('n2', { clock: { offsetMs: -4, uncertaintyMs: 3 } }), node('n3', { clock: { offsetMs: 2500, uncertaintyMs: 40 } })]));
  const c = r.get('fleet.clock')!;
  assert.equal(c.status, 'warn');
  assert.deepEqual(c.hosts, ['n3']);
  assert.equal(c.observed, 'vs this machine: n1 +3 ms ±2 ms, n2 -4 ms ±3 ms, n3 +2500 ms ±40 ms; largest between nodes n2–n3 2504 ms');
  // 900 ms apart is within etcd's 1 s.
  assert.equal(byId(judgeFleet([node('n1'), node('n2', { clock: { offsetMs: 903, uncertaintyMs: 2 } })])).get('fleet.clock')!.status, 'pass');
  // 1.2 s apart, but each read took 1 s: cannot tell.
  const slow = byId(judgeFleet([node('n1', { clock: { offsetMs: 0, uncertaintyMs: 500 } }), node('n2', { clock: { offsetMs: 800, uncertaintyMs: 500 } })])).get('fleet.clock')!;
  assert.equal(slow.status, 'warn');
  assert.match(slow.observed, /cannot tell/);
});

test('clock: every node 5 s away from this machine but agreeing among themselves warns, naming them', () => {
  const c = byId(judgeFleet([node('n1', { clock: { offsetMs: 5000, uncertaintyMs: 5 } }), node('n2', { clock: { offsetMs: 5010, uncertaintyMs: 5 } })])).get('fleet.clock')!;
  assert.equal(c.status, 'warn');
  assert.deepEqual(c.hosts, ['n1', 'n2']);
  assert.match(c.remedy ?? '', /this machine's clock is the wrong one/);
});

test('MTU: the private network is compared when every node has one; the odd node is named and fails', () => {
  const r = byId(judgeFleet([node('n1'), node('n2'), node('n3', { privateMtu: 9000 })]));
  const m = r.get('fleet.mtu')!;
  assert.equal(m.status, 'fail');
  assert.equal(m.observed, 'private network: MTU 1450: n1, n2; MTU 9000: n3');
  assert.deepEqual(m.hosts, ['n3']);
  const noPrivate = byId(judgeFleet([node('n1', { privateMtu: null }), node('n2')])).get('fleet.mtu')!;
  assert.equal(noPrivate.observed, 'default route: MTU 1500: n1, n2');
  assert.equal(noPrivate.status, 'pass');
});

test('kernel family and cgroup version differences warn and name the minority', () => {
  const r = byId(judgeFleet([node('n1'), node('n2', { kernelFamily: '5.15', cgroupVersion: 1 }), node('n3')]));
  assert.equal(r.get('fleet.kernel')!.status, 'warn');
  assert.equal(r.get('fleet.kernel')!.observed, '6.1: n1, n3; 5.15: n2');
  assert.deepEqual(r.get('fleet.cgroup')!.hosts, ['n2']);
});

test('one host answered: every fleet check is skipped; --ignore marks fleet ids', () => {
  const r = judgeFleet([node('n1')], ['fleet.clock']);
  assert.ok(r.every((x) => x.status === 'skip'));
  assert.equal(r.find((x) => x.id === 'fleet.clock')!.ignored, true);
  assert.equal(judgeFleet([node('n1'), node('n2')], ['all']).every((x) => x.ignored), true);
});

test('clockOffset: nanoseconds, busybox seconds (a literal N), garbage', () => {
  const c = clockOffset('1764752400123456789\n', 1764752400100, 1764752400120)!;
  assert.ok(Math.abs(c.offsetMs - 13.456789) < 1e-9, String(c.offsetMs));
  assert.equal(c.uncertaintyMs, 10);
  assert.deepEqual(clockOffset('1764752400N\n', 1764752400000, 1764752400010), { offsetMs: 495, uncertaintyMs: 505 });
  assert.equal(clockOffset('date: invalid', 0, 1), null);
});

test('readFleetFacts on the recorded local facts: the node facts are not read again; one clock read', async () => {
  const ctx = await fixtureContext({
    [nodeFactsScript('/var/lib')]: fixture('hosts/local-6.18/node-facts.out'),
    [NET_FACTS_SCRIPT]: 'nproc 2\nonline 0-1\nethtool -\nroute Iface\tDestination\tGateway\nroute eth0\t00000000\t0100A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\niface eth0\ndriver virtio_net\nmtu 1400\noperstate up\nmaster \nrxq 1\ntxq 1\n',
    [CLOCK_COMMAND]: '1764752400123456789\n',
  });
  let t = 1764752400100;
  const f = await readFleetFacts(ctx, 'local', () => (t += 10));
  assert.deepEqual({ ...f, clock: null }, {
    target: 'local', hostname: 'vm', machineId: '3d1219c7c4c5404aaa1f6d2a48adfda4', productUuid: null, productUuidMissing: 'no DMI table',
    primaryMac: '02:fc:00:00:00:01', privateMtu: null, primaryMtu: 1400, kernelFamily: '6.18', cgroupVersion: 1, clock: null,
  });
  assert.ok(Math.abs(f.clock!.offsetMs - 8.456789) < 1e-9, String(f.clock!.offsetMs));
  assert.equal(f.clock!.uncertaintyMs, 5);
  await readFleetFacts(ctx, 'local', () => (t += 10));
  assert.deepEqual(ctx.host.commands.filter((c) => c !== CLOCK_COMMAND).length, 2, 'node facts and interfaces read once each');
});

test('readFleetFacts: unreadable facts and a failing clock read leave a host with unknowns, not an exception', async () => {
  const ctx = await fixtureContext({ [CLOCK_COMMAND]: { code: 1, stderr: 'date: not found' } });
  const f = await readFleetFacts(ctx, 'n1');
  assert.equal(f.hostname, null);
  assert.equal(f.clock, null);
  assert.match(f.error ?? '', /^reading node facts failed \(exit 127\).*; clock unreadable: date: not found$/);
  const r = new Map(judgeFleet([f, node('n2')]).map((x) => [x.id, x]));
  assert.equal(r.get('fleet.hostname')!.status, 'warn');
  assert.deepEqual(r.get('fleet.clock')!.hosts, ['n1']);
});
