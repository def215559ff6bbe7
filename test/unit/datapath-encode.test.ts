// One entry of each map against bytes worked out by hand from datapath_structs.h: network order
// for __be32/__be16, little-endian host order for the rest, zero padding.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as enc from '../../src/datapath/encode.js';
import { LB_MAGLEV_M } from '../../src/datapath/consts.js';

const hex = (b: Buffer) => b.toString('hex');

test('services: lb_svc_key {vip be32, port be16, proto, scope} and lb_service (4 x u32 LE)', () => {
  // 10.96.0.10:80/tcp
  assert.equal(hex(enc.svcKey(0x0a60000a, 80, 6)), '0a60000a' + '0050' + '06' + '00');
  // svc_id 0x01020304, 3 slots, SVC_F_MAGLEV|SVC_F_AFFINITY, 10800 s
  assert.equal(hex(enc.serviceValue(0x01020304, 3, 3, 10800)), '04030201' + '03000000' + '03000000' + '302a0000');
});

test('backends: lb_backend_key {u32 svc_id, u32 slot} and lb_backend {addr be32, port be16, pad, backend_id u32}', () => {
  assert.equal(hex(enc.backendKey(7, 2)), '07000000' + '02000000');
  // 10.1.0.5:8080 id 0xdeadbeef
  assert.equal(hex(enc.backendValue(0x0a010005, 8080, 0xdeadbeef)), '0a010005' + '1f90' + '0000' + 'efbeadde');
});

test('services6: lb6_svc_key {vip be32[4], port be16, proto, scope}; backends6: lb6_backend {addr be32[4], port be16, flags u16 LE, backend_id u32 LE}', () => {
  // [fd00::10]:80/udp
  assert.equal(hex(enc.svc6Key(0xfd000000000000000000000000000010n, 80, 17)), 'fd000000' + '00000000' + '00000000' + '00000010' + '0050' + '11' + '00');
  // [fd00::1:5]:8080 id 0xdeadbeef, BE_F_REMOTE
  assert.equal(hex(enc.backend6Value(0xfd000000000000000000000000010005n, 8080, 0xdeadbeef, 1)), 'fd000000' + '00000000' + '00000000' + '00010005' + '1f90' + '0100' + 'efbeadde');
  assert.equal(enc.svc6Key(1n, 1, 6).length, 20);
  assert.equal(enc.backend6Value(1n, 1, 1).length, 24);
});

test('maglev: u32 svc_id key; M u16 slots, little-endian', () => {
  assert.equal(hex(enc.u32Key(0x100)), '00010000');
  const table = new Uint16Array(LB_MAGLEV_M);
  table[0] = 1;
  table[LB_MAGLEV_M - 1] = 0x0203;
  const v = enc.maglevValue(table);
  assert.equal(v.length, 2042);
  assert.equal(hex(v.subarray(0, 4)), '01000000');
  assert.equal(hex(v.subarray(2040)), '0302');
  assert.throws(() => enc.maglevValue([1, 2, 3]), /1021 entries/);
});

test('endpoints: be32 address key; endpoint_info {identity, flags} LE', () => {
  assert.equal(hex(enc.endpointKey(0xc0a80001)), 'c0a80001');
  assert.equal(hex(enc.endpointValue(300, 3)), '2c010000' + '03000000');
});

test('ipcache: ipcache_key {prefixlen u32 LE, addr be32 masked}; identity u32 LE', () => {
  assert.equal(hex(enc.ipcacheKey(0x0a000000, 8)), '08000000' + '0a000000');
  // host bits are cleared: the trie key is canonical
  assert.equal(hex(enc.ipcacheKey(0x0a0102ff, 24)), '18000000' + '0a010200');
  assert.equal(hex(enc.ipcacheKey(0xffffffff, 0)), '00000000' + '00000000');
  assert.equal(hex(enc.ipcacheValue(0x01000001)), '01000001');
});

test('policy: policy_key {prefixlen, local, remote LE; direction, proto; dport be16} and policy_entry', () => {
  // local 256, remote 2 (WORLD), ingress, tcp/443 exact: prefixlen 96
  assert.equal(hex(enc.policyKey(256, 2, 0, { proto: 6, port: 443, portBits: 16 })), '60000000' + '00010000' + '02000000' + '00' + '06' + '01bb');
  // egress, udp 1024-2047 = 1024/6: prefixlen 86, port bits past the prefix zeroed
  assert.equal(hex(enc.policyKey(256, 0, 1, { proto: 17, port: 1500, portBits: 6 })), '56000000' + '00010000' + '00000000' + '01' + '11' + '0400');
  // any protocol: prefixlen 72, proto and port zero
  assert.equal(hex(enc.policyKey(256, 0, 0, { proto: 0, port: 80, portBits: 16 })), '48000000' + '00010000' + '00000000' + '00' + '00' + '0000');
  assert.equal(hex(enc.policyValue(2, 0x11223344)), '02' + '000000' + '44332211');
});

test('a decoded service value reads back what was encoded', () => {
  assert.deepEqual(enc.decodeServiceValue(enc.serviceValue(9, 4, 1, 0)), { svcId: 9, backendCount: 4, flags: 1, affinityTimeoutS: 0 });
});
