// Invalid UTF-8 in a file an operator gives (profile, inventory) is refused with the file and the
// byte offset of the first bad sequence, instead of silently becoming U+FFFD.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadInventory } from '../../src/inventory.js';
import { loadProfile } from '../../src/profiles/load.js';
import { UsageError } from '../../src/errors.js';
import { invalidUtf8Offset } from '../../src/yaml-source.js';

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'pn-utf8-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

test('the offset of the first invalid sequence: stray continuation, truncated, overlong, surrogate, past U+10FFFF', () => {
  const at = (...bytes: number[]) => invalidUtf8Offset(Buffer.from(bytes));
  assert.equal(at(0x61, 0x80), 1);
  assert.equal(at(0x61, 0x62, 0xe2, 0x82), 2);
  assert.equal(at(0xc0, 0xaf), 0);
  assert.equal(at(0x61, 0xed, 0xa0, 0x80), 1);
  assert.equal(at(0xf4, 0x90, 0x80, 0x80), 0);
  assert.equal(at(0xff), 0);
  // valid: é, €, 𝄞; the offset is then the length
  assert.equal(invalidUtf8Offset(Buffer.from('é€𝄞', 'utf8')), 9);
});

test('a profile with a Latin-1 byte is refused at its byte offset', async () => {
  const file = join(dir, 'latin1.yaml');
  writeFileSync(file, Buffer.concat([Buffer.from('name: x\ndescription: caf'), Buffer.from([0xe9]), Buffer.from('\n')]));
  await assert.rejects(loadProfile(file), (err: unknown) => err instanceof UsageError && /^profile file .*latin1\.yaml: invalid UTF-8 at byte offset 24; save it as UTF-8$/.test(err.message));
});

test('an inventory with an invalid byte is refused at its byte offset', async () => {
  const file = join(dir, 'inv.yaml');
  writeFileSync(file, Buffer.concat([Buffer.from('hosts:\n  - node'), Buffer.from([0xc3, 0x28]), Buffer.from('\n')]));
  await assert.rejects(loadInventory(file), (err: unknown) => err instanceof UsageError && /^inventory .*inv\.yaml: invalid UTF-8 at byte offset 15; save it as UTF-8$/.test(err.message));
});

test('valid UTF-8 with a BOM and non-ASCII text still loads', async () => {
  const file = join(dir, 'ok.yaml');
  writeFileSync(file, '\ufeffname: ok\ndescription: "café – nœud"\nkernel: {min: "5.10", recommended: "5.15"}\n');
  assert.equal((await loadProfile(file)).description, 'café – nœud');
});
