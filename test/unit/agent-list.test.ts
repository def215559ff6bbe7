// The agent's lists as kube-proxy's reflector makes them (src/agent/informers.ts listAll): plain JSON
// in pages of 500 through client-node's authentication, against the loopback stand-in for
// kube-apiserver (src/bench/fake-apiserver.ts: limit, continue, remainingItemCount, 410 Expired as
// kube-apiserver serves them). An expired continue token restarts the list; 403 and a refused
// connection keep the shape the informers' error handling reads. Loopback only, no root.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { apiError, LIST_PAGE, ListError, listAll, loadKubeConfig } from '../../src/agent/informers.js';
import { FakeApiServer, namespace, service } from '../../src/bench/fake-apiserver.js';

const SVC = '/api/v1/services';

async function setup(n: number) {
  const fake = new FakeApiServer();
  for (let i = 0; i < n; i++) fake.apply(service(`ns${i % 7}`, `s${i}`, `198.18.${3 + (i >> 8)}.${i & 255}`, [{ port: 80 }]));
  await fake.start();
  const dir = mkdtempSync(join(tmpdir(), 'pn-agent-list-'));
  fake.writeKubeconfig(join(dir, 'kubeconfig'));
  const kc = loadKubeConfig(join(dir, 'kubeconfig'));
  const close = async () => {
    await fake.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  return { fake, kc, close };
}

test('agent list: pages of 500 followed to the end, slimmed, resourceVersion of the last page', async () => {
  const { fake, kc, close } = await setup(1201);
  try {
    assert.equal(LIST_PAGE, 500);
    const r = await listAll(kc, 'Service', SVC);
    assert.equal(r.pages, 3);
    assert.equal(r.items.length, 1201);
    const names = new Set(r.items.map((o) => `${(o.metadata as { namespace: string }).namespace}/${(o.metadata as { name: string }).name}`));
    assert.equal(names.size, 1201, 'every object once');
    const q = fake.listQueries.map((l) => [l.query.get('limit'), l.query.has('continue'), l.status]);
    assert.deepEqual(q, [
      ['500', false, 200],
      ['500', true, 200],
      ['500', true, 200],
    ]);
    assert.equal(r.metadata.resourceVersion, String(100 + 1201), "the list's resourceVersion");
    for (const o of r.items) {
      const text = JSON.stringify(o);
      for (const gone of ['managedFields', 'uid', 'creationTimestamp', 'last-applied-configuration']) assert.ok(!text.includes(gone), `${gone} in ${text}`);
      assert.equal(o.kind, 'Service');
    }
  } finally {
    await close();
  }
});

test('agent list: a continue token that expired (410) restarts the list from the start; repeated expiry ends in one unpaginated list', async () => {
  const { fake, kc, close } = await setup(5);
  try {
    // the history is compacted once, when the second page is asked for
    let compacted = false;
    fake.onList = (_k, q) => {
      if (q.has('continue') && !compacted) {
        compacted = true;
        // a write elsewhere, then etcd's compaction: the token's revision is gone
        fake.apply(namespace('elsewhere'));
        fake.compact();
      }
    };
    const r = await listAll(kc, 'Service', SVC, 2);
    assert.equal(r.items.length, 5);
    assert.deepEqual(
      fake.listQueries.map((l) => [l.query.has('continue'), l.status]),
      [
        [false, 200],
        [true, 410],
        [false, 200],
        [true, 200],
        [true, 200],
      ],
    );

    // compacted before every continuation: after 3 restarts, one list without limit
    fake.listQueries.length = 0;
    fake.onList = (_k, q) => {
      if (!q.has('continue')) return;
      fake.apply(namespace('elsewhere'));
      fake.compact();
    };
    const r2 = await listAll(kc, 'Service', SVC, 2);
    assert.equal(r2.items.length, 5);
    const statuses = fake.listQueries.map((l) => `${l.query.get('limit') ?? '-'}${l.query.has('continue') ? 'c' : ''}:${l.status}`);
    assert.deepEqual(statuses, ['2:200', '2c:410', '2:200', '2c:410', '2:200', '2c:410', '2:200', '2c:410', '-:200']);
  } finally {
    await close();
  }
});

test('agent list: 403 and a refused connection keep the shape the informers read', async () => {
  const { fake, kc, close } = await setup(1);
  try {
    fake.forbidden.add('Service');
    const err = await listAll(kc, 'Service', SVC).then(
      () => assert.fail('a forbidden list succeeded'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof ListError);
    assert.equal(err.code, 403);
    const e = apiError(err);
    assert.equal(e.status, 403);
    assert.match(e.message, /^services is forbidden: User "system:serviceaccount:kube-system:prep-node" cannot list resource "services"/);

    await fake.stop();
    const refused = apiError(await listAll(kc, 'Service', SVC).then(() => assert.fail('listed with the server gone'), (x: unknown) => x));
    assert.deepEqual(refused, { message: 'ECONNREFUSED' });
  } finally {
    await close();
  }
});
