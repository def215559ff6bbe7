// Kubernetes manifests through the CLI against a real Debian 12 VM (Debian's own 6.1 kernel): the VM tier
// of test/kernel/datapath-k8s.test.ts. The pods of test/fixtures/k8s/shop/ are network namespaces on the
// guest behind a bridge, built by a shell script run over plain ssh as root that stays running for the
// whole file and removes everything in a trap when its stdin closes (and after() removes it all again).
// The CLI runs on this machine over SSH as the sudo user `prep`: `datapath install` with tc_lb on every
// switch port, a refused sync of test/fixtures/k8s/blog/ (an HTTP-method CiliumNetworkPolicy) that
// writes nothing, `datapath sync -f test/fixtures/k8s/shop/`, then real TCP connections from the pods
// (the loader's own probe, run on the guest) are allowed and denied as the manifests say, `observe
// --verdict forwarded --json` shows the allowed flow with its Service, `observe --verdict dropped --json`
// each denied attempt with its reason and the pods' labels, `metrics` parses as strict Prometheus text
// with the drops counted, and `datapath remove` leaves nothing.
//
// The switch ports are in the guest's root network namespace (not in a switch namespace as on the
// kernel tier): the CLI reaches the node over SSH and runs the loader there, so --tc-dev names devices
// of the namespace sshd runs in. The socket programs sit on the cgroup v2 root (the default), so every
// connect() on the guest, the pods' included, is translated at the socket.
//
//     pnk8s-fe [eth0 198.18.2.10] ── sw-fe ──┐
//     pnk8s-be [eth0 198.18.2.20] ── sw-be ──┤ pnk8s-br0 (guest root netns), tc_lb on every sw-* port
//     pnk8s-ot [eth0 198.18.2.30] ── sw-ot ──┘
import { after, before, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO, bootVm, clientConfig, runCli, type Backend, type Ran, type Vm } from '../helpers/vm.js';
import { sshArgv, sshVm, sshVmOk } from '../helpers/vm-reboot.js';
import { parsePrometheusText } from '../helpers/prometheus-text.js';
import { REMOTE_BIN_DIR } from '../../src/datapath/loader.js';

// As test/vagrant/datapath.test.ts: QEMU unless PREP_NODE_VM_BACKENDS names more.
const backends = (process.env.PREP_NODE_VM_BACKENDS ?? 'qemu').split(',') as Backend[];
const SHOP = join(REPO, 'test/fixtures/k8s/shop');
const BLOG = join(REPO, 'test/fixtures/k8s/blog');
const SVC = 'shop/backend:http (ClusterIP 198.18.3.10:80/tcp)';

const NS = ['pnk8s-fe', 'pnk8s-be', 'pnk8s-ot'];
const PODS = [
  ['fe', '198.18.2.10'],
  ['be', '198.18.2.20'],
  ['ot', '198.18.2.30'],
] as const;
const LINKS = ['sw-fe', 'sw-be', 'sw-ot', 'pnk8s-br0'];
const SCRIPT = '/tmp/pnk8s-topology.sh';
const GUEST_PATH = 'PATH=/usr/sbin:/sbin:/usr/bin:/bin';

/** Everything the topology may leave, removed (run by the script's trap and again by after()). */
const REMOVE_TOPOLOGY = `for n in ${NS.join(' ')}; do ip netns del "$n" 2>/dev/null; done
for l in ${LINKS.join(' ')}; do ip link del "$l" 2>/dev/null; done`;

/**
 * The topology, on the guest as root: namespaces, the bridge, the backend's servers on 8080 and 9090
 * (the uploaded loader's `serve`). Prints `ready` and waits for its stdin to close; the trap removes all.
 */
const TOPOLOGY = `set -u
export ${GUEST_PATH}
DP=$(ls ${REMOTE_BIN_DIR}/prep-node-dp-* | head -1)
[ -x "$DP" ] || { echo "no loader in ${REMOTE_BIN_DIR}"; exit 9; }
PIDS=""
cleanup() {
  trap - EXIT HUP INT TERM
  for p in $PIDS; do kill "$p" 2>/dev/null; done
  for p in $PIDS; do wait "$p" 2>/dev/null; done
  ${REMOVE_TOPOLOGY.replace(/\n/g, '\n  ')}
  rm -f ${SCRIPT}
  echo cleaned
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM
${REMOVE_TOPOLOGY}
ip link add pnk8s-br0 type bridge && ip link set pnk8s-br0 up || exit 10
${PODS.map(
  ([n, ip]) => `ip netns add pnk8s-${n} && ip -n pnk8s-${n} link set lo up &&
