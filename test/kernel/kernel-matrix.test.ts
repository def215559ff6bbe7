// The kernel matrix: the static loader on Debian's 5.10 (bullseye), 6.1 (bookworm) and 6.12 (trixie)
// kernels, generic (-amd64) and cloud (-cloud-amd64). Each kernel comes from Debian's archive by
// package name (test/kernels/fetch.sh: a private apt configuration, cached by package version under
// /var/cache/prep-node/kernels) and boots under QEMU with a minimal initramfs (test/kernels/
// initramfs.sh: busybox, the loader, iproute2, bpftool, kmod and the kernel's tc/veth modules) that
// runs test/helpers/kernel-scenario.ts: features, a failed install that leaves nothing, install on the
// cgroup root and with tc, TCP and UDP through the socket hooks and through tc, a Service without
// backends, events and counters, remove. Kernels boot one after the other (-smp 2, nice 10): the
// machine is shared. A failure names the kernel, the step and the loader's (verifier's) message; the
// results show as a table in the test output.
//   PREP_NODE_KERNELS="bullseye/amd64 trixie/cloud-amd64"   a subset (default: all six)
//   PREP_NODE_KERNELS_RECORD=DIR   write each kernel's `features` document to DIR/<suite>-<flavour>.json
//                                  (how test/fixtures/checks/features/ was recorded)
// Needs root (the kernel cache), network access to Debian's archive on the first run, qemu-system-x86.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { judgeFeatures } from '../../src/checks/datapath-features.js';
import { parseBlocks } from '../../src/datapath/selftest-script.js';
import { judgeKernel, kernelScenario, type KernelRow } from '../helpers/kernel-scenario.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const DP = `${ROOT}bpf/build/prep-node-dp`;
const notRoot = process.getuid?.() !== 0 ? 'needs root (the kernel cache under /var/cache/prep-node)' : false;
const KERNELS = (process.env.PREP_NODE_KERNELS ?? 'bullseye/amd64 bullseye/cloud-amd64 bookworm/amd64 bookworm/cloud-amd64 trixie/amd64 trixie/cloud-amd64')
  .split(/\s+/)
  .filter(Boolean);
const BOOT_TIMEOUT_MS = 240_000;

