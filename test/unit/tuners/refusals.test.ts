// Refusals caused by the node are PrepNodeErrors with their documented exit code, never exit 70
// (issue 11 item 4): one test per path.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ExitCode, NodeRefusal, PrepNodeError, RollbackError } from '../../../src/errors.js';
import { BPFFS_SCRIPT } from '../../../src/probes/mounts.js';
import { parseProfile } from '../../../src/profiles/load.js';
import { bpffsTuner } from '../../../src/tuners/bpffs.js';
import { missingParentsCommand, readFilesCommand, restoreFileCommand } from '../../../src/tuners/files.js';
import { JOURNAL_FILE, REVERTED_FILE, STATE_DIR, newJournal, parseJournal, readJournal, recordFiles, recordValues } from '../../../src/tuners/journal.js';
import { netplanEthernets } from '../../../src/tuners/netmgr.js';
import { applyProfile, rollback, rollbackScript } from '../../../src/tuners/runner.js';
import { sysctlCommand } from '../../../src/probes/sysctl.js';
import { FixtureHost } from '../../helpers/fixture-host.js';

const BASE = 'name: t\ndescription: d\nkernel: {min: "5.10", recommended: "5.15"}\nchannels: keep\nmtu: {apply: false}\n';
const profileOf = (extra: string) => parseProfile(BASE + extra, 't.yaml');
const JOURNAL_READ = `if [ -e ${JOURNAL_FILE} ]; then cat ${JOURNAL_FILE}; else echo '@@absent'; fi`;
/** What recover() reads before apply and rollback: no revert ran, none armed. */
const RECOVER = {
  [`if [ -e ${REVERTED_FILE} ]; then cat ${REVERTED_FILE}; fi`]: '',
  [`for f in ${STATE_DIR}/revert-*.sh; do [ -e "$f" ] && basename "$f"; done; true`]: '',
};

/** Asserts a refusal: the right class, the documented exit code, one line naming the host. */
function refusal(code: ExitCode, pattern: RegExp) {
  return (err: unknown) => {
    assert.ok(err instanceof PrepNodeError, `a PrepNodeError, got ${String(err)}`);
    assert.equal(err.exitCode, code, err.message);
    assert.match(err.message, pattern);
    assert.ok(!err.message.includes('\n'), 'one line');
    return true;
  };
}

test('a netplan file that does not parse is a refusal (exit 5) naming the file, not a bug', () => {
  const files = new Map([['/etc/netplan/50-cloud-init.yaml', Buffer.from('network:\n  ethernets: [unclosed\n')]]);
  assert.throws(() => netplanEthernets('node1', files), refusal(ExitCode.refused, /^node1: \/etc\/netplan\/50-cloud-init\.yaml is not valid YAML .*fix it first$/));
});

test('a bpffs path that holds another filesystem is a refusal (exit 5)', async () => {
  const out = '@@ mounts\ntmpfs /sys/fs/bpf tmpfs rw,nosuid,nodev 0 0\n@@ pid1\nsystemd\n@@ systemd-booted\nyes\n@@ systemd-version\nsystemd 252\n@@ fstab\n@@ mount-units\n';
  const ctx = { host: new FixtureHost({ [BPFFS_SCRIPT]: out }, 'node1'), profile: profileOf(''), cache: new Map() };
  await assert.rejects(bpffsTuner.plan(ctx), refusal(ExitCode.refused, /^node1: \/sys\/fs\/bpf is a tmpfs mount, not bpf: unmount it first$/));
});

test('a journal that is not ours (or not JSON) is a refusal (exit 5) for apply and rollback alike, before any write', async () => {
  assert.throws(() => parseJournal('{"schema":"someone-else/v3"}', 'node1'), refusal(ExitCode.refused, /journal\.json is not a prep-node journal \(schema: .*\); prep-node will not act on it/));
  assert.throws(() => parseJournal('not json', 'node1'), refusal(ExitCode.refused, /journal\.json is not valid JSON/));
  const host = new FixtureHost({ [JOURNAL_READ]: '[1, 2, 3]\n', ...RECOVER }, 'node1');
  await assert.rejects(readJournal(host), refusal(ExitCode.refused, /^node1: .*not a prep-node journal/));
  await assert.rejects(rollback(host, false), NodeRefusal);
  // Rollback reads what earlier runs left alongside the journal (read only: the marker is taken later).
  assert.deepEqual(host.commands.filter((c) => c !== JOURNAL_READ && !(c in RECOVER)), [], 'nothing but reads ran');
  assert.equal(host.commands.filter((c) => c === JOURNAL_READ).length, 2);
});

