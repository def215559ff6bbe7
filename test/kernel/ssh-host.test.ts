// SshHost against a REAL OpenSSH sshd on 127.0.0.1 (test/helpers/sshd.ts): commands, files, sudo,
// known_hosts, ProxyJump and connection failures. Every test brings its own ssh_config (-F) with its
// own known_hosts, key and no agent, so nothing of root's ~/.ssh takes part. Needs root.
import { after, before, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { chmod, mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { CommandError, ExitCode, HostError, UsageError, type HostErrorKind } from '../../src/errors.js';
import { openHost, type ConnectOptions } from '../../src/host/connect.js';
import type { Host } from '../../src/host/host.js';
import { SshHost } from '../../src/host/ssh.js';
import { parseTarget } from '../../src/host/target.js';
import {
  authorize,
  createUser,
  freePort,
  makeClientKey,
  makeTempDir,
  processGone,
  removeTempDir,
  restartSshd,
  startSshd,
  type ClientKey,
  type Sshd,
  type TestUser,
} from '../helpers/sshd.js';

const execFileP = promisify(execFile);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const sleep_ = sleep;

/** Live (non-zombie) processes whose argv contains marker, from /proc. */
function markedPids(marker: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(marker) && !processGone(Number(entry))) pids.push(Number(entry));
    } catch {
      // gone
    }
  }
  return pids;
}

/** Kill, by pid, what a test started and left running (found by its random marker). */
function killMarked(marker: string): void {
  for (const pid of markedPids(marker)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
}
const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

// ---------------------------------------------------------------------------------------------
// Client side: a temp dir with a key, known_hosts and an ssh_config passed like `ssh -F`.

interface Client {
  dir: string;
  key: ClientKey;
  knownHosts: string;
  configFile: string;
}

async function makeClient(): Promise<Client> {
  const dir = await makeTempDir('pntest-client-');
  const key = await makeClientKey(dir, { name: 'id_ed25519' });
  const client = { dir, key, knownHosts: join(dir, 'known_hosts'), configFile: join(dir, 'ssh_config') };
  await writeConfig(client);
  return client;
}

/** A client for one test, removed after it. */
async function testClient(t: TestContext): Promise<Client> {
  const c = await makeClient();
  t.after(() => removeTempDir(c.dir));
  return c;
}

/** An ssh_config `Host` block. */
function hostBlock(alias: string, settings: Record<string, string | number>): string {
  return [`Host ${alias}`, ...Object.entries(settings).map(([k, v]) => `  ${k} ${v}`), ''].join('\n');
}

/**
 * Write the client's ssh_config: the given Host blocks first (first value wins in ssh_config), then
 * `Host *` pinning known_hosts, key and agent to the test's own.
 */
async function writeConfig(c: Client, blocks: string[] = [], global: string[] = []): Promise<void> {
  const text = [
    ...blocks,
    'Host *',
    `  UserKnownHostsFile ${c.knownHosts}`,
    '  GlobalKnownHostsFile /dev/null',
    ...(global.some((l) => /^\s*IdentityFile\s/i.test(l)) ? [] : [`  IdentityFile ${c.key.privateKeyPath}`]),
    '  IdentitiesOnly yes',
    '  IdentityAgent none',
    ...global.map((l) => `  ${l}`),
    '',
  ].join('\n');
  await writeFile(c.configFile, text);
}

async function trust(c: Client, ...daemons: Sshd[]): Promise<void> {
  await writeFile(c.knownHosts, daemons.map((d) => d.knownHostsLine() + '\n').join(''));
}

function connect(sshd: Pick<Sshd, 'port'>, c: Client, user = 'root', options: ConnectOptions = {}): Promise<Host> {
  return openHost(parseTarget(`${user}@127.0.0.1:${sshd.port}`), { configFile: c.configFile, ...options });
}

/** Connect and close the host after the test. */
async function connectFor(t: TestContext, sshd: Pick<Sshd, 'port'>, c: Client, user = 'root', options: ConnectOptions = {}): Promise<Host> {
  const host = await connect(sshd, c, user, options);
  t.after(() => host.close());
  return host;
}

async function sshdFor(t: TestContext, opts: Parameters<typeof startSshd>[0] = {}): Promise<Sshd> {
  const sshd = await startSshd(opts);
  t.after(() => sshd.stop());
  return sshd;
}

/** Await p, expecting a HostError of kind whose message is one line; returns it. */
async function hostError(p: Promise<unknown>, kind: HostErrorKind): Promise<HostError> {
  let value: unknown;
  try {
    value = await p;
  } catch (err) {
    assert.ok(err instanceof HostError, `expected a HostError, got ${err instanceof Error ? err.stack : String(err)}`);
    assert.equal(err.kind, kind, `wrong kind for: ${err.message}`);
    assert.doesNotMatch(err.message, /\n/, 'a HostError message is one line');
    assert.equal(err.exitCode, kind.startsWith('sudo') ? ExitCode.privilege : ExitCode.unreachable);
    return err;
  }
  if (value && typeof (value as Host).close === 'function') await (value as Host).close();
  assert.fail(`expected HostError ${kind}, but it succeeded`);
}

/** Poll until cond() holds or timeoutMs passes; returns whether it held. */
async function eventually(cond: () => boolean | Promise<boolean>, timeoutMs = 3000): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await cond()) return true;
    if (Date.now() > end) return false;
    await sleep(50);
  }
}

// ---------------------------------------------------------------------------------------------
// One sshd and a root connection shared by the command and file tests.