ip link add sw-${n} type veth peer name eth0 netns pnk8s-${n} &&
ip link set sw-${n} master pnk8s-br0 up &&
ip -n pnk8s-${n} addr add ${ip}/24 dev eth0 && ip -n pnk8s-${n} link set eth0 up || exit 11`,
).join('\n')}
ip netns exec pnk8s-be "$DP" serve --port 8080 --name be8080 >/dev/null 2>&1 </dev/null & PIDS="$PIDS $!"
ip netns exec pnk8s-be "$DP" serve --port 9090 --name be9090 >/dev/null 2>&1 </dev/null & PIDS="$PIDS $!"
i=0; until ip netns exec pnk8s-be ss -Htln 'sport = :9090' | grep -q . && ip netns exec pnk8s-be ss -Htln 'sport = :8080' | grep -q .; do i=$((i+1)); [ $i -gt 300 ] && exit 12; sleep 0.1; done
echo ready
cat >/dev/null
`;

interface ProbeResult {
  ok: boolean;
  errno?: string | number | null;
  reply?: string | null;
  peer?: string | null;
}

type End = { ip: string; port: number; endpoint?: string; labels?: Record<string, string> };
type Flow = {
  verdict: string;
  hook: string;
  ifname?: string;
  direction: string | null;
  service?: string;
  reason?: { code: number; name: string };
  source: End;
  destination: End;
  policy?: { policy?: string; rule?: string; default_deny?: string[] };
};

