// Profiles: built-in ones by name from profiles/*.yaml, or a user's file by path. A profile may
// `extends:` another (a built-in name, or a path relative to its own file): maps merge key by key,
// lists and values are replaced, as tuned's include= and Ansible's combine() do. A bad profile is
// rejected before anything touches a node, naming the file, line and column, key path and what was expected.
import { readdir } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isMap as isYamlMap, isScalar, type Document } from 'yaml';
import { parseYamlSource, readTextFile, type YamlSource } from '../yaml-source.js';
import { UsageError } from '../errors.js';
import { ProfileSchema, type Profile } from './schema.js';

/** The directory holding the built-in profiles (dist/src/profiles → repo root/profiles). */
export const BUILTIN_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../../../profiles');
export const DEFAULT_PROFILE = 'k8s-worker';
/** A profile is a few KiB; anything past this is not one. */
const MAX_PROFILE_BYTES = 1024 * 1024;

/** Names of the built-in profiles. */
export async function builtinProfiles(): Promise<string[]> {
  return (await readdir(BUILTIN_DIR)).filter((f) => f.endsWith('.yaml')).map((f) => f.slice(0, -5)).sort();
}

/** One file of an extends chain, kept to point errors at the line that caused them. */
type Source = YamlSource;

type Raw = Record<string, unknown>;

/** Load a profile by built-in name or by path (anything with a slash or ending in .yaml/.yml), extends resolved. */
export async function loadProfile(nameOrPath: string = DEFAULT_PROFILE): Promise<Profile> {
  const sources: Source[] = [];
  const raw = await readChain(nameOrPath, process.cwd(), sources);
  return validate(raw, sources);
}

/** Parse and validate one profile document that extends nothing (fixtures, tests). */
export function parseProfile(text: string, file: string): Profile {
  const source = parseSource(text, file);
  const raw = source.value;
  if (isMap(raw) && 'extends' in raw) throw new UsageError(`${file}: extends needs the profile loaded from a file`);
  return validate(raw, [source]);
}

function isPathSpec(spec: string): boolean {
  return spec.includes('/') || /\.ya?ml$/.test(spec);
}

/** Read a profile and what it extends, child first into `sources`; returns the merged raw object. */
async function readChain(spec: string, fromDir: string, sources: Source[]): Promise<unknown> {
  const isPath = isPathSpec(spec);
  const file = isPath ? resolve(fromDir, spec) : join(BUILTIN_DIR, `${spec}.yaml`);
  const shown = isPath ? spec : `profiles/${spec}.yaml`;
  if (sources.some((s) => resolve(s.file) === file || s.file === shown)) {
    throw new UsageError(`profile extends itself: ${[...sources.map((s) => s.file), shown].join(' → ')}`);
  }
  const from = sources.at(-1);
  const where = from ? `${from.file}: extends: ` : '';
  if (!isPath && !(await builtinProfiles()).includes(spec)) {
    throw new UsageError(`${where}no built-in profile "${spec}" (built-in: ${(await builtinProfiles()).join(', ')}; or pass a file path)`);
  }
  let text: string;
  try {
    text = await readTextFile(file, `profile file ${isPath ? spec : shown}`, MAX_PROFILE_BYTES);
  } catch (err) {
    if (err instanceof UsageError && where) throw new UsageError(`${where}${err.message}`, { cause: err });
    throw err;
  }
  const source = parseSource(text, isPath ? (sources.length === 0 ? spec : file) : shown);
  sources.push(source);
  const raw = source.value;
  if (!isMap(raw) || raw.extends === undefined) return raw;
  const { extends: parent, ...own } = raw;
  if (typeof parent !== 'string') throw located(source, ['extends'], 'expected a profile name or file path');
  return merge(await readChain(parent, dirname(file), sources), own);
}

function parseSource(text: string, file: string): Source {
  const source = parseYamlSource(text, file, MAX_PROFILE_BYTES);
  if (source.value === null || source.value === undefined) {
    throw new UsageError(`${file}: the profile is empty; it needs at least name, description and kernel (see prep-node profiles show k8s-worker)`);
  }
  return source;
}

/** Maps merge key by key (the child wins); anything else in the child replaces the parent's. */
function merge(parent: unknown, child: unknown): unknown {
  if (!isMap(parent) || !isMap(child)) return child;
  const out: Raw = { ...parent };
  for (const [k, v] of Object.entries(child)) out[k] = k in parent ? merge(parent[k], v) : v;
  return out;
}

function isMap(v: unknown): v is Raw {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function validate(raw: unknown, sources: Source[]): Profile {
  const result = ProfileSchema.safeParse(raw);
  if (result.success) return result.data;
  // An unknown key first: it is usually a typo of the key another issue finds missing.
  const issue = result.error.issues.find((i) => i.code === 'unrecognized_keys') ?? result.error.issues[0]!;
  const path = issue.path.filter((k): k is string | number => typeof k !== 'symbol');
  if (issue.code === 'unrecognized_keys') {
    const key = issue.keys[0]!;
    const source = sources.find((s) => keyNode(s.doc, path, key)) ?? sources[0]!;
    throw located(source, [...path, key], 'unknown key (a typo? `prep-node profiles show k8s-worker` lists every key)', path.length + 1, keyNode(source.doc, path, key));
  }
  // The file (child first) that defines the deepest part of the path is where the fix goes.
  for (let n = path.length; n >= 0; n--) {
    const source = sources.find((s) => s.doc.getIn(path.slice(0, n), true));
    if (source) throw located(source, path, issue.message, n);
  }
  throw located(sources[0]!, path, issue.message, 0);
}

/** The key node (not its value) of `key` in the map at `path`: where an unknown key is written. */
function keyNode(doc: Document, path: (string | number)[], key: string): unknown {
  const parent = path.length > 0 ? doc.getIn(path, true) : doc.contents;
  if (!isYamlMap(parent)) return undefined;
  return parent.items.find((pair) => isScalar(pair.key) && pair.key.value === key)?.key;
}

function located(source: Source, path: (string | number)[], message: string, depth = path.length, at?: unknown): UsageError {
  const node = at ?? (depth > 0 ? source.doc.getIn(path.slice(0, depth), true) : source.doc.contents);
  const range = (node as { range?: [number, number, number] } | null | undefined)?.range;
  const pos = range ? source.lines.linePos(range[0]) : { line: 1, col: 1 };
  const keyPath = path.map((k) => (typeof k === 'string' && /^[A-Za-z_][\w-]*$/.test(k) ? k : JSON.stringify(k))).join('.');
  return new UsageError(`${source.file}:${pos.line}:${pos.col}: ${keyPath || '(top level)'}: ${message}`);
}
