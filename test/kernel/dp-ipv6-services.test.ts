// IPv6 Services at tc (issue 13 items 1, 3, 5 for IPv6): a client whose sockets are not translated
// (it is outside the datapath's cgroup) reaches an IPv6 ClusterIP through tc_lb6's DNAT, and the
// replies come back from the VIP; path MTU discovery works through the VIP over a 1280-byte link
// (the router's ICMPv6 packet too big quotes client -> backend, tc_lb6 translates the quote back
// to client -> VIP); a UDP flow to a removed backend moves once ct-gc flushes that backend's
// conntrack6 entries (sig-network's "Conntrack should be able to preserve UDP traffic when server
// pod cycles for a ClusterIP service", for IPv6). The state is compiled by prep-node's own compiler.
//
//   client c0 fd00:1::2 ─ n0 fd00:1::1 [node] fd00:2::1 n1 ─ r0 fd00:2::2 [router] fd00:3::1 r1 ─ p0 fd00:3::2 pod
//                              tc_lb on n0, n1 ingress                          mtu 1280 on r1
//
// Everything lives in a bpffs, a cgroup v2 child and four network namespaces this test creates and
// always removes (test/helpers/dp-sandbox.ts). Needs root, clang, bpftool, iproute2, nsenter; run it
// under the shared lock.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { compileState } from '../../src/datapath/compile.js';
import { removedUdpBackends } from '../../src/datapath/ct-flush.js';
import { DatapathStateSchema } from '../../src/datapath/schema.js';
import { incrementalSync } from '../../src/datapath/sync.js';
import { opLines } from '../../src/datapath/writer.js';
import { applyInput, contents, dpSandbox, firstOutput, must, notRoot } from '../helpers/dp-sandbox.js';

const CLIENT = 'fd00:1::2';
const POD = 'fd00:3::2';
const VIP = 'fd00:96::10';
const SMALL_MTU = 1280;
const BYTES = 512 * 1024;

function state(udpPorts: number[]) {
  return DatapathStateSchema.parse({
    services: [
      { name: 'web6', vip: VIP, port: 80, protocol: 'tcp', backends: [{ ip: POD, port: 8080 }] },
      { name: 'dns6', vip: VIP, port: 53, protocol: 'udp', backends: udpPorts.map((port) => ({ ip: POD, port })) },
    ],
  });
}

// the backend: TCP 8080 counts the bytes of each connection and answers with the count when the
// client ends; UDP 5353 and 5354 answer each datagram with their own port
const SERVER = `const net = require('net'), dgram = require('dgram'); let n = 0;
  const ready = () => { if (++n === 3) console.log('listening'); };
  net.createServer((s) => { let c = 0; s.on('data', (d) => { c += d.length; }); s.on('end', () => s.end(String(c))); s.on('error', () => {}); }).listen(8080, '::', ready);
  for (const p of [5353, 5354]) { const u = dgram.createSocket('udp6'); u.on('message', (m, r) => u.send(String(p), r.port, r.address)); u.bind(p, '::', ready); }`;
// TCP: BYTES to [VIP]:80 in one go, prints the server's count and the peer address the socket saw
const TCP_CLIENT = `let peer; const s = require('net').connect(80, '${VIP}', () => { peer = s.remoteAddress; s.end(Buffer.alloc(${BYTES}, 7)); });
  let r = ''; s.on('data', (d) => { r += d; }); s.on('end', () => { console.log(JSON.stringify({ count: r, peer })); process.exit(0); });
  s.on('error', (e) => { console.error(e.message); process.exit(2); });
  setTimeout(() => { console.error('timeout: the transfer stalled'); process.exit(3); }, 20000);`;
// UDP: one socket bound to port 47000; a datagram to [VIP]:53 per line on stdin ("send"), each answer
// printed as {"reply","from","port"}
const UDP_CLIENT = `const s = require('dgram').createSocket('udp6');
  s.on('message', (m, r) => console.log(JSON.stringify({ reply: String(m), from: r.address, port: r.port })));
  s.bind(47000, '${CLIENT}', () => { console.log('bound'); require('readline').createInterface({ input: process.stdin }).on('line', () => s.send('q', 53, '${VIP}')); });
  process.stdin.on('end', () => setTimeout(() => process.exit(0), 100));`;

