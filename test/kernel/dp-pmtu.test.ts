// Path MTU discovery through a Service (issue 13 item 5): a router between the node and the backend
// has a 1280-byte link towards the backend, so the client's 1500-byte TCP segments (DF set, Linux's
// default) are refused there with ICMP fragmentation-needed. The router quotes the packet as it saw
// it, client -> backend (after tc_lb's DNAT); tc_lb on the node's n1 translates the quote back to
// client -> VIP, and the client's TCP lowers its MSS. Without the translation the client's kernel
// finds no socket for the quote, ignores it, and the transfer stalls in retransmissions.
//
//   client c0 198.18.1.2 ─ n0 198.18.1.1 [node] 198.18.2.1 n1 ─ r0 198.18.2.2 [router] 198.18.3.1 r1 ─ p0 198.18.3.2 pod
//                              tc_lb on n0, n1 ingress                          mtu 1280 on r1
//
// Everything lives in a bpffs, a cgroup v2 child (which the client is not in: its sockets are not
// translated, so the flow goes through tc_lb) and four network namespaces this test creates and
// always removes (test/helpers/dp-sandbox.ts). Needs root, clang, bpftool, iproute2, nsenter; run it
// under the shared lock.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { applyInput, dpSandbox, firstOutput, must, notRoot } from '../helpers/dp-sandbox.js';

const CLIENT = '198.18.1.2';
const POD = '198.18.3.2';
const VIP = '198.19.0.10';
const SMALL_MTU = 1280;
const BYTES = 512 * 1024;

// the backend: counts the bytes of each connection and answers with the count when the client ends
const SERVER = `require('net').createServer((s) => { let n = 0; s.on('data', (d) => { n += d.length; });
  s.on('end', () => s.end(String(n))); s.on('error', () => {}); }).listen(8080, '0.0.0.0', () => console.log('listening'));`;
// the client: BYTES to VIP:80 in one go, then prints what the server counted (or fails after 20 s)
const CLIENT_JS = `const s = require('net').connect(80, '${VIP}', () => { s.end(Buffer.alloc(${BYTES}, 7)); });
  let r = ''; s.on('data', (d) => { r += d; }); s.on('end', () => { console.log(r); process.exit(0); });
  s.on('error', (e) => { console.error(e.message); process.exit(2); });
  setTimeout(() => { console.error('timeout: the transfer stalled'); process.exit(3); }, 20000);`;

describe('path MTU discovery through a Service (ICMP errors of NATed flows translated back)', { skip: notRoot }, () => {
  const sb = dpSandbox('pnmt', 'pmtu-test', { client: 'c', node: 'n', router: 'r', pod: 'p' });

  before(async () => {
    await sb.setUp();
    await sb.link('client', 'c0', 'node', 'n0');
    await sb.link('node', 'n1', 'router', 'r0');
    await sb.link('router', 'r1', 'pod', 'p0');
    const addrs: ['client' | 'node' | 'router' | 'pod', string, string][] = [
      ['client', 'c0', `${CLIENT}/24`], ['node', 'n0', '198.18.1.1/24'], ['node', 'n1', '198.18.2.1/24'],
      ['router', 'r0', '198.18.2.2/24'], ['router', 'r1', '198.18.3.1/24'], ['pod', 'p0', `${POD}/24`],
    ];
    for (const [n, dev, addr] of addrs) await sb.addr(n, dev, addr);
    // only the router's side of the last link is small: the backend still advertises MSS 1460
    await must('ip', '-n', sb.ns.router, 'link', 'set', 'r1', 'mtu', String(SMALL_MTU));
    await sb.route('client', 'default', 'via', '198.18.1.1');
    await sb.route('node', '198.18.3.0/24', 'via', '198.18.2.2');
    await sb.route('router', '198.18.1.0/24', 'via', '198.18.2.1');
    await sb.route('pod', 'default', 'via', '198.18.3.1');
    for (const n of ['node', 'router'] as const) await sb.sysctl(n, 'net.ipv4.ip_forward=1');

    await sb.install('--tc-dev', 'n0', '--tc-dev', 'n1', '--cap', 'services=1024,backends=1024,conntrack=16384');
    await sb.apply(applyInput({ services: [{ name: 'web', vip: VIP, port: 80, protocol: 'tcp', backends: [{ ip: POD, port: 8080 }] }] }));
    await firstOutput(sb.spawnIn('pod', process.execPath, ['-e', SERVER]), 'server');
  });

  after(() => sb.cleanup());

  it(`a ${BYTES / 1024} KiB TCP transfer to the ClusterIP over a ${SMALL_MTU}-byte link completes; the client learns the path MTU of the VIP`, async () => {
    const before = await sb.inNs('client', 'ip', 'route', 'get', VIP);
    assert.doesNotMatch(before.stdout, /mtu \d+/, 'no path MTU cached before the transfer');
    const r = await sb.inNs('client', process.execPath, '-e', CLIENT_JS);
    assert.equal(r.code, 0, `client: ${r.stderr}`);
    assert.equal(r.stdout.trim(), String(BYTES), 'the backend counted every byte');
    const cached = await sb.inNs('client', 'ip', 'route', 'get', VIP);
    assert.match(cached.stdout, new RegExp(`mtu ${SMALL_MTU}\\b`), `the client's route to the VIP: ${cached.stdout}`);
    const ct = (await sb.dp(['dump', 'conntrack'])).stdout.split('\n').filter(Boolean);
    assert.equal(ct.length, 2, `one conntrack entry per direction: ${ct.join(' | ')}`);
  });
});
