import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NodeRefusal } from '../../../src/errors.js';
import { sysctlCommand } from '../../../src/probes/sysctl.js';
import { modulesCommand } from '../../../src/probes/modules.js';
import { BPFFS_SCRIPT } from '../../../src/probes/mounts.js';
import { parseProfile } from '../../../src/profiles/load.js';
import { readFilesCommand } from '../../../src/tuners/files.js';
import { sysctlBootCommands, sysctlFile, sysctlTuner } from '../../../src/tuners/sysctl.js';
import { modulesFile, modulesTuner } from '../../../src/tuners/modules.js';
import { bpffsTuner, FSTAB_LINE } from '../../../src/tuners/bpffs.js';
import { FixtureHost, type Answer } from '../../helpers/fixture-host.js';

const BASE = 'name: t\ndescription: d\nkernel: {min: "5.10", recommended: "5.15"}\nchannels: keep\nmtu: {apply: false}\n';
const profileOf = (extra: string) => parseProfile(BASE + extra, 't.yaml');
const ctx = (answers: Record<string, Answer>, extra: string) => ({ host: new FixtureHost(answers), profile: profileOf(extra), cache: new Map() });

/** readFilesCommand's answer for files: absent (undefined) or content with mode 644 root. */
function filesAnswer(files: Record<string, string | undefined>): string {
  return Object.entries(files)
    .map(([p, c]) => `@@ ${p}\n${c === undefined ? 'A' : `F 644 0 0\n${Buffer.from(c).toString('base64')}`}\n`)
    .join('');
}
const sysctlAnswer = (values: Record<string, string | null>) =>
  Object.entries(values)
    .map(([k, v]) => `@@ ${k.replace(/\./g, '/')}\n${v ?? '@@!absent'}\n`)
    .join('');

const SYSCTLS = 'sysctl:\n  net.core.somaxconn: 32768\n  fs.file-max: 2097152\n  net.ipv4.tcp_rmem: "4096\\t131072\\t16777216"\n  net.netfilter.nf_conntrack_max: 262144\noptionalSysctl: [net.netfilter.nf_conntrack_max]\n';
const KEYS = ['fs.file-max', 'net.core.somaxconn', 'net.ipv4.tcp_rmem', 'net.netfilter.nf_conntrack_max'];

test('sysctl plan: current → desired, a capacity limit above the profile kept and left out of the file, a triplet raised field by field', async () => {
  const c = ctx(
    {
      [sysctlCommand(KEYS)]: sysctlAnswer({ 'fs.file-max': '9223372036854775807', 'net.core.somaxconn': '4096', 'net.ipv4.tcp_rmem': '4096\t87380\t33554432', 'net.netfilter.nf_conntrack_max': null }),
      [readFilesCommand(['/etc/sysctl.d/90-prep-node.conf'])]: filesAnswer({ '/etc/sysctl.d/90-prep-node.conf': undefined }),
    },
    SYSCTLS,
  );
  const plan = await sysctlTuner.plan(c);
  assert.deepEqual(
    plan.changes.map((x) => `${x.key}: ${x.current} → ${x.desired}`),
    ['net.core.somaxconn: 4096 → 32768', 'net.ipv4.tcp_rmem: 4096 87380 33554432 → 4096 131072 33554432'],
  );
  assert.deepEqual(plan.originals[0], { tuner: 'sysctl', key: 'net.core.somaxconn', value: '4096' });
  assert.ok(plan.unchanged.some((u) => u.startsWith('fs.file-max = 9223372036854775807 (at least 2097152')));
  assert.match(plan.notes.join('\n'), /nf_conntrack_max: absent on this kernel \(optional\)/);
  const content = plan.files[0]?.content ?? '';
  assert.doesNotMatch(content, /fs\.file-max/, 'a reboot must not lower file-max');
  assert.match(content, /^net\.core\.somaxconn = 32768$/m);
  assert.match(content, /^net\.ipv4\.tcp_rmem = 4096 131072 33554432$/m, 'the triplet persists with the larger field');
  assert.match(content, /^-net\.netfilter\.nf_conntrack_max = 262144$/m, 'an optional key is prefixed so a kernel without it ignores the line');
});

