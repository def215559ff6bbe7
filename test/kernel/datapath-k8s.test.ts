// Kubernetes manifests through the CLI on this machine's kernel: `datapath sync -f test/fixtures/k8s/shop/`
// (Namespace, Pods, a Service with its EndpointSlice, a default-deny NetworkPolicy, the backend open to
// the frontend on 8080, a CiliumNetworkPolicy deny for "other"), then real TCP connections between
// network namespaces show allow and deny as the manifests say, `observe --verdict forwarded --json`
// shows each allowed flow once with its labels, Service and allowing rule, `observe --verdict dropped
// --json` each denied attempt with its reason, labels and policy, and `metrics` (forwarded by
// Service, drops by reason) and the textfile node_exporter would read parse as Prometheus text. In a private mount namespace with its own bpffs
// and a tmpfs on /var/lib/prep-node (the loader, the names index and the metrics writer live there),
// network namespaces and a cgroup v2 child this test creates and removes.
//
//     pnk8s-fe [eth0 198.18.2.10] ── sw-fe ──┐
//     pnk8s-be [eth0 198.18.2.20] ── sw-be ──┤ br0 (pnk8s-sw), tc_lb on every sw-* port
//     pnk8s-ot [eth0 198.18.2.30] ── sw-ot ──┘
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { familyHeaders } from '../helpers/datapath-families.js';
import { parsePrometheusText } from '../helpers/prometheus-text.js';

const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url));
const DP = fileURLToPath(new URL('../../../bpf/build/prep-node-dp', import.meta.url));
const SHOP = fileURLToPath(new URL('../../../test/fixtures/k8s/shop', import.meta.url));
const BLOG = fileURLToPath(new URL('../../../test/fixtures/k8s/blog', import.meta.url));
const PIDFILE = '/run/prep-node-dp-metrics.pid';
const notRoot = process.getuid?.() !== 0 ? 'needs root (bpffs, cgroups, network namespaces)' : false;

function cgroup2Root(): string {
  const line = readFileSync('/proc/mounts', 'utf8').split('\n').find((l) => l.split(' ')[2] === 'cgroup2');
  if (!line) throw new Error('no cgroup2 mount on this machine');
  return line.split(' ')[1]!;
}

function sections(out: string): Map<string, { cmd: string; out: string; exit: string }> {
  const parts = out
    .split(/^@@ /m)
    .slice(1)
    .map((s) => [s.slice(0, s.indexOf('\n')), s.slice(s.indexOf('\n') + 1)] as const);
  const m = new Map<string, { cmd: string; out: string; exit: string }>();
  for (let i = 0; i + 1 < parts.length; i += 2) {
    const [head, body] = parts[i]!;
    const [id, ...cmd] = head.split(' ');
    m.set(id!, { cmd: cmd.join(' '), out: body, exit: parts[i + 1]![0] });
  }
  return m;
}

interface ProbeResult {
  ok: boolean;
  errno?: string | number | null;
  reply?: string | null;
  peer?: string | null;
}
function probe(s: { out: string } | undefined): ProbeResult {
  const doc = JSON.parse(s?.out.trim().split('\n').pop() ?? '{}') as { results?: ProbeResult[] };
  const r = doc.results?.[0];
  assert.ok(r, `probe output: ${s?.out}`);
  return r;
}