function jsonLines(out: string): Record<string, unknown>[] {
  return out
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

for (const backend of backends) {
  describe(`k8s manifests through the datapath on a Debian 12 VM (${backend})`, { timeout: 1_500_000 }, () => {
    let vm: Vm | undefined;
    let dir: string;
    let config: string;
    let target: string;
    let topo: ChildProcessWithoutNullStreams | undefined;
    let topoOut = '';

    function dp(t: TestContext, ...args: string[]): Ran {
      const t0 = Date.now();
      const r = runCli(vm!, ['datapath', ...args, '-F', config, target]);
      t.diagnostic(`datapath ${args.join(' ')}: exit ${r.status}, ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      return r;
    }

    /** The loader's probe from a pod's namespace on the guest (root over plain ssh). */
    function probe(pod: string, to: string, timeoutMs: number): ProbeResult {
      const r = sshVm(vm!, `export ${GUEST_PATH}; ip netns exec pnk8s-${pod} ${REMOTE_BIN_DIR}/prep-node-dp-* probe --connect ${to} --timeout-ms ${timeoutMs}`);
      const last = r.stdout.trim().split('\n').pop() ?? '';
      let doc: { results?: ProbeResult[] } = {};
      try {
        doc = JSON.parse(last) as { results?: ProbeResult[] };
      } catch {
        /* asserted below */
      }
      const res = doc.results?.[0];
      assert.ok(res, `probe ${pod} → ${to}: exit ${r.status}\n${r.stdout}\n${r.stderr}`);
      return res;
    }

    /** Close the topology script's stdin: its trap removes everything. Resolves when it has exited. */
    async function stopTopology(): Promise<void> {
      const child = topo;
      if (!child) return;
      topo = undefined;
      if (child.exitCode !== null || child.signalCode !== null) return;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          child.kill();
          resolve();
        }, 60_000);
        child.on('close', () => {
          clearTimeout(timer);
          resolve();
        });
        child.stdin.end();
      });
    }

    before(async () => {
      vm = await bootVm(backend);
      dir = mkdtempSync(join(tmpdir(), 'prep-node-vm-k8s-'));
      config = clientConfig(dir, vm, vm.target.knownHosts);
      target = vm.spec(vm.target.sudoUser);
    });
    after(async () => {
      try {
        await stopTopology();
        if (vm) sshVm(vm, `export ${GUEST_PATH}; ${REMOVE_TOPOLOGY}; rm -f ${SCRIPT}; true`);
      } finally {
        await vm?.down();
        if (dir) rmSync(dir, { recursive: true, force: true });
      }
    });

    test('the pods as network namespaces behind a bridge on the guest, install with tc_lb on every switch port', async (t) => {
      // the first datapath command uploads the loader; the topology's servers are that loader
      const st0 = dp(t, 'status');
      assert.equal(st0.status, 0, st0.stderr);
      assert.match(st0.stdout, /: not installed$/m);

      sshVmOk(vm!, `cat > ${SCRIPT}`, { input: TOPOLOGY });
      const [cmd, ...args] = sshArgv(vm!, vm!.target.rootUser, `bash ${SCRIPT}`);
      const child = spawn(cmd!, args, { stdio: ['pipe', 'pipe', 'pipe'] });
      topo = child;
      child.stdout.setEncoding('utf8');
      child.stderr.setEncoding('utf8');
      child.stdout.on('data', (d: string) => (topoOut += d));
      child.stderr.on('data', (d: string) => (topoOut += d));
      const t0 = Date.now();
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`the topology was not ready within 180 s:\n${topoOut}`)), 180_000);
        const check = () => {
          if (/^ready$/m.test(topoOut)) {
            clearTimeout(timer);
            resolve();
          }
        };
        child.stdout.on('data', check);
        child.on('close', (code) => {
          clearTimeout(timer);
          reject(new Error(`the topology script exited ${code}:\n${topoOut}`));
        });
      });
      t.diagnostic(`topology ready in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      const netns = sshVmOk(vm!, `export ${GUEST_PATH}; ip netns list`);
      for (const n of NS) assert.match(netns, new RegExp(`^${n}\\b`, 'm'));

      const install = dp(t, 'install', '--tc-dev', 'sw-fe', '--tc-dev', 'sw-be', '--tc-dev', 'sw-ot');
      assert.equal(install.status, 0, install.stdout + install.stderr);
      assert.match(install.stdout, /: installed: programs attached, maps pinned under \/sys\/fs\/bpf\/prep-node\//);
      const st = JSON.parse(dp(t, 'status', '--json').stdout) as { installed: boolean; tc_devs?: string[]; programs: { name: string; attach?: string; attached?: boolean }[] };
      assert.equal(st.installed, true);
      assert.deepEqual(st.tc_devs, ['sw-fe', 'sw-be', 'sw-ot']);
      for (const dev of ['sw-fe', 'sw-be', 'sw-ot']) assert.ok(st.programs.some((p) => p.name === 'tc_lb' && p.attach === `tc/ingress ${dev}` && p.attached === true), JSON.stringify(st.programs));
    });

    test('refused: the blog manifests (an HTTP-method CiliumNetworkPolicy) exit 2 and nothing is synced', (t) => {
      const r = dp(t, 'sync', '-f', BLOG);
      const out = r.stdout + r.stderr;
      assert.equal(r.status, 2, out);
      assert.match(out, /cnp-l7-get\.yaml:\d+:\d+: CiliumNetworkPolicy prod\/rule1 \(document 1\): spec\.ingress\[0\]\.toPorts\[0\]\.rules\.http: L7 HTTP rules/);
      assert.match(out, /nothing was synced/);
      const st = JSON.parse(dp(t, 'status', '--json').stdout) as { maps: { name: string; entries?: number }[] };
      for (const m of ['policy', 'endpoints', 'services']) assert.equal(st.maps.find((x) => x.name === m)?.entries, 0, `${m} untouched by the refused sync`);
    });

    test('sync the shop manifests; the frontend reaches the backend on 8080, directly and through the ClusterIP', (t) => {
      const sync = dp(t, 'sync', '-f', SHOP);
      assert.equal(sync.status, 0, sync.stdout + sync.stderr);
      assert.match(sync.stdout, /: synced: [1-9]\d* put, 0 deleted/);
      assert.match(sync.stdout, /from 1 Namespace, 3 Pod, 1 Service, 1 EndpointSlice, 2 NetworkPolicy, 1 CiliumNetworkPolicy: 3 endpoints, 1 service ports/);

      const direct = probe('fe', '198.18.2.20:8080', 5000);
      assert.equal(direct.ok, true, JSON.stringify(direct));
      assert.match(direct.reply ?? '', /^be8080 198\.18\.2\.10:/);
      const vip = probe('fe', '198.18.3.10:80', 5000);
      assert.equal(vip.ok, true, JSON.stringify(vip));
      assert.match(vip.reply ?? '', /^be8080 198\.18\.2\.10:/);
      assert.equal(vip.peer, '198.18.3.10:80', 'the application sees the ClusterIP');
      // and from plain bash, not the loader: /dev/tcp to the ClusterIP from the frontend pod
      const bash = sshVm(vm!, `export ${GUEST_PATH}; ip netns exec pnk8s-fe timeout 10 bash -c 'exec 3<>/dev/tcp/198.18.3.10/80 && head -1 <&3' 2>&1`);
      assert.equal(bash.status, 0, bash.stdout + bash.stderr);
      assert.match(bash.stdout, /^be8080 /);
    });

    test('observe --verdict forwarded --json: the allowed flows, with the Service, the labels and the rule', (t) => {
      const r = dp(t, 'observe', '--verdict', 'forwarded', '--json');
      assert.equal(r.status, 0, r.stdout + r.stderr);
      const lines = jsonLines(r.stdout);
      const fwd = lines.filter((l) => 'verdict' in l) as unknown as Flow[];
      assert.ok(fwd.length > 0 && fwd.every((f) => f.verdict === 'forwarded' && f.reason === undefined), r.stdout);
      const RULE = { policy: 'NetworkPolicy shop/backend-from-frontend', rule: 'ingress[0]' };
      // the ClusterIP connections, translated at connect() (the socket programs are on the cgroup root)
      const sock = fwd.filter((f) => f.hook === 'connect4' && f.service === SVC);
      assert.ok(sock.length >= 1, `a connect4 event for the Service in:\n${r.stdout}`);
      assert.equal(sock[0]!.destination.endpoint, 'shop/backend-5c6f8');
      // at tc on the switch port: the frontend to the backend on 8080, labelled, with the allowing rule
      const tc = fwd.filter((f) => f.hook === 'tc' && f.source.ip === '198.18.2.10' && f.destination.ip === '198.18.2.20' && f.destination.port === 8080);
      assert.ok(tc.length >= 1, `a tc event frontend → backend:8080 in:\n${r.stdout}`);
      assert.equal(tc[0]!.source.endpoint, 'shop/frontend-7d4b9');
      assert.equal(tc[0]!.source.labels?.app, 'frontend');
      assert.equal(tc[0]!.destination.endpoint, 'shop/backend-5c6f8');
      assert.equal(tc[0]!.destination.labels?.app, 'backend');
      assert.deepEqual(tc[0]!.policy, RULE);
      assert.deepEqual(lines.at(-1), { lost: 0 });
    });

    test('denied: the frontend on 9090 (default deny), "other" on 8080 and through the ClusterIP (cilium deny)', () => {
      for (const [pod, to] of [
        ['fe', '198.18.2.20:9090'],
        ['ot', '198.18.2.20:8080'],
        ['ot', '198.18.3.10:80'],
      ] as const) {
        const p = probe(pod, to, 1500);
        assert.equal(p.ok, false, `${pod} → ${to} must be dropped: ${JSON.stringify(p)}`);
      }
      const bash = sshVm(vm!, `export ${GUEST_PATH}; ip netns exec pnk8s-ot timeout 5 bash -c 'exec 3<>/dev/tcp/198.18.2.20/8080 && head -1 <&3' 2>&1`);
      assert.notEqual(bash.status, 0, `other → backend:8080 from bash must not connect: ${bash.stdout}`);
    });

    test('observe --verdict dropped --json: each denied attempt with its reason, the pods\' labels and the policy', (t) => {
      const r = dp(t, 'observe', '--verdict', 'dropped', '--json');
      assert.equal(r.status, 0, r.stdout + r.stderr);
      const lines = jsonLines(r.stdout);
      const flows = lines.filter((l) => 'verdict' in l) as unknown as Flow[];
      assert.ok(flows.every((f) => f.verdict === 'dropped'), r.stdout);
      const deny = flows.find((f) => f.reason?.name === 'POLICY_DENY' && f.source.ip === '198.18.2.30' && f.destination.port === 8080);
      assert.ok(deny, `a POLICY_DENY flow from other in:\n${r.stdout}`);
      assert.equal(deny.reason?.code, 1);
      assert.equal(deny.hook, 'tc');
      assert.equal(deny.direction, 'ingress');
      assert.equal(deny.ifname, 'sw-ot', 'dropped where it entered the switch, from the "other" pod');
      assert.equal(deny.source.endpoint, 'shop/other-6b7c1');
      assert.equal(deny.source.labels?.app, 'other');
      assert.equal(deny.destination.endpoint, 'shop/backend-5c6f8');
      assert.equal(deny.destination.labels?.app, 'backend');
      assert.deepEqual(deny.policy, { policy: 'CiliumNetworkPolicy shop/backend-deny-other', rule: 'ingressDeny[0]' });
      const dd = flows.find((f) => f.reason?.name === 'POLICY_DEFAULT_DENY' && f.source.ip === '198.18.2.10' && f.destination.port === 9090);
      assert.ok(dd, `a POLICY_DEFAULT_DENY flow from the frontend to 9090 in:\n${r.stdout}`);
      assert.equal(dd.reason?.code, 2);
      assert.equal(dd.ifname, 'sw-fe');
      assert.equal(dd.source.labels?.app, 'frontend');
      assert.equal(dd.destination.labels?.app, 'backend');
      assert.deepEqual(dd.policy?.default_deny, ['CiliumNetworkPolicy shop/backend-deny-other', 'NetworkPolicy shop/backend-from-frontend', 'NetworkPolicy shop/default-deny-all']);
      assert.deepEqual(lines.find((l) => 'lost' in l), { lost: 0 });
    });

    test('metrics: strict Prometheus text, the drops counted, the Service forwarded, the maps filled', (t) => {
      const r = dp(t, 'metrics');
      assert.equal(r.status, 0, r.stdout + r.stderr);
      const m = parsePrometheusText(r.stdout);
      const sample = (fam: string, labels: Record<string, string> = {}) => m.get(fam)?.samples.find((x) => Object.entries(labels).every(([k, v]) => x.labels[k] === v))?.value;
      assert.equal(sample('prep_node_datapath_up'), 1);
      assert.equal(m.get('prep_node_datapath_drops_total')?.type, 'counter');
      const deny = sample('prep_node_datapath_drops_total', { reason: 'POLICY_DENY' }) ?? 0;
      const dd = sample('prep_node_datapath_drops_total', { reason: 'POLICY_DEFAULT_DENY' }) ?? 0;
      t.diagnostic(`drops: POLICY_DENY ${deny}, POLICY_DEFAULT_DENY ${dd}`);
      assert.ok(deny >= 3, `other's attempts (direct, ClusterIP, bash), with retransmits:\n${r.stdout}`);
      assert.ok(dd >= 1, r.stdout);
      assert.ok((sample('prep_node_datapath_drop_bytes_total', { reason: 'POLICY_DENY', code: '1' }) ?? 0) > 0);
      assert.equal(sample('prep_node_datapath_map_entries', { map: 'endpoints' }), 3);
      assert.equal(sample('prep_node_datapath_map_entries', { map: 'services' }), 1);
      assert.ok((sample('prep_node_datapath_service_connections_total', { service: SVC }) ?? 0) >= 2, 'the ClusterIP connections translated at connect()');
      assert.equal(sample('prep_node_datapath_program_attached', { program: 'tc_lb', attach: 'tc/ingress sw-be' }), 1);
      assert.equal(m.get('prep_node_datapath_program_attached')?.samples.length, 11, '8 cgroup programs (IPv4 and IPv6 socket hooks), tc_lb on 3 ports');
    });

    test('remove, the topology script removes the pods: nothing of the test is left on the guest', async (t) => {
      const remove = dp(t, 'remove');
      assert.equal(remove.status, 0, remove.stdout + remove.stderr);
      assert.match(remove.stdout, /: removed: programs detached, pins and maps gone/);
      await stopTopology();
      assert.match(topoOut, /^cleaned$/m, `the topology script's trap ran:\n${topoOut}`);
      const left = sshVmOk(
        vm!,
        `export ${GUEST_PATH}
echo "netns:$(ip netns list | grep pnk8s || true)"
echo "links:$(ip -o link show | grep -E ' (sw-|pnk8s)' || true)"
echo "bpffs:$(ls -A /sys/fs/bpf)"
echo "pin:$(test -e /sys/fs/bpf/prep-node && echo present || true)"
echo "clsact:$(tc qdisc show | grep clsact || true)"
echo "procs:$(ps -eo comm= | grep '^prep-node-dp' || true)"
echo "script:$(test -e ${SCRIPT} && echo present || true)"`,
      );
      assert.deepEqual(left.trim().split('\n'), ['netns:', 'links:', 'bpffs:', 'pin:', 'clsact:', 'procs:', 'script:'], left);
      const st = dp(t, 'status');
      assert.equal(st.status, 0, st.stderr);
      assert.match(st.stdout, /: not installed$/m);
    });
  });
}
