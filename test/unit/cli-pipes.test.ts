// A reader that closes the pipe early (`prep-node --help | head -1`, `profiles list | grep -q`):
// prep-node must exit as it would have, with no EPIPE stack trace. The read end is closed before
// the child writes anything, so every write meets EPIPE (no race with how much the reader read).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url));

function runClosed(which: 'stdout' | 'stderr', args: string[]): Promise<{ status: number | null; other: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
    child[which].destroy();
    let other = '';
    const keep = which === 'stdout' ? child.stderr : child.stdout;
    keep.setEncoding('utf8').on('data', (d: string) => (other += d));
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, other }));
  });
}

for (const args of [['--help'], ['check', '--help'], ['profiles', 'list'], ['profiles', 'show', 'k8s-worker'], ['cloud-init']]) {
  test(`${args.join(' ')} with stdout closed early exits 0 without a stack trace`, async () => {
    const r = await runClosed('stdout', args);
    assert.equal(r.status, 0, r.other);
    assert.doesNotMatch(r.other, /EPIPE|\n\s+at /);
  });
}

test('an error printed to a closed stderr keeps its exit code (2), not a crash', async () => {
  const r = await runClosed('stderr', ['check', '--profile', 'nope']);
  assert.equal(r.status, 2);
  assert.equal(r.other, '');
});
