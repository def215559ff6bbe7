// A dry run shows the whole plan even when the node refuses items (issue 15 item 2), and a sysctl
// value the kernel would reject is refused while planning, before the first write (issue 17 item 5).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ExitCode, NodeRefusal } from '../../../src/errors.js';
import { BPFFS_SCRIPT } from '../../../src/probes/mounts.js';
import { modulesCommand } from '../../../src/probes/modules.js';
import { sysctlCommand } from '../../../src/probes/sysctl.js';
import { applyExitCode, renderPlan } from '../../../src/commands/apply.js';
import { parseProfile } from '../../../src/profiles/load.js';
import { readFilesCommand } from '../../../src/tuners/files.js';
import { JOURNAL_FILE, REVERTED_FILE, STATE_DIR } from '../../../src/tuners/journal.js';
import { applyProfile } from '../../../src/tuners/runner.js';
import { kernelRejects, sysctlTuner } from '../../../src/tuners/sysctl.js';
import { FixtureHost } from '../../helpers/fixture-host.js';

const PROFILE = parseProfile(
  'name: t\ndescription: d\nkernel: {min: "5.10", recommended: "5.15"}\nchannels: keep\nmtu: {apply: false}\n' +
    'modules: [ip_vs]\nsysctl:\n  net.core.somaxconn: 32768\n  net.ipv4.conf.all.rp_filter: "not-a-number"\n',
  't.yaml',
);
const KEYS = ['net.core.somaxconn', 'net.ipv4.conf.all.rp_filter'];
const JOURNAL_READ = `if [ -e ${JOURNAL_FILE} ]; then cat ${JOURNAL_FILE}; else echo '@@absent'; fi`;
const READS = {
  [JOURNAL_READ]: '@@absent\n',
  [`if [ -e ${REVERTED_FILE} ]; then cat ${REVERTED_FILE}; fi`]: '',
  [`for f in ${STATE_DIR}/revert-*.sh; do [ -e "$f" ] && basename "$f"; done; true`]: '',
  // a kernel with module support whose modules directory lacks ip_vs
  [modulesCommand(['ip_vs'])]: '@@ release\n6.1.0-x\n@@ proc-modules\n@@ modules-dir\n@@ modules.dep\n@@ modules.builtin\n@@ sys-module\n@@ feature-files\n',
  [sysctlCommand(KEYS)]: '@@ net/core/somaxconn\n4096\n@@ net/ipv4/conf/all/rp_filter\n2\n',
  // bpffs not mounted, no systemd: mount it and add the fstab line
  [BPFFS_SCRIPT]: '@@ mounts\n@@ pid1\ninit\n@@ systemd-booted\nno\n@@ systemd-version\n@@ fstab\n@@ mount-units\n',
  [readFilesCommand(['/etc/fstab'])]: '@@ /etc/fstab\nA\n',
  [`test -d ${STATE_DIR}`]: '',
  // each tuner reads its own file alongside its values (one round trip)
  [readFilesCommand(['/etc/modules-load.d/prep-node.conf'])]: '@@ /etc/modules-load.d/prep-node.conf\nA\n',
  [readFilesCommand(['/etc/sysctl.d/90-prep-node.conf'])]: '@@ /etc/sysctl.d/90-prep-node.conf\nA\n',
};

test('kernelRejects: integers where the kernel holds integers, as many fields as it holds; text keys are not judged', () => {
  assert.equal(kernelRejects('2', '1'), undefined);
  assert.equal(kernelRejects('4096\t87380\t6291456', '4096 131072 16777216'), undefined);
  assert.equal(kernelRejects('cubic', 'bbr'), undefined);
  assert.match(kernelRejects('2', 'not-a-number') ?? '', /"not-a-number" is not an integer \(it holds 2\)/);
  assert.match(kernelRejects('4096\t87380\t6291456', '4096 131072') ?? '', /is not 3 integers/);
  assert.match(kernelRejects('1', '') ?? '', /is not an integer/);
});

test('a sysctl value the kernel rejects is refused (exit 5) while planning: nothing is written', async () => {
  const loaded = {
    ...READS,
    [modulesCommand(['ip_vs'])]: '@@ release\n6.1.0-x\n@@ proc-modules\nip_vs 1 0 - Live 0x0\n@@ modules-dir\n@@ modules.dep\n@@ modules.builtin\n@@ sys-module\n@@ feature-files\n',
    [readFilesCommand(['/etc/modules-load.d/prep-node.conf'])]: '@@ /etc/modules-load.d/prep-node.conf\nA\n',
  };
  const host = new FixtureHost(loaded, 'node1');
  const ctx = { host, profile: PROFILE, cache: new Map() };
  await assert.rejects(sysctlTuner.plan(ctx), (err: unknown) => {
    assert.ok(err instanceof NodeRefusal);
    assert.equal(err.exitCode, ExitCode.refused);
    assert.equal(err.message, 'node1: the kernel would reject net.ipv4.conf.all.rp_filter: "not-a-number" is not an integer (it holds 2): fix the value in the profile');
    return true;
  });
  host.commands.length = 0;
  await assert.rejects(applyProfile(host, PROFILE, { dryRun: false, confirmTimeout: 60, reconnect: () => Promise.reject(new Error('unused')) }), NodeRefusal);
  assert.deepEqual(host.commands.filter((c) => !(c in loaded)), [], 'only reads ran: no journal, no sysctl.d file, no running value');
});

test('a dry run on a node that refuses two items prints the whole plan, marks both refusals with their reasons, and exits 5', async () => {
  const host = new FixtureHost(READS, 'node1');
  const report = await applyProfile(host, PROFILE, { dryRun: true, confirmTimeout: 60, reconnect: () => Promise.reject(new Error('unused')) });
  assert.deepEqual(report.refused.map((r) => r.tuner), ['modules', 'sysctl']);
  const text = renderPlan('node1', 't', report, true);
  assert.match(text, /^node1: profile t: 2 changes planned \(dry run: nothing changed\); 2 refused \(apply would stop before the first write\)$/m);
  assert.match(text, /^ {2}bpffs +\/sys\/fs\/bpf +not mounted → bpffs mounted/m, 'the items the node can take are still planned');
  assert.match(text, /^ {2}bpffs +\/etc\/fstab +write file/m);
  assert.match(text, /^ {2}REFUSED: modules: kernel 6\.1\.0-x lacks module ip_vs .*install the kernel's extra modules/m);
  assert.match(text, /^ {2}REFUSED: sysctl: the kernel would reject net\.ipv4\.conf\.all\.rp_filter: "not-a-number" is not an integer/m);
  assert.equal(applyExitCode(report), ExitCode.refused);
  assert.deepEqual(host.commands.filter((c) => !(c in READS)), [], 'a dry run only reads');
});
