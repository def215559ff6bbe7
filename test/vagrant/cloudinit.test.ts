// cloud-init end to end: a Debian 12 guest with cloud-init (test/vagrant/image-cloudinit.sh, the test
// image plus Debian's cloud-init, reading only NoCloud) boots with a NoCloud seed (an ISO labelled
// cidata: user-data = `prep-node cloud-init --profile P`, meta-data = an instance-id). With no
// `apply`, `prep-node check --profile P` then passes the profile's items and the tuners plan nothing;
// after a reboot (cloud-init's per-instance steps do not run again) the persistent files alone keep it
// so. Two profiles, one boot each: k8s-worker, and k8s-worker with a smaller MTU (the only one whose
// persistent form includes a symlink: the MTU boot unit enabled with ln -sfn).
// PREP_NODE_CLOUDINIT_PROFILES=k8s-worker (comma-separated) runs only some.
import { after, before, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { REPO, clientConfig, runCli, runNode, type Ran, type Vm, type VmTarget } from '../helpers/vm.js';
import { cloudInit } from '../../src/commands/cloud-init.js';
import { packageVersion } from '../../src/cloudinit/docs.js';
import type { CheckDocument } from '../../src/report/json.js';

const QEMU = join(REPO, 'test/vagrant/qemu.sh');
// What k8s-worker's tuners set, as the checks see it.
const TUNED = ['ipvs.modules', 'sysctl.drift', 'conntrack.capacity', 'kubelet.basics', 'bpf.fs', 'net.mtu'];

interface Scenario {
  name: string;
  /** A profile file (extends k8s-worker) written for the test; none: the built-in of that name. */
  yaml?: string;
  /** The guest's own view of what this profile adds: a command as root, its stdout on the first boot and after the reboot. */
  guest?: [string, RegExp, RegExp];
}
const SCENARIOS: Scenario[] = [
  { name: 'k8s-worker' },
  {
    name: 'mtu-1450',
    // QEMU's user-mode NIC starts at 1500: net.mtu passes only if cloud-init's boot unit set 1450.
    yaml: 'extends: k8s-worker\nname: mtu-1450\ndescription: k8s-worker behind a 1450-byte path\nmtu:\n  primary: 1450\n',
    // First boot: runcmd ran the boot script itself (the unit, enabled by ln -sfn, was not started);
    // after the reboot systemd started the unit, which set it again.
    guest: ['cat /sys/class/net/eth0/mtu; systemctl is-enabled prep-node-mtu.service; systemctl is-active prep-node-mtu.service', /^1450\nenabled\n(in)?active\n$/, /^1450\nenabled\nactive\n$/],
  },
];
const only = process.env.PREP_NODE_CLOUDINIT_PROFILES?.split(',');

function script(args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [QEMU, ...args], { stdio: ['ignore', 'ignore', 'inherit'] });
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`qemu.sh ${args[0]} exited ${code}`))));
  });
}

/** qemu.sh up with the cloud-init image and a seed; the same Vm shape as helpers/vm.ts's bootVm. */
async function bootSeeded(seed: string): Promise<Vm> {
  const stateDir = mkdtempSync(join(tmpdir(), 'prep-node-vm-cloudinit-'));
  const down = async () => {
    await script(['down', stateDir]);
    rmSync(stateDir, { recursive: true, force: true });
  };
  try {
    await script(['up', stateDir, '--owner-pid', String(process.pid), '--image', 'cloudinit', '--seed', seed]);
  } catch (err) {
    await down();
    throw err;
  }
  const target = JSON.parse(readFileSync(join(stateDir, 'target.json'), 'utf8')) as VmTarget;
  return { target, stateDir, spec: (user) => `${user}@${target.host}:${target.port}`, wrap: (argv) => argv, down };
}

