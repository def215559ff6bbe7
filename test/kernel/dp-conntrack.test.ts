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
// Everything in a bpffs, a cgroup v2 child and namespaces this test creates and always removes
// (test/helpers/dp-sandbox.ts).
// Needs root, clang, bpftool, iproute2, nsenter; run it under the shared lock.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DP, applyInput, dpSandbox, firstOutput, notRoot } from '../helpers/dp-sandbox.js';

const VIP = '198.19.0.10';
const POD1 = '198.18.2.2';
const POD2 = '198.18.3.2';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** the Service's map entries with this one backend (puts: a rewrite of slot 0) */
function serviceOps(backend: string): string {
  return applyInput({ services: [{ name: 'dns', vip: VIP, port: 53, protocol: 'udp', backends: [{ ip: backend, port: 8080 }] }] });
}

// one UDP socket, one source port: a datagram to VIP:53 every 100 ms, each answer printed
const CLIENT_JS = `const s = require('dgram').createSocket('udp4');
  s.on('message', (m) => console.log(m.toString().trim()));
  s.bind(40053, () => setInterval(() => s.send('x', 53, '${VIP}'), 100));`;

describe('conntrack: lifetimes and the flows of a removed backend', { skip: notRoot }, () => {
  const sb = dpSandbox('pnct', 'ct-test', { client: 'c', node: 'n', pod1: '1', pod2: '2' });
  const dp = sb.dp;
  const gc = async (...args: string[]) => {
    const r = await dp(['ct-gc', ...args]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    return JSON.parse(r.stdout) as { scanned: number; expired: number; flushed: number; entries: number; capacity: number; fill_pct: number; warning: string | null };
  };

  before(async () => {
    await sb.setUp();
    await sb.link('client', 'c0', 'node', 'n0');
    await sb.link('pod1', 'p0', 'node', 'n1');
    await sb.link('pod2', 'p0', 'node', 'n2');
    for (const [n, dev, addr, gw] of [['client', 'c0', '198.18.1.2/24', '198.18.1.1'], ['pod1', 'p0', `${POD1}/24`, '198.18.2.1'], ['pod2', 'p0', `${POD2}/24`, '198.18.3.1']] as const) {
      await sb.addr(n, dev, addr);
      await sb.route(n, 'default', 'via', gw);
    }
    for (const [dev, addr] of [['n0', '198.18.1.1/24'], ['n1', '198.18.2.1/24'], ['n2', '198.18.3.1/24']] as const) await sb.addr('node', dev, addr);
    await sb.sysctl('node', 'net.ipv4.ip_forward=1');

    await sb.install('--tc-dev', 'n0', '--tc-dev', 'n1', '--tc-dev', 'n2',
      '--cap', 'services=1024,backends=1024,conntrack=16384', '--ct-timeout', 'udp=2s');
    await sb.apply(serviceOps(POD1));
    for (const [n, name] of [['pod1', 'pod1'], ['pod2', 'pod2']] as const) {
      await firstOutput(sb.spawnIn(n, DP, ['serve', '--port', '8080', '--name', name]), `serve ${name}`);
    }
  });

  after(() => sb.cleanup());

  it('should be able to preserve UDP traffic when server pod cycles for a ClusterIP service: the live flow moves to the new backend once the old one\'s entries are flushed', async () => {
    const replies: string[] = [];
    const client = sb.spawnIn('client', process.execPath, ['-e', CLIENT_JS]);
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
