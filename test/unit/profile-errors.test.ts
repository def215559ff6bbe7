// What a new user meets first when a profile is wrong: the unknown key at its own line and column,
// why a --profile file cannot be read, and an empty file named as empty.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadProfile, parseProfile } from '../../src/profiles/load.js';
import { UsageError } from '../../src/errors.js';

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'pn-profile-errors-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

const rejects = async (spec: string, message: RegExp) => {
  await assert.rejects(loadProfile(spec), (err: unknown) => err instanceof UsageError && message.test(err.message));
};

test('an unknown top-level key is reported at its own line and column, not 1:1 (top level)', () => {
  assert.throws(
    () => parseProfile('name: x\ndescription: d\nkernel: {min: "5.10", recommended: "5.15"}\n  \n  # note\nmtux: 1\n', 'mine.yaml'),
    /^UsageError: mine\.yaml:6:1: mtux: unknown key/,
  );
});

test('an unknown key is reported before the key it misspells is reported missing', () => {
  assert.throws(() => parseProfile('name: x\ndescription: d\nkernal:\n  min: "5.10"\n', 'mine.yaml'), /^UsageError: mine\.yaml:3:1: kernal: unknown key/);
});

test('an unknown nested key in a child profile points into the child file', async () => {
  const file = join(dir, 'child.yaml');
  writeFileSync(file, 'extends: k8s-worker\nname: child\nmtu:\n  primary: 1500\n  primry: 1400\n');
  await rejects(file, /child\.yaml:5:3: mtu\.primry: unknown key/);
});

test('a --profile file that cannot be read says why: no such file, a directory', async () => {
  await rejects(join(dir, 'nosuch.yaml'), /profile file .*nosuch\.yaml cannot be read: no such file$/);
  mkdirSync(join(dir, 'adir.yaml'));
  await rejects(join(dir, 'adir.yaml'), /adir\.yaml cannot be read: is a directory, not a file$/);
});

test('a missing file named by extends: says which profile extends it and why', async () => {
  const file = join(dir, 'orphan.yaml');
  writeFileSync(file, 'extends: ./gone.yaml\nname: orphan\n');
  await rejects(file, /orphan\.yaml: extends: profile file \.\/gone\.yaml cannot be read: no such file$/);
});

test('an empty profile file (or only comments) is called empty, not "expected object, received null"', async () => {
  for (const [name, text] of [['empty.yaml', ''], ['comments.yaml', '# nothing yet\n'], ['null.yaml', '~\n']] as const) {
    writeFileSync(join(dir, name), text);
    await rejects(join(dir, name), /: the profile is empty; it needs at least name, description and kernel/);
  }
});
