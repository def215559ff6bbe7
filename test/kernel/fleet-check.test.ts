// A fleet run for real: `prep-node check local root@127.0.0.1:PORT` against this machine and a
// loopback sshd on it (the same machine twice: what a cloned VPS image looks like). The per-node
// parity checks run on both, the fleet section appears in the JSON and the text, names both hosts
// for the shared hostname, machine-id and MAC, and measures a clock offset near zero. Needs root
// (sshd, a root login); run under /tmp/prep-node-root.lock.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { authorize, makeClientKey, makeTempDir, removeTempDir, startSshd, type Sshd } from '../helpers/sshd.js';
import type { CheckDocument } from '../../src/report/json.js';

const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url));
const PARITY = ['node.cpu', 'node.memory', 'disk.space', 'net.ports', 'node.binaries', 'runtime.socket', 'node.hostname', 'net.localhost', 'node.nofile', 'security.lsm', 'datapath.memory'];

describe('check: fleet of local and a loopback sshd', () => {
  let sshd: Sshd;
  let dir: string;
  let config: string;
  let target: string;

  before(async () => {
    sshd = await startSshd();
    dir = await makeTempDir('pntest-fleet-');
    const key = await makeClientKey(dir, { name: 'id_ed25519' });
    await authorize(sshd, 'root', key.publicKey);
    const knownHosts = join(dir, 'known_hosts');
    await writeFile(knownHosts, sshd.knownHostsLine() + '\n');
    config = join(dir, 'ssh_config');
    await writeFile(config, ['Host *', `  UserKnownHostsFile ${knownHosts}`, '  GlobalKnownHostsFile /dev/null', `  IdentityFile ${key.privateKeyPath}`, '  IdentitiesOnly yes', '  IdentityAgent none', ''].join('\n'));
    target = `root@127.0.0.1:${sshd.port}`;
  });
  after(async () => {
    await sshd?.stop();
    if (dir) await removeTempDir(dir);
  });

  const run = (...args: string[]) => spawnSync(process.execPath, [CLI, 'check', 'local', target, '--ssh-config', config, '--steal-seconds', '1', ...args], { encoding: 'utf8', timeout: 120_000 });

  it('--json: both hosts ran the parity checks; the fleet section names the hosts sharing identities', () => {
    const r = run('--json', '--ignore', 'disk.fsync');
    const doc = JSON.parse(r.stdout) as CheckDocument;
    assert.equal(doc.hosts.length, 2);
    for (const h of doc.hosts) {
      assert.equal(h.reachable, true, `${h.target}: ${JSON.stringify(h.error)}`);
      for (const id of PARITY) {
        const c = h.checks.find((x) => x.id === id);
        assert.ok(c, `${h.target} ran ${id}`);
        assert.notEqual(c.status, 'error', `${h.target} ${id}: ${c.observed} ${c.detail}`);
      }
    }
    // The same machine over two transports reads the same facts.
    const obs = (t: number, id: string) => doc.hosts[t]!.checks.find((x) => x.id === id)!.observed;
    for (const id of ['node.cpu', 'node.memory', 'node.hostname', 'node.binaries']) assert.equal(obs(0, id), obs(1, id), id);

    assert.ok(doc.fleet, 'fleet section present');
    const fleet = new Map(doc.fleet.checks.map((c) => [c.id, c]));
    assert.deepEqual([...fleet.keys()], ['fleet.hostname', 'fleet.machine-id', 'fleet.product-uuid', 'fleet.mac', 'fleet.clock', 'fleet.mtu', 'fleet.kernel', 'fleet.cgroup']);
    for (const id of ['fleet.hostname', 'fleet.machine-id', 'fleet.mac']) {
      const c = fleet.get(id)!;
      assert.equal(c.status, 'fail', `${id}: ${c.observed}`);
      assert.deepEqual(c.hosts, ['local', target], id);
    }
    for (const id of ['fleet.mtu', 'fleet.kernel', 'fleet.cgroup']) assert.equal(fleet.get(id)!.status, 'pass', `${id}: ${fleet.get(id)!.observed}`);
    // One clock read against itself: within a second, the round trip printed with it.
    const clock = fleet.get('fleet.clock')!;
    assert.equal(clock.status, 'pass', clock.observed);
    assert.match(clock.observed, new RegExp(`^vs this machine: local [+-]\\d+ ms ±\\d+ ms, ${target.replace(/\./g, '\\.')} [+-]\\d+ ms ±\\d+ ms; largest between nodes`));
    // The duplicate identities fail the run (exit 1) unless ignored.
    assert.equal(r.status, 1);
    assert.equal(doc.exitCode, 1);
    assert.equal(doc.fleet.counts.fail >= 3, true);
  });

  it('text: a fleet section after the summary grid; --ignore takes fleet ids', () => {
    const r = run('--ignore', 'all');
    assert.equal(r.status, 0, r.stderr);
    const at = r.stdout.indexOf('\nfleet\n');
    assert.ok(at > 0, 'fleet heading');
    const section = r.stdout.slice(at);
    assert.match(section, /fleet\.hostname\s+FAIL\*/);
    assert.match(section, new RegExp(`hosts: local, ${target.replace(/\./g, '\\.')}`));
    const unknown = run('--ignore', 'fleet.nope');
    assert.equal(unknown.status, 2);
    assert.match(unknown.stderr, /--ignore: unknown check "fleet.nope" \(known: .*fleet\.hostname/);
  });
});
