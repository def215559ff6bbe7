// LocalHost: prep-node running on the node itself. Commands run under `sh -c` with child_process.
import { spawn } from 'node:child_process';
import { userInfo } from 'node:os';
import type { RunResult } from './host.js';
import { BaseHost, type SpawnOptions } from './base.js';

export class LocalHost extends BaseHost {
  readonly user = process.getuid?.() === 0 ? 'root' : userInfo().username;

  constructor(readonly name = 'local') {
    super();
  }

  protected spawn(command: string, options: SpawnOptions): Promise<RunResult> {
    return new Promise((resolve, reject) => {
      // detached: the command gets its own process group, so a timeout kills its children too.
      const child = spawn('sh', ['-c', command], { stdio: 'pipe', detached: true });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        try {
          process.kill(-(child.pid ?? 0), 'SIGKILL');
        } catch {
          child.kill('SIGKILL');
        }
      }, options.timeoutMs);
      child.stdout.on('data', (b: Buffer) => out.push(b));
      child.stderr.on('data', (b: Buffer) => err.push(b));
      child.on('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
      child.on('close', (code) => {
        clearTimeout(timer);
        resolve({
          stdout: Buffer.concat(out).toString('utf8'),
          stderr: Buffer.concat(err).toString('utf8'),
          code: timedOut ? null : code,
          timedOut,
        });
      });
      child.stdin.on('error', () => {}); // the command may exit without reading stdin
      child.stdin.end(options.stdin ?? '');
    });
  }

  async close(): Promise<void> {}
}
