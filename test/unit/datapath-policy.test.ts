import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { EP_F_ENFORCE_EGRESS, EP_F_ENFORCE_INGRESS, IDENTITY_ANY, IDENTITY_WORLD, POLICY_ALLOW, POLICY_DENY, POLICY_INGRESS } from '../../src/datapath/consts.js';
import { allocateIdentities, canonicalLabels, CIDR_IDENTITY_MIN, selects } from '../../src/datapath/identity.js';
import { cidrContains, parseCidr, parseIpv4 } from '../../src/datapath/ip.js';
import { cidrPeerIdentities, compilePolicies, portRangeBlocks, resolveDenyWins, type PolicyEntry } from '../../src/datapath/policy.js';
import { loadState, parseState } from '../../src/datapath/state.js';
import type { DatapathState } from '../../src/datapath/schema.js';

const FIXTURE = fileURLToPath(new URL('../../../test/fixtures/datapath/state.yaml', import.meta.url));

test('port ranges become the fewest aligned blocks, as dp_policy_set_port_range writes them', () => {
  assert.deepEqual(portRangeBlocks(1024, 2047), [{ port: 1024, portBits: 6 }]);
  assert.deepEqual(portRangeBlocks(80, 80), [{ port: 80, portBits: 16 }]);
  assert.deepEqual(portRangeBlocks(0, 65535), [{ port: 0, portBits: 0 }]);
  // the header's example: 1000-1999 takes 7
  assert.deepEqual(portRangeBlocks(1000, 1999), [
    { port: 1000, portBits: 13 },
    { port: 1008, portBits: 12 },
    { port: 1024, portBits: 7 },
    { port: 1536, portBits: 8 },
    { port: 1792, portBits: 9 },
    { port: 1920, portBits: 10 },
    { port: 1984, portBits: 12 },
  ]);
});

test('blocks are aligned, disjoint and cover exactly the range (many ranges)', () => {
  let seed = 12345;
  const rnd = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) % 65536;
  for (let i = 0; i < 300; i++) {
    const [a, b] = [rnd(), rnd()];
    const [lo, hi] = a <= b ? [a, b] : [b, a];
    let next = lo;
    for (const blk of portRangeBlocks(lo, hi)) {
      const size = 2 ** (16 - blk.portBits);
      assert.equal(blk.port % size, 0, 'aligned');
      assert.equal(blk.port, next, 'contiguous, no overlap');
      next += size;
    }
    assert.equal(next, hi + 1, `${lo}-${hi} covered exactly`);
  }
});

const e = (o: Partial<PolicyEntry>): PolicyEntry => ({ localId: 300, remoteId: 400, direction: POLICY_INGRESS, proto: 6, port: 0, portBits: 16, action: POLICY_ALLOW, ruleId: 1, ...o });

test('deny wins: the same key allowed and denied is a deny', () => {
  const out = resolveDenyWins([e({ port: 80, ruleId: 1 }), e({ port: 80, action: POLICY_DENY, ruleId: 9 })]);
  assert.deepEqual(out, [e({ port: 80, action: POLICY_DENY, ruleId: 9 })]);
});

test('deny wins: a narrower allow under a wider deny (same local, remote, direction) is written as that deny', () => {
  const out = resolveDenyWins([
    ...portRangeBlocks(1000, 1999).map((b) => e({ ...b, ruleId: 1 })),
    e({ port: 1024, portBits: 6, action: POLICY_DENY, ruleId: 2 }), // 1024-2047
  ]);
  const allow = out.filter((x) => x.action === POLICY_ALLOW).map((x) => x.port);
  assert.deepEqual(allow, [1000, 1008], 'only 1000-1023 stays allowed');
  assert.ok(out.filter((x) => x.action === POLICY_DENY).every((x) => x.ruleId === 2));
  // a deny for another remote identity does not touch this one's allows: the datapath's two lookups handle that
  const other = resolveDenyWins([e({ port: 80 }), e({ remoteId: IDENTITY_ANY, proto: 0, portBits: 0, action: POLICY_DENY, ruleId: 3 })]);
  assert.equal(other.find((x) => x.remoteId === 400)!.action, POLICY_ALLOW);
});

