// IPv6 SNAT with real traffic (issue 13 item 2 on IPv6): two "nodes" as network namespaces, each
// with its own datapath instance (own bpffs mount, own empty cgroup, so every service flow goes
// through tc_lb6), pods as namespaces behind each node on a routed IPv6 pod network, and an outside
// client on the node LAN. The nodes' state is compiled by prep-node's compiler (node.addresses IPv6
// only: node_cfg6) and applied with the loader; the traffic is real TCP over IPv6 through the
// kernel's routing, forwarded by tc_lb6's FIB lookup where the source becomes the node's address.
// Cases mirror sig-network e2e (kubernetes test/e2e/network/service.go, loadbalancer.go) on IPv6.
//
//                                  lan ns: bridge br0 (fd00:19::/64)
//        ┌──────────────────────────────┼──────────────────────────────┐
//   client ns fd00:19::100      node-a ns eth0 fd00:19::1          node-b ns eth0 fd00:19::2
//                               fd00:18:2::/64 via node-b          fd00:18:1::/64 via node-a
//                               va ─ pod-a fd00:18:1::2             vb ─ pod-b fd00:18:2::2
//   tc_lb ingress: node-a eth0, va; node-b eth0, vb. TCP servers on [::]:8080 in both pods answer
//   "<pod> <the peer address and port they see>". Addresses only inside namespaces this test made
//   (fd00::/8), all removed afterwards (also on failure and on SIGINT/SIGTERM).
//
// Needs root, clang, bpftool, iproute2, nsenter. Run under the shared lock (README "Tests").
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, rmdirSync } from 'node:fs';
import { compileState } from '../../src/datapath/compile.js';
import { fullSync } from '../../src/datapath/sync.js';
import { parseState } from '../../src/datapath/state.js';
import { BPF_DIR, DP, must, notRoot, run } from '../helpers/dp-sandbox.js';



// a TCP server on :8080 that answers each connection with its name and the peer it sees
const SERVER = `const net=require('net');net.createServer(s=>{s.end(process.argv[1]+' '+s.remoteAddress+' '+s.remotePort)}).listen(8080,'::',()=>console.log('listening'))`;
// one connection attempt: {"ok":true,"reply":...} or {"ok":false,"error":...}; timeout in ms is argv[3]
const CLIENT = `const net=require('net');const s=net.connect({host:process.argv[1],port:+process.argv[2],timeout:+process.argv[3]});let d='';s.on('data',x=>d+=x);s.on('end',()=>{console.log(JSON.stringify({ok:true,reply:d}))});s.on('timeout',()=>{console.log(JSON.stringify({ok:false,error:'timeout'}));s.destroy()});s.on('error',e=>{console.log(JSON.stringify({ok:false,error:e.code}))})`;

const NODE_A = 'fd00:19::1';
const NODE_B = 'fd00:19::2';
const CLIENT_IP = 'fd00:19::100';
const POD_A = 'fd00:18:1::2';
const POD_B = 'fd00:18:2::2';
const HAIRPIN_IP = 'fd00:18:ff::20';

const ENDPOINTS = `endpoints:
  - {name: pod-a, ip: "${POD_A}", nodeName: node-a, labels: {app: client}}
  - {name: pod-b, ip: "${POD_B}", nodeName: node-b, labels: {app: web}}
`;
// the same Services on both nodes, as the agent writes them: IPv6 NodePorts on each node's IPv6 address
const services = (nodeIp: string) => `services:
  - name: web-nodeport
    vip: "${nodeIp}"
    port: 30080
    protocol: tcp
    external: true
    backends: [{ip: "${POD_B}", port: 8080, nodeName: node-b}]
  - name: web-nodeport-local
    vip: "${nodeIp}"
    port: 30081
    protocol: tcp
    external: true
    externalTrafficPolicy: Local
    backends: [{ip: "${POD_B}", port: 8080, nodeName: node-b}]
  - name: hairpin
    vip: "${HAIRPIN_IP}"
    port: 80
    protocol: tcp
    backends: [{ip: "${POD_A}", port: 8080, nodeName: node-a}]
`;
const nodeState = (name: string, ip: string) => `node: {name: ${name}, addresses: ["${ip}"]}\n${ENDPOINTS}${services(ip)}`;

