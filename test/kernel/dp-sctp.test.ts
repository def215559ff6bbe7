// SCTP through a Service at tc (issue 13 item 4), on this machine's kernel when it has SCTP
// (`modprobe sctp`; skipped with the reason otherwise: this machine's 6.18 has no sctp module). A
// client outside the cgroup (so tc_lb translates, not the socket hooks) opens an SCTP association to
// VIP:3868; the backend listens on the same port (the datapath translates SCTP addresses only: the
// CRC32c covers the ports, not the addresses) and answers with the peer it saw. Python's socket
// module speaks SCTP (IPPROTO_SCTP); Node does not.
//
//   client c0 198.18.1.2 ─ n0 198.18.1.1 [node] 198.18.2.1 n1 ─ p0 198.18.2.2 pod1
//
// Everything in a bpffs, a cgroup v2 child and namespaces this test creates and always removes
// (test/helpers/dp-sandbox.ts).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { applyInput, dpSandbox, firstOutput, notRoot } from '../helpers/dp-sandbox.js';

const VIP = '198.19.0.10';
const POD1 = '198.18.2.2';

function sctpMissing(): string | false {
  if (notRoot) return false;
  try { execFileSync('modprobe', ['sctp'], { stdio: 'pipe' }); } catch (e) { return `this kernel has no SCTP (modprobe sctp: ${String((e as { stderr?: Buffer }).stderr ?? e).trim()})`; }
  try { execFileSync('python3', ['-c', 'import socket; socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_SCTP)'], { stdio: 'pipe' }); } catch { return 'python3 cannot open an SCTP socket here'; }
  return false;
}

/** the Service's map entries with this one backend (puts: a rewrite of slot 0) */
function serviceOps(backend: string): string {
  return applyInput({ services: [{ name: 'diameter', vip: VIP, port: 3868, protocol: 'sctp', backends: [{ ip: backend, port: 3868 }] }] });
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
  const sb = dpSandbox('pnsc', 'sctp-test', { client: 'c', node: 'n', pod1: '1' });

  before(async () => {
    await sb.setUp();
    await sb.link('client', 'c0', 'node', 'n0');
    await sb.link('pod1', 'p0', 'node', 'n1');
    for (const [n, dev, addr, gw] of [['client', 'c0', '198.18.1.2/24', '198.18.1.1'], ['pod1', 'p0', `${POD1}/24`, '198.18.2.1']] as const) {
      await sb.addr(n, dev, addr);
      await sb.route(n, 'default', 'via', gw);
    }
    await sb.addr('node', 'n0', '198.18.1.1/24');
    await sb.addr('node', 'n1', '198.18.2.1/24');
    await sb.sysctl('node', 'net.ipv4.ip_forward=1');

    await sb.install('--tc-dev', 'n0', '--tc-dev', 'n1', '--cap', 'services=1024,backends=1024,conntrack=16384');
    await sb.apply(serviceOps(POD1));
    await firstOutput(sb.spawnIn('pod1', 'python3', ['-c', SERVER_PY]), 'the SCTP server');
  });

  after(() => sb.cleanup());

  it('an SCTP association to VIP:3868 reaches the backend, which sees the client; the client sees the VIP', async () => {
    const r = await sb.inNs('client', 'python3', '-c', CLIENT_PY);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), `pod1 198.18.1.2 ${VIP}`);
    const ct = (await sb.dp(['dump', 'conntrack'])).stdout.split('\n').filter(Boolean);
    assert.equal(ct.length, 2, `one conntrack entry per direction: ${ct.join(' | ')}`);
  });
});
