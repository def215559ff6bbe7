// Issue 17 item 4: a YAML alias bomb (each anchor aliasing the one before it nine times: 9^9 values
// from a few hundred bytes) in a manifest or a datapath state file is refused with the file (and
// document) and one line, not the yaml library's bare "Excessive alias count" (which exited 70).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadDesired } from '../../src/datapath/k8s/index.js';
import { parseState } from '../../src/datapath/state.js';
import { ExitCode, UsageError } from '../../src/errors.js';

const BOMB = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]', ...'bcdefghi'.split('').map((c, i) => `${c}: &${c} [${Array(9).fill(`*${'abcdefgh'[i]}`).join(',')}]`)].join('\n');

function usage(err: unknown, re: RegExp): true {
  assert.ok(err instanceof UsageError, String(err));
  assert.equal(err.exitCode, ExitCode.usage);
  assert.match(err.message, re);
  assert.doesNotMatch(err.message, /\n/);
  return true;
}

test('a manifest with an alias bomb in its second document: refused with file and document', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pn-bomb-'));
  try {
    const file = join(dir, 'bomb.yaml');
    writeFileSync(file, `apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: lol, namespace: a}\ndata:\n  ${BOMB.replace(/\n/g, '\n  ')}\n`);
    await assert.rejects(loadDesired(file), (e) => usage(e, new RegExp(`^${file} \\(document 2\\): YAML aliases expand to more than 100 times their size \\(an alias bomb\\?\\): refused`)));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a datapath state file with an alias bomb: refused with the file', () => {
  assert.throws(() => parseState(`${BOMB}\nservices: []\n`, 'state.yaml'), (e) => usage(e, /^state\.yaml(:\d+:\d+)?: YAML aliases expand/));
});

test('ordinary anchors and aliases (a few, as manifests use them) still read', () => {
  const st = parseState('endpoints:\n  - {name: a, ip: 10.0.0.1, labels: &l {app: web}}\n  - {name: b, ip: 10.0.0.2, labels: *l}\n', 'ok.yaml');
  assert.equal(st.endpoints.length, 2);
  assert.deepEqual(st.endpoints[1]!.labels, { app: 'web' });
});