test('k8s manifests: sync, real connections allowed and denied as written, observe, metrics, textfile', { skip: notRoot }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'pn-dp-k8s-'));
  const tf = join(dir, 'textfile');
  const cg = join(cgroup2Root(), `pn-dp-k8s-${process.pid}`);
  mkdirSync(cg);
  mkdirSync('/var/lib/prep-node', { recursive: true });
  const ns = ['pnk8s-sw', 'pnk8s-fe', 'pnk8s-be', 'pnk8s-ot'];
  const pods = [
    ['fe', '198.18.2.10'],
    ['be', '198.18.2.20'],
    ['ot', '198.18.2.30'],
  ];
  const script = `set -u
mount --make-rprivate /
mount -t bpf bpf /sys/fs/bpf
mount -t tmpfs tmpfs /var/lib/prep-node
PIDS=""
cleanup() {
  for p in $PIDS; do kill "$p" 2>/dev/null; done
  for p in $PIDS; do wait "$p" 2>/dev/null; done
  nsenter --net=/run/netns/pnk8s-sw ${process.execPath} ${CLI} datapath remove >/dev/null 2>&1
  for n in ${ns.join(' ')}; do ip netns del "$n" 2>/dev/null; done
}
trap cleanup EXIT
# id: a name for the section; the rest: the command
run() { id=$1; shift; echo "@@ $id $*"; "$@" 2>&1; echo "@@ exit $?"; }
cli() { ${process.execPath} ${CLI} "$@"; }
clisw() { nsenter --net=/run/netns/pnk8s-sw ${process.execPath} ${CLI} "$@"; }
in_cgroup() { sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' ${cg} "$@"; }
for n in ${ns.join(' ')}; do ip netns del "$n" 2>/dev/null; done
ip netns add pnk8s-sw && ip -n pnk8s-sw link set lo up && ip -n pnk8s-sw link add br0 type bridge && ip -n pnk8s-sw link set br0 up || exit 10
${pods
  .map(
    ([n, ip]) => `ip netns add pnk8s-${n} && ip -n pnk8s-${n} link set lo up &&
