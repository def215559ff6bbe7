// Conntrack lifetimes and flows of removed backends (issue 13 item 3), on this machine's kernel.
// Mirrors sig-network's e2e case "Conntrack should be able to preserve UDP traffic when server pod
// cycles for a ClusterIP service" (test/e2e/network/conntrack.go): a client keeps sending UDP from
// one source port to a ClusterIP; the Service's backend changes; the client's flow must reach the
// new backend. Here the flow is live (a datagram every 100 ms), so its conntrack entry never idles
// out: it stays on the old backend until its entries are flushed (`prep-node-dp ct-gc --backend`,
// what a sync must do for a removed backend) and then moves at once. Then the client stops and the
// entries expire after udp=2s: `ct-gc` deletes them.
//
//   client c0 198.18.1.2 ─ n0 198.18.1.1 [node] 198.18.2.1 n1 ─ p0 198.18.2.2 pod1
//                                               198.18.3.1 n2 ─ p0 198.18.3.2 pod2
//
// Everything in a bpffs, a cgroup v2 child and namespaces this test creates and always removes.
// Needs root, clang, bpftool, iproute2, nsenter; run it under the shared lock.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, rmdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { compileState } from '../../src/datapath/compile.js';
import { DatapathStateSchema } from '../../src/datapath/schema.js';
import { incrementalSync } from '../../src/datapath/sync.js';
import { opLines } from '../../src/datapath/writer.js';

const BPF_DIR = fileURLToPath(new URL('../../../bpf/', import.meta.url));
const DP = `${BPF_DIR}build/prep-node-dp`;
const notRoot = process.getuid?.() !== 0 ? 'needs root (bpffs, cgroups, network namespaces)' : false;

const VIP = '198.19.0.10';
const POD1 = '198.18.2.2';
const POD2 = '198.18.3.2';

