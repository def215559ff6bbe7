// SshHost: one ssh2 connection per host per run, commands multiplexed on it as channels. Behaves
// like OpenSSH for its users: ssh_config via `ssh -G`, ssh-agent and key files, known_hosts
// verification (unknown keys refused unless accepted on first use, changed keys always refused),
// ProxyJump chains. This file and ssh-auth.ts are the only places ssh2 appears.
import ssh2 from 'ssh2';
import type { ClientChannel, ConnectConfig } from 'ssh2';
import type { Duplex } from 'node:stream';
import { HostError, UsageError, printable, type HostErrorKind } from '../errors.js';
import { BaseHost, type SpawnOptions } from './base.js';
import type { RunResult } from './host.js';
import { authHandlerFor } from './ssh-auth.js';
import {
  addKnownHost,
  fingerprint,
  keyTypeOf,
  knownHostsName,
  knownKeyTypes,
  loadKnownHosts,
  verifyHostKey,
  type KnownHostEntry,
} from './known-hosts.js';
import { resolveSshConfig, type SshSettings } from './ssh-config.js';
import { Semaphore } from './semaphore.js';

export interface SshOptions {
  /** Extra identity files tried first, like `ssh -i`. */
  identityFiles?: string[];
  /** Like `ssh -F`. */
  configFile?: string;
  /** Trust an unknown host key and record it (never a changed one). */
  acceptNewHostKey?: boolean;
  /** Give up on a host that does not complete the handshake in time (default 20 s). */
  connectTimeoutSec?: number;
  /**
   * Told one line for every host key recorded under --accept-new-host-key (or StrictHostKeyChecking
   * accept-new): the target's and each ProxyJump hop's. Default: written to stderr.
   */
  onHostKeyAdded?: (line: string) => void;
}

/**
 * Most hosts one connection may go through (jump hosts, their own jump hosts, and the target). OpenSSH
 * has no such cap (a loop there starts ssh processes until something gives out); JGit stops at 10 hops.
 */
export const MAX_JUMP_HOPS = 10;

// OpenSSH's default MaxSessions is 10 channels per connection; stay under it.
const MAX_CHANNELS = 8;
// Channel opens refused while sshd catches up with closed sessions: retried after 20, 40, ... 640 ms.
const OPEN_RETRIES = 6;
const ALL_HOST_KEY_ALGOS = [
  'ssh-ed25519',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'rsa-sha2-512',
  'rsa-sha2-256',
  'ssh-rsa',
];

export class SshHost extends BaseHost {
  private readonly slots = new Semaphore(MAX_CHANNELS);
  private closed = false;

  private constructor(
    readonly name: string,
    readonly user: string,
    private readonly client: ssh2.Client,
    private readonly jumps: ssh2.Client[],
  ) {
    super();
    client.on('close', () => (this.closed = true));
  }

  /** Resolve ssh_config for `alias` and connect (through any ProxyJump chain). */
  static async connect(
    name: string,
    alias: string,
    overrides: { user?: string; port?: number },
    options: SshOptions = {},
  ): Promise<SshHost> {
    const settings = await resolveSshConfig(alias, { ...overrides, ...(options.configFile && { configFile: options.configFile }) });
    // The whole chain is resolved (ssh -G per hop) and checked for loops before anything connects.
    const route = await planRoute(name, name, settings, options, []);
    const jumps: ssh2.Client[] = [];
    try {
      const client = await openClient(route, options, jumps);
      return new SshHost(name, settings.user, client, jumps);
    } catch (err) {
      for (const j of jumps) j.end();
      throw err;
    }
  }

  protected async spawn(command: string, options: SpawnOptions): Promise<RunResult> {
    await this.slots.acquire();
    // The slot is held until the channel is closed, which for a timed-out command can be after its
    // result was returned.
    let released = false;
    const release = (): void => {
      if (!released) {
        released = true;
        this.slots.release();
      }
    };
    let result: Promise<RunResult> | undefined;
    try {
      await this.openChannel(command, (stream) => {
        result = this.runChannel(stream, options, release);
      });
    } catch (err) {
      release();
      throw err;
    }
    return result!;
  }

