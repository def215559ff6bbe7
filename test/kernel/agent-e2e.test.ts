// `prep-node agent` end to end on this machine's kernel: real pinned maps, real TCP connections
// between network namespaces, the cluster served by the loopback stand-in for kube-apiserver. The
// driver (test/helpers/agent-e2e.ts) runs in a private mount namespace with its own bpffs and prints
// what it observed; the assertions are here:
//   a Service created → reachable; an endpoint removed → no new connection reaches it; a live UDP
//   flow moves at once when the agent removes its backend (its conntrack entries flushed); a
//   NetworkPolicy added → denied and seen by `observe`; the API server stopped → traffic still flows,
//   /readyz stays ready and says why, retries counted in /metrics, changes made meanwhile (a Service
//   deleted, an endpoint back, a Service added) applied after it returns, 410 Expired → relist;
//   watches ask for bookmarks and a timeout, a cleanly ended one is rewatched, a dropped one restarts
//   the informer; kill -9 and restart → converges without writing, an established connection
//   survives; SIGTERM leaves the datapath serving; 403 → one line naming verb and resource.
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
  // a live UDP flow moves when the agent removes its backend: its entries flushed (counted in /metrics), not left to idle out
  const u = get('udp-moved');
  assert.ok((u.before as string[]).length >= 3 && (u.before as string[]).every((n) => n === 'be1'), JSON.stringify(u));
  assert.equal(typeof u.movedAfterMs, 'number', `the flow reached be2: ${JSON.stringify(u)}`);
  assert.ok((u.movedAfterMs as number) < 10_000, `well before the 60 s udp lifetime: ${JSON.stringify(u)}`);
  assert.equal(u.be1After, 0, 'once moved, nothing more from the removed backend');
  assert.ok((u.flushed as number) >= 2 && (u.flushRuns as number) >= 1, `both directions' entries flushed: ${JSON.stringify(u)}`);
  assert.match(String((u.logged as { backends?: string } | null)?.backends), /^198\.18\.2\.20:5353\/udp$/, JSON.stringify(u.logged));
  // policy: denied, and observe shows the drop
  assert.equal((get('policy').denied as { ok: boolean }).ok, false);
  const drops = (get('policy').observe as { verdict?: string; destination?: { ip: string; port: number }; reason_name?: string; reason?: unknown }[]).filter((e) => e.destination?.ip === '198.18.2.20' && e.destination.port === 8080);
  assert.ok(drops.length >= 1, `observe shows the denied connection:\n${JSON.stringify(get('policy').observe)}`);
  // ... with the names the agent left: the pods by namespace/name, the policy that made it default-deny
  const named = drops[0] as { source?: { endpoint?: string }; destination?: { endpoint?: string }; policy?: unknown };
  assert.deepEqual([named.source?.endpoint, named.destination?.endpoint], ['shop/fe', 'shop/be1'], JSON.stringify(drops[0]));
  assert.match(JSON.stringify(named.policy), /web-admin-only/, JSON.stringify(drops[0]));
  // API server away: traffic flows; changes made meanwhile applied after it returns
  const away = get('api-away');
  assert.equal(away.goneBefore, true, 'the Service deleted while away was reachable before');
  assert.equal((away.during as { ok: boolean }).ok, true);
  // /readyz stays ready (the datapath serves the last state) and says what is degraded
  const rd = away.readyDuring as { status: number; body: string };
  assert.equal(rd.status, 200, rd.body);
  assert.match(rd.body, /^ok: the API server does not answer for .*Service.*: serving the last state, retrying with backoff\n$/);
  // retries counted in /metrics (each backoff period one), the outage's errors with code 0 (no response)
  const [rcBefore, rcDuring, errs] = away.reconnects as number[];
  assert.ok(rcDuring! >= rcBefore! + 7, `every kind retried: ${String(away.reconnects)}`);
  assert.ok(errs! >= 2, String(away.reconnects));
  // the history was compacted while away: the watch got 410 Expired and the kinds relisted
  assert.ok((away.relists as number) >= 1 && away.relistLogged === true, JSON.stringify(away));
  // deleted while away → gone after the return (the full diff removed it)
  assert.equal(away.goneAfter, false, 'the Service deleted while away is no longer served');
  assert.match((get('api-away').after as { reply?: string }).reply ?? '', /^be2 /, 'the Service created while away is reachable after the return');
  assert.equal(get('api-away').echo, true);
  // watches: bookmarks and a timeout asked for, as client-go's reflector does
  const w = get('watch');
  const q = w.query as Record<string, string>;
  assert.equal(q.allowWatchBookmarks, 'true');
  assert.ok(Number(q.timeoutSeconds) >= 300 && Number(q.timeoutSeconds) < 600, JSON.stringify(q));
  assert.ok((w.bookmarks as number) >= 7, `one bookmark per kind counted: ${String(w.bookmarks)}`);
  // a stream the server ends cleanly (its timeout) is rewatched, not relisted
  assert.deepEqual(w.cleanEnd, { watches: 1, lists: 0 });
  // a stream dropped mid-way: the informer stops on the error and is restarted (counted)
  assert.ok((w.restarted as number) >= 1, JSON.stringify(w));
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
  // 403: one line naming the verb and the resource; not ready (saying why); the maps untouched
  const fb = get('forbidden');
  assert.ok((fb.lines as string[]).length >= 1, JSON.stringify(fb));
  assert.equal((fb.lines as string[])[0], "forbidden: RBAC does not allow list on endpointslices.discovery.k8s.io (cluster-wide); grant list and watch on it to the agent's account");
  const fr = fb.readyz as { status: number; body: string };
  assert.deepEqual([fr.status, fr.body], [503, 'not ready: waiting for the first list of EndpointSlice\n']);
  const [sb, sa] = fb.services as number[];
  assert.equal(sa, sb);
  assert.equal(fb.stillServes, true);
});
