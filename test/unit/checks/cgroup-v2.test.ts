import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CGROUP_SCRIPT, cgroupV2, judgeCgroup } from '../../../src/checks/cgroup-v2.js';
import { fixtureContext } from '../../helpers/fixture-host.js';
import { fixture } from '../../helpers/fixtures.js';

const GRUB = /sed -i 's\/\^GRUB_CMDLINE_LINUX="\/&systemd\.unified_cgroup_hierarchy=1 \/' \/etc\/default\/grub && update-grub && reboot; RHEL: grubby --update-kernel=ALL --args=systemd\.unified_cgroup_hierarchy=1/;

// [fixture, status, observed, remedy]
const cases: [string, string, RegExp, RegExp | null][] = [
  ['debian-12-vm', 'pass', /^cgroup2 at \/sys\/fs\/cgroup; controllers: cpuset cpu io memory hugetlb pids rdma misc$/, null],
  // Recorded: this machine's init mounts the v1 controllers plus cgroup2 at /unified.
  ['local-firecracker-hybrid', 'fail', /^hybrid: cgroup v1 hierarchies \(cpu, cpuacct, cpuset, memory, devices, freezer, blkio, pids, systemd\) at \/sys\/fs\/cgroup, cgroup2 only at \/sys\/fs\/cgroup\/unified$/, GRUB],
  ['ubuntu-20.04-hybrid', 'fail', /^hybrid: cgroup v1 hierarchies \(systemd, cpu,cpuacct, cpuset, memory, pids, blkio, devices, freezer, hugetlb\)/, GRUB],
  ['ubuntu-22.04', 'pass', /controllers: cpuset cpu io memory hugetlb pids rdma misc$/, null],
  ['ubuntu-22.04-forced-v1', 'fail', /^hybrid: .*; the kernel command line sets systemd\.unified_cgroup_hierarchy=0$/, /^remove systemd\.unified_cgroup_hierarchy=0 from the kernel command line/],
  ['ubuntu-24.04', 'pass', /controllers: cpuset cpu io memory hugetlb pids rdma misc$/, null],
  ['debian-10-hybrid', 'fail', /^hybrid: /, GRUB],
  ['debian-11', 'pass', /controllers: cpuset cpu io memory hugetlb pids rdma$/, null],
  ['rhel-8-v1', 'fail', /^cgroup v1 only \(tmpfs at \/sys\/fs\/cgroup; systemd, cpu,cpuacct, /, GRUB],
  ['rhel-9', 'pass', /^cgroup2 at \/sys\/fs\/cgroup; controllers: /, null],
  ['amazon-linux-2023', 'pass', /^cgroup2 at \/sys\/fs\/cgroup; controllers: /, null],
  ['memory-disabled', 'fail', /controllers: cpuset cpu io pids; missing memory \(cgroup_disable=memory\)$/, /^remove cgroup_disable=memory from the kernel command line/],
  ['no-hugetlb', 'warn', /controllers: cpuset cpu io memory pids; missing hugetlb$/, /CONFIG_MEMCG/],
];

for (const [name, status, observed, remedy] of cases) {
  test(`cgroup.v2 on ${name} is ${status}`, () => {
    const f = judgeCgroup(fixture(`cgroup.v2/${name}.txt`));
    assert.equal(f.status, status, f.observed);
    assert.match(f.observed, observed);
    assert.equal(f.expected, 'cgroup2 at /sys/fs/cgroup with cpu, cpuset, memory, pids (and io, hugetlb)');
    if (remedy) assert.match(f.remedy ?? '', remedy);
    else assert.equal(f.remedy, undefined);
  });
}

test('v1 and hybrid fail explaining the kubelet and citing kubernetes.io', () => {
  const d = judgeCgroup(fixture('cgroup.v2/ubuntu-20.04-hybrid.txt')).detail ?? '';
  assert.match(d, /refuses by default from 1\.35 \(failCgroupV1\)/);
  assert.match(d, /kubernetes\.io "About cgroup v2"/);
});

test('missing controllers cite kubeadm preflight', () => {
  assert.match(judgeCgroup(fixture('cgroup.v2/memory-disabled.txt')).detail ?? '', /system-validators: cgroup v2 requires cpu, cpuset, memory, pids/);
});

test('cgroup2 with an unreadable controller list is an error', () => {
  const f = judgeCgroup('@@ mounts\ncgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n@@ controllers\n(unreadable)\n@@ cmdline\nro\n');
  assert.equal(f.status, 'error');
  assert.match(f.observed, /cgroup\.controllers is unreadable/);
});

test('nothing at /sys/fs/cgroup fails', () => {
  const f = judgeCgroup('@@ mounts\n@@ controllers\n(unreadable)\n@@ cmdline\nro\n');
  assert.equal(f.status, 'fail');
  assert.match(f.observed, /^nothing mounted at \/sys\/fs\/cgroup$/);
});

test('the check runs one script without sudo', async () => {
  const ctx = await fixtureContext({ [CGROUP_SCRIPT]: fixture('cgroup.v2/ubuntu-22.04.txt') });
  const f = await cgroupV2.run(ctx);
  assert.equal(f.status, 'pass');
  assert.deepEqual(ctx.host.commands, [CGROUP_SCRIPT]);
});
