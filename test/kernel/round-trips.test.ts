// Round trips counted against a real sshd (issue 11 item 6): check reads a node in at most 2 SSH
// session channels, apply in at most 6, rollback in at most 4 (apply --dry-run and rollback --dry-run
// within the same budgets). sshd runs at LogLevel DEBUG1 and logs every channel it opens; the runs
// happen in private mount and network namespaces (test/helpers/round-trips-sandbox.ts) so apply and
// rollback change only namespace sysctls and private copies of /etc and /var/lib. Needs root.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { K8S_WORKER_PART, type Counted } from '../helpers/round-trips-sandbox.js';
import { loadProfile, parseProfile } from '../../src/profiles/load.js';

const SANDBOX = fileURLToPath(new URL('../helpers/round-trips-sandbox.js', import.meta.url));

const BASE: Record<string, number> = { check: 2, 'apply --dry-run': 6, apply: 6, 'rollback --dry-run': 4, rollback: 4 };
// The same budgets for the parts of profiles/k8s-worker.yaml the sandbox can apply (its sysctls
// that are per network namespace, and bpffs; K8S_WORKER_PART says what is left out and why).
const K8S = 'k8s-worker part: ';
const BUDGET: Record<string, number> = { ...BASE, ...Object.fromEntries(Object.entries(BASE).map(([c, n]) => [`${K8S}${c}`, n])) };

let runs: Counted[] = [];
let table = '';

before(() => {
  const r = spawnSync('unshare', ['--mount', '--net', process.execPath, SANDBOX], { encoding: 'utf8', timeout: 300_000 });
  assert.equal(r.status, 0, `the sandbox failed: ${r.stderr}`);
  runs = JSON.parse(r.stdout.trim().split('\n').pop()!) as Counted[];
  table = runs.map((x) => `${x.command}: ${x.sessions} session channels, ${x.ms} ms, exit ${x.exit}`).join('\n');
  process.stdout.write(`# ${table.replace(/\n/g, '\n# ')}\n`);
});

test('every command ran against the real sshd and did its work', () => {
  assert.deepEqual(runs.map((x) => x.command), Object.keys(BUDGET));
  for (const x of runs) {
    // check exits 0 or 1 (findings on this machine); the others must succeed.
    assert.ok(x.command.endsWith('check') ? x.exit === 0 || x.exit === 1 : x.exit === 0, `${x.command} exited ${x.exit}:\n${x.output}\nsshd logged:\n${x.sshdLog}`);
    assert.ok(x.sessions >= 1, `${x.command}: sshd logged no session channel (is LogLevel DEBUG1 in effect?)\n${table}`);
  }
  for (const p of ['', K8S]) {
    assert.match(runs.find((x) => x.command === `${p}apply`)!.output, /applied and verified/, `${p}apply changed something (the budget is for a real apply)`);
    assert.match(runs.find((x) => x.command === `${p}rollback`)!.output, /verified: every file is byte for byte as before/);
  }
});

test("the k8s-worker part carries k8s-worker's own values", async () => {
  const whole = await loadProfile('k8s-worker');
  const part = parseProfile(K8S_WORKER_PART, 'k8s-worker-part.yaml');
  assert.ok(Object.keys(part.sysctl).length >= 5);
  for (const [key, value] of Object.entries(part.sysctl)) assert.equal(String(value), String(whole.sysctl[key]), key);
  assert.equal(part.bpffs, whole.bpffs);
});

for (const [command, budget] of Object.entries(BUDGET)) {
  test(`${command} opens at most ${budget} session channels`, () => {
    const x = runs.find((r) => r.command === command);
    assert.ok(x, `${command} did not run`);
    assert.ok(x.sessions <= budget, `${command} opened ${x.sessions} session channels, budget ${budget}\n${table}`);
  });
}