function sh(cmd: string, args: string[], timeout = 600_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')}: ${err.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

/** The QEMU running now: killed when the test ends or is interrupted. */
let running: ReturnType<typeof spawn> | undefined;
const onSignal = (sig: NodeJS.Signals) => {
  running?.kill('SIGKILL');
  process.kill(process.pid, sig);
};

/** Boot a kernel with an initramfs under QEMU TCG; the serial console's text. */
function boot(vmlinuz: string, initrd: string): Promise<{ console: string; code: number | null }> {
  return new Promise((resolve, reject) => {
    const qemu = spawn('nice', ['-n', '10', 'qemu-system-x86_64', '-accel', 'tcg,thread=multi', '-m', '1024', '-smp', '2',
      '-nodefaults', '-display', 'none', '-monitor', 'none', '-serial', 'stdio', '-no-reboot',
      '-kernel', vmlinuz, '-initrd', initrd, '-append', 'console=ttyS0 panic=-1 quiet loglevel=1'], { stdio: ['ignore', 'pipe', 'pipe'] });
    running = qemu;
    let out = '';
    qemu.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    qemu.stderr.on('data', (d: Buffer) => { out += d.toString(); });
    const timer = setTimeout(() => qemu.kill('SIGKILL'), BOOT_TIMEOUT_MS);
    qemu.on('error', reject);
    qemu.on('exit', (code) => {
      running = undefined;
      clearTimeout(timer);
      resolve({ console: out.replace(/\r/g, ''), code });
    });
  });
}

interface Row extends KernelRow { kernel: string; release: string; seconds: number }

const yes = (b: unknown) => (b ? 'yes' : 'no');
function table(rows: Row[]): string[] {
  const head = ['kernel', 'release', 'boot+run s', 'result', 'datapath.features', 'set_retval', 'no backends', 'batch ops', 'sch_ingress', 'cls_bpf', 'map memlock MiB', 'MemAvailable drop MB'];
  const body = rows.map((r) => {
    const f = r.features as { batch_ops?: boolean; modules?: Record<string, { present: string; works: boolean }> } | undefined;
    const mod = (m: string) => (f?.modules?.[m] ? `${f.modules[m].present}${f.modules[m].works ? '' : ' (fails)'}` : '?');
    const check = r.features ? judgeFeatures(JSON.stringify(r.features)).status : '?';
    return [r.kernel, r.release, r.seconds.toFixed(1), r.failures.length ? `FAIL (${r.failures.length})` : 'pass', check, r.setRetval === undefined ? '?' : yes(r.setRetval),
      r.noBackendErrno ?? '?', f ? yes(f.batch_ops) : '?', mod('sch_ingress'), mod('cls_bpf'),
      r.memlockBytes === undefined ? '?' : (r.memlockBytes / 2 ** 20).toFixed(0), r.memAvailDropKb === undefined ? '?' : (r.memAvailDropKb / 1024).toFixed(0)];
  });
  const w = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(w[i]!)).join(' | ')} |`;
  return [line(head), `|${w.map((n) => '-'.repeat(n + 2)).join('|')}|`, ...body.map(line)];
}

describe('kernel matrix: the loader on Debian 5.10, 6.1 and 6.12 (generic and cloud) under QEMU', { skip: notRoot }, () => {
  const scratch = mkdtempSync('/tmp/prep-node-kmatrix-');
  const rows: Row[] = [];
  const scenario = `${scratch}/scenario.sh`;
  writeFileSync(scenario, kernelScenario(), { mode: 0o755 });
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  after((): void => {
    running?.kill('SIGKILL');
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    rmSync(scratch, { recursive: true, force: true });
  });

  it('builds the static loader', async () => {
    await sh('make', ['-C', `${ROOT}bpf`, '-j1', 'loader']);
  });

  for (const k of KERNELS) {
    it(`${k}: install, socket and tc paths, no-backend errno, events, failed install, remove`, async (t) => {
      const [suite, flavour] = k.split('/');
      const dir = (await sh(`${ROOT}test/kernels/fetch.sh`, [suite!, flavour!])).trim().split('\n').pop()!;
      const release = readFileSync(`${dir}/package`, 'utf8').split(' ')[2]!.trim();
      const initrd = `${scratch}/${suite}-${flavour}.cpio.gz`;
      await sh(`${ROOT}test/kernels/initramfs.sh`, [dir, DP, scenario, initrd]);
      const t0 = Date.now();
      const { console: out, code } = await boot(`${dir}/vmlinuz`, initrd);
      const seconds = (Date.now() - t0) / 1000;
      const row: Row = { kernel: k, release, seconds, ...judgeKernel(parseBlocks(out)) };
      if (!/^::done 0 /m.test(out)) row.failures.unshift(`the scenario did not finish (qemu exit ${code}); console tail: ${out.split('\n').slice(-8).join(' | ')}`);
      rows.push(row);
      const record = process.env.PREP_NODE_KERNELS_RECORD;
      if (record && row.features) {
        mkdirSync(record, { recursive: true });
        writeFileSync(`${record}/${suite}-${flavour}.json`, `${JSON.stringify(row.features, null, 2)}\n`);
      }
      if (row.features) {
        const v = judgeFeatures(JSON.stringify(row.features));
        t.diagnostic(`${k}: check datapath.features: ${v.status}: ${v.observed}`);
      }
      t.diagnostic(`${k} (${release}): ${seconds.toFixed(1)} s, ${row.failures.length ? row.failures.join('; ') : 'pass'}`);
      assert.deepEqual(row.failures, [], `${k} (${release}): ${row.failures.join('\n')}`);
    });
  }

  it('the table', (t) => {
    for (const l of table(rows)) t.diagnostic(l);
    assert.equal(rows.length, KERNELS.length);
  });
});
