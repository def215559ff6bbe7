// End to end, the eBPF datapath on a real Debian 12 VM (Debian's own 6.1 kernel), driven through the
// CLI over SSH as the sudo user `prep`, exactly as a user would: the loader is uploaded once into
// /var/lib/prep-node/bin, `datapath selftest` passes all its steps on the guest and leaves nothing,
// install → status → sync → sync again (nothing to do) → a VIP connect from an ordinary program on the
// guest is translated → remove (nothing attached, nothing pinned, the VIP no longer translated), tc on
// the guest's own NIC (the SSH session itself passes through it), and a refusal that leaves nothing.
// The test's own looks at the guest use plain ssh (no bpftool on the guest: /sys/fs/bpf, ip, tc).
// One boot for the whole file.
import { after, before, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO, bootVm, clientConfig, runCli, type Backend, type Ran, type Vm } from '../helpers/vm.js';
import { sshVm, sshVmOk } from '../helpers/vm-reboot.js';
import { LOCAL_LOADER, REMOTE_BIN_DIR } from '../../src/datapath/loader.js';
import { compileState } from '../../src/datapath/compile.js';
import { parseState } from '../../src/datapath/state.js';

// The same guest under both backends adds little here and doubles minutes of TCG time in CI's 90-minute
// budget: check (e2e.test.ts) runs on both; this file on QEMU unless PREP_NODE_VM_BACKENDS names more.
const backends = (process.env.PREP_NODE_VM_BACKENDS ?? 'qemu').split(',') as Backend[];
const FIXTURE = join(REPO, 'test/fixtures/datapath/state.yaml');

// A service on the fixture's state whose backend is the guest's own sshd: a connect() to the VIP from
// any process on the guest is rewritten by the cgroup connect4 program to 127.0.0.1:22 and gets the
// SSH banner; without the datapath 10.96.0.22 is not routable from the (isolated) guest.
const LO_VIP = '10.96.0.22';
const LO_PORT = 2222;
const LO_SERVICE = `  - name: guest-ssh\n    vip: ${LO_VIP}\n    port: ${LO_PORT}\n    protocol: tcp\n    backends:\n      - {ip: 127.0.0.1, port: 22}\n`;

/** What the datapath may leave on the guest, as one text per item (root's view). */
const LEFTOVERS = [
  `echo '@@ bpffs'; ls -A /sys/fs/bpf`,
  `echo '@@ netns'; ip netns list`,
  `echo '@@ links'; ip -o link show | grep -E ' (pnst|sw-)' || true`,
  `echo '@@ clsact'; tc qdisc show | grep clsact || true`,
  `echo '@@ procs'; ps -eo comm= | grep '^prep-node-dp' || true`,
  'true',
].join('\n');

function leftovers(vm: Vm): Map<string, string> {
  const m = new Map<string, string>();
  let cur = '';
  for (const line of sshVmOk(vm, 'PATH=/usr/sbin:/sbin:$PATH sh -s', { input: LEFTOVERS }).split('\n')) {
    const h = /^@@ (\S+)$/.exec(line);
    if (h) m.set((cur = h[1]!), '');
    else if (line !== '') m.set(cur, `${m.get(cur)}${line}\n`);
  }
  return m;
}

function assertNothingLeft(vm: Vm, when: string): void {
  const left = leftovers(vm);
  for (const item of ['bpffs', 'netns', 'links', 'clsact', 'procs']) {
    assert.ok(left.has(item), `${item} was looked at`);
    assert.equal(left.get(item), '', `${when}: ${item} left on the guest:\n${left.get(item)}`);
  }
}

/** A connect() to the VIP from an unprivileged shell on the guest: the first line it reads, or why it failed. */
function connectVip(vm: Vm): { ok: boolean; text: string } {
  const r = sshVm(vm, `timeout 10 bash -c 'exec 3<>/dev/tcp/${LO_VIP}/${LO_PORT} && head -1 <&3' 2>&1`, { user: vm.target.sudoUser });
  return { ok: r.status === 0, text: r.stdout.trim() };
}

interface StatusJson {
  installed: boolean;
  kernel?: string;
  programs: { name: string; type?: string; attach?: string; attached?: boolean; link_id?: number }[];
  maps: { name: string; type?: string; entries?: number; max_entries?: number }[];
  set_retval?: boolean;
  cgroup?: string;
  tc_devs?: string[];
}

