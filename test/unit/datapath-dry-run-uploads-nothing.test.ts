// Issue 17 item 6: `datapath sync --dry-run` writes nothing to the node, the loader binary included;
// and the names index (every pod, label, policy and the local -f path) is written root-only. A host
// that records every command and answers each with success and no output (so the node "has no
// loader"); any upload would show as a write command.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BaseHost, type SpawnOptions } from '../../src/host/base.js';
import type { RunOptions, RunResult } from '../../src/host/host.js';
import { syncState } from '../../src/datapath/index.js';
import { writeNames, NAMES_PATH, type NamesIndex } from '../../src/datapath/observe.js';
import { ExitCode, PrepNodeError } from '../../src/errors.js';

class RecordingHost extends BaseHost {
  readonly name = 'rec';
  readonly user = 'root';
  readonly commands: { command: string; stdin: boolean }[] = [];
  override run(command: string, options: RunOptions = {}): Promise<RunResult> {
    this.commands.push({ command, stdin: options.stdin !== undefined });
    return Promise.resolve({ stdout: '', stderr: '', code: 0, timedOut: false });
  }
  protected spawn(_c: string, _o: SpawnOptions): Promise<RunResult> {
    throw new Error('not used');
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

const state = { services: [], endpoints: [], policies: [] } as unknown as Parameters<typeof syncState>[1];

test('sync --dry-run on a node without this loader: refused with a clear line, nothing uploaded or written', async () => {
  const host = new RecordingHost();
  const err = await syncState(host, state, { dryRun: true }).then(
    () => assert.fail('planned without reading the maps'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof PrepNodeError);
  assert.equal(err.exitCode, ExitCode.refused);
  assert.match(err.message, /^rec: datapath sync --dry-run: this prep-node's loader is not on the node, and a dry run uploads nothing/);
  assert.equal(host.commands.length, 1, host.commands.map((c) => c.command).join('\n'));
  assert.equal(host.commands[0]!.stdin, false, 'no file content sent');
  assert.doesNotMatch(host.commands[0]!.command, /mkdir|mktemp|cat >|mv /);
});

test('sync --dry-run --full touches the node not at all', async () => {
  const host = new RecordingHost();
  const r = await syncState(host, state, { dryRun: true, full: true });
  assert.equal(r.applied, null);
  assert.deepEqual(host.commands, []);
});

test('the names index is written root-only (0600)', async () => {
  const host = new RecordingHost();
  await writeNames(host, { version: 1 } as unknown as NamesIndex);
  const write = host.commands.find((c) => c.stdin);
  assert.ok(write, 'the index was written');
  assert.match(write.command, /chmod 600 "\$t"; mv -f -- "\$t" /);
  assert.ok(write.command.endsWith(`'${NAMES_PATH}'; trap - EXIT`) || write.command.includes(NAMES_PATH));
});
