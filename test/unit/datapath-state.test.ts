import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { loadState, parseState } from '../../src/datapath/state.js';
import { UsageError } from '../../src/errors.js';

const FIXTURE = fileURLToPath(new URL('../../../test/fixtures/datapath/state.yaml', import.meta.url));

test('a good state file loads with defaults filled in', async () => {
  const s = await loadState(FIXTURE);
  assert.equal(s.endpoints.length, 3);
  assert.deepEqual(s.services[0]!.backends[0], { ip: '10.1.0.5', port: 8080, weight: 1 });
  assert.equal(s.services[1]!.algorithm, 'random');
  assert.deepEqual(s.services[1]!.sessionAffinity, { timeoutSeconds: 60 });
  assert.equal(s.policies[0]!.ingress![0]!.action, 'allow');
  assert.equal(s.policies[0]!.ingress![0]!.ports![0]!.protocol, 'tcp');
  assert.equal(s.policies[1]!.ingress, undefined);
});

test('an empty file is an empty state', () => {
  assert.deepEqual(parseState('', 'empty.yaml'), { endpoints: [], services: [], policies: [] });
});

test('a missing file is a usage error naming it', async () => {
  await assert.rejects(loadState('/nonexistent/state.yaml'), (e: unknown) => e instanceof UsageError && e.message === 'datapath state file /nonexistent/state.yaml cannot be read');
});