test('a path that is not a regular file is refused (exit 5) while planning, before the first write', async () => {
  const j = newJournal(false, 'r1', 't');
  assert.throws(() => recordFiles(j, new Map([['/etc/sysctl.d/90-prep-node.conf', { kind: 'other' }]]), 'node1'), refusal(ExitCode.refused, /^node1: \/etc\/sysctl\.d\/90-prep-node\.conf exists and is not a regular file/));
  // apply: the sysctl file is a directory on this node; the planned write is refused after planning and nothing is written
  const conf = '/etc/sysctl.d/90-prep-node.conf';
  const host = new FixtureHost(
    {
      ...RECOVER,
      [JOURNAL_READ]: '@@absent\n',
      [sysctlCommand(['net.core.somaxconn'])]: '@@ net/core/somaxconn\n4096\n',
      [readFilesCommand([conf])]: `@@ ${conf}\nO\n`,
      [missingParentsCommand([conf])]: '',
    },
    'node1',
  );
  const profile = profileOf('bpffs: false\nsysctl:\n  net.core.somaxconn: 32768\n');
  const options = { dryRun: false, confirmTimeout: 60, reconnect: () => Promise.reject(new Error('no reconnect in this test')) };
  await assert.rejects(applyProfile(host, profile, options), refusal(ExitCode.refused, /90-prep-node\.conf exists and is not a regular file/));
  const reads = new Set([...Object.keys(RECOVER), JOURNAL_READ, readFilesCommand([conf]), missingParentsCommand([conf]), `test -d ${STATE_DIR}`, sysctlCommand(['net.core.somaxconn'])]);
  assert.deepEqual(host.commands.filter((c) => !reads.has(c)), [], 'nothing but reads ran');
});

test('a failing rollback script is exit 7 (RollbackError) naming what could not be restored; the journal is removed only when every file is back', async () => {
  const j = newJournal(false, 'r1', 't');
  recordValues(j, [{ tuner: 'sysctl', key: 'net.core.somaxconn', value: '4096' }]);
  recordFiles(j, new Map([['/etc/sysctl.d/90-prep-node.conf', { kind: 'absent' }]]), 'node1');
  const script = rollbackScript(j);
  const failCheck = script.indexOf('if [ "$fail" != 0 ]');
  assert.ok(failCheck > 0 && failCheck < script.indexOf(`rm -f ${JOURNAL_FILE}`), 'the failure exit comes before the journal is removed');
  const host = new FixtureHost(
    {
      ...RECOVER,
      [JOURNAL_READ]: JSON.stringify(j),
      'sh -s': { code: 1, stderr: 'rm: cannot remove x\nprep-node: could not restore /etc/sysctl.d/90-prep-node.conf\nprep-node: some files could not be restored; the journal is kept\n' },
    },
    'node1',
  );
  await assert.rejects(rollback(host, false), (err: unknown) => {
    assert.ok(err instanceof RollbackError);
    refusal(ExitCode.rollbackFailed, /^node1: rollback failed \(exit 1\): could not restore \/etc\/sysctl\.d\/90-prep-node\.conf; the journal .* is kept: fix the cause and run prep-node rollback again$/)(err);
    return true;
  });
});

test('a file restore that fails in a real sh fails its && chain (so the rollback script counts it)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'prep-node-restore-'));
  try {
    const ok = restoreFileCommand(join(dir, 'f'), { kind: 'file', content: Buffer.from('x\n'), mode: 0o644, uid: process.getuid!(), gid: process.getgid!() })!;
    assert.equal(spawnSync('sh', ['-c', ok]).status, 0);
    const bad = restoreFileCommand(join(dir, 'no-such-dir', 'f'), { kind: 'file', content: Buffer.from('x\n'), mode: 0o644, uid: 0, gid: 0 })!;
    assert.notEqual(spawnSync('sh', ['-c', `{ ${bad}; } || exit 9; exit 0`]).status, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
