import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ipvsModules, judgeModules } from '../../../src/checks/ipvs-modules.js';
import { moduleNameOfPath, moduleNames, modulesCommand, parseModules } from '../../../src/probes/modules.js';
import { fixtureContext } from '../../helpers/fixture-host.js';
import { parseProfile } from '../../../src/profiles/load.js';
import { RECORDED_PROFILE_YAML, fixture } from '../../helpers/fixtures.js';

const WANTED = ['ip_vs', 'ip_vs_rr', 'ip_vs_wrr', 'ip_vs_sh', 'nf_conntrack', 'br_netfilter'];
const judge = (host: string, file = 'modules.out') => judgeModules(parseModules(fixture(`hosts/${host}/${file}`), WANTED), WANTED);

test('module file names: compression suffixes and dashes', () => {
  assert.equal(moduleNameOfPath('kernel/net/netfilter/ipvs/ip_vs_rr.ko.zst'), 'ip_vs_rr');
  assert.equal(moduleNameOfPath('kernel/net/netfilter/nf_conntrack.ko.xz'), 'nf_conntrack');
  assert.equal(moduleNameOfPath('kernel/arch/x86/events/amd/amd-uncore.ko'), 'amd_uncore');
  assert.equal(moduleNameOfPath('kernel/net/bridge/br_netfilter.ko'), 'br_netfilter');
});

test('recorded Debian 12 VM, fresh: all six loadable, none loaded -> fail with modprobe and modules-load.d', () => {
  const f = judge('debian-12');
  assert.equal(f.status, 'fail');
  assert.match(f.observed, /^ip_vs not loaded, ip_vs_rr not loaded, .*br_netfilter not loaded$/);
  assert.equal(
    f.remedy,
    "modprobe -a ip_vs ip_vs_rr ip_vs_wrr ip_vs_sh nf_conntrack br_netfilter && printf '%s\\n' ip_vs ip_vs_rr ip_vs_wrr ip_vs_sh nf_conntrack br_netfilter > /etc/modules-load.d/prep-node.conf",
  );
  assert.match(f.detail ?? '', /kubernetes\.io/);
});

test('recorded Debian 12 VM after modprobe: all loaded -> pass', () => {
  const f = judge('debian-12', 'modules-loaded.out');
  assert.equal(f.status, 'pass');
  assert.equal(f.observed, WANTED.map((m) => `${m} loaded`).join(', '));
  assert.equal(f.remedy, undefined);
});