test('sysctl plan: nothing to do when values and file are already right', async () => {
  const profile = profileOf('sysctl:\n  net.core.somaxconn: 32768\n');
  const file = sysctlFile(profile);
  const c = {
    host: new FixtureHost({
      [sysctlCommand(['net.core.somaxconn'])]: sysctlAnswer({ 'net.core.somaxconn': '32768' }),
      [readFilesCommand([file.path])]: filesAnswer({ [file.path]: file.content }),
    }),
    profile,
    cache: new Map(),
  };
  const plan = await sysctlTuner.plan(c);
  assert.equal(plan.changes.length + plan.files.length, 0);
});

test('sysctl plan: an unknown key that is not optional is refused before anything is written', async () => {
  const c = ctx({ [sysctlCommand(['net.core.nosuchthing'])]: sysctlAnswer({ 'net.core.nosuchthing': null }) }, 'sysctl:\n  net.core.nosuchthing: 1\n');
  await assert.rejects(sysctlTuner.plan(c), (err: unknown) => err instanceof NodeRefusal && /unknown sysctl on this kernel: net\.core\.nosuchthing \(fix the name/.test(err.message));
  assert.ok(c.host.commands.every((cmd) => !cmd.includes('printf')), 'nothing written');
});

test('sysctl restore writes /proc/sys directly (no procps needed), quoting values', () => {
  assert.equal(sysctlTuner.restoreCommand({ tuner: 'sysctl', key: 'net.ipv4.ip_local_port_range', value: '32768\t60999' }), "printf '%s\\n' '32768\t60999' > /proc/sys/net/ipv4/ip_local_port_range");
});

test('sysctl boot commands for cloud-init keep the floor rule for single-number limits', () => {
  const cmds = sysctlBootCommands(profileOf(SYSCTLS));
  assert.equal(cmds.at(-1), 'sysctl -e -p /etc/sysctl.d/90-prep-node.conf');
  assert.ok(cmds.some((c) => c.includes('/proc/sys/fs/file-max') && c.includes('-gt 2097152')));
});

const MODS = ['ip_vs', 'br_netfilter'];
test('modules plan: a loadable module is loaded and persisted; a built-in one needs nothing', async () => {
  const out = '@@ release\n6.1.0-x\n@@ proc-modules\n@@ modules-dir\n@@ modules.dep\nkernel/net/netfilter/ipvs/ip_vs.ko\n@@ modules.builtin\nkernel/net/bridge/br_netfilter.ko\n@@ sys-module\n@@ feature-files\n';
  const c = ctx({ [modulesCommand(MODS)]: out, [readFilesCommand(['/etc/modules-load.d/prep-node.conf'])]: filesAnswer({ '/etc/modules-load.d/prep-node.conf': undefined }) }, 'modules: [ip_vs, br_netfilter]\n');
  const plan = await modulesTuner.plan(c);
  assert.deepEqual(plan.changes.map((x) => x.key), ['ip_vs']);
  assert.deepEqual(plan.unchanged, ['br_netfilter built in']);
  assert.equal(plan.files[0]?.content, modulesFile(c.profile).content);
  assert.match(modulesFile(c.profile).content ?? '', /\nip_vs\nbr_netfilter\n$/);
  assert.match(modulesTuner.restoreCommand(plan.originals[0]!), /rmmod ip_vs/);
});

test('modules plan: a module the kernel lacks is refused in one line naming it and the fix', async () => {
  const out = '@@ release\n6.1.0-x\n@@ proc-modules\n@@ modules-dir\n@@ modules.dep\n@@ modules.builtin\n@@ sys-module\n@@ feature-files\n';
  const c = ctx({ [modulesCommand(MODS)]: out }, 'modules: [ip_vs, br_netfilter]\n');
  await assert.rejects(modulesTuner.plan(c), (err: unknown) => err instanceof NodeRefusal && /lacks modules ip_vs, br_netfilter .*linux-modules-extra-6\.1\.0-x/.test(err.message) && !err.message.includes('\n'));
});

test('modules plan: a kernel built without module support is refused without advising extra module packages', async () => {
  const out = '@@ release\n6.18.0-custom\n@@ modules.builtin\nkernel/net/bridge/br_netfilter.ko\n@@ sys-module\n@@ feature-files\n';
  const c = ctx({ [modulesCommand(MODS)]: out }, 'modules: [ip_vs, br_netfilter]\n');
  await assert.rejects(modulesTuner.plan(c), (err: unknown) => {
    assert.ok(err instanceof NodeRefusal);
    assert.match(err.message, /lacks module ip_vs \(ip_vs: built without module support, and ip_vs is not built in\): boot a kernel with module support or with them built in/);
    assert.doesNotMatch(err.message, /linux-modules-extra/);
    return true;
  });
});

test('bpffs plan: unmounted without systemd → mount now and an fstab line appended to the existing file', async () => {
  const out = '@@ mounts\n@@ pid1\ninit\n@@ systemd-booted\nno\n@@ systemd-version\n@@ fstab\n@@ mount-units\n';
  const c = ctx({ [BPFFS_SCRIPT]: out, [readFilesCommand(['/etc/fstab'])]: filesAnswer({ '/etc/fstab': '/dev/vda1 / ext4 defaults 0 1' }) }, '');
  const plan = await bpffsTuner.plan(c);
  assert.deepEqual(plan.changes.map((x) => `${x.key} ${x.current}`), ['/sys/fs/bpf not mounted']);
  assert.equal(plan.files[0]?.content, `/dev/vda1 / ext4 defaults 0 1\n${FSTAB_LINE}\n`, 'a missing final newline is added first');
});

test('bpffs plan: mounted under systemd >= 238 needs nothing', async () => {
  const out = '@@ mounts\nbpf /sys/fs/bpf bpf rw,nosuid,nodev,noexec,relatime,mode=700 0 0\n@@ pid1\nsystemd\n@@ systemd-booted\nyes\n@@ systemd-version\nsystemd 252 (252.30-1~deb12u2)\n@@ fstab\n@@ mount-units\n';
  const plan = await bpffsTuner.plan(ctx({ [BPFFS_SCRIPT]: out }, ''));
  assert.equal(plan.changes.length + plan.files.length, 0);
});

test('sysctl plan: a key a profile module brings is not refused before the module loads', async () => {
  const c = ctx({ [sysctlCommand(['net.bridge.bridge-nf-call-iptables'])]: sysctlAnswer({ 'net.bridge.bridge-nf-call-iptables': null }), [readFilesCommand(['/etc/sysctl.d/90-prep-node.conf'])]: filesAnswer({ '/etc/sysctl.d/90-prep-node.conf': undefined }) }, 'modules: [br_netfilter]\nsysctl:\n  net.bridge.bridge-nf-call-iptables: 1\n');
  const plan = await sysctlTuner.plan(c);
  assert.deepEqual(plan.notes, ['net.bridge.bridge-nf-call-iptables: appears when br_netfilter loads (set then)']);
  const without = ctx({ [sysctlCommand(['net.bridge.bridge-nf-call-iptables'])]: sysctlAnswer({ 'net.bridge.bridge-nf-call-iptables': null }) }, 'sysctl:\n  net.bridge.bridge-nf-call-iptables: 1\n');
  await assert.rejects(sysctlTuner.plan(without), NodeRefusal, 'without the module in the profile it is an unknown key');
});

test('modules plan: every module the load brings in is journaled in load order, so rollback unloads users first', async () => {
  const out = '@@ release\n6.1.0-x\n@@ proc-modules\nllc 16384 0 - Live 0x0\n@@ modules-dir\n@@ modules.dep\nkernel/net/bridge/br_netfilter.ko\n@@ modules.builtin\n@@ sys-module\n@@ feature-files\n';
  const deps = 'insmod /lib/modules/6.1.0-x/kernel/net/llc/llc.ko \ninsmod /lib/modules/6.1.0-x/kernel/net/802/stp.ko \ninsmod /lib/modules/6.1.0-x/kernel/net/bridge/bridge.ko \ninsmod /lib/modules/6.1.0-x/kernel/net/bridge/br_netfilter.ko \n';
  const c = ctx({ [modulesCommand(['br_netfilter'])]: out, 'modprobe --show-depends -a br_netfilter': deps, [readFilesCommand(['/etc/modules-load.d/prep-node.conf'])]: filesAnswer({ '/etc/modules-load.d/prep-node.conf': undefined }) }, 'modules: [br_netfilter]\n');
  const plan = await modulesTuner.plan(c);
  assert.deepEqual(plan.originals.map((o) => o.key), ['stp', 'bridge', 'br_netfilter'], 'llc was loaded before: not ours to unload');
});
