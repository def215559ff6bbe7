// The automatic revert for changes that can cut the SSH session (the idea of `netplan try` and a
// router's commit-confirm): before such a change, a script that puts the previous running values back
// is armed on the node to run after the confirm window; prep-node cancels it only after it has
// reconnected on a fresh connection. A lock directory decides the race between the timer firing and
// the cancel: whoever creates it first wins, so a revert never runs half-cancelled.
// Armed with systemd-run where systemd is PID 1, else a detached sleep in its own session.
import { shQuote, type Host } from '../host/host.js';
import { REVERTED_FILE, STATE_DIR } from './journal.js';

export interface ArmedRevert {
  runId: string;
  /** When the node reverts unless cancelled. */
  deadline: Date;
  mechanism: 'systemd-run' | 'background';
  /** What the revert puts back, for messages. */
  what: string;
}

const script = (runId: string) => `${STATE_DIR}/revert-${runId}.sh`;
const lock = (runId: string) => `${STATE_DIR}/revert-${runId}.lock`;
const unit = (runId: string) => `prep-node-revert-${runId}`;

/** The revert script: take the lock (or stop: cancelled), restore, leave a marker, clean up. */
export function revertScript(runId: string, commands: string[], what: string): string {
  const marker = `${runId} $(date -u +%Y-%m-%dT%H:%M:%SZ) ${what.replace(/[^A-Za-z0-9 ,.:=/_-]/g, '_')}`;
  return [
    '#!/bin/sh',
    `# prep-node auto-revert for run ${runId}: ${what}`,
    `mkdir ${lock(runId)} 2>/dev/null || exit 0`,
    ...commands.map((c) => `{ ${c}; } || true`),
    `echo "${marker}" >> ${REVERTED_FILE}`,
    `rm -f ${script(runId)} ${STATE_DIR}/revert-${runId}.pid; rmdir ${lock(runId)}`,
    '',
  ].join('\n');
}

/** Write and arm the revert; it runs `seconds` from now unless cancelRevert wins the lock first. */
export async function armRevert(host: Host, runId: string, commands: string[], what: string, seconds: number): Promise<ArmedRevert> {
  await host.exec(`mkdir -p ${STATE_DIR} && chmod 700 ${STATE_DIR}`, { sudo: true });
  await host.writeFile(script(runId), revertScript(runId, commands, what), { sudo: true, mode: 0o700 });
  const s = shQuote(script(runId));
  const out = await host.exec(
    `if [ -d /run/systemd/system ] && command -v systemd-run >/dev/null; then ` +
      `systemd-run --quiet --collect --unit=${unit(runId)} --on-active=${seconds}s --timer-property=AccuracySec=100ms /bin/sh ${s} && echo systemd-run; ` +
      `else setsid sh -c 'echo $$ > ${STATE_DIR}/revert-${runId}.pid; sleep ${seconds}; exec /bin/sh ${s}' </dev/null >/dev/null 2>&1 & echo background; fi`,
    { sudo: true },
  );
  return { runId, deadline: new Date(Date.now() + seconds * 1000), mechanism: out.trim() === 'systemd-run' ? 'systemd-run' : 'background', what };
}

/** Cancel an armed revert. 'cancelled': it will not run; 'ran': it already ran (or is running). */
export async function cancelRevert(host: Host, runId: string): Promise<'cancelled' | 'ran'> {
  const out = await host.exec(
    // No script: it ran (and removed itself). Lock taken: it is running. Otherwise take the lock ourselves.
    `if [ ! -e ${script(runId)} ]; then echo ran; elif mkdir ${lock(runId)} 2>/dev/null; then ` +
      `systemctl stop ${unit(runId)}.timer 2>/dev/null; ` +
      `if [ -f ${STATE_DIR}/revert-${runId}.pid ]; then kill -TERM -- -"$(cat ${STATE_DIR}/revert-${runId}.pid)" 2>/dev/null; fi; ` +
      `rm -f ${script(runId)} ${STATE_DIR}/revert-${runId}.pid; rmdir ${lock(runId)}; echo cancelled; ` +
      `else echo ran; fi`,
    { sudo: true },
  );
  return out.trim() === 'cancelled' ? 'cancelled' : 'ran';
}

/** Run ids of reverts still armed on the node (left by a run that died before confirming). */
export async function pendingReverts(host: Host): Promise<string[]> {
  const out = await host.exec(`for f in ${STATE_DIR}/revert-*.sh; do [ -e "$f" ] && basename "$f"; done; true`, { sudo: true });
  return out
    .split('\n')
    .map((l) => /^revert-(.+)\.sh$/.exec(l.trim())?.[1])
    .filter((id): id is string => id !== undefined);
}
