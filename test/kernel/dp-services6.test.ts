// IPv6 Services through the socket hooks (issue 13 item 1), as a user runs them: `prep-node datapath
// install` and `sync -f state.yaml` in a private mount namespace with its own bpffs, the programs on
// a child cgroup the test creates, and the client in that cgroup inside a network namespace of its
// own (unshare --net: lo up, fd00::1:1 on it; gone with the process). TCP and UDP to an IPv6 VIP
// reach the backend; getpeername() and recvfrom() show the VIP; a service without backends refuses;
// a dual-stack socket reaches an IPv4 VIP through ::ffff:; a v6 VIP with a v4 backend is refused at
// sync with one line and nothing written. Needs root; run under /tmp/prep-node-root.lock.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url));

function cgroup2Root(): string {
  const line = readFileSync('/proc/mounts', 'utf8').split('\n').find((l) => l.split(' ')[2] === 'cgroup2');
  if (!line) throw new Error('no cgroup2 mount on this machine');
  return line.split(' ')[1]!;
}

function withBpffs(body: string) {
  const script = ['set -u', 'mount --make-rprivate /', 'mount -t bpf bpf /sys/fs/bpf', `cli() { echo "@@ $*"; ${process.execPath} ${CLI} "$@" 2>&1; echo "@@ exit $?"; }`, body].join('\n');
  return spawnSync('unshare', ['--mount', 'sh', '-c', script], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' }, timeout: 180_000 });
}

function sections(out: string): [string, string][] {
  return out
    .split(/^@@ /m)
    .slice(1)
    .map((s) => [s.slice(0, s.indexOf('\n')), s.slice(s.indexOf('\n') + 1)]);
}

const STATE = `services:
  - {name: web6, vip: "fd00::10", port: 80, protocol: tcp, backends: [{ip: "fd00::1:1", port: 8080}]}
  - {name: dns6, vip: "fd00:0::10", port: 53, protocol: udp, backends: [{ip: "fd00::1:1", port: 5353}]}
  - {name: none6, vip: "fd00::10", port: 81, protocol: tcp}
  - {name: web4, vip: 198.18.96.10, port: 80, protocol: tcp, backends: [{ip: 127.0.0.1, port: 8081}]}
`;
const BAD = STATE.replace('backends: [{ip: "fd00::1:1", port: 8080}]', 'backends: [{ip: 198.18.1.1, port: 8080}]');

// The client, in the cgroup and its own network namespace: one JSON line of what it saw.
const CLIENT = `
import net from 'node:net';
import dgram from 'node:dgram';
const out = {};
const once = (em, ev) => new Promise((res, rej) => { em.once(ev, res); em.once('error', rej); });
const tcpServer = async (host, port) => { const s = net.createServer((c) => c.end('hello from ' + host)); s.listen(port, host); await once(s, 'listening'); return s; };
const tcp = (host, port) => new Promise((res) => {
  const c = net.connect({ host, port });
  let data = '';
  c.on('connect', () => { out[host + ' ' + port + ' peer'] = c.remoteAddress + ' ' + c.remotePort; });
  c.on('data', (d) => (data += d));
  c.on('end', () => res(data));
  c.on('error', (e) => res('error ' + e.code));
  setTimeout(() => res('timeout'), 3000);
});
const s6 = await tcpServer('fd00::1:1', 8080);
const s4 = await tcpServer('127.0.0.1', 8081);
out.tcp6 = await tcp('fd00::10', 80);
out.refused6 = await tcp('fd00::10', 81);
out.mapped = await tcp('::ffff:198.18.96.10', 80);
const u = dgram.createSocket('udp6');
u.on('message', (m, r) => u.send('echo ' + m, r.port, r.address));
u.bind(5353, 'fd00::1:1');
await once(u, 'listening');
const c = dgram.createSocket('udp6');
out.udp6 = await new Promise((res) => {
  c.on('message', (m, r) => res(m + ' from [' + r.address + ']:' + r.port));
  c.send('q', 53, 'fd00::10');
  setTimeout(() => res('timeout'), 3000);
});
const cc = dgram.createSocket('udp6');
cc.connect(53, 'fd00::10');
await once(cc, 'connect');
const peer = cc.remoteAddress();
out.udp6connected = await new Promise((res) => {
  cc.on('message', (m) => res(m + ' peer [' + peer.address + ']:' + peer.port));
  cc.send('c');
  setTimeout(() => res('timeout'), 3000);
});
for (const x of [s6, s4, u, c, cc]) x.close();
console.log('RESULT ' + JSON.stringify(out));
`;

test('IPv6 services through datapath sync: TCP and UDP to an IPv6 VIP, the VIP seen back, no backends refused, ::ffff: to an IPv4 VIP, a mixed-family service refused', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pn-dp-v6svc-'));
  const cg = join(cgroup2Root(), `pn-dp-v6svc-${process.pid}`);
  mkdirSync(cg);
  try {
    writeFileSync(join(dir, 'state.yaml'), STATE);
    writeFileSync(join(dir, 'bad.yaml'), BAD);
    writeFileSync(join(dir, 'client.mjs'), CLIENT);
    const client = `sh -c 'echo $$ > ${cg}/cgroup.procs && exec unshare --net sh -c "ip link set lo up && ip -6 addr add fd00::1:1/128 dev lo nodad && exec ${process.execPath} ${join(dir, 'client.mjs')}"'`;
    const r = withBpffs(
      `cli datapath install --cgroup ${cg} --cap services=1024,backends=1024,services6=2048,backends6=4096
cli datapath sync -f ${join(dir, 'state.yaml')}
cli datapath sync -f ${join(dir, 'bad.yaml')}
cli datapath sync -f ${join(dir, 'state.yaml')}
echo "@@ client"; ${client} 2>&1; echo "@@ exit $?"
cli datapath status
cli datapath status --json
cli datapath remove
echo "@@ bpftool"; bpftool cgroup show ${cg} 2>&1; echo "@@ exit $?"`,
    );
    assert.equal(r.status, 0, r.stderr);
    const s = sections(r.stdout);
    const out = (i: number) => s[2 * i]?.[1] ?? '';
    const exit = (i: number) => s[2 * i + 1]?.[0];
    assert.equal(exit(0), 'exit 0', out(0));
    assert.match(out(1), /^local: synced: 7 put, 0 deleted/m, 'services6 3 + backends6 2 + services 1 + backends 1');
    assert.equal(exit(1), 'exit 0');
    // the mixed-family state: one line naming the file, line and field, exit 2, and nothing written
    const bad = out(2).trim().split('\n');
    assert.equal(bad.length, 1, out(2));
    assert.match(bad[0]!, /^prep-node: .*bad\.yaml:2:\d+: services\.0\.backends\.0\.ip: backend 198\.18\.1\.1 is IPv4 and the service's vip fd00::10 is IPv6/);
    assert.equal(exit(2), 'exit 2');
    assert.match(out(3), /^local: synced: 0 put, 0 deleted, 0 cleared \(already as desired\)$/m, 'the refused sync wrote nothing');
    assert.equal(exit(4), 'exit 0', out(4));
    const line = out(4).split('\n').find((l) => l.startsWith('RESULT '));
    assert.ok(line, out(4));
    const got = JSON.parse(line.slice(7)) as Record<string, string>;
    assert.equal(got.tcp6, 'hello from fd00::1:1', 'TCP to [fd00::10]:80 reached the backend');
    assert.equal(got['fd00::10 80 peer'], 'fd00::10 80', 'getpeername() shows the VIP');
    assert.match(got.refused6!, /^error (ECONNREFUSED|EPERM)$/, 'no backends: refused (ECONNREFUSED with bpf_set_retval, 5.18+; EPERM before)');
    assert.equal(got.mapped, 'hello from 127.0.0.1', 'a dual-stack socket to ::ffff:198.18.96.10 reached the IPv4 backend');
    assert.equal(got['::ffff:198.18.96.10 80 peer'], '::ffff:198.18.96.10 80', 'getpeername() shows ::ffff:VIP');
    assert.equal(got.udp6, 'echo q from [fd00::10]:53', 'recvfrom() shows the VIP');
    assert.equal(got.udp6connected, 'echo c peer [fd00::10]:53', 'connected UDP: the answer arrives and getpeername() shows the VIP');
    // status: the four IPv6 hooks attached, the maps filled
    for (const hook of ['connect6', 'sendmsg6', 'getpeername6', 'recvmsg6']) assert.match(out(5), new RegExp(`cgroup/${hook} `), out(5));
    const st = JSON.parse(out(6)) as { maps: { name: string; entries?: number; max_entries?: number }[] };
    const map = (n: string) => st.maps.find((m) => m.name === n);
    assert.equal(map('services6')?.entries, 3);
    assert.equal(map('services6')?.max_entries, 2048, '--cap services6=');
    assert.equal(map('backends6')?.entries, 2);
    assert.equal(map('backends6')?.max_entries, 4096, '--cap backends6=');
    assert.ok((map('sock_revnat6')?.entries ?? 0) >= 2, `sock_revnat6 holds the translated sockets: ${JSON.stringify(map('sock_revnat6'))}`);
    assert.match(out(7), /^local: removed/m);
    assert.equal(out(8).trim().split('\n').filter((l) => /sock6_|connect6|sendmsg6|recvmsg6|getpeername6/.test(l)).length, 0, `remove detached the IPv6 hooks:\n${out(8)}`);
  } finally {
    if (existsSync(cg)) rmdirSync(cg);
    rmSync(dir, { recursive: true, force: true });
  }
});
