// What the datapath cannot enforce, found while translating manifests: each finding names the file,
// the document, the object, the field path (kubectl's spelling: spec.ingress[0].toPorts[0]) and why,
// and says what leaving it out means (`--allow-partial`), so nothing is dropped silently.
import type { Origin, Path } from './manifests.js';

export interface Finding {
  file: string;
  doc: number;
  line: number;
  col: number;
  /** "NetworkPolicy prod/backend" */
  object: string;
  /** "spec.ingress[0].toPorts[0].rules.http" */
  path: string;
  why: string;
  /** what is left out when the rest is enforced (--allow-partial) */
  leftOut: string;
}

/** A key path as kubectl writes it: a.b[0].c */
export function formatPath(path: Path): string {
  let out = '';
  for (const k of path) {
    if (typeof k === 'number') out += `[${k}]`;
    else out += out === '' ? k : `.${k}`;
  }
  return out || '(object)';
}

export class Findings {
  readonly list: Finding[] = [];

  get length(): number {
    return this.list.length;
  }

  /** Record that `path` (relative to the object) of `origin` cannot be enforced. */
  add(origin: Origin, path: Path, why: string, leftOut: string): void {
    const pos = origin.at(path);
    this.list.push({ file: origin.file, doc: origin.doc, line: pos.line, col: pos.col, object: origin.what, path: formatPath(path), why, leftOut });
  }
}

/** One line per finding: file:line:col: object (document n): path: why. */
export function formatFinding(f: Finding): string {
  return `${f.file}:${f.line}:${f.col}: ${f.object} (document ${f.doc}): ${f.path}: ${f.why}`;
}

/** One line per left-out part, for --allow-partial's listing. */
export function formatLeftOut(f: Finding): string {
  return `${f.file}:${f.line}:${f.col}: ${f.object}: ${f.path}: ${f.leftOut} (${f.why})`;
}
