// Path MTU discovery through a NodePort to a remote backend (issue 13 item 5): the client reaches
// node-a's NodePort; the backend runs behind node-b, so node-a SNATs the flow to its own address and
// forwards it by FIB lookup (lib/snat.h). node-a's link toward node-b has a 1280-byte MTU, so the
// client's 1500-byte TCP segments (DF set, Linux's default) cannot go on: node-a's tc_lb answers each
// with ICMP fragmentation-needed (next-hop MTU 1280) quoting the segment as the client sent it
// (client -> node-a:30080), sends it back out of n0, and counts it as FRAG_NEEDED. Without it the
// packets were dropped as FIB_LOOKUP_FAILED, the client never learnt the path MTU, and the transfer
// stalled. node-b is a plain router here: only node-a's datapath takes part.
// The same on IPv6 (lib/snat6.h): every link also carries fd00:1::/64, fd00:2::/64, fd00:3::/64, the
// NodePort [fd00:1::1]:30080 has the backend [fd00:3::2]:8080, and node-a answers each too-big
// segment with ICMPv6 packet too big (MTU 1280) quoting it as the client sent it.
//
//   client c0 198.18.1.2 ─ n0 198.18.1.1 [node-a] 198.18.2.1 n1 ═ r0 198.18.2.2 [node-b] 198.18.3.1 r1 ─ p0 198.18.3.2 pod
//          fd00:1::2          fd00:1::1          fd00:2::1         fd00:2::2          fd00:3::1          fd00:3::2
//                              tc_lb on n0, n1    (═: mtu 1280, both ends)
//
// Everything lives in a bpffs, a cgroup v2 child and four network namespaces this test creates and
// always removes. Needs root, clang, bpftool, iproute2, nsenter; run it under the shared lock.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, rmdirSync } from 'node:fs';
import { compileState } from '../../src/datapath/compile.js';
import { parseState } from '../../src/datapath/state.js';
import { fullSync } from '../../src/datapath/sync.js';
import { BPF_DIR, DP, must, notRoot, run } from '../helpers/dp-sandbox.js';


const CLIENT = '198.18.1.2';
const POD = '198.18.3.2';
const NODE_A = '198.18.1.1';
const CLIENT6 = 'fd00:1::2';
const POD6 = 'fd00:3::2';
const NODE_A6 = 'fd00:1::1';
const NODE_PORT = 30080;
const SMALL_MTU = 1280;
const BYTES = 512 * 1024;


// the backend: counts the bytes of each connection and answers with the count when the client ends
const SERVER = `require('net').createServer((s) => { let n = 0; s.on('data', (d) => { n += d.length; });
  s.on('end', () => s.end(String(n))); s.on('error', () => {}); }).listen(8080, '::', () => console.log('listening'));`;
// the client: BYTES to node-a's NodePort in one go, then prints what the server counted (or fails after 20 s)
const clientJs = (host: string) => `const s = require('net').connect(${NODE_PORT}, '${host}', () => { s.end(Buffer.alloc(${BYTES}, 7)); });
  let r = ''; s.on('data', (d) => { r += d; }); s.on('end', () => { console.log(r); process.exit(0); });
  s.on('error', (e) => { console.error(e.message); process.exit(2); });
  setTimeout(() => { console.error('timeout: the transfer stalled'); process.exit(3); }, 20000);`;

