// The agent benchmark's arithmetic and kube-proxy nftables's one-endpoint-change transaction
// (src/bench/agent.ts); the run itself is in test/kernel/bench.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { exactQuantiles, ms, nftEndpointChange } from '../../src/bench/agent.js';
import { endpointChain, serviceChain } from '../../src/bench/kube-nftables.js';
import { benchService } from '../../src/bench/services.js';

test('exactQuantiles: nearest-rank p50 and p99 and the maximum of the observations', () => {
  const xs = Array.from({ length: 200 }, (_, i) => (200 - i) / 1e6); // 1..200 µs, in reverse
  const q = exactQuantiles(xs);
  assert.equal(q.p50S, 100e-6);
  assert.equal(q.p99S, 198e-6);
  assert.equal(q.maxS, 200e-6);
  assert.deepEqual(exactQuantiles([]), { p50S: null, p99S: null, maxS: null });
  assert.deepEqual(exactQuantiles([0.5]), { p50S: 0.5, p99S: 0.5, maxS: 0.5 });
});

test('ms: milliseconds to 3 significant digits', () => {
  assert.equal(ms(0.000213), '0.213 ms');
  assert.equal(ms(0.04123), '41.2 ms');
  assert.equal(ms(null), '-');
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
