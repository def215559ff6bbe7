// Several nodes on this machine (issue 13 items 2, 7 and 9): two "nodes" as network namespaces, each
// with its own datapath instance (its own bpffs mount, its own empty cgroup for the socket programs
// so every service flow here goes through tc, tc_lb on the node's uplink and on its pod veths), pods
// as namespaces behind each node on a routed pod network, and an outside client on the node LAN.
// The state each node gets is compiled by prep-node's own compiler and applied with the loader; the
// traffic is real TCP through the kernel's routing. Each case is named after the sig-network e2e case
// it mirrors (kubernetes test/e2e/network/service.go, loadbalancer.go, netpol/network_policy.go).
//
//                                  lan ns: bridge br0 (198.19.0.0/24)
//        ┌──────────────────────────────┼──────────────────────────────┐
//   client ns 198.19.0.100      node-a ns eth0 198.19.0.1         node-b ns eth0 198.19.0.2
//                               198.18.2.0/24 via node-b          198.18.1.0/24 via node-a
//                               va ─ pod-a  198.18.1.2 app=client vb ─ pod-b 198.18.2.2 app=web
//                               va2 ─ pod-a2 198.18.1.3 app=other
//   tc_lb ingress: node-a eth0, va, va2; node-b eth0, vb. TCP servers on :8080 in every pod answer
//   "<pod> <the peer address and port they see>".
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

// a TCP server on :8080 that answers each connection with its name and the peer it sees
const SERVER = `const net=require('net');net.createServer(s=>{s.end(process.argv[1]+' '+s.remoteAddress+' '+s.remotePort)}).listen(8080,'0.0.0.0',()=>console.log('listening'))`;
// one connection attempt: {"ok":true,"reply":...} or {"ok":false,"error":...}; timeout in ms is argv[3]
const CLIENT = `const net=require('net');const s=net.connect({host:process.argv[1],port:+process.argv[2],timeout:+process.argv[3]});let d='';s.on('data',x=>d+=x);s.on('end',()=>{console.log(JSON.stringify({ok:true,reply:d}))});s.on('timeout',()=>{console.log(JSON.stringify({ok:false,error:'timeout'}));s.destroy()});s.on('error',e=>{console.log(JSON.stringify({ok:false,error:e.code}))})`;

const NODE_A = '198.19.0.1';
const NODE_B = '198.19.0.2';
const CLIENT_IP = '198.19.0.100';
const POD_A = '198.18.1.2';
const POD_A2 = '198.18.1.3';
const POD_B = '198.18.2.2';
const CLUSTER_IP = '198.18.255.10';
const CLUSTER_IP_ITP = '198.18.255.11';
const HAIRPIN_IP = '198.18.255.20';

// every pod of the cluster, on every node (the agent lists them from the API server): local ones go
// into the node's endpoints map, the others into its ipcache with the same identity
const ENDPOINTS = `endpoints:
  - {name: pod-a, ip: ${POD_A}, nodeName: node-a, labels: {app: client}}
  - {name: pod-a2, ip: ${POD_A2}, nodeName: node-a, labels: {app: other}}
  - {name: pod-b, ip: ${POD_B}, nodeName: node-b, labels: {app: web}}
`;
// the same Services on both nodes, as the agent would write them: NodePorts on each node's address
const services = (nodeIp: string) => `services:
  - name: web
    vip: ${CLUSTER_IP}
    port: 80
    protocol: tcp
    backends: [{ip: ${POD_B}, port: 8080, nodeName: node-b}]
  - name: web-itp-local
    vip: ${CLUSTER_IP_ITP}
    port: 80
    protocol: tcp
    internalTrafficPolicy: Local
    backends: [{ip: ${POD_B}, port: 8080, nodeName: node-b}]
  - name: web-nodeport
    vip: ${nodeIp}
    port: 30080
    protocol: tcp
    external: true
    backends: [{ip: ${POD_B}, port: 8080, nodeName: node-b}]
  - name: web-nodeport-local
    vip: ${nodeIp}
    port: 30081
    protocol: tcp
    external: true
    externalTrafficPolicy: Local
    backends: [{ip: ${POD_B}, port: 8080, nodeName: node-b}]
  - name: hairpin
    vip: ${HAIRPIN_IP}
    port: 80
    protocol: tcp
    backends: [{ip: ${POD_A}, port: 8080, nodeName: node-a}]
`;
const POLICY = `policies:
  - name: web-from-client
    selector: {app: web}
    ingress:
      - from: [{selector: {app: client}}]
        ports: [{port: 8080, protocol: tcp}]
`;
const nodeState = (name: string, ip: string, policy = '') => `node: {name: ${name}, addresses: [${ip}]}\n${ENDPOINTS}${services(ip)}${policy}`;

