// Apply and rollback, for one host. Everything that can fail is computed before the first write:
// every tuner plans first (a NodeRefusal stops the run with nothing changed). Then, tuner by tuner:
// re-plan (a module just loaded brings its sysctls), journal the originals, and apply — for changes
// that can cut the SSH session, with an auto-revert armed and cancelled only from a fresh connection.
import { randomBytes } from 'node:crypto';
import { HostError, NodeRefusal, PrepNodeError, ExitCode, RollbackError, oneLine } from '../errors.js';
import type { Host } from '../host/host.js';
import type { Profile } from '../profiles/schema.js';
import { shQuote } from '../host/host.js';
import { missingParentsCommand, readFiles, restoreFileCommand, writeFilesScript, type FileState } from './files.js';
import { runSteps, type Step } from './steps.js';
import {
  JOURNAL_FILE,
  STATE_DIR,
  fileState,
  newJournal,
  notAFile,
  readJournal,
  recordDirs,
  recordFiles,
  recordValues,
  PEEK_REVERTED_COMMAND,
  WRITE_JOURNAL_COMMAND,
  journalText,
  takeRevertedMarker,
  writeJournal,
  type Journal,
} from './journal.js';
import { armRevert, cancelRevert, pendingReverts } from './revert.js';
import { TUNERS } from './index.js';
import type { TuneContext, Tuner, TunerId, TunerPlan } from './types.js';

export interface ApplyOptions {
  dryRun: boolean;
  /** Seconds the node waits for prep-node to come back after a session-cutting change. */
  confirmTimeout: number;
  /** A fresh connection to the same node (the only proof that a change left SSH working). */
  reconnect: () => Promise<Host>;
  progress?: (text: string) => void;
}

/** What happened on one host. */
export interface ApplyReport {
  /** Things found from earlier runs: an unfinished apply, a revert the node ran. */
  recovered: string[];
  plans: TunerPlan[];
  applied: boolean;
  /** What still differs after applying (empty when verified). */
  unverified: string[];
  /** Dry run only: tuners that refused, with why (a real run stops at the first refusal, before any write). */
  refused: Refusal[];
  runId: string;
}

export function newRunId(): string {
  return `${new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '')}-${randomBytes(3).toString('hex')}`;
}

/** Changes or files planned in total. */
export function planSize(plans: TunerPlan[]): number {
  return plans.reduce((n, p) => n + p.changes.length + p.files.length, 0);
}

/** What an earlier run left on the node, read only: the auto-revert's marker lines and reverts still armed. */
interface Leftovers {
  marker: string[];
  pending: string[];
}

/** Read what earlier runs left (no write): starts its commands at once, so they join the caller's batch. */
async function leftovers(host: Host): Promise<Leftovers> {
  const [marker, pending] = await Promise.all([host.exec(PEEK_REVERTED_COMMAND, { sudo: true }), pendingReverts(host)]);
  return { marker: marker.split('\n').filter((l) => l.trim() !== ''), pending };
}

/**
 * Act on what earlier runs left: report the reverts the node ran (taking the marker), cancel reverts
 * still armed (we are connected), note an unfinished journal. Writes only when something was left
 * (its commands start together: one round trip).
 */
async function recover(host: Host, journal: Journal | null, left: Leftovers, finishing: 'finishing' | 'rolling back' = 'finishing'): Promise<string[]> {
  const notes: string[] = [];
  const [marker, cancels] = await Promise.all([
    left.marker.length > 0 ? takeRevertedMarker(host) : Promise.resolve([]),
    Promise.all(left.pending.map(async (id) => [id, await cancelRevert(host, id)] as const)),
  ]);
  for (const line of marker) {
    const [id, at, ...what] = line.split(' ');
    notes.push(`the node reverted ${what.join(' ')} at ${at} (run ${id}): prep-node could not reconnect after the change`);
  }
  for (const [id, outcome] of cancels) if (outcome === 'cancelled') notes.push(`cancelled the auto-revert left armed by run ${id} (this connection works)`);
  if (journal?.run.state === 'applying') notes.push(`run ${journal.run.id} (profile ${journal.run.profile}, started ${journal.run.started}) did not finish: ${finishing} it now`);
  return notes;
}