describe('path MTU discovery through a NodePort to a remote backend (ICMP fragmentation-needed from BPF)', { skip: notRoot }, () => {
  const tag = `pnpm${process.pid % 100000}`;
  const ns = { client: `${tag}c`, node: `${tag}n`, router: `${tag}r`, pod: `${tag}p` };
  const scratch = mkdtempSync('/tmp/prep-node-pmtu-np-test-');
  const bpffs = `${scratch}/bpffs`;
  let cgroup = '';
  let mounted = false;
  let server: ChildProcess | undefined;

  const dp = (args: string[], input?: string) => run('nsenter', [`--net=/run/netns/${ns.node}`, DP, '--bpffs', bpffs, ...args], input);
  const inNs = (n: string, cmd: string, ...args: string[]) => run('nsenter', [`--net=/run/netns/${n}`, cmd, ...args]);

  function cleanup(): void {
    const quiet = { stdio: 'ignore' as const };
    try {
      if (existsSync(`${bpffs}/prep-node`)) execFileSync('nsenter', [`--net=/run/netns/${ns.node}`, DP, '--bpffs', bpffs, 'remove'], quiet);
    } catch { /* reported by the test that left it */ }
    server?.kill('SIGKILL');
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
      // no duplicate address detection: IPv6 addresses usable at once
      await must('ip', 'netns', 'exec', n, 'sysctl', '-qw', 'net.ipv6.conf.all.accept_dad=0', 'net.ipv6.conf.default.accept_dad=0');
      await must('ip', '-n', n, 'link', 'set', 'lo', 'up');
    }
    const link = async (a: string, da: string, b: string, db: string) =>
      must('ip', '-n', a, 'link', 'add', da, 'type', 'veth', 'peer', 'name', db, 'netns', b);
    await link(ns.client, 'c0', ns.node, 'n0');
    await link(ns.node, 'n1', ns.router, 'r0');
    await link(ns.router, 'r1', ns.pod, 'p0');
    const addrs: [string, string, string][] = [
      [ns.client, 'c0', `${CLIENT}/24`], [ns.node, 'n0', '198.18.1.1/24'], [ns.node, 'n1', '198.18.2.1/24'],
      [ns.router, 'r0', '198.18.2.2/24'], [ns.router, 'r1', '198.18.3.1/24'], [ns.pod, 'p0', `${POD}/24`],
      [ns.client, 'c0', `${CLIENT6}/64`], [ns.node, 'n0', `${NODE_A6}/64`], [ns.node, 'n1', 'fd00:2::1/64'],
      [ns.router, 'r0', 'fd00:2::2/64'], [ns.router, 'r1', 'fd00:3::1/64'], [ns.pod, 'p0', `${POD6}/64`],
    ];
    for (const [n, dev, addr] of addrs) {
      await must('ip', '-n', n, 'addr', 'add', addr, 'dev', dev);
      await must('ip', '-n', n, 'link', 'set', dev, 'up');
    }
    // the link between the nodes is small; the backend's own link is not, so it advertises MSS 1460
    await must('ip', '-n', ns.node, 'link', 'set', 'n1', 'mtu', String(SMALL_MTU));
    await must('ip', '-n', ns.router, 'link', 'set', 'r0', 'mtu', String(SMALL_MTU));
    await must('ip', '-n', ns.client, 'route', 'add', 'default', 'via', '198.18.1.1');
    await must('ip', '-n', ns.node, 'route', 'add', '198.18.3.0/24', 'via', '198.18.2.2');
    await must('ip', '-n', ns.router, 'route', 'add', '198.18.1.0/24', 'via', '198.18.2.1');
    await must('ip', '-n', ns.pod, 'route', 'add', 'default', 'via', '198.18.3.1');
    await must('ip', '-n', ns.client, '-6', 'route', 'add', 'default', 'via', NODE_A6);
    await must('ip', '-n', ns.node, '-6', 'route', 'add', 'fd00:3::/64', 'via', 'fd00:2::2');
    await must('ip', '-n', ns.router, '-6', 'route', 'add', 'fd00:1::/64', 'via', 'fd00:2::1');
    await must('ip', '-n', ns.pod, '-6', 'route', 'add', 'default', 'via', 'fd00:3::1');
    for (const n of [ns.node, ns.router]) await must('ip', 'netns', 'exec', n, 'sysctl', '-qw', 'net.ipv6.conf.all.forwarding=1');
    for (const n of [ns.node, ns.router]) await must('ip', 'netns', 'exec', n, 'sysctl', '-qw', 'net.ipv4.ip_forward=1');
    // as dp-multinode: a new namespace inherits the host's rp_filter, which the nodes here do not want
    await must('ip', 'netns', 'exec', ns.node, 'sysctl', '-qw', 'net.ipv4.conf.all.rp_filter=0', 'net.ipv4.conf.default.rp_filter=0');

    const r = await dp(['install', '--cgroup', cgroup, '--tc-dev', 'n0', '--tc-dev', 'n1', '--cap', 'services=1024,backends=1024,conntrack=16384,conntrack6=1024']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    // as the agent writes it on node-a: the NodePort on node-a's address, the backend on node-b
    const state = parseState(`node: {name: node-a, addresses: [${NODE_A}, '${NODE_A6}']}
services:
  - name: web-nodeport
    vip: ${NODE_A}
    port: ${NODE_PORT}
    protocol: tcp
    external: true
    backends: [{ip: ${POD}, port: 8080, nodeName: node-b}]
  - name: web-nodeport6
    vip: '${NODE_A6}'
    port: ${NODE_PORT}
    protocol: tcp
    external: true
    backends: [{ip: '${POD6}', port: 8080, nodeName: node-b}]
`, 'node-a.yaml');
    const a = await dp(['apply'], `${fullSync(compileState(state).entries).lines.join('\n')}\n`);
    assert.equal(a.code, 0, a.stdout + a.stderr);

    server = spawn('nsenter', [`--net=/run/netns/${ns.pod}`, process.execPath, '-e', SERVER], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      server?.stdout?.once('data', () => resolve());
      server?.once('exit', (code) => reject(new Error(`server exited ${code}`)));
    });
  });

  after(cleanup);

  const drops = async (): Promise<Record<string, number>> => {
    const r = await dp(['status']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    return (JSON.parse(r.stdout) as { drops: Record<string, number> }).drops;
  };

  it(`a ${BYTES / 1024} KiB TCP transfer with DF to node-a:${NODE_PORT} over a ${SMALL_MTU}-byte link to the remote backend completes; the client learns the path MTU from node-a's ICMP`, async () => {
    const before = await inNs(ns.client, 'ip', 'route', 'get', NODE_A);
    assert.doesNotMatch(before.stdout, /mtu \d+/, 'no path MTU cached before the transfer');
    const dropsBefore = await drops();
    const r = await inNs(ns.client, process.execPath, '-e', clientJs(NODE_A));
    assert.equal(r.code, 0, `client: ${r.stderr}`);
    assert.equal(r.stdout.trim(), String(BYTES), 'the backend counted every byte');
    const cached = await inNs(ns.client, 'ip', 'route', 'get', NODE_A);
    assert.match(cached.stdout, new RegExp(`mtu ${SMALL_MTU}\\b`), `the client's route to node-a: ${cached.stdout}`);
    const dropsAfter = await drops();
    assert.ok((dropsAfter.FRAG_NEEDED ?? 0) >= (dropsBefore.FRAG_NEEDED ?? 0) + 1,
      `FRAG_NEEDED ${dropsBefore.FRAG_NEEDED} -> ${dropsAfter.FRAG_NEEDED}: node-a answered at least one segment`);
    assert.equal(dropsAfter.FIB_LOOKUP_FAILED ?? 0, dropsBefore.FIB_LOOKUP_FAILED ?? 0, 'no segment dropped as a failed lookup');
    assert.equal(dropsAfter.FRAG_NEEDED_NO_ICMP ?? 0, dropsBefore.FRAG_NEEDED_NO_ICMP ?? 0, 'every refused segment was answered');
    const ct = (await dp(['dump', 'conntrack'])).stdout.split('\n').filter(Boolean);
    assert.equal(ct.length, 2, `one conntrack entry per direction (the SNATed flow): ${ct.join(' | ')}`);
  });
  it(`IPv6: a ${BYTES / 1024} KiB TCP transfer to [${NODE_A6}]:${NODE_PORT} over the ${SMALL_MTU}-byte link to the remote backend completes; the client learns the path MTU from node-a's ICMPv6 packet too big`, async () => {
    const before = await inNs(ns.client, 'ip', '-6', 'route', 'get', NODE_A6);
    assert.doesNotMatch(before.stdout, /mtu \d+/, 'no path MTU cached before the transfer');
    const dropsBefore = await drops();
    const r = await inNs(ns.client, process.execPath, '-e', clientJs(NODE_A6));
    assert.equal(r.code, 0, `client: ${r.stderr}`);
    assert.equal(r.stdout.trim(), String(BYTES), 'the backend counted every byte');
    const cached = await inNs(ns.client, 'ip', '-6', 'route', 'get', NODE_A6);
    assert.match(cached.stdout, new RegExp(`mtu ${SMALL_MTU}\\b`), `the client's route to node-a: ${cached.stdout}`);
    const dropsAfter = await drops();
    assert.ok((dropsAfter.FRAG_NEEDED ?? 0) >= (dropsBefore.FRAG_NEEDED ?? 0) + 1,
      `FRAG_NEEDED ${dropsBefore.FRAG_NEEDED} -> ${dropsAfter.FRAG_NEEDED}: node-a answered at least one segment`);
    assert.equal(dropsAfter.FIB_LOOKUP_FAILED ?? 0, dropsBefore.FIB_LOOKUP_FAILED ?? 0, 'no segment dropped as a failed lookup');
    assert.equal(dropsAfter.FRAG_NEEDED_NO_ICMP ?? 0, dropsBefore.FRAG_NEEDED_NO_ICMP ?? 0, 'every refused segment was answered');
  });
});
