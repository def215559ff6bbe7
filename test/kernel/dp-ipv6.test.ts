// IPv6 policy on real connections (issue 13, item 1): before this, a pod selected by a default-deny
// policy was reachable over IPv6 because tc_lb passed every IPv6 packet. Here a dual-stack state is
// compiled by prep-node's own compiler and applied with the loader, and real TCP connections over
// IPv6 (fd00::/8 addresses in namespaces this test creates and always removes) are allowed or dropped
// with the reason counted; the same port is reachable before the policy, so the drop is the policy's.
// The loader's events of those flows, read through observe's own decorate/formatFlow, name both IPv6
// ends (the drop and the allowed flow), as `prep-node datapath observe` prints them.
//
//   client ns  c0 fd00:1::2 ──veth── n0 fd00:1::1  node ns  fd00:2::1 n1 ──veth── p0 fd00:2::2  pod ns
//                                    tc_lb ingress on n0 and n1            TCP servers on [::]:8080, :8081
//
// Needs root, clang, bpftool, iproute2, nsenter. Run under the shared lock (README "Tests").
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, rmdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { compileState } from '../../src/datapath/compile.js';
import { fullSync } from '../../src/datapath/sync.js';
import { parseState } from '../../src/datapath/state.js';
import { parseEvents } from '../../src/datapath/loader.js';
import { buildNames, decorate, formatFlow, type Flow } from '../../src/datapath/observe.js';
import { newOrigins } from '../../src/datapath/k8s/origins.js';

const BPF_DIR = fileURLToPath(new URL('../../../bpf/', import.meta.url));
const DP = `${BPF_DIR}build/prep-node-dp`;
const notRoot = process.getuid?.() !== 0 ? 'needs root (bpffs, cgroups, network namespaces)' : false;