ip -n pnk8s-sw link add sw-${n} type veth peer name eth0 netns pnk8s-${n} &&
ip -n pnk8s-sw link set sw-${n} master br0 up &&
ip -n pnk8s-${n} addr add ${ip}/24 dev eth0 && ip -n pnk8s-${n} link set eth0 up || exit 11`,
  )
  .join('\n')}
ip netns exec pnk8s-be ${DP} serve --port 8080 --name be8080 >/dev/null 2>&1 & PIDS="$PIDS $!"
ip netns exec pnk8s-be ${DP} serve --port 9090 --name be9090 >/dev/null 2>&1 & PIDS="$PIDS $!"
i=0; until ip netns exec pnk8s-be ss -Htln 'sport = :9090' | grep -q . && ip netns exec pnk8s-be ss -Htln 'sport = :8080' | grep -q .; do i=$((i+1)); [ $i -gt 50 ] && exit 12; sleep 0.1; done

run install clisw datapath install --tc-dev sw-fe --tc-dev sw-be --tc-dev sw-ot --cgroup ${cg} --metrics-textfile ${tf} --metrics-interval 1
run refused cli datapath sync -f ${BLOG}
run after-refused cli datapath status --json
run partial cli datapath sync -f ${BLOG} --allow-partial --dry-run
run sync cli datapath sync -f ${SHOP}
run fe-be-8080 ip netns exec pnk8s-fe ${DP} probe --connect 198.18.2.20:8080 --timeout-ms 3000
run fe-vip in_cgroup ip netns exec pnk8s-fe ${DP} probe --connect 198.18.3.10:80 --timeout-ms 3000
# the frontend outside the cgroup: the ClusterIP is DNATed by tc_lb on sw-fe (a route and the backend's
# MAC for the VIP stand in for a node's routing), the reply reverse-NATed on sw-be
BEMAC=$(ip netns exec pnk8s-be cat /sys/class/net/eth0/address)
ip -n pnk8s-fe route add 198.18.3.10/32 dev eth0 && ip -n pnk8s-fe neigh add 198.18.3.10 lladdr "$BEMAC" dev eth0 || exit 13
run fe-vip-tc ip netns exec pnk8s-fe ${DP} probe --connect 198.18.3.10:80 --timeout-ms 3000
run forwarded clisw datapath observe --verdict forwarded --json
run fe-be-9090 ip netns exec pnk8s-fe ${DP} probe --connect 198.18.2.20:9090 --timeout-ms 1500
run ot-be-8080 ip netns exec pnk8s-ot ${DP} probe --connect 198.18.2.20:8080 --timeout-ms 1500
run ot-vip in_cgroup ip netns exec pnk8s-ot ${DP} probe --connect 198.18.3.10:80 --timeout-ms 1500
run observe clisw datapath observe --verdict dropped --json
run observe-text clisw datapath observe
# --follow: started before the traffic, it must report a drop that happens while it watches
( nsenter --net=/run/netns/pnk8s-sw ${process.execPath} ${CLI} datapath observe --follow --max 1 --json >${dir}/follow.out 2>&1; echo "exit $?" >>${dir}/follow.out ) & FOLLOW=$!
sleep 1.5
run late-probe ip netns exec pnk8s-ot ${DP} probe --connect 198.18.2.20:8080 --timeout-ms 500
i=0; while kill -0 $FOLLOW 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
kill $FOLLOW 2>/dev/null
run follow cat ${dir}/follow.out
run metrics clisw datapath metrics
sleep 2.5
run textfile cat ${tf}/prep_node_datapath.prom
run remove clisw datapath remove
run after-remove sh -c 'ls ${tf}; test -e ${PIDFILE} && echo pidfile-left || echo no-pidfile'
`;
  try {
    const r = spawnSync('unshare', ['--mount', 'sh', '-c', script], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' }, timeout: 240_000 });
    assert.equal(r.status, 0, `exit ${r.status}\n${r.stdout}\n${r.stderr}`);
    const s = sections(r.stdout);
    const get = (id: string) => {
      const x = s.get(id);
      assert.ok(x, `section ${id} missing in:\n${r.stdout}`);
      return x;
    };
    const ok0 = (id: string) => assert.equal(get(id).exit, 'exit 0', `${id}: ${get(id).out}`);

    ok0('install');
    assert.match(get('install').out, /metrics: .*prep_node_datapath\.prom rewritten every 1 s \(background process/);

    // refused: the whole input, with file, document, field path and why; nothing written
    assert.equal(get('refused').exit, 'exit 2', get('refused').out);
    assert.match(get('refused').out, /cnp-l7-get\.yaml:\d+:\d+: CiliumNetworkPolicy prod\/rule1 \(document 1\): spec\.ingress\[0\]\.toPorts\[0\]\.rules\.http: L7 HTTP rules/);
    assert.match(get('refused').out, /nothing was synced/);
    const st = JSON.parse(get('after-refused').out) as { maps: { name: string; entries?: number }[] };
    for (const m of ['policy', 'endpoints', 'services']) assert.equal(st.maps.find((x) => x.name === m)?.entries, 0, `${m} untouched by the refused sync`);
    ok0('partial');
    assert.match(get('partial').out, /left out \(--allow-partial\), 1:\n\s+.*cnp-l7-get\.yaml.*rules\.http: this rule is left out: the traffic it allows stays denied/);

    ok0('sync');
    assert.match(get('sync').out, /^local: synced: [1-9]\d* put, 0 deleted/m);
    assert.match(get('sync').out, /from 1 Namespace, 3 Pod, 1 Service, 1 EndpointSlice, 2 NetworkPolicy, 1 CiliumNetworkPolicy: 3 endpoints, 1 service ports/);

    // allowed: the frontend to the backend on 8080, directly and through the Service's ClusterIP
    const direct = probe(get('fe-be-8080'));
    assert.equal(direct.ok, true, JSON.stringify(direct));
    assert.match(direct.reply ?? '', /^be8080 198\.18\.2\.10:/);
    const vip = probe(get('fe-vip'));
    assert.equal(vip.ok, true, JSON.stringify(vip));
    assert.match(vip.reply ?? '', /^be8080 /);
    assert.equal(vip.peer, '198.18.3.10:80', 'the application sees the ClusterIP');
    const viaTc = probe(get('fe-vip-tc'));
    assert.equal(viaTc.ok, true, JSON.stringify(viaTc));
    assert.match(viaTc.reply ?? '', /^be8080 198\.18\.2\.10:/);
    assert.equal(viaTc.peer, '198.18.3.10:80', 'reverse NAT: the reply comes from the ClusterIP');

    // observe --verdict forwarded: one event per allowed flow (not per packet), with labels, the
    // Service and the rule that allowed it; only forwarded ones
    type Fwd = { verdict: string; hook: string; reason?: unknown; service?: string; direction: string | null; source: { ip: string; port: number; endpoint?: string; labels?: Record<string, string> }; destination: { ip: string; port: number; endpoint?: string; labels?: Record<string, string> }; policy?: { policy?: string; rule?: string } };
    ok0('forwarded');
    const fwdLines = get('forwarded').out.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const fwd = fwdLines.filter((l) => 'verdict' in l) as unknown as Fwd[];
    assert.ok(fwd.length > 0 && fwd.every((f) => f.verdict === 'forwarded' && f.reason === undefined), get('forwarded').out);
    const SVC = 'shop/backend:http (ClusterIP 198.18.3.10:80/tcp)';
    const RULE = { policy: 'NetworkPolicy shop/backend-from-frontend', rule: 'ingress[0]' };
    // the tc-translated connection: frontend -> ClusterIP -> backend pod, both ends labelled
    const tcSvc = fwd.filter((f) => f.hook === 'tc' && f.service === SVC);
    assert.equal(tcSvc.length, 1, `one event for the one tc-translated connection:\n${get('forwarded').out}`);
    assert.equal(tcSvc[0]!.source.endpoint, 'shop/frontend-7d4b9');
    assert.equal(tcSvc[0]!.source.labels?.app, 'frontend');
    assert.deepEqual([tcSvc[0]!.destination.ip, tcSvc[0]!.destination.port, tcSvc[0]!.destination.endpoint, tcSvc[0]!.destination.labels?.app], ['198.18.2.20', 8080, 'shop/backend-5c6f8', 'backend']);
    assert.equal(tcSvc[0]!.direction, 'ingress');
    assert.deepEqual(tcSvc[0]!.policy, RULE);
    // the direct connection: no service, the same rule
    const direct8080 = fwd.filter((f) => f.hook === 'tc' && !f.service && f.source.ip === '198.18.2.10' && f.destination.port === 8080);
    assert.ok(direct8080.length >= 1, get('forwarded').out);
    assert.deepEqual(direct8080[0]!.policy, RULE);
    // the socket-translated connection (frontend in the cgroup): connect4 names the Service and the backend
    const sock = fwd.filter((f) => f.hook === 'connect4' && f.service === SVC);
    assert.equal(sock.length, 1, get('forwarded').out);
    assert.equal(sock[0]!.destination.endpoint, 'shop/backend-5c6f8');
    assert.deepEqual(fwdLines.at(-1), { lost: 0 });

    // denied: 9090 is not allowed (default deny); "other" is denied by the cilium deny rule, also via the Service
    for (const id of ['fe-be-9090', 'ot-be-8080', 'ot-vip']) assert.equal(probe(get(id)).ok, false, `${id} must be dropped: ${get(id).out}`);

    // observe: the denied attempts, with reason, labels, policy
    ok0('observe');
    const lines = get('observe')
      .out.trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    type End = { ip: string; port: number; endpoint?: string; labels?: Record<string, string> };
    type F = { verdict: string; ifname?: string; hook: string; reason: { code: number; name: string }; source: End; destination: End; direction: string; policy?: { policy?: string; rule?: string; default_deny?: string[] } };
    const flows = lines.filter((l) => 'verdict' in l) as unknown as F[];
    const lost = lines.find((l) => 'lost' in l);
    assert.deepEqual(lost, { lost: 0 }, 'lost events are reported');
    const deny = flows.find((f) => f.reason.name === 'POLICY_DENY' && f.source.ip === '198.18.2.30' && f.destination.port === 8080);
    assert.ok(deny, `a POLICY_DENY flow from other in:\n${get('observe').out}`);
    assert.equal(deny.verdict, 'dropped');
    assert.equal(deny.reason.code, 1);
    assert.equal(deny.direction, 'ingress');
    assert.equal(deny.hook, 'tc');
    assert.equal(deny.ifname, 'sw-ot', 'dropped where it entered the switch, from the "other" pod');
    assert.equal(deny.source.endpoint, 'shop/other-6b7c1');
    assert.equal(deny.source.labels?.app, 'other');
    assert.equal(deny.destination.endpoint, 'shop/backend-5c6f8');
    assert.equal(deny.destination.labels?.app, 'backend');
    assert.deepEqual(deny.policy, { policy: 'CiliumNetworkPolicy shop/backend-deny-other', rule: 'ingressDeny[0]' });
    const dd = flows.find((f) => f.reason.name === 'POLICY_DEFAULT_DENY' && f.source.ip === '198.18.2.10' && f.destination.port === 9090);
    assert.ok(dd, `a POLICY_DEFAULT_DENY flow from the frontend to 9090 in:\n${get('observe').out}`);
    assert.equal(dd.reason.code, 2);
    assert.equal(dd.source.labels?.app, 'frontend');
    assert.deepEqual(dd.policy?.default_deny, ['CiliumNetworkPolicy shop/backend-deny-other', 'NetworkPolicy shop/backend-from-frontend', 'NetworkPolicy shop/default-deny-all']);
    assert.equal(get('observe-text').exit, 'exit 0');
    assert.match(get('observe-text').out, /^0 events lost since install$/m, 'the queue was drained by the first observe; lost is still shown');

    // --follow saw the drop that happened after it started
    const follow = get('follow').out.trim().split('\n');
    assert.equal(follow.at(-1), 'exit 0', get('follow').out);
    const late = follow.map((l) => (l.startsWith('{') ? (JSON.parse(l) as Partial<F>) : {})).find((f) => f.reason?.name === 'POLICY_DENY');
    assert.equal(late?.source?.endpoint, 'shop/other-6b7c1', get('follow').out);

    // metrics: strict exposition-format parse, the drops counted
    ok0('metrics');
    const m = parsePrometheusText(get('metrics').out);
    const sample = (fam: string, labels: Record<string, string> = {}) => m.get(fam)?.samples.find((x) => Object.entries(labels).every(([k, v]) => x.labels[k] === v))?.value;
    assert.equal(sample('prep_node_datapath_up'), 1);
    assert.deepEqual(get('metrics').out.split('\n').filter((l) => l.startsWith('# ')), familyHeaders(), 'every family, in order, HELP and TYPE as pinned');
    assert.ok((sample('prep_node_datapath_drops_total', { reason: 'POLICY_DENY' }) ?? 0) >= 3, get('metrics').out);
    assert.ok((sample('prep_node_datapath_drops_total', { reason: 'POLICY_DEFAULT_DENY' }) ?? 0) >= 1);
    assert.ok((sample('prep_node_datapath_drop_bytes_total', { reason: 'POLICY_DENY', code: '1' }) ?? 0) >= 120);
    assert.equal(sample('prep_node_datapath_map_entries', { map: 'endpoints' }), 3);
    assert.equal(sample('prep_node_datapath_map_entries', { map: 'services' }), 1);
    assert.equal(m.get('prep_node_datapath_drops_total')?.type, 'counter');
    assert.equal(sample('prep_node_datapath_program_attached', { program: 'tc_lb', attach: 'tc/ingress sw-be' }), 1);
    assert.equal(m.get('prep_node_datapath_program_attached')?.samples.length, 11, '8 cgroup programs (IPv4 and IPv6 socket hooks), tc_lb on 3 ports');
    // forwarded by service: tc counted the translated connection's packets (both ways) and bytes,
    // the socket programs the connections they translated (the frontend's and other's: other's is
    // translated at connect(), then dropped by policy at tc)
    const fwdPk = sample('prep_node_datapath_forwarded_packets_total', { service: SVC }) ?? 0;
    assert.ok(fwdPk >= 6, `a TCP exchange both ways through tc_lb: ${fwdPk}\n${get('metrics').out}`);
    assert.ok((sample('prep_node_datapath_forwarded_bytes_total', { service: SVC }) ?? 0) >= 40 * fwdPk);
    assert.equal(m.get('prep_node_datapath_forwarded_packets_total')?.type, 'counter');
    assert.equal(sample('prep_node_datapath_service_connections_total', { service: SVC }), 2);
    // the textfile, rewritten by the writer on the node since the drops: the same numbers
    ok0('textfile');
    const t = parsePrometheusText(get('textfile').out);
    assert.equal(t.get('prep_node_datapath_up')?.samples[0]?.value, 1);
    assert.deepEqual(get('textfile').out.split('\n').filter((l) => l.startsWith('# ')), familyHeaders(), 'the writer prints what datapath metrics prints');
    assert.equal(
      t.get('prep_node_datapath_drops_total')?.samples.find((x) => x.labels.reason === 'POLICY_DENY')?.value,
      sample('prep_node_datapath_drops_total', { reason: 'POLICY_DENY' }),
    );
    assert.equal(t.get('prep_node_datapath_map_entries')?.samples.find((x) => x.labels.map === 'policy')?.value, sample('prep_node_datapath_map_entries', { map: 'policy' }));
    assert.equal(t.get('prep_node_datapath_forwarded_packets_total')?.samples.find((x) => x.labels.service === SVC)?.value, fwdPk, 'the writer names services from the index too');

    ok0('remove');
    assert.match(get('remove').out, /metrics textfile writer stopped and its file removed/);
    assert.equal(get('after-remove').out.trim(), 'no-pidfile');
  } finally {
    // the writer is a background process in the test's mount namespace: make sure it is gone
    if (existsSync(PIDFILE)) {
      const pid = Number(readFileSync(PIDFILE, 'utf8').trim());
      if (pid > 0) {
        try {
          process.kill(pid);
        } catch {
          /* already gone */
        }
      }
      rmSync(PIDFILE, { force: true });
    }
    if (existsSync(cg)) rmdirSync(cg);
    rmSync(dir, { recursive: true, force: true });
  }
});

