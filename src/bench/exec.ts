// Running the bench's commands: every child is tracked so an interrupted bench can kill them all
// before it tears the namespaces down, and each run is timed from spawn to exit (what a control
// plane that execs iptables-restore, nft or the loader pays too).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';

export interface ExecResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** wall time from spawn to exit */
  ms: number;
  timedOut: boolean;
}

export interface ExecOptions {
  input?: string;
  /** kill (SIGKILL) after this long; the result says timedOut */
  timeoutMs?: number;
}

const children = new Set<ChildProcess>();

/** Run a command, collect its output; a non-zero exit is data, not an exception. */
export function run(cmd: string, args: readonly string[], options: ExecOptions = {}): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const start = process.hrtime.bigint();
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    children.add(child);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    const timer = options.timeoutMs === undefined ? undefined : setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, options.timeoutMs);
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    // a command that exits before reading all of its input closes the pipe: not our error
    child.stdin.on('error', () => {});
    child.once('error', (e) => {
      children.delete(child);
      if (timer) clearTimeout(timer);
      reject(e);
    });
    child.once('close', (code, signal) => {
      const ms = Number(process.hrtime.bigint() - start) / 1e6;
      children.delete(child);
      if (timer) clearTimeout(timer);
      resolve({ code, signal, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString(), ms, timedOut });
    });
    child.stdin.end(options.input ?? '');
  });
}

/** Run a command that must succeed; its stdout. */
export async function must(cmd: string, args: readonly string[], options: ExecOptions = {}): Promise<string> {
  const r = await run(cmd, args, options);
  if (r.code !== 0) throw new Error(`${[cmd, ...args].join(' ')}: ${why(r)}`);
  return r.stdout;
}

/** One line saying why a command failed. */
export function why(r: ExecResult): string {
  if (r.timedOut) return 'timed out';
  const text = (r.stderr.trim() || r.stdout.trim()).split('\n').filter(Boolean);
  // the loader and the load generator print {"error": "..."} on stdout
  for (const line of [...text].reverse()) {
    try {
      const doc = JSON.parse(line) as { error?: unknown };
      if (typeof doc.error === 'string') return doc.error.split('\n')[0]!;
    } catch {
      /* not JSON */
    }
  }
  return text.at(-1)?.slice(0, 300) ?? (r.signal ? `killed by ${r.signal}` : `exit ${r.code}`);
}

/** Start a long-running child (the servers); tracked like the others. */
export function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** SIGKILL every child still running (interrupted bench). */
export function killAll(): void {
  for (const c of children) {
    try {
      c.kill('SIGKILL');
    } catch {
      /* gone */
    }
  }
  children.clear();
}

/** Synchronous, for cleanup from a signal handler: true when the command exited 0. */
export function runSync(cmd: string, args: readonly string[]): boolean {
  const r = spawnSync(cmd, args, { stdio: 'ignore', timeout: 30_000 });
  return r.status === 0;
}

/** Synchronous, stdout ('' on failure). */
export function outputSync(cmd: string, args: readonly string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 30_000 });
  return r.status === 0 ? r.stdout : '';
}
