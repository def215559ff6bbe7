// A ProxyJump loop (a host reached through itself, or a hop listed twice) and an over-long chain are
// refused with one line naming the hops, exit 2, while the chain is resolved with `ssh -G` and before
// any connection is opened. Every HostName is 127.0.0.1 port 9: nothing is contacted (before the fix,
// the a <-> b loop ran `ssh -G` forever and never returned).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MAX_JUMP_HOPS, SshHost } from '../../src/host/ssh.js';
import { ExitCode, UsageError } from '../../src/errors.js';

function config(t: { after: (fn: () => void) => void }, blocks: Record<string, string | null>): string {
  const dir = mkdtempSync(join(tmpdir(), 'pn-jumploop-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const text = Object.entries(blocks)
    .map(([host, jump]) => `Host ${host}\n  HostName 127.0.0.1\n  Port 9\n  User root\n${jump ? `  ProxyJump ${jump}\n` : ''}`)
    .join('\n');
  const file = join(dir, 'ssh_config');
  writeFileSync(file, text);
  return file;
}

async function refusal(configFile: string, alias: string): Promise<UsageError> {
  let connected = false;
  const err = await SshHost.connect(alias, alias, {}, { configFile, connectTimeoutSec: 2 }).then(
    async (h) => {
      connected = true;
      await h.close();
    },
    (e: unknown) => e,
  );
  assert.equal(connected, false);
  assert.ok(err instanceof UsageError, `expected a UsageError, got ${String(err)}`);
  assert.equal(err.exitCode, ExitCode.usage);
  assert.equal(err.message.split('\n').length, 1, 'one line');
  return err;
}

test('a jumps via b and b via a: refused, naming the loop', { timeout: 20_000 }, async (t) => {
  const err = await refusal(config(t, { a: 'b', b: 'a' }), 'a');
  assert.equal(err.message, 'a: ProxyJump loop: a -> b -> a (a host reached through itself, or a hop listed twice); fix ProxyJump in ssh_config');
});

test('a longer loop through the first hop of each chain: a -> b -> c -> b', { timeout: 20_000 }, async (t) => {
  const err = await refusal(config(t, { a: 'b', b: 'c', c: 'b' }), 'a');
  assert.match(err.message, /^a: ProxyJump loop: b -> c -> b /);
});

test('a host that jumps via itself, as an alias or as user@alias:port', { timeout: 20_000 }, async (t) => {
  assert.match((await refusal(config(t, { a: 'a' }), 'a')).message, /ProxyJump loop: a -> a /);
  assert.match((await refusal(config(t, { a: 'root@a:9' }), 'a')).message, /ProxyJump loop: a -> a /);
});

test('a chain that lists a hop twice (b,b) or one the first hop already went through', { timeout: 20_000 }, async (t) => {
  assert.match((await refusal(config(t, { a: 'b,b', b: null }), 'a')).message, /ProxyJump loop: b -> b /);
  assert.match((await refusal(config(t, { a: 'b,c', b: 'c', c: null }), 'a')).message, /ProxyJump loop: c -> c /);
});

test(`a chain of more than ${MAX_JUMP_HOPS} hosts is refused; ${MAX_JUMP_HOPS} are allowed as far as resolving goes`, { timeout: 30_000 }, async (t) => {
  const blocks: Record<string, string | null> = {};
  for (let i = 0; i <= MAX_JUMP_HOPS; i++) blocks[`h${i}`] = i < MAX_JUMP_HOPS ? `h${i + 1}` : null;
  const file = config(t, blocks);
  const err = await refusal(file, 'h0');
  assert.match(err.message, new RegExp(`ProxyJump chain longer than ${MAX_JUMP_HOPS} hosts \\(h0 -> h1 -> .* -> h${MAX_JUMP_HOPS}\\)`));
  // h1 .. h10 is 10 hosts: resolved, then the first connection (h10, 127.0.0.1 port 9) fails as a HostError.
  const e2 = await SshHost.connect('h1', 'h1', {}, { configFile: file, connectTimeoutSec: 2 }).then(
    () => assert.fail('connected to port 9'),
    (e: unknown) => e,
  );
  assert.ok(!(e2 instanceof UsageError), String(e2));
});