// Kubernetes' e2e "should allow egress access to server in CIDR block" and "should enforce except
// clause while egress access to server in CIDR block" through the real datapath: a NetworkPolicy on
// the client allows egress to an ipBlock that holds a pod's own address. The pod is reached (before,
// its address resolved to its label set only and the connection was denied); a pod with the same
// labels outside the block, or in its except, is not.
//
//     pnipb-a  [eth0 198.18.2.10] ── sw-a ──┐
//     pnipb-b  [eth0 198.18.2.20] ── sw-b ──┤ br0 (pnipb-sw), tc_lb on every sw-* port
//     pnipb-b2 [eth0 198.18.2.30] ── sw-b2 ─┘  (b2: b's labels)
test('k8s ipBlock: egress to a CIDR that holds a pod reaches that pod, and no pod outside it or in its except', { skip: notRoot }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'pn-dp-ipb-'));
  const cg = join(cgroup2Root(), `pn-dp-ipb-${process.pid}`);
  mkdirSync(cg);
  mkdirSync('/var/lib/prep-node', { recursive: true });
  const pods = [
    ['a', '198.18.2.10', 'client'],
    ['b', '198.18.2.20', 'server'],
    ['b2', '198.18.2.30', 'server'],
  ] as const;
  const manifests = (block: string) =>
    [
      'apiVersion: v1\nkind: Namespace\nmetadata: {name: x}',
      ...pods.map(([n, ip, app]) => `apiVersion: v1\nkind: Pod\nmetadata: {name: ${n}, namespace: x, labels: {app: ${app}}}\nspec: {containers: [{name: c, image: x}]}\nstatus: {phase: Running, podIP: ${ip}}`),
      `apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: client-egress, namespace: x}\nspec:\n  podSelector: {matchLabels: {app: client}}\n  policyTypes: [Egress]\n  egress: [{to: [{ipBlock: ${block}}]}]`,
    ].join('\n---\n');
  mkdirSync(join(dir, 'cidr'));
  mkdirSync(join(dir, 'except'));
  writeFileSync(join(dir, 'cidr', 'm.yaml'), manifests('{cidr: 198.18.2.20/32}'));
  writeFileSync(join(dir, 'except', 'm.yaml'), manifests('{cidr: 198.18.2.0/24, except: [198.18.2.30/32]}'));
  const ns = ['pnipb-sw', ...pods.map(([n]) => `pnipb-${n}`)];
  const script = `set -u
mount --make-rprivate /
mount -t bpf bpf /sys/fs/bpf
mount -t tmpfs tmpfs /var/lib/prep-node
PIDS=""
cleanup() {
  for p in $PIDS; do kill "$p" 2>/dev/null; done
  for p in $PIDS; do wait "$p" 2>/dev/null; done
  nsenter --net=/run/netns/pnipb-sw ${process.execPath} ${CLI} datapath remove >/dev/null 2>&1
  for n in ${ns.join(' ')}; do ip netns del "$n" 2>/dev/null; done
}
trap cleanup EXIT
run() { id=$1; shift; echo "@@ $id $*"; "$@" 2>&1; echo "@@ exit $?"; }
cli() { ${process.execPath} ${CLI} "$@"; }
for n in ${ns.join(' ')}; do ip netns del "$n" 2>/dev/null; done
ip netns add pnipb-sw && ip -n pnipb-sw link set lo up && ip -n pnipb-sw link add br0 type bridge && ip -n pnipb-sw link set br0 up || exit 10
${pods
  .map(
    ([n, ip]) => `ip netns add pnipb-${n} && ip -n pnipb-${n} link set lo up &&