describe('SshHost on a real sshd', () => {
  let sshd: Sshd;
  let c: Client;
  let root: Host;
  let nopw: TestUser; // sudo without a password
  let pw: TestUser; // sudo asks for a password
  let none: TestUser; // not in sudoers

  before(async () => {
    sshd = await startSshd({ setEnv: { PN_WHICH: 'main' } });
    c = await makeClient();
    await authorize(sshd, 'root', c.key.publicKey);
    await trust(c, sshd);
    root = await connect(sshd, c);
    nopw = await createUser('pntest-nopw', { sudo: 'nopasswd' });
    pw = await createUser('pntest-pw', { sudo: 'password' });
    none = await createUser('pntest-none', { sudo: 'none' });
    for (const u of [nopw, pw, none]) await authorize(sshd, u.name, c.key.publicKey);
  });
  after(async () => {
    await root?.close();
    await sshd?.stop(); // also ends sessions and what they left running
    for (const u of [nopw, pw, none]) await u?.remove();
    if (c) await removeTempDir(c.dir);
  });

  /** How many live processes on the machine have marker in their command line. */
  const marked_running = (marker: string): number => markedPids(marker).length;

  describe('run()', () => {
    it('returns stdout, stderr and the exit code; a non-zero exit is data', async () => {
      assert.ok(root instanceof SshHost);
      assert.equal(root.user, 'root');
      assert.equal(root.name, `root@127.0.0.1:${sshd.port}`);
      const r = await root.run('echo out; echo err >&2; echo $PN_WHICH; exit 3');
      assert.deepEqual(r, { stdout: 'out\nmain\n', stderr: 'err\n', code: 3, timedOut: false });
      assert.deepEqual(await root.run('true'), { stdout: '', stderr: '', code: 0, timedOut: false });
    });

    it('exec() returns stdout, and throws a CommandError naming the command on failure', async () => {
      assert.equal(await root.exec('printf %s hi'), 'hi');
      await assert.rejects(root.exec('echo first >&2; echo no such thing >&2; exit 4'), (err: unknown) => {
        assert.ok(err instanceof CommandError);
        assert.equal(err.code, 4);
        assert.match(err.message, /`echo first >&2; echo no such thing >&2; exit 4` failed: no such thing$/);
        return true;
      });
    });

    it('feeds stdin, text and binary, small and large', async () => {
      assert.equal(await root.exec('cat', { stdin: 'hello\nworld' }), 'hello\nworld');
      const big = randomBytes(3 * 1024 * 1024 + 17);
      assert.equal(await root.exec('sha256sum | cut -c1-64', { stdin: big }), sha256(big) + '\n');
      // A command that ignores stdin does not hang.
      assert.equal(await root.exec('echo ignored', { stdin: big }), 'ignored\n');
    });

    it('collects large output completely', async () => {
      const out = await root.exec(`head -c 5000000 /dev/zero | tr '\\0' a`);
      assert.equal(out.length, 5_000_000);
      assert.match(out, /^a+$/);
    });

    // Timed-out commands carry a random marker in sleep's argv (`sleep 30.<digits>`), so the tests can
    // see whether they still run, and kill (by pid) whatever they leave behind.
    const marked = (t: TestContext): { marker: string; sleep: string } => {
      const digits = String(randomBytes(4).readUInt32BE(0)).padStart(10, '0');
      t.after(() => killMarked(digits));
      return { marker: digits, sleep: `sleep 30.${digits}` };
    };

    it('times out: `sleep 30` with timeoutMs 500 comes back timedOut', async (t) => {
      const h = await connectFor(t, sshd, c);
      const { sleep } = marked(t);
      const t0 = Date.now();
      const r = await h.run(`echo started; ${sleep}; echo late`, { timeoutMs: 500 });
      const took = Date.now() - t0;
      assert.deepEqual(r, { stdout: 'started\n', stderr: '', code: null, timedOut: true });
      assert.ok(took >= 450 && took < 3000, `took ${took} ms`);
      // The connection is still usable.
      assert.equal(await h.exec('echo ok'), 'ok\n');
    });

    it('a timed-out command of a non-root login is killed on the host', async (t) => {
      const h = await connectFor(t, sshd, c, none.name);
      const { marker, sleep } = marked(t);
      const r = await h.run(`${sleep}; echo late`, { timeoutMs: 500 });
      assert.equal(r.timedOut, true);
      assert.ok(await eventually(() => marked_running(marker) === 0), 'the timed-out command still runs');
    });

    it('a timed-out command of a root login is killed on the host', async (t) => {
      const h = await connectFor(t, sshd, c);
      const { marker, sleep } = marked(t);
      const r = await h.run(`${sleep}; echo late`, { timeoutMs: 500 });
      assert.equal(r.timedOut, true);
      assert.ok(await eventually(() => marked_running(marker) === 0), 'the timed-out command still runs');
    });

    it('a timed-out sudo command is killed on the host', async (t) => {
      const h = await connectFor(t, sshd, c, nopw.name);
      const { marker, sleep } = marked(t);
      const r = await h.run(`${sleep}; echo late`, { sudo: true, timeoutMs: 500 });
      assert.equal(r.timedOut, true);
      assert.ok(await eventually(() => marked_running(marker) === 0), 'the timed-out sudo command still runs');
    });

    it('timed-out commands free their channel slots (more timeouts than slots, then more work)', async (t) => {
      // As a non-root login, where sshd can kill the command and so end the session.
      const h = await connectFor(t, sshd, c, none.name);
      const { sleep } = marked(t);
      const t0 = Date.now();
      const r = await Promise.all(Array.from({ length: 12 }, () => h.run(sleep, { timeoutMs: 300 })));
      assert.ok(r.every((x) => x.timedOut));
      const more = await Promise.all(Array.from({ length: 12 }, (_, i) => h.exec(`echo ${i}`, { timeoutMs: 5000 })));
      assert.deepEqual(more, Array.from({ length: 12 }, (_, i) => `${i}\n`));
      assert.ok(Date.now() - t0 < 5000, `took ${Date.now() - t0} ms`);
    });

    it('after timed-out commands of a root login, new commands still run', async (t) => {
      const h = await connectFor(t, sshd, c);
      const { sleep } = marked(t);
      const r = await Promise.all(Array.from({ length: 8 }, () => h.run(sleep, { timeoutMs: 300 })));
      assert.ok(r.every((x) => x.timedOut));
      await sleep_(2500); // the host's timeout(1) has killed them (TERM at 0.3 s)
      const more = Promise.all(Array.from({ length: 8 }, (_, i) => h.exec(`echo ${i}`, { timeoutMs: 5000 })));
      const late = new Promise<'late'>((r) => setTimeout(() => r('late'), 5000).unref());
      const got = await Promise.race([more, late]);
      assert.notEqual(got, 'late', 'new commands still wait for the timed-out ones to end');
      assert.deepEqual(got, Array.from({ length: 8 }, (_, i) => `${i}\n`));
    });

    it('runs 30 commands in parallel on one connection, all correct (channels capped under MaxSessions)', async (t) => {
      // Each command counts the commands running beside it (entries in a shared dir).
      const d = await makeTempDir('pntest-par-');
      t.after(() => removeTempDir(d));
      const results = await Promise.all(
        Array.from({ length: 30 }, (_, i) =>
          root.run(`mkdir ${d}/${i}; sleep 0.2; echo ${i} $(ls ${d} | wc -l); rmdir ${d}/${i}; echo e${i} >&2; exit ${i % 5}`),
        ),
      );
      const inFlight = results.map((r, i) => {
        const [n, count] = r.stdout.trim().split(' ');
        assert.deepEqual({ ...r, stdout: n }, { stdout: String(i), stderr: `e${i}\n`, code: i % 5, timedOut: false });
        return Number(count);
      });
      assert.ok(Math.max(...inFlight) <= 8, `at most 8 at once under MaxSessions 10, saw ${Math.max(...inFlight)}`);
      assert.ok(Math.max(...inFlight) >= 4, `they do run in parallel: saw at most ${Math.max(...inFlight)}`);
      // Quick commands ending together make sshd briefly refuse new sessions (it frees them a bit after
      // the close we see): those opens must have been retried, not failed. A burst of very short ones:
      const quick = await Promise.all(Array.from({ length: 200 }, (_, i) => root.exec(`echo ${i}`)));
      assert.deepEqual(quick, Array.from({ length: 200 }, (_, i) => `${i}\n`));
    });

  });

  describe('files as root', () => {
    let dir: string;
    before(async () => {
      dir = await makeTempDir('pntest-files-');
    });
    after(async () => {
      if (dir) await removeTempDir(dir);
    });

    it('writeFile applies the mode, readFile reads it back', async () => {
      const path = join(dir, 'conf');
      await root.writeFile(path, 'a=1\n', { mode: 0o600 });
      assert.equal(await root.readFile(path), 'a=1\n');
      assert.equal((await stat(path)).mode & 0o7777, 0o600);
      assert.equal((await root.exec(`stat -c %a ${path}`)).trim(), '600');
      // Overwrite: new mode, default 0644.
      await root.writeFile(path, 'a=2\n');
      assert.equal(await readFile(path, 'utf8'), 'a=2\n');
      assert.equal((await stat(path)).mode & 0o7777, 0o644);
      // Names that need quoting.
      const odd = join(dir, "it's a $file; rm -rf x");
      await root.writeFile(odd, 'odd');
      assert.equal(await root.readFile(odd), 'odd');
    });

    it('writeFile is binary-safe', async () => {
      const data = Buffer.concat([Buffer.from(Array.from({ length: 256 }, (_, i) => i)), Buffer.from([0xff, 0xfe, 0, 0, 0xc3]), randomBytes(100_000)]);
      const path = join(dir, 'blob');
      await root.writeFile(path, data);
      assert.ok((await readFile(path)).equals(data));
      assert.equal((await root.exec(`sha256sum ${path} | cut -c1-64`)).trim(), sha256(data));
    });

    it('writeFile is atomic: a concurrent reader sees only whole old or whole new contents', async () => {
      const path = join(dir, 'atomic');
      const a = Buffer.alloc(2 * 1024 * 1024, 'a');
      const b = Buffer.alloc(2 * 1024 * 1024 + 1, 'b');
      await root.writeFile(path, a);
      // Replaced by rename: the new file is made while the old one still exists, so its inode differs.
      const inodeBefore = (await stat(path)).ino;
      await root.writeFile(path, a);
      assert.notEqual((await stat(path)).ino, inodeBefore);
      const stop = join(dir, 'atomic.stop');
      const reader = root.run(
        `n=0; while [ ! -e ${stop} ]; do sha256sum < ${path} | cut -c1-64 || echo unreadable; n=$((n+1)); done | sort | uniq -c`,
        { timeoutMs: 30_000 },
      );
      for (let i = 0; i < 12; i++) await root.writeFile(path, i % 2 === 0 ? b : a);
      await writeFile(stop, '');
      const seen = (await reader).stdout.trim().split('\n').map((l) => l.trim().split(/\s+/));
      const allowed = new Set([sha256(a), sha256(b)]);
      for (const [count, hash] of seen) assert.ok(allowed.has(hash!), `reader saw a partial file ${count} time(s): ${hash}`);
      assert.ok(seen.length > 0);
      // No temporary file left beside it.
      assert.deepEqual((await readdir(dir)).filter((f) => f.startsWith('.prep-node')), []);
    });

    it('a failed writeFile throws and leaves no temporary file', async () => {
      await assert.rejects(root.writeFile(join(dir, 'no/such/dir/file'), 'x'), CommandError);
      const sub = join(dir, 'ro');
      await mkdir(sub, { mode: 0o555 });
      await chmod(sub, 0o555);
      // chmod to an impossible mode fails after the temp file exists: it must be cleaned up.
      await assert.rejects(root.writeFile(join(dir, 'badmode'), 'x', { mode: 0o7777 + 1 }), CommandError);
      assert.deepEqual((await readdir(dir)).filter((f) => f.startsWith('.prep-node') || f === 'badmode'), []);
    });

    it('writeFile over a directory fails instead of dropping the file inside it', async () => {
      const target = join(dir, 'a-directory');
      await mkdir(target);
      await assert.rejects(root.writeFile(target, 'x'), CommandError);
      assert.deepEqual(await readdir(target), []);
    });

    it('readFile of a missing file throws a CommandError', async () => {
      await assert.rejects(root.readFile(join(dir, 'missing')), (err: unknown) => err instanceof CommandError && /No such file/.test(err.message));
    });

    it('upload copies a local file with its bytes and the mode', async () => {
      const local = join(dir, 'local.bin');
      const data = randomBytes(300_000);
      await writeFile(local, data);
      const remote = join(dir, 'uploaded.bin');
      await root.upload(local, remote, { mode: 0o755 });
      assert.ok((await readFile(remote)).equals(data));
      assert.equal((await root.exec(`stat -c %a ${remote}`)).trim(), '755');
    });
  });

  describe('sudo', () => {
    let rootDir: string;

    before(async () => {
      rootDir = await makeTempDir('pntest-rootdir-');
      await chmod(rootDir, 0o755); // root-owned, others may read but not write
    });
    after(async () => {
      if (rootDir) await removeTempDir(rootDir);
    });

    it('a NOPASSWD user runs commands as root with sudo: true', async (t) => {
      const h = await connectFor(t, sshd, c, nopw.name);
      assert.equal(h.user, nopw.name);
      assert.equal(await h.exec('id -u'), `${nopw.uid}\n`);
      assert.equal(await h.exec('id -u', { sudo: true }), '0\n');
      // Quoting survives the sudo wrapping; exit codes and stdin pass through.
      const r = await h.run(`printf '%s|' "a b" 'c'"'"'d'; cat; exit 7`, { sudo: true, stdin: 'in' });
      assert.deepEqual(r, { stdout: "a b|c'd|in", stderr: '', code: 7, timedOut: false });
    });

    it('writeFile/readFile with sudo: true work in a root-owned dir, and fail without', async (t) => {
      const h = await connectFor(t, sshd, c, nopw.name);
      const path = join(rootDir, 'sudo-written');
      await assert.rejects(h.writeFile(path, 'x'), CommandError);
      assert.equal(existsSync(path), false);
      const data = Buffer.concat([randomBytes(5000), Buffer.from('\0end')]);
      await h.writeFile(path, data, { sudo: true, mode: 0o640 });
      assert.ok((await readFile(path)).equals(data));
      const st = await stat(path);
      assert.equal(st.uid, 0);
      assert.equal(st.mode & 0o7777, 0o640);
      assert.equal(await h.readFile(path, { sudo: true }), data.toString('utf8'));
      await assert.rejects(h.readFile(path), (err: unknown) => err instanceof CommandError && /Permission denied/.test(err.message));
      const local = join(rootDir, 'to-upload');
      await writeFile(local, 'uploaded\n');
      await h.upload(local, join(rootDir, 'uploaded'), { sudo: true, mode: 0o600 });
      assert.equal(await readFile(join(rootDir, 'uploaded'), 'utf8'), 'uploaded\n');
      assert.equal((await stat(join(rootDir, 'uploaded'))).mode & 0o7777, 0o600);
      assert.deepEqual(readdirSync(rootDir).filter((f) => f.startsWith('.prep-node')), []);
    });

    it('a user whose sudo wants a password gets HostError sudo-password naming the user', async (t) => {
      const h = await connectFor(t, sshd, c, pw.name);
      const err = await hostError(h.run('id -u', { sudo: true }), 'sudo-password');
      assert.match(err.message, new RegExp(`^${pw.name}@127\\.0\\.0\\.1:${sshd.port}: .*user ${pw.name}\\b`));
      assert.match(err.message, /password/);
      // Without sudo the same user is fine.
      assert.equal(await h.exec('id -un'), `${pw.name}\n`);
    });

    it('a user not in sudoers gets a sudo-password HostError too, not a silent failure', async (t) => {
      const h = await connectFor(t, sshd, c, none.name);
      const err = await hostError(h.writeFile(join(rootDir, 'nope'), 'x', { sudo: true }), 'sudo-password');
      assert.match(err.message, new RegExp(`user ${none.name}\\b`));
      assert.equal(existsSync(join(rootDir, 'nope')), false);
    });

    it('root with sudo: true runs the command directly, without sudo', async () => {
      // sudo resets the environment: SSH_CONNECTION survives only when no sudo is in between.
      const out = await root.exec('echo "$SSH_CONNECTION"; id -u', { sudo: true });
      assert.match(out, new RegExp(`^127\\.0\\.0\\.1 \\d+ 127\\.0\\.0\\.1 ${sshd.port}\\n0\\n$`));
      assert.equal(await root.exec('echo "${SUDO_USER:-none}"', { sudo: true }), 'none\n');
    });
  });

  describe('parseTarget and ssh_config', () => {
    it('the target user overrides ssh_config User, and an alias resolves through ssh_config', async (t) => {
      const c2 = await testClient(t);
      await authorize(sshd, 'root', c2.key.publicKey);
      await trust(c2, sshd);
      await writeConfig(c2, [hostBlock('mainalias', { HostName: '127.0.0.1', Port: sshd.port, User: 'nobody' })]);
      const h = await openHost(parseTarget('root@mainalias'), { configFile: c2.configFile });
      t.after(() => h.close());
      assert.equal(h.name, 'root@mainalias');
      assert.equal(h.user, 'root');
      assert.equal(await h.exec('id -un'), 'root\n');
      // Without a user in the target, ssh_config's User applies (nobody has no key: auth fails naming it).
      const err = await hostError(openHost(parseTarget('mainalias'), { configFile: c2.configFile }), 'auth');
      assert.match(err.message, /^mainalias: authentication failed for user nobody /);
    });

    it('identityFiles (like ssh -i) are tried before ssh_config IdentityFile', async (t) => {
      const c2 = await testClient(t);
      await trust(c2, sshd);
      const good = await makeClientKey(c2.dir, { name: 'good' });
      await authorize(sshd, 'root', good.publicKey);
      const h = await connectFor(t, sshd, c2, 'root', { identityFiles: [good.privateKeyPath] });
      assert.equal(await h.exec('echo in'), 'in\n');
    });
  });

  describe('close()', () => {
    it('ends the connection: a later run rejects with disconnected; closing twice is fine', async (t) => {
      const h = await connect(sshd, c);
      const conn = (await h.exec('echo $SSH_CONNECTION')).trim();
      const clientPort = conn.split(' ')[1];
      await h.close();
      await hostError(h.run('echo again'), 'disconnected');
      await hostError(h.exec('echo again'), 'disconnected');
      await h.close();
      // sshd saw the client go.
      assert.ok(await eventually(() => new RegExp(`Disconnected from user root 127\\.0\\.0\\.1 port ${clientPort}\\b`).test(sshd.log())), sshd.log());
      t.diagnostic(`closed connection from port ${clientPort}`);
    });
  });
});

