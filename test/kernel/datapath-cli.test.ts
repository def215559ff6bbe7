// `prep-node datapath` from the CLI on this machine's kernel, as a user runs it, in a private mount
// namespace with its own bpffs (the machine's /sys/fs/bpf is untouched). The selftest makes and
// removes its own network namespaces (198.18.0.0/15, the benchmarking range) and checks that nothing
// is left; install/sync/status/remove attach the socket programs to a child cgroup the test creates.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url));
const STATE = fileURLToPath(new URL('../../../test/fixtures/datapath/state.yaml', import.meta.url));

/** cgroup v2: the unified hierarchy of a hybrid machine, or the root of a pure v2 one. */
function cgroup2Root(): string {
  const line = readFileSync('/proc/mounts', 'utf8').split('\n').find((l) => l.split(' ')[2] === 'cgroup2');
  if (!line) throw new Error('no cgroup2 mount on this machine');
  return line.split(' ')[1]!;
}

/** Run a sh script in a private mount namespace with a fresh bpffs at /sys/fs/bpf. */
function withBpffs(body: string, env: Record<string, string> = {}) {
  const script = ['set -u', 'mount --make-rprivate /', 'mount -t bpf bpf /sys/fs/bpf', `cli() { echo "@@ $*"; ${process.execPath} ${CLI} "$@" 2>&1; echo "@@ exit $?"; }`, body].join('\n');
  return spawnSync('unshare', ['--mount', 'sh', '-c', script], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1', ...env }, timeout: 180_000 });
}

function sections(out: string): [string, string][] {
  return out
    .split(/^@@ /m)
    .slice(1)
    .map((s) => [s.slice(0, s.indexOf('\n')), s.slice(s.indexOf('\n') + 1)]);
}

test('datapath selftest: every step passes with real traffic, and nothing is left', () => {
  const r = withBpffs('cli datapath selftest --connections 200; ip netns list | grep pnst- || echo no-netns-left');
  assert.equal(r.status, 0, r.stderr);
  const s = sections(r.stdout);
  const out = s[0]?.[1] ?? '';
  assert.match(out, /^local: selftest passed: 14 of 14 steps$/m, out);
  for (const step of ['lb-random', 'lb-maglev', 'lb-affinity', 'policy-allow', 'policy-deny', 'policy-default-deny', 'backend-removed', 'nothing-left']) {
    assert.match(out, new RegExp(`^  pass  ${step} `, 'm'), `${step} in:\n${out}`);
  }
  // at least one: a SYN the kernel retransmits inside the probe's timeout is dropped (and counted) again
  assert.match(out, /policy-deny .* drops POLICY_DENY 0 → [1-9]\d*/);
  assert.equal(s[1]?.[0], 'exit 0');
  assert.match(s[1]?.[1] ?? '', /no-netns-left/);
});

test('datapath install → sync → sync again (nothing to do) → status → remove, with a bad state refused first', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pn-dp-cli-'));
  const cg = join(cgroup2Root(), `pn-dp-cli-${process.pid}`);
  mkdirSync(cg);
  try {
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'services:\n  - name: web\n    vip: 10.96.0.300\n    port: 80\n    protocol: tcp\n    backends: []\n');
    const r = withBpffs(
      `cli datapath sync -f ${bad}
cli datapath status
cli datapath install --cgroup ${cg} --cap services=4096,backends=8192
cli datapath install --cgroup ${cg}
cli datapath sync -f ${STATE} --dry-run
cli datapath sync -f ${STATE}
cli datapath sync -f ${STATE}
cli datapath status --json
cli datapath remove
cli datapath status
cli datapath remove
cli datapath install --cgroup ${cg} --cap services=4096,backends=8192 --ct-timeout udp=45s
cli datapath status
cli datapath remove`,
    );
    assert.equal(r.status, 0, r.stderr);
    const s = sections(r.stdout);
    const out = (i: number) => s[2 * i]?.[1] ?? '';
    const exit = (i: number) => s[2 * i + 1]?.[0];
    assert.match(out(0), /^prep-node: .*bad\.yaml:3:\d+: services\.0\.vip: .*$/m, 'a bad state names file, line and key, before any node is touched');
    assert.equal(exit(0), 'exit 2');
    assert.match(out(1), /^local: not installed$/m);
    assert.match(out(2), /^local: installed/m);
    // this machine has no systemd (PID 1 is not): install says nothing removes expired entries on a schedule
    assert.match(out(2), /^conntrack: no systemd on the node, so no timer removes expired entries/m);
    assert.match(out(3), /already installed/);
    assert.match(out(4), /^local: would write: \d+ put, 0 deleted/m);
    assert.match(out(4), /put services: web 10\.96\.0\.10:80\/tcp/);
    assert.match(out(5), /^local: synced: [1-9]\d* put, 0 deleted/m);
    assert.match(out(6), /^local: synced: 0 put, 0 deleted, 0 cleared \(already as desired\)$/m);
    const st = JSON.parse(out(7)) as { installed: boolean; maps: { name: string; entries?: number; max_entries?: number }[]; snat_port_min?: number; snat_port_max?: number; ct_timeouts?: Record<string, number> };
    assert.equal(st.installed, true);
    // the SNAT range is read back from the loaded program: above this namespace's ip_local_port_range, as install chose it
    const hi = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[1]);
    const want = 65535 - hi >= 1024 ? [hi + 1, 65535] : [0, 0];
    assert.deepEqual([st.snat_port_min, st.snat_port_max], want);
    assert.deepEqual(st.ct_timeouts, { 'tcp-syn': 60, 'tcp-established': 21600, 'tcp-closing': 10, udp: 60, other: 60 });
    const services = st.maps.find((m) => m.name === 'services');
    assert.equal(services?.entries, 2);
    assert.equal(services?.max_entries, 4096, '--cap set the capacity at load time');
    assert.match(out(8), /^local: removed/m);
    assert.match(out(9), /^local: not installed$/m);
    assert.match(out(10), /not installed: nothing to remove/);
    assert.match(out(12), want[1] ? new RegExp(`^SNAT source ports: ${want[0]}-65535 \\(${65536 - want[0]!} per backend address and port\\)$`, 'm') : /^SNAT source ports: none/m);
    assert.match(out(12), /^conntrack lifetimes: tcp-syn 60 s, tcp-established 21600 s, tcp-closing 10 s, udp 45 s, other 60 s$/m, '--ct-timeout as loaded');
    for (let i = 1; i <= 13; i++) assert.equal(exit(i), 'exit 0', `command ${i}: ${out(i)}`);
  } finally {
    if (existsSync(cg)) rmdirSync(cg);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('datapath sync that removes a UDP backend flushes its conntrack entries (ct-gc --backend), and says so; one that removes nothing does not', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pn-dp-cli-ct-'));
  const cg = join(cgroup2Root(), `pn-dp-cli-ct-${process.pid}`);
  mkdirSync(cg);
  const dns = (ips: string[]) => `services:\n  - name: dns\n    vip: 10.96.0.10\n    port: 53\n    protocol: udp\n    backends: [${ips.map((ip) => `{ip: ${ip}, port: 5353}`).join(', ')}]\n`;
  try {
    writeFileSync(join(dir, 'two.yaml'), dns(['10.0.1.1', '10.0.1.2']));
    writeFileSync(join(dir, 'one.yaml'), dns(['10.0.1.2']));
    const r = withBpffs(
      `cli datapath install --cgroup ${cg} --cap services=1024,backends=1024,conntrack=4096 --ct-timeout udp=30s
cli datapath sync -f ${join(dir, 'two.yaml')}
cli datapath sync -f ${join(dir, 'one.yaml')}
cli datapath remove`,
    );
    assert.equal(r.status, 0, r.stderr);
    const s = sections(r.stdout);
    const out = (i: number) => s[2 * i]?.[1] ?? '';
    for (let i = 0; i <= 3; i++) assert.equal(s[2 * i + 1]?.[0], 'exit 0', `command ${i}: ${out(i)}`);
    assert.doesNotMatch(out(1), /conntrack:/, 'nothing removed, nothing flushed');
    assert.match(out(2), /^local: synced: \d+ put, \d+ deleted/m);
    assert.match(out(2), /^ {2}conntrack: 0 entries of flows to 1 removed UDP backend\(s\) flushed \(10\.0\.1\.1:5353\/udp\)$/m);
  } finally {
    if (existsSync(cg)) rmdirSync(cg);
    rmSync(dir, { recursive: true, force: true });
  }
});