test('deny wins: an any-protocol deny turns every allow of that remote into a deny', () => {
  const out = resolveDenyWins([e({ port: 443 }), e({ proto: 17, port: 53 }), e({ proto: 0, port: 0, portBits: 0, action: POLICY_DENY, ruleId: 5 })]);
  assert.ok(out.every((x) => x.action === POLICY_DENY && x.ruleId === 5));
});

test('labels: canonical string, matchLabels selection, one identity per label set in the label range', async () => {
  const s = await loadState(FIXTURE);
  assert.equal(canonicalLabels({ tier: 'front', app: 'web' }), 'app=web,tier=front');
  assert.ok(selects({}, { a: 'b' }) && selects({ app: 'web' }, { app: 'web', x: 'y' }) && !selects({ app: 'web' }, { app: 'db' }));
  const ids = allocateIdentities(s);
  assert.equal(ids.byEndpoint.get('web-1'), ids.byEndpoint.get('web-2'));
  assert.notEqual(ids.byEndpoint.get('web-1'), ids.byEndpoint.get('client-1'));
  for (const id of ids.byLabels.values()) assert.ok(id >= 256 && id < CIDR_IDENTITY_MIN);
  for (const [cidr, id] of ids.byCidr) assert.ok(cidr === '0.0.0.0/0' ? id === IDENTITY_WORLD : id >= CIDR_IDENTITY_MIN);
});

test('identities do not move when other label sets or CIDRs come and go', async () => {
  const s = await loadState(FIXTURE);
  const more: DatapathState = {
    ...s,
    endpoints: [...s.endpoints, { name: 'db-1', ip: '10.1.0.20', labels: { app: 'db' } }],
    policies: [...s.policies, { name: 'db', selector: { app: 'db' }, ingress: [{ action: 'allow', from: [{ cidr: '172.16.0.0/12' }] }] }],
  };
  const [a, b] = [allocateIdentities(s), allocateIdentities(more)];
  for (const [k, v] of a.byLabels) assert.equal(b.byLabels.get(k), v);
  for (const [k, v] of a.byCidr) assert.equal(b.byCidr.get(k), v);
});

test('a CIDR peer covers its identity and those of named CIDRs inside it, not those inside an except', () => {
  const s = parseState(
    'policies:\n  - name: p\n    selector: {}\n    egress:\n      - to: [{cidr: 10.0.0.0/8, except: [10.2.0.0/16]}, {cidr: 10.2.3.0/24}, {cidr: 10.5.0.0/16}, {cidr: 192.168.0.0/16}]\n',
    's.yaml',
  );
  const ids = allocateIdentities(s);
  const id = (c: string) => ids.byCidr.get(c)!;
  assert.deepEqual(cidrPeerIdentities({ cidr: '10.0.0.0/8', except: ['10.2.0.0/16'] }, ids), [id('10.0.0.0/8'), id('10.5.0.0/16')].sort((x, y) => x - y));
  const world = cidrPeerIdentities({ cidr: '0.0.0.0/0' }, ids);
  assert.ok(world.includes(IDENTITY_WORLD) && world.length === 1 + ids.byCidr.size);
});

test('endpoints a policy selects become default-deny in the directions it lists', async () => {
  const s = await loadState(FIXTURE);
  const { endpointFlags } = compilePolicies(s, allocateIdentities(s));
  assert.equal(endpointFlags.get('web-1'), EP_F_ENFORCE_INGRESS);
  assert.equal(endpointFlags.get('client-1'), EP_F_ENFORCE_EGRESS);
  const empty = parseState('endpoints: [{name: a, ip: 10.0.0.1, labels: {x: y}}]\npolicies: [{name: p, selector: {x: y}, ingress: []}]\n', 'e.yaml');
  const c = compilePolicies(empty, allocateIdentities(empty));
  assert.equal(c.endpointFlags.get('a'), EP_F_ENFORCE_INGRESS, 'an empty ingress list is deny-all ingress');
  assert.equal(c.entries.length, 0);
});

