// Several nodes on this machine (issue 13 items 2, 7 and 9): two "nodes" as network namespaces, each
// with its own datapath instance (its own bpffs mount, its own empty cgroup for the socket programs
// so every service flow here goes through tc, tc_lb on the node's uplink and on its pod veths), pods
// as namespaces behind each node on a routed pod network, and an outside client on the node LAN.
// The state each node gets is compiled by prep-node's own compiler and applied with the loader; the
// traffic is real TCP and UDP through the kernel's routing. The topology is dual-stack: every node,
// pod and link has an fd00::/8 address beside its IPv4 one, routes for both families. Each case is
// named after the sig-network e2e case it mirrors (kubernetes test/e2e/network/service.go,
// loadbalancer.go, conntrack.go, dual_stack.go, netpol/network_policy.go) where one exists.
//
//                         lan ns: bridge br0 (198.19.0.0/24, fd00:19::/64)
//        ┌──────────────────────────────┼──────────────────────────────┐
//   client ns 198.19.0.100      node-a ns eth0 198.19.0.1         node-b ns eth0 198.19.0.2
//             fd00:19::100                fd00:19::1                        fd00:19::2
//                               pod nets of node-b via node-b     pod nets of node-a via node-a
//                               va  ─ pod-a  198.18.1.2 app=client vb  ─ pod-b  198.18.2.2 app=web
//                                            fd00:18:1::2                       fd00:18:2::2
//                               va2 ─ pod-a2 198.18.1.3 app=other  vb2 ─ pod-b2 198.18.2.3 app=bulk
//                                            fd00:18:1::3          (mtu 1280)   fd00:18:2::3
//   Node-side veths carry fe80::1, the pods' IPv6 gateway (as 198.18.x.1 is their IPv4 one); only
//   node-b's side of vb2 is small, so pod-b2 still advertises the MSS of a 1500-byte link and node-b
//   must tell the sender (ICMP fragmentation needed / ICMPv6 packet too big).
//   tc_lb ingress: node-a eth0, va, va2; node-b eth0, vb, vb2. Every pod serves, on both families,
//   TCP :8080 answering "<pod> <the peer address and port it sees>", TCP :8081 answering the byte count
//   of what it received, UDP :5353 answering each datagram with "<pod> <peer address> <peer port>".
//
// Needs root, clang, bpftool, iproute2, nsenter. Run under the shared lock (README "Tests").
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, rmdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { compileState } from '../../src/datapath/compile.js';
import { removedUdpBackends } from '../../src/datapath/ct-flush.js';
import { parseState } from '../../src/datapath/state.js';
import { incrementalSync } from '../../src/datapath/sync.js';
import type { CurrentEntries } from '../../src/datapath/writer.js';

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

// every pod's servers, one socket per family (IPv6 ones v6-only, so an IPv4 peer is never seen as
// ::ffff:a.b.c.d): TCP :8080 answers each connection with the pod's name and the peer it sees, TCP
// :8081 answers with the number of bytes it received once the client ends, UDP :5353 answers each
// datagram with the pod's name and the peer it sees
const SERVER = `const net=require('net'),dgram=require('dgram'),name=process.argv[1];let n=0;const ready=()=>{if(++n===6)console.log('listening')};
  for(const [host,v6] of [['0.0.0.0',false],['::',true]]){
    net.createServer(s=>{s.end(name+' '+s.remoteAddress+' '+s.remotePort)}).listen({port:8080,host,ipv6Only:v6},ready);
    net.createServer(s=>{let c=0;s.on('data',d=>{c+=d.length});s.on('end',()=>s.end(String(c)));s.on('error',()=>{})}).listen({port:8081,host,ipv6Only:v6},ready);
    const u=dgram.createSocket({type:v6?'udp6':'udp4',ipv6Only:v6});u.on('message',(m,r)=>u.send(name+' '+r.address+' '+r.port,r.port,r.address));u.bind(5353,host,ready)}`;
// one connection attempt: {"ok":true,"reply":...} or {"ok":false,"error":...}; timeout in ms is argv[3]
const CLIENT = `const net=require('net');const s=net.connect({host:process.argv[1],port:+process.argv[2],timeout:+process.argv[3]});let d='';s.on('data',x=>d+=x);s.on('end',()=>{console.log(JSON.stringify({ok:true,reply:d}))});s.on('timeout',()=>{console.log(JSON.stringify({ok:false,error:'timeout'}));s.destroy()});s.on('error',e=>{console.log(JSON.stringify({ok:false,error:e.code}))})`;

