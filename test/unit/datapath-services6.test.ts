// IPv6 services in the control plane (issue 13 item 1): what the compiler writes to services6 and
// backends6 for an IPv6 VIP, worked by hand from datapath_structs.h; one svc_id space over both
// families; the sync orders with the new maps.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileState, serviceIds } from '../../src/datapath/compile.js';
import { SVC_F_AFFINITY, SVC_F_MAGLEV } from '../../src/datapath/consts.js';
import { fnv1a32 } from '../../src/datapath/identity.js';
import { parseState } from '../../src/datapath/state.js';
import { fullSync, incrementalSync, type CurrentEntries } from '../../src/datapath/sync.js';
import type { MapEntry } from '../../src/datapath/compile.js';
import { parseCaps } from '../../src/commands/datapath.js';
import { ExitCode, PrepNodeError } from '../../src/errors.js';

const V6 = `services:
  - name: web6
    vip: "fd00:0:0::10"
    port: 80
    protocol: tcp
    sessionAffinity: {timeoutSeconds: 60}
    backends:
      - {ip: "fd00::1:10", port: 8080, weight: 2}
      - {ip: "FD00::1:2", port: 8080}
`;

const le32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b.toString('hex');
};

test('an IPv6 service: services6 {vip[4], port, proto, scope} → lb_service, its slots in backends6, by hand', () => {
  const s = parseState(V6, 'state.yaml');
  const { entries, serviceIds: ids } = compileState(s);
  const id = ids.get('web6')!;
  // the id is the hash of the canonical VIP:port/protocol (fd00:0:0::10 is fd00::10)
  assert.equal(id, 1 + (fnv1a32('[fd00::10]:80/tcp') % 0x7fffffff));
  const by = (map: string) => entries.filter((e) => e.map === map);
  assert.deepEqual(by('services'), [], 'nothing in the IPv4 map');
  assert.deepEqual(by('backends'), []);
  const svc = by('services6');
  assert.equal(svc.length, 1);
  assert.equal(svc[0]!.keyHex, 'fd000000' + '00000000' + '00000000' + '00000010' + '0050' + '06' + '00');
  // svc_id, 3 slots (weights 1 + 2), SVC_F_AFFINITY, 60 s
  assert.equal(svc[0]!.valueHex, le32(id) + '03000000' + le32(SVC_F_AFFINITY) + '3c000000');
  // slots sorted by address: fd00::1:2 (slot 0), then fd00::1:10 (slots 1 and 2)
  const be = by('backends6').sort((a, b) => a.keyHex.localeCompare(b.keyHex));
  assert.deepEqual(
    be.map((e) => e.keyHex),
    [0, 1, 2].map((slot) => le32(id) + le32(slot)),
  );
  const addr = (low: string) => 'fd000000' + '00000000' + '00000000' + low;
  const port = '1f90';
  assert.equal(be[0]!.valueHex.slice(0, 36), addr('00010002') + port);
  assert.equal(be[1]!.valueHex.slice(0, 36), addr('00010010') + port);
  assert.equal(be[2]!.valueHex, be[1]!.valueHex, 'a weight-2 backend fills two slots with one value');
  assert.equal(be[0]!.valueHex.slice(36, 40), '0000', 'flags: local');
  assert.notEqual(be[0]!.valueHex.slice(40), be[1]!.valueHex.slice(40), 'each backend has its own backend_id');
  assert.match(be[0]!.note, /web6 \[fd00::10\]:80\/tcp slot 0 → \[fd00::1:2\]:8080/);
});

test('an IPv6 Maglev service gets a maglev table keyed by its svc_id with both backends in it', () => {
  const s = parseState(V6.replace('    sessionAffinity: {timeoutSeconds: 60}\n', '    algorithm: maglev\n'), 'state.yaml');
  const { entries, serviceIds: ids } = compileState(s);
  const id = ids.get('web6')!;
  const mg = entries.filter((e) => e.map === 'maglev');
  assert.equal(mg.length, 1);
  assert.equal(mg[0]!.keyHex, le32(id));
  const table = Buffer.from(mg[0]!.valueHex, 'hex');
  const counts = [0, 0, 0];
  for (let i = 0; i < table.length; i += 2) counts[table.readUInt16LE(i)]!++;
  // the table holds first slots: 0 (fd00::1:2, weight 1) and 1 (fd00::1:10, weight 2), about 1:2
  assert.equal(counts[2], 0);
  assert.ok(counts[0]! > 250 && counts[0]! < 430 && counts[1]! > 590, `shares ${counts.join(", ")}`);
  const v = entries.find((e) => e.map === 'services6')!;
  assert.equal(Buffer.from(v.valueHex, 'hex').readUInt32LE(8), SVC_F_MAGLEV);
});

