import { test } from 'node:test';
import assert from 'node:assert/strict';
import { exitCodeFor, type HostReport } from '../../src/report/model.js';
import { checkDocument, CHECK_SCHEMA } from '../../src/report/json.js';
import { renderFleet, renderHost, renderMatrix } from '../../src/report/table.js';
import type { FleetResult } from '../../src/checks/fleet.js';
import type { CheckResult } from '../../src/checks/types.js';

const result = (status: CheckResult['status'], ignored = false): CheckResult => ({
  id: 'kernel.version', title: 'Kernel version', status, observed: '5.4.0', expected: '>= 5.10', remedy: 'upgrade', ignored,
});
const host = (target: string, checks: CheckResult[], error?: HostReport['error']): HostReport => ({ target, profile: 'k8s-worker', checks, ...(error && { error }) });

test('exit codes: 0 ok or warn, 1 findings, 3 unreachable, 4 sudo refused; ignored findings do not count', () => {
  assert.equal(exitCodeFor([host('a', [result('pass'), result('warn')])]), 0);
  assert.equal(exitCodeFor([host('a', [result('fail')])]), 1);
  assert.equal(exitCodeFor([host('a', [result('error')])]), 1);
  assert.equal(exitCodeFor([host('a', [result('fail', true)])]), 0);
  assert.equal(exitCodeFor([host('a', [result('fail')]), host('b', [], { kind: 'refused', message: 'b: refused' })]), 3);
  assert.equal(exitCodeFor([host('a', [result('fail')]), host('b', [], { kind: 'sudo-password', message: 'b: sudo' })]), 4);
});

test('JSON document: schema, per-host counts, nulls for absent fields, summary', () => {
  const doc = checkDocument([host('a', [result('fail')]), host('b', [], { kind: 'dns', message: 'b: cannot resolve' })], {
    version: '1.2.3', startedAt: new Date(0), durationMs: 5,
  });
  assert.equal(doc.schema, CHECK_SCHEMA);
  assert.equal(doc.hosts[0]!.reachable, true);
  assert.equal(doc.hosts[0]!.counts.fail, 1);
  assert.equal(doc.hosts[0]!.checks[0]!.detail, null);
  assert.deepEqual(doc.hosts[1]!.error, { kind: 'dns', message: 'b: cannot resolve' });
  assert.equal(doc.summary.hosts, 2);
  assert.equal(doc.summary.unreachable, 1);
  assert.equal(doc.exitCode, 3);
  assert.deepEqual(JSON.parse(JSON.stringify(doc)), doc, 'round-trips');
});

test('table shows the remedy under a failing row', () => {
  const text = renderHost(host('node1', [result('fail')]), { color: false });
  assert.match(text, /^ {2}kernel\.version\s+FAIL\s+5\.4\.0$/m);
  assert.match(text, /^\s+expected: >= 5\.10$/m);
  assert.match(text, /^\s+fix: upgrade$/m);
  assert.doesNotMatch(renderHost(host('node1', [result('pass')]), { color: false }), /expected:|fix:/, 'a pass shows no remedy');
});

test('a few hosts: a check × host grid; unreachable hosts named', () => {
  const m = renderMatrix(
    [host('node1', [result('pass')]), host('node2', [result('fail', true)]), host('node3', [], { kind: 'timeout', message: 'x' })],
    { color: false },
  );
  assert.match(m, /^CHECK\s+node1\s+node2\s+node3$/m);
  assert.match(m, /^kernel\.version\s+PASS\s+FAIL\*\s+unreachable$/m);
  assert.match(m, /^unreachable: node3 \(timeout\)$/m);
});

test('a large fleet: one line per check with counts and the hosts that did not pass', () => {
  const fleet = Array.from({ length: 20 }, (_, i) => host(`n${i}`, [result(i === 3 ? 'fail' : i === 7 ? 'warn' : 'pass')]));
  const m = renderMatrix(fleet, { color: false });
  assert.equal(m, 'kernel.version  18 pass, 1 warn, 1 fail  (n3 FAIL, n7 WARN)\n');
});

const fleetResult = (status: FleetResult['status'], ignored = false): FleetResult => ({
  id: 'fleet.machine-id', title: 'machine-id unique', status, observed: 'abc on a, b', expected: 'a different machine-id on every node', remedy: 'systemd-machine-id-setup', hosts: ['a', 'b'], ignored,
});

test('fleet: a failing fleet check sets exit 1 unless ignored; unreachable still wins', () => {
  assert.equal(exitCodeFor([host('a', [result('pass')]), host('b', [result('pass')])], [fleetResult('fail')]), 1);
  assert.equal(exitCodeFor([host('a', [result('pass')]), host('b', [result('pass')])], [fleetResult('fail', true)]), 0);
  assert.equal(exitCodeFor([host('a', [result('pass')]), host('b', [result('pass')])], [fleetResult('warn')]), 0);
  assert.equal(exitCodeFor([host('a', [result('pass')]), host('b', [], { kind: 'refused', message: 'b: refused' })], [fleetResult('fail')]), 3);
});

test('fleet in JSON: null for one host; counts, hosts and nulls for several', () => {
  const meta = { version: '1.2.3', startedAt: new Date(0), durationMs: 5 };
  assert.equal(checkDocument([host('a', [result('pass')])], meta).fleet, null);
  const doc = checkDocument([host('a', [result('pass')]), host('b', [result('pass')])], meta, [{ ...fleetResult('fail'), remedy: undefined }]);
  assert.equal(doc.fleet!.counts.fail, 1);
  assert.deepEqual(doc.fleet!.checks[0]!.hosts, ['a', 'b']);
  assert.equal(doc.fleet!.checks[0]!.remedy, null);
  assert.equal(doc.exitCode, 1);
});

test('fleet text: the hosts that disagree under the row, then expected, why and fix', () => {
  const text = renderFleet([fleetResult('fail'), { ...fleetResult('pass'), id: 'fleet.kernel', observed: '6.1: a, b', hosts: [] }], { color: false });
  assert.equal(
    text,
    [
      'fleet',
      '  CHECK             STATUS  OBSERVED',
      '  fleet.machine-id  FAIL    abc on a, b',
      '                            hosts: a, b',
      '                            expected: a different machine-id on every node',
      '                            fix: systemd-machine-id-setup',
      '  fleet.kernel      PASS    6.1: a, b',
      '  1 pass, 0 warn, 1 fail, 0 error, 0 skip',
      '',
    ].join('\n'),
  );
});