describe('two nodes, each with its own datapath: remote backends, SNAT, traffic policies, hairpin, policy across nodes', { skip: notRoot }, () => {
  const tag = `pnm${process.pid % 100000}`;
  const ns = { lan: `${tag}l`, a: `${tag}a`, b: `${tag}b`, client: `${tag}c`, podA: `${tag}pa`, podA2: `${tag}pa2`, podB: `${tag}pb` };
  const scratch = mkdtempSync('/tmp/prep-node-dpmn-test-');
  const nodes = { a: { ns: ns.a, bpffs: `${scratch}/bpffs-a`, cgroup: '', mounted: false }, b: { ns: ns.b, bpffs: `${scratch}/bpffs-b`, cgroup: '', mounted: false } };
  const servers: ChildProcess[] = [];
  const installed: Record<string, { snat_port_min?: number; snat_port_max?: number; snat_ports_from?: string }> = {};

  const dp = (node: 'a' | 'b', args: string[], input?: string) => run('nsenter', [`--net=/run/netns/${nodes[node].ns}`, DP, '--bpffs', nodes[node].bpffs, ...args], input);
  const connect = async (from: string, host: string, port: number, timeoutMs = 1500): Promise<{ ok: boolean; reply?: string; error?: string }> => {
    const r = await run('nsenter', [`--net=/run/netns/${from}`, process.execPath, '-e', CLIENT, host, String(port), String(timeoutMs)]);
    return JSON.parse(r.stdout.trim()) as { ok: boolean; reply?: string; error?: string };
  };
  const drops = async (node: 'a' | 'b'): Promise<Record<string, number>> => {
    const r = await dp(node, ['status']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    return (JSON.parse(r.stdout) as { drops: Record<string, number> }).drops;
  };
  const apply = async (node: 'a' | 'b', yaml: string) => {
    const lines = fullSync(compileState(parseState(yaml, `node-${node}.yaml`)).entries).lines;
    const r = await dp(node, ['apply'], `${lines.join('\n')}\n`);
    assert.equal(r.code, 0, r.stdout + r.stderr);
  };
  /** "<pod> <peer address> <peer port>" as the backend answered */
  const seen = (reply: string | undefined) => {
    const [pod, addr, port] = (reply ?? '').split(' ');
    return { pod, addr, port: Number(port) };
  };

  function cleanup(): void {
    const quiet = { stdio: 'ignore' as const };
    for (const n of Object.values(nodes)) {
      try {
        if (existsSync(`${n.bpffs}/prep-node`)) execFileSync('nsenter', [`--net=/run/netns/${n.ns}`, DP, '--bpffs', n.bpffs, 'remove'], quiet);
      } catch { /* reported by the test that left it */ }
    }
    for (const s of servers) s.kill('SIGKILL');
    for (const n of Object.values(ns)) {
      try { execFileSync('ip', ['netns', 'del', n], quiet); } catch { /* not created */ }
    }
    for (const n of Object.values(nodes)) {
      for (let i = 0; n.cgroup && existsSync(n.cgroup) && i < 50; i++) {
        try { rmdirSync(n.cgroup); } catch { execFileSync('sleep', ['0.1']); }
      }
      if (n.mounted) {
        try { execFileSync('umount', [n.bpffs], quiet); n.mounted = false; } catch { /* busy: left for the next run */ }
      }
    }
    rmSync(scratch, { recursive: true, force: true });
  }
  const onSignal = (sig: NodeJS.Signals) => { cleanup(); process.kill(process.pid, sig); };

  /** a veth from namespace `a` (name devA, address addrA) to `b` (devB, addrB); addr "" = none */
  async function link(a: string, devA: string, addrA: string, b: string, devB: string, addrB: string): Promise<void> {
    await must('ip', '-n', a, 'link', 'add', devA, 'type', 'veth', 'peer', 'name', devB, 'netns', b);
    for (const [n, dev, addr] of [[a, devA, addrA], [b, devB, addrB]] as const) {
      if (addr) await must('ip', '-n', n, 'addr', 'add', addr, 'dev', dev);
      await must('ip', '-n', n, 'link', 'set', dev, 'up');
    }
  }

  before(async () => {
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    await must('make', '-C', BPF_DIR, '-j1', 'loader');
    const v2 = ['/sys/fs/cgroup', '/sys/fs/cgroup/unified'].find((p) => existsSync(`${p}/cgroup.procs`) && existsSync(`${p}/cgroup.controllers`));
    assert.ok(v2, 'no cgroup v2 mount');
    for (const [k, n] of Object.entries(nodes)) {
      // a bpffs mount is its own instance: each node's pins (prep-node/) are private to it
      mkdirSync(n.bpffs);
      await must('mount', '-t', 'bpf', 'bpf', n.bpffs);
      n.mounted = true;
      n.cgroup = `${v2}/${tag}-${k}`;
      mkdirSync(n.cgroup);
    }
    for (const n of Object.values(ns)) {
      await must('ip', 'netns', 'add', n);
      await must('ip', '-n', n, 'link', 'set', 'lo', 'up');
    }
    // a new namespace inherits the host's IPv4 conf (rp_filter is often 1 or 2): the nodes here have
    // no route back to a ClusterIP (no default route), so reverse-path filtering would drop the replies
    // that tc has just reverse-translated to come from it; cilium sets rp_filter 0 on its devices too
    for (const n of [ns.a, ns.b]) await must('ip', 'netns', 'exec', n, 'sysctl', '-qw', 'net.ipv4.conf.all.rp_filter=0', 'net.ipv4.conf.default.rp_filter=0');
    await must('ip', '-n', ns.lan, 'link', 'add', 'br0', 'type', 'bridge');
    await must('ip', '-n', ns.lan, 'link', 'set', 'br0', 'up');
    for (const [n, port, addr] of [[ns.a, 'la', `${NODE_A}/24`], [ns.b, 'lb', `${NODE_B}/24`], [ns.client, 'lc', `${CLIENT_IP}/24`]] as const) {
      await link(n, 'eth0', addr, ns.lan, port, '');
      await must('ip', '-n', ns.lan, 'link', 'set', port, 'master', 'br0');
    }
    await link(ns.podA, 'eth0', `${POD_A}/24`, ns.a, 'va', '198.18.1.1/24');
    await link(ns.podA2, 'eth0', `${POD_A2}/24`, ns.a, 'va2', '');
    await must('ip', '-n', ns.a, 'route', 'add', `${POD_A2}/32`, 'dev', 'va2'); // node-a answers ARP for 198.18.1.1 on va2 too
    await link(ns.podB, 'eth0', `${POD_B}/24`, ns.b, 'vb', '198.18.2.1/24');
    for (const [pod, gw] of [[ns.podA, '198.18.1.1'], [ns.podA2, '198.18.1.1'], [ns.podB, '198.18.2.1']] as const) await must('ip', '-n', pod, 'route', 'add', 'default', 'via', gw);
    // the pod network is routed between the nodes; the client knows only the node LAN
    await must('ip', '-n', ns.a, 'route', 'add', '198.18.2.0/24', 'via', NODE_B);
    await must('ip', '-n', ns.b, 'route', 'add', '198.18.1.0/24', 'via', NODE_A);
    for (const n of [ns.a, ns.b]) await must('ip', 'netns', 'exec', n, 'sysctl', '-qw', 'net.ipv4.ip_forward=1');

    for (const [n, name] of [[ns.podA, 'pod-a'], [ns.podA2, 'pod-a2'], [ns.podB, 'pod-b']] as const) {
      const s = spawn('nsenter', [`--net=/run/netns/${n}`, process.execPath, '-e', SERVER, name], { stdio: ['ignore', 'pipe', 'inherit'] });
      servers.push(s);
      await new Promise<void>((resolve, reject) => {
        s.stdout?.once('data', () => resolve());
        s.once('exit', (code) => reject(new Error(`server ${name} exited ${code}`)));
      });
    }
    const caps = ['--cap', 'services=1024,backends=1024,conntrack=4096,conntrack6=1024'];
    for (const [k, devs] of [['a', ['eth0', 'va', 'va2']], ['b', ['eth0', 'vb']]] as const) {
      const r = await dp(k, ['install', '--cgroup', nodes[k].cgroup, ...devs.flatMap((d) => ['--tc-dev', d]), ...caps]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      installed[k] = JSON.parse(r.stdout) as (typeof installed)[string];
    }
    await apply('a', nodeState('node-a', NODE_A));
    await apply('b', nodeState('node-b', NODE_B));
  });

  after(cleanup);

  it('install picks the SNAT source ports above the node\'s ip_local_port_range', async () => {
    const range = (await must('ip', 'netns', 'exec', ns.a, 'cat', '/proc/sys/net/ipv4/ip_local_port_range')).trim().split(/\s+/).map(Number);
    assert.equal(installed.a?.snat_port_min, range[1]! + 1, JSON.stringify(installed.a));
    assert.equal(installed.a?.snat_port_max, 65535);
    assert.match(installed.a?.snat_ports_from ?? '', /above ip_local_port_range/);
    // the two installs are separate: each node's pins live in its own bpffs
    assert.ok(existsSync(`${nodes.a.bpffs}/prep-node/maps/conntrack`) && existsSync(`${nodes.b.bpffs}/prep-node/maps/conntrack`));
  });

  it('[sig-network] Services should serve a basic endpoint from pods: pod on node-a → ClusterIP → backend on node-b, the pod\'s address kept', async () => {
    const r = await connect(ns.podA, CLUSTER_IP, 80, 10_000);
    assert.equal(r.ok, true, JSON.stringify(r));
    assert.deepEqual({ ...seen(r.reply), port: 0 }, { pod: 'pod-b', addr: POD_A, port: 0 }, r.reply);
  });

  it('[sig-network] Services should be able to create a functioning NodePort service: client → node-a:30080 → backend on node-b, SNATed to node-a', async () => {
    const r = await connect(ns.client, NODE_A, 30080, 10_000);
    assert.equal(r.ok, true, JSON.stringify(r));
    const s = seen(r.reply);
    assert.equal(s.pod, 'pod-b');
    assert.equal(s.addr, NODE_A, 'the backend sees the node\'s address (masquerade), so its reply returns through node-a');
    assert.ok(s.port >= installed.a!.snat_port_min! && s.port <= installed.a!.snat_port_max!, `source port ${s.port} in the SNAT range`);
    // and on node-b's own NodePort the same backend is local: no SNAT needed, none done
    const local = await connect(ns.client, NODE_B, 30080, 10_000);
    assert.equal(local.ok, true, JSON.stringify(local));
    assert.equal(seen(local.reply).addr, CLIENT_IP);
  });

  it('[sig-network] LoadBalancers ESIPP [Slow] should work for type=NodePort: externalTrafficPolicy Local keeps the client address; a node without an endpoint drops with NO_LOCAL_BACKEND', async () => {
    const r = await connect(ns.client, NODE_B, 30081, 10_000);
    assert.equal(r.ok, true, JSON.stringify(r));
    assert.deepEqual({ ...seen(r.reply), port: 0 }, { pod: 'pod-b', addr: CLIENT_IP, port: 0 }, 'source IP preserved');
    const before = await drops('a');
    assert.deepEqual(await connect(ns.client, NODE_A, 30081), { ok: false, error: 'timeout' });
    const after = await drops('a');
    assert.ok(after.NO_LOCAL_BACKEND! >= before.NO_LOCAL_BACKEND! + 1, `node-a NO_LOCAL_BACKEND ${before.NO_LOCAL_BACKEND} -> ${after.NO_LOCAL_BACKEND}`);
  });

  it('[sig-network] Services should respect internalTrafficPolicy=Local Pod to Pod: no endpoint on node-a, dropped there with NO_LOCAL_BACKEND', async () => {
    const before = await drops('a');
    assert.deepEqual(await connect(ns.podA, CLUSTER_IP_ITP, 80), { ok: false, error: 'timeout' });
    const after = await drops('a');
    assert.ok(after.NO_LOCAL_BACKEND! >= before.NO_LOCAL_BACKEND! + 1, `NO_LOCAL_BACKEND ${before.NO_LOCAL_BACKEND} -> ${after.NO_LOCAL_BACKEND}`);
    assert.equal(after.NO_BACKEND, before.NO_BACKEND);
  });

  it('[sig-network] Services should allow pods to hairpin back to themselves through services', async () => {
    const r = await connect(ns.podA, HAIRPIN_IP, 80, 10_000);
    assert.equal(r.ok, true, JSON.stringify(r));
    assert.deepEqual({ ...seen(r.reply), port: 0 }, { pod: 'pod-a', addr: NODE_A, port: 0 }, 'the pod reaches itself, SNATed to its node so the reply comes back through it');
  });

  it('[sig-network] Netpol NetworkPolicy between server and client should enforce policy to allow traffic from pods within server namespace based on PodSelector: by a remote pod\'s identity across nodes', async () => {
    // before the policy both pods of node-a reach pod-b through the ClusterIP (so a later refusal is the policy's)
    assert.equal((await connect(ns.podA2, CLUSTER_IP, 80, 10_000)).ok, true);
    await apply('b', nodeState('node-b', NODE_B, POLICY));
    const r = await connect(ns.podA, CLUSTER_IP, 80, 10_000);
    assert.equal(r.ok, true, JSON.stringify(r));
    assert.equal(seen(r.reply).pod, 'pod-b');
    const before = await drops('b');
    assert.deepEqual(await connect(ns.podA2, CLUSTER_IP, 80), { ok: false, error: 'timeout' }, 'app=other is not allowed');
    const after = await drops('b');
    assert.ok(after.POLICY_DEFAULT_DENY! >= before.POLICY_DEFAULT_DENY! + 1, `node-b POLICY_DEFAULT_DENY ${before.POLICY_DEFAULT_DENY} -> ${after.POLICY_DEFAULT_DENY}`);
  });
});
