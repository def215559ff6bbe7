// The layering the README's layout describes, read from the source: probes read the node for
// checks, tuners, cloud-init and the datapath; nothing below the checks imports them; no import circle.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const SRC = fileURLToPath(new URL('../../../src/', import.meta.url));

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
}

/** file (relative to src/) → the src files it imports, type-only imports included. */
function graph(): Map<string, string[]> {
  const g = new Map<string, string[]>();
  for (const f of sources(SRC)) {
    const text = readFileSync(f, 'utf8');
    const deps = [...text.matchAll(/^(?:import|export)\s[^;]*?from\s+'(\.[^']+)'/gms)].map((m) => relative(SRC, normalize(join(dirname(f), m[1]!.replace(/\.js$/, '.ts')))));
    g.set(relative(SRC, f), deps);
  }
  return g;
}

test('no import circle in src/ (type-only imports counted too)', () => {
  const g = graph();
  const state = new Map<string, 'open' | 'done'>();
  const circles: string[] = [];
  const visit = (f: string, path: string[]) => {
    state.set(f, 'open');
    for (const d of g.get(f) ?? []) {
      if (state.get(d) === 'open') circles.push([...path.slice(path.indexOf(d)), d].join(' → '));
      else if (!state.has(d)) visit(d, [...path, d]);
    }
    state.set(f, 'done');
  };
  for (const f of g.keys()) if (!state.has(f)) visit(f, [f]);
  assert.deepEqual(circles, []);
});

test('tuners, cloud-init, profiles and the datapath read the node through src/probes, never through src/checks', () => {
  const g = graph();
  const offenders = [...g].filter(([f]) => /^(tuners|cloudinit|profiles|datapath|probes)\//.test(f)).flatMap(([f, deps]) => deps.filter((d) => d.startsWith('checks/')).map((d) => `${f} imports ${d}`));
  assert.deepEqual(offenders, []);
});
