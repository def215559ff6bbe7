// Apply's write script (src/tuners/steps.ts), run by a real sh: steps run in order with their own
// stdin, the script stops at the first step that fails, and the error names that step.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApplyError, ExitCode } from '../../../src/errors.js';
import { LocalHost } from '../../../src/host/local.js';
import { parseSteps, runSteps, stepsScript, type Step } from '../../../src/tuners/steps.js';

function inDir(fn: (dir: string) => Promise<void> | void) {
  return async () => {
    const dir = mkdtempSync(join(tmpdir(), 'prep-node-steps-'));
    try {
      await fn(dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}

test(
  'steps run in order, each with its own stdin (bytes exact, a line that looks like the here-document end included)',
  inDir((dir) => {
    const payload = Buffer.from([0, 1, 2, 255, 10, 0x50, 0x52, 0x45, 10]);
    const steps: Step[] = [
      { label: 'one', script: `printf one > ${dir}/a` },
      { label: 'two', script: `cat > ${dir}/b`, stdin: payload },
      { label: 'three', script: `cat > ${dir}/c`, stdin: 'PREP_NODE_STEP_EOF\n' + 'x'.repeat(200_000) },
      { label: 'four', script: `echo noise; cat ${dir}/a >> ${dir}/a2` },
    ];
    const r = spawnSync('sh', ['-s'], { input: stepsScript(steps) });
    assert.equal(r.status, 0, r.stderr.toString());
    assert.deepEqual(parseSteps(r.stdout.toString()), { done: 4, ended: true });
    assert.equal(readFileSync(join(dir, 'a'), 'utf8'), 'one');
    assert.deepEqual(readFileSync(join(dir, 'b')), payload);
    assert.equal(readFileSync(join(dir, 'c'), 'utf8'), 'PREP_NODE_STEP_EOF\n' + 'x'.repeat(200_000));
    assert.equal(readFileSync(join(dir, 'a2'), 'utf8'), 'one');
  }),
);

test(
  'the script stops at the first failing step (a failing command inside a step fails it: sh -e) and nothing after it runs',
  inDir((dir) => {
    const steps: Step[] = [
      { label: 'journal', script: `touch ${dir}/journal` },
      { label: 'sysctl: files', script: `false\ntouch ${dir}/after-false` },
      { label: 'sysctl: running values', script: `touch ${dir}/values` },
    ];
    const r = spawnSync('sh', ['-s'], { input: stepsScript(steps) });
    assert.notEqual(r.status, 0);
    assert.deepEqual(parseSteps(r.stdout.toString()), { done: 1, failed: { index: 1, code: '1' }, ended: false });
    assert.ok(existsSync(join(dir, 'journal')));
    assert.ok(!existsSync(join(dir, 'after-false')), 'sh -e stopped the step at its failing command');
    assert.ok(!existsSync(join(dir, 'values')), 'no step after the failed one ran');
  }),
);

test(
  'runSteps: one command on the host; a failure is an ApplyError (exit 8) naming the step, what ran before it, and the step’s last stderr line',
  inDir(async (dir) => {
    const host = new LocalHost();
    let commands = 0;
    const run = host.run.bind(host);
    host.run = (command, options) => {
      commands++;
      return run(command, { ...options, sudo: false });
    };
    await runSteps(host, [
      { label: 'journal', script: `touch ${dir}/j` },
      { label: 'files', script: `touch ${dir}/f` },
    ]);
    assert.equal(commands, 1);
    await assert.rejects(
      runSteps(host, [
        { label: 'journal', script: `touch ${dir}/j2` },
        { label: 'sysctl: running values', script: `echo 'sysctl: permission denied on key "x"' >&2; exit 3` },
        { label: 'never', script: `touch ${dir}/never` },
      ]),
      (err: unknown) => {
        assert.ok(err instanceof ApplyError);
        assert.equal(err.exitCode, ExitCode.applyFailed);
        assert.match(err.message, /apply step 2 of 3 \(sysctl: running values\) failed: exit 3 \(sysctl: permission denied on key "x"\); done before it: journal \(prep-node rollback undoes them\)$/);
        return true;
      },
    );
    assert.ok(!existsSync(join(dir, 'never')));
    assert.equal(commands, 2);
  }),
);
