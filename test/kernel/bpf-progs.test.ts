// The eBPF datapath on this machine's kernel: `make -C bpf` builds the BPF objects, skeletons and
// the two C harnesses; each harness prints TAP, one line per case, and every line becomes a subtest
// here. tc_lb runs packet tables through BPF_PROG_TEST_RUN (no traffic); sock_lb runs real sockets
// in a cgroup v2 and a network namespace it creates and removes. Needs root, clang and bpftool.
import { describe, it, before, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);
const BPF_DIR = fileURLToPath(new URL('../../../bpf/', import.meta.url));
const notRoot = process.getuid?.() !== 0 ? 'needs root (BPF_PROG_TEST_RUN, cgroups, network namespaces)' : false;

/** One case of a TAP stream. */
interface TapCase {
  n: number;
  ok: boolean;
  description: string;
  skip?: string;
  diagnostics: string[];
}

/** Parse TAP 13 as our harnesses print it: result lines, "# " diagnostics after them, a plan. */
function parseTap(text: string): { cases: TapCase[]; plan: number | undefined } {
  const cases: TapCase[] = [];
  let plan: number | undefined;
  for (const line of text.split('\n')) {
    const result = /^(not ok|ok) (\d+) - (.*?)(?: # SKIP (.*))?$/.exec(line);
    const planned = /^1\.\.(\d+)$/.exec(line);
    if (result) {
      const [, status, n, description, skip] = result;
      cases.push({ n: Number(n), ok: status === 'ok', description: description ?? '', diagnostics: [], ...(skip ? { skip } : {}) });
    } else if (planned) {
      plan = Number(planned[1]);
    } else if (line.startsWith('# ') && cases.length > 0) {
      cases[cases.length - 1]?.diagnostics.push(line.slice(2));
    }
  }
  return { cases, plan };
}

/** Run a harness; a failing case makes it exit 1, which is data here, not an exception. */
async function runHarness(name: string): Promise<{ stdout: string; stderr: string; code: number }> {
  try {
    const { stdout, stderr } = await execFileP(`${BPF_DIR}build/${name}`, [], { timeout: 120_000, maxBuffer: 16 << 20 });
    return { stdout, stderr, code: 0 };
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; code?: number | string };
    if (typeof e.code !== 'number') throw err; // spawn failure or timeout
    return { stdout: e.stdout ?? '', stderr: e.stderr ?? '', code: e.code };
  }
}

/** Turn each TAP line into a subtest that fails when its case failed; check the plan and exit code. */
async function tapSubtests(t: TestContext, name: string): Promise<void> {
  const { stdout, stderr, code } = await runHarness(name);
  const { cases, plan } = parseTap(stdout);
  assert.ok(cases.length > 0, `${name} printed no cases\n${stdout}\n${stderr}`);
  for (const c of cases) {
    await t.test(c.description, c.skip ? { skip: c.skip } : {}, () => {
      assert.ok(c.ok, [`case ${c.n} failed`, ...c.diagnostics].join('\n'));
    });
  }
  assert.equal(plan, cases.length, `${name}: plan 1..${plan} but ${cases.length} cases (crashed?)\n${stderr}`);
  assert.equal(code, cases.some((c) => !c.ok) ? 1 : 0, `${name} exit code ${code}\n${stderr}`);
}

describe('eBPF datapath programs', { skip: notRoot }, () => {
  before(async () => {
    // -j1: the machine is shared; the build is small
    await execFileP('make', ['-C', BPF_DIR, '-j1', 'all'], { timeout: 300_000, maxBuffer: 16 << 20 });
  });

  it('builds the objects, skeletons and harnesses under bpf/build/', () => {
    for (const f of ['tc_lb.bpf.o', 'sock_lb.bpf.o', 'tc_lb.skel.h', 'sock_lb.skel.h', 'tc_lb_test', 'sock_lb_test']) {
      assert.ok(existsSync(`${BPF_DIR}build/${f}`), `bpf/build/${f} missing`);
    }
  });

  it('tc_lb: packet tables through BPF_PROG_TEST_RUN', async (t) => {
    await tapSubtests(t, 'tc_lb_test');
  });

  it('sock_lb: sockets in a test cgroup and network namespace', async (t) => {
    await tapSubtests(t, 'sock_lb_test');
  });
});
