// `prep-node-dp features` on this machine's kernel: every probe answers, nothing is left behind
// (the tc probe runs in a network namespace of a child process), and without privilege it says so
// instead of reporting a kernel without BPF. The same command runs on six Debian kernels in
// kernel-matrix.test.ts; its documents there are the fixtures of datapath.features.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { judgeFeatures } from '../../src/checks/datapath-features.js';

const DP = fileURLToPath(new URL('../../../bpf/build/prep-node-dp', import.meta.url));
const notRoot = process.getuid?.() !== 0 ? 'needs root (BPF probes)' : false;

describe('prep-node-dp features', { skip: notRoot }, () => {
  it('probes everything the datapath uses on this kernel and leaves nothing', () => {
    execFileSync('make', ['-C', fileURLToPath(new URL('../../../bpf/', import.meta.url)), '-j1', 'loader'], { stdio: 'ignore' });
    const progsBefore = execFileSync('bpftool', ['-j', 'prog', 'show']).toString();
    const r = spawnSync(DP, ['features'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    const doc = JSON.parse(r.stdout) as { kernel: string; attach: Record<string, boolean>; helpers: Record<string, boolean>; modules: Record<string, { works: boolean }>; missing: string[]; degraded: string[] };
    assert.equal(doc.kernel, execFileSync('uname', ['-r']).toString().trim());
    assert.deepEqual(doc.missing, [], r.stdout);
    assert.equal(doc.attach.getpeername4, true);
    assert.equal(doc.modules.sch_ingress?.works, true);
    assert.equal(doc.modules.cls_bpf?.works, true);
    assert.equal(judgeFeatures(r.stdout).status, doc.degraded.length ? 'warn' : 'pass');
    // the probes' programs and maps are freed when their fds close
    const ids = (j: string) => (JSON.parse(j || '[]') as { id: number }[]).map((p) => p.id);
    let after: number[] = [];
    for (let i = 0; i < 30; i++) {
      after = ids(execFileSync('bpftool', ['-j', 'prog', 'show']).toString()).filter((id) => !ids(progsBefore).includes(id));
      if (!after.length) break;
      execFileSync('sleep', ['0.1']);
    }
    assert.deepEqual(after, [], 'probe programs left loaded');
  });

  it('without privilege: exit 7 not-permitted, not a kernel without BPF', () => {
    const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all', DP, 'features'], { encoding: 'utf8' });
    assert.equal(r.status, 7, r.stdout + r.stderr);
    const doc = JSON.parse(r.stdout) as { code: string; error: string };
    assert.equal(doc.code, 'not-permitted');
    assert.match(doc.error, /run as root/);
  });
});