  /**
   * Open an exec channel and hand it to onOpen at once (ssh2 can deliver the command's exit in the
   * same read as the open confirmation: listeners attached a tick later would miss it). Retries
   * while sshd still counts sessions we have already seen close.
   */
  private async openChannel(command: string, onOpen: (stream: ClientChannel) => void): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      if (this.closed) throw new HostError(this.name, 'disconnected', 'the SSH connection was closed');
      try {
        await new Promise<void>((resolve, reject) =>
          this.client.exec(command, (err, stream) => {
            if (err) return reject(err);
            onOpen(stream);
            resolve();
          }),
        );
        return;
      } catch (err) {
        const e = err as Error & { reason?: number };
        // sshd frees a session only once it has reaped the command and processed our CLOSE, which
        // lags behind the close we see: a new channel can briefly find MaxSessions taken ("open failed").
        if (e.reason === undefined || attempt >= OPEN_RETRIES || this.closed) {
          throw new HostError(this.name, 'disconnected', `cannot open a channel: ${e.message}`, { cause: e });
        }
        await new Promise((r) => setTimeout(r, 20 * 2 ** attempt));
      }
    }
  }

  private runChannel(stream: ClientChannel, options: SpawnOptions, release: () => void): Promise<RunResult> {
    return new Promise((resolve, reject) => {
      const out: Buffer[] = [];
      const errOut: Buffer[] = [];
      let code: number | null = null;
      let exited = false;
      let timedOut = false;
      let settled = false;
      const result = (): RunResult => ({
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(errOut).toString('utf8'),
        code: timedOut ? null : code,
        timedOut,
      });
      // A backstop only: BaseHost.run bounds the command on the host with timeout(1), which also
      // reaches root processes under sudo (sshd's "signal" request cannot). Past this, give up on it.
      const timer = setTimeout(() => {
        timedOut = true;
        settled = true;
        resolve(result());
        stream.close();
      }, options.timeoutMs);
      stream.on('data', (b: Buffer) => out.push(b));
      stream.stderr.on('data', (b: Buffer) => errOut.push(b));
      stream.on('exit', (c: number | null) => {
        exited = true;
        code = typeof c === 'number' ? c : null;
      });
      stream.on('close', () => {
        clearTimeout(timer);
        release();
        if (settled) return;
        settled = true;
        if (!exited && this.closed) {
          return reject(new HostError(this.name, 'disconnected', `the SSH connection dropped while running a command`));
        }
        resolve(result());
      });
      stream.end(options.stdin ?? '');
    });
  }

  async close(): Promise<void> {
    const ended = new Promise<void>((resolve) => {
      if (this.closed) return resolve();
      this.client.once('close', () => resolve());
      setTimeout(resolve, 2000).unref();
    });
    this.client.end();
    await ended;
    for (const j of this.jumps.reverse()) j.end();
  }
}

/** One host on the way to the target: its settings and the jump hosts it is reached through. */
interface Route {
  /** The name errors carry: the target's, or "target (jump host hop)". */
  name: string;
  settings: SshSettings;
  /** In order; only the first may have jump hosts of its own (later ones go through the previous hop). */
  via: Route[];
}

/** A hop's identity for loop detection: the alias as ssh matches it (lowercase), with its user and port. */
function hopKey(s: SshSettings): string {
  return `${s.user}@${s.alias.toLowerCase()}:${s.port}`;
}

/**
 * Resolve the ProxyJump chain of `settings` (ssh -G per hop), refusing a loop (a host reached through
 * itself) or a repeated hop, and a chain longer than MAX_JUMP_HOPS, before any connection is opened.
 * `seen` collects every hop of this connection, in the order they were resolved; errors name `target`.
 */
