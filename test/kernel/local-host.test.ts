// LocalHost for real: commands under sh, timeouts that kill the whole process group, file I/O, and
// sudo as real non-root users (a child node process run with runuser). Needs root.
import { after, before, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { chmod, mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { CommandError, ExitCode } from '../../src/errors.js';
import { openHost } from '../../src/host/connect.js';
import { LocalHost } from '../../src/host/local.js';
import { parseTarget } from '../../src/host/target.js';
import { createUser, makeTempDir, processGone, removeTempDir, type TestUser } from '../helpers/sshd.js';

const execFileP = promisify(execFile);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

/** Live processes whose argv contains marker. */
function markedPids(marker: string): number[] {
  return readdirSync('/proc')
    .filter((e) => /^\d+$/.test(e) && Number(e) !== process.pid)
    .filter((e) => {
      try {
        return readFileSync(`/proc/${e}/cmdline`, 'utf8').includes(marker) && !processGone(Number(e));
      } catch {
        return false;
      }
    })
    .map(Number);
}

/** A random marker for `sleep 30.<marker>`; whatever still carries it after the test is killed by pid. */
function marker(t: TestContext): string {
  const m = String(randomBytes(4).readUInt32BE(0)).padStart(10, '0');
  t.after(() => {
    for (const pid of markedPids(m)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
  });
  return m;
}

async function eventually(cond: () => boolean, timeoutMs = 3000): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) return false;
    await sleep(50);
  }
  return true;
}

describe('LocalHost', () => {
  const host = new LocalHost();
  let dir: string;
  before(async () => {
    dir = await makeTempDir('pntest-local-');
  });
  after(async () => {
    await host.close();
    if (dir) await removeTempDir(dir);
  });

  it('is what openHost gives for "local", named and logged in as the current user', async () => {
    const h = await openHost(parseTarget('local'));
    assert.ok(h instanceof LocalHost);
    assert.equal(h.name, 'local');
    assert.equal(h.user, 'root');
    await h.close();
  });

  it('run() returns stdout, stderr and the exit code; a non-zero exit is data', async () => {
    assert.deepEqual(await host.run('echo out; echo err >&2; exit 3'), { stdout: 'out\n', stderr: 'err\n', code: 3, timedOut: false });
    assert.deepEqual(await host.run('true'), { stdout: '', stderr: '', code: 0, timedOut: false });
    // POSIX sh, not bash.
    assert.equal((await host.run('echo $0')).stdout, 'sh\n');
  });

  it('run() feeds stdin (binary, large) and collects large output', async () => {
    const big = randomBytes(3 * 1024 * 1024 + 5);
    assert.equal(await host.exec('sha256sum | cut -c1-64', { stdin: big }), sha256(big) + '\n');
    assert.equal(await host.exec('cat', { stdin: 'a\nb' }), 'a\nb');
    assert.equal(await host.exec('echo ignored', { stdin: big }), 'ignored\n');
    assert.equal((await host.exec(`head -c 4000000 /dev/zero | tr '\\0' x`)).length, 4_000_000);
  });

  it('exec() throws a CommandError with the last stderr line', async () => {
    await assert.rejects(host.exec('echo one >&2; echo two >&2; exit 9'), (err: unknown) => {
      assert.ok(err instanceof CommandError);
      assert.equal(err.code, 9);
      assert.equal(err.exitCode, ExitCode.internal);
      assert.match(err.message, /^local: `.*` failed: two$/);
      return true;
    });
  });

  it('a timeout kills the whole process group, background children included', async (t) => {
    const m = marker(t);
    const flag = join(dir, `leaked-${m}`);
    const t0 = Date.now();
    const r = await host.run(`(sleep 30.${m}; touch ${flag}) & echo bg $!; sleep 30.${m}; echo late`, { timeoutMs: 500 });
    const took = Date.now() - t0;
    assert.equal(r.timedOut, true);
    assert.equal(r.code, null);
    assert.match(r.stdout, /^bg \d+\n$/);
    assert.ok(took >= 450 && took < 3000, `took ${took} ms`);
    const bg = Number(r.stdout.split(' ')[1]);
    assert.ok(await eventually(() => markedPids(m).length === 0 && processGone(bg)), `left running: ${markedPids(m).join(' ')}`);
    assert.equal(existsSync(flag), false);
  });

  it('a command that exits in time is not reported as timed out', async () => {
    assert.deepEqual(await host.run('sleep 0.1; echo done', { timeoutMs: 5000 }), { stdout: 'done\n', stderr: '', code: 0, timedOut: false });
  });

  it('runs many commands in parallel', async () => {
    const rs = await Promise.all(Array.from({ length: 40 }, (_, i) => host.run(`echo ${i}; exit ${i % 3}`)));
    rs.forEach((r, i) => assert.deepEqual(r, { stdout: `${i}\n`, stderr: '', code: i % 3, timedOut: false }));
  });

  it('writeFile applies the mode, is binary-safe, replaces atomically; readFile reads back', async () => {
    const path = join(dir, 'file');
    await host.writeFile(path, 'one\n', { mode: 0o600 });
    assert.equal(await host.readFile(path), 'one\n');
    assert.equal((await stat(path)).mode & 0o7777, 0o600);
    const ino = (await stat(path)).ino;
    const data = Buffer.concat([Buffer.from(Array.from({ length: 256 }, (_, i) => i)), randomBytes(50_000)]);
    await host.writeFile(path, data);
    assert.ok((await readFile(path)).equals(data));
    assert.equal((await stat(path)).mode & 0o7777, 0o644);
    assert.notEqual((await stat(path)).ino, ino, 'replaced by rename, not rewritten in place');
    const odd = join(dir, "name with 'quotes' and $(x)");
    await host.writeFile(odd, 'odd');
    assert.equal(await host.readFile(odd), 'odd');
    assert.deepEqual((await readdir(dir)).filter((f) => f.startsWith('.prep-node')), []);
  });

  it('a failed writeFile throws and leaves no temporary file; readFile of a missing file throws', async () => {
    await assert.rejects(host.writeFile(join(dir, 'missing/dir/f'), 'x'), CommandError);
    await assert.rejects(host.writeFile(join(dir, 'badmode'), 'x', { mode: 0o10000 }), CommandError);
    assert.deepEqual((await readdir(dir)).filter((f) => f.startsWith('.prep-node') || f === 'badmode'), []);
    await assert.rejects(host.readFile(join(dir, 'nope')), CommandError);
  });

  it('upload copies a local file', async () => {
    const src = join(dir, 'src.bin');
    const data = randomBytes(70_000);
    await writeFile(src, data);
    await host.upload(src, join(dir, 'dst.bin'), { mode: 0o700 });
    assert.ok((await readFile(join(dir, 'dst.bin'))).equals(data));
    assert.equal((await stat(join(dir, 'dst.bin'))).mode & 0o7777, 0o700);
  });

  it('as root, sudo: true runs the command directly', async () => {
    assert.equal(await host.exec('echo "${SUDO_USER:-none} $(id -u)"', { sudo: true }), 'none 0\n');
  });
});

