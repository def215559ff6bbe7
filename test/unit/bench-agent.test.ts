// The agent benchmark's arithmetic and kube-proxy nftables's one-endpoint-change transaction
// (src/bench/agent.ts); the run itself is in test/kernel/bench.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nftEndpointChange, quantileLe } from '../../src/bench/agent.js';
import { endpointChain, serviceChain } from '../../src/bench/kube-nftables.js';
import { benchService } from '../../src/bench/services.js';

const h = (counts: number[], les = [0.001, 0.01, 0.1, Infinity]) => ({ buckets: les.map((le, i) => [le, counts[i]!] as [number, number]), count: counts.at(-1)! });

test('quantileLe: the upper bound of the bucket the percentile of the window falls in', () => {
  const before = h([10, 10, 10, 10]);
  // window: 90 in ≤1 ms, 9 in ≤10 ms, 1 in ≤100 ms
  const after = h([100, 109, 110, 110]);
  assert.equal(quantileLe(before, after, 0.5), 0.001);
  assert.equal(quantileLe(before, after, 0.9), 0.001);
  assert.equal(quantileLe(before, after, 0.99), 0.01);
  assert.equal(quantileLe(before, after, 1), 0.1);
  assert.equal(quantileLe(before, before, 0.5), null, 'no observation in the window');
  assert.equal(quantileLe(h([0, 0, 0, 0]), h([0, 0, 0, 5]), 0.5), Infinity);
});

test('nftEndpointChange: kube-proxy nftables rewrites the service chain and deletes or adds the endpoint chain', () => {
  const s = benchService(3, 3);
  const [e0, e1, e2] = s.endpoints;
  const down = nftEndpointChange(s, 0, 0);
  assert.match(down, new RegExp(`^flush chain ip kube-proxy ${serviceChain(s)}$`, 'm'));
  assert.match(down, new RegExp(`numgen random mod 2 vmap \\{ 0 : goto ${endpointChain(s, e1!)} , 1 : goto ${endpointChain(s, e2!)} \\}`));
  assert.match(down, new RegExp(`^delete chain ip kube-proxy ${endpointChain(s, e0!)}$`, 'm'));
  assert.doesNotMatch(down, /^add chain/m);
  const up = nftEndpointChange(s, -1, 0);
  assert.match(up, new RegExp(`^add chain ip kube-proxy ${endpointChain(s, e0!)}$`, 'm'));
  assert.match(up, /numgen random mod 3 vmap/);
  assert.doesNotMatch(up, /^delete chain/m);
  // the endpoint chain exists before the vmap refers to it
  assert.ok(up.indexOf(`add chain ip kube-proxy ${endpointChain(s, e0!)}`) < up.indexOf('numgen'));
});
