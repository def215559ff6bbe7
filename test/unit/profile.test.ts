import { after, before, describe, test } from 'node:test';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { builtinProfiles, loadProfile, parseProfile } from '../../src/profiles/load.js';
import { UsageError } from '../../src/errors.js';

test('every built-in profile loads', async () => {
  const names = await builtinProfiles();
  assert.ok(names.includes('k8s-worker'));
  for (const name of names) assert.equal((await loadProfile(name)).name, name);
});

test('the default profile requires 5.10 and recommends 5.15', async () => {
  const p = await loadProfile();
  assert.deepEqual(p.kernel, { min: '5.10', recommended: '5.15' });
});

const bad: [string, string, RegExp][] = [
  ['wrong type', 'name: x\ndescription: d\nkernel:\n  min: 5\n  recommended: "5.15"\n', /^mine\.yaml:4:8: kernel\.min: .*expected string/],
  ['not a version', 'name: x\ndescription: d\nkernel:\n  min: "lots"\n  recommended: "5.15"\n', /^mine\.yaml:4:8: kernel\.min: expected a kernel version/],
  ['unknown key', 'name: x\ndescription: d\nkernel: {min: "5.10", recommended: "5.15", maxx: 1}\n', /^mine\.yaml:3:44: kernel\.maxx: unknown key/],
  ['missing key', 'name: x\ndescription: d\n', /^mine\.yaml:1:1: kernel: .*expected object/],
  ['bad YAML', 'name: x\n  description: : d\n', /^mine\.yaml:\d+:\d+: invalid YAML/],
  ['MTU below 68', 'name: x\ndescription: d\nkernel: {min: "5.10", recommended: "5.15"}\nmtu: {primary: 67}\n', /^mine\.yaml:4:16: mtu\.primary: .*>=68/],
  ['MTU above 65535', 'name: x\ndescription: d\nkernel: {min: "5.10", recommended: "5.15"}\nmtu: {private: 65536}\n', /^mine\.yaml:4:16: mtu\.private: .*<=65535/],
  ['a sysctl value of the wrong type', 'name: x\ndescription: d\nkernel: {min: "5.10", recommended: "5.15"}\nsysctl:\n  net.core.somaxconn: lots\n', /^mine\.yaml:5:23: sysctl\."net\.core\.somaxconn": expected an integer, got "lots"$/],
  ['channels', 'name: x\ndescription: d\nkernel: {min: "5.10", recommended: "5.15"}\nchannels: all\n', /^mine\.yaml:4:11: channels: /],
  ['a port range past 65535', 'name: x\ndescription: d\nkernel: {min: "5.10", recommended: "5.15"}\npreflight:\n  ports: ["30000-99999"]\n', /^mine\.yaml:5:11: preflight\.ports\.0: .*between 1 and 65535/],
  ['a port that is a word', 'name: x\ndescription: d\nkernel: {min: "5.10", recommended: "5.15"}\npreflight:\n  ports: [kubelet]\n', /^mine\.yaml:5:11: preflight\.ports\.0: expected a port or a range such as "30000-32767"$/],
  ['a relative disk path', 'name: x\ndescription: d\nkernel: {min: "5.10", recommended: "5.15"}\npreflight:\n  diskPath: var/lib\n', /^mine\.yaml:5:13: preflight\.diskPath: expected an absolute path/],
];
for (const [what, text, message] of bad) {
  test(`an invalid profile is rejected with file:line:col and key path (${what})`, () => {
    assert.throws(() => parseProfile(text, 'mine.yaml'), (e: unknown) => e instanceof UsageError && message.test(e.message) && !e.message.includes('\n'));
  });
}

test('an unknown built-in name lists the built-in ones', async () => {
  await assert.rejects(loadProfile('k8s-wroker'), /no built-in profile "k8s-wroker" \(built-in: .*k8s-worker/);
  await assert.rejects(loadProfile('./does-not-exist.yaml'), /cannot be read/);
});

test('k8s-control-plane extends k8s-worker: inherits its sysctls and modules, overrides role and steal', async () => {
  const [worker, cp] = [await loadProfile('k8s-worker'), await loadProfile('k8s-control-plane')];
  assert.equal(cp.role, 'control-plane');
  assert.deepEqual(cp.sysctl, worker.sysctl);
  assert.deepEqual(cp.modules, worker.modules);
  assert.deepEqual(cp.steal, { warnPercent: 3, failPercent: 8 });
  assert.deepEqual(worker.steal, { warnPercent: 5, failPercent: 10 });
});

describe('extends', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'pn-profiles-'));
    mkdirSync(join(dir, 'base'));
    writeFileSync(join(dir, 'base', 'parent.yaml'), 'name: parent\ndescription: p\nkernel: {min: "5.10", recommended: "5.15"}\nsysctl: {net.core.somaxconn: 1024, vm.swappiness: 10}\nmodules: [ip_vs, nf_conntrack]\n');
    writeFileSync(join(dir, 'child.yaml'), 'extends: base/parent.yaml\nname: child\ndescription: c\nsysctl: {net.core.somaxconn: 4096}\nmodules: [br_netfilter]\n');
    writeFileSync(join(dir, 'mine.yaml'), 'extends: k8s-worker\nname: mine\ndescription: m\nmtu: {private: 9000}\n');
    writeFileSync(join(dir, 'badparent.yaml'), 'name: badparent\ndescription: b\nkernel:\n  min: "lots"\n  recommended: "5.15"\n');
    writeFileSync(join(dir, 'badchild.yaml'), 'extends: ./badparent.yaml\nname: badchild\ndescription: c\n');
    writeFileSync(join(dir, 'a.yaml'), 'extends: b.yaml\nname: a\ndescription: a\n');
    writeFileSync(join(dir, 'b.yaml'), 'extends: a.yaml\nname: b\ndescription: b\n');
    writeFileSync(join(dir, 'orphan.yaml'), 'extends: k8s-wroker\nname: o\ndescription: o\n');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('maps merge key by key, lists are replaced, the parent path is relative to the child', async () => {
    const p = await loadProfile(join(dir, 'child.yaml'));
    assert.equal(p.name, 'child');
    assert.deepEqual(p.sysctl, { 'net.core.somaxconn': 4096, 'vm.swappiness': 10 });
    assert.deepEqual(p.modules, ['br_netfilter']);
  });

  test('a user profile extends a built-in one by name', async () => {
    const p = await loadProfile(join(dir, 'mine.yaml'));
    assert.deepEqual(p.mtu, { primary: 1500, private: 9000, overlay: 'vxlan', apply: true });
    assert.equal(p.sysctl['net.core.somaxconn'], 32768);
  });

  test('an error in the parent names the parent file, line and column', async () => {
    await assert.rejects(loadProfile(join(dir, 'badchild.yaml')), (e: unknown) => e instanceof UsageError && /badparent\.yaml:4:8: kernel\.min: expected a kernel version/.test(e.message));
  });

  test('a cycle and a missing parent are one-line usage errors', async () => {
    await assert.rejects(loadProfile(join(dir, 'a.yaml')), (e: unknown) => e instanceof UsageError && /profile extends itself: .*a\.yaml → .*b\.yaml → a\.yaml/.test(e.message));
    await assert.rejects(loadProfile(join(dir, 'orphan.yaml')), (e: unknown) => e instanceof UsageError && /orphan\.yaml: extends: no built-in profile "k8s-wroker"/.test(e.message));
  });
});