export interface Refusal {
  tuner: TunerId;
  reason: string;
}

/** Plan every tuner; read-only. A refusal throws. */
export async function planAll(ctx: TuneContext, tuners: Tuner[] = TUNERS): Promise<TunerPlan[]> {
  // Tuners plan side by side (each only reads): with a BatchingHost their reads share round trips.
  // The first refusal in tuner order is the one thrown, as when they planned one by one.
  const settled = await Promise.allSettled(tuners.map((t) => t.plan(ctx)));
  return settled.map((r) => {
    if (r.status === 'rejected') throw r.reason;
    return r.value;
  });
}

/** Plan every tuner, going on past refusals (for a dry run, which shows everything at once). */
export async function planEach(ctx: TuneContext, tuners: Tuner[] = TUNERS): Promise<{ plans: TunerPlan[]; refused: Refusal[] }> {
  const plans: TunerPlan[] = [];
  const refused: Refusal[] = [];
  const settled = await Promise.allSettled(tuners.map((t) => t.plan(ctx)));
  tuners.forEach((t, i) => {
    const r = settled[i]!;
    if (r.status === 'fulfilled') return void plans.push(r.value);
    const err: unknown = r.reason;
    if (!(err instanceof NodeRefusal)) throw err;
    refused.push({ tuner: t.id, reason: err.message.startsWith(`${ctx.host.name}: `) ? err.message.slice(ctx.host.name.length + 2) : err.message });
  });
  return { plans, refused };
}

/** Planned files whose path holds a directory, a device or a socket: refused before the first write. */
function nonFiles(host: Host, plans: TunerPlan[], states: Map<string, FileState>): Refusal[] {
  return plans.flatMap((p) => p.files.filter((f) => states.get(f.path)?.kind === 'other').map((f) => ({ tuner: p.tuner, reason: notAFile(host.name, f.path).message.slice(host.name.length + 2) })));
}

/** Every planned file's path, once. */
function plannedPaths(plans: TunerPlan[]): string[] {
  return [...new Set(plans.flatMap((p) => p.files.map((f) => f.path)))];
}

/**
 * The files' states (their originals) and the directories `mkdir -p` would create for them, read
 * together (one round trip with a BatchingHost, none without files).
 */
async function readOriginals(host: Host, paths: string[]): Promise<{ states: Map<string, FileState>; dirs: string[] }> {
  if (paths.length === 0) return { states: new Map(), dirs: [] };
  const [states, parents] = await Promise.all([readFiles(host, paths), host.exec(missingParentsCommand(paths), { sudo: true })]);
  return { states, dirs: parents.split('\n').filter(Boolean).sort((a, b) => a.length - b.length) };
}

/** The steps writing a plan's files and running the tuner's reload. */
function fileSteps(tuner: Tuner, plan: TunerPlan): Step[] {
  if (plan.files.length === 0) return [];
  const steps: Step[] = [{ label: `${tuner.id}: ${plan.files.map((f) => f.path).join(' ')}`, script: writeFilesScript(plan.files) }];
  if (tuner.reloadCommand) steps.push({ label: `${tuner.id}: reload`, script: tuner.reloadCommand });
  return steps;
}

/** The step journaling `journal` (always first: nothing is written before its original is kept). */
function journalStep(journal: Journal): Step {
  return { label: 'journal', script: WRITE_JOURNAL_COMMAND, stdin: journalText(journal) };
}

// A handshake fits in small packets: only full-size segments both ways show that a new MTU works on
// the whole path (a provider network that black-holes big packets without ICMP passes `ssh true`).
const CONFIRM_BYTES = 256 * 1024;

/** Move CONFIRM_BYTES to the node and back on a fresh connection; throws when the path cannot carry them. */
async function confirmPath(host: Host): Promise<void> {
  const payload = Buffer.alloc(CONFIRM_BYTES, 'prep-node confirms the path MTU ');
  const back = await host.exec('cat', { stdin: payload, timeoutMs: 10_000 });
  if (back.length !== CONFIRM_BYTES) throw new Error(`the confirm transfer returned ${back.length} of ${CONFIRM_BYTES} bytes`);
}

