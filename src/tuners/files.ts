// Files on the node, read and written exactly: content as base64 (so bytes survive), mode and owner,
// symlinks as links. Tuners read current contents through here to plan; the runner snapshots originals
// into the journal and restores them byte for byte on rollback.
import { shQuote, type Host } from '../host/host.js';
import { parseSections } from '../probes/sections.js';
import type { FileWrite } from './types.js';

export type FileState =
  | { kind: 'absent' }
  | { kind: 'file'; content: Buffer; mode: number; uid: number; gid: number }
  | { kind: 'symlink'; target: string }
  /** A directory, a device: prep-node never touches one. */
  | { kind: 'other' };

/** The one command printing every path's state under `@@ path`. */
export function readFilesCommand(paths: string[]): string {
  const list = paths.map(shQuote).join(' ');
  return (
    `for f in ${list}; do echo "@@ $f"; ` +
    `if [ -L "$f" ]; then echo "L $(readlink "$f")"; ` +
    `elif [ -f "$f" ]; then echo "F $(stat -c '%a %u %g' "$f")"; base64 -w0 "$f" || exit 1; echo; ` +
    `elif [ -e "$f" ]; then echo O; else echo A; fi; done`
  );
}

/** Parse readFilesCommand's output. */
export function parseFiles(output: string, paths: string[]): Map<string, FileState> {
  const sections = parseSections(output);
  const states = new Map<string, FileState>();
  for (const path of paths) {
    const text = sections.get(path);
    if (text === undefined) throw new Error(`reading ${path} gave no answer`);
    const [head = '', body = ''] = text.split('\n');
    if (head === 'A') states.set(path, { kind: 'absent' });
    else if (head === 'O') states.set(path, { kind: 'other' });
    else if (head.startsWith('L ')) states.set(path, { kind: 'symlink', target: head.slice(2) });
    else {
      const m = /^F ([0-7]+) (\d+) (\d+)$/.exec(head);
      if (!m) throw new Error(`reading ${path}: unexpected answer ${JSON.stringify(head)}`);
      states.set(path, { kind: 'file', content: Buffer.from(body.trim(), 'base64'), mode: parseInt(m[1]!, 8), uid: Number(m[2]), gid: Number(m[3]) });
    }
  }
  return states;
}

/** Read files as root in one round-trip. */
export async function readFiles(host: Host, paths: string[]): Promise<Map<string, FileState>> {
  if (paths.length === 0) return new Map();
  return parseFiles(await host.exec(readFilesCommand(paths), { sudo: true }), paths);
}

/** True when the node's file already is what the plan wants. */
export function fileMatches(state: FileState, want: FileWrite): boolean {
  if (want.symlink !== undefined) return state.kind === 'symlink' && state.target === want.symlink;
  return state.kind === 'file' && state.content.equals(Buffer.from(want.content ?? '', 'utf8'));
}

/** The directories `mkdir -p` would create for a path, outermost first. */
export function missingParentsCommand(paths: string[]): string {
  const dirs = [...new Set(paths.map((p) => p.slice(0, p.lastIndexOf('/')) || '/'))].map(shQuote).join(' ');
  // Walk each parent up to the first existing ancestor; print the missing ones.
  return `for d in ${dirs}; do while [ ! -e "$d" ]; do echo "$d"; d=$(dirname "$d"); done; done | sort -u`;
}

/** A sh script writing each file (atomically, keeping an existing file's mode) or link. */
export function writeFilesScript(files: FileWrite[]): string {
  const lines: string[] = ['set -e'];
  for (const f of files) {
    const p = shQuote(f.path);
    lines.push(`mkdir -p "$(dirname ${p})"`);
    if (f.symlink !== undefined) {
      lines.push(`ln -sfn ${shQuote(f.symlink)} ${p}.prep-node-tmp && mv -fT ${p}.prep-node-tmp ${p}`);
      continue;
    }
    const b64 = Buffer.from(f.content ?? '', 'utf8').toString('base64');
    const mode = (f.mode ?? 0o644).toString(8);
    lines.push(
      `t=$(mktemp ${p}.prep-node-XXXXXX)`,
      `printf '%s' ${shQuote(b64)} | base64 -d > "$t"`,
      `if [ -f ${p} ]; then chmod --reference=${p} "$t"; chown --reference=${p} "$t"; else chmod ${mode} "$t"; fi`,
      `mv -f "$t" ${p}`,
    );
  }
  return lines.join('\n') + '\n';
}

/** One sh command (a && chain) putting a file back as it was: its bytes, mode and owner, a link, or no file at all. */
export function restoreFileCommand(path: string, original: FileState): string | undefined {
  const p = shQuote(path);
  switch (original.kind) {
    case 'absent':
      return `rm -f ${p}`;
    case 'symlink':
      return `ln -sfn ${shQuote(original.target)} ${p}.prep-node-tmp && mv -fT ${p}.prep-node-tmp ${p}`;
    case 'file':
      return [
        `t=$(mktemp ${p}.prep-node-XXXXXX)`,
        `printf '%s' ${shQuote(original.content.toString('base64'))} | base64 -d > "$t"`,
        `chmod ${original.mode.toString(8)} "$t"`,
        `chown ${original.uid}:${original.gid} "$t"`,
        `mv -f "$t" ${p}`,
      ].join(' && ');
    case 'other':
      return undefined;
  }
}

/** A sh script putting each file back as it was (stops at the first failure). */
export function restoreFilesScript(originals: { path: string; original: FileState }[]): string {
  const lines: string[] = ['set -e'];
  for (const { path, original } of originals) {
    const cmd = restoreFileCommand(path, original);
    if (cmd !== undefined) lines.push(cmd);
  }
  return lines.join('\n') + '\n';
}