async function planRoute(target: string, name: string, settings: SshSettings, options: SshOptions, seen: SshSettings[]): Promise<Route> {
  const at = seen.findIndex((h) => hopKey(h) === hopKey(settings));
  if (at >= 0) {
    const loop = [...seen.slice(at), settings].map((h) => h.alias).join(' -> ');
    throw new UsageError(
      `${printable(target)}: ProxyJump loop: ${printable(loop)} (a host reached through itself, or a hop listed twice); fix ProxyJump in ssh_config`,
    );
  }
  if (seen.length >= MAX_JUMP_HOPS) {
    throw new UsageError(
      `${printable(target)}: ProxyJump chain longer than ${MAX_JUMP_HOPS} hosts (${printable([...seen, settings].map((h) => h.alias).join(' -> '))}); shorten ProxyJump in ssh_config`,
    );
  }
  seen.push(settings);
  const via: Route[] = [];
  if (settings.proxyJump) {
    for (const hop of settings.proxyJump.split(',')) {
      const { alias, user, port } = splitJumpSpec(hop);
      const hopSettings = await resolveSshConfig(alias, { ...(user && { user }), ...(port && { port }), ...(options.configFile && { configFile: options.configFile }) });
      const hopName = `${name} (jump host ${hop})`;
      // Only the first hop may itself need a jump (its own ssh_config); later hops go through the previous one.
      via.push(via.length === 0 ? await planRoute(target, hopName, hopSettings, options, seen) : await planRoute(target, hopName, { ...hopSettings, proxyJump: null }, options, seen));
    }
  }
  return { name, settings, via };
}

/** Connect one hop: first through its own ProxyJump chain, if any, then verify and authenticate. */
async function openClient(route: Route, options: SshOptions, jumps: ssh2.Client[]): Promise<ssh2.Client> {
  let sock: Duplex | undefined;
  let via: ssh2.Client | undefined;
  for (const hop of route.via) {
    const hopClient = via ? await handshake(hop.name, hop.settings, options, await forward(route.name, via, hop.settings)) : await openClient(hop, options, jumps);
    jumps.push(hopClient);
    via = hopClient;
  }
  if (via) sock = await forward(route.name, via, route.settings);
  return handshake(route.name, route.settings, options, sock);
}

function splitJumpSpec(spec: string): { alias: string; user?: string; port?: number } {
  const m = /^(?:([^@]+)@)?(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(spec.replace(/^ssh:\/\//, ''));
  if (!m) return { alias: spec };
  return { alias: m[2]!.replace(/^\[|\]$/g, ''), ...(m[1] && { user: m[1] }), ...(m[3] && { port: Number(m[3]) }) };
}

function forward(name: string, via: ssh2.Client, to: SshSettings): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    via.forwardOut('127.0.0.1', 0, to.hostname, to.port, (err, stream) => {
      if (err) reject(new HostError(name, 'proxy', `the jump host could not reach ${to.hostname} port ${to.port}: ${err.message}`));
      else resolve(stream);
    });
  });
}

/** TCP (or a forwarded stream), host key verification, authentication. */
async function handshake(name: string, s: SshSettings, options: SshOptions, sock?: Duplex): Promise<ssh2.Client> {
  // OpenSSH records a HostKeyAlias as it is, without [ ]:port.
  const keyName = s.hostKeyAlias ?? knownHostsName(s.hostname, s.port);
  const known = await loadKnownHosts([...s.userKnownHostsFiles, ...s.globalKnownHostsFiles]);
  const acceptNew = options.acceptNewHostKey === true || s.strictHostKeyChecking === 'accept-new';
  const { handler, tried } = await authHandlerFor(s, options.identityFiles ?? []);
  const timeoutSec = options.connectTimeoutSec ?? s.connectTimeoutSec ?? 20;
  let refusal: HostError | undefined;

  const client = new ssh2.Client();
  const config: ConnectConfig = {
    host: s.hostname,
    port: s.port,
    username: s.user,
    readyTimeout: timeoutSec * 1000,
    keepaliveInterval: 15_000,
    algorithms: { serverHostKey: preferKnownTypes(knownKeyTypes(known, keyName)) as never },
    authHandler: handler,
    hostVerifier: ((key: Buffer, verify: (ok: boolean) => void) => {
      judgeHostKey(name, keyName, key, known, acceptNew, s, options).then(
        () => verify(true),
        (err: HostError) => {
          refusal = err;
          verify(false);
        },
      );
    }),
    ...(sock && { sock }),
  };
  return new Promise((resolve, reject) => {
    client.once('ready', () => {
      client.removeAllListeners('error');
      client.on('error', () => {}); // later errors surface as a closed connection on the next command
      resolve(client);
    });
    let failed = false;
    // `on`, not `once`: ssh2 can emit a second error (e.g. "Connection lost before handshake" after a
    // timeout), and an 'error' without a listener would crash the process.
    client.on('error', (err: Error & { level?: string; code?: string }) => {
      if (failed) return;
      failed = true;
      client.end();
      reject(refusal ?? connectError(name, s, err, tried(), timeoutSec));
    });
    client.connect(config);
  });
}

