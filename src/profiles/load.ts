// Profiles: built-in ones by name from profiles/*.yaml, or a user's file by path. A bad profile is
// rejected before anything touches a node, naming the file, line and column, key path and what was expected.
import { readFile, readdir } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LineCounter, parseDocument } from 'yaml';
import { UsageError } from '../errors.js';
import { ProfileSchema, type Profile } from './schema.js';

/** The directory holding the built-in profiles (dist/src/profiles → repo root/profiles). */
export const BUILTIN_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../../../profiles');
export const DEFAULT_PROFILE = 'k8s-worker';

/** Names of the built-in profiles. */
export async function builtinProfiles(): Promise<string[]> {
  return (await readdir(BUILTIN_DIR)).filter((f) => f.endsWith('.yaml')).map((f) => f.slice(0, -5)).sort();
}

/** Load a profile by built-in name or by path (anything with a slash or ending in .yaml/.yml). */
export async function loadProfile(nameOrPath: string = DEFAULT_PROFILE): Promise<Profile> {
  const isPath = nameOrPath.includes('/') || /\.ya?ml$/.test(nameOrPath);
  const file = isPath ? resolve(nameOrPath) : join(BUILTIN_DIR, `${nameOrPath}.yaml`);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    if (isPath) throw new UsageError(`profile file ${nameOrPath} cannot be read`);
    throw new UsageError(`no built-in profile "${nameOrPath}" (built-in: ${(await builtinProfiles()).join(', ')}; or pass a file path)`);
  }
  return parseProfile(text, isPath ? nameOrPath : `profiles/${nameOrPath}.yaml`);
}

/** Parse and validate profile YAML; errors are `file:line:col: key.path: what was expected`. */
export function parseProfile(text: string, file: string): Profile {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false });
  const syntax = doc.errors[0];
  if (syntax) {
    const pos = lines.linePos(syntax.pos[0]);
    throw new UsageError(`${file}:${pos.line}:${pos.col}: invalid YAML: ${syntax.message.split('\n')[0]}`);
  }
  const result = ProfileSchema.safeParse(doc.toJS());
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  // Point at the deepest node of the path that exists in the document.
  let node: unknown;
  for (let n = issue.path.length; n >= 0 && !node; n--) node = doc.getIn(issue.path.slice(0, n) as (string | number)[], true);
  const range = (node as { range?: [number, number, number] } | undefined)?.range;
  const pos = range ? lines.linePos(range[0]) : { line: 1, col: 1 };
  const keyPath = issue.path.map((k) => (typeof k === 'string' && /^[A-Za-z_][\w-]*$/.test(k) ? k : JSON.stringify(k))).join('.');
  throw new UsageError(`${file}:${pos.line}:${pos.col}: ${keyPath || '(top level)'}: ${issue.message}`);
}
