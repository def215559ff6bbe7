import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BTF_COMMAND, judgeBtf, kernelBtf } from '../../../src/checks/kernel-btf.js';
import { fixtureContext } from '../../helpers/fixture-host.js';

// [where, BTF_COMMAND's stdout, status, observed]. One line each, so kept here rather than in files.
const cases: [string, string, string, RegExp][] = [
  // Recorded on this machine (Firecracker, 6.18.44-fc-v669) and on the Debian 12 VM (6.1.0-50-amd64).
  ['local 6.18 (recorded)', '5516713\n', 'pass', /^\/sys\/kernel\/btf\/vmlinux present, 5\.3 MiB \(5516713 bytes\)$/],
  ['Debian 12 VM (recorded)', '4351479\n', 'pass', /present, 4\.1 MiB \(4351479 bytes\)$/],
  // Written from the format, not recorded: sizes as those kernels' BTF blobs are, roughly.
  ['Ubuntu 22.04 5.15', '5242880\n', 'pass', /present, 5\.0 MiB/],
  ['RHEL 8.9 4.18', '4112384\n', 'pass', /present, 3\.9 MiB/],
  ['Ubuntu 20.04 5.4 (no BTF, /sys/kernel/btf absent)', 'nobtfdir\n', 'fail', /^\/sys\/kernel\/btf missing \(kernel built without BTF\)$/],
  ['Debian 10 4.19', 'nobtfdir\n', 'fail', /kernel built without BTF/],
  ['module BTF only', 'missing\n', 'fail', /^\/sys\/kernel\/btf\/vmlinux missing$/],
  ['empty blob', '0\n', 'fail', /is empty$/],
  ['garbage', 'stat: cannot stat\n', 'error', /^stat: cannot stat$/],
];

for (const [where, stdout, status, observed] of cases) {
  test(`kernel.btf on ${where} is ${status}`, () => {
    const f = judgeBtf(stdout);
    assert.equal(f.status, status);
    assert.match(f.observed, observed);
    assert.equal(f.expected, '/sys/kernel/btf/vmlinux present (CONFIG_DEBUG_INFO_BTF=y)');
    if (status === 'fail') {
      assert.match(f.remedy ?? '', /CONFIG_DEBUG_INFO_BTF=y.*Debian >= 11, Ubuntu >= 20\.10, RHEL\/Rocky\/Alma >= 8\.2/);
      assert.match(f.detail ?? '', /libbpf README/);
    }
    if (status === 'pass') assert.equal(f.remedy, undefined);
  });
}

test('the check runs one command and reports a failed one as error with its stderr', async () => {
  const ctx = await fixtureContext({ [BTF_COMMAND]: { stdout: '', stderr: 'sh: stat: not found', code: 127 } });
  const f = await kernelBtf.run(ctx);
  assert.equal(f.status, 'error');
  assert.equal(f.observed, 'sh: stat: not found');
  assert.deepEqual(ctx.host.commands, [BTF_COMMAND]);
});
