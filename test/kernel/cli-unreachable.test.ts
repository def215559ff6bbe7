// The CLI against hosts it cannot reach: one line naming the host and the cause, exit 3, and the
// same in --json. DNS runs in a network namespace whose resolv.conf points at 127.0.0.1 (nothing
// answers there), so no query leaves the machine.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url));

/** Run the CLI in fresh network and mount namespaces with a resolver on 127.0.0.1 that does not exist. */
function cliWithoutDns(args: string[]) {
  const dir = mkdtempSync(join(tmpdir(), 'pn-dns-'));
  try {
    const resolv = join(dir, 'resolv.conf');
    writeFileSync(resolv, 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n');
    const script = 'ip link set lo up && mount --bind "$1" /etc/resolv.conf && shift && exec "$@"';
    return spawnSync('unshare', ['--mount', '--net', 'sh', '-c', script, 'sh', resolv, process.execPath, CLI, ...args], {
      encoding: 'utf8',
      env: { ...process.env, NO_COLOR: '1' },
      timeout: 60_000,
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A loopback port with nothing listening: bind one, note it, close it. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

test('prep-node check nosuchhost.invalid: one line, exit 3', () => {
  const r = cliWithoutDns(['check', 'nosuchhost.invalid']);
  assert.equal(r.status, 3, r.stderr);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /^prep-node: nosuchhost\.invalid: cannot resolve host name "nosuchhost\.invalid"/);
  assert.equal(r.stderr.trim().split('\n').length, 1);
});

test('--json reports the unresolvable host in the document, exit 3', () => {
  const r = cliWithoutDns(['check', '--json', 'nosuchhost.invalid', 'local']);
  assert.equal(r.status, 3, r.stderr);
  const doc = JSON.parse(r.stdout) as { hosts: { target: string; reachable: boolean; error: { kind: string } | null }[] };
  assert.deepEqual(doc.hosts.map((h) => [h.target, h.reachable, h.error?.kind ?? null]), [
    ['nosuchhost.invalid', false, 'dns'],
    ['local', true, null],
  ]);
});

test('a refused port: one line, exit 3', async () => {
  const port = await closedPort();
  const r = spawnSync(process.execPath, [CLI, 'check', `root@127.0.0.1:${port}`], { encoding: 'utf8' });
  assert.equal(r.status, 3, r.stderr);
  assert.equal(r.stderr, `prep-node: root@127.0.0.1:${port}: connection refused by 127.0.0.1 port ${port} (is sshd running there, and is the port right?)\n`);
});
