// BatchingHost: commands started together travel as one script, and each comes back exactly as it
// would alone (stdout bytes, stderr, exit code, stdin, sudo failures, timeouts). Runs on this machine
// through LocalHost, the same sh a node runs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LocalHost } from '../../src/host/local.js';
import { BatchingHost, batchScript, parseBatch } from '../../src/host/batch.js';
import type { RunOptions, RunResult } from '../../src/host/host.js';

class Counting extends LocalHost {
  calls = 0;
  override run(command: string, options?: RunOptions): Promise<RunResult> {
    this.calls++;
    return super.run(command, options);
  }
}

const CASES: [string, RunOptions?][] = [
  ['printf "a\\nb\\n\\n\\n"'],
  ['printf "no newline"'],
  ['echo "@@@prep-node-batch 0 rc 0"; echo "@@ x"'],
  ['echo out; echo err >&2; exit 3'],
  ['cat', { stdin: 'line one\nline \'two\' $(x)\n\u00e9\u20ac' }],
  ['cat', { stdin: Buffer.alloc(70_000, 'z') }],
  ['read x; echo "[$x]"'],
  ['exit 0'],
  ['sleep 5', { timeoutMs: 300 }],
];

test('commands started together take one round trip and give what each gives alone', async () => {
  const alone = new LocalHost();
  const expected = await Promise.all(CASES.map(([c, o]) => alone.run(c, o)));
  const inner = new Counting();
  const host = new BatchingHost(inner);
  const got = await Promise.all(CASES.map(([c, o]) => host.run(c, o)));
  assert.equal(inner.calls, 1);
  assert.equal(host.roundTrips, 1);
  for (let i = 0; i < CASES.length; i++) {
    assert.deepEqual(got[i], expected[i], CASES[i]![0]);
  }
  assert.equal(got.at(-1)!.timedOut, true);
});

test('sequential commands each take their own round trip; exec still throws on failure', async () => {
  const inner = new Counting();
  const host = new BatchingHost(inner);
  assert.equal(await host.exec('echo one'), 'one\n');
  await assert.rejects(host.exec('echo bad >&2; exit 2'), /exit(ed with)? (code )?2|bad/);
  assert.equal(inner.calls, 2);
});

test('a script cut short leaves the unfinished commands with no exit code, not with made-up output', () => {
  const script = batchScript([{ command: 'echo a' }, { command: 'echo b' }]);
  assert.match(script, /base64/);
  const full = '@@@prep-node-batch 0 out\nYQo=\n@@@prep-node-batch 0 err\n@@@prep-node-batch 0 rc 0\n@@@prep-node-batch 1 out\nYgo=\n';
  const { results, noBase64 } = parseBatch(full);
  assert.equal(noBase64, false);
  assert.deepEqual(results.get(0), { stdout: 'a\n', stderr: '', code: 0, timedOut: false });
  assert.equal(results.has(1), false);
  assert.equal(parseBatch('@@@prep-node-batch no-base64\n').noBase64, true);
});
