// Oversized input: a profile or inventory past its size limit is refused with the file and the
// limit (exit 2, before it is parsed), and a 200k-host inventory, under the limit, is resolved
// without overflowing the stack (it used to exit 70 through specs.push(...hosts)).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { resolveHosts } from '../../src/commands/hosts.js';
import { loadInventory } from '../../src/inventory.js';
import { loadKnownHosts, verifyHostKey } from '../../src/host/known-hosts.js';
import { UsageError } from '../../src/errors.js';

const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url));
let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'pn-size-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

test('a profile file over 1 MiB is refused before parsing, naming the file and the limit (exit 2)', () => {
  const file = join(dir, 'huge.yaml');
  writeFileSync(file, `name: x\ndescription: "${'x'.repeat(1024 * 1024)}"\n`);
  const r = spawnSync(process.execPath, [CLI, 'profiles', 'show', file], { encoding: 'utf8' });
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /^prep-node: profile file .*huge\.yaml is \d+ bytes; prep-node reads at most 1048576/);
});

test('an inventory over 16 MiB is refused before parsing, naming the file and the limit', async () => {
  const file = join(dir, 'huge-inv.yaml');
  writeFileSync(file, `hosts:\n${'  - root@node1\n'.repeat(1_300_000)}`);
  await assert.rejects(loadInventory(file), (err: unknown) => err instanceof UsageError && /^inventory .*huge-inv\.yaml is \d+ bytes; prep-node reads at most 16777216/.test(err.message));
});

test('a 200,000-host inventory resolves to 200,000 targets (no stack overflow)', async () => {
  const file = join(dir, 'fleet.yaml');
  let text = 'hosts:\n';
  for (let i = 0; i < 200_000; i++) text += `  - root@198.18.${(i >> 8) & 255}.${i & 255}:${22 + (i >> 16)}\n`;
  writeFileSync(file, text);
  const specs = await resolveHosts(['extra-node'], { inventory: file, concurrency: 16 });
  assert.equal(specs.length, 200_001);
  assert.equal(specs.at(-1)!.target.host, '198.18.13.63');
});

test('a 200,000-line known_hosts file loads (no stack overflow) and its last entry is found', async () => {
  const file = join(dir, 'known_hosts');
  const key = Buffer.from('AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl', 'base64');
  let text = '';
  for (let i = 0; i < 200_000; i++) text += `node${i}.example ssh-ed25519 ${key.toString('base64')}\n`;
  writeFileSync(file, text);
  const entries = await loadKnownHosts([file]);
  assert.equal(entries.length, 200_000);
  assert.equal(verifyHostKey(entries, 'node199999.example', key).status, 'known');
});