// TCP: BYTES to host:port in one go; prints the backend's count and the peer the socket talks to
const BULK_CLIENT = `let peer;const s=require('net').connect(+process.argv[2],process.argv[1],()=>{peer=s.remoteAddress;s.end(Buffer.alloc(+process.argv[3],7))});
  let r='';s.on('data',d=>{r+=d});s.on('end',()=>{console.log(JSON.stringify({count:r,peer}));process.exit(0)});
  s.on('error',e=>{console.error(e.message);process.exit(2)});setTimeout(()=>{console.error('timeout: the transfer stalled');process.exit(3)},20000)`;
// UDP: one socket (one flow) to host:port; a datagram per line on stdin, each answer printed as
// {"reply","from","port"}; "bound" once the socket is ready
const UDP_CLIENT = `const v6=process.argv[1].includes(':'),s=require('dgram').createSocket(v6?'udp6':'udp4');
  s.on('message',(m,r)=>console.log(JSON.stringify({reply:String(m),from:r.address,port:r.port})));
  s.bind(0,()=>{console.log('bound');require('readline').createInterface({input:process.stdin}).on('line',()=>s.send('q',+process.argv[2],process.argv[1]))});
  process.stdin.on('end',()=>setTimeout(()=>process.exit(0),100))`;

const NODE_A = '198.19.0.1';
const NODE_B = '198.19.0.2';
const CLIENT_IP = '198.19.0.100';
const POD_A = '198.18.1.2';
const POD_A2 = '198.18.1.3';
const POD_B = '198.18.2.2';
const POD_B2 = '198.18.2.3';
const CLUSTER_IP = '198.18.255.10';
const CLUSTER_IP_ITP = '198.18.255.11';
const HAIRPIN_IP = '198.18.255.20';
const BULK_IP = '198.18.255.30';
const NODE_A6 = 'fd00:19::1';
const NODE_B6 = 'fd00:19::2';
const CLIENT_IP6 = 'fd00:19::100';
const POD_A6 = 'fd00:18:1::2';
const POD_A26 = 'fd00:18:1::3';
const POD_B6 = 'fd00:18:2::2';
const POD_B26 = 'fd00:18:2::3';
const CLUSTER_IP6 = 'fd00:96::10';
const BULK_IP6 = 'fd00:96::30';
const HAIRPIN_IP6 = 'fd00:96::20';
const SMALL_MTU = 1280;
const BYTES = 512 * 1024;

