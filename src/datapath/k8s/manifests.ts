// Reading what `sync -f FILE|DIR` is given, as `kubectl apply -f` reads it: a file or the files of a
// directory (not recursive; *.yaml, *.yml, *.json in name order), each a stream of YAML documents.
// `kind: List` (and *List kinds, what `kubectl get -o yaml` prints) is flattened into its items.
// Every object keeps where it came from (file, document number, key path inside the document) so a
// finding can point at the line of the field it is about.
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { LineCounter, parseAllDocuments, type Document } from 'yaml';
import { UsageError } from '../../errors.js';

export type Path = (string | number)[];

/** One input object and where it is. */
export interface Origin {
  file: string;
  /** 1-based document number in the file */
  doc: number;
  /** the object's path inside its document ([] or ['items', n]) */
  base: Path;
  /** "Kind namespace/name" for messages */
  what: string;
  /** the object's line and column (1-based) */
  line: number;
  col: number;
  /** line:col of a key path inside the object */
  at(path: Path): { line: number; col: number };
}

export interface InputObject {
  origin: Origin;
  obj: Record<string, unknown>;
}

/** A parsed input file: its documents. */
export interface InputFile {
  file: string;
  text: string;
  docs: { doc: Document; lines: LineCounter; value: unknown; index: number }[];
}

const EXTS = /\.(ya?ml|json)$/i;

/** The files `-f` names: the file itself, or the matching files of a directory in name order. */
export async function inputFiles(path: string): Promise<string[]> {
  let st;
  try {
    st = await stat(path);
  } catch (err) {
    throw new UsageError(`${path} cannot be read`, { cause: err });
  }
  if (!st.isDirectory()) return [path];
  const names = (await readdir(path)).filter((n) => EXTS.test(n)).sort();
  if (names.length === 0) throw new UsageError(`${path}: no *.yaml, *.yml or *.json files in this directory`);
  return names.map((n) => join(path, n));
}

/** Input files larger than this are refused before they are read (a 100 MB manifest aborted the heap). */
export const MAX_INPUT_FILE_BYTES = 32 * 1024 * 1024;
/** All of `-f`'s files together. */
export const MAX_INPUT_TOTAL_BYTES = 64 * 1024 * 1024;
/** Alias uses per document (the yaml library's default, 100: anchors as Kubernetes objects use them stay far below it). */
export const MAX_ALIAS_COUNT = 100;

/**
 * A document's value; an alias bomb (aliases that expand exponentially) is refused with the file
 * and document instead of the yaml library's bare "Excessive alias count" (which exited 70).
 */
export function toJS(doc: Document, where: string): unknown {
  try {
    return doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (err) {
    if (err instanceof ReferenceError && /alias/i.test(err.message)) {
      throw new UsageError(`${where}: YAML aliases expand to more than ${MAX_ALIAS_COUNT} times their size (an alias bomb?): refused; write the values out instead of nesting aliases`, { cause: err });
    }
    throw err;
  }
}

/** Parse one file's documents; a syntax error names file:line:col. */
export function parseFile(file: string, text: string): InputFile {
  const lines = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter: lines, prettyErrors: false });
  if (!Array.isArray(docs)) return { file, text, docs: [] }; // an empty stream
  const out: InputFile['docs'] = [];
  docs.forEach((doc, i) => {
    const syntax = doc.errors[0];
    if (syntax) {
      const pos = lines.linePos(syntax.pos[0]);
      throw new UsageError(`${file}:${pos.line}:${pos.col}: invalid YAML (document ${i + 1}): ${syntax.message.split('\n')[0]}`);
    }
    const value = toJS(doc, `${file} (document ${i + 1})`);
    if (value === null || value === undefined) return; // `---` followed by nothing
    out.push({ doc, lines, value, index: i + 1 });
  });
  return { file, text, docs: out };
}

/** Read and parse every file `-f` names. */
export async function readInput(path: string): Promise<InputFile[]> {
  const out: InputFile[] = [];
  let total = 0;
  for (const file of await inputFiles(path)) {
    let text: string;
    try {
      const size = (await stat(file)).size;
      if (size > MAX_INPUT_FILE_BYTES) throw new UsageError(`${file}: ${mib(size)} is more than the ${mib(MAX_INPUT_FILE_BYTES)} a manifest or state file may have: refused (split it into several files in one directory)`);
      total += size;
      if (total > MAX_INPUT_TOTAL_BYTES) throw new UsageError(`${path}: the files add up to more than ${mib(MAX_INPUT_TOTAL_BYTES)}: refused (sync a smaller set at a time)`);
      text = await readFile(file, 'utf8');
    } catch (err) {
      if (err instanceof UsageError) throw err;
      throw new UsageError(`${file} cannot be read`, { cause: err });
    }
    out.push(parseFile(file, text));
  }
  return out;
}

const mib = (n: number) => `${(n / 1048576).toFixed(n % 1048576 === 0 ? 0 : 1)} MiB`;

function position(doc: Document, lines: LineCounter, path: Path): { line: number; col: number } {
  for (let n = path.length; n >= 0; n--) {
    const node = n === 0 ? doc.contents : doc.getIn(path.slice(0, n), true);
    const range = (node as { range?: [number, number, number] } | null | undefined)?.range;
    if (range) return lines.linePos(range[0]);
  }
  return { line: 1, col: 1 };
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function describe(obj: Record<string, unknown>): string {
  const md = isObject(obj.metadata) ? obj.metadata : {};
  const kind = typeof obj.kind === 'string' ? obj.kind : '(no kind)';
  const name = typeof md.name === 'string' ? md.name : '(no name)';
  return typeof md.namespace === 'string' ? `${kind} ${md.namespace}/${name}` : `${kind} ${name}`;
}

/** Every object of the input, Lists flattened, each with its origin. Non-objects are returned as such for the caller to refuse. */
export function inputObjects(files: InputFile[]): { objects: InputObject[]; notObjects: { origin: Origin; value: unknown }[] } {
  const objects: InputObject[] = [];
  const notObjects: { origin: Origin; value: unknown }[] = [];
  for (const f of files) {
    for (const d of f.docs) {
      const visit = (value: unknown, base: Path) => {
        const pos = position(d.doc, d.lines, base);
        const origin: Origin = {
          file: f.file,
          doc: d.index,
          base,
          what: isObject(value) ? describe(value) : 'document',
          line: pos.line,
          col: pos.col,
          at: (path) => position(d.doc, d.lines, [...base, ...path]),
        };
        if (!isObject(value)) {
          notObjects.push({ origin, value });
          return;
        }
        if (typeof value.kind === 'string' && value.kind.endsWith('List') && Array.isArray(value.items)) {
          value.items.forEach((item, i) => visit(item, [...base, 'items', i]));
          return;
        }
        objects.push({ origin, obj: value });
      };
      visit(d.value, []);
    }
  }
  return { objects, notObjects };
}

/** Whether the input is one prep-node state document: one file, one document, a map without kind or apiVersion. */
export function isStateFormat(files: InputFile[]): boolean {
  if (files.length !== 1 || files[0]!.docs.length > 1) return false;
  const v = files[0]!.docs[0]?.value;
  if (v === undefined) return true; // an empty file: an empty state, as before
  return isObject(v) && !('kind' in v) && !('apiVersion' in v);
}
