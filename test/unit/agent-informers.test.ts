// The agent's informers (@kubernetes/client-node 1.x, unchanged) against the loopback stand-in for
// kube-apiserver (src/bench/fake-apiserver.ts, the real wire protocol), writing an in-memory map
// writer: list then watch; BOOKMARKs change nothing; a dropped watch is resumed; the API server gone
// → the maps keep the last state, the failure is reported and retried; changes made meanwhile (and a
// compaction: 410 Expired → relist) are applied after it returns, with a full diff; 403 names the verb
// and resource; a missing CRD is one line. Loopback only, no root.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent } from '../../src/agent/agent.js';
import { Informers, loadKubeConfig } from '../../src/agent/informers.js';
import { MemWriter } from '../helpers/mem-writer.js';
import { endpointSlice, FakeApiServer, namespace, node, pod, service } from '../../src/bench/fake-apiserver.js';

async function waitFor(what: string, cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function setup(fake: FakeApiServer) {
  await fake.start();
  const dir = mkdtempSync(join(tmpdir(), 'pn-agent-'));
  const kcFile = join(dir, 'kubeconfig');
  fake.writeKubeconfig(kcFile);
  const writer = new MemWriter();
  const lines: string[] = [];
  const agent = new Agent({ writer, nodeName: 'node-a', kinds: Informers.KINDS, log: (level, msg, f) => lines.push(`${level} ${msg} ${JSON.stringify(f ?? {})}`), minSyncIntervalMs: 10 });
  const informers = new Informers(loadKubeConfig(kcFile), agent);
  const close = async () => {
    await informers.stop();
    await agent.close();
    await fake.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  return { writer, lines, agent, informers, close };
}

const svcCount = (w: MemWriter) => w.size('services');

test('agent informers: list, watch, bookmark, dropped watch, API server gone and back (410 → relist), full diff', async () => {
  const fake = new FakeApiServer();
  fake.apply(namespace('shop'));
  fake.apply(node('node-a', '198.18.0.1'));
  fake.apply(service('shop', 'web', '198.18.3.10', [{ name: 'http', port: 80, targetPort: 8080 }], { selector: { app: 'web' } }));
  fake.apply(endpointSlice('shop', 'web', 'x1', [{ name: 'http', port: 8080 }], [{ ip: '198.18.2.20' }, { ip: '198.18.2.21' }]));
  const { writer, lines, agent, informers, close } = await setup(fake);
  try {
    informers.start();
    await waitFor('ready', () => agent.ready());
    assert.deepEqual([svcCount(writer), writer.size('backends'), writer.dumps], [1, 2, 1]);
    for (const k of Informers.KINDS) assert.equal(fake.requests.get(`list ${k}`), 1, `one list of ${k}`);

    // a watch event becomes a delta
    fake.apply(service('shop', 'api', '198.18.3.11', [{ port: 443 }]));
    await waitFor('the new service', () => svcCount(writer) === 2);
    assert.equal(writer.dumps, 1, 'a delta, not a full diff');

    // a bookmark changes nothing
    const batches = writer.batches.length;
    fake.bookmark();
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(writer.batches.length, batches);

    // a watch dropped mid-stream is resumed; the next change still arrives
    fake.dropWatches();
    fake.apply(service('shop', 'db', '198.18.3.12', [{ port: 5432 }]));
    await waitFor('the service created around the drop', () => svcCount(writer) === 3);

    // the API server goes away: the maps keep the last state, the failure is reported
    await fake.stop();
    await waitFor('a failure reported', () => lines.some((l) => /^warn (watch|list) failed; the datapath keeps serving the last state; retrying/.test(l)));
    assert.equal(svcCount(writer), 3, 'nothing removed while the API server is away');
    // meanwhile: one service deleted, one endpoint gone, history compacted (the agent's resourceVersion is now too old)
    fake.delete('Service', 'shop', 'api');
    fake.apply(endpointSlice('shop', 'web', 'x1', [{ name: 'http', port: 8080 }], [{ ip: '198.18.2.20' }]));
    fake.compact();
    const dumps = writer.dumps;
    await fake.start();
    await waitFor('the changes made while away', () => svcCount(writer) === 2 && writer.size('backends') === 1, 40_000);
    await waitFor('ready again', () => agent.ready(), 40_000);
    assert.ok(writer.dumps > dumps, 'a full diff after the reconnect');
    assert.ok(lines.some((l) => /^info API server reachable again: a full diff follows/.test(l)), lines.join('\n'));
    assert.ok((fake.requests.get('list Service') ?? 0) >= 2, 'the Service informer relisted (410 Expired)');
    const m = agent.metrics.render(agent.ready());
    assert.match(m, /prep_node_agent_reconnects_total\{kind="Service"\} [1-9]/);
    assert.match(m, /prep_node_agent_api_errors_total\{kind="Service",verb="(watch|list)",code="0"\} [1-9]/);
  } finally {
    await close();
  }
});

test('agent informers: 403 is one line naming the verb and resource; a missing CRD is one line, not an error', async () => {
  const fake = new FakeApiServer();
  fake.crd = false;
  fake.forbidden.add('EndpointSlice');
  const { lines, agent, informers, close } = await setup(fake);
  try {
    informers.start();
    await waitFor('the 403 and the missing CRD reported', () => lines.some((l) => l.startsWith('error forbidden')) && lines.some((l) => /CiliumNetworkPolicy is not served/.test(l)));
    const forbidden = lines.filter((l) => l.startsWith('error forbidden'));
    assert.match(forbidden[0]!, /^error forbidden: RBAC does not allow list on endpointslices\.discovery\.k8s\.io \(cluster-wide\); grant list and watch on it to the agent's account/);
    assert.equal(lines.filter((l) => /CiliumNetworkPolicy is not served by this API server \(its CRD is not installed\): not watched/.test(l)).length, 1);
    assert.equal(agent.ready(), false);
    assert.match(agent.notReadyReason(), /waiting for the first list of EndpointSlice$/);
    // RBAC fixed: the retry lists and the agent becomes ready
    fake.forbidden.clear();
    await waitFor('ready after RBAC is fixed', () => agent.ready(), 15_000);
  } finally {
    await close();
  }
});

test('agent informers: client-node\'s cache holds slimmed objects, from the list and from the watch', async () => {
  const fake = new FakeApiServer();
  fake.apply(namespace('shop'));
  fake.apply(node('node-a', '198.18.0.1'));
  fake.apply(pod('shop', 'be1', '198.18.2.20', { app: 'web' }, { ports: [{ name: 'http', containerPort: 8080 }] }));
  const { agent, informers, close } = await setup(fake);
  try {
    informers.start();
    await waitFor('ready', () => agent.ready());
    fake.apply(pod('shop', 'be2', '198.18.2.21', { app: 'web' }));
    await waitFor('the watched pod', () => agent.held.count('Pod') === 2);
    const pods = informers.cached('Pod') as unknown as Record<string, Record<string, unknown>>[];
    assert.deepEqual(pods.map((p) => p.metadata!.name).sort(), ['be1', 'be2']);
    for (const p of pods) {
      const text = JSON.stringify(p);
      // what the server sent and the datapath does not read is not held: managedFields, uid,
      // ownerReferences, annotations, container images and statuses
      for (const gone of ['managedFields', 'uid', 'ownerReferences', 'restartedAt', 'containerStatuses', 'image', 'tolerations', 'startTime']) assert.ok(!text.includes(gone), `${gone} in ${text}`);
      assert.equal((p.status as { podIP: string }).podIP.startsWith('198.18.2.'), true);
    }
    // the same objects as the agent's (one copy, not two)
    assert.equal(agent.held.get('Pod', 'shop/be2'), pods.find((p) => p.metadata!.name === 'be2'));
  } finally {
    await close();
  }
});
