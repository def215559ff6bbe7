// `prep-node agent` end to end on this machine's kernel: real pinned maps, real TCP connections
// between network namespaces, the cluster served by the loopback stand-in for kube-apiserver. The
// driver (test/helpers/agent-e2e.ts) runs in a private mount namespace with its own bpffs and prints
// what it observed; the assertions are here:
//   a Service created → reachable; an endpoint removed → no new connection reaches it; a
//   NetworkPolicy added → denied and seen by `observe`; the API server stopped → traffic still flows,
//   changes made meanwhile applied after it returns; kill -9 and restart → converges without writing,
//   an established connection survives; SIGTERM leaves the datapath serving.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const DRIVER = fileURLToPath(new URL('../helpers/agent-e2e.js', import.meta.url));
const notRoot = process.getuid?.() !== 0 ? 'needs root (bpffs, cgroups, network namespaces)' : false;

type Step = Record<string, unknown>;

test('agent end to end: services, endpoints, policy, API loss, kill -9 and restart on real maps', { skip: notRoot }, () => {
  const script = `set -u
mount --make-rprivate /
mount -t bpf bpf /sys/fs/bpf || exit 10
mkdir -p /var/lib/prep-node && mount -t tmpfs tmpfs /var/lib/prep-node || exit 11
exec ${process.execPath} ${DRIVER}`;
  const r = spawnSync('unshare', ['--mount', 'sh', '-c', script], { encoding: 'utf8', timeout: 300_000 });
  const steps = new Map<string, Step>(
    r.stdout
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((l) => {
        const o = JSON.parse(l) as Step;
        return [String(o.step), o];
      }),
  );
  const all = `exit ${r.status}\n${r.stdout}\n${r.stderr}`;
  assert.equal(steps.get('error'), undefined, all);
  assert.equal(r.status, 0, all);
  const get = (s: string) => {
    const x = steps.get(s);
    assert.ok(x, `step ${s} missing:\n${all}`);
    return x;
  };

  // ready: only the echo service; the web VIP is not reachable yet
  assert.deepEqual([get('ready').services, get('ready').before], [1, false]);
  // created: reachable (socket LB), both backends used; the echo connection below takes the tc path
  const created = get('created').sock as string[];
  assert.ok(created.every((x) => x === 'be1' || x === 'be2'), all);
  assert.ok(created.includes('be1') && created.includes('be2'), `both backends: ${created.join(',')}`);
  assert.equal(get('established').echo, true);
  // the terminating endpoint gets no new connection
  assert.deepEqual([...new Set(get('endpoint-removed').sock as string[])], ['be1']);
  // policy: denied, and observe shows the drop
  assert.equal((get('policy').denied as { ok: boolean }).ok, false);
  const drops = (get('policy').observe as { verdict?: string; destination?: { ip: string; port: number }; reason_name?: string; reason?: unknown }[]).filter((e) => e.destination?.ip === '198.18.2.20' && e.destination.port === 8080);
  assert.ok(drops.length >= 1, `observe shows the denied connection:\n${JSON.stringify(get('policy').observe)}`);
  // API server away: traffic flows; changes made meanwhile applied after it returns
  assert.equal((get('api-away').during as { ok: boolean }).ok, true);
  assert.match((get('api-away').after as { reply?: string }).reply ?? '', /^be2 /, 'the Service created while away is reachable after the return');
  assert.equal(get('api-away').echo, true);
  // kill -9 and restart: the same maps, a full diff that writes nothing, the connection alive
  const rs = get('restart');
  assert.equal(rs.services, rs.killedAt);
  assert.deepEqual([(rs.full as Step).put, (rs.full as Step).deleted], [0, 0], JSON.stringify(rs.full));
  assert.equal(rs.echo, true, 'the established connection survives kill -9 and restart');
  assert.ok((rs.metrics as string[]).includes('prep_node_agent_ready 1'), JSON.stringify(rs.metrics));
  assert.ok((rs.metrics as string[]).includes('prep_node_datapath_up 1'), JSON.stringify(rs.metrics));
  // SIGTERM: exit 0, the datapath still serves
  assert.deepEqual([get('sigterm').code, get('sigterm').stillServes], [0, true]);
  assert.equal(get('sigterm').services, rs.services);
});
