// virt.kvm: the node is a KVM guest (or bare metal) with a kernel of its own, not a container
// sharing a host's kernel, not another hypervisor, not QEMU emulating a CPU without KVM.
import type { Check, CheckContext, Finding } from './types.js';
import { memo } from './types.js';
import { parseSections, sectionHeader as h } from '../probes/sections.js';

// Everything in one round-trip. Run as root: /proc/1/environ is readable by root only, and it is
// where container managers put `container=` when nothing else shows it.
export const VIRT_SCRIPT = [
  h('detect-virt'),
  'if command -v systemd-detect-virt >/dev/null 2>&1; then',
  '  echo "vm=$(systemd-detect-virt --vm 2>/dev/null)"; echo "container=$(systemd-detect-virt --container 2>/dev/null)"',
  'else echo absent; fi',
  `${h('arch')}; uname -m`,
  `${h('hypervisor-flag')}; if grep -qw hypervisor /proc/cpuinfo 2>/dev/null; then echo yes; else echo no; fi`,
  `${h('clocksources')}; cat /sys/devices/system/clocksource/clocksource0/available_clocksource 2>/dev/null`,
  `${h('dmi')}; for f in sys_vendor product_name; do [ -r /sys/class/dmi/id/$f ] && echo "$f=$(cat /sys/class/dmi/id/$f)"; done`,
  `${h('xen')}; cat /sys/hypervisor/type 2>/dev/null`,
  h('pid1-environ'),
  'if e=$(tr "\\0" "\\n" 2>/dev/null < /proc/1/environ); then printf "%s\\n" "$e" | grep "^container=" || echo unset; else echo unreadable; fi',
  `${h('run-systemd-container')}; cat /run/systemd/container 2>/dev/null`,
  `${h('markers')}; for p in /proc/vz /proc/bc /proc/user_beancounters /.dockerenv /run/.containerenv /run/host/container-manager; do [ -e $p ] && echo $p; done`,
  `${h('pid1-cgroup')}; cat /proc/1/cgroup 2>/dev/null`,
  `${h('pid2')}; cat /proc/2/comm 2>/dev/null`,
  'true',
].join('\n');

/** What the gather script found, before any judgement. */
export interface VirtFacts {
  /** systemd-detect-virt --vm / --container; null when systemd-detect-virt is not installed. */
  detectVm: string | null;
  detectContainer: string | null;
  arch: string;
  hypervisorFlag: boolean;
  clocksources: string[];
  sysVendor: string;
  productName: string;
  xen: string;
  /** `container=` from PID 1's environment; '' when unset; null when unreadable. */
  pid1Container: string | null;
  runSystemdContainer: string;
  markers: Set<string>;
  pid1Cgroup: string[];
  /** comm of PID 2: `kthreadd` in the kernel's initial PID namespace; '' when there is no PID 2. */
  pid2: string;
}

/** The gather script's output → facts; pure. */
export function parseVirtFacts(output: string): VirtFacts {
  const s = parseSections(output);
  const lines = (name: string) => (s.get(name) ?? '').split('\n').map((l) => l.trim()).filter(Boolean);
  const first = (name: string) => lines(name)[0] ?? '';
  const kv = (name: string, key: string) => lines(name).find((l) => l.startsWith(`${key}=`))?.slice(key.length + 1).trim() ?? '';
  const absent = first('detect-virt') === 'absent' || !s.has('detect-virt');
  const env = first('pid1-environ');
  return {
    detectVm: absent ? null : kv('detect-virt', 'vm') || 'none',
    detectContainer: absent ? null : kv('detect-virt', 'container') || 'none',
    arch: first('arch'),
    hypervisorFlag: first('hypervisor-flag') === 'yes',
    clocksources: first('clocksources').split(/\s+/).filter(Boolean),
    sysVendor: kv('dmi', 'sys_vendor'),
    productName: kv('dmi', 'product_name'),
    xen: first('xen'),
    pid1Container: env === 'unreadable' || env === '' ? null : env === 'unset' ? '' : env.replace(/^container=/, ''),
    runSystemdContainer: first('run-systemd-container'),
    markers: new Set(lines('markers')),
    pid1Cgroup: lines('pid1-cgroup'),
    pid2: first('pid2'),
  };
}

/** The facts, gathered once per host (cpu.steal and the network checks may want the hypervisor too). */
export function virtFacts(ctx: CheckContext): Promise<VirtFacts> {
  return memo(ctx, 'virt.facts', async () => parseVirtFacts(await ctx.host.exec(VIRT_SCRIPT, { sudo: true })));
}

