import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseKernelRelease } from '../../src/probes/kernel-release.js';

// uname -r strings recorded from each distro's stock kernels.
const cases: [string, string, { major: number; minor: number | null } | undefined][] = [
  ['5.15.0-91-generic', '5.15.0', undefined], // Ubuntu 22.04
  ['5.4.0-169-generic', '5.4.0', undefined], // Ubuntu 20.04
  ['6.8.0-1015-aws', '6.8.0', undefined], // Ubuntu 24.04 on AWS
  ['6.1.0-28-cloud-amd64', '6.1.0', undefined], // Debian 12 cloud image
  ['5.10.0-26-amd64', '5.10.0', undefined], // Debian 11
  ['4.19.0-25-amd64', '4.19.0', undefined], // Debian 10
  ['4.18.0-513.5.1.el8_9.x86_64', '4.18.0', { major: 8, minor: 9 }], // RHEL 8.9
  ['4.18.0-553.el8_10.x86_64', '4.18.0', { major: 8, minor: 10 }], // RHEL 8.10
  ['4.18.0-305.el8.x86_64', '4.18.0', { major: 8, minor: 4 }], // RHEL 8.4, no _minor suffix
  ['5.14.0-427.13.1.el9_4.x86_64', '5.14.0', { major: 9, minor: 4 }], // RHEL 9.4
  ['6.1.79-99.164.amzn2023.x86_64', '6.1.79', undefined], // Amazon Linux 2023
  ['6.18.44-fc-v669', '6.18.44', undefined], // a custom build
  ['6.9', '6.9.0', undefined], // two-part version
];

for (const [raw, version, rhel] of cases) {
  test(`parses ${raw}`, () => {
    const r = parseKernelRelease(raw);
    assert.ok(r, 'parsed');
    assert.equal(r.version, version);
    assert.deepEqual(r.rhel && { major: r.rhel.major, minor: r.rhel.minor }, rhel);
  });
}

test('rejects strings that do not start with a version', () => {
  for (const raw of ['', 'Linux', 'v5.10', 'five.ten']) assert.equal(parseKernelRelease(raw), null, raw);
});
