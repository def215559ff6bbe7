import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VIRT_SCRIPT, judgeVirt, parseVirtFacts, virtKvm } from '../../../src/checks/virt-kvm.js';
import { fixtureContext } from '../../helpers/fixture-host.js';
import { fixture } from '../../helpers/fixtures.js';

const judge = (name: string) => judgeVirt(parseVirtFacts(fixture(`virt.kvm/${name}.txt`)));

// [fixture, status, what observed must say, what remedy must say (fail/warn)]
const cases: [string, string, RegExp, RegExp | null][] = [
  // Recorded: Firecracker is KVM; /.dockerenv is left over from the image the rootfs was built from.
  ['local-firecracker', 'pass', /^KVM guest: kvm \(systemd-detect-virt --vm: kvm\); ignored \/\.dockerenv: PID 2 is kthreadd/, null],
  ['debian-12-vm-qemu-tcg', 'warn', /^QEMU without KVM \(systemd-detect-virt --vm: qemu; no kvm-clock\)/, /-accel kvm/],
  ['debian-12-vm-qemu-tcg-no-detect-virt', 'warn', /^QEMU without KVM \(DMI: QEMU Standard PC \(i440FX \+ PIIX, 1996\); no kvm-clock\)/, /KVM-accelerated/],
  ['ubuntu-22.04-kvm', 'pass', /^KVM guest: kvm \(systemd-detect-virt --vm: kvm, QEMU Standard PC/, null],
  ['ubuntu-20.04-hetzner', 'pass', /^KVM guest: kvm \(.*Hetzner vServer\)$/, null],
  ['debian-11-kvm-no-systemd-detect-virt', 'pass', /^KVM guest: kvm \(kvm-clock clocksource, QEMU Standard PC \(Q35/, null],
  ['amazon-linux-2023-nitro', 'pass', /^KVM guest: amazon \(.*Amazon EC2 t3\.medium\)$/, null],
  ['qemu-kvm-hidden', 'pass', /^KVM guest: qemu with kvm-clock/, null],
  ['ubuntu-20.04-bare-metal', 'pass', /^bare metal \(systemd-detect-virt --vm: none\)$/, null],
  ['rhel-9-vmware', 'warn', /^vmware guest/, /prefer a KVM VPS/],
  ['rhel-8-hyperv', 'warn', /^microsoft guest/, /prefer a KVM VPS/],
  ['debian-10-xen', 'warn', /^xen guest/, /prefer a KVM VPS/],
  ['openvz-7-container', 'fail', /^container: OpenVZ \(\/proc\/vz without \/proc\/bc\); PID 2 is kthreadd\/101/, /instead of an OpenVZ\/LXC\/Docker container/],
  ['lxc-container', 'fail', /^container: lxc \(\/run\/systemd\/container\); lxc \(container= in PID 1's environment\); no PID 2/, /KVM VPS/],
  ['docker-container', 'fail', /^container: no PID 2 \(a PID namespace.*\); \/\.dockerenv$/, /KVM VPS/],
  ['arm64-no-detect-virt', 'error', /^aarch64: no hypervisor CPU flag/, /systemd-detect-virt/],
  ['unknown-hypervisor', 'error', /hypervisor flag, but neither DMI nor the clocksources name the hypervisor/, /systemd-detect-virt/],
];

for (const [name, status, observed, remedy] of cases) {
  test(`virt.kvm on ${name} is ${status}`, () => {
    const f = judge(name);
    assert.equal(f.status, status, f.observed);
    assert.match(f.observed, observed);
    assert.equal(f.expected, 'a KVM guest (or bare metal) with its own kernel');
    if (remedy) assert.match(f.remedy ?? '', remedy);
    else assert.equal(f.remedy, undefined, 'a pass carries no remedy');
  });
}

test('a container fails with the reason eBPF needs a kernel of its own', () => {
  assert.match(judge('openvz-7-container').detail ?? '', /a container shares the host's kernel and cannot load eBPF programs of its own/);
});

test('other hypervisors warn with why, TCG says it is emulated and slow', () => {
  assert.match(judge('rhel-9-vmware').detail ?? '', /vmxnet3 has native XDP only since Linux 6\.6/);
  assert.match(judge('debian-12-vm-qemu-tcg').detail ?? '', /emulates the CPU in software \(TCG\).*slower/);
});

test('/.dockerenv alone does not make a container when PID 2 is kthreadd, but does when it is not', () => {
  const vm = parseVirtFacts(fixture('virt.kvm/local-firecracker.txt'));
  assert.equal(judgeVirt(vm).status, 'pass');
  assert.equal(judgeVirt({ ...vm, pid2: '' }).status, 'fail');
  assert.equal(judgeVirt({ ...vm, pid1Cgroup: ['0::/system.slice/docker-3f1c0a.scope'] }).status, 'fail');
});

test('the recorded outputs parse into the facts they show', () => {
  const f = parseVirtFacts(fixture('virt.kvm/debian-12-vm-qemu-tcg.txt'));
  assert.equal(f.detectVm, 'qemu');
  assert.equal(f.detectContainer, 'none');
  assert.deepEqual(f.clocksources, ['hpet', 'acpi_pm']);
  assert.equal(f.pid1Container, '');
  assert.equal(f.pid2, 'kthreadd');
  const local = parseVirtFacts(fixture('virt.kvm/local-firecracker.txt'));
  assert.equal(local.pid1Container, null, 'PID 1 environ is unreadable on this machine, even for root');
  assert.ok(local.markers.has('/.dockerenv'));
});

test('the check runs the gather script once, through sudo, and memoizes it', async () => {
  const ctx = await fixtureContext({ [VIRT_SCRIPT]: fixture('virt.kvm/ubuntu-22.04-kvm.txt') });
  const sudo: (boolean | undefined)[] = [];
  const run = ctx.host.run.bind(ctx.host);
  ctx.host.run = (command, options) => {
    sudo.push(options?.sudo);
    return run(command, options);
  };
  const f = await virtKvm.run(ctx);
  assert.equal(f.status, 'pass');
  await virtKvm.run(ctx);
  assert.deepEqual(ctx.host.commands, [VIRT_SCRIPT]);
  assert.deepEqual(sudo, [true], 'PID 1\'s environment is readable by root only');
});