describe('IPv6 SNAT on two nodes: NodePort to a remote backend, externalTrafficPolicy Local, hairpin', { skip: notRoot }, () => {
  const tag = `pn6s${process.pid % 100000}`;
  const ns = { lan: `${tag}l`, a: `${tag}a`, b: `${tag}b`, client: `${tag}c`, podA: `${tag}pa`, podB: `${tag}pb` };
  const scratch = mkdtempSync('/tmp/prep-node-dpsnat6-test-');
  const nodes = { a: { ns: ns.a, bpffs: `${scratch}/bpffs-a`, cgroup: '', mounted: false }, b: { ns: ns.b, bpffs: `${scratch}/bpffs-b`, cgroup: '', mounted: false } };
  const servers: ChildProcess[] = [];
  const installed: Record<string, { snat_port_min?: number; snat_port_max?: number }> = {};

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
      mkdirSync(n.bpffs);
      await must('mount', '-t', 'bpf', 'bpf', n.bpffs);
      n.mounted = true;
      n.cgroup = `${v2}/${tag}-${k}`;
      mkdirSync(n.cgroup);
    }
    for (const n of Object.values(ns)) {
      await must('ip', 'netns', 'add', n);
      // no duplicate address detection: addresses (link-local ones too) usable at once
      await must('ip', 'netns', 'exec', n, 'sysctl', '-qw', 'net.ipv6.conf.all.accept_dad=0', 'net.ipv6.conf.default.accept_dad=0');
      await must('ip', '-n', n, 'link', 'set', 'lo', 'up');
    }
    await must('ip', '-n', ns.lan, 'link', 'add', 'br0', 'type', 'bridge');
    await must('ip', '-n', ns.lan, 'link', 'set', 'br0', 'up');
    for (const [n, port, addr] of [[ns.a, 'la', `${NODE_A}/64`], [ns.b, 'lb', `${NODE_B}/64`], [ns.client, 'lc', `${CLIENT_IP}/64`]] as const) {
      await link(n, 'eth0', addr, ns.lan, port, '');
      await must('ip', '-n', ns.lan, 'link', 'set', port, 'master', 'br0');
    }
    await link(ns.podA, 'eth0', `${POD_A}/64`, ns.a, 'va', 'fd00:18:1::1/64');
    await link(ns.podB, 'eth0', `${POD_B}/64`, ns.b, 'vb', 'fd00:18:2::1/64');
    for (const [pod, gw] of [[ns.podA, 'fd00:18:1::1'], [ns.podB, 'fd00:18:2::1']] as const) await must('ip', '-n', pod, '-6', 'route', 'add', 'default', 'via', gw);
    // the pod network is routed between the nodes; the client knows only the node LAN
    await must('ip', '-n', ns.a, '-6', 'route', 'add', 'fd00:18:2::/64', 'via', NODE_B);
    await must('ip', '-n', ns.b, '-6', 'route', 'add', 'fd00:18:1::/64', 'via', NODE_A);
    for (const n of [ns.a, ns.b]) await must('ip', 'netns', 'exec', n, 'sysctl', '-qw', 'net.ipv6.conf.all.forwarding=1');

    for (const [n, name] of [[ns.podA, 'pod-a'], [ns.podB, 'pod-b']] as const) {
      const s = spawn('nsenter', [`--net=/run/netns/${n}`, process.execPath, '-e', SERVER, name], { stdio: ['ignore', 'pipe', 'inherit'] });
      servers.push(s);
      await new Promise<void>((resolve, reject) => {
        s.stdout?.once('data', () => resolve());
        s.once('exit', (code) => reject(new Error(`server ${name} exited ${code}`)));
      });
    }
    const caps = ['--cap', 'services=1024,backends=1024,conntrack=4096,conntrack6=1024'];
    for (const [k, devs] of [['a', ['eth0', 'va']], ['b', ['eth0', 'vb']]] as const) {
      const r = await dp(k, ['install', '--cgroup', nodes[k].cgroup, ...devs.flatMap((d) => ['--tc-dev', d]), ...caps]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      installed[k] = JSON.parse(r.stdout) as (typeof installed)[string];
    }
    await apply('a', nodeState('node-a', NODE_A));
    await apply('b', nodeState('node-b', NODE_B));
  });

  after(cleanup);

  it('the IPv6 node address is written to node_cfg6', async () => {
    const r = await dp('a', ['dump', 'node_cfg6']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    // key 0 -> fd00:0019:0000:0000:0000:0000:0000:0001, flags 0
    assert.match(r.stdout, /^00000000\s+fd00001900000000000000000000000100000000$/m, r.stdout);
  });

  it('[sig-network] Services should be able to create a functioning NodePort service (IPv6): client → [node-a]:30080 → backend on node-b, SNATed to node-a\'s IPv6 address', async () => {
    const r = await connect(ns.client, NODE_A, 30080, 10_000);
    assert.equal(r.ok, true, JSON.stringify(r));
    const s = seen(r.reply);
    assert.equal(s.pod, 'pod-b');
    assert.equal(s.addr, NODE_A, 'the backend sees the node\'s address (masquerade), so its reply returns through node-a');
    assert.ok(s.port >= installed.a!.snat_port_min! && s.port <= installed.a!.snat_port_max!, `source port ${s.port} in the SNAT range`);
    // on node-b's own NodePort the backend is local: no SNAT
    const local = await connect(ns.client, NODE_B, 30080, 10_000);
    assert.equal(local.ok, true, JSON.stringify(local));
    assert.equal(seen(local.reply).addr, CLIENT_IP);
  });

  it('[sig-network] LoadBalancers ESIPP [Slow] should work for type=NodePort (IPv6): externalTrafficPolicy Local keeps the client address; a node without an endpoint drops with NO_LOCAL_BACKEND', async () => {
    const r = await connect(ns.client, NODE_B, 30081, 10_000);
    assert.equal(r.ok, true, JSON.stringify(r));
    assert.deepEqual({ ...seen(r.reply), port: 0 }, { pod: 'pod-b', addr: CLIENT_IP, port: 0 }, 'source IP preserved');
    const before = await drops('a');
    assert.deepEqual(await connect(ns.client, NODE_A, 30081), { ok: false, error: 'timeout' });
    const after = await drops('a');
    assert.ok(after.NO_LOCAL_BACKEND! >= before.NO_LOCAL_BACKEND! + 1, `node-a NO_LOCAL_BACKEND ${before.NO_LOCAL_BACKEND} -> ${after.NO_LOCAL_BACKEND}`);
  });

  it('[sig-network] Services should allow pods to hairpin back to themselves through services (IPv6)', async () => {
    const r = await connect(ns.podA, HAIRPIN_IP, 80, 10_000);
    assert.equal(r.ok, true, JSON.stringify(r));
    assert.deepEqual({ ...seen(r.reply), port: 0 }, { pod: 'pod-a', addr: NODE_A, port: 0 }, 'the pod reaches itself, SNATed to its node so the reply comes back through it');
  });

  it('without an IPv6 node address the same NodePort flow is dropped with SNAT_NO_ADDRESS, counted', async () => {
    // the state schema refuses a remote backend of an external address without an IPv6 node
    // address, so the loader's own `clear` takes node_cfg6 away (a node whose sync left it empty)
    const r = await dp('a', ['apply'], 'clear node_cfg6\n');
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const before = await drops('a');
    assert.deepEqual(await connect(ns.client, NODE_A, 30080), { ok: false, error: 'timeout' });
    const after = await drops('a');
    assert.ok((after.SNAT_NO_ADDRESS ?? 0) >= (before.SNAT_NO_ADDRESS ?? 0) + 1, `SNAT_NO_ADDRESS ${before.SNAT_NO_ADDRESS} -> ${after.SNAT_NO_ADDRESS}`);
    await apply('a', nodeState('node-a', NODE_A));
  });
});
