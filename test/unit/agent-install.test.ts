// `agent install`'s checks before any node is contacted: bad input is one UsageError line (exit 2)
// naming the fix, and the files to upload must match the sha256 `make sea` recorded. The unit it
// writes runs the executable from its root-owned directory with the documented hardening.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AGENT_DIR, AGENT_FILES, localInputs, unitText } from '../../src/agent/install.js';
import { ExitCode, UsageError } from '../../src/errors.js';

const KUBECONFIG = JSON.stringify({
  apiVersion: 'v1',
  kind: 'Config',
  clusters: [{ name: 'c', cluster: { server: 'https://192.0.2.1:6443' } }],
  users: [{ name: 'u', user: { token: 'secret-token' } }],
  contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }],
  'current-context': 'x',
});

/** A fake `make sea` output: each file's bytes and SHA256SUMS as sha256sum writes it. */
function seaDir(dir: string): string {
  const sea = join(dir, 'sea');
  const sums: string[] = [];
  mkdirSync(sea);
  for (const name of AGENT_FILES) {
    if (name === 'prep-node-dp.sha256') continue;
    const data = Buffer.from(`${name} bytes`);
    writeFileSync(join(sea, name), data);
    sums.push(`${createHash('sha256').update(data).digest('hex')}  ${name}`);
  }
  writeFileSync(join(sea, 'prep-node-dp.sha256'), `${sums.find((l) => l.endsWith('  prep-node-dp'))}\n`);
  writeFileSync(join(sea, 'SHA256SUMS'), `${sums.join('\n')}\n`);
  return sea;
}

async function refused(p: Promise<unknown>, pattern: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof UsageError, String(err));
    assert.equal(err.exitCode, ExitCode.usage);
    assert.match(err.message, pattern);
    assert.doesNotMatch(err.message, /\n/);
    return true;
  });
}

test('agent install checks its input before any node: node name, listen address, kubeconfig, the built files', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'prep-node-agent-install-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const kc = join(dir, 'kubeconfig');
  writeFileSync(kc, KUBECONFIG);
  const sea = seaDir(dir);
  const ok = await localInputs({ kubeconfig: kc, listen: '127.0.0.1:10260', nodeName: 'node-a', seaDir: sea });
  assert.deepEqual(ok.files.map((f) => f.name), [...AGENT_FILES]);
  assert.deepEqual(ok.execArgs, ['agent', '--kubeconfig', '/etc/prep-node/agent.kubeconfig', '--listen', '127.0.0.1:10260', '--node-name', 'node-a']);
  assert.ok(!ok.execArgs.join(' ').includes('secret-token'), 'the token is not in the unit\'s argv');

  await refused(localInputs({ kubeconfig: kc, listen: '127.0.0.1:10260', nodeName: 'a b; rm -rf /', seaDir: sea }), /--node-name .*expected a Kubernetes node name/);
  await refused(localInputs({ kubeconfig: kc, listen: 'x y:10260', seaDir: sea }), /--listen x y:10260: expected ADDRESS:PORT/);
  await refused(localInputs({ kubeconfig: join(dir, 'absent'), listen: '127.0.0.1:1', seaDir: sea }), /--kubeconfig .*absent: ENOENT/);
  const noCluster = join(dir, 'nocluster');
  writeFileSync(noCluster, '{}');
  await refused(localInputs({ kubeconfig: noCluster, listen: '127.0.0.1:1', seaDir: sea }), /no current context with a cluster/);
  await refused(localInputs({ kubeconfig: kc, listen: '127.0.0.1:1', seaDir: join(dir, 'not-built') }), /not built .*make sea/);
  writeFileSync(join(sea, 'libbpf.so.1'), 'changed after the build');
  await refused(localInputs({ kubeconfig: kc, listen: '127.0.0.1:1', seaDir: sea }), /libbpf\.so\.1 does not match the sha256 `make sea` recorded/);
});

test('the unit: restart on failure, the BPF capabilities only, no new privileges, a read-only system but bpffs and the state directory', () => {
  const unit = unitText(['agent', '--kubeconfig', '/etc/prep-node/agent.kubeconfig', '--listen', '127.0.0.1:10260']);
  const lines = unit.split('\n');
  for (const want of [
    `ExecStart=${AGENT_DIR}/prep-node agent --kubeconfig /etc/prep-node/agent.kubeconfig --listen 127.0.0.1:10260`,
    'Restart=on-failure',
    'CapabilityBoundingSet=CAP_BPF CAP_PERFMON CAP_NET_ADMIN CAP_SYS_ADMIN CAP_SYS_RESOURCE',
    'NoNewPrivileges=yes',
    'ProtectSystem=strict',
    'ReadWritePaths=/sys/fs/bpf /var/lib/prep-node',
    'WantedBy=multi-user.target',
  ]) {
    assert.ok(lines.includes(want), `${want} in the unit`);
  }
  assert.ok(!lines.some((l) => l.startsWith('MemoryDenyWriteExecute')), 'V8 needs W+X pages');
});
