// End to end: a real Debian 12 VM (its own 6.1 kernel), booted by the harness, checked over SSH by
// the CLI exactly as a user would run it. Both backends: plain QEMU (port forwarded on 127.0.0.1)
// and Vagrant with libvirt (inside a network namespace the harness creates). The whole catalogue runs
// under QEMU only; under Vagrant the cases that depend on how the guest was reached (the box's host
// key refused, then accepted, then a changed one refused; a check as root and as the sudo user; -i
// and -p; sudo with and without a password): the checks themselves read the same guest either way.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO, bootVm, clientConfig, runCli, runNode, type Backend, type Ran, type Vm } from '../helpers/vm.js';
import { CHECK_SCHEMA, type CheckDocument } from '../../src/report/json.js';
import { CHECKS } from '../../src/checks/index.js';
import { FLEET_CHECKS } from '../../src/checks/fleet.js';

const backends = (process.env.PREP_NODE_VM_BACKENDS ?? 'qemu,vagrant').split(',') as Backend[];

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The host was reached and checked: exit 0 (all good) or 1 (findings), never 2, 3, 4 or 70. */
function assertReported(r: Ran): void {
  assert.ok(r.status === 0 || r.status === 1, `exit ${r.status}: ${r.stderr}`);
}

for (const backend of backends) {
  describe(`check against a Debian 12 VM (${backend})`, { timeout: 900_000 }, () => {
    let vm: Vm;
    let dir: string;
    let config: string;
    let knownHosts: string;

    before(async () => {
      vm = await bootVm(backend);
      dir = mkdtempSync(join(tmpdir(), 'prep-node-e2e-'));
      knownHosts = join(dir, 'known_hosts');
      config = clientConfig(dir, vm, knownHosts);
    });
    after(async () => {
      await vm?.down();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    /** Cases that prove a check, not the way to the guest: run on one backend (plain QEMU) only. */
    const everyCheck = backend === 'qemu';

    test('an unknown host key is refused with its fingerprint, exit 3', () => {
      const r = runCli(vm, ['check', '-F', config, vm.spec('root')]);
      assert.equal(r.status, 3, r.stderr);
      assert.ok(r.stderr.includes(vm.target.hostKeyFingerprint), r.stderr);
      assert.match(r.stderr, /--accept-new-host-key/);
      assert.equal(r.stderr.trim().split('\n').length, 1);
    });

    test('--accept-new-host-key trusts it once; later runs verify against known_hosts', () => {
      const first = runCli(vm, ['check', '-F', config, '--steal-seconds', '1', '--accept-new-host-key', vm.spec('root')]);
      assertReported(first);
      assert.match(first.stdout, /kernel\.version\s+PASS\s+6\.1\./);
      assert.match(readFileSync(knownHosts, 'utf8'), /ssh-ed25519/);
      const again = runCli(vm, ['check', '-F', config, '--steal-seconds', '1', vm.spec('root')]);
      assertReported(again);
    });

    test('a sudo user gets the same report; --json is one schema-v1 document', () => {
      const r = runCli(vm, ['check', '-F', config, '--json', '--steal-seconds', '1', vm.spec(vm.target.sudoUser)]);
      assertReported(r);
      const doc = JSON.parse(r.stdout) as CheckDocument;
      assert.equal(doc.exitCode, r.status);
      assert.equal(doc.schema, CHECK_SCHEMA);
      const kernel = doc.hosts[0]!.checks.find((c) => c.id === 'kernel.version')!;
      assert.equal(kernel.status, 'pass');
      assert.equal(kernel.observed, vm.target.kernel);
      // What differs between the two guests: the plain-QEMU NIC has one queue for two vCPUs, the Vagrant one two.
      const mq = doc.hosts[0]!.checks.find((c) => c.id === 'net.multiqueue')!;
      assert.equal(mq.status, backend === 'vagrant' ? 'pass' : 'warn', mq.observed);
    });

    if (everyCheck) test('a fleet of the VM (as two users) and this machine, from an inventory, gets a matrix', () => {
      const inventory = join(dir, 'inventory.yaml');
      writeFileSync(inventory, `hosts:\n  - ${vm.spec('root')}\n  - ${vm.spec(vm.target.sudoUser)}\n  - local\n`);
      const r = runCli(vm, ['check', '-F', config, '--steal-seconds', '1', '--inventory', inventory, '--concurrency', '3']);
      assertReported(r);
      const header = ['CHECK', vm.spec('root'), vm.spec(vm.target.sudoUser), 'local'];
      assert.ok(r.stdout.split('\n').some((l) => l.split(/\s+/).join(' ') === header.join(' ')), r.stdout);
      assert.match(r.stdout, /^kernel\.version\s+PASS\s+PASS\s+PASS$/m);
    });

    /** Run a command on the guest as root with the system's ssh client (where the VM is reachable). */
    function sshVm(argv: string[]): string {
      const [cmd, ...rest] = vm.wrap(['ssh', '-F', config, '-p', String(vm.target.port), '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=yes', `root@${vm.target.host}`, '--', ...argv]);
      const r = spawnSync(cmd!, rest, { encoding: 'utf8', timeout: 60_000 });
      assert.equal(r.status, 0, r.stderr);
      return r.stdout;
    }

    if (everyCheck) test('fleet checks over the VM (as two users) and this machine: the shared machine-id names the two logins, the other kernel names local, every clock is read', () => {
      const r = runCli(vm, ['check', '-F', config, '--json', '--steal-seconds', '1', vm.spec('root'), vm.spec(vm.target.sudoUser), 'local']);
      assertReported(r);
      const doc = JSON.parse(r.stdout) as CheckDocument;
      assert.ok(doc.fleet, `a run of several hosts has a fleet section: ${r.stdout.slice(0, 400)}`);
      assert.deepEqual(doc.hosts.map((h) => h.target), [vm.spec('root'), vm.spec(vm.target.sudoUser), 'local']);
      assert.deepEqual(doc.fleet.checks.map((c) => c.id), FLEET_CHECKS.map((c) => c.id), 'every fleet check, in catalogue order');
      for (const c of doc.fleet.checks) assert.notEqual(c.status, 'error', `${c.id}: ${JSON.stringify(c)}`);
      const byId = new Map(doc.fleet.checks.map((c) => [c.id, c]));
      const vmLogins = [vm.spec('root'), vm.spec(vm.target.sudoUser)].sort();
      // The two logins are one machine: its machine-id, read here over SSH, is shared by exactly those two.
      const guestId = sshVm(['cat', '/etc/machine-id']).trim();
      assert.match(guestId, /^[0-9a-f]{32}$/);
      const mid = byId.get('fleet.machine-id')!;
      assert.equal(mid.status, 'fail', JSON.stringify(mid));
      assert.deepEqual([...mid.hosts].sort(), vmLogins, JSON.stringify(mid));
      assert.ok(mid.observed.startsWith(`${guestId} on ${vm.spec('root')}, ${vm.spec(vm.target.sudoUser)}`), mid.observed);
      assert.match(mid.remedy ?? '', /systemd-machine-id-setup/);
      // Debian 12's 6.1 on the guest, another kernel here: the majority (the two logins) wins, local is named.
      const kernel = byId.get('fleet.kernel')!;
      assert.equal(vm.target.kernel.split('.').slice(0, 2).join('.'), '6.1');
      assert.notEqual(kernel.status, 'pass', JSON.stringify(kernel));
      assert.deepEqual(kernel.hosts, ['local'], JSON.stringify(kernel));
      assert.ok(kernel.observed.startsWith(`6.1: ${vm.spec('root')}, ${vm.spec(vm.target.sudoUser)}; `), kernel.observed);
      // Every host's clock was read with its round trip: each is listed with an offset, none unreadable.
      const clock = byId.get('fleet.clock')!;
      for (const t of [vm.spec('root'), vm.spec(vm.target.sudoUser), 'local']) assert.ok(new RegExp(`(: |, )${escapeRe(t)} [+-]?\\d+ ms ±\\d+ ms`).test(clock.observed), `${t}: ${clock.observed}`);
      assert.doesNotMatch(clock.observed, /unreadable/);
      // The shared hostname is named the same way (this machine's differs from the guest's).
      const hostname = byId.get('fleet.hostname')!;
      assert.equal(hostname.status, 'fail', JSON.stringify(hostname));
      assert.deepEqual([...hostname.hosts].sort(), vmLogins, JSON.stringify(hostname));
      assert.equal(doc.exitCode, r.status);
    });

    test('-i and -p work as with ssh: the key and the port come from the command line', () => {
      // A config with known_hosts but no key: without -i authentication fails, with -i it works.
      const bare = join(dir, 'ssh_config.bare');
      writeFileSync(bare, readFileSync(config, 'utf8').replace(/^\s*IdentityFile .*\n/m, ''));
      const target = `root@${vm.target.host}`;
      const port = String(vm.target.port);
      const without = runCli(vm, ['check', '-F', bare, '-p', port, '--steal-seconds', '1', target]);
      assert.equal(without.status, 3, without.stderr);
      assert.match(without.stderr, /authentication failed for user root/);
      const withKey = runCli(vm, ['check', '-F', bare, '-i', vm.target.identity, '-p', port, '--steal-seconds', '1', target]);
      assertReported(withKey);
      assert.match(withKey.stdout, /kernel\.version\s+PASS/);
    });

    if (everyCheck) test('the whole catalogue on the VM: each check reports what this guest really is', () => {
      const r = runCli(vm, ['check', '-F', config, '--json', '--steal-seconds', '1', vm.spec(vm.target.sudoUser)]);
      assert.equal(r.status, 1, `a stock Debian 12 has findings (modules, sysctls, time): ${r.stderr}`);
      const doc = JSON.parse(r.stdout) as CheckDocument;
      const byId = new Map(doc.hosts[0]!.checks.map((c) => [c.id, c]));
      const status = (id: string) => byId.get(id)?.status;
      assert.deepEqual([...byId.keys()], CHECKS.map((c) => c.id), 'every check ran, in catalogue order');
      // What the guest is: Debian's 6.1 kernel with BTF, systemd's bpffs and cgroup2, a virtio NIC.
      for (const id of ['kernel.version', 'kernel.config', 'kernel.btf', 'bpf.fs', 'cgroup.v2', 'net.virtio', 'net.mtu', 'cpu.steal']) {
        assert.equal(status(id), 'pass', `${id}: ${JSON.stringify(byId.get(id))}`);
      }
      // QEMU under TCG is an emulated machine, not a KVM guest: said as a warning.
      assert.equal(status('virt.kvm'), vm.target.accel === 'kvm' ? 'pass' : 'warn');
      // The plain-QEMU NIC has one queue for two vCPUs (the Vagrant one's two: the sudo-user case).
      assert.equal(status('net.multiqueue'), 'warn', byId.get('net.multiqueue')?.observed);
      // A stock image loads no IPVS modules and leaves forwarding off: findings with pasteable fixes.
      assert.equal(status('ipvs.modules'), 'fail');
      assert.match(byId.get('ipvs.modules')!.remedy ?? '', /^modprobe -a .*ip_vs/);
      assert.equal(status('kubelet.basics'), 'fail');
      assert.match(byId.get('kubelet.basics')!.observed, /net\.ipv4\.ip_forward = 0/);
      assert.equal(status('disk.fsync'), 'skip', 'a worker profile has no etcd');
      for (const c of byId.values()) {
        if (c.status !== 'pass' && c.status !== 'skip') assert.ok(c.remedy, `${c.id} (${c.status}) has a remedy`);
      }
    });

    if (everyCheck) test('--ignore all reports the same findings but exits 0', () => {
      const r = runCli(vm, ['check', '-F', config, '--json', '--steal-seconds', '1', '--ignore', 'all', vm.spec('root')]);
      assert.equal(r.status, 0, r.stderr);
      const doc = JSON.parse(r.stdout) as CheckDocument;
      assert.ok(doc.hosts[0]!.checks.some((c) => c.status === 'fail' && c.ignored));
    });

    if (everyCheck) test('a control-plane profile measures fsync latency on the etcd disk', () => {
      const r = runCli(vm, ['check', '-F', config, '--json', '--steal-seconds', '1', '--profile', 'k8s-control-plane', vm.spec('root')]);
      assertReported(r);
      const fsync = (JSON.parse(r.stdout) as CheckDocument).hosts[0]!.checks.find((c) => c.id === 'disk.fsync')!;
      assert.notEqual(fsync.status, 'skip');
      assert.notEqual(fsync.status, 'error', fsync.detail ?? '');
      assert.match(fsync.observed, /p99 .*ms over \d+ writes/);
    });

    test('a changed host key is a hard error, even with --accept-new-host-key', () => {
      const saved = join(dir, 'known_hosts.saved');
      copyFileSync(knownHosts, saved);
      try {
        // Another ed25519 key recorded for the same host: what a man in the middle would look like.
        const name = vm.target.port === 22 ? vm.target.host : `[${vm.target.host}]:${vm.target.port}`;
        writeFileSync(knownHosts, `${name} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGRG+NxyT77gB1VRD6xIi2s4NclV/H+mwxQSMrmE9Svi\n`);
        const r = runCli(vm, ['check', '-F', config, '--accept-new-host-key', vm.spec('root')]);
        assert.equal(r.status, 3, r.stderr);
        assert.match(r.stderr, /HOST KEY CHANGED/);
        assert.ok(r.stderr.includes(vm.target.hostKeyFingerprint));
      } finally {
        copyFileSync(saved, knownHosts);
      }
    });

    test('sudo: a NOPASSWD user runs as root; a user whose sudo wants a password gets one line and exit 4', () => {
      // Straight through the Host API (no check needs root yet), run where the VM is reachable.
      const script = (user: string) => `
        import { openHost } from ${JSON.stringify(join(REPO, 'dist/src/host/connect.js'))};
        import { parseTarget } from ${JSON.stringify(join(REPO, 'dist/src/host/target.js'))};
        const host = await openHost(parseTarget(${JSON.stringify(vm.spec(user))}), { configFile: ${JSON.stringify(config)} });
        try { console.log((await host.exec('id -u', { sudo: true })).trim()); }
        catch (e) { console.log(e.exitCode + ' ' + e.kind + ' ' + e.message); }
        finally { await host.close(); }`;
      const ok = runNode(vm, script(vm.target.sudoUser));
      assert.equal(ok.stdout.trim(), '0', ok.stderr);
      const refused = runNode(vm, script(vm.target.sudoPasswordUser));
      assert.match(refused.stdout.trim(), new RegExp(`^4 sudo-password .*sudo asks user ${vm.target.sudoPasswordUser} for a password`), refused.stderr);
      // And through the CLI: virt.kvm reads /proc/1/environ as root, so the check says so and exits 4.
      const cli = runCli(vm, ['check', '-F', config, '--steal-seconds', '1', vm.spec(vm.target.sudoPasswordUser)]);
      assert.equal(cli.status, 4, cli.stderr + cli.stdout);
      const who = vm.target.sudoPasswordUser;
      assert.ok(cli.stderr.startsWith(`prep-node: ${vm.spec(who)}: sudo asks user ${who} for a password`), cli.stderr);
      assert.equal(cli.stderr.trim().split('\n').length, 1);
    });

    if (everyCheck) test('check local runs without SSH', () => {
      const r = runCli(vm, ['check', 'local', '--json']);
      assert.ok(r.status === 0 || r.status === 1, r.stderr);
      assert.equal((JSON.parse(r.stdout) as CheckDocument).hosts[0]!.target, 'local');
    });
  });
}
