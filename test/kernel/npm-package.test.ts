// The packed npm package as a user gets it: `npm pack` here, `npm install -g --prefix EMPTY` of the
// tarball (its dependencies from the npm cache, or the registry when the cache lacks them), then
// prep-node run from that prefix, in an empty directory, with a PATH of this machine's tools minus
// every compiler (clang, llc, llvm-*, lld, gcc, cc, make, bpftool): what a machine with only Node ≥ 20
// has. The selftest runs as root in a private mount namespace with its own bpffs, as in
// datapath-cli.test.ts, and makes and removes its own network namespaces (198.18.0.0/15).
// Run under the shared lock (root, network namespaces).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncOptions } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const VERSION = (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string }).version;
const notRoot = process.getuid?.() !== 0 ? 'needs root (bpffs, network namespaces)' : false;
/** What a machine with only Node has not: any compiler or BPF tool. */
const COMPILERS = /^(clang|llc|llvm-|lld|ld\.lld|bpftool|gcc|g\+\+|cc|c\+\+|cpp|make|tsc|x86_64-linux-gnu-)/;

let dir = '';
let prefix = '';
let bin = '';
let work = '';
let env: NodeJS.ProcessEnv = {};
let tarball = '';

function run(cmd: string, args: string[], options: SpawnSyncOptions = {}) {
  return spawnSync(cmd, args, { encoding: 'utf8', timeout: 300_000, ...options }) as ReturnType<typeof spawnSync> & { stdout: string; stderr: string };
}

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'pn-pkg-'));
  prefix = join(dir, 'prefix');
  work = join(dir, 'empty');
  bin = join(dir, 'bin');
  mkdirSync(work);
  mkdirSync(bin);
  // this machine's tools without the compilers; node itself by its own name
  for (const d of (process.env.PATH ?? '').split(':')) {
    if (!d.startsWith('/') || d.startsWith(REPO) || !existsSync(d)) continue;
    for (const name of readdirSync(d)) {
      if (COMPILERS.test(name) || existsSync(join(bin, name))) continue;
      symlinkSync(join(d, name), join(bin, name));
    }
  }
  if (!existsSync(join(bin, 'node'))) symlinkSync(process.execPath, join(bin, 'node'));
  // the rest of the environment as it is (the registry's proxy and CA settings live there)
  env = { ...process.env, PATH: `${join(prefix, 'bin')}:${bin}`, NO_COLOR: '1' };
});

after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('npm pack: the tarball holds the CLI, the profiles and the prebuilt loader with its sha256, nothing else', (t) => {
  const r = run('npm', ['pack', '--json', '--pack-destination', dir], { cwd: REPO });
  assert.equal(r.status, 0, r.stderr);
  const [doc] = JSON.parse(r.stdout) as { filename: string; size: number; unpackedSize: number; files: { path: string }[] }[];
  tarball = join(dir, basename(doc!.filename));
  assert.equal(basename(tarball), `prep-node-${VERSION}.tgz`);
  const files = doc!.files.map((f) => f.path);
  for (const need of ['dist/src/cli.js', 'bpf/build/prep-node-dp', 'bpf/build/prep-node-dp.sha256', 'profiles/k8s-worker.yaml', 'package.json', 'README.md']) {
    assert.ok(files.includes(need), `${need} in the tarball`);
  }
  const junk = files.filter((f) => !/^(dist\/src\/.*\.js|profiles\/[\w-]+\.yaml|cloud-init\/[\w-]+\.yaml|deploy\/[\w-]+\.yaml|deploy\/node\/prep-node-check\.sh|bpf\/build\/prep-node-dp(\.sha256)?|package\.json|README\.md)$/.test(f));
  assert.deepEqual(junk, [], 'no tests, fixtures, sources, source maps or build junk');
  assert.ok(!files.includes('dist/src/cloudinit/gen.js'), 'the cloud-init generator is a development tool');
  t.diagnostic(`${basename(tarball)}: ${(doc!.size / 1e3).toFixed(0)} kB packed, ${(doc!.unpackedSize / 1e3).toFixed(0)} kB unpacked, ${files.length} files`);
});

