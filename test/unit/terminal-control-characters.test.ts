// Control characters from outside (a node's output, a file's values) never reach the terminal raw:
// an OSC title sequence and a clear-screen in an observed value, a target or an error line are
// written as \u{…}, in the report and in prep-node's one-line errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderHost } from '../../src/report/table.js';
import { printable } from '../../src/errors.js';

const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url));
const EVIL = '\x1b]0;owned\x07\x1b[2J\x9b31m\u202e';
// eslint-disable-next-line no-control-regex
const RAW = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u202e]/;

test('printable writes C0, C1, DEL and bidi characters as \\u{…} and keeps tabs and text', () => {
  assert.equal(printable(`a\tb${EVIL}c`), 'a\tb\\u{001b}]0;owned\\u{0007}\\u{001b}[2J\\u{009b}31m\\u{202e}c');
  assert.equal(printable('café – 1 500'), 'café – 1 500');
});

test('the report prints an escape sequence in an observed value, a remedy and an error as text', () => {
  const ok = renderHost(
    { target: `n${EVIL}`, profile: 'p', checks: [{ id: 'net.mtu', title: 'MTU', status: 'fail', observed: `eth0${EVIL}`, expected: 'x', detail: EVIL, remedy: EVIL, ignored: false }] },
    { color: false },
  );
  assert.doesNotMatch(ok, RAW);
  assert.match(ok, /eth0\\u\{001b\}\]0;owned/);
  const down = renderHost({ target: 'n1', profile: 'p', checks: [], error: { kind: 'refused', message: `n1: ${EVIL}` } }, { color: false });
  assert.doesNotMatch(down, RAW);
});

test("prep-node's error line prints a control character from a file as text", () => {
  const dir = mkdtempSync(join(tmpdir(), 'pn-ctl-'));
  try {
    const file = join(dir, 'p.yaml');
    writeFileSync(file, `name: x\ndescription: d\nkernel: {min: "5.10", recommended: "5.15"}\n"k${EVIL}": 1\n`);
    const r = spawnSync(process.execPath, [CLI, 'profiles', 'show', file], { encoding: 'utf8' });
    assert.equal(r.status, 2, r.stderr);
    assert.doesNotMatch(r.stderr, RAW);
    assert.match(r.stderr, /unknown key/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
