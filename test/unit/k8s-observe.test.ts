// observe: a loader drop event (the JSON line bpf/loader/events.c prints) with names put on it from the
// index sync leaves on the node: pods, labels, the Service, the policy and rule, default-deny owners.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { compileState } from '../../src/datapath/compile.js';
import { loadDesired } from '../../src/datapath/k8s/index.js';
import { buildNames, decorate, formatFlow, NamesIndex, verdictMatches } from '../../src/datapath/observe.js';
import { parseEvents, type EventDoc } from '../../src/datapath/loader.js';

const SHOP = fileURLToPath(new URL('../../../test/fixtures/k8s/shop', import.meta.url));

async function shop() {
  const d = await loadDesired(SHOP);
  const c = compileState(d.state);
  return { d, c, names: buildNames(d.state, c, d.origins, SHOP, new Date('2025-01-01T00:00:00Z')) };
}

/** An event line as events.c prints it. */
function event(o: Record<string, unknown>): EventDoc {
  const line = JSON.stringify({
    ts_ns: 1,
    time: '2025-01-01T00:00:01.000Z',
    reason: 1,
    reason_name: 'POLICY_DENY',
    hook: 'tc',
    ifindex: 7,
    ifname: 'eth0',
    saddr: '198.18.2.30',
    daddr: '198.18.2.20',
    sport: 40000,
    dport: 8080,
    proto: 'tcp',
    direction: 'ingress',
    local_identity: 0,
    remote_identity: 0,
    svc_id: 0,
    len: 74,
    rule_id: 0,
    ...o,
  });
  return parseEvents('n', `${line}\n{"lost": 3}\n`).events[0]!;
}

test('the names index round-trips through its schema and names every endpoint, service and rule', async () => {
  const { names, c } = await shop();
  assert.equal(NamesIndex.parse(JSON.parse(JSON.stringify(names))).version, 1);
  assert.deepEqual(Object.keys(names.endpoints).sort(), ['198.18.2.10', '198.18.2.20', '198.18.2.30']);
  assert.equal(names.endpoints['198.18.2.20']!.name, 'shop/backend-5c6f8');
  assert.equal(names.endpoints['198.18.2.20']!.labels['prep-node.io/labelset'], undefined, 'the marker is not shown');
  assert.equal(Object.keys(names.services).length, 1);
  assert.deepEqual(Object.values(names.rules).sort((a, b) => a.policy.localeCompare(b.policy)), [
    { policy: 'CiliumNetworkPolicy shop/backend-deny-other', rule: 'ingressDeny[0]' },
    { policy: 'NetworkPolicy shop/backend-from-frontend', rule: 'ingress[0]' },
  ]);
  assert.equal(c.rules.size, 2);
});

test('a POLICY_DENY event: both ends with pod and labels, the rule that denied it', async () => {
  const { names, c } = await shop();
  const ruleId = c.rules.get('cnp.shop.backend-deny-other.s0.1/ingress/0')!;
  const backendId = names.endpoints['198.18.2.20']!.identity;
  const otherId = names.endpoints['198.18.2.30']!.identity;
  const f = decorate(event({ rule_id: ruleId, local_identity: backendId, remote_identity: otherId }), names);
  assert.equal(f.verdict, 'dropped');
  assert.deepEqual(f.reason, { code: 1, name: 'POLICY_DENY', description: 'denied by a deny rule' });
  assert.equal(f.source.endpoint, 'shop/other-6b7c1');
  assert.equal(f.source.labels?.app, 'other');
  assert.equal(f.destination.endpoint, 'shop/backend-5c6f8');
  assert.deepEqual(f.policy, { policy: 'CiliumNetworkPolicy shop/backend-deny-other', rule: 'ingressDeny[0]' });
  assert.equal(
    formatFlow(f),
    '2025-01-01T00:00:01.000Z DROPPED POLICY_DENY(1) tcp 198.18.2.30:40000 shop/other-6b7c1 [app=other] -> 198.18.2.20:8080 shop/backend-5c6f8 [app=backend,tier=api], ingress, by CiliumNetworkPolicy shop/backend-deny-other ingressDeny[0], at tc eth0',
  );
});

