// Issue 17 item 4: policy entries are counted against the policy map's capacity before they are
// built. A ~12 KB manifest of 100 pods with distinct labels and one rule `port: 1, endPort: 65534`
// from every pod needs 100 × 100 × 30 = 300,000 entries per direction; it was built in full (26 s,
// 1.5 GB) before anything compared it with the map; 1,000 pods aborted V8 out of memory. Both are
// refused now with one line (exit 5), and a state that fits is compiled as before.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileState } from '../../src/datapath/compile.js';
import { PolicyCapacityError } from '../../src/datapath/policy.js';
import { ExitCode } from '../../src/errors.js';
import { load } from '../helpers/k8s.js';

function manifest(pods: number): string {
  const docs = [];
  for (let i = 0; i < pods; i++)
    docs.push(`apiVersion: v1\nkind: Pod\nmetadata: {name: p${i}, namespace: a, labels: {n: "${i}"}}\nstatus: {phase: Running, podIP: 10.1.${i >> 8}.${i & 255}}`);
  docs.push('apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: wide, namespace: a}\nspec:\n  podSelector: {}\n  ingress:\n  - from: [{podSelector: {}}]\n    ports: [{port: 1, endPort: 65534}]');
  return docs.join('\n---\n');
}

function refusedFast(pods: number, t: { diagnostic(m: string): void }): void {
  const d = load(manifest(pods));
  const started = process.hrtime.bigint();
  assert.throws(
    () => compileState(d.state),
    (e: unknown) => {
      assert.ok(e instanceof PolicyCapacityError, String(e));
      assert.equal(e.exitCode, ExitCode.refused);
      assert.match(e.message, /^the policies need more than 262144 policy map entries \(at least 262145 by np\.a\.wide\.\d+\/ingress\/0; .*install with --cap policy=N$/);
      return true;
    },
  );
  // not a timing assertion: the figure goes to the TAP log (make bench measures speed)
  t.diagnostic(`${pods} pods: refused after ${Number(process.hrtime.bigint() - started) / 1e6} ms`);
}

test('100 pods, one port range 1-65534 from every pod: refused before 600,000 entries are built', (t) => {
  assert.ok(manifest(100).length < 14_000, 'the ~12 KB manifest of the report');
  refusedFast(100, t);
});

test('1,000 pods (V8 ran out of memory): refused', (t) => {
  refusedFast(1000, t);
});

test('the same rule over 20 pods fits (20 × 20 × 30 = 12,000 entries) and compiles', () => {
  const c = compileState(load(manifest(20)).state);
  assert.equal(c.entries.filter((e) => e.map === 'policy').length, 12_000);
});

test('a larger capacity (install --cap policy=N, read from the node by sync) lets the 100 pods compile', () => {
  const c = compileState(load(manifest(100)).state, 400_000);
  assert.equal(c.entries.filter((e) => e.map === 'policy').length, 300_000);
});
