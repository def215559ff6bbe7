// The kubeadm/k0s parity checks judged on recorded (local-6.18) and written (ubuntu-24.04, rhel-9)
// node facts, against the built-in worker and control-plane profiles.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseNodeFacts } from '../../../src/probes/node-facts.js';
import { judgeCpu } from '../../../src/checks/node-cpu.js';
import { judgeMemory } from '../../../src/checks/node-memory.js';
import { judgeDiskSpace } from '../../../src/checks/disk-space.js';
import { judgePorts, portRanges } from '../../../src/checks/net-ports.js';
import { judgeBinaries } from '../../../src/checks/node-binaries.js';
import { judgeRuntimeSocket } from '../../../src/checks/runtime-socket.js';
import { dns1123SubdomainError, judgeHostname } from '../../../src/checks/node-hostname.js';
import { judgeLocalhost } from '../../../src/checks/net-localhost.js';
import { judgeNofile } from '../../../src/checks/node-nofile.js';
import { judgeLsm } from '../../../src/checks/security-lsm.js';
import { CHECKS } from '../../../src/checks/index.js';
import { runChecks } from '../../../src/checks/runner.js';
import { nodeFactsScript } from '../../../src/probes/node-facts.js';
import { loadProfile } from '../../../src/profiles/load.js';
import { fixtureContext } from '../../helpers/fixture-host.js';
import { fixture } from '../../helpers/fixtures.js';

const facts = (host: string) => parseNodeFacts(fixture(`hosts/${host}/node-facts.out`), '/var/lib');
const worker = await loadProfile('k8s-worker');
const cp = await loadProfile('k8s-control-plane');

test('profiles: a control plane asks what kubeadm asks, a worker what k0s asks', () => {
  assert.equal(cp.preflight.minCpus, 2);
  assert.equal(cp.preflight.memoryMiB.min, 1700);
  assert.deepEqual(cp.preflight.ports, [6443, 10250, 10257, 10259, '2379-2380', '30000-32767']);
  assert.equal(worker.preflight.minCpus, 1);
  assert.equal(worker.preflight.memoryMiB.min, 500);
  assert.deepEqual(worker.preflight.ports, [10250, '30000-32767']);
  assert.equal(worker.preflight.minOpenFiles, 65536);
});

test('node.cpu: 1 vCPU passes a worker, fails a control plane with kubeadm\'s message source', () => {
  const cpus = facts('ubuntu-24.04').cpus;
  assert.equal(judgeCpu(cpus, worker.preflight.minCpus).status, 'pass');
  const f = judgeCpu(cpus, cp.preflight.minCpus);
  assert.equal(f.status, 'fail');
  assert.equal(f.observed, '1 CPU');
  assert.equal(f.expected, 'at least 2 CPUs (preflight.minCpus)');
  assert.match(f.detail ?? '', /NumCPU/);
  assert.equal(judgeCpu(null, 2).status, 'error');
});

test('node.memory: 987 MiB warns a worker, fails a control plane (kubeadm 1700 MB); 24 GiB passes', () => {
  const mem = facts('ubuntu-24.04').memTotalKiB;
  const w = judgeMemory(mem, worker.preflight.memoryMiB);
  assert.equal(w.status, 'warn');
  assert.equal(w.observed, '987 MiB');
  const c = judgeMemory(mem, cp.preflight.memoryMiB);
  assert.equal(c.status, 'fail');
  assert.match(c.remedy ?? '', /at least 2048 MiB/);
  assert.match(c.detail ?? '', /1700 MB/);
  assert.equal(judgeMemory(facts('local-6.18').memTotalKiB, cp.preflight.memoryMiB).status, 'pass');
  // kubeadm's MB is MiB: exactly 1700 MiB passes.
  assert.equal(judgeMemory(1700 * 1024, { min: 1700, recommended: 1700 }).status, 'pass');
  assert.equal(judgeMemory(1700 * 1024 - 1, { min: 1700, recommended: 1700 }).status, 'fail');
});

