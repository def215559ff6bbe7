// The Host interface: the only way checks, tuners and the datapath talk to a node.
// LocalHost runs commands with child_process, SshHost over one ssh2 connection.

/** What running a command gave back. A non-zero exit is data, not an exception. */
export interface RunResult {
  stdout: string;
  stderr: string;
  /** Exit status; null when the command was killed by a signal or timed out. */
  code: number | null;
  timedOut: boolean;
}

export interface RunOptions {
  /** Run as root: through `sudo -n` when the login user is not root. */
  sudo?: boolean;
  /** Kill the command after this many milliseconds (default 60 s). */
  timeoutMs?: number;
  /** Bytes fed to the command's stdin (how file contents and secrets travel: never in argv). */
  stdin?: string | Buffer;
}

export interface WriteOptions {
  sudo?: boolean;
  /** File mode, octal like 0o644. */
  mode?: number;
}

/** A machine prep-node works on. */
export interface Host {
  /** The name the user gave (target string or `local`), used in every message. */
  readonly name: string;
  /** Login user name on the host. */
  readonly user: string;
  /** Run a shell command line (POSIX sh). */
  run(command: string, options?: RunOptions): Promise<RunResult>;
  /** Like run, but a non-zero exit throws a CommandError naming the command. */
  exec(command: string, options?: RunOptions): Promise<string>;
  readFile(path: string, options?: { sudo?: boolean }): Promise<string>;
  writeFile(path: string, data: string | Buffer, options?: WriteOptions): Promise<void>;
  /** Copy a local file to the host. */
  upload(localPath: string, remotePath: string, options?: WriteOptions): Promise<void>;
  close(): Promise<void>;
}

export const DEFAULT_TIMEOUT_MS = 60_000;

/** Quote a string for POSIX sh. */
export function shQuote(s: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(s)) return s;
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