interface Run { code: number; stdout: string; stderr: string }
function run(cmd: string, args: string[], input?: string): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
    if (input !== undefined) child.stdin?.end(input);
  });
}
async function must(cmd: string, ...args: string[]): Promise<string> {
  const r = await run(cmd, args);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')}: exit ${r.code}\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

// a TCP server on [::]:<port> that answers each connection with its port (Node, in the pod ns)
const SERVER = `const net=require('net');let n=0;for(const p of [8080,8081]){net.createServer(s=>{s.end(String(p))}).listen(p,'::',()=>{if(++n===2)console.log('listening')})}`;
// one connection attempt: prints {"ok":true,"reply":...} or {"ok":false,"error":...}; the timeout in ms is
// argv[3]: 1.5 s where a drop is expected, longer where an answer is (the first packets wait for neighbour
// discovery on a busy machine)
const CLIENT = `const net=require('net');const s=net.connect({host:process.argv[1],port:+process.argv[2],timeout:+process.argv[3]});let d='';s.on('data',x=>d+=x);s.on('end',()=>{console.log(JSON.stringify({ok:true,reply:d}))});s.on('timeout',()=>{console.log(JSON.stringify({ok:false,error:'timeout'}));s.destroy()});s.on('error',e=>{console.log(JSON.stringify({ok:false,error:e.code}))})`;

const POD6 = 'fd00:2::2';
const STATE = `endpoints:
  - {name: client, ip: 198.18.1.2, ip6: "fd00:1::2", labels: {app: client}}
  - {name: web, ip: 198.18.2.2, ip6: "${POD6}", labels: {app: web}}
policies:
  - name: web-from-client
    selector: {app: web}
    ingress:
      - from: [{selector: {app: client}}]
        ports: [{port: 8080, protocol: tcp}]
`;
const CIDR_STATE = `endpoints:
  - {name: web, ip: 198.18.2.2, ip6: "${POD6}", labels: {app: web}}
policies:
  - name: web-from-net
    selector: {app: web}
    ingress:
      - from: [{cidr: "fd00:1::/64"}]
        ports: [{port: 8081, protocol: tcp}]
`;

describe('IPv6 policy at tc on real connections', { skip: notRoot }, () => {
  const tag = `pn6${process.pid % 100000}`;
  const ns = { client: `${tag}c`, node: `${tag}n`, pod: `${tag}p` };
  const scratch = mkdtempSync('/tmp/prep-node-dp6-test-');
  const bpffs = `${scratch}/bpffs`;
  let cgroup = '';
  let server: ChildProcess | undefined;
  let mounted = false;

  const dp = (args: string[], input?: string) => run('nsenter', [`--net=/run/netns/${ns.node}`, DP, '--bpffs', bpffs, ...args], input);
  const connect = async (port: number, timeoutMs = 1500): Promise<{ ok: boolean; reply?: string; error?: string }> => {
    const r = await run('nsenter', [`--net=/run/netns/${ns.client}`, process.execPath, '-e', CLIENT, POD6, String(port), String(timeoutMs)]);
    return JSON.parse(r.stdout.trim()) as { ok: boolean; reply?: string; error?: string };
  };
  const drops = async (): Promise<Record<string, number>> => {
    const r = await dp(['status']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    return (JSON.parse(r.stdout) as { drops: Record<string, number> }).drops;
  };
  const apply = async (yaml: string) => {
    const state = parseState(yaml, 'state.yaml');
    const compiled = compileState(state);
    const lines = fullSync(compiled.entries).lines;
    const r = await dp(['apply'], `${lines.join('\n')}\n`);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    return buildNames(state, compiled, newOrigins(), 'state.yaml');
  };
  // the queued events as observe shows them (reading drains the queue)
  const flows = async (names: ReturnType<typeof buildNames> | null): Promise<Flow[]> => {
    const r = await dp(['events']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    return parseEvents('node', r.stdout).events.map((e) => decorate(e, names));
  };

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
      try { execFileSync('umount', [bpffs], quiet); mounted = false; } catch { /* busy: left for the next run */ }
    }
    rmSync(scratch, { recursive: true, force: true });
  }
  const onSignal = (sig: NodeJS.Signals) => { cleanup(); process.kill(process.pid, sig); };

  before(async () => {
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    await must('make', '-C', BPF_DIR, '-j1', 'loader');
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
    await must('ip', '-n', ns.pod, 'link', 'add', 'p0', 'type', 'veth', 'peer', 'name', 'n1', 'netns', ns.node);
    for (const [n, dev, addr, gw] of [[ns.client, 'c0', 'fd00:1::2/64', 'fd00:1::1'], [ns.pod, 'p0', `${POD6}/64`, 'fd00:2::1']] as const) {
      await must('ip', '-n', n, 'addr', 'add', addr, 'dev', dev, 'nodad');
      await must('ip', '-n', n, 'link', 'set', dev, 'up');
      await must('ip', '-n', n, '-6', 'route', 'add', 'default', 'via', gw);
    }
    await must('ip', '-n', ns.node, 'addr', 'add', 'fd00:1::1/64', 'dev', 'n0', 'nodad');
    await must('ip', '-n', ns.node, 'addr', 'add', 'fd00:2::1/64', 'dev', 'n1', 'nodad');
    await must('ip', '-n', ns.node, 'link', 'set', 'n0', 'up');
    await must('ip', '-n', ns.node, 'link', 'set', 'n1', 'up');
    await must('ip', 'netns', 'exec', ns.node, 'sysctl', '-qw', 'net.ipv6.conf.all.forwarding=1');

    server = spawn('nsenter', [`--net=/run/netns/${ns.pod}`, process.execPath, '-e', SERVER], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      server?.stdout?.once('data', () => resolve());
      server?.once('exit', (code) => reject(new Error(`server exited ${code}`)));
    });
    const r = await dp(['install', '--cgroup', cgroup, '--tc-dev', 'n0', '--tc-dev', 'n1', '--cap', 'services=1024,backends=1024,conntrack=4096,conntrack6=4096']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
  });

  after(cleanup);

  it('with no policy both ports answer over IPv6 through tc_lb (so a later refusal is the policy)', async () => {
    assert.deepEqual(await connect(8080, 10_000), { ok: true, reply: '8080' });
    assert.deepEqual(await connect(8081, 10_000), { ok: true, reply: '8081' });
  });

  it('a default-deny ingress policy holds over IPv6: 8080 allowed by identity, 8081 dropped and counted', async () => {
    const names = await apply(STATE);
    await flows(null); // drain what the connections before the policy sent
    const before = await drops();
    assert.deepEqual(await connect(8080, 10_000), { ok: true, reply: '8080' }, 'the allowed port, replies through conntrack6');
    const denied = await connect(8081);
    assert.deepEqual(denied, { ok: false, error: 'timeout' });
    const after = await drops();
    assert.ok(after.POLICY_DEFAULT_DENY! >= before.POLICY_DEFAULT_DENY! + 1, `POLICY_DEFAULT_DENY ${before.POLICY_DEFAULT_DENY} -> ${after.POLICY_DEFAULT_DENY}`);
    assert.equal(after.IPV6_FRAGMENT, before.IPV6_FRAGMENT);
    assert.equal(after.TRUNCATED_IPV6, before.TRUNCATED_IPV6);

    // observe: the drop and the allowed flow with both IPv6 addresses, the pods named by them
    const seen = await flows(names);
    const drop = seen.find((f) => f.verdict === 'dropped' && f.destination.port === 8081);
    assert.ok(drop, `no drop event to port 8081 among ${JSON.stringify(seen)}`);
    assert.deepEqual(
      [drop.reason?.name, drop.hook, drop.family, drop.source.ip, drop.destination.ip, drop.source.endpoint, drop.destination.endpoint, drop.direction],
      ['POLICY_DEFAULT_DENY', 'tc6', 'ipv6', 'fd00:1::2', POD6, 'client', 'web', 'ingress'],
    );
    assert.match(formatFlow(drop), /DROPPED POLICY_DEFAULT_DENY\(\d+\) tcp \[fd00:1::2\]:\d+ client \[app=client\] -> \[fd00:2::2\]:8081 web \[app=web\], ingress, default deny of web-from-client, at tc6 n0$/);
    const fwd = seen.find((f) => f.verdict === 'forwarded' && f.destination.port === 8080);
    assert.ok(fwd, `no forwarded event to port 8080 among ${JSON.stringify(seen)}`);
    assert.deepEqual([fwd.family, fwd.source.ip, fwd.destination.ip, fwd.policy], ['ipv6', 'fd00:1::2', POD6, { policy: 'web-from-client', rule: 'ingress[0]' }]);
  });

  it('an IPv6 CIDR rule: the client prefix may reach 8081 only; 8080 now dropped', async () => {
    await apply(CIDR_STATE);
    assert.deepEqual(await connect(8081, 10_000), { ok: true, reply: '8081' });
    const before = await drops();
    assert.deepEqual(await connect(8080), { ok: false, error: 'timeout' });
    const after = await drops();
    assert.ok(after.POLICY_DEFAULT_DENY! >= before.POLICY_DEFAULT_DENY! + 1);
  });
});
