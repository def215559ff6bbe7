// Remote backends, externalTrafficPolicy / internalTrafficPolicy and the node's SNAT address in the
// state (issue 13 item 2): what the compiler writes for them, and the state files it refuses.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileState } from '../../src/datapath/compile.js';
import { BE_F_REMOTE, SVC_F_EXTERNAL, SVC_F_LOCAL_ONLY } from '../../src/datapath/consts.js';
import * as enc from '../../src/datapath/encode.js';
import { parseState } from '../../src/datapath/state.js';
import { UsageError } from '../../src/errors.js';

const BACKENDS = `    backends:
      - {ip: 198.18.1.2, port: 8080, nodeName: node-a}
      - {ip: 198.18.2.2, port: 8080, nodeName: node-b}`;
const state = (extra: string, node = 'node: {name: node-a, addresses: [198.19.0.1]}') =>
  parseState(`${node}
services:
  - name: web-np
    vip: 198.19.0.1
    port: 30080
    protocol: tcp
    external: true
${extra}
${BACKENDS}
`, 'state.yaml');

const svcFlags = (valueHex: string) => enc.decodeServiceValue(Buffer.from(valueHex, 'hex'));
const backendFlags = (valueHex: string) => Buffer.from(valueHex, 'hex').readUInt16LE(6);

test('an external service: both backends, the other node\'s marked remote, the node\'s SNAT address written', () => {
  const { entries } = compileState(state(''));
  const svc = entries.filter((e) => e.map === 'services');
  assert.equal(svc.length, 1);
  assert.equal(svcFlags(svc[0]!.valueHex).backendCount, 2);
  assert.equal(svcFlags(svc[0]!.valueHex).flags, SVC_F_EXTERNAL);
  const be = entries.filter((e) => e.map === 'backends');
  assert.deepEqual(be.map((e) => backendFlags(e.valueHex)), [0, BE_F_REMOTE], be.map((e) => e.note).join('; '));
  assert.match(be[1]!.note, /198\.18\.2\.2:8080 \(remote\)/);
  const cfg = entries.filter((e) => e.map === 'node_cfg');
  assert.deepEqual(cfg.map((e) => [e.keyHex, e.valueHex]), [['00000000', 'c6130001' + '00000000']]);
});

test('externalTrafficPolicy Local: only this node\'s backend, flagged local-only; none at all gives 0 slots', () => {
  const { entries } = compileState(state('    externalTrafficPolicy: Local'));
  const v = svcFlags(entries.find((e) => e.map === 'services')!.valueHex);
  assert.equal(v.flags, SVC_F_EXTERNAL | SVC_F_LOCAL_ONLY);
  assert.equal(v.backendCount, 1);
  assert.deepEqual(entries.filter((e) => e.map === 'backends').map((e) => backendFlags(e.valueHex)), [0]);
  const none = compileState(state('    externalTrafficPolicy: Local', 'node: {name: node-c, addresses: [198.19.0.3]}')).entries;
  assert.equal(svcFlags(none.find((e) => e.map === 'services')!.valueHex).backendCount, 0);
  assert.equal(none.filter((e) => e.map === 'backends').length, 0);
});

test('internalTrafficPolicy Local on a cluster IP: local backends only, not external', () => {
  const s = parseState(`node: {name: node-b}
services:
  - name: web
    vip: 10.96.0.10
    port: 80
    protocol: tcp
    internalTrafficPolicy: Local
${BACKENDS}
`, 'state.yaml');
  const { entries } = compileState(s);
  const v = svcFlags(entries.find((e) => e.map === 'services')!.valueHex);
  assert.equal(v.flags, SVC_F_LOCAL_ONLY);
  assert.equal(v.backendCount, 1);
  assert.match(entries.find((e) => e.map === 'backends')!.note, /198\.18\.2\.2/);
  assert.equal(entries.filter((e) => e.map === 'node_cfg').length, 0, 'no addresses: no SNAT address entry');
});

test('IPv6 node addresses: the first of each family is that family\'s SNAT source (node_cfg, node_cfg6), in any order', () => {
  const s = parseState(`node: {name: node-a, addresses: ["fd00:19:0::1", 198.19.0.1, "fd00:19::2", 198.19.0.2]}
services:
  - name: web6
    vip: "fd00:19::1"
    port: 30080
    protocol: tcp
    external: true
    backends:
      - {ip: "fd00:18:1::2", port: 8080, nodeName: node-a}
      - {ip: "fd00:18:2::2", port: 8080, nodeName: node-b}
`, 'state.yaml');
  const { entries } = compileState(s);
  assert.deepEqual(entries.filter((e) => e.map === 'node_cfg').map((e) => e.valueHex), ['c6130001' + '00000000']);
  const cfg6 = entries.filter((e) => e.map === 'node_cfg6');
  assert.deepEqual(cfg6.map((e) => [e.keyHex, e.valueHex]), [['00000000', 'fd000019' + '00000000' + '00000000' + '00000001' + '00000000']]);
  assert.match(cfg6[0]!.note, /node node-a IPv6 SNAT address fd00:19::1$/);
  assert.deepEqual(entries.filter((e) => e.map === 'backends6').map((e) => Buffer.from(e.valueHex, 'hex').readUInt16LE(18)), [0, BE_F_REMOTE]);
  // IPv6 only: no node_cfg entry
  const only6 = compileState(parseState('node: {name: node-a, addresses: ["fd00:19::1"]}\n', 'state.yaml')).entries;
  assert.deepEqual(only6.map((e) => e.map), ['node_cfg6']);
});

