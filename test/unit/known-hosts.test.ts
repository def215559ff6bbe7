import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  addKnownHost,
  fingerprint,
  keyTypeOf,
  knownHostsName,
  loadKnownHosts,
  parseKnownHosts,
  patternsMatch,
  verifyHostKey,
} from '../../src/host/known-hosts.js';

// Two real ed25519 public keys (ssh-keygen), with the fingerprints ssh-keygen -lf printed for them.
const KEY_A = 'AAAAC3NzaC1lZDI1NTE5AAAAIGRG+NxyT77gB1VRD6xIi2s4NclV/H+mwxQSMrmE9Svi';
const FP_A = 'SHA256:5nUSfli5qEtaFnWVd1e/D0Mr1bNOEknXD0EZpeHOLYE';
const KEY_B = 'AAAAC3NzaC1lZDI1NTE5AAAAID+GuP+Qecw1Qec7hzd2ySGh+PctkuMtUnM9ETkaz0V1';
const blob = (k: string) => Buffer.from(k, 'base64');

test('fingerprint and key type match ssh-keygen', () => {
  assert.equal(keyTypeOf(blob(KEY_A)), 'ssh-ed25519');
  assert.equal(fingerprint(blob(KEY_A)), FP_A);
});

test('names: port 22 plain, other ports bracketed', () => {
  assert.equal(knownHostsName('node1', 22), 'node1');
  assert.equal(knownHostsName('127.0.0.1', 2222), '[127.0.0.1]:2222');
});

test('patterns: lists, wildcards, negation, case', () => {
  assert.ok(patternsMatch('node1,node2', 'node2'));
  assert.ok(patternsMatch('*.example.com', 'web.EXAMPLE.com'));
  assert.ok(patternsMatch('node?', 'node7'));
  assert.ok(!patternsMatch('*.example.com,!bad.example.com', 'bad.example.com'));
  assert.ok(patternsMatch('[127.0.0.1]:2222', '[127.0.0.1]:2222'));
  assert.ok(!patternsMatch('[127.0.0.1]:2222', '127.0.0.1'));
});

test('hashed entries written by ssh-keygen -H are matched', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kh-'));
  try {
    const file = join(dir, 'known_hosts');
    execFileSync('sh', ['-c', `echo '[10.1.2.3]:2200 ssh-ed25519 ${KEY_A}' > ${file} && ssh-keygen -H -f ${file} 2>/dev/null`]);
    const [entry] = parseKnownHosts(readFileSync(file, 'utf8'), file);
    assert.ok(entry!.patterns.startsWith('|1|'));
    assert.ok(patternsMatch(entry!.patterns, '[10.1.2.3]:2200'));
    assert.ok(!patternsMatch(entry!.patterns, '10.1.2.3'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('verdicts: known, changed, unknown, revoked; comments and cert-authority lines ignored', () => {
  const text = [
    '# a comment',
    `node1 ssh-ed25519 ${KEY_A}`,
    `@cert-authority *.example.com ssh-ed25519 ${KEY_B}`,
    `@revoked * ssh-ed25519 ${KEY_B}`,
    'garbage-line',
  ].join('\n');
  const entries = parseKnownHosts(text, 'kh');
  assert.equal(entries.length, 3);
  assert.equal(verifyHostKey(entries, 'node1', blob(KEY_A)).status, 'known');
  assert.equal(verifyHostKey(entries, 'node2', blob(KEY_A)).status, 'unknown');
  assert.equal(verifyHostKey(entries, 'node1', blob(KEY_B)).status, 'revoked');
  const noRevoke = entries.filter((e) => e.marker !== '@revoked');
  const changed = verifyHostKey(noRevoke, 'node1', blob(KEY_B));
  assert.equal(changed.status, 'changed');
  assert.equal(changed.status === 'changed' && changed.entries[0]!.line, 2);
});

test('addKnownHost appends plain or hashed lines that read back as known', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kh-'));
  try {
    const file = join(dir, 'sub', 'known_hosts');
    await addKnownHost(file, '[127.0.0.1]:2222', blob(KEY_A), false);
    await addKnownHost(file, 'node9', blob(KEY_B), true);
    const text = readFileSync(file, 'utf8');
    assert.match(text, /^\[127\.0\.0\.1\]:2222 ssh-ed25519 /m);
    assert.match(text, /^\|1\|/m);
    const entries = await loadKnownHosts([file, join(dir, 'missing')]);
    assert.equal(verifyHostKey(entries, '[127.0.0.1]:2222', blob(KEY_A)).status, 'known');
    assert.equal(verifyHostKey(entries, 'node9', blob(KEY_B)).status, 'known');
    // OpenSSH agrees: ssh-keygen -F finds the hashed entry.
    assert.match(execFileSync('ssh-keygen', ['-F', 'node9', '-f', file], { encoding: 'utf8' }), /ssh-ed25519/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
