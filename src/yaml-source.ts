// One YAML document with the line counter every "file:line:col: key.path: why" message needs, and
// the guards every file an operator hands prep-node goes through: a size limit, strict UTF-8 (a bad
// byte is refused at its offset, never turned into U+FFFD), and an alias limit (a "billion laughs"
// document is refused, not expanded until the heap runs out). Profiles, inventories and datapath
// state files parse through here, so their messages read the same.
import { open } from 'node:fs/promises';
import { LineCounter, parseDocument, visit, type Document } from 'yaml';
import { UsageError } from './errors.js';

export interface YamlSource {
  file: string;
  doc: Document;
  lines: LineCounter;
  /** The document as plain data (doc.toJS(), computed once under the alias limit). */
  value: unknown;
}

/** The largest file read by default: far above any real profile or state file (KiB), far below a heap problem. */
export const MAX_DOCUMENT_BYTES = 4 * 1024 * 1024;
/** How many alias expansions a document may make (the yaml library's default, named here to be cited). */
export const MAX_ALIAS_COUNT = 100;

/** Why a file cannot be read, in words (ENOENT → "no such file"). */
export function readFailure(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  switch (code) {
    case 'ENOENT':
      return 'no such file';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EISDIR':
      return 'is a directory, not a file';
    case 'ENOTDIR':
      return 'a part of the path is not a directory';
    case 'ELOOP':
      return 'too many symbolic links';
    default:
      return code ?? (err instanceof Error ? err.message : String(err));
  }
}

/**
 * Read a text file an operator gave: at most `maxBytes`, valid UTF-8. `name` is how messages name it
 * ("profile file ./mine.yaml"). Every failure is a one-line UsageError with the reason.
 */
export async function readTextFile(file: string, name: string, maxBytes: number = MAX_DOCUMENT_BYTES): Promise<string> {
  let data: Buffer;
  try {
    const handle = await open(file, 'r');
    try {
      const { size } = await handle.stat();
      if (size > maxBytes) throw new UsageError(`${name} is ${size} bytes; prep-node reads at most ${maxBytes} (split it, or check it is the file you meant)`);
      // Read one byte past the limit: a file that grew (or a FIFO, whose size says 0) is refused too.
      const buf = Buffer.alloc(Math.min(maxBytes + 1, Math.max(size, 64 * 1024)));
      let n = 0;
      for (;;) {
        if (n === buf.length) break;
        const { bytesRead } = await handle.read(buf, n, buf.length - n, null);
        if (bytesRead === 0) break;
        n += bytesRead;
      }
      if (n > maxBytes) throw new UsageError(`${name} is more than ${maxBytes} bytes; prep-node reads at most that`);
      data = buf.subarray(0, n);
    } finally {
      await handle.close();
    }
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(`${name} cannot be read: ${readFailure(err)}`, { cause: err });
  }
  return decodeUtf8(data, name);
}

/** Strict UTF-8: the text, or a UsageError naming the byte offset of the first invalid sequence. */
export function decodeUtf8(data: Buffer, name: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(data);
  } catch {
    throw new UsageError(`${name}: invalid UTF-8 at byte offset ${invalidUtf8Offset(data)}; save it as UTF-8`);
  }
}

/** The offset of the first byte that does not start or continue a valid UTF-8 sequence (RFC 3629). */
export function invalidUtf8Offset(data: Buffer): number {
  let i = 0;
  while (i < data.length) {
    const b = data[i]!;
    let need: number;
    let min: number;
    if (b < 0x80) {
      i++;
      continue;
    } else if (b >= 0xc2 && b <= 0xdf) [need, min] = [1, 0x80];
    else if (b >= 0xe0 && b <= 0xef) [need, min] = [2, 0x800];
    else if (b >= 0xf0 && b <= 0xf4) [need, min] = [3, 0x10000];
    else return i;
    let cp = b & (0x3f >> need);
    for (let k = 1; k <= need; k++) {
      const c = data[i + k];
      if (c === undefined || (c & 0xc0) !== 0x80) return i;
      cp = (cp << 6) | (c & 0x3f);
    }
    // overlong forms, UTF-16 surrogates and code points past U+10FFFF are not UTF-8
    if (cp < min || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) return i;
    i += need + 1;
  }
  return data.length;
}

/**
 * Parse one YAML document; a syntax error is a one-line UsageError at its line and column, and a
 * document whose aliases expand past MAX_ALIAS_COUNT is refused at its first alias.
 */
export function parseYamlSource(text: string, file: string, maxBytes: number = MAX_DOCUMENT_BYTES): YamlSource {
  if (text.length > maxBytes) throw new UsageError(`${file}: ${text.length} characters; prep-node reads at most ${maxBytes}`);
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false });
  const syntax = doc.errors[0];
  if (syntax) {
    const pos = lines.linePos(syntax.pos[0]);
    throw new UsageError(`${file}:${pos.line}:${pos.col}: invalid YAML: ${syntax.message.split('\n')[0]}`);
  }
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (err) {
    if (!(err instanceof ReferenceError)) throw err;
    // The yaml library throws ReferenceError for an alias with no anchor and for too many expansions.
    const unresolved = /^Unresolved alias.*: (.*)$/.exec(err.message)?.[1];
    let at = 0;
    visit(doc, {
      Alias(_key, node) {
        if (unresolved !== undefined && node.source !== unresolved) return undefined;
        at = node.range?.[0] ?? 0;
        return visit.BREAK;
      },
    });
    const pos = lines.linePos(at);
    if (unresolved !== undefined) throw new UsageError(`${file}:${pos.line}:${pos.col}: alias *${unresolved} has no anchor &${unresolved} before it`);
    throw new UsageError(
      `${file}:${pos.line}:${pos.col}: YAML aliases expand too far (more than ${MAX_ALIAS_COUNT} copies of one anchor): ` +
        `write the values out, or check the file is the one you meant`,
    );
  }
  return { file, doc, lines, value };
}