test('refused with the line and what to do: policy on the wrong kind of address, nodeName without node.name, SNAT without an address', () => {
  const cases: [string, RegExp][] = [
    [`services:\n  - {name: a, vip: 10.96.0.1, port: 80, protocol: tcp, externalTrafficPolicy: Local}\n`, /state\.yaml:2:\d+: services\.0\.externalTrafficPolicy: externalTrafficPolicy applies to external addresses: set external: true/],
    [`services:\n  - {name: a, vip: 10.96.0.1, port: 80, protocol: tcp, external: true, internalTrafficPolicy: Local}\n`, /services\.0\.internalTrafficPolicy: internalTrafficPolicy applies to cluster IPs/],
    [`services:\n  - {name: a, vip: 10.96.0.1, port: 80, protocol: tcp, externalTrafficPolicy: Sometimes, external: true}\n`, /externalTrafficPolicy: expected Cluster or Local/],
    [`services:\n  - name: a\n    vip: 10.96.0.1\n    port: 80\n    protocol: tcp\n    backends: [{ip: 198.18.1.2, port: 80, nodeName: node-a}]\n`, /services\.0\.backends\.0\.nodeName: a backend names its node but node\.name is not set/],
    [`node: {name: node-a}\nservices:\n  - name: a\n    vip: 198.19.0.1\n    port: 30080\n    protocol: tcp\n    external: true\n    backends: [{ip: 198.18.2.2, port: 80, nodeName: node-b}]\n`, /SNATed to the node's address, and node\.addresses is not set/],
    [`node: {name: node-a, addresses: ["::ffff:198.19.0.1"]}\n`, /node\.addresses\.0: ::ffff:198\.19\.0\.1 is an IPv4-mapped IPv6 address: write the IPv4 address 198\.19\.0\.1/],
    [`node: {name: node-a, addresses: [node-a.example]}\n`, /node\.addresses\.0: expected an IPv4 or IPv6 address/],
    // SNAT per family: an IPv6 external address with a remote backend needs an IPv6 node address
    [`node: {name: node-a, addresses: [198.19.0.1]}\nservices:\n  - name: a\n    vip: "fd00:19::1"\n    port: 30080\n    protocol: tcp\n    external: true\n    backends: [{ip: "fd00:18:2::2", port: 80, nodeName: node-b}]\n`, /backends\.0\.nodeName: .*SNATed to the node's IPv6 address, and node\.addresses has none: add the node's IPv6 InternalIP/],
    [`node: {name: Node_A}\n`, /node\.name: expected a node name/],
  ];
  for (const [yaml, re] of cases) assert.throws(() => parseState(yaml, 'state.yaml'), (e: unknown) => e instanceof UsageError && re.test(e.message), yaml);
});

test('an endpoint on another node goes into the ipcache (/32) with the identity its labels have on every node', () => {
  const yaml = (node: string) => `node: {name: ${node}}
endpoints:
  - {name: a1, ip: 198.18.1.2, nodeName: node-a, labels: {app: client}}
  - {name: b1, ip: 198.18.2.2, nodeName: node-b, labels: {app: web}}
`;
  const a = compileState(parseState(yaml('node-a'), 'a.yaml'));
  const b = compileState(parseState(yaml('node-b'), 'b.yaml'));
  assert.equal(a.identities.byEndpoint.get('a1'), b.identities.byEndpoint.get('a1'), 'one identity for a1 on both nodes');
  const onB = (map: string) => b.entries.filter((e) => e.map === map).map((e) => e.keyHex);
  assert.deepEqual(onB('endpoints'), [enc.endpointKey(0xc6120202).toString('hex')]);
  assert.deepEqual(onB('ipcache'), [enc.ipcacheKey(0xc6120102, 32).toString('hex')]);
  assert.throws(() => parseState('endpoints:\n  - {name: a1, ip: 198.18.1.2, nodeName: node-a}\n', 's.yaml'), /endpoints\.0\.nodeName: an endpoint names its node but node\.name is not set/);
});

test('--node-address takes IPv4 and IPv6; an IPv4-mapped or malformed one is refused (usage) before any node is touched', async () => {
  const { datapath } = await import('../../src/commands/datapath.js');
  const refusedWith = async (addr: string, re: RegExp) =>
    assert.rejects(datapath('sync', ['n1'], { nodeAddress: [addr], concurrency: 1 }, {} as never), (e: unknown) => e instanceof UsageError && re.test(e.message));
  await refusedWith('::ffff:192.0.2.1', /--node-address: ::ffff:192\.0\.2\.1 is an IPv4-mapped IPv6 address: give the IPv4 address 192\.0\.2\.1/);
  await refusedWith('node-a', /--node-address: expected an IPv4 or IPv6 address, got "node-a"/);
});
