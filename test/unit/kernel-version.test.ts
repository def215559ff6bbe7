import { test } from 'node:test';
import assert from 'node:assert/strict';
import { judgeKernel, kernelVersion } from '../../src/checks/kernel-version.js';
import { fixtureContext } from '../helpers/fixture-host.js';

const MIN = '5.10.0';
const REC = '5.15.0';

const cases: [string, string][] = [
  ['6.1.0-28-cloud-amd64', 'pass'],
  ['5.15.0-91-generic', 'pass'],
  ['6.8.0-1015-aws', 'pass'],
  ['5.10.0-26-amd64', 'warn'], // above the minimum, below the recommendation
  ['5.4.0-169-generic', 'fail'],
  ['4.19.0-25-amd64', 'fail'],
  ['4.18.0-513.5.1.el8_9.x86_64', 'warn'], // RHEL 8.9: accepted by Cilium, said so
  ['4.18.0-305.el8.x86_64', 'fail'], // RHEL 8.4: before the backports
  ['5.14.0-427.13.1.el9_4.x86_64', 'warn'],
  ['garbage', 'error'],
];

for (const [release, status] of cases) {
  test(`kernel ${release} is ${status}`, () => {
    const f = judgeKernel(release, MIN, REC);
    assert.equal(f.status, status);
    assert.ok(f.observed.startsWith(release));
    assert.equal(f.expected, '>= 5.10 (recommended >= 5.15)');
    if (status !== 'pass') assert.ok(f.remedy || f.detail, 'a finding says what to do or why');
    if (status === 'fail' || status === 'warn') assert.ok(f.remedy, 'fail and warn carry a remedy');
  });
}

test('RHEL 8 result names Cilium acceptance', () => {
  const f = judgeKernel('4.18.0-553.el8_10.x86_64', MIN, REC);
  assert.match(f.observed, /RHEL 8\.10/);
  assert.match(f.detail ?? '', /Cilium accepts/);
});

test('the check reads uname -r from the host and uses the profile', async () => {
  const ctx = await fixtureContext({ 'uname -r': '6.1.0-28-amd64\n' }, 'name: p\ndescription: d\nkernel: {min: "6.2", recommended: "6.6"}\n');
  const { host } = ctx;
  const f = await kernelVersion.run(ctx);
  assert.equal(f.status, 'fail');
  assert.equal(f.observed, '6.1.0-28-amd64');
  assert.deepEqual(host.commands, ['uname -r']);
});
