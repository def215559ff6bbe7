// datapath.features judged on the loader's real `features` documents (test/fixtures/checks/features/),
// and the one host.run the check makes.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { datapathFeatures, FEATURES_COMMAND, judgeFeatures } from '../../../src/checks/datapath-features.js';
import { fixtureContext } from '../../helpers/fixture-host.js';

const fixture = (name: string) => readFileSync(new URL(`../../../../test/fixtures/checks/features/${name}.json`, import.meta.url), 'utf8');

describe('datapath.features', () => {
  it('passes on 6.12 and 6.18: set_retval, batch ops, tc works', () => {
    for (const k of ['trixie-amd64', 'trixie-cloud-amd64', 'local-6.18']) {
      const f = judgeFeatures(fixture(k));
      assert.equal(f.status, 'pass', `${k}: ${f.observed}`);
      assert.match(f.observed, /ECONNREFUSED/);
    }
    assert.match(judgeFeatures(fixture('local-6.18')).observed, /sch_ingress unknown/);
  });

  it('6.1 has set_retval (5.18+): pass', () => {
    for (const k of ['bookworm-amd64', 'bookworm-cloud-amd64']) assert.equal(judgeFeatures(fixture(k)).status, 'pass', k);
  });

  it('warns on 5.10: a Service without backends gives EPERM, not ECONNREFUSED', () => {
    for (const k of ['bullseye-amd64', 'bullseye-cloud-amd64']) {
      const f = judgeFeatures(fixture(k));
      assert.equal(f.status, 'warn', k);
      assert.match(f.observed, /^5\.10\.0-\d+-(cloud-)?amd64: set_retval: .*EPERM, not ECONNREFUSED/);
      assert.match(f.detail ?? '', /sch_ingress module, cls_bpf module/);
    }
  });

  it('fails naming what is missing (derived: the 5.10 record without getpeername4, a kernel older than 5.8)', () => {
    const doc = JSON.parse(fixture('bullseye-amd64')) as { attach: Record<string, boolean>; missing: string[] };
    doc.attach.getpeername4 = false;
    doc.missing.push('getpeername4');
    const f = judgeFeatures(JSON.stringify(doc));
    assert.equal(f.status, 'fail');
    assert.match(f.observed, /missing getpeername4/);
    assert.match(f.remedy ?? '', /5\.8/);
  });

  it('a node without the tc modules is told to install them (derived from the 5.10 record)', () => {
    const doc = JSON.parse(fixture('bullseye-amd64')) as { modules: Record<string, { present: string; works: boolean }>; missing: string[] };
    doc.modules.cls_bpf = { present: 'missing', works: false };
    doc.missing.push('cls_bpf');
    const f = judgeFeatures(JSON.stringify(doc));
    assert.equal(f.status, 'fail');
    assert.match(f.remedy ?? '', /linux-modules-extra/);
  });

  it('skips with a remedy when no loader was uploaded; garbage is an error, not a pass', () => {
    assert.equal(judgeFeatures('::no-loader\n').status, 'skip');
    assert.match(judgeFeatures('::no-loader\n').remedy ?? '', /datapath selftest/);
    for (const bad of ['', '{"kernel": 1}', '{"error":"usage","code":"usage"}', 'not json', '{"kernel":"x","missing":[1],"degraded":[],"modules":{},"helpers":{}}']) {
      assert.equal(judgeFeatures(bad).status, 'error', bad);
    }
  });

  it('makes one host.run with the recorded answer', async () => {
    const ctx = await fixtureContext({ [FEATURES_COMMAND]: fixture('bullseye-cloud-amd64') });
    const f = await datapathFeatures.run(ctx);
    assert.equal(f.status, 'warn');
    assert.deepEqual(ctx.host.commands, [FEATURES_COMMAND]);
  });
});
