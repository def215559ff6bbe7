import { test } from 'node:test';
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
  ['unknown key', 'name: x\ndescription: d\nkernel: {min: "5.10", recommended: "5.15", maxx: 1}\n', /^mine\.yaml:3:9: kernel: .*maxx/],
  ['missing key', 'name: x\ndescription: d\n', /^mine\.yaml:1:1: kernel: .*expected object/],
  ['bad YAML', 'name: x\n  description: : d\n', /^mine\.yaml:\d+:\d+: invalid YAML/],
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
