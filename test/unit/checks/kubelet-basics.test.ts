import { test } from 'node:test';
import assert from 'node:assert/strict';
import { judgeKubeletBasics, kubeletBasics, parseSwaps, SWAPS_COMMAND } from '../../../src/checks/kubelet-basics.js';
import { parseSysctls, sysctlCommand, sysctlKeys } from '../../../src/probes/sysctl.js';
import { moduleNames, modulesCommand, parseModules } from '../../../src/probes/modules.js';
import { parseProfile } from '../../../src/profiles/load.js';
import { fixtureContext } from '../../helpers/fixture-host.js';
import { RECORDED_PROFILE_YAML, fixture } from '../../helpers/fixtures.js';

const profile = parseProfile(RECORDED_PROFILE_YAML, 'recorded profile');
const KEYS = sysctlKeys(profile);
const NAMES = moduleNames(profile);

function facts(host: string, swaps: string, sysctl: string, modules: string | null, wantBridgeNetfilter = true) {
  const s = parseSysctls(fixture(`hosts/${host}/${sysctl}`), KEYS);
  return {
    swaps,
    ipForward: s.get('net.ipv4.ip_forward')!,
    bridgeNfCallIptables: s.get('net.bridge.bridge-nf-call-iptables')!,
    brNetfilter: modules ? parseModules(fixture(`hosts/${host}/${modules}`), NAMES).states.get('br_netfilter') : { state: 'loaded' as const },
    wantBridgeNetfilter,
  };
}

test('/proc/swaps: header only is no swap; a file and a partition are read', () => {
  assert.deepEqual(parseSwaps(fixture('hosts/debian-12/swaps.out')), []);
  assert.deepEqual(parseSwaps(fixture('hosts/ubuntu-20.04/swaps.out')), [{ name: '/swap.img', type: 'file', sizeKiB: 2097148 }]);
  assert.deepEqual(parseSwaps(fixture('hosts/rhel-8/swaps.out')), [{ name: '/dev/dm-1', type: 'partition', sizeKiB: 4169724 }]);
});

test('recorded Debian 12 VM, fresh: forwarding off, br_netfilter not loaded -> fail with both fixes', () => {
  const f = judgeKubeletBasics(facts('debian-12', fixture('hosts/debian-12/swaps.out'), 'sysctl.out', 'modules.out'));
  assert.equal(f.status, 'fail');
  assert.equal(f.observed, 'swap off; net.ipv4.ip_forward = 0; br_netfilter not loaded');
  assert.equal(f.remedy, 'sysctl -w net.ipv4.ip_forward=1; modprobe br_netfilter && sysctl -w net.bridge.bridge-nf-call-iptables=1');
  assert.match(f.detail ?? '', /FileContent--proc-sys-net-ipv4-ip_forward/);
});

test('recorded local 6.18: br_netfilter built in and bridge-nf-call-iptables = 1, forwarding off -> fail on forwarding only', () => {
  const f = judgeKubeletBasics(facts('local-6.18', fixture('hosts/local-6.18/swaps.out'), 'sysctl.out', 'modules.out'));
  assert.equal(f.status, 'fail');
  assert.equal(f.observed, 'swap off; net.ipv4.ip_forward = 0; br_netfilter built in, net.bridge.bridge-nf-call-iptables = 1');
  assert.equal(f.remedy, 'sysctl -w net.ipv4.ip_forward=1');
});

test('Ubuntu 20.04 (written): /swap.img on -> fail, swapoff and fstab remedy', () => {
  const f = judgeKubeletBasics(facts('ubuntu-20.04', fixture('hosts/ubuntu-20.04/swaps.out'), 'sysctl.out', 'modules.out'));
  assert.equal(f.status, 'fail');
  assert.equal(f.observed, 'swap on: /swap.img (file, 2048 MiB); net.ipv4.ip_forward = 1; br_netfilter loaded, net.bridge.bridge-nf-call-iptables = 1');
  assert.match(f.remedy ?? '', /^swapoff -a && sed -i\.prep-node\.bak -E .* \/etc\/fstab$/);
});

test('Ubuntu 22.04 (written): all as kubeadm wants -> pass', () => {
  const f = judgeKubeletBasics(facts('ubuntu-22.04', fixture('hosts/ubuntu-22.04/swaps.out'), 'sysctl.out', 'modules.out'));
  assert.equal(f.status, 'pass');
  assert.equal(f.remedy, undefined);
  assert.match(f.observed, /^swap off; net\.ipv4\.ip_forward = 1; br_netfilter loaded/);
});

test('zram swap adds removing the generator; a profile without br_netfilter does not ask for bridge netfilter', () => {
  const zram = 'Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n/dev/zram0                              partition\t8388604\t\t0\t\t100\n';
  const f = judgeKubeletBasics(facts('debian-11', zram, 'sysctl.out', null, false));
  assert.equal(f.status, 'fail');
  assert.match(f.observed, /^swap on: \/dev\/zram0 \(partition, 8192 MiB\); net\.ipv4\.ip_forward = 0; bridge netfilter not required by the profile$/);
  assert.match(f.remedy ?? '', /zram-generator-defaults/);
  assert.doesNotMatch(f.expected, /bridge/);
});

test('the check reads /proc/swaps and shares the sysctl and module facts', async () => {
  const ctx = await fixtureContext({
    [SWAPS_COMMAND]: fixture('hosts/debian-12/swaps.out'),
    [sysctlCommand(KEYS)]: fixture('hosts/debian-12/sysctl-loaded.out'),
    [modulesCommand(NAMES)]: fixture('hosts/debian-12/modules-loaded.out'),
  }, RECORDED_PROFILE_YAML);
  const f = await kubeletBasics.run(ctx);
  assert.equal(f.status, 'fail');
  assert.equal(f.observed, 'swap off; net.ipv4.ip_forward = 0; br_netfilter loaded, net.bridge.bridge-nf-call-iptables = 1');
  assert.deepEqual([...ctx.host.commands].sort(), [SWAPS_COMMAND, sysctlCommand(KEYS), modulesCommand(NAMES)].sort());
});
