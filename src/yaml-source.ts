// One YAML document with the line counter every "file:line:col: key.path: why" message needs.
// Profiles and datapath state files both parse through here, so syntax errors read the same.
import { LineCounter, parseDocument, type Document } from 'yaml';
import { UsageError } from './errors.js';

export interface YamlSource {
  file: string;
  doc: Document;
  lines: LineCounter;
}

/** Parse one YAML document; a syntax error is a one-line UsageError at its line and column. */
export function parseYamlSource(text: string, file: string): YamlSource {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false });
  const syntax = doc.errors[0];
  if (syntax) {
    const pos = lines.linePos(syntax.pos[0]);
    throw new UsageError(`${file}:${pos.line}:${pos.col}: invalid YAML: ${syntax.message.split('\n')[0]}`);
  }
  return { file, doc, lines };
}
