// IPv6 in the control plane: address text (RFC 4291 in, RFC 5952 out), prefixes of either family,
// the endpoints6 / ipcache6 keys worked out by hand from datapath_structs.h, and what a dual-stack
// state compiles to (both addresses of an endpoint carry its identity; IPv6 CIDRs go to ipcache6;
// a rule for 0.0.0.0/0 does not open IPv6).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as enc from '../../src/datapath/encode.js';
import { compileState } from '../../src/datapath/compile.js';
import { IDENTITY_WORLD, IDENTITY_WORLD_IPV6 } from '../../src/datapath/consts.js';
import { allocateIdentities } from '../../src/datapath/identity.js';
import { cidrContainsAny, formatCidrAny, formatIpv6, parseCidrAny, parseIpv6 } from '../../src/datapath/ip.js';
import { cidrPeerIdentities } from '../../src/datapath/policy.js';
import { parseState } from '../../src/datapath/state.js';

const hex = (b: Buffer) => b.toString('hex');

test('IPv6 text: parsed in every RFC 4291 form, printed in RFC 5952 form, junk refused', () => {
  assert.equal(parseIpv6('fd00::1'), 0xfd00n << 112n | 1n);
  assert.equal(parseIpv6('::'), 0n);
  assert.equal(parseIpv6('::ffff:192.0.2.1'), 0xffffn << 32n | 0xc0000201n);
  assert.equal(parseIpv6('FD00:0:0:0:0:0:0:1'), parseIpv6('fd00::1'));
  for (const bad of ['fd00::1::2', 'fd00:1', '1:2:3:4:5:6:7:8:9', 'fd00::g', 'fe80::1%eth0', '12345::', '1.2.3.4', '::1.2.3.4:5', '']) assert.equal(parseIpv6(bad), null, bad);
  assert.equal(formatIpv6(parseIpv6('fd00:0:0:0:0:0:0:1')!), 'fd00::1');
  assert.equal(formatIpv6(parseIpv6('2001:db8:0:0:1:0:0:1')!), '2001:db8::1:0:0:1', 'the first of two equal runs');
  assert.equal(formatIpv6(parseIpv6('2001:db8:0:1:1:1:1:1')!), '2001:db8:0:1:1:1:1:1', 'one zero group is not ::');
  assert.equal(formatIpv6(0n), '::');
});

test('prefixes of either family: canonical form, host bits, containment only within a family', () => {
  const c = parseCidrAny('fd00:cafe::1/32')!;
  assert.equal(c.hostBits, true);
  assert.equal(formatCidrAny(c), 'fd00:cafe::/32');
  assert.equal(parseCidrAny('fd00::/129'), null);
  assert.ok(cidrContainsAny(parseCidrAny('fd00::/8')!, parseCidrAny('fd00:cafe::/32')!));
  assert.ok(!cidrContainsAny(parseCidrAny('::/0')!, parseCidrAny('10.0.0.0/8')!), 'an IPv6 prefix never contains an IPv4 one');
  assert.ok(!cidrContainsAny(parseCidrAny('0.0.0.0/0')!, parseCidrAny('fd00::/8')!));
});

test('endpoints6 key: 16 bytes network order; ipcache6 key: prefixlen u32 LE then the masked address', () => {
  assert.equal(hex(enc.endpoint6Key(parseIpv6('fd00::1')!)), 'fd000000000000000000000000000001');
  assert.equal(hex(enc.ipcache6Key(parseIpv6('fd00:cafe::7')!, 32)), '20000000' + 'fd00cafe000000000000000000000000');
  assert.throws(() => enc.ipcache6Key(0n, 129), /outside 0\.\.128/);
});

const DUAL = `endpoints:
  - {name: web, ip: 10.0.0.1, ip6: "fd00::1", labels: {app: web}}
  - {name: v6only, ip: "fd00::2", labels: {app: web}}
policies:
  - name: web
    selector: {app: web}
    ingress:
      - from: [{cidr: "fd00:cafe::/32"}]
      - from: [{cidr: 0.0.0.0/0}]
        ports: [{port: 80}]
`;

test('a dual-stack state: both addresses of an endpoint carry its identity and flags; IPv6 CIDRs in ipcache6', () => {
  const state = parseState(DUAL, 'dual.yaml');
  const { entries, identities } = compileState(state);
  const id = identities.byEndpoint.get('web')!;
  const value = hex(enc.endpointValue(id, 1));
  const of = (map: string) => entries.filter((e) => e.map === map);
  assert.deepEqual(of('endpoints').map((e) => [e.keyHex, e.valueHex]), [['0a000001', value]]);
  assert.deepEqual(of('endpoints6').map((e) => [e.keyHex, e.valueHex]).sort(), [
    ['fd000000000000000000000000000001', value],
    ['fd000000000000000000000000000002', value],
  ]);
  const cafe = identities.byCidr.get('fd00:cafe::/32')!;
  assert.deepEqual(of('ipcache6').map((e) => [e.keyHex, e.valueHex]), [[hex(enc.ipcache6Key(parseIpv6('fd00:cafe::')!, 32)), hex(enc.ipcacheValue(cafe))]]);
  assert.equal(of('ipcache').length, 0, '0.0.0.0/0 is IDENTITY_WORLD: no entry');
  // the policy: ingress from the IPv6 CIDR's identity; 0.0.0.0/0 names IPv4's world only
  const remotes = new Set(of('policy').map((e) => Buffer.from(e.keyHex, 'hex').readUInt32LE(8)));
  assert.ok(remotes.has(cafe) && remotes.has(IDENTITY_WORLD));
  assert.ok(!remotes.has(IDENTITY_WORLD_IPV6), 'a rule for 0.0.0.0/0 must not allow IPv6 peers');
});

test('a CIDR peer covers named CIDRs of its own family only; ::/0 is IPv6 world', () => {
  const state = parseState(
    'policies:\n  - name: p\n    selector: {}\n    egress:\n      - to: [{cidr: "::/0"}, {cidr: "fd00::/8", except: ["fd00:1::/32"]}, {cidr: "fd00:1:2::/48"}, {cidr: "fd00:5::/32"}, {cidr: 10.0.0.0/8}]\n',
    's.yaml',
  );
  const ids = allocateIdentities(state);
  const id = (c: string) => ids.byCidr.get(c)!;
  assert.equal(id('::/0'), IDENTITY_WORLD_IPV6);
  assert.deepEqual(cidrPeerIdentities({ cidr: 'fd00::/8', except: ['fd00:1::/32'] }, ids), [id('fd00::/8'), id('fd00:5::/32')].sort((x, y) => x - y));
  const world6 = cidrPeerIdentities({ cidr: '::/0' }, ids);
  assert.ok(world6.includes(IDENTITY_WORLD_IPV6) && !world6.includes(IDENTITY_WORLD) && !world6.includes(id('10.0.0.0/8')));
  assert.ok(!cidrPeerIdentities({ cidr: '0.0.0.0/0' }, ids).includes(IDENTITY_WORLD_IPV6));
});
