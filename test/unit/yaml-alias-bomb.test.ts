// A "billion laughs" document: nine levels of ten aliases each would expand to 10^9 nodes. Profiles,
// inventories (and datapath state files, through the same helper) refuse it with the file, the
// line of an alias and exit 2, instead of the yaml library's "Excessive alias count" as exit 70.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseInventory } from '../../src/inventory.js';
import { parseProfile } from '../../src/profiles/load.js';
import { UsageError } from '../../src/errors.js';

const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url));

function laughs(prefix: string): string {
  let text = `${prefix}a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n`;
  for (let i = 1; i <= 9; i++) text += `${prefix}a${i}: &a${i} [${Array(10).fill(`*a${i - 1}`).join(', ')}]\n`;
  return text;
}

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'pn-alias-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

test('a profile that is an alias bomb is refused at its first alias, exit 2 through the CLI', () => {
  const text = `name: x\ndescription: d\nkernel: {min: "5.10", recommended: "5.15"}\n${laughs('')}`;
  assert.throws(() => parseProfile(text, 'bomb.yaml'), (err: unknown) => err instanceof UsageError && /^bomb\.yaml:5:\d+: YAML aliases expand too far/.test(err.message));
  const file = join(dir, 'bomb.yaml');
  writeFileSync(file, text);
  const r = spawnSync(process.execPath, [CLI, 'profiles', 'show', file], { encoding: 'utf8' });
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /^prep-node: .*bomb\.yaml:5:\d+: YAML aliases expand too far/);
  assert.doesNotMatch(r.stderr, /internal error|Excessive alias/);
});

test('an inventory that is an alias bomb is refused with its file, exit 2 through the CLI', () => {
  const text = `${laughs('# ')}x: &x [${Array(10).fill('"root@node1"').join(', ')}]\nl1: &l1 [${Array(10).fill('*x').join(', ')}]\nl2: &l2 [${Array(10).fill('*l1').join(', ')}]\nl3: &l3 [${Array(10).fill('*l2').join(', ')}]\nhosts: [${Array(10).fill('*l3').join(', ')}]\n`;
  assert.throws(() => parseInventory(text, 'inv.yaml'), (err: unknown) => err instanceof UsageError && /^inv\.yaml:\d+:\d+: YAML aliases expand too far/.test(err.message));
  const file = join(dir, 'inv.yaml');
  writeFileSync(file, text);
  const r = spawnSync(process.execPath, [CLI, 'check', '--inventory', file], { encoding: 'utf8' });
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /inv\.yaml:\d+:\d+: YAML aliases expand too far/);
});

test('an alias with no anchor is named, not an internal error', () => {
  assert.throws(() => parseProfile('name: x\ndescription: *desc\n', 'mine.yaml'), /^UsageError: mine\.yaml:2:14: alias \*desc has no anchor &desc before it/);
});

test('a few aliases (a shared block reused) still load', () => {
  const p = parseProfile('name: x\ndescription: d\nkernel: &k {min: "5.10", recommended: "5.15"}\n', 'ok.yaml');
  assert.equal(p.kernel.min, '5.10');
});
