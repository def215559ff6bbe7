// The desired datapath state from a YAML file: parsed with positions kept, validated with the zod
// schema, and a bad file rejected before anything touches a node with file:line:col, the key path
// and what was expected (the same form as the profile loader's messages).
import { readFile, stat } from 'node:fs/promises';
import { isMap, isScalar, type LineCounter, type Document } from 'yaml';
import { parseYamlSource } from '../yaml-source.js';
import { UsageError } from '../errors.js';
import { DatapathStateSchema, type DatapathState } from './schema.js';
import { MAX_INPUT_FILE_BYTES, toJS } from './k8s/manifests.js';

export type { DatapathState } from './schema.js';

/** Read and validate a desired-state file. */
export async function loadState(path: string): Promise<DatapathState> {
  let text: string;
  try {
    if ((await stat(path)).size > MAX_INPUT_FILE_BYTES) throw new UsageError(`datapath state file ${path} is larger than ${MAX_INPUT_FILE_BYTES / 1048576} MiB: refused`);
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(`datapath state file ${path} cannot be read`, { cause: err });
  }
  return parseState(text, path);
}

/** Parse and validate desired-state YAML; `file` names it in messages. An empty document is an empty state. */
export function parseState(text: string, file: string): DatapathState {
  const { doc, lines } = parseYamlSource(text, file);
  const result = DatapathStateSchema.safeParse(toJS(doc, file) ?? {});
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const path = issue.path.filter((k): k is string | number => typeof k !== 'symbol');
  // an unknown key: point at the key itself, a typo is easier to see there
  if (issue.code === 'unrecognized_keys') throw located(file, doc, lines, [...path, issue.keys[0]!], 'unknown key', true);
  throw located(file, doc, lines, path, issue.message);
}

/** The key node (not the value) of the last element of path, in the map the rest of path names. */
function keyNode(doc: Document, path: (string | number)[]): unknown {
  const parent = path.length > 1 ? doc.getIn(path.slice(0, -1), true) : doc.contents;
  if (!isMap(parent)) return undefined;
  return parent.items.find((pair) => isScalar(pair.key) && pair.key.value === path.at(-1))?.key;
}

/** The error at the deepest node of `path` the document has (a missing key points at its parent). */
function located(file: string, doc: Document, lines: LineCounter, path: (string | number)[], message: string, atKey = false): UsageError {
  let node: unknown = doc.contents;
  for (let n = path.length; n > 0; n--) {
    const found = atKey && n === path.length ? keyNode(doc, path) : doc.getIn(path.slice(0, n), true);
    if (found) {
      node = found;
      break;
    }
  }
  const range = (node as { range?: [number, number, number] } | null | undefined)?.range;
  const pos = range ? lines.linePos(range[0]) : { line: 1, col: 1 };
  const keyPath = path.map((k) => (typeof k === 'string' && /^[A-Za-z_][\w-]*$/.test(k) ? k : JSON.stringify(k))).join('.');
  return new UsageError(`${file}:${pos.line}:${pos.col}: ${keyPath || '(top level)'}: ${message}`);
}
