// Authentication the way OpenSSH does it without a terminal: ssh-agent first (unless
// IdentitiesOnly), then each identity file in order (-i files first). Encrypted key files cannot be
// unlocked without a prompt; they are skipped and named, so the user knows to load them into the agent.
import ssh2 from 'ssh2';
import type { AuthHandlerMiddleware, AuthenticationType } from 'ssh2';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import type { SshSettings } from './ssh-config.js';

type NextAuth = Parameters<Parameters<AuthHandlerMiddleware>[2]>[0];

/** The auth handler for ssh2, and what it tried (for the error message). */
export async function authHandlerFor(
  s: SshSettings,
  extraIdentities: string[],
): Promise<{ handler: AuthHandlerMiddleware; tried: () => string[] }> {
  const methods: { label: string; auth: NextAuth }[] = [];
  if (s.identityAgent && !s.identitiesOnly && existsSync(s.identityAgent)) {
    methods.push({ label: 'ssh-agent', auth: { type: 'agent', username: s.user, agent: s.identityAgent } });
  }
  const skipped: string[] = [];
  for (const file of [...new Set([...extraIdentities, ...s.identityFiles])]) {
    let key: Buffer;
    try {
      key = await readFile(file);
    } catch {
      if (extraIdentities.includes(file)) skipped.push(`${tilde(file)} (cannot read it)`);
      continue;
    }
    const parsed = ssh2.utils.parseKey(key);
    if (parsed instanceof Error) {
      skipped.push(`${tilde(file)} (${/encrypt|passphrase/i.test(parsed.message) ? 'encrypted: load it into ssh-agent' : 'not a private key'})`);
      continue;
    }
    methods.push({ label: tilde(file), auth: { type: 'publickey', username: s.user, key } });
  }
  const tried: string[] = [];
  let next = 0;
  const handler: AuthHandlerMiddleware = (_left: AuthenticationType[] | null, _partial: boolean | null, callback) => {
    const m = methods[next++];
    if (!m) return callback(false as unknown as NextAuth);
    tried.push(m.label);
    callback(m.auth);
  };
  return { handler, tried: () => [...tried, ...skipped] };
}

function tilde(path: string): string {
  const home = homedir();
  return path.startsWith(home + '/') ? '~' + path.slice(home.length) : path;
}
