// known_hosts as OpenSSH reads and writes it: plain and hashed host patterns, [host]:port for a
// non-default port, wildcards and negation, @revoked. (@cert-authority lines need certificates,
// which we do not verify: they are skipped.) Format: sshd(8) "SSH_KNOWN_HOSTS FILE FORMAT".
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { appendFile, mkdir, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';

export interface KnownHostEntry {
  file: string;
  line: number;
  marker: '' | '@revoked' | '@cert-authority';
  patterns: string;
  keyType: string;
  /** base64 of the key blob */
  key: string;
}

/** The name a host is looked up under: `host`, or `[host]:port` off port 22. */
export function knownHostsName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

/** SHA256 fingerprint of a key blob, as `ssh-keygen -l` prints it. */
export function fingerprint(keyBlob: Buffer): string {
  return 'SHA256:' + createHash('sha256').update(keyBlob).digest('base64').replace(/=+$/, '');
}

/** The key type named inside an SSH wire-format key blob (its first string). */
export function keyTypeOf(keyBlob: Buffer): string {
  if (keyBlob.length < 4) return 'unknown';
  const n = keyBlob.readUInt32BE(0);
  return keyBlob.subarray(4, 4 + n).toString('latin1');
}

/** Parse known_hosts text; malformed lines are skipped, as ssh does. */
export function parseKnownHosts(text: string, file: string): KnownHostEntry[] {
  const entries: KnownHostEntry[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const fields = line.split(/\s+/);
    let marker: KnownHostEntry['marker'] = '';
    if (fields[0] === '@revoked' || fields[0] === '@cert-authority') marker = fields.shift() as KnownHostEntry['marker'];
    const [patterns, keyType, key] = fields;
    if (!patterns || !keyType || !key) return;
    entries.push({ file, line: i + 1, marker, patterns, keyType, key });
  });
  return entries;
}

/** Does a host pattern list (comma-separated; `!` negates; `*` `?` wildcards; `|1|` hashed) match name? */
export function patternsMatch(patterns: string, name: string): boolean {
  if (patterns.startsWith('|1|')) return hashedMatch(patterns, name);
  let matched = false;
  for (const p of patterns.split(',')) {
    const negated = p.startsWith('!');
    const pat = negated ? p.slice(1) : p;
    if (globMatch(pat.toLowerCase(), name.toLowerCase())) {
      if (negated) return false;
      matched = true;
    }
  }
  return matched;
}

function hashedMatch(entry: string, name: string): boolean {
  const [, , salt, hash] = entry.split('|');
  if (!salt || !hash) return false;
  return createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest('base64') === hash;
}

/**
 * `*` (any run) and `?` (one character) against the whole name. Greedy with one backtrack point,
 * the last `*`: O(pattern × name) at worst, where a regular expression of `.*` runs is exponential
 * (`*a*a*a…b` against a 40-character name took 22 s).
 */
export function globMatch(pattern: string, s: string): boolean {
  let p = 0;
  let i = 0;
  let star = -1;
  let mark = 0;
  while (i < s.length) {
    if (p < pattern.length && (pattern[p] === '?' || pattern[p] === s[i])) {
      p++;
      i++;
    } else if (p < pattern.length && pattern[p] === '*') {
      star = p++;
      mark = i;
    } else if (star >= 0) {
      p = star + 1;
      i = ++mark;
    } else {
      return false;
    }
  }
  while (pattern[p] === '*') p++;
  return p === pattern.length;
}

/** What known_hosts says about the key a host presented. */
export type HostKeyVerdict =
  | { status: 'known'; entry: KnownHostEntry }
  | { status: 'revoked'; entry: KnownHostEntry }
  | { status: 'changed'; entries: KnownHostEntry[] }
  | { status: 'unknown' };

/** Judge a presented key against every entry for the name. */
export function verifyHostKey(entries: KnownHostEntry[], name: string, keyBlob: Buffer): HostKeyVerdict {
  const presented = keyBlob.toString('base64');
  const revoked = entries.find((e) => e.marker === '@revoked' && e.key === presented);
  if (revoked) return { status: 'revoked', entry: revoked };
  const forHost = entries.filter((e) => e.marker === '' && patternsMatch(e.patterns, name));
  const same = forHost.find((e) => e.key === presented);
  if (same) return { status: 'known', entry: same };
  // OpenSSH refuses a host whose known key of the same type differs; a key of a type it has no
  // record for is "unknown" to OpenSSH too, but we prefer known types when negotiating (see ssh.ts),
  // so a host that has a recorded key and presents another is a change.
  if (forHost.length > 0) return { status: 'changed', entries: forHost };
  return { status: 'unknown' };
}

/** Read and parse every known_hosts file that exists. */
export async function loadKnownHosts(files: string[]): Promise<KnownHostEntry[]> {
  const all: KnownHostEntry[] = [];
  for (const file of files) {
    try {
      // no spread: a known_hosts file may have 200k lines
      for (const e of parseKnownHosts(await readFile(file, 'utf8'), file)) all.push(e);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  return all;
}

/** The key types recorded for a name, for host key algorithm preference. */
export function knownKeyTypes(entries: KnownHostEntry[], name: string): string[] {
  return [...new Set(entries.filter((e) => e.marker === '' && patternsMatch(e.patterns, name)).map((e) => e.keyType))];
}

/** Append a line for the key, hashed when HashKnownHosts says so; creates ~/.ssh as ssh would. */
export async function addKnownHost(file: string, name: string, keyBlob: Buffer, hash: boolean): Promise<void> {
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  const host = hash ? hashName(name) : name;
  // A file whose last line has no newline gets one first, as OpenSSH does.
  const existing = await readFile(file).catch(() => Buffer.alloc(0));
  const sep = existing.length > 0 && existing[existing.length - 1] !== 0x0a ? '\n' : '';
  await appendFile(file, `${sep}${host} ${keyTypeOf(keyBlob)} ${keyBlob.toString('base64')}\n`, { mode: 0o600 });
}

function hashName(name: string): string {
  const salt = randomBytes(20);
  return `|1|${salt.toString('base64')}|${createHmac('sha1', salt).update(name).digest('base64')}`;
}
