// cgroup.v2: the unified cgroup hierarchy is mounted at /sys/fs/cgroup with the controllers the
// kubelet needs. The datapath's sock_addr programs attach to cgroup v2 too.
import type { Check, Finding } from './types.js';
import { mountAt, parseMounts } from '../probes/mounts.js';
import { parseSections, sectionHeader as h } from '../probes/sections.js';

export const CGROUP_SCRIPT = [
  `${h('mounts')}; grep -E "^[^ ]+ /sys/fs/cgroup(/[^ ]*)? " /proc/mounts`,
  `${h('controllers')}; cat /sys/fs/cgroup/cgroup.controllers 2>/dev/null || echo '(unreadable)'`,
  `${h('cmdline')}; cat /proc/cmdline`,
  'true',
].join('\n');

// kubeadm's preflight (k8s.io/system-validators, validators/types_unix.go): cgroup v2 needs
// cpu, cpuset, devices, freezer, memory, pids; hugetlb and io are optional. devices and freezer
// are implicit in v2 (a BPF program and cgroup.freeze, Linux >= 5.2) and never appear in
// cgroup.controllers, so they are not looked for there.
export const REQUIRED_CONTROLLERS = ['cpu', 'cpuset', 'memory', 'pids'];
export const RECOMMENDED_CONTROLLERS = ['io', 'hugetlb'];

const EXPECTED = `cgroup2 at /sys/fs/cgroup with ${REQUIRED_CONTROLLERS.join(', ')} (and ${RECOMMENDED_CONTROLLERS.join(', ')})`;

// kubernetes.io "About cgroup v2": add systemd.unified_cgroup_hierarchy=1 to GRUB_CMDLINE_LINUX in
// /etc/default/grub, then update-grub. RHEL-family systems use grubby instead.
const ENABLE_V2 =
  "Debian/Ubuntu: sed -i 's/^GRUB_CMDLINE_LINUX=\"/&systemd.unified_cgroup_hierarchy=1 /' /etc/default/grub && update-grub && reboot; " +
  'RHEL: grubby --update-kernel=ALL --args=systemd.unified_cgroup_hierarchy=1 && reboot';

export const cgroupV2: Check = {
  id: 'cgroup.v2',
  title: 'cgroup v2 (unified hierarchy)',
  async run({ host }): Promise<Finding> {
    return judgeCgroup(await host.exec(CGROUP_SCRIPT));
  },
};

/** The verdict on the gather script's output; pure. */
export function judgeCgroup(output: string): Finding {
  const s = parseSections(output);
  const mounts = parseMounts(s.get('mounts') ?? '');
  const root = mountAt(mounts, '/sys/fs/cgroup');
  const cmdline = (s.get('cmdline') ?? '').trim();
  const forcedV1 = cmdline.split(/\s+/).filter((a) => /^systemd\.unified_cgroup_hierarchy=(0|no|false|off)$|^systemd\.legacy_systemd_cgroup_controller(=|$)/.test(a));
  const v1Note = forcedV1.length > 0 ? `; the kernel command line sets ${forcedV1.join(' ')}` : '';
  const remedy = forcedV1.length > 0 ? `remove ${forcedV1.join(' ')} from the kernel command line (/etc/default/grub, then update-grub or grubby) and reboot; or ${ENABLE_V2}` : ENABLE_V2;

  if (root?.type !== 'cgroup2') {
    const unified = mountAt(mounts, '/sys/fs/cgroup/unified');
    const v1 = mounts.filter((m) => m.type === 'cgroup').map((m) => m.target.replace('/sys/fs/cgroup/', ''));
    const layout = !root
      ? 'nothing mounted at /sys/fs/cgroup'
      : unified?.type === 'cgroup2'
        ? `hybrid: cgroup v1 hierarchies (${v1.join(', ')}) at /sys/fs/cgroup, cgroup2 only at /sys/fs/cgroup/unified`
        : `cgroup v1 only (${root.type} at /sys/fs/cgroup; ${v1.join(', ') || 'no controllers'})`;
    return {
      status: 'fail',
      observed: `${layout}${v1Note}`,
      expected: EXPECTED,
      remedy,
      detail:
        'the kubelet treats anything but cgroup2 at /sys/fs/cgroup as cgroup v1, which Kubernetes put in maintenance mode in 1.31 and refuses by default from 1.35 (failCgroupV1); ' +
        'kubernetes.io "About cgroup v2" asks for a distribution that enables cgroup v2 and kernel >= 5.8',
    };
  }
  const line = (s.get('controllers') ?? '(unreadable)').trim();
  if (line === '(unreadable)') {
    return { status: 'error', observed: 'cgroup2 at /sys/fs/cgroup, but /sys/fs/cgroup/cgroup.controllers is unreadable', expected: EXPECTED, detail: 'cannot tell which controllers are available' };
  }
  const have = new Set(line.trim().split(/\s+/).filter(Boolean));
  const missing = REQUIRED_CONTROLLERS.filter((c) => !have.has(c));
  const missingOptional = RECOMMENDED_CONTROLLERS.filter((c) => !have.has(c));
  const disabled = cmdline.split(/\s+/).filter((a) => a.startsWith('cgroup_disable='));
  const observed = `cgroup2 at /sys/fs/cgroup; controllers: ${[...have].join(' ') || '(none)'}`;
  const fixControllers =
    disabled.length > 0
      ? `remove ${disabled.join(' ')} from the kernel command line (/etc/default/grub, then update-grub) and reboot`
      : 'boot the distribution kernel (CONFIG_MEMCG, CONFIG_CPUSETS, CONFIG_CGROUP_PIDS, CONFIG_BLK_CGROUP are set there); inside a container, the host must delegate the controllers';
  if (missing.length > 0) {
    return {
      status: 'fail',
      observed: `${observed}; missing ${missing.join(', ')}${disabled.length ? ` (${disabled.join(' ')})` : ''}`,
      expected: EXPECTED,
      remedy: fixControllers,
      detail: 'the kubelet enforces pod CPU and memory limits and PID limits through these controllers (kubeadm preflight, system-validators: cgroup v2 requires cpu, cpuset, memory, pids)',
    };
  }
  if (missingOptional.length > 0) {
    return {
      status: 'warn',
      observed: `${observed}; missing ${missingOptional.join(', ')}`,
      expected: EXPECTED,
      remedy: fixControllers,
      detail: 'optional for kubeadm preflight, but without io the runtime cannot account or throttle disk I/O per pod, and without hugetlb pods cannot request huge pages',
    };
  }
  return { status: 'pass', observed, expected: EXPECTED };
}
