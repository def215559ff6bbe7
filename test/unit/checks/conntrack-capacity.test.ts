import { test } from 'node:test';
import assert from 'node:assert/strict';
import { conntrackCapacity, judgeConntrack } from '../../../src/checks/conntrack-capacity.js';
import { parseSysctls, sysctlCommand, sysctlKeys } from '../../../src/probes/sysctl.js';
import { moduleNames, modulesCommand, parseModules } from '../../../src/probes/modules.js';
import { parseProfile } from '../../../src/profiles/load.js';
import { fixtureContext } from '../../helpers/fixture-host.js';
import { RECORDED_PROFILE_YAML, fixture } from '../../helpers/fixtures.js';

const LIMITS = { min: 262144, warnUsagePercent: 75 };
const profile = parseProfile(RECORDED_PROFILE_YAML, 'recorded profile');
const KEYS = sysctlKeys(profile);
const NAMES = moduleNames(profile);

function judgeHost(host: string, sysctl = 'sysctl.out', modules?: string) {
  const s = parseSysctls(fixture(`hosts/${host}/${sysctl}`), KEYS);
  const m = modules ? parseModules(fixture(`hosts/${host}/${modules}`), NAMES).states.get('nf_conntrack') : undefined;
  return judgeConntrack(s.get('net.netfilter.nf_conntrack_max')!, s.get('net.netfilter.nf_conntrack_count')!, m, LIMITS);
}

test('recorded local 6.18: 262144 entries, 0 in use -> pass', () => {
  const f = judgeHost('local-6.18');
  assert.equal(f.status, 'pass');
  assert.equal(f.observed, 'nf_conntrack_max = 262144, 0 in use (0.0%)');
  assert.match(f.detail ?? '', /32768 per CPU, 131072/);
});

test('recorded Debian 12 VM with nf_conntrack loaded: the RAM-sized 65536 is below the profile -> fail with sysctl -w', () => {
  const f = judgeHost('debian-12', 'sysctl-loaded.out', 'modules-loaded.out');
  assert.equal(f.status, 'fail');
  assert.equal(f.observed, 'nf_conntrack_max = 65536, 0 in use (0.0%)');
  assert.equal(f.remedy, "sysctl -w net.netfilter.nf_conntrack_max=262144 && echo 'net.netfilter.nf_conntrack_max = 262144' > /etc/sysctl.d/91-prep-node-conntrack.conf");
});

test('recorded Debian 12 VM, fresh: nf_conntrack not loaded -> fail saying so, remedy loads and persists it', () => {
  const f = judgeHost('debian-12', 'sysctl.out', 'modules.out');
  assert.equal(f.status, 'fail');
  assert.match(f.observed, /nf_conntrack is not loaded/);
  assert.match(f.remedy ?? '', /^modprobe nf_conntrack && \{ grep -qxs nf_conntrack \/etc\/modules-load\.d\/prep-node\.conf \|\| echo nf_conntrack >> /);
});

test('Ubuntu 20.04 (written): 101204 of 131072 in use -> fail on size (below the minimum) before usage', () => {
  const f = judgeHost('ubuntu-20.04');
  assert.equal(f.status, 'fail');
  assert.equal(f.observed, 'nf_conntrack_max = 131072, 101204 in use (77.2%)');
});

test('Amazon Linux 2023 (written): big enough but 91.6% in use -> warn, remedy doubles it', () => {
  const f = judgeHost('al2023');
  assert.equal(f.status, 'warn');
  assert.equal(f.observed, 'nf_conntrack_max = 262144, 240000 in use (91.6%)');
  assert.match(f.remedy ?? '', /nf_conntrack_max=524288/);
});

test('Ubuntu 22.04 (written): tuned node -> pass', () => {
  assert.equal(judgeHost('ubuntu-22.04').status, 'pass');
});

test('a full table fails; an unreadable value is error; a kernel without conntrack fails naming it', () => {
  const full = judgeConntrack({ state: 'value', value: '262144' }, { state: 'value', value: '262144' }, undefined, LIMITS);
  assert.equal(full.status, 'fail');
  assert.match(full.detail ?? '', /table full, dropping packet/);
  const bad = judgeConntrack({ state: 'unreadable' }, { state: 'value', value: '0' }, undefined, LIMITS);
  assert.equal(bad.status, 'error');
  assert.equal(bad.observed, 'nf_conntrack_max unreadable');
  const none = judgeConntrack({ state: 'absent' }, { state: 'absent' }, { state: 'missing', why: 'this kernel has no nf_conntrack module' }, LIMITS);
  assert.equal(none.status, 'fail');
  assert.match(none.observed, /not in this kernel/);
  assert.match(none.remedy ?? '', /CONFIG_NF_CONNTRACK/);
});

test('the check shares the sysctl and module reads and uses the profile limits', async () => {
  const yaml = 'name: p\ndescription: d\nkernel: {min: "5.10", recommended: "5.15"}\nmodules: [nf_conntrack]\nconntrack: {min: 65536, warnUsagePercent: 50}\n';
  const p = parseProfile(yaml, 'p.yaml');
  const ctx = await fixtureContext(
    {
      [sysctlCommand(sysctlKeys(p))]: fixture('hosts/debian-12/sysctl-loaded.out'),
      [modulesCommand(moduleNames(p))]: fixture('hosts/debian-12/modules-loaded.out'),
    },
    yaml,
  );
  const f = await conntrackCapacity.run(ctx);
  assert.equal(f.status, 'pass');
  assert.equal(f.expected, 'nf_conntrack_max >= 65536, usage <= 50%');
  assert.equal(f.observed, 'nf_conntrack_max = 65536, 0 in use (0.0%)');
  assert.equal(ctx.host.commands.length, 2);
});
