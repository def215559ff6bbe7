// The agent as one executable on a real Debian 12 VM (no Node.js on the guest), from its
// systemd unit: `prep-node agent install` over SSH as the sudo user `prep` uploads the single
// executable (`make sea`, built here when stale), the unit starts it, and it follows the fake API server
// (src/bench/fake-apiserver.ts, a stand-in speaking the real wire protocol: no kube-apiserver can run
// here) on this machine's loopback, reached from the guest through `ssh -R` (the guest's 127.0.0.1:16443
// → this machine's 127.0.0.1:<port>). A Service from the API server then serves a connection from an
// ordinary program on the guest through the datapath the agent installed; `agent remove` leaves every
// file under /etc, /usr/local, /var/lib/prep-node and /sys/fs/bpf as it was, byte for byte.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, bootVm, clientConfig, runCli, type Backend, type Vm } from '../helpers/vm.js';
import { sshArgv, sshVm, sshVmOk } from '../helpers/vm-reboot.js';
import { ensureSea } from '../helpers/sea.js';
import { FakeApiServer, endpointSlice, namespace, node, service } from '../../src/bench/fake-apiserver.js';
import { AGENT_DIR, AGENT_KUBECONFIG, AGENT_UNIT } from '../../src/agent/install.js';

const backends = (process.env.PREP_NODE_VM_BACKENDS ?? 'qemu').split(',') as Backend[];
const GUEST_API_PORT = 16443;
const VIP = '10.96.0.23';
const VIP_PORT = 2223;
const NODE = 'agent-vm';

// Everything install may touch, as root sees it: every path with its type, mode, owner and link
// target, every regular file's sha256, and systemd's view of prep-node units.
const SNAPSHOT = `
for r in /etc /usr/local /var/lib/prep-node /sys/fs/bpf; do [ -e "$r" ] && find "$r" -printf '%p %y %m %u:%g %l\\n'; done | sort
find /etc /usr/local /var/lib/prep-node -type f -exec sha256sum {} + 2>/dev/null | sort
systemctl list-units --all --plain --no-legend 'prep-node*'
systemctl list-unit-files --plain --no-legend 'prep-node*'
true
`;

/** The guest's reply to GET path on the agent's endpoints (status line and body), or why not. */
function httpGet(vm: Vm, path: string): string {
  const r = sshVm(vm, `timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/10260 && printf "GET ${path} HTTP/1.0\\r\\n\\r\\n" >&3 && cat <&3' 2>&1`);
  return r.stdout;
}

/** A connect() to the VIP from an unprivileged shell on the guest: the first line it reads. */
function connectVip(vm: Vm): { ok: boolean; text: string } {
  const r = sshVm(vm, `timeout 10 bash -c 'exec 3<>/dev/tcp/${VIP}/${VIP_PORT} && head -1 <&3' 2>&1`, { user: vm.target.sudoUser });
  return { ok: r.status === 0, text: r.stdout.trim() };
}

async function until<T>(what: string, timeoutMs: number, probe: () => T | undefined): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2000));
  }
}

// node-problem-detector's files as `prep-node npd` writes them, uploaded to a guest directory outside
// what SNAPSHOT compares; the rules run as NPD's custom plugin monitor runs them (NPD's
// pkg/custompluginmonitor/plugin: the rule's path and args, as root, killed after pluginConfig's
// timeout, stdout cut at max_output_length, exit 0 OK, 1 NonOK, anything else Unknown).
const NPD_DIR = '/opt/prep-node-npd';

interface NpdMonitor {
  pluginConfig: { timeout: string; max_output_length: number };
  rules: { type: string; condition: string; reason: string; path: string; args: string[]; timeout?: string }[];
}

