import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bpfFs, judgeBpfFs } from '../../../src/checks/bpf-fs.js';
import { BPFFS_SCRIPT } from '../../../src/probes/mounts.js';
import { fixtureContext } from '../../helpers/fixture-host.js';
import { fixture } from '../../helpers/fixtures.js';

const FSTAB = "echo 'bpffs /sys/fs/bpf bpf rw,nosuid,nodev,noexec,relatime,mode=700 0 0' >> /etc/fstab";

// [fixture, status, observed, remedy]
const cases: [string, string, RegExp, string | null][] = [
  ['debian-12-vm', 'pass', /^mounted \(rw, mode=700\); systemd 252 mounts it at boot$/, null],
  ['debian-12-vm-fstab', 'pass', /^mounted \(rw, mode=0777 \(default\)\); systemd 252 mounts it at boot; \/etc\/fstab: bpffs \/sys\/fs\/bpf bpf /, null],
  // Recorded after umount on the VM: systemd would mount it at the next boot, so mounting now suffices.
  ['debian-12-vm-unmounted', 'fail', /^\/sys\/fs\/bpf not mounted; systemd 252 is PID 1; mounted again at the next boot \(systemd 252 mounts it at boot\)$/, 'mount -t bpf -o mode=700 bpf /sys/fs/bpf'],
  ['local-firecracker-unmounted', 'fail', /^\/sys\/fs\/bpf not mounted; PID 1 is process_api, not systemd$/, `mount -t bpf -o mode=700 bpf /sys/fs/bpf && ${FSTAB}`],
  ['local-firecracker-mounted-by-hand', 'warn', /^mounted, but not persistent: PID 1 is process_api, not systemd, so nothing mounts it at boot; no \/etc\/fstab line/, FSTAB],
  ['ubuntu-20.04', 'pass', /^mounted \(rw, mode=700\); systemd 245 mounts it at boot$/, null],
  ['ubuntu-22.04', 'pass', /systemd 249 mounts it at boot$/, null],
  ['ubuntu-24.04', 'pass', /systemd 255 mounts it at boot$/, null],
  ['debian-10', 'pass', /systemd 241 mounts it at boot$/, null],
  ['debian-11', 'pass', /systemd 247 mounts it at boot$/, null],
  ['rhel-8', 'pass', /systemd 239 mounts it at boot$/, null],
  ['rhel-9', 'pass', /systemd 252 mounts it at boot$/, null],
  ['amazon-linux-2023', 'pass', /systemd 252 mounts it at boot$/, null],
  ['centos-7-mount-unit', 'pass', /^mounted \(rw, mode=700\); mount unit \/etc\/systemd\/system\/sys-fs-bpf\.mount$/, null],
  ['amazon-linux-2-by-hand', 'warn', /^mounted, but not persistent: systemd 219 predates bpffs mounting \(v238\)/, FSTAB],
  ['amazon-linux-2-unmounted', 'fail', /^\/sys\/fs\/bpf not mounted; systemd 219 is PID 1$/, `mount -t bpf -o mode=700 bpf /sys/fs/bpf && ${FSTAB}`],
  ['lxc-container-cilium-private', 'fail', /^\/sys\/fs\/bpf not mounted; systemd 249 is PID 1; mounted again at the next boot .*; bpffs also at \/run\/cilium\/bpffs$/, 'mount -t bpf -o mode=700 bpf /sys/fs/bpf'],
];

for (const [name, status, observed, remedy] of cases) {
  test(`bpf.fs on ${name} is ${status}`, () => {
    const f = judgeBpfFs(fixture(`bpf.fs/${name}.txt`));
    assert.equal(f.status, status, f.observed);
    assert.match(f.observed, observed);
    assert.equal(f.expected, 'bpf filesystem at /sys/fs/bpf, mounted again at boot');
    assert.equal(f.remedy, remedy ?? undefined);
    if (status !== 'pass') assert.ok(f.detail);
  });
}

test('a non-bpf filesystem at /sys/fs/bpf fails', () => {
  const f = judgeBpfFs("@@ mounts\ntmpfs /sys/fs/bpf tmpfs rw 0 0\n@@ pid1\nsystemd\n@@ systemd-booted\nyes\n@@ systemd-version\nsystemd 252 (252.39-1~deb12u2)\n@@ fstab\n@@ mount-units\n");
  assert.equal(f.status, 'fail');
  assert.match(f.observed, /^\/sys\/fs\/bpf is tmpfs, not bpf/);
});

test('fail detail cites the requirement and the systemd version that mounts it', () => {
  assert.match(judgeBpfFs(fixture('bpf.fs/local-firecracker-unmounted.txt')).detail ?? '', /Cilium "System Requirements".*systemd >= 238/);
});

test('the check runs one script without sudo', async () => {
  const ctx = await fixtureContext({ [BPFFS_SCRIPT]: fixture('bpf.fs/rhel-9.txt') });
  const f = await bpfFs.run(ctx);
  assert.equal(f.status, 'pass');
  assert.deepEqual(ctx.host.commands, [BPFFS_SCRIPT]);
});
