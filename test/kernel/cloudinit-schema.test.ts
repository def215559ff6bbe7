// cloud-init's own validator on what prep-node emits: `cloud-init schema --config-file FILE` (Debian
// 12's cloud-init 22.4; scripts/install-deps.sh installs it) on every committed cloud-init/*.yaml
// (test/unit/cloudinit.test.ts keeps those equal to what the code emits) and on a document using
// every shape the emitter has (symlinks, executable files). Any error or deprecation fails.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { emitCloudConfig } from '../../src/cloudinit/emit.js';
import { DOCS_DIR } from '../../src/cloudinit/docs.js';
import { tunerForms } from '../../src/cloudinit/forms.js';
import { loadProfile } from '../../src/profiles/load.js';

function schema(file: string): { status: number | null; output: string } {
  const r = spawnSync('cloud-init', ['schema', '--config-file', file], { encoding: 'utf8', timeout: 60_000 });
  if (r.error) throw new Error(`cloud-init schema: ${r.error.message} (install Debian's cloud-init: scripts/install-deps.sh)`);
  return { status: r.status, output: `${r.stdout}${r.stderr}`.trim() };
}

/** Valid, and no deprecated keys (22.4 prints "Cloud config schema deprecations: " followed by them). */
function assertValid(file: string): void {
  const { status, output } = schema(file);
  assert.equal(status, 0, `${file}:\n${output}`);
  assert.match(output, /^Valid cloud-config: /m, output);
  const deprecations = /Cloud config schema deprecations:(.*)/.exec(output)?.[1]?.trim() ?? '';
  assert.equal(deprecations, '', `${file}: deprecated keys: ${deprecations}`);
}

describe('cloud-init schema accepts what prep-node emits', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'prep-node-ci-schema-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('the validator itself rejects a broken document (so a pass means something)', () => {
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, '#cloud-config\nwrite_files:\n  - path: /etc/x\n    permissions: 0644\n    bogus: 1\n');
    const { status, output } = schema(bad);
    assert.notEqual(status, 0, output);
    assert.match(output, /bogus/);
    assert.match(output, /permissions: 420 is not of type 'string'/);
  });

  const files = readdirSync(DOCS_DIR).filter((f) => f.endsWith('.yaml')).sort();
  test('there are committed documents to validate', () => assert.ok(files.includes('k8s-worker.yaml'), files.join(', ')));
  for (const file of files) {
    test(`cloud-init/${file}`, () => assertValid(join(DOCS_DIR, file)));
  }

  test('every shape the emitter has: write_files with modes, ln -sfn for a symlink, commands', async () => {
    const profile = await loadProfile('k8s-worker');
    const forms = [
      ...tunerForms(profile),
      {
        tuner: 'mtu' as const,
        files: [
          { path: '/etc/systemd/system/prep-node-x.service', content: '[Service]\nType=oneshot\nExecStart=/bin/true\n' },
          { path: '/etc/systemd/system/multi-user.target.wants/prep-node-x.service', symlink: '/etc/systemd/system/prep-node-x.service' },
          { path: '/usr/local/sbin/prep-node-x', content: '#!/bin/sh\nexit 0\n', mode: 0o755 },
        ],
        commands: ['systemctl daemon-reload', "systemctl start prep-node-x.service || echo 'failed' >&2"],
      },
    ];
    const file = join(dir, 'shapes.yaml');
    writeFileSync(file, emitCloudConfig(profile, { version: '0.0.0' }, forms));
    assertValid(file);
  });
});