export const virtKvm: Check = {
  id: 'virt.kvm',
  title: 'KVM guest with its own kernel',
  async run(ctx): Promise<Finding> {
    return judgeVirt(await virtFacts(ctx));
  },
};

const EXPECTED = 'a KVM guest (or bare metal) with its own kernel';

// systemd-detect-virt --vm names for hypervisors built on KVM: Amazon's Nitro and Google's
// Compute Engine are KVM underneath (systemd src/basic/virt.c reports them by their DMI vendor).
const KVM_FAMILY = new Set(['kvm', 'amazon', 'google']);

// Why another hypervisor is worth a warning: what prep-node tunes and checks is written for
// virtio-net under KVM, and native XDP came later to the other paravirtual NICs.
const OTHER_HYPERVISORS: Record<string, string> = {
  vmware: 'VMware: vmxnet3 has native XDP only since Linux 6.6',
  microsoft: 'Hyper-V: hv_netvsc has native XDP only since Linux 5.6, and accelerated networking swaps a VF under the NIC',
  xen: 'Xen: netfront has native XDP only since Linux 5.9, and PV guests lack hardware virtualisation features',
  oracle: 'VirtualBox: a desktop hypervisor, not what a VPS runs on',
  parallels: 'Parallels: a desktop hypervisor, not what a VPS runs on',
  bhyve: 'bhyve: virtio works, but prep-node is not tested there',
  zvm: 'z/VM: s390x, not a target of prep-node',
  powervm: 'PowerVM: ppc64, not a target of prep-node',
};

/** The verdict on the gathered facts; pure. */
export function judgeVirt(f: VirtFacts): Finding {
  const container = containerEvidence(f);
  if (container.strong.length > 0) {
    return {
      status: 'fail',
      observed: `container: ${container.strong.join('; ')}`,
      expected: EXPECTED,
      remedy: 'run the node on a KVM VPS (providers sell these as "KVM" or "cloud" servers) instead of an OpenVZ/LXC/Docker container',
      detail: 'a container shares the host\'s kernel and cannot load eBPF programs of its own (nor set most sysctls, load modules or mount bpffs)',
    };
  }
  const note = container.ignored.length > 0 ? `; ignored ${container.ignored.join(', ')}: PID 2 is kthreadd, so this is the kernel's own PID namespace, not a container's` : '';
  const hv = hypervisor(f);
  const kvmClock = f.clocksources.includes('kvm-clock');
  if (hv.name === null) {
    return {
      status: 'error',
      observed: `${hv.how}${note}`,
      expected: EXPECTED,
      remedy: 'install systemd-detect-virt (package systemd) so the hypervisor can be named, or --ignore virt.kvm',
      detail: 'cannot tell which hypervisor this is',
    };
  }
  if (hv.name === 'none') {
    return { status: 'pass', observed: `bare metal (${hv.how})${note}`, expected: EXPECTED, detail: 'no hypervisor: the kernel is the machine\'s own' };
  }
  if (KVM_FAMILY.has(hv.name)) {
    const vendor = f.sysVendor ? `, ${[f.sysVendor, f.productName].filter(Boolean).join(' ')}` : '';
    return { status: 'pass', observed: `KVM guest: ${hv.name} (${hv.how}${vendor})${note}`, expected: EXPECTED };
  }
  if (hv.name === 'qemu') {
    if (kvmClock) {
      // kvm-clock exists only when KVM's paravirtual CPUID leaves are there: KVM with a hidden signature.
      return { status: 'pass', observed: `KVM guest: qemu with kvm-clock (${hv.how})${note}`, expected: EXPECTED, detail: 'QEMU hides the KVM signature, but kvm-clock is offered: the CPU is KVM\'s' };
    }
    return {
      status: 'warn',
      observed: `QEMU without KVM (${hv.how}; no kvm-clock)${note}`,
      expected: EXPECTED,
      remedy: 'ask the provider for a KVM-accelerated plan; on your own host start QEMU with -accel kvm (needs /dev/kvm)',
      detail: 'QEMU without KVM emulates the CPU in software (TCG): eBPF works, but everything runs many times slower, so timings and throughput mean nothing',
    };
  }
  const why = OTHER_HYPERVISORS[hv.name] ?? `${hv.name}: not KVM, so prep-node's virtio-net checks and tunings may not apply`;
  return {
    status: 'warn',
    observed: `${hv.name} guest (${hv.how})${note}`,
    expected: EXPECTED,
    remedy: 'prefer a KVM VPS; on this hypervisor check the NIC driver\'s XDP and multiqueue support yourself',
    detail: `eBPF runs in any VM with its own kernel, but ${why}`,
  };
}