/** Close a host that may hang (its session was cut): give up after a few seconds. */
async function closeQuietly(host: Host): Promise<void> {
  await Promise.race([host.close().catch(() => undefined), new Promise((r) => setTimeout(r, 3000).unref())]);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * Apply a change that can cut the session: arm the revert, apply (not waiting long for an answer on
 * the old session), reconnect fresh, cancel the revert from there. Returns the host to go on with,
 * or throws a PrepNodeError (exit 6) when the node reverted.
 */
async function applyCutting(ctx: TuneContext, tuner: Tuner, plan: TunerPlan, runId: string, options: ApplyOptions): Promise<Host> {
  const what = plan.changes.map((c) => `${tuner.id} ${c.key} ${c.desired}`).join(', ');
  const armed = await armRevert(ctx.host, `${runId}-${tuner.id}`, plan.originals.map((o) => tuner.restoreCommand(o)), what, options.confirmTimeout);
  options.progress?.(`${tuner.id}: applying, auto-revert armed for ${options.confirmTimeout} s`);
  const answerWithin = Math.min(15, Math.max(3, Math.floor(options.confirmTimeout / 4))) * 1000;
  await Promise.race([ctx.host.exec(tuner.applyCommand(plan), { sudo: true }).catch(() => undefined), sleep(answerWithin)]);
  options.progress?.(`${tuner.id}: reconnecting on a fresh connection`);
  let fresh: Host | undefined;
  while (!fresh && Date.now() < armed.deadline.getTime() - 2000) {
    try {
      fresh = await options.reconnect();
      await confirmPath(fresh);
    } catch {
      if (fresh) await closeQuietly(fresh);
      fresh = undefined;
      await sleep(1000);
    }
  }
  await closeQuietly(ctx.host);
  if (fresh && (await cancelRevert(fresh, armed.runId)) === 'cancelled') return fresh;
  // Either no fresh connection in time, or the timer won the race: wait for the node to revert, then look.
  if (fresh) await closeQuietly(fresh);
  await sleep(Math.max(0, armed.deadline.getTime() - Date.now()) + 3000);
  let after: Host;
  try {
    after = await options.reconnect();
  } catch (err) {
    throw new HostError(
      ctx.host.name,
      err instanceof HostError ? err.kind : 'disconnected',
      `${what} cut the SSH session and the node is still unreachable after its ${options.confirmTimeout} s auto-revert (${oneLine(err)})`,
    );
  }
  const marker = await takeRevertedMarker(after);
  await closeQuietly(after);
  throw new PrepNodeError(
    `${ctx.host.name}: ${what} cut the SSH session: no fresh connection could move ${CONFIRM_BYTES / 1024} KiB both ways within ${options.confirmTimeout} s, so the node reverted it${marker.length ? '' : ' (no marker found)'}; nothing after ${tuner.id} was applied. Fix the profile or raise --confirm-timeout`,
    ExitCode.reverted,
  );
}

/**
 * Plan, and unless dry-run, apply the profile on one host. `host` may be replaced by a fresh
 * connection: the caller closes `report.host`. With a BatchingHost, a run without session-cutting
 * changes or modules to load takes the plans' reads (journal, leftovers, every plan: as many round
 * trips as the longest chain of reads one tuner makes), the files' originals, then the writes as one
 * script (journal first, the journal's final state last) with verification's reads in the same round
 * trip (again the longest chain). Modules to load add one round trip: their write script, with the
 * sysctl plan read again after it (the keys they bring appear only once they are loaded), plus one to
 * read the originals of files that plan adds, if any. A session-cutting change writes the others
 * first, then adds its arm, apply, reconnect and confirm, its file's originals and its file write.
 */
export async function applyProfile(host: Host, profile: Profile, options: ApplyOptions): Promise<ApplyReport & { host: Host }> {
  const runId = newRunId();
  let ctx: TuneContext = { host, profile, cache: new Map() };
  options.progress?.('planning');
  if (options.dryRun) {
    // The journal is read (a damaged one is reported) alongside the plans: one round trip with a BatchingHost.
    const [, { plans, refused }] = await Promise.all([readJournal(host), planEach(ctx)]);
    refused.push(...nonFiles(host, plans, await readFiles(host, plannedPaths(plans))));
    return { recovered: [], plans, applied: false, unverified: [], refused, runId, host };
  }
  // Round trip 1, reads only: the journal, what earlier runs left, every tuner's plan, whether
  // STATE_DIR exists. A journal that is not ours stops the run here, before anything is written.
  const [journalRead, leftRead, plansRead, stateDir] = await Promise.allSettled([readJournal(host), leftovers(host), planAll(ctx), host.run(`test -d ${STATE_DIR}`)]);
  const settled = <T>(r: PromiseSettledResult<T>): T => {
    if (r.status === 'rejected') throw r.reason;
    return r.value;
  };
  const journal0 = settled(journalRead);
  const left = settled(leftRead);
  const createdDir = settled(stateDir).code !== 0;
  // Round trip 2: recovery (only when an earlier run left something; even when a tuner refuses, as
  // before) together with the planned files' originals and the directories they need.
  const [recovered, originals] = await Promise.all([
    recover(host, journal0, left),
    plansRead.status === 'fulfilled' ? readOriginals(host, plannedPaths(plansRead.value)) : Promise.resolve(undefined),
  ]);
  const plans = settled(plansRead);
  const states = originals!.states;
  const notFiles = nonFiles(host, plans, states);
  if (notFiles.length > 0) throw new NodeRefusal(host.name, notFiles[0]!.reason);
  const report = { recovered, plans, applied: false, unverified: [] as string[], refused: [], runId, host };
  if (planSize(plans) === 0) {
    if (journal0?.run.state === 'applying') await writeJournal(host, { ...journal0, run: { ...journal0.run, state: 'applied', finished: new Date().toISOString() } });
    return report;
  }
  const journal: Journal = journal0 ?? newJournal(createdDir, runId, profile.name);
  journal.run = { id: runId, profile: profile.name, state: 'applying', started: new Date().toISOString() };
  const byId = new Map(plans.map((p) => [p.tuner, p]));
  const cuts = (tuner: Tuner, plan: TunerPlan) => tuner.cutsSession === true && plan.changes.length > 0;
  /**
   * The files a session-cutting tuner will write wait for its confirmation, and so does their journal
   * entry: a file journaled but never written would be "restored" by rollback over the user's later edits.
   */
  const later = () => new Set(TUNERS.filter((t) => byId.has(t.id) && cuts(t, byId.get(t.id)!)).flatMap((t) => byId.get(t.id)!.files.map((f) => f.path)));
  const notCutting = (s: typeof states): typeof states => {
    const l = later();
    return l.size === 0 ? s : new Map([...s].filter(([path]) => !l.has(path)));
  };
  /** Missing parent directories that a file written now needs (a cutting tuner's are read again at its write). */
  const dirsNow = (dirs: string[], s: typeof states): string[] => {
    const now = [...notCutting(s).keys()];
    return dirs.filter((d) => now.some((p) => p.startsWith(`${d}/`)));
  };
  // Every original the plans will touch is journaled in the first step of the first write script.
  for (const plan of plans) recordValues(journal, plan.originals);
  recordDirs(journal, dirsNow(originals!.dirs, states));
  recordFiles(journal, notCutting(states), host.name);
  /** Steps for the tuners in `tuners` that do not cut the session (a cutting tuner's files wait for its confirmation). */
  const steps = (tuners: Tuner[]): Step[] =>
    tuners.flatMap((tuner) => {
      const plan = byId.get(tuner.id)!;
      if (cuts(tuner, plan)) return [];
      return [...fileSteps(tuner, plan), ...(plan.changes.length > 0 ? [{ label: `${tuner.id}: running values`, script: tuner.applyCommand(plan) }] : [])];
    });
  const modules = TUNERS.find((t) => t.id === 'modules')!;
  let modulesDone = false;
  if ((byId.get('modules')?.changes.length ?? 0) > 0) {
    // Modules first, alone: once loaded they bring sysctls (nf_conntrack_max with ip_vs) that the
    // sysctl tuner plans again before its own writes.
    // The tuners whose plan a module load can change (sysctl) plan again in the same round trip: a
    // BatchingHost sends their reads after the modules' write script in one script, run in order on
    // the node; when the write fails its error is the one thrown and the reads' results are dropped.
    options.progress?.('modules: applying, then planning again');
    ctx = { ...ctx, cache: new Map() };
    const [wrote, replanned] = await Promise.allSettled([
      runSteps(host, [journalStep(journal), ...steps([modules])]),
      planAll(
        ctx,
        TUNERS.filter((t) => t.plansAfterModules === true),
      ),
    ]);
    settled(wrote);
    modulesDone = true;
    const again = settled(replanned);
    const more = await readOriginals(
      host,
      plannedPaths(again).filter((p) => !states.has(p)),
    );
    const refusedNow = nonFiles(host, again, more.states);
    if (refusedNow.length > 0) throw new NodeRefusal(host.name, refusedNow[0]!.reason);
    for (const plan of again) {
      byId.set(plan.tuner, plan);
      recordValues(journal, plan.originals);
    }
    recordDirs(journal, dirsNow(more.dirs, more.states));
    recordFiles(journal, notCutting(more.states), host.name);
    report.plans = report.plans.map((p) => byId.get(p.tuner) ?? p);
  }
  options.progress?.('applying');
  const writes = [journalStep(journal), ...steps(modulesDone ? TUNERS.filter((t) => t !== modules) : TUNERS)];
  const finish = (): Journal => ({ ...journal, run: { ...journal.run, state: 'applied', finished: new Date().toISOString() } });
  /** Compare the node with every plan again: what still differs was not applied as planned. */
  const verify = (plans: TunerPlan[]) => {
    for (const plan of plans) {
      for (const c of plan.changes) report.unverified.push(`${plan.tuner} ${c.key} = ${c.current}, expected ${c.desired}`);
      for (const f of plan.files) report.unverified.push(`${plan.tuner} ${f.path} differs from what was written`);
    }
    report.applied = true;
    return report;
  };
  if (!TUNERS.some((t) => byId.has(t.id) && cuts(t, byId.get(t.id)!))) {
    // Nothing cuts the session: the journal's final state is the write script's last step (written
    // only when every write before it succeeded), and the verification reads travel in the same
    // round trip, after the script (a BatchingHost runs them in order); a failed write is the error thrown.
    options.progress?.('applying and verifying');
    ctx = { ...ctx, cache: new Map() };
    const [wrote, checked] = await Promise.allSettled([runSteps(host, [...writes, { label: 'journal: applied', script: WRITE_JOURNAL_COMMAND, stdin: journalText(finish()) }]), planAll(ctx)]);
    settled(wrote);
    return verify(settled(checked));
  }
  await runSteps(host, writes);

  // Session-cutting changes last, one tuner at a time: running value first, under the auto-revert;
  // the persistent form only once a fresh connection confirmed it, so a reboot inside the window also
  // comes back with the old configuration.
  let stale = false;
  for (const tuner of TUNERS) {
    let plan = byId.get(tuner.id)!;
    if (!cuts(tuner, plan)) continue;
    if (stale) {
      // A fresh connection after an earlier cut: plan again (the reference list of what to apply).
      plan = await tuner.plan(ctx);
      report.plans = report.plans.map((p) => (p.tuner === tuner.id ? plan : p));
      if (plan.changes.length === 0 && plan.files.length === 0) continue;
      if (recordValues(journal, plan.originals)) await writeJournal(ctx.host, journal);
    }
    stale = true;
    ctx = { ...ctx, host: await applyCutting(ctx, tuner, plan, runId, options) };
    report.host = ctx.host;
    const more = await readOriginals(ctx.host, plan.files.map((f) => f.path).filter((p) => !journal.files.some((f) => f.path === p)));
    recordDirs(journal, more.dirs);
    const added = recordFiles(journal, more.states, host.name);
    await runSteps(ctx.host, [...(added ? [journalStep(journal)] : []), ...fileSteps(tuner, plan)]);
  }
  options.progress?.('verifying');
  ctx = { ...ctx, cache: new Map() };
  // Verification reads and the journal's final state travel together: the journal is not read by any tuner.
  const [verified] = await Promise.all([planAll(ctx), writeJournal(ctx.host, finish())]);
  return verify(verified);
}

export interface RollbackReport {
  recovered: string[];
  /** null: prep-node never changed this node (or already rolled back). */
  journal: Journal | null;
  /** Files not back to their original bytes after the rollback (empty when exact). */
  mismatched: string[];
  /** Lines the restore printed on stderr (a module in use that stays loaded). */
  warnings: string[];
}

/**
 * The sh script rollback runs: files back, then running values (tuners in reverse), reloads, then
 * prep-node's own files. A file that cannot be put back fails the script (exit 1) before the journal
 * is removed, so the next rollback still knows every original; a running value that cannot be
 * restored (a module in use) is a warning.
 */
export function rollbackScript(journal: Journal): string {
  const parts: string[] = ['fail=0\n'];
  for (const f of journal.files) {
    const cmd = restoreFileCommand(f.path, fileState(f.original));
    if (cmd !== undefined) parts.push(`{ ${cmd}; } || { echo ${shQuote(`prep-node: could not restore ${f.path}`)} >&2; fail=1; }\n`);
  }
  for (const tuner of [...TUNERS].reverse()) {
    for (const v of journal.values.filter((x) => x.tuner === tuner.id).reverse()) parts.push(`{ ${tuner.restoreCommand(v)}; } || echo "prep-node: could not restore ${tuner.id} ${v.key}" >&2\n`);
  }
  // Reloads are safe on any node (each guards itself): run them all rather than guess which files were whose.
  for (const tuner of TUNERS) if (tuner.reloadCommand) parts.push(`{ ${tuner.reloadCommand}; } || true\n`);
  for (const d of [...journal.dirs].sort((a, b) => b.length - a.length)) parts.push(`rmdir ${d} 2>/dev/null || true\n`);
  parts.push(`if [ "$fail" != 0 ]; then echo 'prep-node: some files could not be restored; the journal is kept' >&2; exit 1; fi\n`);
  parts.push(`rm -f ${JOURNAL_FILE} ${STATE_DIR}/reverted\n`);
  if (journal.createdStateDir) parts.push(`rmdir ${STATE_DIR} 2>/dev/null || true\n`);
  return parts.join('');
}

/** Put everything prep-node changed back as it was, and remove what it created. */
export async function rollback(host: Host, dryRun: boolean): Promise<RollbackReport> {
  // The journal and what earlier runs left, read together; recovery writes only when something was left.
  const [journalRead, leftRead] = await Promise.allSettled([readJournal(host), dryRun ? undefined : leftovers(host)]);
  // A journal that is not ours is the refusal reported, whatever else failed.
  if (journalRead.status === 'rejected') throw journalRead.reason;
  if (leftRead.status === 'rejected') throw leftRead.reason;
  const [journal, left] = [journalRead.value, leftRead.value];
  const recovered = left ? await recover(host, journal, left, 'rolling back') : [];
  const report: RollbackReport = { recovered, journal, mismatched: [], warnings: [] };
  if (!journal || dryRun) return report;
  const r = await host.run('sh -s', { sudo: true, stdin: rollbackScript(journal), timeoutMs: 120_000 });
  if (r.code !== 0) {
    const why = r.stderr.split('\n').filter((l) => l.startsWith('prep-node: could not restore /')).map((l) => l.slice('prep-node: could not restore '.length));
    throw new RollbackError(
      host.name,
      `rollback failed (${r.code === null ? 'timed out' : `exit ${r.code}`}): ${why.length ? `could not restore ${why.join(', ')}` : r.stderr.trim().split('\n').pop() || 'no message'}; the journal ${JOURNAL_FILE} is kept: fix the cause and run prep-node rollback again`,
    );
  }
  report.warnings = r.stderr.split('\n').filter((l) => l.startsWith('prep-node: '));
  const now = await readFiles(host, journal.files.map((f) => f.path));
  for (const f of journal.files) {
    const was = fileState(f.original);
    const is = now.get(f.path)!;
    const same =
      was.kind === is.kind &&
      (was.kind !== 'file' || (is.kind === 'file' && is.content.equals(was.content) && is.mode === was.mode && is.uid === was.uid && is.gid === was.gid)) &&
      (was.kind !== 'symlink' || (is.kind === 'symlink' && is.target === was.target));
    if (!same) report.mismatched.push(f.path);
  }
  return report;
}