// ---------------------------------------------------------------------------------------------

describe('known_hosts', () => {
  it('an unknown host key is refused with its fingerprint and --accept-new-host-key; known_hosts untouched', async (t) => {
    const sshd = await sshdFor(t);
    const c = await testClient(t);
    await authorize(sshd, 'root', c.key.publicKey);
    const err = await hostError(connect(sshd, c), 'host-key-unknown');
    assert.ok(err.message.includes(sshd.fingerprint), err.message);
    assert.match(err.message, /--accept-new-host-key/);
    assert.match(err.message, new RegExp(`^root@127\\.0\\.0\\.1:${sshd.port}: `));
    assert.equal(existsSync(c.knownHosts), false);
    assert.doesNotMatch(sshd.log(), /Accepted publickey/, 'no authentication before the host key is trusted');
  });

  it('acceptNewHostKey records the key; the next connect without it succeeds', async (t) => {
    const sshd = await sshdFor(t);
    const c = await testClient(t);
    await authorize(sshd, 'root', c.key.publicKey);
    const h1 = await connectFor(t, sshd, c, 'root', { acceptNewHostKey: true });
    assert.equal(await h1.exec('echo one'), 'one\n');
    assert.equal(await readFile(c.knownHosts, 'utf8'), sshd.knownHostsLine() + '\n');
    // OpenSSH itself finds the entry.
    const { stdout } = await execFileP('ssh-keygen', ['-F', `[127.0.0.1]:${sshd.port}`, '-f', c.knownHosts]);
    assert.match(stdout, /ssh-ed25519/);
    const h2 = await connectFor(t, sshd, c);
    assert.equal(await h2.exec('echo two'), 'two\n');
    assert.equal((await readFile(c.knownHosts, 'utf8')).split('\n').filter(Boolean).length, 1, 'not recorded twice');
  });

  it('StrictHostKeyChecking accept-new in ssh_config acts like acceptNewHostKey', async (t) => {
    const sshd = await sshdFor(t);
    const c = await testClient(t);
    await authorize(sshd, 'root', c.key.publicKey);
    await writeConfig(c, [], ['StrictHostKeyChecking accept-new']);
    const h = await connectFor(t, sshd, c);
    assert.equal(await h.exec('echo ok'), 'ok\n');
    assert.equal(await readFile(c.knownHosts, 'utf8'), sshd.knownHostsLine() + '\n');
  });

  it('appends a key to a known_hosts whose last line has no newline without corrupting it', async (t) => {
    const sshd = await sshdFor(t);
    const c = await testClient(t);
    await authorize(sshd, 'root', c.key.publicKey);
    const other = 'other.example ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl';
    await writeFile(c.knownHosts, other); // no trailing newline
    const h = await connectFor(t, sshd, c, 'root', { acceptNewHostKey: true });
    await h.exec('true');
    const lines = (await readFile(c.knownHosts, 'utf8')).split('\n').filter(Boolean);
    assert.deepEqual(lines, [other, sshd.knownHostsLine()]);
  });

  it('after sshd restarts on the same port: same key connects, a NEW key is host-key-changed even with acceptNewHostKey', async (t) => {
    let sshd = await startSshd();
    t.after(() => sshd.stop());
    const c = await testClient(t);
    await authorize(sshd, 'root', c.key.publicKey);
    await trust(c, sshd);
    const oldFp = sshd.fingerprint;
    const h1 = await connectFor(t, sshd, c);
    assert.equal(await h1.exec('echo before'), 'before\n');

    sshd = await restartSshd(sshd);
    await authorize(sshd, 'root', c.key.publicKey);
    assert.equal(sshd.fingerprint, oldFp);
    const h2 = await connectFor(t, sshd, c);
    assert.equal(await h2.exec('echo same'), 'same\n');

    sshd = await restartSshd(sshd, { newHostKey: true });
    await authorize(sshd, 'root', c.key.publicKey);
    assert.notEqual(sshd.fingerprint, oldFp);
    const knownBefore = await readFile(c.knownHosts, 'utf8');
    for (const acceptNewHostKey of [false, true]) {
      const err = await hostError(connect(sshd, c, 'root', { acceptNewHostKey }), 'host-key-changed');
      assert.ok(err.message.includes(sshd.fingerprint), err.message);
      assert.ok(err.message.includes(`${c.knownHosts}:1`), err.message);
      assert.match(err.message, /HOST KEY CHANGED/);
    }
    assert.equal(await readFile(c.knownHosts, 'utf8'), knownBefore, 'known_hosts not modified');
  });

  it('HashKnownHosts yes writes a hashed |1| line, which is then recognised (by us and by OpenSSH)', async (t) => {
    const sshd = await sshdFor(t);
    const c = await testClient(t);
    await authorize(sshd, 'root', c.key.publicKey);
    await writeConfig(c, [], ['HashKnownHosts yes']);
    const h1 = await connectFor(t, sshd, c, 'root', { acceptNewHostKey: true });
    await h1.exec('true');
    const text = await readFile(c.knownHosts, 'utf8');
    assert.match(text, /^\|1\|[A-Za-z0-9+/=]+\|[A-Za-z0-9+/=]+ ssh-ed25519 AAAA\S+\n$/);
    assert.ok(!text.includes('127.0.0.1'));
    assert.ok(text.includes(sshd.hostKeyPub.split(' ')[1]!));
    const { stdout } = await execFileP('ssh-keygen', ['-F', `[127.0.0.1]:${sshd.port}`, '-f', c.knownHosts]);
    assert.match(stdout, /Host \[127\.0\.0\.1\]:\d+ found: line 1/);
    await writeConfig(c); // HashKnownHosts no: reading hashed lines does not depend on it
    const h2 = await connectFor(t, sshd, c);
    assert.equal(await h2.exec('echo hashed'), 'hashed\n');
    // A hashed line for another port does not match.
    const other = await sshdFor(t, { hostKeyFile: sshd.hostKeyFile });
    await authorize(other, 'root', c.key.publicKey);
    await hostError(connect(other, c), 'host-key-unknown');
  });

  it('a @revoked key is refused, even when also listed as known and with acceptNewHostKey', async (t) => {
    const sshd = await sshdFor(t);
    const c = await testClient(t);
    await authorize(sshd, 'root', c.key.publicKey);
    await writeFile(c.knownHosts, `${sshd.knownHostsLine()}\n@revoked * ${sshd.hostKeyPub}\n`);
    const err = await hostError(connect(sshd, c, 'root', { acceptNewHostKey: true }), 'host-key-revoked');
    assert.ok(err.message.includes(sshd.fingerprint));
    assert.ok(err.message.includes(`${c.knownHosts}:2`), err.message);
  });

  for (const type of ['ecdsa', 'rsa'] as const) {
    it(`verifies ${type} host keys`, async (t) => {
      const sshd = await sshdFor(t, { hostKeyType: type });
      const c = await testClient(t);
      await authorize(sshd, 'root', c.key.publicKey);
      await hostError(connect(sshd, c), 'host-key-unknown');
      await trust(c, sshd);
      const h = await connectFor(t, sshd, c);
      assert.equal(await h.exec('echo typed'), 'typed\n');
    });
  }

  it('HostKeyAlias: the key is recorded and looked up under the alias', async (t) => {
    const sshd = await sshdFor(t);
    const c = await testClient(t);
    await authorize(sshd, 'root', c.key.publicKey);
    await writeConfig(c, [], ['HostKeyAlias pntest-alias']);
    await writeFile(c.knownHosts, `pntest-alias ${sshd.hostKeyPub}\n`);
    const h = await connectFor(t, sshd, c);
    assert.equal(await h.exec('echo aliased'), 'aliased\n');
  });
});

