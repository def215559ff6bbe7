import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nodeFacts, nodeFactsScript, parseDf, parseListening, parseNodeFacts, parseResolution } from '../../../src/probes/node-facts.js';
import { fixtureContext } from '../../helpers/fixture-host.js';
import { fixture } from '../../helpers/fixtures.js';

const facts = (host: string) => parseNodeFacts(fixture(`hosts/${host}/node-facts.out`), '/var/lib');

test('recorded local 6.18: every section read', () => {
  const f = facts('local-6.18');
  assert.equal(f.cpus, 2);
  assert.equal(f.memTotalKiB, 24683628);
  assert.deepEqual(f.disk, { path: '/var/lib', sizeKiB: 264212084, availableKiB: 82329348, mountedOn: '/' });
  // Two listeners; the established connections to 36835 (both directions) are not listeners.
  assert.deepEqual([...f.listening].sort((a, b) => a - b), [2024, 36835]);
  assert.equal(f.binaries.get('ip'), '/usr/sbin/ip');
  assert.equal(f.binaries.get('socat'), null);
  assert.deepEqual(f.sockets, []);
  assert.equal(f.hostname, 'vm');
  assert.deepEqual(f.resolveHostname, { ok: true, addresses: ['127.0.0.1'], error: '' });
  assert.deepEqual(f.nofile, { shellSoft: 20000, shellHard: 20000, systemdSoft: null, systemdHard: null });
  assert.deepEqual(f.lsm, []);
  assert.equal(f.apparmor, null);
  assert.equal(f.selinuxEnforcing, null);
  assert.equal(f.machineId, '3d1219c7c4c5404aaa1f6d2a48adfda4');
  assert.equal(f.productUuid, null);
  assert.equal(f.productUuidMissing, 'no DMI table');
  assert.deepEqual([...f.macs], [['eth0', '02:fc:00:00:00:01']]);
  assert.equal(f.kernel, '6.18.44-fc-v1147');
  assert.equal(f.cgroupVersion, 1);
});

test('Ubuntu 24.04 (written): only LISTEN sockets count, IPv6 included; systemd limits; AppArmor', () => {
  const f = facts('ubuntu-24.04');
  assert.deepEqual([...f.listening].sort((a, b) => a - b), [22, 53, 6443, 10250]);
  assert.deepEqual(f.nofile, { shellSoft: 1024, shellHard: 1048576, systemdSoft: 1024, systemdHard: 524288 });
  assert.equal(f.apparmor, true);
  assert.deepEqual(f.resolveLocalhost.addresses, ['::1', '127.0.0.1']);
  assert.equal(f.cgroupVersion, 2);
});

test('RHEL 9 (written): an uninitialized machine-id is no identity; product_uuid lowercased; SELinux enforcing', () => {
  const f = facts('rhel-9');
  assert.equal(f.machineId, null);
  assert.equal(f.productUuid, '4c4c4544-0042-3510-8052-b4c04f4a3732');
  assert.equal(f.productUuidMissing, null);
  assert.equal(facts('ubuntu-24.04').productUuidMissing, 'needs root or passwordless sudo');
  assert.equal(f.selinuxEnforcing, true);
  assert.deepEqual(f.resolveHostname, { ok: false, addresses: [], error: '' });
  assert.equal(f.disk.path, '/var/lib');
});

test('parsers: df error, unreadable getent, malformed /proc/net/tcp lines', () => {
  assert.deepEqual(parseDf("df: /var/lib: No such file or directory", '/var/lib'), { path: '/var/lib', error: 'df: /var/lib: No such file or directory' });
  assert.deepEqual(parseResolution(undefined), { ok: false, addresses: [], error: '' });
  assert.deepEqual(parseResolution('getent: not found\nrc=127'), { ok: false, addresses: [], error: 'getent: not found' });
  assert.deepEqual(parseResolution('rc=124'), { ok: false, addresses: [], error: 'no answer within 5 s' });
  assert.deepEqual([...parseListening('garbage\n 0: 00000000:ZZZZ 00000000:0000 0A\n')], []);
});

test('one round-trip per host however many checks read the facts', async () => {
  const script = nodeFactsScript('/var/lib');
  const ctx = await fixtureContext({ [script]: fixture('hosts/local-6.18/node-facts.out') });
  await Promise.all([nodeFacts(ctx, '/var/lib'), nodeFacts(ctx, '/var/lib'), nodeFacts(ctx, '/var/lib')]);
  assert.equal(ctx.host.commands.length, 1);
});

test('a failing script is an error naming the exit status', async () => {
  const script = nodeFactsScript('/var/lib');
  const ctx = await fixtureContext({ [script]: { code: 2, stderr: 'sh: syntax error' } });
  await assert.rejects(nodeFacts(ctx, '/var/lib'), /reading node facts failed \(exit 2\): sh: syntax error/);
});

test('the disk path is quoted into the script and cannot break out of it', () => {
  assert.match(nodeFactsScript("/var/lib/it's"), /df -Pk '\/var\/lib\/its'/);
});
