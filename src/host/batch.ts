// Round trips: commands started in the same turn of the event loop (checks and planners run side by
// side, each calling host.run) travel to the node as ONE script over one session channel, and come
// back as one output split per command. Each command still runs exactly as BaseHost runs it (its own
// timeout(1), its own `sudo -n`, its own stdin), one after another on the node, so a check or tuner
// sees the same stdout, stderr and exit code as when it ran alone: only the transport changes.
import { BaseHost, type SpawnOptions } from './base.js';
import type { Host, RunResult } from './host.js';

interface Pending {
  command: string;
  options: SpawnOptions;
  resolve: (r: RunResult) => void;
  reject: (e: unknown) => void;
}

// Each command's stdout and stderr travel base64-encoded between marker lines, so no output (binary,
// a line that looks like a marker, no trailing newline) can be confused with the framing.
const MARK = '@@@prep-node-batch';

/** The script that runs `commands` (each already wrapped by BaseHost) one after another on the node. */
export function batchScript(commands: { command: string; stdin?: string | Buffer }[]): string {
  const lines = [
    // Without base64 the batch cannot frame output: say so, and the caller runs the commands one by one.
    `command -v base64 >/dev/null 2>&1 || { echo '${MARK} no-base64'; exit 0; }`,
    `d=$(mktemp -d) || exit 1`,
    `trap 'rm -rf -- "$d"' EXIT`,
  ];
  commands.forEach((c, i) => {
    const input = c.stdin === undefined ? '</dev/null' : `<"$d/i"`;
    if (c.stdin !== undefined) {
      const b64 = Buffer.from(c.stdin).toString('base64');
      lines.push(`printf '%s' '${b64}' | base64 -d >"$d/i"`);
    }
    lines.push(
      `( ${c.command}\n) ${input} >"$d/o" 2>"$d/e"; c=$?`,
      `echo "${MARK} ${i} out"; base64 <"$d/o"; echo "${MARK} ${i} err"; base64 <"$d/e"; echo "${MARK} ${i} rc $c"`,
    );
  });
  lines.push(`echo '${MARK} end'`);
  return lines.join('\n') + '\n';
}

/** Split batchScript's output: per command index, its result; missing entries did not finish. */
export function parseBatch(output: string): { results: Map<number, RunResult>; noBase64: boolean } {
  const results = new Map<number, RunResult>();
  let noBase64 = false;
  type Part = { i: number; part: 'out' | 'err'; out: string[]; err: string[] };
  let cur = null as Part | null;
  for (const line of output.split('\n')) {
    if (!line.startsWith(MARK)) {
      if (cur) cur[cur.part].push(line);
      continue;
    }
    const f = line.slice(MARK.length + 1).split(' ');
    if (f[0] === 'no-base64') noBase64 = true;
    if (f[0] === 'end' || f[0] === 'no-base64') continue;
    const i = Number(f[0]);
    if (f[1] === 'out') cur = { i, part: 'out', out: [], err: [] };
    else if (f[1] === 'err' && cur?.i === i) cur.part = 'err';
    else if (f[1] === 'rc' && cur?.i === i) {
      const code = Number(f[2]);
      results.set(i, {
        stdout: Buffer.from(cur.out.join(''), 'base64').toString('utf8'),
        stderr: Buffer.from(cur.err.join(''), 'base64').toString('utf8'),
        code: Number.isInteger(code) ? code : null,
        timedOut: false,
      });
      cur = null;
    }
  }
  return { results, noBase64 };
}

/**
 * A Host that folds the commands started together into one round trip on `inner`. `roundTrips`
 * counts the commands it sent to `inner` (each one session channel over SSH).
 */
export class BatchingHost extends BaseHost {
  readonly name: string;
  readonly user: string;
  roundTrips = 0;
  private queue: Pending[] = [];
  private scheduled = false;

  constructor(private readonly inner: Host) {
    super();
    this.name = inner.name;
    this.user = inner.user;
  }

  protected spawn(command: string, options: SpawnOptions): Promise<RunResult> {
    return new Promise((resolve, reject) => {
      this.queue.push({ command, options, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        // setImmediate runs after every pending promise reaction: callers that start their commands
        // after awaiting an already-settled memo still join this batch.
        setImmediate(() => void this.flush());
      }
    });
  }

  /** Run a wrapped command line on inner as is (inner wraps it in its own timeout, no sudo: it carries its own). */
  private direct(p: Pending): Promise<RunResult> {
    this.roundTrips++;
    return this.inner.run(p.command, { timeoutMs: p.options.timeoutMs, ...(p.options.stdin !== undefined && { stdin: p.options.stdin }) });
  }

  private async flush(): Promise<void> {
    const batch = this.queue;
    this.queue = [];
    this.scheduled = false;
    try {
      if (batch.length === 1) {
        batch[0]!.resolve(await this.direct(batch[0]!));
        return;
      }
      this.roundTrips++;
      const total = batch.reduce((t, p) => t + p.options.timeoutMs, 0);
      const r = await this.inner.run('sh -s', { stdin: batchScript(batch.map((p) => ({ command: p.command, ...(p.options.stdin !== undefined && { stdin: p.options.stdin }) }))), timeoutMs: total });
      const { results, noBase64 } = parseBatch(r.stdout);
      if (noBase64) {
        for (const p of batch) p.resolve(await this.direct(p));
        return;
      }
      batch.forEach((p, i) => {
        const one = results.get(i);
        if (one) p.resolve(one);
        else
          p.resolve({
            stdout: '',
            stderr: `the batched script stopped before this command finished (${r.timedOut ? 'timed out' : `exit ${r.code}`}): ${r.stderr.trim().split('\n').pop() ?? ''}`,
            code: null,
            timedOut: r.timedOut,
          });
      });
    } catch (err) {
      for (const p of batch) p.reject(err);
    }
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
