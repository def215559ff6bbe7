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
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO, bootVm, clientConfig, runCli, type Backend, type Vm } from '../helpers/vm.js';
import { sshArgv, sshVm, sshVmOk } from '../helpers/vm-reboot.js';
import { FakeApiServer, endpointSlice, namespace, node, service } from '../../src/bench/fake-apiserver.js';
import { AGENT_DIR, AGENT_KUBECONFIG, AGENT_UNIT } from '../../src/agent/install.js';

const backends = (process.env.PREP_NODE_VM_BACKENDS ?? 'qemu').split(',') as Backend[];
const GUEST_API_PORT = 16443;
const VIP = '10.96.0.23';
const VIP_PORT = 2223;
const NODE = 'agent-vm';

/** Build the single executable when it is missing or older than the compiled CLI (about 30 s). */
function ensureSea(): void {
  const exe = join(REPO, 'dist/sea/prep-node');
  if (existsSync(join(REPO, 'dist/sea/SHA256SUMS')) && statSync(exe).mtimeMs >= statSync(join(REPO, 'dist/src/cli.js')).mtimeMs) return;
  const r = spawnSync('scripts/build-sea.sh', { cwd: REPO, encoding: 'utf8', timeout: 300_000 });
  assert.equal(r.status, 0, `make sea: ${r.stderr}`);
}

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

for (const backend of backends) {
  describe(`the agent from its systemd unit on a Debian 12 VM (${backend})`, { timeout: 1_500_000 }, () => {
    let vm: Vm;
    let dir: string;
    let config: string;
    let target: string;
    let kubeconfig: string;
    let forward: ChildProcess | undefined;
    let before0: string;
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
