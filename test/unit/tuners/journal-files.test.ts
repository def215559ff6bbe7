import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileMatches, parseFiles, restoreFilesScript, writeFilesScript } from '../../../src/tuners/files.js';
import { newJournal, parseJournal, recordFiles, recordValues } from '../../../src/tuners/journal.js';
import { rollbackScript } from '../../../src/tuners/runner.js';
import { revertScript } from '../../../src/tuners/revert.js';

test('file states parse: absent, a file with bytes mode and owner, a symlink, anything else', () => {
  const bytes = Buffer.from([0, 1, 2, 255, 10]);
  const out = `@@ /a\nA\n@@ /b\nF 600 0 4\n${bytes.toString('base64')}\n@@ /c\nL ../x\n@@ /d\nO\n`;
  const s = parseFiles(out, ['/a', '/b', '/c', '/d']);
  assert.deepEqual(s.get('/a'), { kind: 'absent' });
  assert.deepEqual(s.get('/b'), { kind: 'file', content: bytes, mode: 0o600, uid: 0, gid: 4 });
  assert.deepEqual(s.get('/c'), { kind: 'symlink', target: '../x' });
  assert.deepEqual(s.get('/d'), { kind: 'other' });
  assert.throws(() => parseFiles('@@ /a\nA\n', ['/a', '/b']), /reading \/b gave no answer/);
  assert.ok(fileMatches({ kind: 'file', content: Buffer.from('x\n'), mode: 0o644, uid: 0, gid: 0 }, { path: '/p', content: 'x\n' }));
  assert.ok(!fileMatches({ kind: 'absent' }, { path: '/p', content: '' }));
});

test('the journal keeps the first original: a second apply never overwrites it', () => {
  const j = newJournal(true, 'r1', 'k8s-worker');
  assert.ok(recordValues(j, [{ tuner: 'sysctl', key: 'net.core.somaxconn', value: '4096' }]));
  assert.ok(!recordValues(j, [{ tuner: 'sysctl', key: 'net.core.somaxconn', value: '32768' }]));
  assert.equal(j.values[0]?.value, '4096');
  recordFiles(j, new Map([['/etc/fstab', { kind: 'file', content: Buffer.from('a\n'), mode: 0o644, uid: 0, gid: 0 }]]), 'h');
  recordFiles(j, new Map([['/etc/fstab', { kind: 'file', content: Buffer.from('changed\n'), mode: 0o644, uid: 0, gid: 0 }]]), 'h');
  assert.equal(Buffer.from((j.files[0]!.original as { base64: string }).base64, 'base64').toString(), 'a\n');
  assert.throws(() => recordFiles(j, new Map([['/etc', { kind: 'other' }]]), 'h'), /not a regular file/);
  assert.deepEqual(parseJournal(JSON.stringify(j), 'h'), j);
  assert.throws(() => parseJournal('{', 'h'), /journal\.json is not valid JSON/);
  assert.throws(() => parseJournal('{"schema":"x"}', 'h'), /is not a prep-node journal/);
});

test('the rollback script restores files, then values in reverse tuner order, then removes what prep-node created', () => {
  const j = newJournal(true, 'r1', 'k8s-worker');
  recordValues(j, [
    { tuner: 'modules', key: 'ip_vs', value: 'unloaded' },
    { tuner: 'sysctl', key: 'net.core.somaxconn', value: '4096' },
  ]);
  recordFiles(j, new Map([['/etc/sysctl.d/90-prep-node.conf', { kind: 'absent' }]]), 'h');
  j.dirs.push('/etc/modules-load.d');
  const s = rollbackScript(j);
  const order = ['rm -f /etc/sysctl.d/90-prep-node.conf', '/proc/sys/net/core/somaxconn', 'rmmod ip_vs', 'rmdir /etc/modules-load.d', 'rm -f /var/lib/prep-node/journal.json', 'rmdir /var/lib/prep-node'];
  const at = order.map((o) => s.indexOf(o));
  assert.ok(at.every((i) => i >= 0), `all present in:\n${s}`);
  assert.deepEqual([...at].sort((a, b) => a - b), at, 'in order');
});

test('write and restore scripts carry content as base64 on stdin-sized scripts, keep modes, and restore owners', () => {
  const w = writeFilesScript([{ path: "/etc/it's.conf", content: 'a = 1\n', mode: 0o600 }, { path: '/etc/l', symlink: '/x' }]);
  assert.match(w, /printf '%s' YSA9IDEK \| base64 -d/);
  assert.match(w, /chmod 600/);
  assert.match(w, /'\/etc\/it'\\''s\.conf'/);
  assert.match(w, /ln -sfn \/x \/etc\/l\.prep-node-tmp && mv -fT/);
  const r = restoreFilesScript([{ path: '/etc/f', original: { kind: 'file', content: Buffer.from('b'), mode: 0o640, uid: 0, gid: 42 } }]);
  assert.match(r, /chmod 640 "\$t" && chown 0:42 "\$t"/);
});

test('the revert script takes the lock first (a cancel that won stops it), restores, and leaves a marker', () => {
  const s = revertScript('r1-mtu', ['ip link set dev eth0 mtu 1500'], 'mtu eth0 9000');
  const lines = s.split('\n');
  assert.equal(lines[2], 'mkdir /var/lib/prep-node/revert-r1-mtu.lock 2>/dev/null || exit 0');
  assert.ok(lines.indexOf('{ ip link set dev eth0 mtu 1500; } || true') > 2);
  assert.match(s, /echo "r1-mtu \$\(date -u \+%Y-%m-%dT%H:%M:%SZ\) mtu eth0 9000" >> \/var\/lib\/prep-node\/reverted/);
});