/** A command as root in the guest (qemu.sh ssh: the VM's key and known_hosts). */
function guest(vm: Vm, command: string, timeout = 120_000): Ran {
  const r = spawnSync('bash', [QEMU, 'ssh', vm.stateDir, 'root', command], { encoding: 'utf8', timeout });
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

function sink(): Writable {
  return new Writable({ write: (_c, _e, done) => done() });
}

const seconds = (since: number) => Math.round((Date.now() - since) / 1000);

for (const scenario of SCENARIOS.filter((s) => !only || only.includes(s.name))) {
  describe(`cloud-init: a new node seeded with \`prep-node cloud-init --profile ${scenario.name}\` is tuned without apply`, { timeout: 1_800_000 }, () => {
    let vm: Vm;
    let dir: string;
    let config: string;
    let userData: string;
    /** What --profile gets: the built-in's name or the test's profile file. */
    let profile = scenario.name;
    const timings: string[] = [];

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'prep-node-cloudinit-e2e-'));
      if (scenario.yaml) {
        profile = join(dir, `${scenario.name}.yaml`);
        writeFileSync(profile, scenario.yaml);
      }
      const seedDir = join(dir, 'seed');
      mkdirSync(seedDir);
      userData = join(seedDir, 'user-data');
      assert.equal(await cloudInit({ profile: profile, output: userData }, { stdout: sink(), stderr: sink(), version: packageVersion() }), 0);
      const meta = `instance-id: prep-node-${randomBytes(4).toString('hex')}\nlocal-hostname: prepnode-vm\n`;
      const metaFile = join(seedDir, 'meta-data');
      writeFileSync(metaFile, meta);
      const seed = join(dir, 'seed.iso');
      const iso = spawnSync('genisoimage', ['-quiet', '-output', seed, '-volid', 'cidata', '-joliet', '-rock', userData, metaFile], { encoding: 'utf8' });
      assert.equal(iso.status, 0, `genisoimage (apt-get install genisoimage): ${iso.error?.message ?? iso.stderr}`);

      const t0 = Date.now();
      vm = await bootSeeded(seed);
      timings.push(`SSH up ${seconds(t0)} s after qemu.sh up (image variant built or reused, accel ${vm.target.accel})`);
      const wait = guest(vm, 'cloud-init status --wait --long', 900_000);
      timings.push(`cloud-init done ${seconds(t0)} s after qemu.sh up; in-guest: ${guest(vm, "grep -o 'finished at .*Up [0-9.]* seconds' /var/log/cloud-init.log | tail -n1").stdout.trim()}`);
      assert.match(wait.stdout, /^status: done$/m, `cloud-init status:\n${wait.stdout}${wait.stderr}`);
      config = clientConfig(dir, vm, vm.target.knownHosts);
    });
    after(async () => {
      await vm?.down();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    test('the guest ran our user-data from the NoCloud seed, and no apply ever ran', (t: TestContext) => {
      for (const line of timings) t.diagnostic(line);
      const status = guest(vm, 'cat /run/cloud-init/status.json; echo @@; cat /var/lib/cloud/instance/user-data.txt; echo @@; ls -d /var/lib/prep-node 2>&1');
      const [statusJson = '', seen = '', stateDir = ''] = status.stdout.split('@@\n');
      assert.match(statusJson, /DataSourceNoCloud/);
      assert.match(statusJson, /"errors": \[\]/);
      assert.equal(seen.replace(/\n$/, ''), readFileSync(userData, 'utf8').replace(/\n$/, ''));
      assert.match(stateDir, /No such file/, 'no /var/lib/prep-node: the journal apply keeps was never written');
    });

    const checkTuned = (t: TestContext, when: string) => {
      const r = runCli(vm, ['check', '-F', config, '--json', '--steal-seconds', '1', '--profile', profile, vm.spec('root')]);
      assert.ok(r.status === 0 || r.status === 1, `exit ${r.status}: ${r.stderr}`);
      const doc = JSON.parse(r.stdout) as CheckDocument;
      const byId = new Map(doc.hosts[0]!.checks.map((c) => [c.id, c]));
      for (const id of TUNED) assert.equal(byId.get(id)?.status, 'pass', `${when}: ${id}: ${JSON.stringify(byId.get(id))}`);
      if (scenario.guest) {
        const [command, first, rebooted] = scenario.guest;
        const expected = when === 'first boot' ? first : rebooted;
        const r = guest(vm, command);
        assert.match(r.stdout, expected, `${when}: ${command}: ${r.stdout}${r.stderr}`);
      }
      // One queue on QEMU's user-mode NIC: only the provider can add queues, so at best a warning.
      assert.notEqual(byId.get('net.multiqueue')?.status, 'fail', JSON.stringify(byId.get('net.multiqueue')));
      t.diagnostic(`${when}: ${[...byId.values()].map((c) => `${c.id} ${c.status}`).join(', ')}`);
    };

    /** Every tuner plans from the node as it is: nothing to change and no file to write means apply would be a no-op. */
    const assertNothingToApply = (when: string) => {
      const r = runNode(
        vm,
        `
        import { openHost } from ${JSON.stringify(join(REPO, 'dist/src/host/connect.js'))};
        import { parseTarget } from ${JSON.stringify(join(REPO, 'dist/src/host/target.js'))};
        import { loadProfile } from ${JSON.stringify(join(REPO, 'dist/src/profiles/load.js'))};
        import { planAll } from ${JSON.stringify(join(REPO, 'dist/src/tuners/runner.js'))};
        const host = await openHost(parseTarget(${JSON.stringify(vm.spec('root'))}), { configFile: ${JSON.stringify(config)} });
        try {
          const plans = await planAll({ host, profile: await loadProfile(${JSON.stringify(profile)}), cache: new Map() });
          console.log(JSON.stringify(plans.map((p) => ({ tuner: p.tuner, changes: p.changes, files: p.files.map((f) => f.path) }))));
        } finally { await host.close(); }`,
      );
      assert.equal(r.status, 0, r.stderr);
      const plans = JSON.parse(r.stdout) as { tuner: string; changes: unknown[]; files: string[] }[];
      assert.ok(plans.length >= 3, r.stdout);
      for (const p of plans) assert.deepEqual({ tuner: p.tuner, changes: p.changes, files: p.files }, { tuner: p.tuner, changes: [], files: [] }, `${when}: apply would still change ${p.tuner}`);
    };

    test(`prep-node check --profile ${scenario.name} passes what the profile tunes`, (t: TestContext) => checkTuned(t, 'first boot'));

    test('apply would change nothing: every tuner plans no change and no file', () => assertNothingToApply('first boot'));

    test('after a reboot, without cloud-init running the document again, the node is still tuned', (t: TestContext) => {
      const bootId = () => guest(vm, 'cat /proc/sys/kernel/random/boot_id', 30_000).stdout.trim();
      const first = bootId();
      assert.match(first, /^[0-9a-f-]{36}$/);
      const t0 = Date.now();
      guest(vm, 'systemctl reboot', 30_000); // the session may end before it answers
      let now = first;
      while (Date.now() - t0 < 600_000) {
        now = bootId();
        if (now && now !== first) break;
        spawnSync('sleep', ['2']);
      }
      assert.ok(now && now !== first, 'the guest came back with a new boot id');
      const wait = guest(vm, 'cloud-init status --wait --long', 600_000);
      assert.match(wait.stdout, /^status: done$/m, wait.stdout + wait.stderr);
      t.diagnostic(`reboot: SSH back and cloud-init done ${seconds(t0)} s after systemctl reboot`);
      // The per-instance steps (write_files, runcmd) were skipped on this boot.
      const skipped = guest(vm, "awk '/running .init-local. at/ { n++ } n == 2' /var/log/cloud-init.log | grep -oE 'config-(write-files|scripts-user) already ran' | sort -u").stdout;
      assert.deepEqual(skipped.trim().split('\n'), ['config-scripts-user already ran', 'config-write-files already ran'], 'the second boot skipped write_files and runcmd');
      checkTuned(t, 'after reboot');
      assertNothingToApply('after reboot');
    });
  });
}
