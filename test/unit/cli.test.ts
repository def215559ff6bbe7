// The CLI as a user runs it: a child process, its stdout, stderr and exit code.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url));
const run = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });

test('--help documents the exit codes', () => {
  const r = run('check', '--help');
  assert.equal(r.status, 0);
  for (const line of [/0\s+every check passed/, /1\s+findings/, /2\s+bad usage/, /3\s+a host could not be reached/, /4\s+.*sudo/]) assert.match(r.stdout, line);
  const rb = run('rollback', '--help');
  assert.equal(rb.status, 0);
  assert.match(rb.stdout, /^ {2}7 {2}the restore failed on the node; the journal is kept, run rollback again$/m);
});

test('bad usage exits 2 with a one-line message', () => {
  const cases: [string[], RegExp][] = [
    [['check', '-p', 'ssh', 'node1'], /port "ssh" is not a number/],
    [['check', '--concurrency', '0'], /--concurrency must be a whole number/],
    [['check', '--ignore', 'kernel.nope'], /unknown check "kernel\.nope"/],
    [['check', '--profile', 'nope'], /no built-in profile "nope"/],
    [['check', 'bad host'], /bad target "bad host"/],
    [['check', 'local', 'local'], /given twice/],
    [['frobnicate'], /unknown command/],
  ];
  for (const [args, message] of cases) {
    const r = run(...args);
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  }
});

test('an invalid profile file is rejected before any host is touched, naming file, line and key', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pn-cli-'));
  try {
    const file = join(dir, 'mine.yaml');
    writeFileSync(file, 'name: mine\ndescription: x\nkernel:\n  min: "lots"\n  recommended: "5.15"\n');
    // The target (a closed port on loopback) would give exit 3 if it were contacted; exit 2 proves validation came first.
    const r = run('check', '--profile', file, '127.0.0.1:1');
    assert.equal(r.status, 2);
    assert.match(r.stderr, /mine\.yaml:4:8: kernel\.min: expected a kernel version/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('check --json on this machine prints one schema-v1 document and nothing else', () => {
  const r = run('check', '--json');
  assert.ok(r.status === 0 || r.status === 1, r.stderr);
  const doc = JSON.parse(r.stdout) as { schema: string; hosts: { target: string; checks: { id: string; status: string }[] }[]; exitCode: number };
  assert.equal(doc.schema, 'prep-node/check/v1');
  assert.equal(doc.hosts[0]!.target, 'local');
  assert.ok(doc.hosts[0]!.checks.some((c) => c.id === 'kernel.version' && c.status === 'pass'));
  assert.equal(doc.exitCode, r.status);
});

test('profiles list names the built-in profiles; show prints one resolved', () => {
  const list = run('profiles', 'list');
  assert.equal(list.status, 0, list.stderr);
  assert.match(list.stdout, /^k8s-control-plane\s+Kubernetes control-plane node/m);
  assert.match(list.stdout, /^k8s-worker\s+Kubernetes worker node/m);
  const show = run('profiles', 'show', 'k8s-control-plane');
  assert.equal(show.status, 0, show.stderr);
  assert.match(show.stdout, /^role: control-plane$/m);
  assert.match(show.stdout, /^ {2}net\.core\.somaxconn: 32768$/m, 'inherited from k8s-worker');
  const missing = run('profiles', 'show', 'nope');
  assert.equal(missing.status, 2);
  assert.match(missing.stderr, /^prep-node: no built-in profile "nope"/);
});

test("each command's --help lists the exit codes that command can return, and no others", () => {
  const codes = (args: string[]) => {
    const r = run(...args, '--help');
    assert.equal(r.status, 0, r.stderr);
    const section = r.stdout.slice(r.stdout.indexOf('Exit codes:'));
    return [...section.matchAll(/^ {2}(\d+) /gm)].map((m) => Number(m[1]));
  };
  assert.deepEqual(codes(['check']), [0, 1, 2, 3, 4, 70]);
  assert.deepEqual(codes(['apply']), [0, 1, 2, 3, 4, 5, 6, 8, 70]);
  assert.deepEqual(codes(['rollback']), [0, 1, 2, 3, 4, 5, 7, 70]);
  assert.deepEqual(codes(['datapath', 'status']), [0, 1, 2, 3, 4, 5, 70]);
  assert.deepEqual(codes(['cloud-init']), [0, 2, 70]);
  assert.deepEqual(codes(['profiles', 'list']), [0, 2, 70]);
});

test('--help shows the default of every option that has one (--connect-timeout, --profile)', () => {
  const r = run('check', '--help');
  assert.match(r.stdout, /--connect-timeout <seconds>\s+give up on a host after this long \(default:\s+ConnectTimeout from ssh_config, else 20\)/);
  assert.match(r.stdout, /--profile <name\|file>\s+built-in profile name or a profile file \(default:\s+k8s-worker/);
  assert.match(r.stdout, /--concurrency <n>\s+hosts worked on at once \(default: 16\)/);
});