/** Each rule run on the guest: condition → exit code and stdout. */
function runNpdRules(vm: Vm, monitor: NpdMonitor): Map<string, { code: number; out: string }> {
  const secs = (d: string) => Number(/^(\d+)s$/.exec(d)?.[1] ?? NaN);
  const script = monitor.rules
    .map((r) => `echo "@@ ${r.condition}"; timeout ${secs(r.timeout ?? monitor.pluginConfig.timeout)} ${r.path} ${r.args.join(' ')}; echo "@@ exit $?"`)
    .join('\n');
  const out = sshVmOk(vm, 'sh -s', { input: `${script}\n` });
  const res = new Map<string, { code: number; out: string }>();
  for (const m of out.matchAll(/^@@ (\S+)\n([\s\S]*?)^@@ exit (\d+)$/gm)) res.set(m[1]!, { code: Number(m[3]), out: m[2]! });
  assert.equal(res.size, monitor.rules.length, out);
  for (const [cond, r] of res) {
    assert.ok([0, 1, 2].includes(r.code), `${cond}: exit ${r.code} (NPD reads 0, 1, 2)`);
    assert.match(r.out, /^[^\n]+\n$/, `${cond}: one line: ${JSON.stringify(r.out)}`);
    assert.ok(Buffer.byteLength(r.out.trimEnd()) <= monitor.pluginConfig.max_output_length, `${cond}: within max_output_length: ${r.out}`);
  }
  return res;
}