test('a POLICY_DEFAULT_DENY event names the policies that made the endpoint default-deny', async () => {
  const { names } = await shop();
  const f = decorate(event({ reason: 2, reason_name: 'POLICY_DEFAULT_DENY', saddr: '198.18.2.10', dport: 9090 }), names);
  assert.deepEqual(f.policy, { default_deny: ['CiliumNetworkPolicy shop/backend-deny-other', 'NetworkPolicy shop/backend-from-frontend', 'NetworkPolicy shop/default-deny-all'] });
  assert.match(formatFlow(f), /ingress, default deny of CiliumNetworkPolicy shop\/backend-deny-other, NetworkPolicy/);
});

test('a service drop names the Service (by svc_id, or by the VIP it was sent to); peers outside are world or their CIDR', async () => {
  const { names, c } = await shop();
  const svcId = [...c.serviceIds.values()][0]!;
  const noBackend = decorate(event({ reason: 3, reason_name: 'NO_BACKEND', hook: 'connect4', daddr: '198.18.3.10', dport: 80, svc_id: svcId, direction: null, ifindex: 0, ifname: undefined }), names);
  assert.equal(noBackend.service, 'shop/backend:http (ClusterIP 198.18.3.10:80/tcp)');
  assert.equal(noBackend.direction, null);
  const byVip = decorate(event({ reason: 3, daddr: '198.18.3.10', dport: 80 }), names);
  assert.equal(byVip.service, 'shop/backend:http (ClusterIP 198.18.3.10:80/tcp)');
  const world = decorate(event({ saddr: '8.8.8.8', remote_identity: 2 }), names);
  assert.equal(world.source.peer, 'world');
  const raw = decorate(event({}), null);
  assert.equal(raw.source.endpoint, undefined, 'without an index: addresses only');
  assert.match(formatFlow(raw), /198\.18\.2\.30:40000 -> 198\.18\.2\.20:8080/);
});

test('a FORWARDED tc event: the service, the backend pod with labels, the policy rule that allowed it', async () => {
  const { names, c } = await shop();
  const ruleId = c.rules.get([...c.rules.keys()].find((k) => k.includes('backend-from-frontend'))!)!;
  const svcId = [...c.serviceIds.values()][0]!;
  const backendId = names.endpoints['198.18.2.20']!.identity;
  const frontendId = names.endpoints['198.18.2.10']!.identity;
  const f = decorate(event({ verdict: 'forwarded', reason: 0, reason_name: 'NONE', saddr: '198.18.2.10', svc_id: svcId, rule_id: ruleId, local_identity: backendId, remote_identity: frontendId }), names);
  assert.equal(f.verdict, 'forwarded');
  assert.equal(f.reason, undefined, 'forwarded flows have no drop reason');
  assert.equal(f.service, 'shop/backend:http (ClusterIP 198.18.3.10:80/tcp)');
  assert.equal(f.source.endpoint, 'shop/frontend-7d4b9');
  assert.equal(f.source.labels?.app, 'frontend');
  assert.equal(f.destination.endpoint, 'shop/backend-5c6f8');
  assert.deepEqual(f.policy, { policy: 'NetworkPolicy shop/backend-from-frontend', rule: 'ingress[0]' });
  assert.match(formatFlow(f), /^2025-01-01T00:00:01\.000Z FORWARDED tcp 198\.18\.2\.10:40000 shop\/frontend-7d4b9 \[app=frontend,tier=web\] -> 198\.18\.2\.20:8080 shop\/backend-5c6f8 \[app=backend,tier=api\], service shop\/backend:http \(ClusterIP 198\.18\.3\.10:80\/tcp\), ingress, allowed by NetworkPolicy shop\/backend-from-frontend ingress\[0\], at tc eth0$/);
  // a socket translation: no source address yet, no policy, the hook
  const sock = decorate(event({ verdict: 'forwarded', reason: 0, hook: 'connect4', saddr: '0.0.0.0', sport: 0, svc_id: svcId, direction: null, ifindex: 0, ifname: undefined }), names);
  assert.equal(sock.policy, undefined);
  assert.match(formatFlow(sock), /FORWARDED tcp 0\.0\.0\.0:0 -> 198\.18\.2\.20:8080 shop\/backend-5c6f8 .*service shop\/backend:http .*at connect4$/);
});