/** Signs of a container. `strong` decides; `ignored` are markers a VM image can carry by accident. */
export function containerEvidence(f: VirtFacts): { strong: string[]; ignored: string[] } {
  const strong: string[] = [];
  const weak: string[] = [];
  // OpenVZ: /proc/vz exists in containers and on the host node, /proc/bc only on the host node
  // (the rule systemd-detect-virt uses, src/basic/virt.c detect_container()).
  if (f.markers.has('/proc/vz') && !f.markers.has('/proc/bc')) strong.push('OpenVZ (/proc/vz without /proc/bc)');
  if (f.runSystemdContainer) strong.push(`${f.runSystemdContainer} (/run/systemd/container)`);
  if (f.pid1Container) strong.push(`${f.pid1Container} (container= in PID 1's environment)`);
  if (f.markers.has('/run/host/container-manager')) strong.push('/run/host/container-manager');
  const cg = f.pid1Cgroup.find((l) => /\/(docker|lxc|libpod|kubepods|garden|actions_job)\b|\/lxc\.payload|machine\.slice\/.*\.scope|:\/\.\./.test(l));
  if (cg) strong.push(`PID 1's cgroup ${cg.replace(/^\d+:[^:]*:/, '')}`);
  // The kernel's own PID namespace always has kthreadd as PID 2; a container's PID namespace does not.
  if (f.pid2 !== 'kthreadd') strong.push(f.pid2 ? `PID 2 is ${f.pid2}, not kthreadd (a PID namespace)` : 'no PID 2 (a PID namespace: kthreadd is not visible)');
  // systemd-detect-virt's docker and podman answers come from these two files alone.
  if (f.markers.has('/.dockerenv')) weak.push('/.dockerenv');
  if (f.markers.has('/run/.containerenv')) weak.push('/run/.containerenv');
  const dc = f.detectContainer;
  if (dc && dc !== 'none' && dc !== 'docker' && dc !== 'podman' && !strong.some((s) => s.toLowerCase().startsWith(dc))) {
    strong.push(`${dc} (systemd-detect-virt --container)`);
  }
  if (strong.length > 0) return { strong: [...strong, ...weak], ignored: [] };
  return { strong, ignored: weak };
}

/** Which hypervisor: a systemd-detect-virt name, 'none' (bare metal) or null (cannot tell). */
export function hypervisor(f: VirtFacts): { name: string | null; how: string } {
  if (f.detectVm !== null) return { name: f.detectVm, how: `systemd-detect-virt --vm: ${f.detectVm}` };
  // Without systemd: the same sources systemd-detect-virt reads, in its order (DMI, then CPUID).
  const dmi = `${f.sysVendor} ${f.productName}`.toLowerCase();
  const byDmi: [RegExp, string][] = [
    [/vmware/, 'vmware'],
    [/microsoft corporation.*virtual machine/, 'microsoft'],
    [/innotek|virtualbox/, 'oracle'],
    [/parallels/, 'parallels'],
    [/bhyve/, 'bhyve'],
    [/amazon ec2/, 'amazon'],
    [/google compute engine/, 'google'],
    [/^xen /, 'xen'],
  ];
  for (const [re, name] of byDmi) if (re.test(dmi)) return { name, how: `DMI: ${f.sysVendor} ${f.productName}`.trim() };
  if (f.xen) return { name: 'xen', how: `/sys/hypervisor/type: ${f.xen}` };
  if (f.clocksources.includes('kvm-clock')) return { name: 'kvm', how: 'kvm-clock clocksource' };
  if (/qemu|bochs/.test(dmi)) return { name: 'qemu', how: `DMI: ${f.sysVendor} ${f.productName}`.trim() };
  if (f.hypervisorFlag) return { name: null, how: 'the CPU has the hypervisor flag, but neither DMI nor the clocksources name the hypervisor, and systemd-detect-virt is not installed' };
  if (/^(x86_64|i[3-6]86)$/.test(f.arch)) return { name: 'none', how: 'no hypervisor flag in /proc/cpuinfo' };
  return { name: null, how: `${f.arch || 'unknown architecture'}: no hypervisor CPU flag to read, no DMI vendor, no systemd-detect-virt` };
}