describe('LocalHost sudo as a non-root user', () => {
  let nopw: TestUser;
  let pw: TestUser;
  let rootDir: string;
  let script: string;

  before(async () => {
    nopw = await createUser('pntest-lnopw', { sudo: 'nopasswd' });
    pw = await createUser('pntest-lpw', { sudo: 'password' });
    rootDir = await makeTempDir('pntest-lroot-');
    await chmod(rootDir, 0o755);
    await mkdir(join(rootDir, 'bin'));
    // The child: a LocalHost in a node process running as the user; prints what happened as JSON.
    const local = pathToFileURL(fileURLToPath(new URL('../../src/host/local.js', import.meta.url))).href;
    script = join(rootDir, 'bin', 'child.mjs');
    await writeFile(
      script,
      `const { LocalHost } = await import(${JSON.stringify(local)});
const h = new LocalHost();
const [cmd, arg] = process.argv.slice(2);
const out = { user: h.user };
try {
  if (cmd === 'id') out.result = await h.exec('id -u', { sudo: true });
  else { await h.writeFile(arg, 'written\\n', { sudo: true, mode: 0o640 }); out.result = 'ok'; }
} catch (e) { out.error = { name: e.name, kind: e.kind, message: e.message, exitCode: e.exitCode }; }
console.log(JSON.stringify(out));
`,
    );
    await chmod(script, 0o644);
  });
  after(async () => {
    await nopw?.remove();
    await pw?.remove();
    if (rootDir) await removeTempDir(rootDir);
  });

  const asUser = async (user: TestUser, ...args: string[]) => {
    const { stdout } = await execFileP('runuser', ['-u', user.name, '--', process.execPath, script, ...args], { cwd: '/', timeout: 20_000 });
    return JSON.parse(stdout) as { user: string; result?: string; error?: { name: string; kind: string; message: string; exitCode: number } };
  };

  it('a NOPASSWD user gets root through sudo, and writes a root-owned file with the mode', async () => {
    const r = await asUser(nopw, 'id');
    assert.equal(r.user, nopw.name);
    assert.equal(r.result, '0\n');
    const path = join(rootDir, 'by-sudo');
    const w = await asUser(nopw, 'write', path);
    assert.equal(w.result, 'ok', JSON.stringify(w));
    const st = await stat(path);
    assert.equal(st.uid, 0);
    assert.equal(st.mode & 0o7777, 0o640);
    assert.equal(await readFile(path, 'utf8'), 'written\n');
  });

  it('a user whose sudo wants a password gets HostError sudo-password (exit 4) naming the user', async () => {
    const r = await asUser(pw, 'id');
    assert.equal(r.error?.name, 'HostError');
    assert.equal(r.error?.kind, 'sudo-password');
    assert.equal(r.error?.exitCode, ExitCode.privilege);
    assert.match(r.error.message, new RegExp(`^local: sudo asks user ${pw.name} for a password`));
    assert.doesNotMatch(r.error.message, /\n/);
  });
});
