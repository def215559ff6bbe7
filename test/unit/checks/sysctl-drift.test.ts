import { test } from 'node:test';
import assert from 'node:assert/strict';
import { judgeSysctls, sysctlDrift } from '../../../src/checks/sysctl-drift.js';
import { normalizeSysctl, parseSysctls, sysctlCommand, sysctlKeys } from '../../../src/probes/sysctl.js';
import { parseProfile } from '../../../src/profiles/load.js';
import { fixtureContext } from '../../helpers/fixture-host.js';
import { RECORDED_PROFILE_YAML, fixture } from '../../helpers/fixtures.js';

const profile = parseProfile(RECORDED_PROFILE_YAML, 'recorded profile');
const KEYS = sysctlKeys(profile);
const judge = (host: string, file = 'sysctl.out') => judgeSysctls(parseSysctls(fixture(`hosts/${host}/${file}`), KEYS), profile.sysctl, profile.optionalSysctl);

test('whitespace in values is normalised: ip_local_port_range prints a tab', () => {
  assert.equal(normalizeSysctl('1024\t65535\n'), '1024 65535');
  assert.equal(normalizeSysctl(32768), '32768');
});

test('the command reads /proc/sys paths, no sysctl binary', () => {
  const cmd = sysctlCommand(['net.core.somaxconn', 'net.ipv4.ip_local_port_range']);
  assert.match(cmd, /^for k in net\/core\/somaxconn net\/ipv4\/ip_local_port_range; do/);
  assert.doesNotMatch(cmd, /sysctl /);
});

test('recorded Debian 12 VM, fresh: five differ like tuned verify, file-max above the floor is kept, conntrack absent but optional', () => {
  const f = judge('debian-12');
  assert.equal(f.status, 'fail');
  assert.match(f.observed, /^net\.ipv4\.ip_forward = 0, expected 1; net\.ipv4\.ip_local_port_range = 32768 60999, expected 1024 65535; /);
  assert.match(f.observed, /net\.core\.somaxconn = 4096, expected 32768/);
  assert.match(f.observed, /fs\.file-max = 9223372036854775807 \(above 2097152: kept\)/);
  assert.match(f.observed, /net\.netfilter\.nf_conntrack_max: absent \(optional\); 5 of 6 differ$/);
  assert.match(f.remedy ?? '', /^sysctl -w net\.ipv4\.ip_forward=1 'net\.ipv4\.ip_local_port_range=1024 65535' net\.ipv4\.tcp_tw_reuse=1 net\.core\.somaxconn=32768 vm\.max_map_count=262144 && printf/);
  assert.match(f.remedy ?? '', /'fs\.file-max = 9223372036854775807'/, 'the persisted file never lowers a limit');
  assert.doesNotMatch(f.remedy ?? '', /nf_conntrack_max/, 'an absent key is not persisted');
  assert.match(f.remedy ?? '', /> \/etc\/sysctl\.d\/90-prep-node\.conf$/);
  assert.match(f.detail ?? '', /`prep-node apply TARGET --profile [\w-]+` sets them and writes \/etc\/sysctl\.d\/90-prep-node\.conf/);
  assert.doesNotMatch(f.detail ?? '', /once the tuners land/);
});

test('recorded local 6.18: file-max 2466170 is above the floor; conntrack present and compared', () => {
  const f = judge('local-6.18');
  assert.equal(f.status, 'fail');
  assert.match(f.observed, /fs\.file-max = 2466170 \(above 2097152: kept\)/);
  assert.match(f.observed, /5 of 7 differ$/);
});

test('Ubuntu 22.04 (written): tuned node -> pass with a count', () => {
  const f = judge('ubuntu-22.04');
  assert.equal(f.status, 'pass');
  assert.match(f.observed, /7 of 7 as wanted$/);
  assert.equal(f.remedy, undefined);
});

test('Ubuntu 20.04 (written): conntrack_max 131072 is below the 262144 floor -> drift', () => {
  const f = judge('ubuntu-20.04');
  assert.equal(f.status, 'fail');
  assert.match(f.observed, /net\.netfilter\.nf_conntrack_max = 131072, expected 262144/);
});

test('a key the kernel lacks is error "unknown sysctl" unless optional', () => {
  const current = new Map([
    ['net.core.somaxconn', { state: 'value', value: '32768' } as const],
    ['net.ipv4.tcp_frobnicate', { state: 'absent' } as const],
  ]);
  const f = judgeSysctls(current, { 'net.core.somaxconn': 32768, 'net.ipv4.tcp_frobnicate': 1 }, []);
  assert.equal(f.status, 'error');
  assert.match(f.observed, /net\.ipv4\.tcp_frobnicate: unknown sysctl on this kernel/);
  const g = judgeSysctls(current, { 'net.core.somaxconn': 32768, 'net.ipv4.tcp_frobnicate': 1 }, ['net.ipv4.tcp_frobnicate']);
  assert.equal(g.status, 'pass');
  assert.match(g.observed, /tcp_frobnicate: absent \(optional\); 1 of 1 as wanted/);
});

test('an exact key above the profile value is drift (only capacity limits are floors)', () => {
  const f = judgeSysctls(new Map([['net.ipv4.tcp_tw_reuse', { state: 'value', value: '2' }]]), { 'net.ipv4.tcp_tw_reuse': 1 }, []);
  assert.equal(f.status, 'fail');
  assert.equal(f.observed, 'net.ipv4.tcp_tw_reuse = 2, expected 1; 1 of 1 differ');
});

test('the check reads every key in one command', async () => {
  const yaml = 'name: p\ndescription: d\nkernel: {min: "5.10", recommended: "5.15"}\nsysctl: {net.core.somaxconn: 4096, net.ipv4.ip_local_port_range: "32768 60999"}\n';
  const keys = sysctlKeys(parseProfile(yaml, 'p.yaml'));
  const ctx = await fixtureContext({ [sysctlCommand(keys)]: fixture('hosts/debian-12/sysctl.out') }, yaml);
  const f = await sysctlDrift.run(ctx);
  assert.equal(f.status, 'pass');
  assert.equal(f.observed, '2 of 2 as wanted');
  assert.deepEqual(ctx.host.commands, [sysctlCommand(keys)]);
});
