// ssh_config, resolved exactly as OpenSSH resolves it: we ask `ssh -G`, which applies Host and Match
// blocks, Include, tokens and defaults, and prints the result. No second parser to drift from ssh's.
import { execFile } from 'node:child_process';
import { homedir, userInfo } from 'node:os';
import { promisify } from 'node:util';
import { UsageError } from '../errors.js';

const execFileP = promisify(execFile);

/** The settings prep-node honours, after ssh_config. */
export interface SshSettings {
  /** The name the user gave (alias or host). */
  alias: string;
  hostname: string;
  user: string;
  port: number;
  identityFiles: string[];
  identitiesOnly: boolean;
  /** `none` or unset is null; otherwise a comma-separated chain, as in ssh_config. */
  proxyJump: string | null;
  userKnownHostsFiles: string[];
  globalKnownHostsFiles: string[];
  strictHostKeyChecking: 'yes' | 'no' | 'ask' | 'accept-new' | 'off';
  hashKnownHosts: boolean;
  hostKeyAlias: string | null;
  /** Path of the agent socket, or null for none. */
  identityAgent: string | null;
  connectTimeoutSec: number | null;
}

export interface ResolveOptions {
  user?: string;
  port?: number;
  /** Like `ssh -F FILE`. */
  configFile?: string;
}

/** Resolve ssh_config for a host or alias with `ssh -G`; without an OpenSSH client, use its defaults. */
export async function resolveSshConfig(alias: string, options: ResolveOptions = {}): Promise<SshSettings> {
  const args = ['-G'];
  if (options.configFile) args.push('-F', options.configFile);
  if (options.user) args.push('-l', options.user);
  if (options.port) args.push('-p', String(options.port));
  args.push('--', alias);
  let stdout: string;
  try {
    ({ stdout } = await execFileP('ssh', args, { timeout: 10_000 }));
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === 'ENOENT') {
      if (options.configFile) throw new UsageError(`--ssh-config needs the OpenSSH client to read it: apt-get install openssh-client`);
      return defaultSettings(alias, options);
    }
    const why = (e.stderr ?? '').trim().split('\n')[0] || e.message;
    throw new UsageError(`ssh_config for "${alias}": ${why}`, { cause: err });
  }
  return parseSshG(alias, stdout);
}

/** Turn `ssh -G` output (lowercase keyword, space, value; repeated keywords accumulate) into settings. */
export function parseSshG(alias: string, text: string): SshSettings {
  const all = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const m = /^(\S+)\s+(.*)$/.exec(line.trim());
    if (!m) continue;
    const key = m[1]!.toLowerCase();
    all.set(key, [...(all.get(key) ?? []), m[2]!]);
  }
  const one = (k: string): string | undefined => all.get(k)?.[0];
  const none = (v: string | undefined): v is undefined => v === undefined || v === 'none' || v === '';
  const proxyJump = one('proxyjump');
  const hostKeyAlias = one('hostkeyalias');
  const timeout = one('connecttimeout');
  const strict = (one('stricthostkeychecking') ?? 'ask').toLowerCase();
  const agent = one('identityagent');
  return {
    alias,
    hostname: one('hostname') ?? alias,
    user: one('user') ?? userInfo().username,
    port: Number(one('port') ?? 22),
    identityFiles: (all.get('identityfile') ?? []).map(expandHome),
    identitiesOnly: one('identitiesonly') === 'yes',
    proxyJump: none(proxyJump) ? null : proxyJump,
    userKnownHostsFiles: splitList(one('userknownhostsfile') ?? '~/.ssh/known_hosts ~/.ssh/known_hosts2'),
    globalKnownHostsFiles: splitList(one('globalknownhostsfile') ?? '/etc/ssh/ssh_known_hosts /etc/ssh/ssh_known_hosts2'),
    strictHostKeyChecking: (['yes', 'no', 'ask', 'accept-new', 'off'].includes(strict) ? strict : 'ask') as SshSettings['strictHostKeyChecking'],
    hashKnownHosts: one('hashknownhosts') === 'yes',
    hostKeyAlias: none(hostKeyAlias) ? null : hostKeyAlias,
    identityAgent: agentPath(agent),
    connectTimeoutSec: none(timeout) ? null : Number(timeout),
  };
}

function defaultSettings(alias: string, options: ResolveOptions): SshSettings {
  return parseSshG(
    alias,
    [
      `user ${options.user ?? userInfo().username}`,
      `port ${options.port ?? 22}`,
      ...['id_rsa', 'id_ecdsa', 'id_ed25519'].map((k) => `identityfile ~/.ssh/${k}`),
    ].join('\n'),
  );
}

function agentPath(value: string | undefined): string | null {
  if (value === 'none') return null;
  if (value === undefined || value === 'SSH_AUTH_SOCK') return process.env.SSH_AUTH_SOCK ?? null;
  if (value.startsWith('$')) return process.env[value.slice(1)] ?? null;
  return expandHome(value);
}

function splitList(value: string): string[] {
  return value.split(/\s+/).filter(Boolean).map(expandHome);
}

/** `~/x` → the home directory, as ssh does. */
export function expandHome(path: string): string {
  return path === '~' || path.startsWith('~/') ? homedir() + path.slice(1) : path;
}