for (const backend of backends) {
  describe(`datapath on a Debian 12 VM (${backend})`, { timeout: 1_500_000 }, () => {
    let vm: Vm;
    let dir: string;
    let config: string;
    let target: string;
    const timings: [string, number][] = [];

    /** `prep-node datapath ARGS... -F config prep@vm`, timed. */
    function dp(t: TestContext, label: string | null, ...args: string[]): Ran {
      const t0 = Date.now();
      const r = runCli(vm, ['datapath', ...args, '-F', config, target]);
      const ms = Date.now() - t0;
      if (label) timings.push([label, ms]);
      t.diagnostic(`datapath ${args.join(' ')}: exit ${r.status}, ${(ms / 1000).toFixed(1)} s`);
      return r;
    }

    before(async () => {
      vm = await bootVm(backend);
      dir = mkdtempSync(join(tmpdir(), 'prep-node-vm-dp-'));
      config = clientConfig(dir, vm, vm.target.knownHosts);
      target = vm.spec(vm.target.sudoUser);
    });
    after(async () => {
      await vm?.down();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    test('the guest: Debian 12 kernel 6.1, bpffs mounted by systemd, cgroup v2 unified, no bpftool, no datapath', (t) => {
      const out = sshVmOk(vm, `uname -r; grep -E ' /sys/fs/(bpf|cgroup) ' /proc/mounts | cut -d' ' -f2,3; command -v bpftool || echo no-bpftool`);
      const [kernel, ...rest] = out.trim().split('\n');
      t.diagnostic(`guest kernel ${kernel} (${vm.target.accel}), ${backend} backend`);
      assert.equal(kernel, vm.target.kernel);
      assert.match(kernel, /^6\.1\.\d+-\d+-amd64$/);
      assert.deepEqual(rest.sort(), ['/sys/fs/bpf bpf', '/sys/fs/cgroup cgroup2', 'no-bpftool']);
      assertNothingLeft(vm, 'before anything ran');
    });

    test('the loader is uploaded once, named by its sha256, into prep-node\'s own directory', (t) => {
      const first = dp(t, 'status (upload + status)', 'status');
      assert.equal(first.status, 0, first.stderr);
      assert.match(first.stdout, /: not installed$/m);
      const again = dp(t, 'status (loader already there)', 'status');
      assert.equal(again.status, 0, again.stderr);
      assert.match(again.stdout, /: not installed$/m);
      const sha = createHash('sha256').update(readFileSync(LOCAL_LOADER)).digest('hex');
      const listing = sshVmOk(vm, `cd ${REMOTE_BIN_DIR} && stat -c '%n %a %U:%G %s' * && sha256sum *`).trim().split('\n');
      const name = `prep-node-dp-${sha.slice(0, 12)}`;
      assert.deepEqual(listing, [`${name} 755 root:root ${readFileSync(LOCAL_LOADER).length}`, `${sha}  ${name}`], 'one loader, this build, root-owned');
      const upload = timings[0]![1] - timings[1]![1];
      timings.push(['upload (difference)', upload]);
      t.diagnostic(`upload of the ${(readFileSync(LOCAL_LOADER).length / 1e6).toFixed(2)} MB loader: ~${(upload / 1000).toFixed(1)} s`);
    });

    test('selftest: 14 of 14 steps with real traffic on the guest, and nothing is left', (t) => {
      const r = dp(t, 'selftest', 'selftest');
      assert.equal(r.status, 0, r.stdout + r.stderr);
      assert.match(r.stdout, /: selftest passed: 14 of 14 steps$/m, r.stdout);
      for (const step of ['topology', 'servers', 'install', 'apply', 'lb-random', 'lb-maglev', 'lb-affinity', 'policy-allow', 'policy-deny', 'policy-default-deny', 'backend-removed', 'entries-deleted', 'cleanup', 'nothing-left']) {
        assert.match(r.stdout, new RegExp(`^  pass  ${step} `, 'm'), `${step} in:\n${r.stdout}`);
      }
      // at least one: a SYN the kernel retransmits inside the probe's timeout is dropped (and counted) again
      assert.match(r.stdout, /policy-deny .* drops POLICY_DENY 0 → [1-9]\d*/);
      assert.match(r.stdout, /policy-default-deny .* drops POLICY_DEFAULT_DENY 0 → [1-9]\d*/);
      for (const line of r.stdout.split('\n').filter((l) => l.startsWith('  pass'))) t.diagnostic(line.trim());
      assertNothingLeft(vm, 'after the selftest');
      const bin = sshVmOk(vm, `ls ${REMOTE_BIN_DIR}`).trim().split('\n');
      assert.equal(bin.length, 1, `the selftest used the uploaded loader, not another copy: ${bin.join(' ')}`);
    });

    test('install → status → sync → sync again (nothing to do) → a VIP is translated on the guest → remove', (t) => {
      const before = connectVip(vm);
      assert.equal(before.ok, false, `without the datapath ${LO_VIP}:${LO_PORT} must not answer: ${before.text}`);

      const install = dp(t, 'install', 'install');
      assert.equal(install.status, 0, install.stderr);
      assert.match(install.stdout, /: installed: programs attached, maps pinned under \/sys\/fs\/bpf\/prep-node\/$/m);

      const status = dp(t, null, 'status');
      assert.equal(status.status, 0, status.stderr);
      assert.match(status.stdout, new RegExp(`: installed \\(kernel ${vm.target.kernel.replace(/\./g, '\\.')}\\)$`, 'm'));
      for (const hook of ['connect4', 'sendmsg4', 'getpeername4', 'recvmsg4']) assert.match(status.stdout, new RegExp(`cgroup_sock_addr  cgroup/${hook} /sys/fs/cgroup  id \\d+$`, 'm'), status.stdout);
      // capacities follow the guest's RAM below 4 GiB (1.5 GiB guest: 1048576 x RAM / 4 GiB, a power of two)
      const cap = Number(/^ {2}services +0 \/ (\d+) \(0\.0%\)/m.exec(status.stdout)?.[1]);
      assert.ok([262144, 524288, 1048576].includes(cap), status.stdout);
      assert.match(status.stdout, /^ +1 POLICY_DENY +0 /m, status.stdout);

      const again = dp(t, null, 'install');
      assert.equal(again.status, 0, again.stderr);
      assert.match(again.stdout, /already installed/);
      const selftest = dp(t, null, 'selftest');
      assert.equal(selftest.status, 5, 'the selftest refuses where the datapath is installed');
      assert.match(selftest.stderr, /the datapath is installed/);
      assert.equal(selftest.stderr.trim().split('\n').length, 1, selftest.stderr);

      const sync = dp(t, 'sync (fixture)', 'sync', '-f', FIXTURE);
      assert.equal(sync.status, 0, sync.stderr);
      assert.match(sync.stdout, /: synced: [1-9]\d* put, 0 deleted, 0 cleared$/m);
      const sync2 = dp(t, 'sync again (nothing to do)', 'sync', '-f', FIXTURE);
      assert.equal(sync2.status, 0, sync2.stderr);
      assert.match(sync2.stdout, /: synced: 0 put, 0 deleted, 0 cleared \(already as desired\)$/m);

      // The fixture plus a service whose backend is the guest's sshd.
      const withLo = join(dir, 'state-lo.yaml');
      writeFileSync(withLo, readFileSync(FIXTURE, 'utf8').replace(/^policies:/m, `${LO_SERVICE}policies:`));
      const sync3 = dp(t, null, 'sync', '-f', withLo, '--dry-run');
      assert.equal(sync3.status, 0, sync3.stderr);
      assert.match(sync3.stdout, /: would write: 2 put, 0 deleted, 0 cleared$/m);
      assert.match(sync3.stdout, new RegExp(`put backends: guest-ssh ${LO_VIP}:${LO_PORT}/tcp slot 0 → 127\\.0\\.0\\.1:22`));
      const sync4 = dp(t, null, 'sync', '-f', withLo);
      assert.equal(sync4.status, 0, sync4.stderr);
      assert.match(sync4.stdout, /: synced: 2 put, 0 deleted, 0 cleared$/m);

      const json = dp(t, null, 'status', '--json');
      assert.equal(json.status, 0, json.stderr);
      const st = JSON.parse(json.stdout) as StatusJson;
      assert.equal(st.installed, true);
      assert.equal(st.kernel, vm.target.kernel);
      assert.equal(st.cgroup, '/sys/fs/cgroup', 'the default: the cgroup v2 root');
      assert.deepEqual(st.tc_devs, []);
      assert.equal(st.set_retval, true, '6.1 has bpf_set_retval (5.18+): no backends → ECONNREFUSED');
      assert.deepEqual(st.programs.map((p) => [p.name, p.type, p.attached]).sort(), [
        ['sock4_connect', 'cgroup_sock_addr', true],
        ['sock4_getpeername', 'cgroup_sock_addr', true],
        ['sock4_recvmsg', 'cgroup_sock_addr', true],
        ['sock4_sendmsg', 'cgroup_sock_addr', true],
        ['sock6_connect', 'cgroup_sock_addr', true],
        ['sock6_getpeername', 'cgroup_sock_addr', true],
        ['sock6_recvmsg', 'cgroup_sock_addr', true],
        ['sock6_sendmsg', 'cgroup_sock_addr', true],
      ]);
      const entries = Object.fromEntries(st.maps.map((m) => [m.name, m.entries]));
      t.diagnostic(`map entries after sync: ${JSON.stringify(entries)}`);
      // What the node holds is what prep-node compiled from the state, map by map.
      const expected: Record<string, number> = {};
      for (const e of compileState(parseState(readFileSync(withLo, 'utf8'), withLo)).entries) expected[e.map] = (expected[e.map] ?? 0) + 1;
      for (const [map, n] of Object.entries(expected)) assert.equal(entries[map], n, `${map}: ${JSON.stringify(entries)}`);
      assert.equal(entries.services, 3, 'web, dns, guest-ssh');
      assert.equal(entries.maglev, 1, 'web is Maglev');

      // An ordinary program of an unprivileged user: its connect() is translated, and the loader's
      // probe (getpeername4) still sees the VIP as its peer.
      const translated = connectVip(vm);
      assert.ok(translated.ok && translated.text.startsWith('SSH-2.0-'), `connect to ${LO_VIP}:${LO_PORT}: ${translated.text}`);
      const probe = JSON.parse(sshVmOk(vm, `${REMOTE_BIN_DIR}/prep-node-dp-* probe --connect ${LO_VIP}:${LO_PORT} --count 3 --timeout-ms 3000`)) as { results: { ok: boolean; reply: string | null; peer: string | null }[] };
      assert.equal(probe.results.length, 3);
      for (const p of probe.results) {
        assert.equal(p.ok, true, JSON.stringify(p));
        assert.match(p.reply ?? '', /^SSH-2\.0-/);
        assert.equal(p.peer, `${LO_VIP}:${LO_PORT}`, 'getpeername() shows the VIP, not 127.0.0.1:22');
      }

      const remove = dp(t, 'remove', 'remove');
      assert.equal(remove.status, 0, remove.stderr);
      assert.match(remove.stdout, /: removed: programs detached, pins and maps gone$/m);
      const gone = dp(t, null, 'status');
      assert.equal(gone.status, 0, gone.stderr);
      assert.match(gone.stdout, /: not installed$/m);
      const remove2 = dp(t, null, 'remove');
      assert.equal(remove2.status, 0, remove2.stderr);
      assert.match(remove2.stdout, /not installed: nothing to remove/);
      assertNothingLeft(vm, 'after remove');
      const after = connectVip(vm);
      assert.equal(after.ok, false, `after remove ${LO_VIP}:${LO_PORT} must not be translated: ${after.text}`);
    });

    test('tc on the guest\'s own NIC: the SSH session runs through tc_lb; remove takes the filter and its clsact away', (t) => {
      const install = dp(t, 'install --tc-dev eth0', 'install', '--tc-dev', 'eth0');
      assert.equal(install.status, 0, install.stderr);
      // This status arrives over SSH through eth0's ingress, where tc_lb now runs.
      const json = dp(t, null, 'status', '--json');
      assert.equal(json.status, 0, json.stderr);
      const st = JSON.parse(json.stdout) as StatusJson;
      assert.deepEqual(st.tc_devs, ['eth0']);
      const tc = st.programs.find((p) => p.name === 'tc_lb');
      assert.equal(tc?.attach, 'tc/ingress eth0');
      assert.equal(tc?.attached, true);
      assert.match(sshVmOk(vm, '/sbin/tc filter show dev eth0 ingress'), /bpf chain 0 handle 0x1 tc_lb:\[\d+\] direct-action/);
      assert.equal(st.maps.find((m) => m.name === 'services')?.entries, 0, 'a new install starts with empty maps');
      const remove = dp(t, null, 'remove');
      assert.equal(remove.status, 0, remove.stderr);
      assert.equal(sshVmOk(vm, '/sbin/tc filter show dev eth0 ingress').trim(), '');
      assertNothingLeft(vm, 'after remove (tc)');
    });

    test('a refusal: a capacity the kernel cannot create is one line, exit 5, and nothing is left pinned', (t) => {
      const r = dp(t, null, 'install', '--cap', 'services=4294967295');
      assert.equal(r.status, 5, r.stdout + r.stderr);
      assert.equal(r.stdout, '');
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, new RegExp(`^prep-node: ${target.replace(/\./g, '\\.')}: prep-node-dp install: .*map 'services': failed to create.* \\[load-failed\\]$`, 'm'));
      t.diagnostic(r.stderr.trim());
      assertNothingLeft(vm, 'after a refused install');
      const st = dp(t, null, 'status');
      assert.equal(st.status, 0, st.stderr);
      assert.match(st.stdout, /: not installed$/m);
    });

    test('timings', (t) => {
      t.diagnostic(`guest kernel ${vm.target.kernel}, accel ${vm.target.accel}`);
      for (const [label, ms] of timings) t.diagnostic(`${label}: ${(ms / 1000).toFixed(1)} s`);
      assert.ok(timings.length > 0);
    });
  });
}