test('recorded local 6.18 kernel without module support: IPVS absent -> fail naming the kernel, conntrack and bridge built in', () => {
  const facts = parseModules(fixture('hosts/local-6.18/modules.out'), WANTED);
  assert.equal(facts.canLoad, false);
  const f = judgeModules(facts, WANTED);
  assert.equal(f.status, 'fail');
  assert.match(f.observed, /ip_vs absent, ip_vs_rr absent, ip_vs_wrr absent, ip_vs_sh absent, nf_conntrack built in, br_netfilter built in/);
  assert.match(f.detail ?? '', /this kernel has no ip_vs module \(built without module support/);
  assert.match(f.remedy ?? '', /CONFIG_IP_VS=m/);
  assert.doesNotMatch(f.remedy ?? '', /modprobe/, 'nothing to modprobe on a kernel that cannot load modules');
  assert.doesNotMatch(f.remedy ?? '', /linux-modules-extra/, 'extra module packages cannot help a kernel without module support');
  // Built-in evidence: nf_conntrack has /sys/module (it has parameters); br_netfilter only its sysctl.
  assert.deepEqual(facts.states.get('br_netfilter'), { state: 'builtin', evidence: '/proc/sys/net/bridge/bridge-nf-call-iptables' });
  assert.deepEqual(facts.states.get('nf_conntrack'), { state: 'builtin', evidence: '/sys/module/nf_conntrack' });
});

test('Ubuntu 20.04 (written): br_netfilter and nf_conntrack loaded, IPVS only loadable -> fail, modprobe only the missing four', () => {
  const f = judge('ubuntu-20.04');
  assert.equal(f.status, 'fail');
  assert.match(f.observed, /ip_vs not loaded, .*nf_conntrack loaded, br_netfilter loaded/);
  assert.match(f.remedy ?? '', /^modprobe -a ip_vs ip_vs_rr ip_vs_wrr ip_vs_sh && printf '%s\\n' ip_vs ip_vs_rr ip_vs_wrr ip_vs_sh nf_conntrack br_netfilter > /);
});

test('Ubuntu 22.04 and Amazon Linux 2023 (written): kube-proxy IPVS nodes pass', () => {
  for (const host of ['ubuntu-22.04', 'al2023']) {
    const f = judge(host);
    assert.equal(f.status, 'pass', host);
    assert.match(f.observed, /ip_vs loaded, ip_vs_rr loaded/);
  }
});

test('Ubuntu 24.04 cloud kernel (written): ip_vs_sh not shipped, nf_conntrack .ko.zst loadable -> fail with both remedies', () => {
  const f = judge('ubuntu-24.04');
  assert.equal(f.status, 'fail');
  assert.match(f.observed, /ip_vs_sh absent/);
  assert.match(f.observed, /nf_conntrack not loaded/);
  assert.match(f.detail ?? '', /this kernel has no ip_vs_sh module \(not in \/lib\/modules\/6\.8\.0-1015-aws\/modules\.dep/);
  assert.match(f.remedy ?? '', /^modprobe -a ip_vs ip_vs_rr ip_vs_wrr nf_conntrack br_netfilter && .*; then boot a kernel that ships ip_vs_sh .*linux-modules-extra/);
});

test('RHEL 8.9 and Debian 10 (written): .ko.xz and .ko paths are found', () => {
  const rhel = parseModules(fixture('hosts/rhel-8/modules.out'), WANTED);
  assert.equal(rhel.states.get('ip_vs')?.state, 'loadable');
  assert.equal(rhel.states.get('nf_conntrack')?.state, 'loaded');
  assert.equal(judge('debian-10').status, 'fail');
});

test('a built-in listed only in modules.builtin, and a kernel whose modules dir is gone', () => {
  const names = ['br_netfilter', 'ip_vs'];
  const out = '@@ release\n6.1.0-9-amd64\n@@ proc-modules\next4 1003520 1 - Live 0x0\n@@ modules-dir\n@@ modules.dep\n@@ modules.builtin\nkernel/net/bridge/br_netfilter.ko\n@@ sys-module\n@@ feature-files\n';
  const facts = parseModules(out, names);
  assert.deepEqual(facts.states.get('br_netfilter'), { state: 'builtin', evidence: 'modules.builtin' });
  assert.equal(facts.states.get('ip_vs')?.state, 'missing');
  const gone = parseModules('@@ release\n6.1.0-9-amd64\n@@ proc-modules\n@@ sys-module\n@@ feature-files\n', ['ip_vs']);
  const f = judgeModules(gone, ['ip_vs']);
  assert.equal(f.status, 'fail');
  assert.match(f.detail ?? '', /\/lib\/modules\/6\.1\.0-9-amd64 is missing \(kernel upgraded and not rebooted\?\)/);
});

test('a built-in ip_vs on a kernel that lists no built-ins: whether its schedulers are in cannot be told -> error', () => {
  const out = '@@ release\n6.6.0-custom\n@@ sys-module\n@@ feature-files\n/proc/net/ip_vs\n';
  const f = judgeModules(parseModules(out, ['ip_vs', 'ip_vs_rr']), ['ip_vs', 'ip_vs_rr']);
  assert.equal(f.status, 'error');
  assert.equal(f.observed, 'ip_vs built in, ip_vs_rr unknown');
  assert.match(f.detail ?? '', /whether ip_vs_rr is built in cannot be read/);
});

test('the check runs the one memoised command and reads the profile', async () => {
  const cmd = modulesCommand(moduleNames(parseProfile(RECORDED_PROFILE_YAML, 'recorded profile')));
  const ctx = await fixtureContext({ [cmd]: fixture('hosts/debian-12/modules-loaded.out') }, RECORDED_PROFILE_YAML);
  const f = await ipvsModules.run(ctx);
  assert.equal(f.status, 'pass');
  await ipvsModules.run(ctx);
  assert.deepEqual(ctx.host.commands, [cmd], 'facts are read once per host');
  assert.match(cmd, /grep -E '\^\(\[\^:\]\*\/\)\?\(ip\[_-\]vs\|/);
});