test('svc_ids are one space over both families: an IPv6 service whose hash collides with an IPv4 one gets the next id', () => {
  // found by search: fnv1a32 of both keys is 404441883 mod 2^31-1
  assert.equal(fnv1a32('10.96.195.100:80/tcp') % 0x7fffffff, fnv1a32('[fd00::a7e4]:80/tcp') % 0x7fffffff);
  const s = parseState(`services:
  - {name: v6, vip: "fd00::a7e4", port: 80, protocol: tcp, backends: [{ip: "fd00::1:1", port: 80}]}
  - {name: v4, vip: 10.96.195.100, port: 80, protocol: tcp, backends: [{ip: 10.1.0.1, port: 80}]}
`, 'state.yaml');
  const ids = serviceIds(s.services);
  assert.equal(ids.get('v4'), 1 + 404441883, 'the IPv4 service keeps the id it has alone');
  assert.equal(ids.get('v6'), 1 + 404441884);
  const { entries } = compileState(s);
  const svcIdOf = (map: string) => Buffer.from(entries.find((e) => e.map === map)!.valueHex, 'hex').readUInt32LE(0);
  assert.equal(svcIdOf('services'), ids.get('v4'));
  assert.equal(svcIdOf('services6'), ids.get('v6'));
  assert.equal(Buffer.from(entries.find((e) => e.map === 'backends6')!.keyHex, 'hex').readUInt32LE(0), ids.get('v6'), 'backends6 keyed by the IPv6 service id');
});

test('IPv4 svc_ids are what they were before IPv6 services (the key is VIP:port/protocol as written)', () => {
  const s = parseState('services:\n  - {name: a, vip: 10.96.0.10, port: 53, protocol: udp}\n', 'state.yaml');
  assert.equal(serviceIds(s.services).get('a'), 1 + (fnv1a32('10.96.0.10:53/udp') % 0x7fffffff));
});

const asCurrent = (entries: readonly MapEntry[]): CurrentEntries => {
  const out: CurrentEntries = {};
  for (const e of entries) (out[e.map] ??= new Map()).set(e.keyHex, e.valueHex);
  return out;
};

test('sync: backends6 are put before services6, and services6 deleted before backends6', () => {
  const s = parseState(V6, 'state.yaml');
  const { entries } = compileState(s);
  const full = fullSync(entries).lines.filter((l) => l.startsWith('put')).map((l) => l.split(' ')[1]);
  assert.deepEqual([...new Set(full)], ['backends6', 'services6']);
  const gone = incrementalSync([], asCurrent(entries)).lines.map((l) => l.split(' ').slice(0, 2).join(' '));
  assert.deepEqual([...new Set(gone)], ['del services6', 'del backends6']);
  // fd00::1:2 (slot 0) removed: fd00::1:10 moves to slots 0-1, the count drops to 2 before slot 2 goes
  const one = compileState({ ...s, services: [{ ...s.services[0]!, backends: [s.services[0]!.backends[0]!] }] }).entries;
  const plan = incrementalSync(one, asCurrent(entries)).lines.map((l) => l.split(' ').slice(0, 2).join(' '));
  assert.deepEqual(plan, ['put backends6', 'put services6', 'del backends6']);
});

test('install --cap takes the IPv6 maps by name (services6=, backends6=: map names with digits), and still refuses unknown ones', () => {
  assert.deepEqual(parseCaps('services6=2048,backends6=4096,conntrack6=1024'), { services6: 2048, backends6: 4096, conntrack6: 1024 });
  assert.throws(() => parseCaps('services7=1'), (e: unknown) => e instanceof PrepNodeError && e.exitCode === ExitCode.usage && /no map named "services7"/.test(e.message));
  assert.throws(() => parseCaps('6services=1'), (e: unknown) => e instanceof PrepNodeError && /expected map=entries/.test(e.message));
});
