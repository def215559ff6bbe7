// The kernel matrix's judge (test/helpers/kernel-scenario.ts) on step blocks: what a failure says.
// The passing case runs for real in test/kernel/kernel-matrix.test.ts; here, what it reports when a
// kernel's verifier refuses a program, and that a scenario cut short is not a pass.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseBlocks } from '../../src/datapath/selftest-script.js';
import { judgeKernel, kernelScenario } from '../helpers/kernel-scenario.js';

const block = (name: string, rc: number, stdout: string, stderr = '') =>
  `::step ${name} ${rc} 12\n${stdout}\n${stderr ? `::stderr\n${stderr}\n` : ''}::end\n`;

describe('kernel matrix judge', () => {
  it('a refused program fails naming the step, the loader error and the verifier\'s last lines', () => {
    const install = JSON.stringify({
      error: 'loading tc_lb: Permission denied: R2 invalid mem access \'scalar\'',
      code: 'load-failed',
      verifier_log: ['0: (bf) r6 = r1', '17: (61) r2 = *(u32 *)(r2 +0)', 'R2 invalid mem access \'scalar\''],
    });
    const out = block('topology', 0, '{"listening":"0.0.0.0:8080"}') + block('sock.install', 4, install);
    const row = judgeKernel(parseBlocks(out));
    const msg = row.failures.find((f) => f.startsWith('sock.install'));
    assert.ok(msg, row.failures.join('\n'));
    assert.match(msg, /exit 4: loading tc_lb: Permission denied/);
    assert.match(msg, /verifier: .*R2 invalid mem access 'scalar'/);
    // every later step is reported as not run: nothing passes by being absent
    assert.ok(row.failures.includes('tc.tcp: did not run'));
    assert.ok(row.failures.includes('sock.no-backend: did not run'));
  });

  it('no output at all is a list of failures, not a pass', () => {
    assert.ok(judgeKernel([]).failures.length > 10);
  });

  it('the scenario is POSIX sh that feeds the compiler\'s map entries to apply', () => {
    const s = kernelScenario();
    assert.match(s, /^#!\/bin\/sh\n/);
    assert.match(s, /"\$DP" apply <<'PNST_APPLY'\nput /);
    assert.match(s, /run_step sock\.no-backend /);
  });
});