test('installed into an empty prefix, prep-node runs without any compiler on the PATH', () => {
  assert.ok(tarball, 'packed');
  // the PATH really has no compiler
  const which = run('sh', ['-c', 'command -v clang || command -v llc || command -v llvm-strip || command -v cc || echo none'], { env });
  assert.equal(which.stdout.trim(), 'none');
  const inst = run('npm', ['install', '-g', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', tarball], { cwd: work, env });
  assert.equal(inst.status, 0, inst.stderr);
  const pkg = join(prefix, 'lib/node_modules/prep-node');
  assert.ok(existsSync(join(pkg, 'bpf/build/prep-node-dp')));

  const help = run('prep-node', ['--help'], { cwd: work, env });
  assert.equal(help.status, 0, help.stderr);
  assert.match(help.stdout, /^Usage: prep-node /m);
  const version = run('prep-node', ['--version'], { cwd: work, env });
  assert.equal(version.stdout.trim(), VERSION);

  // check: exit 0 (all pass) or 1 (findings); the document names this machine
  const check = run('prep-node', ['check', 'local', '--json'], { cwd: work, env });
  assert.ok(check.status === 0 || check.status === 1, `exit ${check.status}: ${check.stderr}`);
  const doc = JSON.parse(check.stdout) as { hosts: { target: string; reachable: boolean; checks: unknown[] }[] };
  assert.equal(doc.hosts[0]?.target, 'local');
  assert.equal(doc.hosts[0]?.reachable, true);
  assert.ok((doc.hosts[0]?.checks.length ?? 0) > 10, 'the checks ran');
});

test('npx --package ./prep-node-X.tgz prep-node --help, from an empty directory', () => {
  assert.ok(tarball, 'packed');
  const cache = join(dir, 'npx-cache');
  // a private npx cache (its packages come from the shared npm cache): nothing left under $HOME
  const r = run('npx', ['--yes', '--prefer-offline', '--package', tarball, 'prep-node', '--help'], { cwd: work, env: { ...env, npm_config_cache: cache, npm_config_prefer_offline: 'true' } });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^Usage: prep-node /m);
});

/** The installed CLI in a private mount namespace with a fresh bpffs at /sys/fs/bpf. */
function withBpffs(args: string[]) {
  const script = 'mount --make-rprivate / && mount -t bpf bpf /sys/fs/bpf && exec "$@"';
  return run('unshare', ['--mount', 'sh', '-c', script, 'sh', 'prep-node', ...args], { cwd: work, env, timeout: 240_000 });
}

test('datapath selftest local from the installed package: its own loader, uploaded after its sha256 matched', { skip: notRoot }, () => {
  assert.ok(existsSync(join(prefix, 'bin/prep-node')), 'installed');
  const r = withBpffs(['datapath', 'selftest', 'local', '--connections', '100']);
  assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
  assert.match(r.stdout, /^local: selftest passed: (\d+) of \1 steps$/m);
  const ip = run('ip', ['netns', 'list']);
  assert.doesNotMatch(ip.stdout, /pnst-/, 'no network namespace left');
  const loader = readFileSync(join(prefix, 'lib/node_modules/prep-node/bpf/build/prep-node-dp'));
  const sha = createHash('sha256').update(loader).digest('hex');
  assert.ok(existsSync(`/var/lib/prep-node/bin/prep-node-dp-${sha.slice(0, 12)}`), 'the packaged loader is the one on the node');
});

test('a packaged loader changed after the build is refused before it reaches the node (exit 2)', { skip: notRoot }, () => {
  const pkgLoader = join(prefix, 'lib/node_modules/prep-node/bpf/build/prep-node-dp');
  assert.ok(existsSync(pkgLoader), 'installed');
  appendFileSync(pkgLoader, 'tampered');
  const sha = createHash('sha256').update(readFileSync(pkgLoader)).digest('hex');
  const r = withBpffs(['datapath', 'selftest', 'local', '--connections', '20']);
  assert.equal(r.status, 2, `${r.stdout}\n${r.stderr}`);
  assert.match(r.stderr, /does not match the sha256 recorded at build time .*not uploading it; rebuild with `make -C bpf` or reinstall prep-node/);
  assert.equal(r.stderr.trim().split('\n').length, 1);
  assert.ok(!existsSync(`/var/lib/prep-node/bin/prep-node-dp-${sha.slice(0, 12)}`), 'not uploaded');
});
