// A file path reaches the node's shell only quoted. writeFile's "is a directory" refusal used to
// paste the raw path into an `echo "…"`, where $(…) runs; here a directory named with a command
// substitution is the target, on this machine (LocalHost runs the same script SSH hosts do).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalHost } from '../../src/host/local.js';
import { CommandError } from '../../src/errors.js';

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'pn-inject-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

test('writeFile onto a directory named $(…) refuses with the path as text and runs nothing', async () => {
  // the substitution would print INJECTED in place of itself; the message must show it unexpanded
  const target = join(dir, '$(printf INJECTED)`printf TOO`');
  mkdirSync(target);
  const host = new LocalHost();
  await assert.rejects(host.writeFile(target, 'data'), (err: unknown) => {
    assert.ok(err instanceof CommandError);
    // the message quotes the script, then what it printed: the path exactly as given
    assert.equal(err.message.slice(err.message.lastIndexOf('` failed: ') + 10), `${target}: is a directory`);
    return true;
  });
  await host.close();
});

test('writeFile to a path with quotes, spaces and backticks writes exactly there', async () => {
  const target = join(dir, 'a "b" `c` $d \'e\'.conf');
  const host = new LocalHost();
  await host.writeFile(target, 'x = 1\n');
  assert.equal(readFileSync(target, 'utf8'), 'x = 1\n');
  await host.close();
});
