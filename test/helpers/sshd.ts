// A real OpenSSH sshd for tests: no mocks. Each instance listens on 127.0.0.1 on a free port with
// a throwaway host key and config in its own temp dir. Also real local users with sudoers drop-ins,
// and client keys made by ssh-keygen. Needs root (sshd, useradd, /etc/sudoers.d).
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rename, rm, writeFile, appendFile } from 'node:fs/promises';
import { createServer, connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

export const SSHD_BIN = '/usr/sbin/sshd';

export type HostKeyType = 'ed25519' | 'ecdsa' | 'rsa';

export interface StartSshdOptions {
  hostKeyType?: HostKeyType;
  /** Reuse this private host key (it is copied into the new instance's dir). */
  hostKeyFile?: string;
  /** Listen on this port (to restart on the same port); a free one otherwise. */
  port?: number;
  /** `SetEnv NAME=value` lines: every session on this sshd sees them. */
  setEnv?: Record<string, string>;
  /** sshd LogLevel (default VERBOSE; DEBUG1 logs forwarding requests). */
  logLevel?: 'QUIET' | 'FATAL' | 'ERROR' | 'INFO' | 'VERBOSE' | 'DEBUG1' | 'DEBUG2' | 'DEBUG3';
  /** Extra sshd_config lines, appended. */
  extraConfig?: string[];
  /**
   * Sessions get HOME=<dir>/home (empty, world-writable) instead of the user's home, so dotfiles of
   * the machine running the tests (root's ~/.bashrc, which bash sources for ssh commands) do not
   * add output or delay to every command. Default true.
   */
  isolateHome?: boolean;
}

export interface Sshd {
  host: '127.0.0.1';
  port: number;
  dir: string;
  /** Private host key path (inside dir: gone after stop()). */
  hostKeyFile: string;
  /** Public host key, `ssh-ed25519 AAAA...` (no comment). */
  hostKeyPub: string;
  /** `SHA256:...` as `ssh-keygen -lf` prints it. */
  fingerprint: string;
  pid: number;
  /** `[127.0.0.1]:PORT ssh-ed25519 AAAA...` */
  knownHostsLine(): string;
  /** Everything sshd wrote to stdout/stderr so far. */
  log(): string;
  /**
   * Kill sshd and everything under it (sessions first, then connections, then the listener), remove
   * dir. Safe to call twice.
   */
  stop(): Promise<void>;
  /**
   * SIGKILL the per-connection sshd processes, as if the host or the network went away: clients see
   * their connection drop while commands run. Those commands may live on as orphans (the caller
   * cleans them up). The listener keeps running.
   */
  dropConnections(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// Safety net: whatever a crashed test leaves behind is killed/removed when the process exits.

const liveDaemons = new Map<number, { dir: string }>();
const liveDirs = new Set<string>();
let netInstalled = false;

function cleanupSync(): void {
  for (const [pid, { dir }] of liveDaemons) {
    killTree(pid, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
  liveDaemons.clear();
  for (const dir of liveDirs) rmSync(dir, { recursive: true, force: true });
  liveDirs.clear();
}

function installSafetyNet(): void {
  if (netInstalled) return;
  netInstalled = true;
  process.on('exit', cleanupSync);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = (): void => {
      cleanupSync();
      process.removeListener(sig, onSignal);
      process.kill(process.pid, sig); // die of the signal, as without this handler
    };
    process.on(sig, onSignal);
  }
}

/** Direct children of a pid, from /proc (sshd forks one child per connection, in its own session). */
export function childPids(pid: number): number[] {
  const kids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // pid (comm) state ppid ...; comm may contain spaces and parentheses: split after the last ')'.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) kids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return kids;
}

/** Is the process gone (or a zombie nobody reaped yet)? */
export function processGone(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

/** pid and its descendants, by depth: [[pid], [children], [grandchildren], ...]. */
function treeLevels(pid: number): number[][] {
  const levels: number[][] = [];
  let level = [pid];
  while (level.length > 0) {
    levels.push(level);
    level = level.flatMap(childPids);
  }
  return levels;
}

function signal(pids: number[], sig: NodeJS.Signals): void {
  for (const p of pids) {
    try {
      process.kill(p, sig);
    } catch {
      // already gone
    }
  }
}

/** Signal pid and all its descendants at once, by pid (the exit path: no waiting). */
function killTree(pid: number, sig: NodeJS.Signals): void {
  signal(treeLevels(pid).flat(), sig);
}

/**
 * Stop a process tree from the leaves up, so each parent is still there to reap its children
 * (orphans would be left as zombies where PID 1 does not reap): sessions, then the per-connection
 * sshd processes, then the listener.
 */
async function stopTree(pid: number): Promise<void> {
  const levels = treeLevels(pid);
  for (let i = levels.length - 1; i >= 0; i--) {
    const pids = levels[i]!;
    signal(pids, i === 0 ? 'SIGTERM' : 'SIGKILL');
    const end = Date.now() + 1000;
    while (Date.now() < end && !pids.every(processGone)) await sleep(10);
  }
}

// ---------------------------------------------------------------------------------------------

/** A TCP port on 127.0.0.1 that nothing listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function portAccepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = netConnect({ host: '127.0.0.1', port });
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Make a temp dir that is removed at exit unless removed earlier (see removeTempDir). */
export async function makeTempDir(prefix = 'pntest-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  liveDirs.add(dir);
  installSafetyNet();
  return dir;
}

export async function removeTempDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
  liveDirs.delete(dir);
}

/** `ssh-keygen -lf` of a public key line or file: the SHA256 fingerprint. */
export async function fingerprintOf(pubKeyFile: string): Promise<string> {
  const { stdout } = await execFileP('ssh-keygen', ['-l', '-E', 'sha256', '-f', pubKeyFile]);
  const fp = stdout.split(/\s+/)[1];
  if (!fp?.startsWith('SHA256:')) throw new Error(`ssh-keygen -lf ${pubKeyFile}: unexpected output ${stdout}`);
  return fp;
}

let perSourcePenaltiesKnown: boolean | undefined;

/** OpenSSH >= 9.8 penalises sources with failed logins; tests fail logins on purpose from 127.0.0.1. */
async function supportsPerSourcePenalties(dir: string, baseConfig: string): Promise<boolean> {
  if (perSourcePenaltiesKnown !== undefined) return perSourcePenaltiesKnown;
  const probe = join(dir, 'probe_config');
  await writeFile(probe, baseConfig + 'PerSourcePenalties no\n', { mode: 0o600 });
  try {
    await execFileP(SSHD_BIN, ['-t', '-f', probe]);
    perSourcePenaltiesKnown = true;
  } catch {
    perSourcePenaltiesKnown = false;
  }
  await rm(probe, { force: true });
  return perSourcePenaltiesKnown;
}

function setEnvLine(vars: Record<string, string>): string[] {
  const entries = Object.entries(vars);
  return entries.length === 0 ? [] : [`SetEnv ${entries.map(([k, v]) => `${k}="${v}"`).join(' ')}`];
}

/** Start a real sshd on 127.0.0.1. Resolves once the port accepts connections. */
export async function startSshd(opts: StartSshdOptions = {}): Promise<Sshd> {
  if (!existsSync(SSHD_BIN)) throw new Error(`${SSHD_BIN} missing: apt-get install -y --no-install-recommends openssh-server`);
  installSafetyNet();
  // Privilege separation dir: sshd refuses to start without it (normally made by systemd's RuntimeDirectory).
  await mkdir('/run/sshd', { recursive: true, mode: 0o755 });

  const dir = await makeTempDir('pntest-sshd-');
  // sshd reads authorized_keys as the logging-in user: the dir must be traversable by everyone.
  await chmod(dir, 0o755);
  await mkdir(join(dir, 'authorized_keys'), { mode: 0o755 });

  const hostKeyFile = join(dir, 'host_key');
  if (opts.hostKeyFile) {
    await writeFile(hostKeyFile, await readFile(opts.hostKeyFile), { mode: 0o600 });
    const { stdout } = await execFileP('ssh-keygen', ['-y', '-f', hostKeyFile]);
    await writeFile(hostKeyFile + '.pub', stdout, { mode: 0o644 });
  } else {
    const type = opts.hostKeyType ?? 'ed25519';
    const args = ['-q', '-t', type, '-N', '', '-C', 'pntest-host', '-f', hostKeyFile];
    if (type === 'rsa') args.splice(3, 0, '-b', '2048');
    if (type === 'ecdsa') args.splice(3, 0, '-b', '256');
    await execFileP('ssh-keygen', args);
  }
  await chmod(hostKeyFile, 0o600);
  const hostKeyPub = (await readFile(hostKeyFile + '.pub', 'utf8')).trim().split(/\s+/).slice(0, 2).join(' ');
  const fingerprint = await fingerprintOf(hostKeyFile + '.pub');

  const home = join(dir, 'home');
  if (opts.isolateHome !== false) {
    await mkdir(home);
    await chmod(home, 0o1777);
  }
  const configFor = (port: number): string =>
    [
      `Port ${port}`,
      `ListenAddress 127.0.0.1`,
      `HostKey ${hostKeyFile}`,
      `PidFile ${join(dir, 'sshd.pid')}`,
      `AuthorizedKeysFile ${join(dir, 'authorized_keys')}/%u`,
      `PubkeyAuthentication yes`,
      `PasswordAuthentication no`,
      `KbdInteractiveAuthentication no`,
      `UsePAM no`,
      `StrictModes no`,
      `PermitRootLogin prohibit-password`,
      `AllowTcpForwarding yes`,
      `MaxSessions 10`,
      `MaxStartups 100`,
      `PrintMotd no`,
      `PrintLastLog no`,
      `LogLevel ${opts.logLevel ?? 'VERBOSE'}`,
      `Subsystem sftp internal-sftp`,
      // One SetEnv line: sshd uses only the first.
      ...setEnvLine({ ...(opts.isolateHome !== false && { HOME: home }), ...opts.setEnv }),
      ...(opts.extraConfig ?? []),
      '',
    ].join('\n');

  const configFile = join(dir, 'sshd_config');
  let lastError = '';
  // A free port can be taken between freePort() and sshd's bind: retry with another one.
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = opts.port ?? (await freePort());
    let config = configFor(port);
    if (await supportsPerSourcePenalties(dir, config)) config += 'PerSourcePenalties no\n';
    await writeFile(configFile, config, { mode: 0o600 });

    let output = '';
    let exited: number | string | null = null;
    const child: ChildProcess = spawn(SSHD_BIN, ['-D', '-e', '-f', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
    // Unreferenced: a test that forgets stop() does not hang the run; the exit safety net kills sshd.
    child.unref();
    (child.stdout as unknown as { unref(): void }).unref();
    (child.stderr as unknown as { unref(): void }).unref();
    child.stdout!.on('data', (b: Buffer) => (output += b.toString()));
    child.stderr!.on('data', (b: Buffer) => (output += b.toString()));
    const exitedP = new Promise<void>((resolve) =>
      child.once('exit', (code, signal) => {
        exited = code ?? signal ?? 'unknown';
        resolve();
      }),
    );
    child.once('error', (e) => {
      output += String(e);
      exited = 'spawn-error';
    });
    const pid = child.pid!;
    liveDaemons.set(pid, { dir });

    const deadline = Date.now() + 10_000;
    let up = false;
    while (Date.now() < deadline && exited === null) {
      // The log line comes right after listen(); a probe connection proves it accepts.
      if (/Server listening on/.test(output) && (await portAccepts(port))) {
        up = true;
        break;
      }
      await sleep(20);
    }
    if (up) {
      let stopped: Promise<void> | undefined;
      const sshd: Sshd = {
        host: '127.0.0.1',
        port,
        dir,
        hostKeyFile,
        hostKeyPub,
        fingerprint,
        pid,
        knownHostsLine: () => `[127.0.0.1]:${port} ${hostKeyPub}`,
        log: () => output,
        dropConnections: async () => {
          const conns = childPids(pid);
          signal(conns, 'SIGKILL');
          const end = Date.now() + 2000;
          while (Date.now() < end && !conns.every(processGone)) await sleep(10);
        },
        stop: () =>
          (stopped ??= (async () => {
            if (exited === null) {
              await stopTree(pid);
              const t = setTimeout(() => killTree(pid, 'SIGKILL'), 3000);
              await exitedP;
              clearTimeout(t);
            }
            liveDaemons.delete(pid);
            await removeTempDir(dir);
          })()),
      };
      return sshd;
    }
    if (exited === null) {
      killTree(pid, 'SIGKILL');
      await exitedP;
    }
    liveDaemons.delete(pid);
    lastError = output.trim() || `sshd exited with ${exited}`;
    if (opts.port !== undefined || !/Address already in use|Cannot bind/i.test(output)) break;
  }
  await removeTempDir(dir);
  throw new Error(`sshd did not start: ${lastError}`);
}

/** Stop an sshd and start another on the same port, with the same host key or a new one. */
export async function restartSshd(old: Sshd, opts: Omit<StartSshdOptions, 'port' | 'hostKeyFile'> & { newHostKey?: boolean } = {}): Promise<Sshd> {
  const keep = await makeTempDir('pntest-key-');
  try {
    const keyCopy = join(keep, 'host_key');
    await writeFile(keyCopy, await readFile(old.hostKeyFile), { mode: 0o600 });
    await old.stop();
    const { newHostKey, ...rest } = opts;
    return await startSshd({ ...rest, port: old.port, ...(!newHostKey && { hostKeyFile: keyCopy }) });
  } finally {
    await removeTempDir(keep);
  }
}

/** Allow a public key (`ssh-ed25519 AAAA... comment`) to log in as user. */
export async function authorize(sshd: Pick<Sshd, 'dir'>, user: string, publicKeyLine: string): Promise<void> {
  const file = join(sshd.dir, 'authorized_keys', user);
  await appendFile(file, publicKeyLine.trim() + '\n', { mode: 0o644 });
  await chmod(file, 0o644);
}

export interface ClientKey {
  privateKeyPath: string;
  /** The `.pub` line: `ssh-ed25519 AAAA... comment`. */
  publicKey: string;
}

/**
 * An ed25519 client key made by ssh-keygen in dir (a temp dir removed at exit when omitted).
 * With a passphrase the private key is encrypted.
 */
export async function makeClientKey(dir?: string, opts: { passphrase?: string; name?: string } = {}): Promise<ClientKey> {
  const where = dir ?? (await makeTempDir('pntest-key-'));
  const privateKeyPath = join(where, opts.name ?? `id_ed25519_${randomBytes(4).toString('hex')}`);
  await execFileP('ssh-keygen', ['-q', '-t', 'ed25519', '-N', opts.passphrase ?? '', '-C', 'pntest-client', '-f', privateKeyPath]);
  return { privateKeyPath, publicKey: (await readFile(privateKeyPath + '.pub', 'utf8')).trim() };
}

export interface TestUser {
  name: string;
  uid: number;
  home: string;
  remove(): Promise<void>;
}

const SUDOERS_DIR = '/etc/sudoers.d';

/**
 * A real local user `pntest-...`: home made, a random (unknown) password so the account is not
 * locked (sshd with UsePAM no refuses locked accounts even for keys), and a sudoers drop-in.
 */
export async function createUser(name: string, opts: { sudo: 'nopasswd' | 'password' | 'none' }): Promise<TestUser> {
  if (!/^pntest-[a-z0-9-]{1,20}$/.test(name)) throw new Error(`test user names look like pntest-xyz, not "${name}"`);
  const dropIn = join(SUDOERS_DIR, `prep-node-test-${name}`);
  const removeAll = async (): Promise<void> => {
    await rm(dropIn, { force: true });
    const uid = await uidOf(name);
    if (uid === null) return;
    // Processes left by the user (sessions, timed-out commands) would make userdel fail.
    for (const pid of pidsOfUid(uid)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    try {
      await execFileP('userdel', ['-r', '-f', name]);
    } catch (err) {
      // userdel exits 12 when only the mail spool is missing; the user is still gone.
      if ((await uidOf(name)) !== null) throw err;
    }
  };
  await removeAll(); // leftovers of an earlier crashed run
  await execFileP('useradd', ['-m', '-s', '/bin/sh', '-U', name]);
  try {
    await runWithStdin('chpasswd', [], `${name}:${randomBytes(18).toString('base64')}\n`);
    if (opts.sudo !== 'none') {
      const rule = `${name} ALL=(ALL:ALL) ${opts.sudo === 'nopasswd' ? 'NOPASSWD: ' : ''}ALL\n`;
      const tmp = join(SUDOERS_DIR, `.prep-node-test-${name}.tmp`); // sudo ignores names with a dot
      await writeFile(tmp, rule, { mode: 0o440 });
      try {
        await execFileP('visudo', ['-c', '-q', '-f', tmp]);
        await rename(tmp, dropIn);
      } finally {
        await rm(tmp, { force: true });
      }
    }
  } catch (err) {
    await removeAll();
    throw err;
  }
  const uid = (await uidOf(name))!;
  const home = (await execFileP('getent', ['passwd', name])).stdout.split(':')[5]!;
  let removed: Promise<void> | undefined;
  return { name, uid, home, remove: () => (removed ??= removeAll()) };
}

async function uidOf(name: string): Promise<number | null> {
  try {
    const { stdout } = await execFileP('id', ['-u', name]);
    return Number(stdout.trim());
  } catch {
    return null;
  }
}

function pidsOfUid(uid: number): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const status = readFileSync(`/proc/${entry}/status`, 'utf8');
      const m = /^Uid:\s+(\d+)\s+(\d+)/m.exec(status);
      if (m && (Number(m[1]) === uid || Number(m[2]) === uid)) pids.push(Number(entry));
    } catch {
      // gone
    }
  }
  return pids;
}

function runWithStdin(cmd: string, args: string[], input: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    child.once('error', reject);
    child.once('close', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} failed (${code}): ${err.trim()}`))));
    child.stdin.end(input);
  });
}
