// `prep-node check --inventory hosts.ini --limit …` against two real sshd instances on loopback, as
// a Kubespray-style Ansible inventory describes them: each host has its own ansible_host, ansible_port,
// ansible_user and ansible_ssh_private_key_file (each key is authorized on its own sshd only, so a
// wrong key per host fails the login). A third host points at a closed port and is excluded by --limit.
// Run under the shared lock (sshd instances).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { authorize, freePort, makeClientKey, makeTempDir, removeTempDir, startSshd, type Sshd } from '../helpers/sshd.js';

const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url));

let a: Sshd;
let b: Sshd;
let dir = '';
let inventory = '';
let cfg = '';

before(async () => {
  a = await startSshd();
  b = await startSshd();
  dir = await makeTempDir('pntest-inv-');
  const keyA = await makeClientKey(dir, { name: 'key_a' });
  const keyB = await makeClientKey(dir, { name: 'key_b' });
  await authorize(a, 'root', keyA.publicKey);
  await authorize(b, 'root', keyB.publicKey);
  const closed = await freePort();
  inventory = join(dir, 'hosts.ini');
  writeFileSync(
    inventory,
    `[kube_control_plane]
cp1 ansible_host=127.0.0.1 ansible_port=${a.port} ansible_ssh_private_key_file=${keyA.privateKeyPath}

[kube_node]
worker1 ansible_host=127.0.0.1 ansible_port=${b.port} ansible_ssh_private_key_file=${keyB.privateKeyPath}
gone1 ansible_host=127.0.0.1 ansible_port=${closed}

[k8s_cluster:children]
kube_control_plane
kube_node

[k8s_cluster:vars]
ansible_user=root
`,
  );
  const knownHosts = join(dir, 'known_hosts');
  writeFileSync(knownHosts, `${a.knownHostsLine()}\n${b.knownHostsLine()}\n`);
  cfg = join(dir, 'ssh_config');
  writeFileSync(cfg, `Host *\n  UserKnownHostsFile ${knownHosts}\n  GlobalKnownHostsFile /dev/null\n  IdentityFile ${join(dir, 'no-such-key')}\n  IdentityAgent none\n`);
});

after(async () => {
  await a?.stop();
  await b?.stop();
  if (dir) await removeTempDir(dir);
});

function cli(args: string[]) {
  return spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1', SSH_AUTH_SOCK: '' }, timeout: 120_000 });
}

test('check on the two hosts an Ansible INI inventory and --limit name, each with its own key and port', () => {
  const r = cli(['check', '--json', '--steal-seconds', '1', '-F', cfg, '--inventory', inventory, '--limit', 'k8s_cluster:!gone1']);
  assert.ok(r.status === 0 || r.status === 1, `exit ${r.status}: ${r.stderr}`);
  const doc = JSON.parse(r.stdout) as { hosts: { target: string; reachable: boolean; checks: unknown[] }[] };
  assert.deepEqual(doc.hosts.map((h) => [h.target, h.reachable]), [
    ['cp1', true],
    ['worker1', true],
  ]);
  assert.ok(doc.hosts.every((h) => h.checks.length > 10), 'the checks ran on both');
  // each key is authorized on one sshd only: both reachable means each host used its own key
});

test('without --limit the closed port is in the fleet: one host unreachable, exit 3', () => {
  const r = cli(['check', '--json', '--steal-seconds', '1', '-F', cfg, '--inventory', inventory]);
  assert.equal(r.status, 3, r.stderr);
  const doc = JSON.parse(r.stdout) as { hosts: { target: string; reachable: boolean }[] };
  assert.deepEqual(doc.hosts.map((h) => [h.target, h.reachable]), [
    ['cp1', true],
    ['worker1', true],
    ['gone1', false],
  ]);
});

test('a bad inventory line and a --limit that matches nothing: one line each, exit 2', () => {
  const bad = join(dir, 'bad.ini');
  writeFileSync(bad, '[web]\nh1 ansible_port=99999\n');
  let r = cli(['check', '--inventory', bad]);
  assert.equal(r.status, 2);
  assert.equal(r.stderr.trim(), `prep-node: ${bad}:2: h1: ansible_port "99999" is not a number from 1 to 65535`);
  r = cli(['check', '--inventory', inventory, '--limit', 'etcd']);
  assert.equal(r.status, 2);
  assert.match(r.stderr.trim(), /^prep-node: --limit "etcd" matches no host in the inventory/);
});
