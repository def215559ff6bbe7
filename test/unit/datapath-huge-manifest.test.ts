// Issue 17 item 4: a 100 MB manifest aborted the heap; files above 32 MiB (and -f sets above 64 MiB
// together) are refused before they are read, with the file, its size and what to do. The test file
// is sparse (truncate): 100 MB on paper, nothing on disk.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadDesired } from '../../src/datapath/k8s/index.js';
import { loadState } from '../../src/datapath/state.js';
import { ExitCode, UsageError } from '../../src/errors.js';

function refused(re: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof UsageError, String(e));
    assert.equal(e.exitCode, ExitCode.usage);
    assert.match(e.message, re);
    return true;
  };
}

test('a 100 MB manifest is refused before it is read', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pn-huge-'));
  try {
    const file = join(dir, 'huge.yaml');
    writeFileSync(file, '');
    truncateSync(file, 100 * 1000 * 1000);
    await assert.rejects(loadDesired(file), refused(new RegExp(`^${file}: 95\\.4 MiB is more than the 32 MiB a manifest or state file may have: refused \\(split it`)));
    await assert.rejects(loadState(file), refused(/is larger than 32 MiB: refused/));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a directory of files that together pass 64 MiB is refused', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pn-huge-'));
  try {
    for (const n of ['a', 'b', 'c']) {
      writeFileSync(join(dir, `${n}.yaml`), '');
      truncateSync(join(dir, `${n}.yaml`), 30 * 1024 * 1024);
    }
    await assert.rejects(loadDesired(dir), refused(new RegExp(`^${dir}: the files add up to more than 64 MiB: refused`)));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a state whose backends add up to more slots than one state holds is refused in one line (exit 2) before it is compiled', async () => {
  // 4 MiB of YAML could ask for 42k services of weight 1000: 42M map entries, which aborted the
  // compiler's heap (exit 134). The bound: MAX_STATE_SLOTS (2^21) slots over all services.
  const { parseState } = await import('../../src/datapath/state.js');
  const { MAX_STATE_SLOTS } = await import('../../src/datapath/schema.js');
  const yaml = (n: number) => `services:\n${Array.from({ length: n }, (_, i) => `- {name: s${i}, vip: 10.96.${i >> 8}.${i & 255}, port: 80, protocol: tcp, backends: [{ip: 10.200.0.1, port: 1, weight: 1000}]}\n`).join('')}`;
  const over = Math.floor(MAX_STATE_SLOTS / 1000) + 1;
  assert.throws(() => parseState(yaml(over), 'big.yaml'), refused(new RegExp(`^big\\.yaml:2:1: services: the services' backends add up to ${over * 1000} slots .* at most ${MAX_STATE_SLOTS}: lower the weights or split the services$`)));
  assert.equal(parseState(yaml(over - 1), 'big.yaml').services.length, over - 1, 'one service fewer is taken');
});