// every pod of the cluster, on every node (the agent lists them from the API server): local ones go
// into the node's endpoints maps, the others into its ipcaches with the same identity, both families
const ENDPOINTS = `endpoints:
  - {name: pod-a, ip: ${POD_A}, ip6: '${POD_A6}', nodeName: node-a, labels: {app: client}}
  - {name: pod-a2, ip: ${POD_A2}, ip6: '${POD_A26}', nodeName: node-a, labels: {app: other}}
  - {name: pod-b, ip: ${POD_B}, ip6: '${POD_B6}', nodeName: node-b, labels: {app: web}}
  - {name: pod-b2, ip: ${POD_B2}, ip6: '${POD_B26}', nodeName: node-b, labels: {app: bulk}}
`;
/** compiled entries as the maps hold them after an apply */
function contents(entries: ReturnType<typeof compileState>['entries']): CurrentEntries {
  const out: CurrentEntries = {};
  for (const e of entries) (out[e.map] ??= new Map()).set(e.keyHex, e.valueHex);
  return out;
}
interface Variant { policy?: boolean; dns6?: string }
// the same Services on both nodes, as the agent would write them: NodePorts on each node's addresses;
// the IPv6 UDP Service's backend (pod-b's or pod-b2's address) is what a case changes
const services = (nodeIp: string, nodeIp6: string, v: Variant) => `services:
  - name: web6-nodeport
    vip: '${nodeIp6}'
    port: 30080
    protocol: tcp
    external: true
    backends: [{ip: '${POD_B6}', port: 8080, nodeName: node-b}]
  - name: web6-nodeport-local
    vip: '${nodeIp6}'
    port: 30081
    protocol: tcp
    external: true
    externalTrafficPolicy: Local
    backends: [{ip: '${POD_B6}', port: 8080, nodeName: node-b}]
  - name: hairpin6
    vip: '${HAIRPIN_IP6}'
    port: 80
    protocol: tcp
    backends: [{ip: '${POD_A6}', port: 8080, nodeName: node-a}]
  - name: web6
    vip: '${CLUSTER_IP6}'
    port: 80
    protocol: tcp
    backends: [{ip: '${POD_B6}', port: 8080, nodeName: node-b}]
  - name: dns6
    vip: '${CLUSTER_IP6}'
    port: 53
    protocol: udp
    backends: [{ip: '${v.dns6 ?? POD_B6}', port: 5353, nodeName: node-b}]
  - name: bulk
    vip: ${BULK_IP}
    port: 80
    protocol: tcp
    backends: [{ip: ${POD_B2}, port: 8081, nodeName: node-b}]
  - name: bulk6
    vip: '${BULK_IP6}'
    port: 80
    protocol: tcp
    backends: [{ip: '${POD_B26}', port: 8081, nodeName: node-b}]
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
const nodeState = (name: string, ip: string, v: Variant = {}) => {
  const ip6 = ip === NODE_A ? NODE_A6 : NODE_B6;
  return `node: {name: ${name}, addresses: [${ip}, '${ip6}']}\n${ENDPOINTS}${services(ip, ip6, v)}${v.policy ? POLICY : ''}`;
};

describe('two dual-stack nodes, each with its own datapath: remote backends, SNAT, traffic policies, hairpin, policy across nodes, UDP backend change, path MTU; IPv4 and IPv6', { skip: notRoot }, () => {
  const tag = `pnm${process.pid % 100000}`;
  const ns = { lan: `${tag}l`, a: `${tag}a`, b: `${tag}b`, client: `${tag}c`, podA: `${tag}pa`, podA2: `${tag}pa2`, podB: `${tag}pb`, podB2: `${tag}pb2` };
  const scratch = mkdtempSync('/tmp/prep-node-dpmn-test-');
  const nodes = { a: { ns: ns.a, bpffs: `${scratch}/bpffs-a`, cgroup: '', mounted: false }, b: { ns: ns.b, bpffs: `${scratch}/bpffs-b`, cgroup: '', mounted: false } };
  const servers: ChildProcess[] = [];
  const clients: ChildProcess[] = [];
  let dns6Flows = 0; // UDP flows node-a has translated to [POD_B6]:5353 (each holds two conntrack6 entries)
  // what each node's maps hold (every apply is incremental against it, as the agent's syncs are)
  const current: Record<'a' | 'b', CurrentEntries> = { a: {}, b: {} };
  const installed: Record<string, { snat_port_min?: number; snat_port_max?: number; snat_ports_from?: string }> = {};

  const dp = (node: 'a' | 'b', args: string[], input?: string) => run('nsenter', [`--net=/run/netns/${nodes[node].ns}`, DP, '--bpffs', nodes[node].bpffs, ...args], input);
  // the default timeout is for connections a case expects dropped: the first SYN is dropped at once and
  // each such case also asserts the drop counter, so a short wait cannot pass a slow success off as a drop
  const connect = async (from: string, host: string, port: number, timeoutMs = 700): Promise<{ ok: boolean; reply?: string; error?: string }> => {
    const r = await run('nsenter', [`--net=/run/netns/${from}`, process.execPath, '-e', CLIENT, host, String(port), String(timeoutMs)]);
    return JSON.parse(r.stdout.trim()) as { ok: boolean; reply?: string; error?: string };
  };
  const drops = async (node: 'a' | 'b'): Promise<Record<string, number>> => {
    const r = await dp(node, ['status']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    return (JSON.parse(r.stdout) as { drops: Record<string, number> }).drops;
  };
  const apply = async (node: 'a' | 'b', yaml: string) => {
    const entries = compileState(parseState(yaml, `node-${node}.yaml`)).entries;
    const r = await dp(node, ['apply'], `${incrementalSync(entries, current[node]).lines.join('\n')}\n`);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const was = current[node];
    current[node] = contents(entries);
    return { was, entries };
  };
  const applyBoth = async (v: Variant = {}) => {
    await apply('a', nodeState('node-a', NODE_A, v));
    await apply('b', nodeState('node-b', NODE_B, v));
  };
  /** the path MTU cached for `dst` in namespace `n` (a number), or undefined */
  const cachedMtu = async (n: string, dst: string) => {
    const m = /\bmtu (\d+)/.exec(await must('ip', '-n', n, 'route', 'get', dst));
    return m ? Number(m[1]) : undefined;
  };
  /** a UDP client that keeps one socket (one flow); ask() sends a datagram and returns the answer */
  const udpFlow = async (from: string, host: string, port: number) => {
    const c = spawn('nsenter', [`--net=/run/netns/${from}`, process.execPath, '-e', UDP_CLIENT, host, String(port)], { stdio: ['pipe', 'pipe', 'inherit'] });
    clients.push(c);
    const lines: string[] = [];
    let buf = '';
    c.stdout.on('data', (d: Buffer) => {
      const parts = (buf + d.toString()).split('\n');
      buf = parts.pop()!;
      lines.push(...parts.filter(Boolean));
    });
    const waitFor = async (n: number) => {
      for (let i = 0; i < 100 && lines.length < n; i++) await new Promise((r) => setTimeout(r, 30));
      assert.ok(lines.length >= n, `no answer from ${host}:${port} (lines so far: ${lines.join(' | ')})`);
      return lines[n - 1]!;
    };
    assert.equal(await waitFor(1), 'bound');
    return {
      ask: async () => {
        const n = lines.length + 1;
        c.stdin.write('send\n');
        return JSON.parse(await waitFor(n)) as { reply: string; from: string; port: number };
      },
      end: () => c.stdin.end(),
    };
  };
  /** BYTES over TCP from namespace `from` to host:port: the backend's count and the peer address */
  const bulk = async (from: string, host: string) => {
    const r = await run('nsenter', [`--net=/run/netns/${from}`, process.execPath, '-e', BULK_CLIENT, host, '80', String(BYTES)]);
    assert.equal(r.code, 0, `bulk client to ${host}: ${r.stderr}`);
    return JSON.parse(r.stdout) as { count: string; peer: string };
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
    for (const s of [...servers, ...clients]) s.kill('SIGKILL');
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

  /** a veth from namespace `a` (name devA, addresses addrsA) to `b` (devB, addrsB); IPv6 ones nodad */
  async function link(a: string, devA: string, addrsA: string[], b: string, devB: string, addrsB: string[]): Promise<void> {
    await must('ip', '-n', a, 'link', 'add', devA, 'type', 'veth', 'peer', 'name', devB, 'netns', b);
    for (const [n, dev, addrs] of [[a, devA, addrsA], [b, devB, addrsB]] as const) {
      for (const addr of addrs) await must('ip', '-n', n, 'addr', 'add', addr, 'dev', dev, ...(addr.includes(':') ? ['nodad'] : []));
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
      // the link-local addresses the kernel gives each veth are usable at once (nodad covers the
      // addresses this test adds): no case waits a second on duplicate address detection
      await must('ip', 'netns', 'exec', n, 'sysctl', '-qw', 'net.ipv6.conf.all.accept_dad=0', 'net.ipv6.conf.default.accept_dad=0');
    }
    // a new namespace inherits the host's IPv4 conf (rp_filter is often 1 or 2): the nodes here have
    // no route back to a ClusterIP (no default route), so reverse-path filtering would drop the replies
    // that tc has just reverse-translated to come from it; cilium sets rp_filter 0 on its devices too
    for (const n of [ns.a, ns.b]) await must('ip', 'netns', 'exec', n, 'sysctl', '-qw', 'net.ipv4.conf.all.rp_filter=0', 'net.ipv4.conf.default.rp_filter=0');
    await must('ip', '-n', ns.lan, 'link', 'add', 'br0', 'type', 'bridge');
    await must('ip', '-n', ns.lan, 'link', 'set', 'br0', 'up');
    for (const [n, port, addr, addr6] of [[ns.a, 'la', NODE_A, NODE_A6], [ns.b, 'lb', NODE_B, NODE_B6], [ns.client, 'lc', CLIENT_IP, CLIENT_IP6]] as const) {
      await link(n, 'eth0', [`${addr}/24`, `${addr6}/64`], ns.lan, port, []);
      await must('ip', '-n', ns.lan, 'link', 'set', port, 'master', 'br0');
    }
    // every node-side pod veth has fe80::1, the pods' IPv6 gateway; the first pod of each node shares
    // a subnet with its node's veth, the second has a host route to its veth (node-a answers ARP for
    // 198.18.1.1 on va2 too; fe80::1 is on every veth, as NDP answers only for the link's addresses)
    await link(ns.podA, 'eth0', [`${POD_A}/24`, `${POD_A6}/64`], ns.a, 'va', ['198.18.1.1/24', 'fd00:18:1::1/64', 'fe80::1/64']);
    await link(ns.podA2, 'eth0', [`${POD_A2}/24`, `${POD_A26}/64`], ns.a, 'va2', ['fe80::1/64']);
    await link(ns.podB, 'eth0', [`${POD_B}/24`, `${POD_B6}/64`], ns.b, 'vb', ['198.18.2.1/24', 'fd00:18:2::1/64', 'fe80::1/64']);
    await link(ns.podB2, 'eth0', [`${POD_B2}/24`, `${POD_B26}/64`], ns.b, 'vb2', ['fe80::1/64']);
    await must('ip', '-n', ns.b, 'link', 'set', 'vb2', 'mtu', String(SMALL_MTU));
    for (const [n, dev, addr, addr6] of [[ns.a, 'va2', POD_A2, POD_A26], [ns.b, 'vb2', POD_B2, POD_B26]] as const) {
      await must('ip', '-n', n, 'route', 'add', `${addr}/32`, 'dev', dev);
      await must('ip', '-n', n, '-6', 'route', 'add', `${addr6}/128`, 'dev', dev);
    }
    for (const [pod, gw] of [[ns.podA, '198.18.1.1'], [ns.podA2, '198.18.1.1'], [ns.podB, '198.18.2.1'], [ns.podB2, '198.18.2.1']] as const) {
      await must('ip', '-n', pod, 'route', 'add', 'default', 'via', gw);
      await must('ip', '-n', pod, '-6', 'route', 'add', 'default', 'via', 'fe80::1', 'dev', 'eth0');
    }
    // the pod networks are routed between the nodes; the client knows only the node LAN
    await must('ip', '-n', ns.a, 'route', 'add', '198.18.2.0/24', 'via', NODE_B);
    await must('ip', '-n', ns.b, 'route', 'add', '198.18.1.0/24', 'via', NODE_A);
    await must('ip', '-n', ns.a, '-6', 'route', 'add', 'fd00:18:2::/64', 'via', NODE_B6);
    await must('ip', '-n', ns.b, '-6', 'route', 'add', 'fd00:18:1::/64', 'via', NODE_A6);
    for (const n of [ns.a, ns.b]) await must('ip', 'netns', 'exec', n, 'sysctl', '-qw', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1');

    for (const [n, name] of [[ns.podA, 'pod-a'], [ns.podA2, 'pod-a2'], [ns.podB, 'pod-b'], [ns.podB2, 'pod-b2']] as const) {
      const s = spawn('nsenter', [`--net=/run/netns/${n}`, process.execPath, '-e', SERVER, name], { stdio: ['ignore', 'pipe', 'inherit'] });
      servers.push(s);
      await new Promise<void>((resolve, reject) => {
        s.stdout?.once('data', () => resolve());
        s.once('exit', (code) => reject(new Error(`server ${name} exited ${code}`)));
      });
    }
    const caps = ['--cap', 'services=1024,backends=1024,conntrack=4096,services6=1024,backends6=1024,conntrack6=4096'];
    for (const [k, devs] of [['a', ['eth0', 'va', 'va2']], ['b', ['eth0', 'vb', 'vb2']]] as const) {
      const r = await dp(k, ['install', '--cgroup', nodes[k].cgroup, ...devs.flatMap((d) => ['--tc-dev', d]), ...caps]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      installed[k] = JSON.parse(r.stdout) as (typeof installed)[string];
    }
    await applyBoth();
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
    await apply('b', nodeState('node-b', NODE_B, { policy: true }));
    try {
      const r = await connect(ns.podA, CLUSTER_IP, 80, 10_000);
      assert.equal(r.ok, true, JSON.stringify(r));
      assert.equal(seen(r.reply).pod, 'pod-b');
      const before = await drops('b');
      assert.deepEqual(await connect(ns.podA2, CLUSTER_IP, 80), { ok: false, error: 'timeout' }, 'app=other is not allowed');
      const after = await drops('b');
      assert.ok(after.POLICY_DEFAULT_DENY! >= before.POLICY_DEFAULT_DENY! + 1, `node-b POLICY_DEFAULT_DENY ${before.POLICY_DEFAULT_DENY} -> ${after.POLICY_DEFAULT_DENY}`);
    } finally {
      await apply('b', nodeState('node-b', NODE_B));
    }
  });

  it(`a ${BYTES / 1024} KiB TCP transfer through a ClusterIP to a backend behind a ${SMALL_MTU}-byte link on the other node completes: the client learns the path MTU (ICMP fragmentation needed translated back to the VIP)`, async () => {
    assert.equal(await cachedMtu(ns.podA, BULK_IP), undefined, 'no path MTU cached before the transfer');
    const out = await bulk(ns.podA, BULK_IP);
    assert.deepEqual(out, { count: String(BYTES), peer: BULK_IP }, 'the backend counted every byte; the client\'s socket talks to the VIP');
    assert.equal(await cachedMtu(ns.podA, BULK_IP), SMALL_MTU, 'pod-a\'s route to the VIP carries the MTU node-b reported');
  });

  // IPv6: the same nodes, pods and links, their fd00:: addresses; node.addresses lists both families,
  // the IPv6 one the source of SNATed IPv6 flows (NodePort to a remote backend, hairpin)

  it('[sig-network] [Feature:IPv6DualStack] Granular Checks: Services Secondary IP Family [LinuxOnly] should function for pod-Service: http: pod on node-a → IPv6 ClusterIP → backend on node-b, the pod\'s address kept', async () => {
    const r = await connect(ns.podA, CLUSTER_IP6, 80, 10_000);
    assert.equal(r.ok, true, JSON.stringify(r));
    assert.deepEqual({ ...seen(r.reply), port: 0 }, { pod: 'pod-b', addr: POD_A6, port: 0 }, r.reply);
  });

  it('[sig-network] [Feature:IPv6DualStack] Granular Checks: Services Secondary IP Family [LinuxOnly] should function for pod-Service: udp: the answer of the backend on node-b comes from [VIP]:53', async () => {
    const flow = await udpFlow(ns.podA2, CLUSTER_IP6, 53);
    try {
      const a = await flow.ask();
      assert.deepEqual({ ...a, reply: seen(a.reply).pod, sender: seen(a.reply).addr }, { reply: 'pod-b', from: CLUSTER_IP6, port: 53, sender: POD_A26 });
      dns6Flows++;
    } finally {
      flow.end();
    }
  });

  it('[sig-network] Conntrack should be able to preserve UDP traffic when server pod cycles for a ClusterIP service: on IPv6, the flow moves to the new backend on node-b once ct-gc on node-a flushes the old one', async () => {
    const flow = await udpFlow(ns.podA, CLUSTER_IP6, 53);
    try {
      const first = await flow.ask();
      assert.deepEqual({ ...first, reply: seen(first.reply).pod }, { reply: 'pod-b', from: CLUSTER_IP6, port: 53 });
      dns6Flows++;
      // pod-b is replaced by pod-b2 as the only backend; the flow's conntrack6 entries on node-a keep it on pod-b
      await apply('b', nodeState('node-b', NODE_B, { dns6: POD_B26 }));
      const { was, entries } = await apply('a', nodeState('node-a', NODE_A, { dns6: POD_B26 }));
      assert.equal(seen((await flow.ask()).reply).pod, 'pod-b', 'a live entry keeps the flow where it was until it is flushed');
      // what node-a's sync flushes, in the loader's form, then ct-gc with it
      const flush = removedUdpBackends(was, entries);
      assert.deepEqual(flush, [`[${POD_B6}]:5353/udp`]);
      const gc = await dp('a', ['ct-gc', ...flush.flatMap((b) => ['--backend', b])]);
      assert.equal(gc.code, 0, gc.stdout + gc.stderr);
      const doc = JSON.parse(gc.stdout) as { conntrack6: { flushed: number } | null };
      // both directions of this flow, and of any other flow to that backend (the pod-Service: udp case's)
      assert.equal(doc.conntrack6?.flushed, 2 * dns6Flows, `both directions of every UDP flow to ${POD_B6} flushed from node-a's conntrack6: ${gc.stdout}`);
      const moved = await flow.ask();
      assert.deepEqual({ ...moved, reply: seen(moved.reply).pod }, { reply: 'pod-b2', from: CLUSTER_IP6, port: 53 }, 'the same socket\'s next datagram reaches the new backend, still answered from the VIP');
    } finally {
      flow.end();
      await applyBoth();
    }
  });

  it('[sig-network] Netpol NetworkPolicy between server and client should enforce policy to allow traffic from pods within server namespace based on PodSelector: on IPv6, by a remote pod\'s identity across nodes', async () => {
    assert.equal((await connect(ns.podA2, CLUSTER_IP6, 80, 10_000)).ok, true, 'before the policy pod-a2 reaches pod-b over IPv6');
    await apply('b', nodeState('node-b', NODE_B, { policy: true }));
    try {
      const r = await connect(ns.podA, CLUSTER_IP6, 80, 10_000);
      assert.equal(r.ok, true, JSON.stringify(r));
      assert.deepEqual({ ...seen(r.reply), port: 0 }, { pod: 'pod-b', addr: POD_A6, port: 0 });
      const before = await drops('b');
      assert.deepEqual(await connect(ns.podA2, CLUSTER_IP6, 80), { ok: false, error: 'timeout' }, 'app=other is not allowed');
      const after = await drops('b');
      assert.ok(after.POLICY_DEFAULT_DENY! >= before.POLICY_DEFAULT_DENY! + 1, `node-b POLICY_DEFAULT_DENY ${before.POLICY_DEFAULT_DENY} -> ${after.POLICY_DEFAULT_DENY}`);
    } finally {
      await apply('b', nodeState('node-b', NODE_B));
    }
  });

  it('[sig-network] Services should be able to create a functioning NodePort service: on IPv6, client → [node-a]:30080 → backend on node-b, SNATed to node-a\'s IPv6 address', async () => {
    const r = await connect(ns.client, NODE_A6, 30080, 10_000);
    assert.equal(r.ok, true, JSON.stringify(r));
    const s = seen(r.reply);
    assert.equal(s.pod, 'pod-b');
    assert.equal(s.addr, NODE_A6, 'the backend sees node-a\'s IPv6 address (masquerade), so its reply returns through node-a');
    assert.ok(s.port >= installed.a!.snat_port_min! && s.port <= installed.a!.snat_port_max!, `source port ${s.port} in the SNAT range`);
    const local = await connect(ns.client, NODE_B6, 30080, 10_000);
    assert.equal(local.ok, true, JSON.stringify(local));
    assert.equal(seen(local.reply).addr, CLIENT_IP6, 'on node-b the backend is local: no SNAT');
  });

  it('[sig-network] LoadBalancers ESIPP [Slow] should work for type=NodePort: on IPv6, externalTrafficPolicy Local keeps the client address; a node without an endpoint drops with NO_LOCAL_BACKEND', async () => {
    const r = await connect(ns.client, NODE_B6, 30081, 10_000);
    assert.equal(r.ok, true, JSON.stringify(r));
    assert.deepEqual({ ...seen(r.reply), port: 0 }, { pod: 'pod-b', addr: CLIENT_IP6, port: 0 }, 'source IP preserved');
    const before = await drops('a');
    assert.deepEqual(await connect(ns.client, NODE_A6, 30081), { ok: false, error: 'timeout' });
    const after = await drops('a');
    assert.ok(after.NO_LOCAL_BACKEND! >= before.NO_LOCAL_BACKEND! + 1, `node-a NO_LOCAL_BACKEND ${before.NO_LOCAL_BACKEND} -> ${after.NO_LOCAL_BACKEND}`);
  });

  it('[sig-network] Services should allow pods to hairpin back to themselves through services: on IPv6', async () => {
    const r = await connect(ns.podA, HAIRPIN_IP6, 80, 10_000);
    assert.equal(r.ok, true, JSON.stringify(r));
    assert.deepEqual({ ...seen(r.reply), port: 0 }, { pod: 'pod-a', addr: NODE_A6, port: 0 }, 'the pod reaches itself, SNATed to its node\'s IPv6 address so the reply comes back through it');
  });

  it(`a ${BYTES / 1024} KiB TCP transfer through an IPv6 ClusterIP to a backend behind a ${SMALL_MTU}-byte link on the other node completes: the client learns the path MTU (ICMPv6 packet too big translated back to the VIP)`, async () => {
    assert.equal(await cachedMtu(ns.podA, BULK_IP6), undefined, 'no path MTU cached before the transfer');
    const out = await bulk(ns.podA, BULK_IP6);
    assert.deepEqual(out, { count: String(BYTES), peer: BULK_IP6 }, 'the backend counted every byte; the client\'s socket talks to the VIP');
    assert.equal(await cachedMtu(ns.podA, BULK_IP6), SMALL_MTU, 'pod-a\'s route to the VIP carries the MTU node-b reported');
  });
});