test('disk.space: 2590 MiB free at 10.8 % warns (kubelet image GC at 15 %); recorded local passes; below the minimum fails', () => {
  const f = judgeDiskSpace(facts('ubuntu-24.04').disk, worker.preflight.minFreeDiskMiB);
  assert.equal(f.status, 'warn');
  assert.equal(f.observed, '2590 MiB free on / (10.8 % of 23 GiB)');
  assert.match(f.remedy ?? '', /journalctl --vacuum-size/);
  assert.equal(judgeDiskSpace(facts('local-6.18').disk, cp.preflight.minFreeDiskMiB).status, 'pass');
  assert.equal(judgeDiskSpace({ path: '/var/lib', sizeKiB: 10_000_000, availableKiB: 1_800_000, mountedOn: '/' }, 1800).status, 'fail');
  assert.equal(judgeDiskSpace({ path: '/var/lib', sizeKiB: 100_000_000, availableKiB: 9_000_000, mountedOn: '/' }, 1300).status, 'fail', 'below the 10 % eviction threshold');
  assert.equal(judgeDiskSpace({ path: '/var/lib', error: 'df: /var/lib: No such file or directory' }, 1300).status, 'error');
});

test('net.ports: 6443 and 10250 taken; an established connection to 10250 does not count', () => {
  const listening = facts('ubuntu-24.04').listening;
  const c = judgePorts(listening, cp.preflight.ports);
  assert.equal(c.status, 'fail');
  assert.equal(c.observed, 'in use: 6443, 10250');
  assert.equal(c.remedy, "find the owner with `ss -ltnp '( sport = :6443 or sport = :10250 )'` and stop it (an earlier cluster? kubeadm reset removes one)");
  assert.equal(judgePorts(listening, worker.preflight.ports).observed, 'in use: 10250');
  assert.equal(judgePorts(facts('local-6.18').listening, cp.preflight.ports).status, 'pass');
  assert.equal(judgePorts(new Set([31000]), worker.preflight.ports).status, 'fail', 'NodePort range');
  assert.deepEqual(portRanges([10250, '2380-2379']), [[10250, 10250], [2379, 2380]]);
});

test('node.binaries: missing optional ones warn, a missing mandatory one fails, with package names per family', () => {
  const u = judgeBinaries(facts('ubuntu-24.04').binaries);
  assert.equal(u.status, 'warn');
  assert.equal(u.observed, 'missing (optional): conntrack, ebtables, socat');
  assert.equal(u.remedy, 'apt-get install -y conntrack ebtables socat (Debian/Ubuntu) or dnf install -y conntrack-tools ebtables-legacy socat (RHEL, Amazon Linux)');
  const r = judgeBinaries(facts('rhel-9').binaries);
  assert.equal(r.status, 'fail');
  assert.equal(r.observed, 'missing: nsenter; missing (optional): tc');
  assert.match(r.remedy ?? '', /dnf install -y util-linux iproute-tc/);
  assert.equal(judgeBinaries(new Map()).status, 'fail');
});

test('runtime.socket: none fails, /run and /var/run are one, two runtimes warn', () => {
  assert.equal(judgeRuntimeSocket(facts('local-6.18').sockets).status, 'fail');
  const u = judgeRuntimeSocket(facts('ubuntu-24.04').sockets);
  assert.equal(u.status, 'pass');
  assert.equal(u.observed, '/run/containerd/containerd.sock');
  const r = judgeRuntimeSocket(facts('rhel-9').sockets);
  assert.equal(r.status, 'warn');
  assert.equal(r.observed, '/run/crio/crio.sock, /run/containerd/containerd.sock');
});

test('node.hostname: DNS-1123 validation as apimachinery does it; unresolvable warns', () => {
  assert.equal(dns1123SubdomainError('node-1.example.com'), null);
  assert.match(dns1123SubdomainError('Node-1') ?? '', /capital letters/);
  assert.match(dns1123SubdomainError('node_1') ?? '', /label "node_1"/);
  assert.match(dns1123SubdomainError('-node') ?? '', /label "-node"/);
  assert.match(dns1123SubdomainError('a'.repeat(254)) ?? '', /254 characters/);
  const r = facts('rhel-9');
  const f = judgeHostname(r.hostname, r.resolveHostname);
  assert.equal(f.status, 'fail');
  assert.equal(f.remedy, 'hostnamectl set-hostname node-1.example.com && echo "127.0.1.1 node-1.example.com" >> /etc/hosts');
  const unresolved = judgeHostname('node-1', r.resolveHostname);
  assert.equal(unresolved.status, 'warn');
  assert.equal(unresolved.observed, 'node-1 does not resolve');
  const u = facts('ubuntu-24.04');
  assert.equal(judgeHostname(u.hostname, u.resolveHostname).observed, 'ubuntu-s-1vcpu-1gb-fra1-01 → 127.0.1.1');
});