interface Run { code: number | null; stdout: string; stderr: string }
function run(cmd: string, args: string[], input?: string): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { encoding: 'utf8', timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : null) : 0;
      resolve({ code, stdout, stderr });
    });
    child.stdin?.on('error', () => { /* exited before reading stdin */ });
    child.stdin?.end(input ?? '');
  });
}
async function must(cmd: string, ...args: string[]): Promise<string> {
  const r = await run(cmd, args);
  assert.equal(r.code, 0, `${cmd} ${args.join(' ')}: ${r.stderr || r.stdout}`);
  return r.stdout;
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** the Service's map entries with this one backend (puts: a rewrite of slot 0) */
function serviceOps(backend: string): string {
  const state = DatapathStateSchema.parse({ services: [{ name: 'dns', vip: VIP, port: 53, protocol: 'udp', backends: [{ ip: backend, port: 8080 }] }] });
  return `${opLines(incrementalSync(compileState(state).entries, {}).ops).join('\n')}\n`;
}

// one UDP socket, one source port: a datagram to VIP:53 every 100 ms, each answer printed
const CLIENT_JS = `const s = require('dgram').createSocket('udp4');
  s.on('message', (m) => console.log(m.toString().trim()));
  s.bind(40053, () => setInterval(() => s.send('x', 53, '${VIP}'), 100));`;

describe('conntrack: lifetimes and the flows of a removed backend', { skip: notRoot }, () => {
  const tag = `pnct${process.pid % 100000}`;
  const ns = { client: `${tag}c`, node: `${tag}n`, pod1: `${tag}1`, pod2: `${tag}2` };
  const scratch = mkdtempSync('/tmp/prep-node-ct-test-');
  const bpffs = `${scratch}/bpffs`;
  let cgroup = '';
  let mounted = false;
  const procs: ChildProcess[] = [];

  const dp = (args: string[], input?: string) => run('nsenter', [`--net=/run/netns/${ns.node}`, DP, '--bpffs', bpffs, ...args], input);
  const gc = async (...args: string[]) => {
    const r = await dp(['ct-gc', ...args]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    return JSON.parse(r.stdout) as { scanned: number; expired: number; flushed: number; entries: number; capacity: number; fill_pct: number; warning: string | null };
  };

  function cleanup(): void {
    const quiet = { stdio: 'ignore' as const };
    try {
      if (existsSync(`${bpffs}/prep-node`)) execFileSync('nsenter', [`--net=/run/netns/${ns.node}`, DP, '--bpffs', bpffs, 'remove'], quiet);
    } catch { /* reported by the test that left it */ }
    for (const p of procs) p.kill('SIGKILL');
    for (const n of Object.values(ns)) {
      try { execFileSync('ip', ['netns', 'del', n], quiet); } catch { /* not created */ }
    }
    for (let i = 0; cgroup && existsSync(cgroup) && i < 50; i++) {
      try { rmdirSync(cgroup); } catch { execFileSync('sleep', ['0.1']); }
    }
    if (mounted) {
      try { execFileSync('umount', [bpffs], quiet); mounted = false; } catch { /* busy */ }
    }
    rmSync(scratch, { recursive: true, force: true });
  }
  const onSignal = (sig: NodeJS.Signals) => { cleanup(); process.kill(process.pid, sig); };

  before(async () => {
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    // synchronous and without run()'s 30 s limit: a first build on a busy machine takes longer
    execFileSync('make', ['-C', BPF_DIR, '-j1', 'all'], { stdio: 'pipe', timeout: 600_000 });
    mkdirSync(bpffs);
    await must('mount', '-t', 'bpf', 'bpf', bpffs);
    mounted = true;
    const v2 = ['/sys/fs/cgroup', '/sys/fs/cgroup/unified'].find((p) => existsSync(`${p}/cgroup.procs`) && existsSync(`${p}/cgroup.controllers`));
    assert.ok(v2, 'no cgroup v2 mount');
    cgroup = `${v2}/${tag}`;
    mkdirSync(cgroup);
    for (const n of Object.values(ns)) {
      await must('ip', 'netns', 'add', n);
      await must('ip', '-n', n, 'link', 'set', 'lo', 'up');
    }
    await must('ip', '-n', ns.client, 'link', 'add', 'c0', 'type', 'veth', 'peer', 'name', 'n0', 'netns', ns.node);
    await must('ip', '-n', ns.pod1, 'link', 'add', 'p0', 'type', 'veth', 'peer', 'name', 'n1', 'netns', ns.node);
    await must('ip', '-n', ns.pod2, 'link', 'add', 'p0', 'type', 'veth', 'peer', 'name', 'n2', 'netns', ns.node);
    for (const [n, dev, addr, gw] of [[ns.client, 'c0', '198.18.1.2/24', '198.18.1.1'], [ns.pod1, 'p0', `${POD1}/24`, '198.18.2.1'], [ns.pod2, 'p0', `${POD2}/24`, '198.18.3.1']] as const) {
      await must('ip', '-n', n, 'addr', 'add', addr, 'dev', dev);
      await must('ip', '-n', n, 'link', 'set', dev, 'up');
      await must('ip', '-n', n, 'route', 'add', 'default', 'via', gw);
    }
    for (const [dev, addr] of [['n0', '198.18.1.1/24'], ['n1', '198.18.2.1/24'], ['n2', '198.18.3.1/24']] as const) {
      await must('ip', '-n', ns.node, 'addr', 'add', addr, 'dev', dev);
      await must('ip', '-n', ns.node, 'link', 'set', dev, 'up');
    }
    await must('ip', 'netns', 'exec', ns.node, 'sysctl', '-qw', 'net.ipv4.ip_forward=1');

    const r = await dp(['install', '--cgroup', cgroup, '--tc-dev', 'n0', '--tc-dev', 'n1', '--tc-dev', 'n2',
      '--cap', 'services=1024,backends=1024,conntrack=16384', '--ct-timeout', 'udp=2s']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const a = await dp(['apply'], serviceOps(POD1));
    assert.equal(a.code, 0, a.stdout + a.stderr);
    for (const [n, name] of [[ns.pod1, 'pod1'], [ns.pod2, 'pod2']] as const) {
      const p = spawn('nsenter', [`--net=/run/netns/${n}`, DP, 'serve', '--port', '8080', '--name', name], { stdio: ['ignore', 'pipe', 'inherit'] });
      procs.push(p);
      await new Promise<void>((resolve, reject) => {
        p.stdout?.once('data', () => resolve());
        p.once('exit', (code) => reject(new Error(`serve ${name} exited ${code}`)));
      });
    }
  });

  after(cleanup);

  it('should be able to preserve UDP traffic when server pod cycles for a ClusterIP service: the live flow moves to the new backend once the old one\'s entries are flushed', async () => {
    const replies: string[] = [];
    const client = spawn('nsenter', [`--net=/run/netns/${ns.client}`, process.execPath, '-e', CLIENT_JS], { stdio: ['ignore', 'pipe', 'inherit'] });
    procs.push(client);
    let buf = '';
    client.stdout?.on('data', (d: Buffer) => {
      buf += d.toString();
      const lines = buf.split('\n');
      buf = lines.pop()!;
      replies.push(...lines.map((l) => l.split(' ')[0]!));
    });
    const until = async (pred: () => boolean, ms: number) => { for (let t = 0; t < ms && !pred(); t += 50) await sleep(50); return pred(); };

    assert.ok(await until(() => replies.includes('pod1'), 5000), `no answer from pod1: ${replies.join(',')}`);
    // the Service's only backend becomes pod2; the live flow's entries still say pod1
    const a = await dp(['apply'], serviceOps(POD2));
    assert.equal(a.code, 0, a.stdout + a.stderr);
    const mark = replies.length;
    await sleep(1500);
    const stale = replies.slice(mark);
    assert.ok(stale.length >= 5 && stale.every((r) => r === 'pod1'), `before the flush the live flow keeps its entry (pod1): ${stale.join(',')}`);

    const g = await gc('--backend', `${POD1}:8080/udp`);
    assert.equal(g.flushed, 2, `both directions of the flow to pod1 flushed: ${JSON.stringify(g)}`);
    const mark2 = replies.length;
    assert.ok(await until(() => replies.slice(mark2).includes('pod2'), 2000), `after the flush the flow reaches pod2: ${replies.slice(mark2).join(',')}`);
    await sleep(300);
    const tail = replies.slice(-2);
    assert.deepEqual(tail, ['pod2', 'pod2'], 'and stays there');

    client.kill('SIGKILL');
    await sleep(3500); // udp=2s, last use kept to the second
    const idle = await gc();
    assert.equal(idle.expired, 2, `the idle flow's two entries expired: ${JSON.stringify(idle)}`);
    assert.equal(idle.entries, 0);
    assert.equal(idle.capacity, 16384);
    assert.equal(idle.warning, null);
  });

  it('ct-gc refuses a bad --backend with one line (exit 2)', async () => {
    const r = await dp(['ct-gc', '--backend', '198.18.2.2']);
    assert.equal(r.code, 2);
    assert.match((JSON.parse(r.stdout) as { error: string }).error, /ct-gc \[--backend ADDR:PORT/);
  });
});