// ---------------------------------------------------------------------------------------------

describe('ProxyJump', () => {
  let jump: Sshd;
  let target: Sshd;
  let c: Client;

  before(async () => {
    // The jump logs at DEBUG1 so its log shows the direct-tcpip forward to the target.
    jump = await startSshd({ setEnv: { PN_WHICH: 'jump' }, logLevel: 'DEBUG1' });
    target = await startSshd({ setEnv: { PN_WHICH: 'target' } });
    c = await makeClient();
    for (const d of [jump, target]) await authorize(d, 'root', c.key.publicKey);
    await writeConfig(c, [
      hostBlock('jump', { HostName: '127.0.0.1', Port: jump.port, User: 'root' }),
      hostBlock('target', { HostName: '127.0.0.1', Port: target.port, User: 'root', ProxyJump: 'jump' }),
      hostBlock('target-inline', { HostName: '127.0.0.1', Port: target.port, User: 'root', ProxyJump: `root@127.0.0.1:${jump.port}` }),
    ]);
  });
  after(async () => {
    await jump?.stop();
    await target?.stop();
    if (c) await removeTempDir(c.dir);
  });

  it('runs commands on the target through the jump host', async (t) => {
    await trust(c, jump, target);
    for (const alias of ['target', 'target-inline']) {
      const h = await openHost(parseTarget(alias), { configFile: c.configFile });
      t.after(() => h.close());
      assert.equal(h.name, alias);
      const [which, , , , serverPort] = (await h.exec('echo $PN_WHICH $SSH_CONNECTION')).trim().split(' ');
      assert.equal(which, 'target');
      assert.equal(serverPort, String(target.port));
      // Files and parallel commands work over the forwarded connection too.
      const rs = await Promise.all(Array.from({ length: 12 }, (_, i) => h.exec(`echo ${i}`)));
      assert.deepEqual(rs, Array.from({ length: 12 }, (_, i) => `${i}\n`));
    }
    // The jump sshd forwarded to the target (and nobody ran a command there).
    assert.match(jump.log(), new RegExp(`target 127\\.0\\.0\\.1 port ${target.port}\\b`));
    assert.doesNotMatch(jump.log(), /Starting session/);
  });

  it("the connection really runs through the jump: dropping the jump's connections drops it (disconnected)", async (t) => {
    await trust(c, jump, target);
    const j = await startSshd({ setEnv: { PN_WHICH: 'jump2' } });
    t.after(() => j.stop());
    await authorize(j, 'root', c.key.publicKey);
    const c2 = await testClient(t);
    await authorize(target, 'root', c2.key.publicKey);
    await authorize(j, 'root', c2.key.publicKey);
    await trust(c2, j, target);
    await writeConfig(c2, [
      hostBlock('j', { HostName: '127.0.0.1', Port: j.port, User: 'root' }),
      hostBlock('t', { HostName: '127.0.0.1', Port: target.port, User: 'root', ProxyJump: 'j' }),
    ]);
    const h = await openHost(parseTarget('t'), { configFile: c2.configFile });
    t.after(() => h.close());
    assert.equal(await h.exec('echo $PN_WHICH'), 'target\n');
    const m = String(randomBytes(4).readUInt32BE(0)).padStart(10, '0');
    t.after(() => killMarked(m)); // the target's command outlives the dropped connection
    const dropped = hostError(h.run(`sleep 20.${m}; echo never`), 'disconnected'); // handled from the start
    await sleep(300);
    await j.dropConnections();
    const t0 = Date.now();
    await dropped;
    await hostError(h.run('echo after'), 'disconnected');
    assert.ok(Date.now() - t0 < 5000);
  });

  it("the jump host's key is verified too: an unknown jump key is refused", async () => {
    await trust(c, target); // only the target is known
    const targetLog = target.log().length;
    const err = await hostError(openHost(parseTarget('target'), { configFile: c.configFile }), 'host-key-unknown');
    assert.ok(err.message.includes(jump.fingerprint), err.message);
    assert.ok(!err.message.includes(target.fingerprint));
    assert.match(err.message, /^target \(jump host jump\): /);
    assert.doesNotMatch(target.log().slice(targetLog), /Connection from/, 'nothing reached the target');
  });

  it("and the target's key is verified through the jump: an unknown target key is refused", async () => {
    await trust(c, jump); // only the jump is known
    const err = await hostError(openHost(parseTarget('target'), { configFile: c.configFile }), 'host-key-unknown');
    assert.ok(err.message.includes(target.fingerprint), err.message);
    assert.match(err.message, /^target: /);
  });

  it('--accept-new-host-key records the jump\'s and the target\'s keys and names each on one line with its fingerprint', async (t) => {
    await writeFile(c.knownHosts, ''); // neither is known
    const lines: string[] = [];
    const h = await openHost(parseTarget('target'), { configFile: c.configFile, acceptNewHostKey: true, onHostKeyAdded: (l) => lines.push(l) });
    t.after(() => h.close());
    assert.equal(await h.exec('echo $PN_WHICH'), 'target\n');
    assert.equal(lines.length, 2, lines.join('\n'));
    // The jump is trusted first (it is connected first), then the target through it.
    assert.match(lines[0]!, new RegExp(`^prep-node: target \\(jump host jump\\): permanently added '\\[127\\.0\\.0\\.1\\]:${jump.port}' \\(`));
    assert.ok(lines[0]!.includes(jump.fingerprint) && lines[0]!.endsWith(`to ${c.knownHosts} (--accept-new-host-key)`), lines[0]);
    assert.match(lines[1]!, new RegExp(`^prep-node: target: permanently added '\\[127\\.0\\.0\\.1\\]:${target.port}' \\(`));
    assert.ok(lines[1]!.includes(target.fingerprint), lines[1]);
    // Both are recorded: the next connection without the flag works and announces nothing.
    const again: string[] = [];
    const h2 = await openHost(parseTarget('target'), { configFile: c.configFile, onHostKeyAdded: (l) => again.push(l) });
    t.after(() => h2.close());
    assert.equal(await h2.exec('echo $PN_WHICH'), 'target\n');
    assert.deepEqual(again, []);
  });

  it('a ProxyJump loop is refused with one line (exit 2) and nothing is contacted', async () => {
    await trust(c, jump, target);
    await writeConfig(c, [
      hostBlock('loop-a', { HostName: '127.0.0.1', Port: jump.port, User: 'root', ProxyJump: 'loop-b' }),
      hostBlock('loop-b', { HostName: '127.0.0.1', Port: target.port, User: 'root', ProxyJump: 'loop-a' }),
    ]);
    const jumpLog = jump.log().length;
    const targetLog = target.log().length;
    const err = await openHost(parseTarget('loop-a'), { configFile: c.configFile }).then(
      () => assert.fail('connected through a loop'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof UsageError, String(err));
    assert.equal(err.exitCode, ExitCode.usage);
    assert.match(err.message, /^loop-a: ProxyJump loop: loop-a -> loop-b -> loop-a /);
    assert.doesNotMatch(jump.log().slice(jumpLog), /Connection from/);
    assert.doesNotMatch(target.log().slice(targetLog), /Connection from/);
  });

  it('a jump host that cannot reach the target gives a proxy error', async () => {
    await trust(c, jump, target);
    const closed = await freePort();
    await writeConfig(c, [
      hostBlock('jump', { HostName: '127.0.0.1', Port: jump.port, User: 'root' }),
      hostBlock('nowhere', { HostName: '127.0.0.1', Port: closed, User: 'root', ProxyJump: 'jump' }),
    ]);
    const err = await hostError(openHost(parseTarget('nowhere'), { configFile: c.configFile }), 'proxy');
    assert.match(err.message, new RegExp(`^nowhere: .*127\\.0\\.0\\.1 port ${closed}`));
  });
});

// ---------------------------------------------------------------------------------------------

describe('connection failures: one line, the right kind', () => {
  let sshd: Sshd;
  before(async () => {
    sshd = await startSshd();
  });
  after(async () => {
    await sshd?.stop();
  });

  it('a closed port is refused', async (t) => {
    const c = await testClient(t);
    const port = await freePort();
    const err = await hostError(connect({ port }, c), 'refused');
    assert.match(err.message, new RegExp(`^root@127\\.0\\.0\\.1:${port}: connection refused by 127\\.0\\.0\\.1 port ${port}`));
  });

  it('a port that accepts TCP but never speaks SSH times out (ConnectTimeout from ssh_config)', async (t) => {
    const c = await testClient(t);
    const sockets: Socket[] = [];
    const srv: Server = createServer((s) => sockets.push(s));
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    t.after(() => {
      for (const s of sockets) s.destroy();
      srv.close();
    });
    const port = (srv.address() as { port: number }).port;
    await writeConfig(c, [], ['ConnectTimeout 1']);
    const t0 = Date.now();
    const err = await hostError(connect({ port }, c), 'timeout');
    assert.ok(Date.now() - t0 < 4000);
    assert.match(err.message, /within 1 s/);
  });

  it('nosuchhost.invalid is a dns error (resolved in a private netns against a local resolver)', async (t) => {
    // No DNS traffic may leave 127.0.0.1: run the connect in a child with its own network and mount
    // namespaces, where /etc/resolv.conf points at 127.0.0.1: first with no resolver (EAI_AGAIN),
    // then with a tiny resolver answering NXDOMAIN (ENOTFOUND).
    const c = await testClient(t);
    const resolv = join(c.dir, 'resolv.conf');
    await writeFile(resolv, 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n');
    const script = join(c.dir, 'dns-child.mjs');
    const dist = fileURLToPath(new URL('../../src/host/', import.meta.url));
    await writeFile(
      script,
      `
import dgram from 'node:dgram';
const { openHost } = await import(${JSON.stringify(pathToFileURL(join(dist, 'connect.js')).href)});
const { parseTarget } = await import(${JSON.stringify(pathToFileURL(join(dist, 'target.js')).href)});
const attempt = async () => {
  try { const h = await openHost(parseTarget('root@nosuchhost.invalid'), { configFile: ${JSON.stringify(c.configFile)} }); await h.close(); return { ok: true }; }
  catch (e) { return { kind: e.kind, message: e.message, code: e.cause?.code }; }
};
const results = [await attempt()];
const sock = dgram.createSocket('udp4');
sock.on('message', (q, from) => {
  let i = 12; while (i < q.length && q[i] !== 0) i += q[i] + 1; i += 5; // end of the question
  const r = Buffer.from(q.subarray(0, i));
  r[2] = 0x80 | (q[2] & 0x79); r[3] = 0x83; // response, same opcode/RD; RA, NXDOMAIN
  r.writeUInt16BE(1, 4); r.writeUInt16BE(0, 6); r.writeUInt16BE(0, 8); r.writeUInt16BE(0, 10);
  sock.send(r, from.port, from.address);
});
await new Promise((res) => sock.bind(53, '127.0.0.1', res));
results.push(await attempt());
sock.close();
console.log(JSON.stringify(results));
`,
    );
    const { stdout } = await execFileP(
      'unshare',
      ['--mount', '--net', 'sh', '-c', `ip link set lo up && mount --bind "$1" /etc/resolv.conf && exec "$2" "$3"`, 'sh', resolv, process.execPath, script],
      { timeout: 30_000 },
    );
    const results = JSON.parse(stdout) as { kind: string; message: string; code: string }[];
    assert.equal(results.length, 2);
    assert.deepEqual(results.map((r) => r.code), ['EAI_AGAIN', 'ENOTFOUND']);
    for (const r of results) {
      assert.equal(r.kind, 'dns', r.message);
      assert.match(r.message, /^root@nosuchhost\.invalid: cannot resolve host name "nosuchhost\.invalid"/);
      assert.doesNotMatch(r.message, /\n/);
    }
  });

  it('a wrong key is an auth error listing what was tried', async (t) => {
    const c = await testClient(t);
    await trust(c, sshd);
    const other = await makeClientKey(c.dir, { name: 'other_key' });
    await authorize(sshd, 'root', other.publicKey); // authorised: a different key than the client's
    const err = await hostError(connect(sshd, c), 'auth');
    assert.match(err.message, /authentication failed for user root/);
    assert.ok(err.message.includes(`tried ${c.key.privateKeyPath}`), err.message);
    assert.ok(!err.message.includes('other_key'));
  });

  it('no usable key at all says so', async (t) => {
    const c = await testClient(t);
    await trust(c, sshd);
    await writeConfig(c, [], [`IdentityFile ${join(c.dir, 'does-not-exist')}`]);
    const err = await hostError(connect(sshd, c), 'auth');
    assert.match(err.message, /no ssh-agent and no usable key file/);
  });

  it('an encrypted key is named as skipped in the auth message (and not used)', async (t) => {
    const c = await testClient(t);
    await trust(c, sshd);
    const enc = await makeClientKey(c.dir, { name: 'encrypted_key', passphrase: 'secret passphrase' });
    await authorize(sshd, 'root', enc.publicKey); // even the right key cannot be used without its passphrase
    await writeConfig(c, [], [`IdentityFile ${enc.privateKeyPath}`, `IdentityFile ${c.key.privateKeyPath}`]);
    const err = await hostError(connect(sshd, c), 'auth');
    assert.ok(err.message.includes(`${enc.privateKeyPath} (encrypted: load it into ssh-agent)`), err.message);
    assert.ok(err.message.includes(c.key.privateKeyPath), err.message);
  });

  it('an -i key that cannot be read is named', async (t) => {
    const c = await testClient(t);
    await trust(c, sshd);
    const missing = join(c.dir, 'missing_key');
    const err = await hostError(connect(sshd, c, 'root', { identityFiles: [missing] }), 'auth');
    assert.ok(err.message.includes(`${missing} (cannot read it)`), err.message);
  });

  it('a bad ssh_config is a UsageError, not a crash', async (t) => {
    const c = await testClient(t);
    await writeFile(c.configFile, 'NoSuchOption yes\n');
    await assert.rejects(connect(sshd, c), (err: unknown) => err instanceof Error && err.name === 'UsageError' && /ssh_config/.test(err.message));
  });

  it('the server going away mid-command rejects with disconnected instead of hanging', async (t) => {
    const s = await sshdFor(t);
    const c = await testClient(t);
    await authorize(s, 'root', c.key.publicKey);
    await trust(c, s);
    const h = await connectFor(t, s, c);
    const m = String(randomBytes(4).readUInt32BE(0)).padStart(10, '0');
    t.after(() => killMarked(m));
    const dropped = hostError(h.run(`sleep 20.${m}`), 'disconnected'); // handled from the start
    await sleep(300);
    await s.dropConnections();
    await dropped;
    await hostError(h.run('true'), 'disconnected');
  });
});

// Nothing of ours may be left: no sshd from this file, no test user.
after(async () => {
  const users = (await readFile('/etc/passwd', 'utf8')).split('\n').filter((l) => l.startsWith('pntest-'));
  assert.deepEqual(users, [], 'test users left behind');
  const spawned = await new Promise<string>((resolve) => {
    const ps = spawn('ps', ['-eo', 'args'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    ps.stdout.on('data', (b: Buffer) => (out += b.toString()));
    ps.on('close', () => resolve(out));
  });
  assert.doesNotMatch(spawned, /pntest-sshd-/, 'an sshd of this file still runs');
});