test('--verdict selects dropped, forwarded or all; an event without verdict (older loader) is a drop', () => {
  const dropped = decorate(event({}), null);
  const old = decorate(parseEvents('n', JSON.stringify({ reason: 1, hook: 'tc', saddr: '1.2.3.4', daddr: '5.6.7.8' }) + '\n').events[0]!, null);
  const fwd = decorate(event({ verdict: 'forwarded', reason: 0 }), null);
  assert.equal(old.verdict, 'dropped');
  assert.deepEqual([dropped, old, fwd].map((f) => verdictMatches(f, 'dropped')), [true, true, false]);
  assert.deepEqual([dropped, old, fwd].map((f) => verdictMatches(f, 'forwarded')), [false, false, true]);
  assert.deepEqual([dropped, old, fwd].map((f) => verdictMatches(f, 'all')), [true, true, true]);
  assert.throws(() => parseEvents('n', JSON.stringify({ reason: 0, verdict: 'bogus' }) + '\n'));
  assert.deepEqual(parseEvents('n', '{"lost": 3}\n'), { events: [], lost: 3 });
});

test('an IPv6 event (tc6): [addr]:port in text, plain addresses and family "ipv6" in JSON, endpoints named by their IPv6 address', async () => {
  const { d } = await shop();
  // the shop's pods made dual-stack: 198.18.2.N gets fd00::2:N, written uncompressed (the index keys RFC 5952 text, as the loader prints)
  const state = { ...d.state, endpoints: d.state.endpoints.map((e) => ({ ...e, ip6: `fd00:0:0:0:0:0:2:${e.ip.split('.')[3]}` })) };
  const c = compileState(state);
  const names = buildNames(state, c, d.origins, SHOP, new Date('2025-01-01T00:00:00Z'));
  assert.equal(names.endpoints['fd00::2:20']?.name, 'shop/backend-5c6f8');
  assert.equal(names.endpoints['198.18.2.20']?.name, 'shop/backend-5c6f8', 'the IPv4 address still names it');
  const ruleId = c.rules.get('cnp.shop.backend-deny-other.s0.1/ingress/0')!;
  const f = decorate(
    event({ family: 'ipv6', hook: 'tc6', saddr: 'fd00::2:30', daddr: 'fd00::2:20', rule_id: ruleId, local_identity: names.endpoints['fd00::2:20'].identity, remote_identity: names.endpoints['fd00::2:30']!.identity }),
    names,
  );
  assert.equal(f.family, 'ipv6');
  assert.equal(f.source.endpoint, 'shop/other-6b7c1');
  assert.equal(f.destination.endpoint, 'shop/backend-5c6f8');
  assert.equal(
    formatFlow(f),
    '2025-01-01T00:00:01.000Z DROPPED POLICY_DENY(1) tcp [fd00::2:30]:40000 shop/other-6b7c1 [app=other] -> [fd00::2:20]:8080 shop/backend-5c6f8 [app=backend,tier=api], ingress, by CiliumNetworkPolicy shop/backend-deny-other ingressDeny[0], at tc6 eth0',
  );
  const json = JSON.parse(JSON.stringify(f)) as { family: string; source: { ip: string; port: number }; destination: { ip: string } };
  assert.deepEqual([json.family, json.source.ip, json.source.port, json.destination.ip], ['ipv6', 'fd00::2:30', 40000, 'fd00::2:20']);
  // a socket flow with no source yet (connect6): the unspecified address
  const sock = decorate(event({ family: 'ipv6', verdict: 'forwarded', reason: 0, hook: 'connect6', saddr: '::', sport: 0, daddr: 'fd00::2:20', direction: null, ifindex: 0, ifname: undefined }), names);
  assert.match(formatFlow(sock), /^\S+ FORWARDED tcp \[::\]:0 -> \[fd00::2:20\]:8080 shop\/backend-5c6f8 .*at connect6$/);
  // IPv4 (and an ::ffff: flow, which the datapath reports with its IPv4 addresses) stays as it was
  const v4 = decorate(event({ family: 'ipv4', hook: 'connect6' }), names);
  assert.equal(v4.family, 'ipv4');
  assert.match(formatFlow(v4), / 198\.18\.2\.30:40000 .* -> 198\.18\.2\.20:8080 /);
  // an older loader prints no family: IPv4
  assert.equal(decorate(event({}), null).family, 'ipv4');
});
