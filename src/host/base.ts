// What every Host does the same way: sudo wrapping and its failure modes, and file I/O built on
// run(), so file contents travel on stdin (never in argv) and sudo applies to them too.
import { readFile } from 'node:fs/promises';
import { CommandError, HostError } from '../errors.js';
import { DEFAULT_TIMEOUT_MS, shQuote } from './host.js';
import type { Host, RunOptions, RunResult, WriteOptions } from './host.js';

/** What a transport must provide: run one command line as the login user. */
export interface SpawnOptions {
  timeoutMs: number;
  stdin?: string | Buffer;
}

// How much longer than the host's own timeout the transport waits before giving up on a command.
const BACKSTOP_MS = 5000;

/** Milliseconds → a duration timeout(1) takes (fractions are fine for coreutils and busybox). */
function seconds(ms: number): string {
  return String(Math.max(ms, 1) / 1000);
}

// sudo -n prints one of these and exits 1 when it would have to ask for a password (sudo 1.8-1.9).
const SUDO_WANTS_PASSWORD = /^sudo: (a password is required|a terminal is required|sorry, you must have a tty)/m;
const SUDO_NOT_ALLOWED = /^(sudo: )?.*(is not in the sudoers file|is not allowed to execute|may not run sudo)/m;

export abstract class BaseHost implements Host {
  abstract readonly name: string;
  abstract readonly user: string;
  protected abstract spawn(command: string, options: SpawnOptions): Promise<RunResult>;
  abstract close(): Promise<void>;

  async run(command: string, options: RunOptions = {}): Promise<RunResult> {
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    // The host enforces the timeout itself: timeout(1) signals the command's whole process group,
    // as root when under sudo (TERM, then KILL 2 s later). Closing an SSH channel kills nothing.
    const bounded = `timeout -k 2 ${seconds(timeoutMs)} sh -c ${shQuote(command)}`;
    const viaSudo = options.sudo === true && this.user !== 'root';
    const started = Date.now();
    const result = await this.spawn(viaSudo ? `sudo -n -- ${bounded}` : bounded, {
      timeoutMs: timeoutMs + BACKSTOP_MS,
      ...(options.stdin !== undefined && { stdin: options.stdin }),
    });
    if (viaSudo) this.checkSudo(result);
    // 124: timeout(1) sent TERM; 137: it had to KILL.
    if ((result.code === 124 || result.code === 137) && Date.now() - started >= timeoutMs) {
      return { ...result, code: null, timedOut: true };
    }
    return result;
  }

  async exec(command: string, options: RunOptions = {}): Promise<string> {
    const result = await this.run(command, options);
    if (result.code !== 0) throw new CommandError(this.name, command, result.code, result.stderr);
    return result.stdout;
  }

  readFile(path: string, options: { sudo?: boolean } = {}): Promise<string> {
    return this.exec(`cat -- ${shQuote(path)}`, options);
  }

  async writeFile(path: string, data: string | Buffer, options: WriteOptions = {}): Promise<void> {
    const mode = (options.mode ?? 0o644).toString(8);
    // Write beside the target, then rename: a reader never sees half a file.
    const script =
      `set -e; if [ -d ${shQuote(path)} ]; then printf '%s: is a directory\\n' ${shQuote(path)} >&2; exit 1; fi; ` +
      `t=$(mktemp "$(dirname -- ${shQuote(path)})/.prep-node.XXXXXX"); ` +
      `trap 'rm -f -- "$t"' EXIT; cat > "$t"; chmod ${mode} "$t"; mv -f -- "$t" ${shQuote(path)}; trap - EXIT`;
    await this.exec(script, { stdin: data, ...(options.sudo !== undefined && { sudo: options.sudo }) });
  }

  async upload(localPath: string, remotePath: string, options: WriteOptions = {}): Promise<void> {
    await this.writeFile(remotePath, await readFile(localPath), options);
  }

  private checkSudo(result: RunResult): void {
    if (result.code === 0) return;
    if (result.code === 127 && /sudo: (command )?not found/.test(result.stderr)) {
      throw new HostError(this.name, 'sudo-missing', `sudo is not installed; connect as root or install sudo`);
    }
    if (SUDO_WANTS_PASSWORD.test(result.stderr)) {
      throw new HostError(
        this.name,
        'sudo-password',
        `sudo asks user ${this.user} for a password; allow it without one ` +
          `(echo '${this.user} ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/${this.user}) or connect as root`,
      );
    }
    if (SUDO_NOT_ALLOWED.test(result.stderr)) {
      throw new HostError(this.name, 'sudo-password', `user ${this.user} may not use sudo; connect as root or add it to sudoers`);
    }
  }
}
