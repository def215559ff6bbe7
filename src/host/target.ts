// Target strings as ssh takes them: `[user@]host[:port]`, `[user@][v6addr]:port`, an ssh_config
// alias, or `local` for the machine prep-node runs on.
import { UsageError } from '../errors.js';

export interface Target {
  /** What the user typed; every message names the host by it. */
  spec: string;
  local: boolean;
  host: string;
  user?: string;
  port?: number;
  /** SSH private key for this host (an inventory's ansible_ssh_private_key_file), tried before -i. */
  identityFile?: string;
}

const HOST_CHARS = /^[A-Za-z0-9._%-]+$/;

/** Parse one target string; throws a UsageError saying what form is expected. */
export function parseTarget(spec: string): Target {
  const s = spec.trim();
  if (s === 'local') return { spec: s, local: true, host: 'local' };
  const bad = (why: string) =>
    new UsageError(`bad target "${spec}": ${why} (expected [user@]host[:port], [user@][ipv6]:port, an ssh_config alias or "local")`);
  if (s === '') throw bad('empty');
  const at = s.lastIndexOf('@');
  const user = at >= 0 ? s.slice(0, at) : undefined;
  let rest = at >= 0 ? s.slice(at + 1) : s;
  if (user !== undefined && !/^[A-Za-z0-9._][A-Za-z0-9._-]*$/.test(user)) throw bad(`invalid user name "${user}"`);
  let port: number | undefined;
  let host: string;
  if (rest.startsWith('[')) {
    const close = rest.indexOf(']');
    if (close < 0) throw bad('unclosed [');
    host = rest.slice(1, close);
    rest = rest.slice(close + 1);
    if (rest !== '') {
      if (!rest.startsWith(':')) throw bad('text after ]');
      port = parsePort(rest.slice(1), bad);
    }
  } else if ((rest.match(/:/g) ?? []).length > 1) {
    host = rest; // a bare IPv6 address: no port possible without brackets
  } else {
    const colon = rest.indexOf(':');
    host = colon >= 0 ? rest.slice(0, colon) : rest;
    if (colon >= 0) port = parsePort(rest.slice(colon + 1), bad);
  }
  if (host === '' || (!HOST_CHARS.test(host) && !/^[0-9a-fA-F:.]+(%[\w.-]+)?$/.test(host))) throw bad(`invalid host "${host}"`);
  return { spec: s, local: false, host, ...(user !== undefined && { user }), ...(port !== undefined && { port }) };
}

/** Parse a TCP port number, or throw what `bad` builds. */
export function parsePort(text: string, bad: (why: string) => Error = (why) => new UsageError(why)): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < 1 || n > 65535) throw bad(`port "${text}" is not a number from 1 to 65535`);
  return n;
}
