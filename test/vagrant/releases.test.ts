// Debian 11 (bullseye, 5.10) and 13 (trixie, 6.12) guests beside the Debian 12 one: the same harness
// (qemu.sh, the image recipe of image.sh on another suite: image-bullseye.sh, image-trixie.sh, cached
// under their own keys), prep-node run against each over SSH as a user would: the check catalogue,
// `datapath selftest` with real traffic on the guest's own kernel, and datapath.features before and
// after the loader is there. Apply → reboot → check → rollback and the other long files stay on
// Debian 12 (apply.test.ts, mtu-revert.test.ts, datapath*.test.ts): `make test`'s budget.
//   PREP_NODE_VM_RELEASES=bullseye,trixie   (default both)
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bootVm, clientConfig, runCli, type Vm } from '../helpers/vm.js';
import { sshVmOk } from '../helpers/vm-reboot.js';
import type { CheckDocument } from '../../src/report/json.js';

const RELEASES: Record<string, { debian: string; kernel: RegExp; version: string; features: string }> = {
  bullseye: { debian: '11', kernel: /^5\.10\.\d+-\d+-amd64$/, version: 'warn', features: 'warn' },
  trixie: { debian: '13', kernel: /^6\.12\.\d+\+deb13-amd64$/, version: 'pass', features: 'pass' },
};
const wanted = (process.env.PREP_NODE_VM_RELEASES ?? 'bullseye,trixie').split(',').filter(Boolean);

for (const release of wanted) {
  const want = RELEASES[release];
  describe(`Debian ${want?.debian ?? '?'} (${release}) guest: check and datapath selftest`, { timeout: 1_200_000 }, () => {
    let vm: Vm;
    let dir: string;
    let config: string;
    let t0 = 0;

    before(async () => {
      t0 = Date.now();
      assert.ok(want, `PREP_NODE_VM_RELEASES: unknown release ${release} (bullseye, trixie)`);
      vm = await bootVm('qemu', release);
      dir = mkdtempSync(join(tmpdir(), `prep-node-vm-${release}-`));
      config = clientConfig(dir, vm, vm.target.knownHosts);
    });
    after(async () => {
      await vm?.down();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    const check = () => {
      const r = runCli(vm, ['check', '-F', config, '--json', '--steal-seconds', '1', vm.spec(vm.target.sudoUser)]);
      assert.ok(r.status === 0 || r.status === 1, r.stderr);
      const doc = JSON.parse(r.stdout) as CheckDocument;
      return new Map(doc.hosts[0]!.checks.map((c) => [c.id, c]));
    };

    test('the guest runs its release\'s kernel', (t) => {
      const [kernel, version] = sshVmOk(vm, 'uname -r; cat /etc/debian_version').trim().split('\n');
      t.diagnostic(`${release}: kernel ${kernel}, Debian ${version}, up after ${((Date.now() - t0) / 1000).toFixed(0)} s (${vm.target.accel})`);
      assert.match(kernel ?? '', want!.kernel);
      assert.match(version ?? '', new RegExp(`^${want!.debian}(\\.|$)|^${release}/sid$`));
    });

    test('check: the catalogue reports what this release is; datapath.features is skipped until a loader is there', (t) => {
      const t1 = Date.now();
      const byId = check();
      t.diagnostic(`check: ${((Date.now() - t1) / 1000).toFixed(1)} s; ${[...byId.values()].map((c) => `${c.id}=${c.status}`).join(' ')}`);
      for (const id of ['kernel.btf', 'bpf.fs', 'cgroup.v2', 'net.virtio']) assert.equal(byId.get(id)?.status, 'pass', `${id}: ${JSON.stringify(byId.get(id))}`);
      assert.equal(byId.get('kernel.version')?.status, want!.version, JSON.stringify(byId.get('kernel.version')));
      assert.equal(byId.get('datapath.features')?.status, 'skip', JSON.stringify(byId.get('datapath.features')));
      for (const c of byId.values()) assert.notEqual(c.status, 'error', `${c.id}: ${JSON.stringify(c)}`);
    });

    test('datapath selftest: 14 of 14 steps on the guest\'s kernel', (t) => {
      const t1 = Date.now();
      const r = runCli(vm, ['datapath', 'selftest', '-F', config, vm.spec(vm.target.sudoUser)]);
      t.diagnostic(`selftest: exit ${r.status}, ${((Date.now() - t1) / 1000).toFixed(1)} s`);
      assert.equal(r.status, 0, r.stdout + r.stderr);
      assert.match(r.stdout, /: selftest passed: 14 of 14 steps$/m, r.stdout);
    });

    test('check again: datapath.features probed by the uploaded loader', (t) => {
      const f = check().get('datapath.features');
      t.diagnostic(`datapath.features: ${f?.status}: ${f?.observed}`);
      assert.equal(f?.status, want!.features, JSON.stringify(f));
      if (release === 'bullseye') assert.match(f.observed, /EPERM, not ECONNREFUSED/);
      t.diagnostic(`${release}: boot, check, selftest, check: ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    });
  });
}
