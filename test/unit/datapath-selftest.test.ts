import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { binomialBounds, judgeDenied, judgeDistribution, selftestPlan, selftestState } from '../../src/datapath/selftest.js';
import { parseBlocks, type StepBlock } from '../../src/datapath/selftest-script.js';
import { compileState } from '../../src/datapath/compile.js';

const RECORDED = readFileSync(new URL('../../../test/fixtures/datapath/selftest-output.txt', import.meta.url), 'utf8');
const plan = selftestPlan('/var/lib/prep-node/bin/prep-node-dp-0123456789ab');

test('the generated script is valid sh and cleans up in an EXIT trap', () => {
  const r = spawnSync('sh', ['-n'], { input: plan.script, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(plan.script, /^trap finish EXIT$/m);
  assert.match(plan.script, /^trap 'exit 130' INT TERM HUP$/m);
  // remove runs in the namespace install ran in (the loader refuses elsewhere), before the namespaces go
  assert.match(plan.script, /in_switch "\$DP" remove/);
  assert.ok(plan.script.indexOf('in_switch "$DP" remove') < plan.script.indexOf('  remove_topology\n  return $crc'));
});

test('the script never adds anything to the node\'s own network namespace', () => {
  const lines = plan.script.split('\n').map((l) => l.trim());
  const linkAdds = lines.filter((l) => /\bip (-n \S+ )?link add\b/.test(l));
  assert.ok(linkAdds.length > 0);
  for (const l of linkAdds) assert.match(l, /^ip -n pnst-sw link add /, l);
  assert.ok(!lines.some((l) => /^ip (addr|route) add/.test(l)), 'addresses and routes only with -n');
});

test('the apply heredocs are intact: every line a put or del, end marker at column 0', () => {
  const bodies = [...plan.script.matchAll(/<<'PNST_APPLY'\n([\s\S]*?)\nPNST_APPLY\n/g)].map((m) => m[1]!.split('\n'));
  assert.equal(bodies.length, 3);
  for (const body of bodies) for (const l of body) assert.match(l, /^(put \w+ [0-9a-f]+ [0-9a-f]+|del \w+ [0-9a-f]+)$/);
  assert.equal(bodies[0]!.length, compileState(selftestState()).entries.length);
});

test('binomial bounds are mean ± 4σ rounded outwards', () => {
  assert.deepEqual(binomialBounds(200, 0.5), [71, 129]);
  assert.deepEqual(binomialBounds(20, 1), [20, 20]);
  assert.deepEqual(binomialBounds(100, 0.25), [7, 43]);
});

const block = (name: string, stdout: string, rc = 0): StepBlock => ({ name, rc, ms: 5, stdout, stderr: '' });
const probe = (replies: [string, string][], peer = '198.18.1.1:8080') => JSON.stringify({ results: replies.map(([name, src]) => ({ ok: true, errno: null, reply: `${name} ${src}:40000`, peer })) });
const many = (b1: number, b2: number): [string, string][] => [...Array<[string, string]>(b1).fill(['b1', '198.18.0.1']), ...Array<[string, string]>(b2).fill(['b2', '198.18.0.1'])];

test('distribution: counts inside the bounds pass, a skew outside fails with the numbers', () => {
  const shares = { b1: 0.5, b2: 0.5 };
  assert.equal(judgeDistribution(block('x', probe(many(110, 90))), '198.18.1.1:8080', shares, '198.18.0.1').pass, true);
  const skew = judgeDistribution(block('x', probe(many(150, 50))), '198.18.1.1:8080', shares, '198.18.0.1');
  assert.equal(skew.pass, false);
  assert.match(skew.detail, /b1 got 150\/200, expected 71-129/);
  const one = judgeDistribution(block('x', probe(many(200, 0))), '198.18.1.1:8080', shares, '198.18.0.1');
  assert.match(one.detail, /b1 got 200\/200/);
});

test('distribution: the client must see the VIP as its peer, and the backend the client as its', () => {
  const wrongPeer = judgeDistribution(block('x', probe(many(100, 100), '198.18.0.11:8080')), '198.18.1.1:8080', { b1: 0.5, b2: 0.5 }, '198.18.0.1');
  assert.match(wrongPeer.detail, /getpeername\(\) gave 198\.18\.0\.11:8080, expected the VIP 198\.18\.1\.1:8080/);
  const snat = judgeDistribution(block('x', probe([...many(1, 0), ['b2', '10.9.9.9']])), '198.18.1.1:8080', { b1: 0.5, b2: 0.5 }, '198.18.0.1');
  assert.match(snat.detail, /saw the connection from 10\.9\.9\.9:40000/);
  const failed = judgeDistribution(block('x', JSON.stringify({ results: [{ ok: false, errno: 'ECONNREFUSED', reply: null, peer: null }] })), '198.18.1.1:8080', { b1: 1 }, '198.18.0.1');
  assert.match(failed.detail, /1\/1 connections failed \(errno ECONNREFUSED\)/);
});

test('a denied flow passes only when nothing got through and the reason was counted', () => {
  const status = (n: number) => block('s', JSON.stringify({ installed: true, drops: { POLICY_DENY: n } }));
  const timedOut = block('p', JSON.stringify({ results: [{ ok: false, errno: 'ETIMEDOUT', reply: null, peer: null }] }));
  assert.equal(judgeDenied(status(0), timedOut, status(2), 'b1:9090', 'POLICY_DENY').pass, true);
  assert.match(judgeDenied(status(2), timedOut, status(2), 'b1:9090', 'POLICY_DENY').detail, /stayed at 2/);
  const refused = block('p', JSON.stringify({ results: [{ ok: false, errno: 'ECONNREFUSED', reply: null, peer: null }] }));
  assert.match(judgeDenied(status(0), refused, status(1), 'b1:9090', 'POLICY_DENY').detail, /got through the policy \(refused by the closed port\)/);
});

test('the output recorded on a real node judges every step a pass', () => {
  const steps = plan.judge(parseBlocks(RECORDED));
  assert.deepEqual(
    steps.filter((s) => !s.pass).map((s) => `${s.name}: ${s.detail}`),
    [],
  );
  assert.deepEqual(steps.map((s) => s.name), ['topology', 'servers', 'install', 'apply', 'lb-random', 'lb-maglev', 'lb-affinity', 'policy-allow', 'policy-deny', 'policy-default-deny', 'backend-removed', 'entries-deleted', 'cleanup', 'nothing-left']);
  assert.ok(steps.every((s) => s.ms >= 0 && s.detail.length > 0));
});

test('a run that stopped at install reports the later steps as not run, and the cleanup as it went', () => {
  const cut = RECORDED.slice(0, RECORDED.indexOf('::step install'));
  const tail = '::step install 7 12\n{"error":"no cgroup v2","code":"no-cgroup2"}\n::stderr\nwhatever\n::end\n::step cleanup 0 30\n\n::end\n::step nothing-left 0 3\n{"left":[]}\n::end\n';
  const steps = plan.judge(parseBlocks(cut + tail));
  const by = new Map(steps.map((s) => [s.name, s]));
  assert.equal(by.get('install')!.pass, false);
  assert.match(by.get('install')!.detail, /^exit 7: whatever/);
  assert.equal(by.get('lb-random')!.detail, 'did not run');
  assert.equal(by.get('nothing-left')!.pass, true);
});

test('parseBlocks keeps stdout and stderr apart and ignores text between blocks', () => {
  const b = parseBlocks('noise\n::step a 1 20\nout1\nout2\n\n::stderr\nerr\n\n::end\nmore noise\n::step b 0 3\n\n::end\n');
  assert.deepEqual(b, [
    { name: 'a', rc: 1, ms: 20, stdout: 'out1\nout2', stderr: 'err' },
    { name: 'b', rc: 0, ms: 3, stdout: '', stderr: '' },
  ]);
});
