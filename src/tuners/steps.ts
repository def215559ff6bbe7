// Apply's writes as ONE script (one round trip): the journal, then each tuner's files, reload and
// running values, run in order as root. The script stops at the first step that fails and says which
// one, so nothing after a failed step runs (the journal, always the first step, already holds every
// original: `prep-node rollback` undoes what ran). Each step is its own `sh -e` script, carried with
// its stdin as base64 in here-documents (no argument-length limit, no quoting of file contents).
import { ApplyError } from '../errors.js';
import type { Host } from '../host/host.js';

export interface Step {
  /** For people: `journal`, `sysctl: files`, `sysctl: running values`. */
  label: string;
  /** A POSIX sh script; runs under `sh -e`, its stdout discarded, its stderr kept. */
  script: string;
  stdin?: string | Buffer;
}

const MARK = '@@prep-node-step';
const EOF = 'PREP_NODE_STEP_EOF';

/** Decode `data` into `file` on the node; `orElse` runs when that fails. */
function heredoc(data: string | Buffer, file: string, orElse: string): string {
  const b64 = (Buffer.from(data).toString('base64').match(/.{1,76}/g) ?? []).join('\n');
  return `base64 -d > "${file}" <<'${EOF}' || { ${orElse}; }\n${b64}\n${EOF}`;
}

/** The script running `steps` in order, stopping at the first failure. */
export function stepsScript(steps: Step[]): string {
  const lines = [`d=$(mktemp -d) || exit 1`, `trap 'rm -rf -- "$d"' EXIT`];
  steps.forEach((s, i) => {
    const decodeFailed = `echo "${MARK} failed ${i} decode"; exit 1`;
    lines.push(heredoc(s.script, `$d/s${i}`, decodeFailed));
    const input = s.stdin === undefined ? '/dev/null' : `"$d/i${i}"`;
    if (s.stdin !== undefined) lines.push(heredoc(s.stdin, `$d/i${i}`, decodeFailed));
    lines.push(`sh -e "$d/s${i}" < ${input} > /dev/null || { echo "${MARK} failed ${i} $?"; exit 1; }`, `echo "${MARK} ok ${i}"`);
  });
  lines.push(`echo "${MARK} end"`);
  return lines.join('\n') + '\n';
}

/** What ran: how many steps finished, and the one that failed (if any) with its exit code. */
export function parseSteps(stdout: string): { done: number; failed?: { index: number; code: string }; ended: boolean } {
  let done = 0;
  let failed: { index: number; code: string } | undefined;
  let ended = false;
  for (const line of stdout.split('\n')) {
    if (!line.startsWith(MARK + ' ')) continue;
    const [what, index, code] = line.slice(MARK.length + 1).split(' ');
    if (what === 'ok') done = Number(index) + 1;
    else if (what === 'failed') failed = { index: Number(index), code: code ?? '?' };
    else if (what === 'end') ended = true;
  }
  return { done, ...(failed && { failed }), ended };
}

/**
 * Run `steps` as root in one round trip. Throws an ApplyError (exit 8) naming the step that failed (or where
 * the script stopped: timed out, connection lost) and the steps that ran before it.
 */
export async function runSteps(host: Host, steps: Step[], timeoutMs = 120_000): Promise<void> {
  if (steps.length === 0) return;
  const r = await host.run('sh -s', { sudo: true, stdin: stepsScript(steps), timeoutMs });
  const { done, failed, ended } = parseSteps(r.stdout);
  if (r.code === 0 && ended && !failed) return;
  const at = failed?.index ?? done;
  const ran = done > 0 ? `; done before it: ${steps.slice(0, done).map((s) => s.label).join(', ')} (prep-node rollback undoes them)` : '; nothing was changed';
  const why = failed ? (failed.code === 'decode' ? 'could not decode the step (base64 missing?)' : `exit ${failed.code}`) : r.timedOut ? 'timed out' : `the script stopped (exit ${r.code ?? 'none'})`;
  const said = r.stderr.trim().split('\n').pop();
  throw new ApplyError(host.name, `apply step ${at + 1} of ${steps.length} (${steps[at]?.label ?? 'end'}) failed: ${why}${said ? ` (${said})` : ''}${ran}`);
}