const pol = (rule: string, dir = 'egress') => `policies:\n  - name: p\n    selector: {}\n    ${dir}:\n      - ${rule}\n`;
const bad: [string, string, string][] = [
  ['bad address', 'endpoints:\n  - name: a\n    ip: 10.0.0.300\n', 'state.yaml:3:9: endpoints.0.ip: expected an IPv4 or IPv6 address such as 10.0.0.1 or fd00::1, got "10.0.0.300"'],
  ['IPv6 service with an IPv4 backend', 'services:\n  - name: s\n    vip: "fd00::10"\n    port: 80\n    protocol: tcp\n    backends: [{ip: "fd00::1:2", port: 80}, {ip: 10.1.0.1, port: 80}]\n', 'state.yaml:6:50: services.0.backends.1.ip: backend 10.1.0.1 is IPv4 and the service\'s vip fd00::10 is IPv6: a service\'s backends are of its vip\'s family (a dual-stack Service is one service per family)'],
  ['IPv4 service with an IPv6 backend', 'services:\n  - {name: s, vip: 10.96.0.1, port: 80, protocol: tcp, backends: [{ip: "fd00::1", port: 80}]}\n', 'state.yaml:2:72: services.0.backends.0.ip: backend fd00::1 is IPv6 and the service\'s vip 10.96.0.1 is IPv4: a service\'s backends are of its vip\'s family (a dual-stack Service is one service per family)'],
  ['IPv4-mapped IPv6 vip', 'services:\n  - {name: s, vip: "::ffff:10.96.0.1", port: 80, protocol: tcp}\n', 'state.yaml:2:20: services.0.vip: ::ffff:10.96.0.1 is an IPv4-mapped IPv6 address: write the IPv4 address 10.96.0.1 (dual-stack sockets reach IPv4 services through ::ffff: on their own)'],
  ['bad IPv6 vip', 'services:\n  - {name: s, vip: "fd00::1::2", port: 80, protocol: tcp}\n', 'state.yaml:2:20: services.0.vip: expected an IPv4 or IPv6 address such as 10.0.0.1 or fd00::1, got "fd00::1::2"'],
  ['duplicate IPv6 VIP:port/proto in other spellings', 'services:\n  - {name: a, vip: "fd00::1", port: 80, protocol: tcp}\n  - {name: b, vip: "fd00:0:0::0:1", port: 80, protocol: tcp}\n', 'state.yaml:3:43: services.1.port: duplicate VIP:port/protocol [fd00::1]:80/tcp (also at services.0)'],
  ['duplicate IPv6 backend in other spellings', 'services:\n  - {name: a, vip: "fd00::1", port: 80, protocol: tcp, backends: [{ip: "FD00::2", port: 80}, {ip: "fd00:0::2", port: 80}]}\n', 'state.yaml:2:118: services.0.backends.1.port: duplicate backend address:port [fd00::2]:80 (also at services.0.backends.0)'],
  ['bad IPv6 endpoint', 'endpoints:\n  - {name: a, ip: 10.0.0.1, ip6: "fd00::1::2"}\n', 'state.yaml:2:34: endpoints.0.ip6: expected an IPv6 address such as fd00::1, got "fd00::1::2"'],
  ['ip6 beside an IPv6 ip', 'endpoints:\n  - {name: a, ip: "fd00::1", ip6: "fd00::2"}\n', 'state.yaml:2:35: endpoints.0.ip6: ip6 is the second address of a dual-stack endpoint: ip must then be its IPv4 address'],
  ['duplicate IPv6 address across ip and ip6', 'endpoints:\n  - {name: a, ip: 10.0.0.1, ip6: "fd00::1"}\n  - {name: b, ip: "fd00:0::1"}\n', 'state.yaml:3:19: endpoints.1.ip: duplicate endpoint address fd00::1 (also at endpoints.0)'],
  ['IPv6 CIDR with host bits', pol('to: [{cidr: "fd00::1/64"}]'), 'state.yaml:5:21: policies.0.egress.0.to.0.cidr: "fd00::1/64" has bits set past the prefix length: write fd00::/64'],
  ['port 0', 'services:\n  - name: s\n    vip: 10.96.0.1\n    port: 0\n    protocol: tcp\n', 'state.yaml:4:11: services.0.port: expected a port number 1-65535'],
  ['port too big', 'services:\n  - {name: s, vip: 10.96.0.1, port: 80, protocol: tcp, backends: [{ip: 10.1.0.1, port: 70000}]}\n', 'state.yaml:2:88: services.0.backends.0.port: expected a port number 1-65535'],
  ['GRE service', 'services:\n  - name: s\n    vip: 10.96.0.1\n    port: 80\n    protocol: gre\n', 'state.yaml:5:15: services.0.protocol: expected tcp, udp or sctp (the load balancer handles these only)'],
  ['SCTP service whose backend port differs', 'services:\n  - {name: s, vip: 10.96.0.1, port: 3868, protocol: sctp, backends: [{ip: 10.1.0.1, port: 3869}]}\n', 'state.yaml:2:91: services.0.backends.0.port: SCTP backends must listen on the service\'s port 3868: the datapath translates SCTP addresses only (a port rewrite would need SCTP\'s CRC32c recomputed)'],
  ['duplicate VIP:port/proto', 'services:\n  - {name: a, vip: 10.96.0.1, port: 80, protocol: tcp}\n  - {name: b, vip: 10.96.0.1, port: 80, protocol: tcp}\n', 'state.yaml:3:37: services.1.port: duplicate VIP:port/protocol 10.96.0.1:80/tcp (also at services.0)'],
  ['duplicate endpoint address', 'endpoints:\n  - {name: a, ip: 10.0.0.1}\n  - {name: b, ip: 10.0.0.1}\n', 'state.yaml:3:19: endpoints.1.ip: duplicate endpoint address 10.0.0.1 (also at endpoints.0)'],
  ['L7 rule', pol('{from: [{selector: {app: x}}], http: [{path: /}]}', 'ingress'), 'state.yaml:5:46: policies.0.ingress.0.http: the datapath cannot enforce this: L7 (HTTP) rules need a proxy; the datapath enforces L3/L4 only'],
  ['named port', pol('ports: [{port: http}]'), 'state.yaml:5:24: policies.0.egress.0.ports.0.port: the datapath cannot enforce this: named port "http" needs the endpoint\'s container ports; use the number'],
  ['FQDN peer', pol('to: [{fqdn: example.com}]'), 'state.yaml:5:21: policies.0.egress.0.to.0.fqdn: the datapath cannot enforce this: DNS names need a DNS proxy; the datapath matches addresses: use cidr'],
  ['namespace selector', pol('to: [{namespaceSelector: {a: b}}]'), 'state.yaml:5:34: policies.0.egress.0.to.0.namespaceSelector: the datapath cannot enforce this: namespaces are not identities here: put the namespace in the endpoints\' labels and select it'],
  ['host bits', pol('to: [{cidr: 10.0.0.1/8}]'), 'state.yaml:5:21: policies.0.egress.0.to.0.cidr: "10.0.0.1/8" has bits set past the prefix length: write 10.0.0.0/8'],
  ['except outside', pol('to: [{cidr: 10.0.0.0/8, except: [192.168.0.0/16]}]'), 'state.yaml:5:42: policies.0.egress.0.to.0.except.0: 192.168.0.0/16 is not inside 10.0.0.0/8 (except narrows the cidr it belongs to)'],
  ['selector and cidr', pol('to: [{cidr: 10.0.0.0/8, selector: {a: b}}]'), 'state.yaml:5:14: policies.0.egress.0.to.0: expected exactly one of selector or cidr'],
  ['endPort below port', pol('ports: [{port: 2000, endPort: 1000}]', 'ingress'), 'state.yaml:5:39: policies.0.ingress.0.ports.0.endPort: endPort 1000 is below port 2000'],
  ['ICMP type', pol('ports: [{protocol: icmp, port: 300}]'), 'state.yaml:5:40: policies.0.egress.0.ports.0.port: expected an ICMP type 0-255, got 300'],
  ['GRE policy', pol('ports: [{protocol: gre, port: 5}]'), 'state.yaml:5:28: policies.0.egress.0.ports.0.protocol: expected tcp, udp, sctp or icmp (the datapath parses only these)'],
  ['unknown key', 'services: []\nendpoint: []\n', 'state.yaml:2:1: endpoint: unknown key'],
  ['numeric label', 'endpoints:\n  - name: a\n    ip: 10.0.0.1\n    labels: {version: 2}\n', 'state.yaml:4:23: endpoints.0.labels.version: expected a string label value (quote numbers and booleans)'],
  ['bad YAML', 'endpoints:\n  - name: a\n   ip: x\n', 'state.yaml:3:1: invalid YAML: Sequence item without - indicator'],
];
for (const [what, text, message] of bad) {
  test(`a bad state is refused with file:line:col, key path and why (${what})`, () => {
    assert.throws(() => parseState(text, 'state.yaml'), (e: unknown) => e instanceof UsageError && e.message === message);
  });
}