describe('IPv6 Services at tc: DNAT, replies from the VIP, path MTU discovery, a removed UDP backend\'s flow', { skip: notRoot }, () => {
  const sb = dpSandbox('pn6s', 'v6svc-test', { client: 'c', node: 'n', router: 'r', pod: 'p' });
  const dp = sb.dp;
  let udp: ChildProcess | undefined;

  before(async () => {
    await sb.setUp();
    await sb.link('client', 'c0', 'node', 'n0');
    await sb.link('node', 'n1', 'router', 'r0');
    await sb.link('router', 'r1', 'pod', 'p0');
    const addrs: ['client' | 'node' | 'router' | 'pod', string, string][] = [
      ['client', 'c0', `${CLIENT}/64`], ['node', 'n0', 'fd00:1::1/64'], ['node', 'n1', 'fd00:2::1/64'],
      ['router', 'r0', 'fd00:2::2/64'], ['router', 'r1', 'fd00:3::1/64'], ['pod', 'p0', `${POD}/64`],
    ];
    for (const [n, dev, addr] of addrs) await sb.addr(n, dev, addr);
    // only the router's side of the last link is small: the backend still advertises MSS 1440
    await must('ip', '-n', sb.ns.router, 'link', 'set', 'r1', 'mtu', String(SMALL_MTU));
    await sb.route('client', 'default', 'via', 'fd00:1::1');
    await sb.route('node', 'fd00:3::/64', 'via', 'fd00:2::2');
    await sb.route('router', 'fd00:1::/64', 'via', 'fd00:2::1');
    await sb.route('pod', 'default', 'via', 'fd00:3::1');
    for (const n of ['node', 'router'] as const) await sb.sysctl(n, 'net.ipv6.conf.all.forwarding=1');

    await sb.install('--tc-dev', 'n0', '--tc-dev', 'n1', '--cap', 'services=1024,backends=1024,conntrack=16384,services6=1024,backends6=1024,conntrack6=16384', '--ct-timeout', 'udp=60');
    await sb.apply(applyInput(state([5353])));
    await firstOutput(sb.spawnIn('pod', process.execPath, ['-e', SERVER]), 'server');
  });

  after(() => sb.cleanup());

  it(`a ${BYTES / 1024} KiB TCP transfer to [${VIP}]:80 over a ${SMALL_MTU}-byte link completes from the VIP; the client learns the VIP's path MTU (ICMPv6 packet too big translated back)`, async () => {
    const before = await sb.inNs('client', 'ip', '-6', 'route', 'get', VIP);
    assert.doesNotMatch(before.stdout, /mtu \d+/, 'no path MTU cached before the transfer');
    const r = await sb.inNs('client', process.execPath, '-e', TCP_CLIENT);
    assert.equal(r.code, 0, `client: ${r.stderr}`);
    const out = JSON.parse(r.stdout) as { count: string; peer: string };
    assert.equal(out.count, String(BYTES), 'the backend counted every byte');
    assert.equal(out.peer, VIP, 'the client\'s socket talks to the VIP');
    const cached = await sb.inNs('client', 'ip', '-6', 'route', 'get', VIP);
    assert.match(cached.stdout, new RegExp(`mtu ${SMALL_MTU}\\b`), `the client's route to the VIP: ${cached.stdout}`);
    const ct = (await dp(['dump', 'conntrack6'])).stdout.split('\n').filter(Boolean);
    assert.equal(ct.length, 2, `one conntrack6 entry per direction: ${ct.join(' | ')}`);
  });

  it('should be able to preserve UDP traffic when server pod cycles for an IPv6 ClusterIP service: replies come from [VIP]:53, and the flow moves to the new backend once ct-gc flushes the old one', async () => {
    udp = sb.spawnIn('client', process.execPath, ['-e', UDP_CLIENT], 'pipe');
    const lines: string[] = [];
    let buf = '';
    udp.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      const parts = buf.split('\n');
      buf = parts.pop()!;
      lines.push(...parts.filter(Boolean));
    });
    const waitFor = async (n: number) => {
      for (let i = 0; i < 100 && lines.length < n; i++) await new Promise((r) => setTimeout(r, 50));
      assert.ok(lines.length >= n, `no answer (lines so far: ${lines.join(' | ')})`);
      return lines[n - 1]!;
    };
    const ask = async () => {
      const n = lines.length + 1;
      udp!.stdin!.write('send\n');
      return JSON.parse(await waitFor(n)) as { reply: string; from: string; port: number };
    };
    assert.equal(await waitFor(1), 'bound');

    const first = await ask();
    assert.deepEqual(first, { reply: '5353', from: VIP, port: 53 }, 'the answer of backend :5353 comes from [VIP]:53');

    // the service's only backend becomes :5354; the flow's conntrack6 entries (udp=60s) keep it on :5353
    const now = contents(compileState(state([5353])).entries);
    const next = compileState(state([5354])).entries;
    const a = await dp(['apply'], `${opLines(incrementalSync(next, now).ops).join('\n')}\n`);
    assert.equal(a.code, 0, a.stdout + a.stderr);
    assert.equal((await ask()).reply, '5353', 'a live entry keeps the flow where it was until it is flushed');

    // what a sync flushes, in the loader's form, then ct-gc with it
    const flush = removedUdpBackends(now, next);
    assert.deepEqual(flush, [`[${POD}]:5353/udp`]);
    const gc = await dp(['ct-gc', ...flush.flatMap((b) => ['--backend', b])]);
    assert.equal(gc.code, 0, gc.stdout + gc.stderr);
    const doc = JSON.parse(gc.stdout) as { flushed: number; conntrack6: { flushed: number } | null };
    assert.equal(doc.conntrack6?.flushed, 2, `both directions of the UDP flow flushed from conntrack6: ${gc.stdout}`);
    assert.equal(doc.flushed, 2);

    assert.deepEqual(await ask(), { reply: '5354', from: VIP, port: 53 }, 'the same socket\'s next datagram reaches the new backend, still answered from the VIP');
    udp.stdin!.end();
  });
});