// ---- the compiled trie, looked up as the datapath does, against the rules read directly ----

/** policy_verdict() of bpf/lib/policy.h over compiled entries: 'allow' | 'deny' | 'default-deny'. */
function datapathVerdict(entries: PolicyEntry[], local: number, remote: number, dir: number, proto: number, port: number): string {
  const lookup = (rid: number) => {
    let best: PolicyEntry | undefined;
    let bestLen = -1;
    for (const x of entries) {
      if (x.localId !== local || x.remoteId !== rid || x.direction !== dir) continue;
      const len = x.proto === 0 ? 72 : 80 + x.portBits;
      const hit = x.proto === 0 || (x.proto === proto && (x.portBits === 0 || port >>> (16 - x.portBits) === x.port >>> (16 - x.portBits)));
      if (hit && len > bestLen) [best, bestLen] = [x, len];
    }
    return best;
  };
  const [byPeer, byAny] = [lookup(remote), lookup(IDENTITY_ANY)];
  if (byPeer?.action === POLICY_DENY || byAny?.action === POLICY_DENY) return 'deny';
  return byPeer || byAny ? 'allow' : 'default-deny';
}

/** The rules of the fixture's web-ingress policy read directly: any deny rule matching, else any allow, else default deny. */
function ruleVerdict(s: DatapathState, peerIp: string, port: number): string {
  const p = s.policies.find((x) => x.name === 'web-ingress')!;
  const ip = parseIpv4(peerIp)!;
  const peerEp = s.endpoints.find((x) => x.ip === peerIp);
  const matches = p.ingress!.filter((r) => {
    const peerOk = (r.from ?? []).some((f) =>
      f.selector ? !!peerEp && selects(f.selector, peerEp.labels) : !peerEp && cidrContains(parseCidr(f.cidr!)!, { addr: ip, len: 32 }) && !(f.except ?? []).some((x) => cidrContains(parseCidr(x)!, { addr: ip, len: 32 })),
    );
    const portOk = (r.ports ?? []).some((q) => q.protocol === 'tcp' && typeof q.port === 'number' && port >= q.port && port <= (q.endPort ?? q.port));
    return peerOk && portOk;
  });
  if (matches.some((r) => r.action === 'deny')) return 'deny';
  return matches.length ? 'allow' : 'default-deny';
}

test('the compiled policy trie gives what the rules say for a grid of peers and ports', async () => {
  const s = await loadState(FIXTURE);
  const ids = allocateIdentities(s);
  const { entries } = compilePolicies(s, ids);
  const local = ids.byEndpoint.get('web-1')!;
  const identityOf = (ip: string) => {
    const ep = s.endpoints.find((x) => x.ip === ip);
    if (ep) return ids.byEndpoint.get(ep.name)!;
    let best = { len: -1, id: IDENTITY_WORLD };
    for (const [c, id] of ids.byCidr) {
      const cidr = parseCidr(c)!;
      if (cidr.len > best.len && cidrContains(cidr, { addr: parseIpv4(ip)!, len: 32 })) best = { len: cidr.len, id };
    }
    return best.id;
  };
  let checked = 0;
  for (const peer of ['10.1.0.9', '10.1.0.6', '10.3.4.5', '10.2.9.9', '192.168.1.1', '8.8.8.8']) {
    for (const port of [22, 8080, 8081, 29999, 30000, 30999, 31000, 31001, 32767, 32768]) {
      assert.equal(datapathVerdict(entries, local, identityOf(peer), POLICY_INGRESS, 6, port), ruleVerdict(s, peer, port), `${peer} -> web-1 tcp/${port}`);
      checked++;
    }
  }
  assert.equal(checked, 60);
});