ip -n pnipb-sw link add sw-${n} type veth peer name eth0 netns pnipb-${n} &&
ip -n pnipb-sw link set sw-${n} master br0 up &&
ip -n pnipb-${n} addr add ${ip}/24 dev eth0 && ip -n pnipb-${n} link set eth0 up || exit 11`,
  )
  .join('\n')}
for n in b b2; do ip netns exec pnipb-$n ${DP} serve --port 8080 --name $n >/dev/null 2>&1 & PIDS="$PIDS $!"; done
i=0; until ip netns exec pnipb-b ss -Htln 'sport = :8080' | grep -q . && ip netns exec pnipb-b2 ss -Htln 'sport = :8080' | grep -q .; do i=$((i+1)); [ $i -gt 50 ] && exit 12; sleep 0.1; done
run install nsenter --net=/run/netns/pnipb-sw ${process.execPath} ${CLI} datapath install --tc-dev sw-a --tc-dev sw-b --tc-dev sw-b2 --cgroup ${cg}
run sync-cidr cli datapath sync -f ${dir}/cidr
run cidr-b ip netns exec pnipb-a ${DP} probe --connect 198.18.2.20:8080 --timeout-ms 3000
run cidr-b2 ip netns exec pnipb-a ${DP} probe --connect 198.18.2.30:8080 --timeout-ms 1500
run sync-except cli datapath sync -f ${dir}/except
run except-b ip netns exec pnipb-a ${DP} probe --connect 198.18.2.20:8080 --timeout-ms 3000
run except-b2 ip netns exec pnipb-a ${DP} probe --connect 198.18.2.30:8080 --timeout-ms 1500
run b2-b ip netns exec pnipb-b2 ${DP} probe --connect 198.18.2.20:8080 --timeout-ms 3000
`;
  try {
    const r = spawnSync('unshare', ['--mount', 'sh', '-c', script], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' }, timeout: 120_000 });
    assert.equal(r.status, 0, `exit ${r.status}\n${r.stdout}\n${r.stderr}`);
    const s = sections(r.stdout);
    const get = (id: string) => {
      const x = s.get(id);
      assert.ok(x, `section ${id} missing in:\n${r.stdout}`);
      return x;
    };
    for (const id of ['install', 'sync-cidr', 'sync-except']) assert.equal(get(id).exit, 'exit 0', `${id}: ${get(id).out}`);
    const cidrB = probe(get('cidr-b'));
    assert.equal(cidrB.ok, true, `should allow egress access to server in CIDR block: ${JSON.stringify(cidrB)}`);
    assert.match(cidrB.reply ?? '', /^b 198\.18\.2\.10:/);
    assert.equal(probe(get('cidr-b2')).ok, false, `b2 has b's labels but is outside the block: ${get('cidr-b2').out}`);
    const exceptB = probe(get('except-b'));
    assert.equal(exceptB.ok, true, JSON.stringify(exceptB));
    assert.equal(probe(get('except-b2')).ok, false, `should enforce except clause while egress access to server in CIDR block: ${get('except-b2').out}`);
    assert.equal(probe(get('b2-b')).ok, true, 'b2 is not selected by the policy');
  } finally {
    if (existsSync(cg)) rmdirSync(cg);
    rmSync(dir, { recursive: true, force: true });
  }
});