test('net.localhost: loopback passes (v4 and v6); another address or none fails', () => {
  assert.equal(judgeLocalhost(facts('ubuntu-24.04').resolveLocalhost).observed, 'localhost → ::1, 127.0.0.1');
  assert.equal(judgeLocalhost(facts('local-6.18').resolveLocalhost).status, 'pass');
  assert.equal(judgeLocalhost({ ok: true, addresses: ['127.0.0.1', '10.0.0.5'], error: '' }).status, 'fail');
  assert.equal(judgeLocalhost({ ok: false, addresses: [], error: '' }).status, 'fail');
});

test('node.nofile: systemd\'s hard limit counts when systemd runs; the recorded shell limit of 20000 warns', () => {
  const u = judgeNofile(facts('ubuntu-24.04').nofile, 65536);
  assert.equal(u.status, 'pass');
  assert.equal(u.observed, 'systemd services: 1024 soft, 524288 hard (DefaultLimitNOFILE)');
  const l = judgeNofile(facts('local-6.18').nofile, 65536);
  assert.equal(l.status, 'warn');
  assert.equal(l.observed, 'login shell: 20000 soft, 20000 hard (no systemd)');
  assert.match(l.detail ?? '', /k0s/);
  const s = judgeNofile({ shellSoft: 1024, shellHard: 4096, systemdSoft: 1024, systemdHard: 4096 }, 65536);
  assert.match(s.remedy ?? '', /DefaultLimitNOFILE=65536:524288/);
});

test('security.lsm: SELinux enforcing warns with setenforce; AppArmor with its parser passes; without it warns', () => {
  const r = judgeLsm(facts('rhel-9'));
  assert.equal(r.status, 'warn');
  assert.equal(r.observed, 'no AppArmor; SELinux enforcing (LSMs: lockdown,capability,yama,selinux,bpf)');
  assert.match(r.remedy ?? '', /^setenforce 0/);
  const u = facts('ubuntu-24.04');
  assert.equal(judgeLsm(u).status, 'pass');
  const noParser = judgeLsm({ ...u, binaries: new Map([['apparmor_parser', null]]) });
  assert.equal(noParser.status, 'warn');
  assert.equal(noParser.remedy, 'apt-get install -y apparmor');
  assert.equal(judgeLsm(facts('local-6.18')).status, 'pass');
});

test('runner: the new checks run from one read of the node and --ignore names them', async () => {
  const ctx = await fixtureContext({ [nodeFactsScript('/var/lib')]: fixture('hosts/ubuntu-24.04/node-facts.out') });
  const ids = ['node.cpu', 'node.memory', 'disk.space', 'net.ports', 'node.binaries', 'runtime.socket', 'node.hostname', 'net.localhost', 'node.nofile', 'security.lsm', 'datapath.memory'];
  const checks = CHECKS.filter((c) => ids.includes(c.id));
  assert.equal(checks.length, ids.length);
  const results = await runChecks(ctx, checks, { ignore: ['net.ports'] });
  assert.equal(ctx.host.commands.length, 1);
  // datapath.memory: this 1 GB VPS (MemTotal 987 MiB) gets an eighth of the default capacities from the
  // loader (RAM-sized, rounded down to powers of two), so even full maps stay under 10 % of its RAM
  assert.deepEqual(results.map((r) => `${r.id}=${r.status}${r.ignored ? '*' : ''}`), [
    'node.cpu=pass', 'node.memory=warn', 'disk.space=warn', 'net.ports=fail*', 'node.binaries=warn', 'runtime.socket=pass',
    'node.hostname=pass', 'net.localhost=pass', 'node.nofile=pass', 'security.lsm=pass', 'datapath.memory=pass',
  ]);
  assert.match(results.find((r) => r.id === 'datapath.memory')!.observed, /MiB/);
});
