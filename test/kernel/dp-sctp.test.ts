// SCTP through a Service at tc (issue 13 item 4), on this machine's kernel when it has SCTP
// (`modprobe sctp`; skipped with the reason otherwise: this machine's 6.18 has no sctp module). A
// client outside the cgroup (so tc_lb translates, not the socket hooks) opens an SCTP association to
// VIP:3868; the backend listens on the same port (the datapath translates SCTP addresses only: the
// CRC32c covers the ports, not the addresses) and answers with the peer it saw. Python's socket
// module speaks SCTP (IPPROTO_SCTP); Node does not.
//
//   client c0 198.18.1.2 ─ n0 198.18.1.1 [node] 198.18.2.1 n1 ─ p0 198.18.2.2 pod1
//
// Everything in a bpffs, a cgroup v2 child and namespaces this test creates and always removes.
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

function sctpMissing(): string | false {
  if (notRoot) return false;
  try { execFileSync('modprobe', ['sctp'], { stdio: 'pipe' }); } catch (e) { return `this kernel has no SCTP (modprobe sctp: ${String((e as { stderr?: Buffer }).stderr ?? e).trim()})`; }
  try { execFileSync('python3', ['-c', 'import socket; socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_SCTP)'], { stdio: 'pipe' }); } catch { return 'python3 cannot open an SCTP socket here'; }
  return false;
}

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

/** the Service's map entries with this one backend (puts: a rewrite of slot 0) */
function serviceOps(backend: string): string {
  const state = DatapathStateSchema.parse({ services: [{ name: 'diameter', vip: VIP, port: 3868, protocol: 'sctp', backends: [{ ip: backend, port: 3868 }] }] });
  return `${opLines(incrementalSync(compileState(state).entries, {}).ops).join('\n')}\n`;
}

// the backend: one association at a time, answers "pod1 <peer address>"
const SERVER_PY = `import socket
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_SCTP)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('0.0.0.0', 3868)); s.listen(8); print('listening', flush=True)
while True:
    c, peer = s.accept(); c.recv(100); c.send(('pod1 %s' % peer[0]).encode()); c.close()`;
const CLIENT_PY = `import socket
c = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_SCTP); c.settimeout(5)
c.connect(('${VIP}', 3868)); c.send(b'x'); print(c.recv(100).decode(), c.getpeername()[0])`;

describe('SCTP through a ClusterIP at tc (address translation, CRC32c untouched)', { skip: notRoot || sctpMissing() }, () => {
  const tag = `pnsc${process.pid % 100000}`;
  const ns = { client: `${tag}c`, node: `${tag}n`, pod1: `${tag}1` };
  const scratch = mkdtempSync('/tmp/prep-node-sctp-test-');
  const bpffs = `${scratch}/bpffs`;
  let cgroup = '';
  let mounted = false;
  const procs: ChildProcess[] = [];

  const dp = (args: string[], input?: string) => run('nsenter', [`--net=/run/netns/${ns.node}`, DP, '--bpffs', bpffs, ...args], input);
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
    for (const [n, dev, addr, gw] of [[ns.client, 'c0', '198.18.1.2/24', '198.18.1.1'], [ns.pod1, 'p0', `${POD1}/24`, '198.18.2.1']] as const) {
      await must('ip', '-n', n, 'addr', 'add', addr, 'dev', dev);
      await must('ip', '-n', n, 'link', 'set', dev, 'up');
      await must('ip', '-n', n, 'route', 'add', 'default', 'via', gw);
    }
    for (const [dev, addr] of [['n0', '198.18.1.1/24'], ['n1', '198.18.2.1/24']] as const) {
      await must('ip', '-n', ns.node, 'addr', 'add', addr, 'dev', dev);
      await must('ip', '-n', ns.node, 'link', 'set', dev, 'up');
    }
    await must('ip', 'netns', 'exec', ns.node, 'sysctl', '-qw', 'net.ipv4.ip_forward=1');

    const r = await dp(['install', '--cgroup', cgroup, '--tc-dev', 'n0', '--tc-dev', 'n1',
      '--cap', 'services=1024,backends=1024,conntrack=16384']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const a = await dp(['apply'], serviceOps(POD1));
    assert.equal(a.code, 0, a.stdout + a.stderr);
    const p = spawn('nsenter', [`--net=/run/netns/${ns.pod1}`, 'python3', '-c', SERVER_PY], { stdio: ['ignore', 'pipe', 'inherit'] });
    procs.push(p);
    await new Promise<void>((resolve, reject) => {
      p.stdout?.once('data', () => resolve());
      p.once('exit', (code) => reject(new Error(`the SCTP server exited ${code}`)));
    });
  });

  after(cleanup);

  it('an SCTP association to VIP:3868 reaches the backend, which sees the client; the client sees the VIP', async () => {
    const r = await run('nsenter', [`--net=/run/netns/${ns.client}`, 'python3', '-c', CLIENT_PY]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), `pod1 198.18.1.2 ${VIP}`);
    const ct = (await dp(['dump', 'conntrack'])).stdout.split('\n').filter(Boolean);
    assert.equal(ct.length, 2, `one conntrack entry per direction: ${ct.join(' | ')}`);
  });
});
