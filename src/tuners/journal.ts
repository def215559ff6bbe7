// The journal on the node (/var/lib/prep-node/journal.json): the original of every running value and
// every file prep-node changed, recorded before the first write (first write wins: a second apply never
// overwrites an original), and the state of the last run. `rollback` restores it exactly; a run that
// died half-way leaves state "applying", which the next apply or rollback finds and finishes.
// The auto-revert script (revert.ts) cannot parse JSON, so it leaves its own marker file instead.
import { z } from 'zod';
import { NodeRefusal } from '../errors.js';
import { shQuote, type Host } from '../host/host.js';
import type { FileState } from './files.js';
import type { Original } from './types.js';

export const STATE_DIR = '/var/lib/prep-node';
export const JOURNAL_FILE = `${STATE_DIR}/journal.json`;
/** Written by the auto-revert script when it ran: `<run id> <ISO time> <what>` lines. */
export const REVERTED_FILE = `${STATE_DIR}/reverted`;

const FileOriginalSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('absent') }),
  z.object({ kind: z.literal('file'), base64: z.string(), mode: z.number().int(), uid: z.number().int(), gid: z.number().int() }),
  z.object({ kind: z.literal('symlink'), target: z.string() }),
]);

const JournalSchema = z.object({
  schema: z.literal('prep-node/journal/v1'),
  /** True when prep-node created STATE_DIR itself (rollback then removes it). */
  createdStateDir: z.boolean(),
  values: z.array(z.object({ tuner: z.enum(['modules', 'sysctl', 'bpffs', 'mtu', 'channels']), key: z.string(), value: z.string() })),
  files: z.array(z.object({ path: z.string(), original: FileOriginalSchema })),
  /** Directories prep-node created for its files, outermost first: rollback removes them when empty. */
  dirs: z.array(z.string()),
  run: z.object({
    id: z.string(),
    profile: z.string(),
    state: z.enum(['applying', 'applied']),
    started: z.string(),
    finished: z.string().optional(),
  }),
});

export type Journal = z.infer<typeof JournalSchema>;
type FileOriginal = z.infer<typeof FileOriginalSchema>;

/** A fresh journal for a node prep-node has not changed yet. */
export function newJournal(createdStateDir: boolean, runId: string, profile: string): Journal {
  return {
    schema: 'prep-node/journal/v1',
    createdStateDir,
    values: [],
    files: [],
    dirs: [],
    run: { id: runId, profile, state: 'applying', started: new Date().toISOString() },
  };
}

/** Parse a journal's text; a corrupt one is an error that names the file (never silently ignored). */
export function parseJournal(text: string, host: string): Journal {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new NodeRefusal(host, `${JOURNAL_FILE} is not valid JSON (${(err as Error).message}); inspect it before removing it`);
  }
  const r = JournalSchema.safeParse(data);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new NodeRefusal(host, `${JOURNAL_FILE} is not a prep-node journal (${issue ? `${issue.path.join('.') || '(top level)'}: ${issue.message}` : 'invalid'}); prep-node will not act on it: inspect it, and move it away if it is not prep-node's`);
  }
  return r.data;
}

/** The node's journal, or null when prep-node never changed this node (or rolled everything back). */
export async function readJournal(host: Host): Promise<Journal | null> {
  const r = await host.run(`if [ -e ${JOURNAL_FILE} ]; then cat ${JOURNAL_FILE}; else echo '@@absent'; fi`, { sudo: true });
  if (r.code !== 0) throw new Error(`${host.name}: reading ${JOURNAL_FILE} failed: ${r.stderr.trim()}`);
  if (r.stdout.trim() === '@@absent') return null;
  return parseJournal(r.stdout, host.name);
}

/**
 * The root command that writes the journal read from stdin atomically (it holds copies of system
 * files: mode 600 in a 700 directory), creating STATE_DIR when missing. Also a step of apply's write script.
 */
export const WRITE_JOURNAL_COMMAND =
  `set -e; mkdir -p ${STATE_DIR}; chmod 700 ${STATE_DIR}; t=$(mktemp ${STATE_DIR}/.prep-node.XXXXXX); ` +
  `trap 'rm -f -- "$t"' EXIT; cat > "$t"; chmod 600 "$t"; mv -f -- "$t" ${JOURNAL_FILE}; trap - EXIT`;

/** The journal as written on the node. */
export function journalText(journal: Journal): string {
  return JSON.stringify(journal, null, 2) + '\n';
}

/** Write the journal: one round trip. */
export async function writeJournal(host: Host, journal: Journal): Promise<void> {
  await host.exec(WRITE_JOURNAL_COMMAND, { sudo: true, stdin: journalText(journal) });
}

/** Record originals not yet journaled (first write wins). Returns true when something was added. */
export function recordValues(journal: Journal, originals: Original[]): boolean {
  let added = false;
  for (const o of originals) {
    if (journal.values.some((v) => v.tuner === o.tuner && v.key === o.key)) continue;
    journal.values.push({ ...o });
    added = true;
  }
  return added;
}

/** Record files' originals not yet journaled. A directory or device is refused (prep-node writes only files). */
export function recordFiles(journal: Journal, states: Map<string, FileState>, host: string): boolean {
  let added = false;
  for (const [path, state] of states) {
    if (journal.files.some((f) => f.path === path)) continue;
    if (state.kind === 'other') throw notAFile(host, path);
    const original: FileOriginal =
      state.kind === 'file'
        ? { kind: 'file', base64: state.content.toString('base64'), mode: state.mode, uid: state.uid, gid: state.gid }
        : state.kind === 'symlink'
          ? { kind: 'symlink', target: state.target }
          : { kind: 'absent' };
    journal.files.push({ path, original });
    added = true;
  }
  return added;
}

/** The refusal for a path prep-node would write that holds a directory, a device or a socket. */
export function notAFile(host: string, path: string): NodeRefusal {
  return new NodeRefusal(host, `${path} exists and is not a regular file or a symlink; prep-node will not replace it: move it away or leave this item out of the profile`);
}

/** Record directories about to be created (outermost first), if not journaled yet. */
export function recordDirs(journal: Journal, dirs: string[]): void {
  for (const d of dirs) if (!journal.dirs.includes(d)) journal.dirs.push(d);
}

/** A journaled file original back as a FileState. */
export function fileState(original: FileOriginal): FileState {
  if (original.kind === 'file') return { kind: 'file', content: Buffer.from(original.base64, 'base64'), mode: original.mode, uid: original.uid, gid: original.gid };
  return original;
}

/** The command printing the auto-revert's marker lines (nothing when none), reading only. */
export const PEEK_REVERTED_COMMAND = `if [ -e ${REVERTED_FILE} ]; then cat ${REVERTED_FILE}; fi`;

/** Lines the auto-revert script left, one per revert that ran; removed once reported. */
export async function takeRevertedMarker(host: Host): Promise<string[]> {
  const r = await host.run(`if [ -e ${REVERTED_FILE} ]; then cat ${REVERTED_FILE} && rm -f ${shQuote(REVERTED_FILE)}; fi`, { sudo: true });
  if (r.code !== 0) throw new Error(`${host.name}: reading ${REVERTED_FILE} failed: ${r.stderr.trim()}`);
  return r.stdout.split('\n').filter((l) => l.trim() !== '');
}