for (const backend of backends) {
  describe(`the agent from its systemd unit on a Debian 12 VM (${backend})`, { timeout: 1_500_000 }, () => {
    let vm: Vm;
    let dir: string;
    let config: string;
    let target: string;
    let kubeconfig: string;
    let forward: ChildProcess | undefined;
    let before0: string;
    let monitor: NpdMonitor;
    const api = new FakeApiServer();

    before(async () => {
      ensureSea();
      await api.start();
      vm = await bootVm(backend);
      dir = mkdtempSync(join(tmpdir(), 'prep-node-vm-agent-'));
      config = clientConfig(dir, vm, vm.target.knownHosts);
      target = vm.spec(vm.target.sudoUser);
      // the guest's 127.0.0.1:16443 → the fake API server on this machine's loopback
      const [cmd, ...args] = sshArgv(vm, vm.target.rootUser, 'sleep 3600');
      const at = args.indexOf('-p');
      args.splice(at, 0, '-o', 'ExitOnForwardFailure=yes', '-R', `127.0.0.1:${GUEST_API_PORT}:127.0.0.1:${api.port}`);
      forward = spawn(cmd!, args, { stdio: 'ignore' });
      // the guest's address is the Service's backend: its own sshd, reached only through the VIP
      const guestIp = sshVmOk(vm, "ip -4 -o addr show dev eth0 | awk '{print $4}' | cut -d/ -f1").trim();
      api.apply(namespace('default'));
      api.apply(node(NODE, guestIp));
      api.apply(service('default', 'guest-ssh', VIP, [{ name: 'ssh', port: VIP_PORT, targetPort: 22 }]));
      api.apply(endpointSlice('default', 'guest-ssh', 'a', [{ name: 'ssh', port: 22 }], [{ ip: guestIp }]));
      kubeconfig = join(dir, 'kubeconfig');
      api.writeKubeconfig(kubeconfig);
      // the kubeconfig the node gets names the forwarded port on the guest's loopback
      const kc = JSON.parse(readFileSync(kubeconfig, 'utf8')) as { clusters: { cluster: { server: string } }[] };
      kc.clusters[0]!.cluster.server = `http://127.0.0.1:${GUEST_API_PORT}`;
      writeFileSync(kubeconfig, JSON.stringify(kc));
      await until('the forwarded port on the guest', 30_000, () => (sshVm(vm, `ss -Htln 'sport = :${GUEST_API_PORT}' | grep -q LISTEN`).status === 0 ? true : undefined));
      before0 = sshVmOk(vm, 'sh -s', { input: SNAPSHOT });
    });
    after(async () => {
      forward?.kill();
      await vm?.down();
      await api.stop();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    test('the guest has no Node.js; nothing answers on the VIP', () => {
      assert.equal(sshVm(vm, 'command -v node nodejs').status, 1, 'no node on the guest');
      assert.equal(connectVip(vm).ok, false);
    });

    test('node-problem-detector\'s plugin on the guest, before the agent: as NPD runs each rule, the stock guest\'s kubelet basics and the missing datapath are problems', () => {
      const out = join(dir, 'npd');
      mkdirSync(out);
      const g = spawnSync(process.execPath, [CLI, 'npd', '--out', out, '--plugin-path', `${NPD_DIR}/prep-node-check.sh`], { encoding: 'utf8' });
      assert.equal(g.status, 0, g.stderr);
      monitor = JSON.parse(readFileSync(join(out, 'prep-node-monitor.json'), 'utf8')) as NpdMonitor;
      sshVmOk(vm, `mkdir -p ${NPD_DIR} && cat > ${NPD_DIR}/prep-node-check.sh && chmod 0755 ${NPD_DIR}/prep-node-check.sh`, { input: readFileSync(join(out, 'prep-node-check.sh'), 'utf8') });
      const r = runNpdRules(vm, monitor);
      const codes = Object.fromEntries([...r].map(([c, x]) => [c, x.code]));
      // Debian 12: bpffs mounted by systemd, cgroup v2, 6.1 with BTF; no ip_forward, no br_netfilter;
      // nf_conntrack not loaded (Unknown, not a problem); no datapath
      assert.deepEqual(codes, {
        PrepNodeBPFFSProblem: 0,
        PrepNodeCgroupProblem: 0,
        PrepNodeKernelProblem: 0,
        PrepNodeKubeletBasicsProblem: 1,
        PrepNodeConntrackProblem: 2,
        PrepNodeDatapathProblem: 1,
      }, JSON.stringify([...r]));
      assert.match(sshVmOk(vm, `${NPD_DIR}/prep-node-check.sh nfd`), /^prep-node\.feature\.node\.kubernetes\.io\/datapath=absent$/m);
    });

    test('agent install: uploaded, the unit enabled and active, the kubeconfig 0600 and never in argv or the journal', (t) => {
      const t0 = Date.now();
      const r = runCli(vm, ['agent', 'install', target, '-F', config, '--kubeconfig', kubeconfig, '--node-name', NODE]);
      t.diagnostic(`agent install: exit ${r.status}, ${((Date.now() - t0) / 1000).toFixed(1)} s: ${r.stdout.trim()}`);
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /agent installed: \/etc\/systemd\/system\/prep-node-agent\.service enabled/);
      assert.equal(sshVmOk(vm, `stat -c '%a %U:%G' ${AGENT_KUBECONFIG} ${AGENT_DIR} ${AGENT_DIR}/prep-node ${AGENT_DIR}/koffi.node`).trim(), ['600 root:root', '755 root:root', '755 root:root', '644 root:root'].join('\n'));
      assert.equal(sshVmOk(vm, `cat ${AGENT_KUBECONFIG}`), readFileSync(kubeconfig, 'utf8'));
      assert.equal(sshVmOk(vm, 'systemctl is-enabled prep-node-agent.service').trim(), 'enabled');
      const argv = sshVmOk(vm, "tr '\\0' ' ' < /proc/$(systemctl show -p MainPID --value prep-node-agent.service)/cmdline");
      assert.match(argv, /prep-node agent --kubeconfig \/etc\/prep-node\/agent\.kubeconfig/);
      assert.doesNotMatch(argv, /fake-token/);
    });

    test('the hardening is in effect on the guest\'s systemd: capabilities, no new privileges, a read-only /usr and /etc', () => {
      const verify = sshVm(vm, `systemd-analyze verify ${AGENT_UNIT} 2>&1`);
      assert.doesNotMatch(verify.stdout, /Unknown|unknown|Failed|Invalid/, `systemd-analyze verify:\n${verify.stdout}`);
      const pid = sshVmOk(vm, 'systemctl show -p MainPID --value prep-node-agent.service').trim();
      assert.notEqual(pid, '0', 'the agent runs');
      const st = sshVmOk(vm, `grep -E '^(CapBnd|NoNewPrivs):' /proc/${pid}/status`);
      // CAP_NET_ADMIN 12, CAP_SYS_ADMIN 21, CAP_SYS_RESOURCE 24, CAP_PERFMON 38, CAP_BPF 39
      const bnd = BigInt(`0x${/CapBnd:\s+([0-9a-f]+)/.exec(st)![1]}`);
      assert.equal(bnd, (1n << 12n) | (1n << 21n) | (1n << 24n) | (1n << 38n) | (1n << 39n));
      assert.match(st, /NoNewPrivs:\s+1/);
      const ro = sshVmOk(vm, `nsenter -t ${pid} -m sh -c 'touch /etc/prep-node-x 2>&1; touch /usr/local/lib/prep-node-agent/x 2>&1; touch /var/lib/prep-node/x && rm /var/lib/prep-node/x && echo state-writable'`);
      assert.match(ro, /\/etc\/prep-node-x.*Read-only file system/);
      assert.match(ro, /prep-node-agent\/x.*Read-only file system/);
      assert.match(ro, /state-writable/);
    });

    test('the agent lists from the API server through the forwarded port and is ready; the VIP serves a connection; libbpf comes from beside the executable', async (t) => {
      const ready = await until('/readyz 200', 180_000, () => (/^HTTP\/1\.1 200/.test(httpGet(vm, '/readyz')) ? true : undefined)).catch((err: Error) => {
        t.diagnostic(sshVm(vm, 'journalctl -u prep-node-agent.service --no-pager | tail -30').stdout);
        throw err;
      });
      assert.equal(ready, true);
      assert.ok((api.requests.get('list Service') ?? 0) >= 1, `the fake API server was listed: ${JSON.stringify([...api.requests])}`);
      const c = await until('the VIP to answer', 60_000, () => {
        const r = connectVip(vm);
        return r.ok ? r : undefined;
      });
      assert.match(c.text, /^SSH-2\.0-OpenSSH/, 'the guest sshd behind the Service answered through the VIP');
      // the native code it runs comes from beside it, not from the guest's own libbpf1 (iproute2's)
      const pid = sshVmOk(vm, 'systemctl show -p MainPID --value prep-node-agent.service').trim();
      const maps = sshVmOk(vm, `grep -oE '/[^ ]*(koffi\\.node|libbpf\\.so[^ ]*|libelf[^ ]*)$' /proc/${pid}/maps | sort -u`).trim().split('\n');
      assert.deepEqual(maps, [`${AGENT_DIR}/koffi.node`, `${AGENT_DIR}/libbpf.so.1`, `${AGENT_DIR}/libelf.so.1`]);
      const journal = sshVmOk(vm, 'journalctl -u prep-node-agent.service --no-pager');
      assert.doesNotMatch(journal, /fake-token/);
      assert.match(journal, /pinned maps opened/);
    });

    test('node-problem-detector\'s plugin with the agent running: the datapath condition clears, the others are as before', () => {
      const r = runNpdRules(vm, monitor);
      assert.deepEqual([r.get('PrepNodeDatapathProblem')!.code, r.get('PrepNodeKubeletBasicsProblem')!.code, r.get('PrepNodeKernelProblem')!.code], [0, 1, 0], JSON.stringify([...r]));
      assert.match(sshVmOk(vm, `${NPD_DIR}/prep-node-check.sh nfd`), /^prep-node\.feature\.node\.kubernetes\.io\/datapath=ready$/m);
    });

    test('Restart=on-failure: a killed agent comes back and the VIP keeps serving', async () => {
      const pid = sshVmOk(vm, 'systemctl show -p MainPID --value prep-node-agent.service').trim();
      sshVmOk(vm, `kill -KILL ${pid}`);
      const again = await until('a new agent process', 60_000, () => {
        const p = sshVm(vm, 'systemctl show -p MainPID --value prep-node-agent.service').stdout.trim();
        return p !== '0' && p !== pid ? p : undefined;
      });
      assert.notEqual(again, pid);
      assert.equal(connectVip(vm).ok, true);
    });

    test('agent remove: the service gone, the datapath it brought removed, every file as before, byte for byte', (t) => {
      const r = runCli(vm, ['agent', 'remove', target, '-F', config]);
      t.diagnostic(`agent remove: exit ${r.status}: ${r.stdout.trim()}`);
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /agent removed/);
      assert.equal(sshVmOk(vm, 'sh -s', { input: SNAPSHOT }), before0);
      assert.equal(connectVip(vm).ok, false, 'the VIP no longer answers');
      const again = runCli(vm, ['agent', 'remove', target, '-F', config]);
      assert.equal(again.status, 0, again.stderr);
      assert.match(again.stdout, /not installed here/);
    });
  });
}
