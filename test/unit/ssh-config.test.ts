import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { parseSshG } from '../../src/host/ssh-config.js';

// Recorded with OpenSSH 9.2: `ssh -G -F node1.config node1` and `ssh -G -F /dev/null plainhost`.
const fixture = (name: string) => readFileSync(new URL(`../../../test/fixtures/ssh/${name}`, import.meta.url), 'utf8');

test('ssh -G output for an alias with HostName, User, Port, ProxyJump and known_hosts settings', () => {
  const s = parseSshG('node1', fixture('ssh-G-node1.txt'));
  assert.equal(s.hostname, '10.0.0.5');
  assert.equal(s.user, 'admin');
  assert.equal(s.port, 2222);
  assert.equal(s.proxyJump, 'bastion');
  assert.deepEqual(s.identityFiles, [`${homedir()}/.ssh/node1_ed25519`]);
  assert.equal(s.strictHostKeyChecking, 'accept-new');
  assert.equal(s.hashKnownHosts, true);
  assert.equal(s.identityAgent, null, 'IdentityAgent none');
  assert.equal(s.connectTimeoutSec, 7);
  assert.ok(s.userKnownHostsFiles[0]!.endsWith('/.ssh/kh_test'));
});

test('ssh -G defaults: no jump, every default identity, strict checking "ask"', () => {
  const s = parseSshG('plainhost', fixture('ssh-G-defaults.txt'));
  assert.equal(s.hostname, 'plainhost');
  assert.equal(s.port, 22);
  assert.equal(s.proxyJump, null);
  assert.equal(s.connectTimeoutSec, null);
  assert.equal(s.strictHostKeyChecking, 'ask');
  assert.ok(s.identityFiles.some((f) => f.endsWith('/.ssh/id_ed25519')));
  assert.deepEqual(s.globalKnownHostsFiles, ['/etc/ssh/ssh_known_hosts', '/etc/ssh/ssh_known_hosts2']);
});