async function judgeHostKey(
  name: string,
  keyName: string,
  key: Buffer,
  known: KnownHostEntry[],
  acceptNew: boolean,
  s: SshSettings,
  options: SshOptions,
): Promise<void> {
  const added = options.onHostKeyAdded ?? ((line: string) => void process.stderr.write(`${line}\n`));
  const verdict = verifyHostKey(known, keyName, key);
  const fp = `${keyTypeOf(key)} key ${fingerprint(key)}`;
  switch (verdict.status) {
    case 'known':
      return;
    case 'revoked':
      throw new HostError(name, 'host-key-revoked', `host key ${fp} is marked @revoked in ${verdict.entry.file}:${verdict.entry.line}; refusing to connect`);
    case 'changed': {
      const old = verdict.entries[0]!;
      throw new HostError(
        name,
        'host-key-changed',
        `HOST KEY CHANGED: the host presents ${fp}, but ${old.file}:${old.line} records another ${old.keyType} key ` +
          `(a reinstalled host, or someone in the middle). If the change is expected: ssh-keygen -R '${keyName}' -f ${old.file}`,
      );
    }
    case 'unknown':
      if (!acceptNew) {
        throw new HostError(
          name,
          'host-key-unknown',
          `host key not in known_hosts: ${fp}. If that is the host's key, run again with --accept-new-host-key to trust it`,
        );
      }
      await addKnownHost(s.userKnownHostsFiles[0]!, keyName, key, s.hashKnownHosts);
      // As OpenSSH's "Permanently added ... to the list of known hosts": every hop trusted is named.
      added(
        `prep-node: ${printable(name)}: permanently added '${printable(keyName)}' (${fp}) to ${printable(s.userKnownHostsFiles[0]!)} ` +
          `(${options.acceptNewHostKey === true ? '--accept-new-host-key' : 'StrictHostKeyChecking accept-new in ssh_config'})`,
      );
  }
}

/** Host key algorithms, those already in known_hosts for this host first (as OpenSSH orders them). */
function preferKnownTypes(types: string[]): string[] {
  const wanted = types.flatMap((t) => (t === 'ssh-rsa' ? ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'] : [t]));
  return [...wanted.filter((a) => ALL_HOST_KEY_ALGOS.includes(a)), ...ALL_HOST_KEY_ALGOS.filter((a) => !wanted.includes(a))];
}

/** One readable line for a failed connection. */
function connectError(
  name: string,
  s: SshSettings,
  err: Error & { level?: string; code?: string },
  tried: string[],
  timeoutSec: number,
): HostError {
  const where = `${s.hostname} port ${s.port}`;
  const fail = (kind: HostErrorKind, text: string) => new HostError(name, kind, text, { cause: err });
  switch (err.code) {
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EAI_NONAME':
      return fail('dns', `cannot resolve host name "${s.hostname}" (check the name, or add a Host entry to ~/.ssh/config)`);
    case 'ECONNREFUSED':
      return fail('refused', `connection refused by ${where} (is sshd running there, and is the port right?)`);
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return fail('unreachable', `no route to ${where}`);
    case 'ETIMEDOUT':
      return fail('timeout', `no answer from ${where} within ${timeoutSec} s (host down, firewall, or wrong address)`);
    case 'ECONNRESET':
      return fail('disconnected', `${where} closed the connection during the handshake`);
  }
  if (err.level === 'client-timeout') return fail('timeout', `no SSH handshake with ${where} within ${timeoutSec} s`);
  if (err.level === 'client-authentication') {
    const what = tried.length > 0 ? `tried ${tried.join(', ')}` : 'no ssh-agent and no usable key file';
    return fail(
      'auth',
      `authentication failed for user ${s.user} (${what}); pass -i KEY, load the key into ssh-agent, or set User/IdentityFile in ~/.ssh/config`,
    );
  }
  return fail('disconnected', `SSH to ${where} failed: ${err.message}`);
}
