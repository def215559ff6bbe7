// conntrack.capacity: the conntrack table is big enough (nf_conntrack_max) and not filling up.
//
// No `requires: ['ipvs.modules']`: that check fails when any of six modules is missing (IPVS is often
// absent while conntrack works, as on our own machine), and a skip would hide a table that is full.
// When nf_conntrack itself is not loaded this check says so and fails with the modprobe remedy.
import type { Check, Finding } from './types.js';
import { readSysctls, sysctlKeys, type SysctlValue } from '../probes/sysctl.js';
import { moduleNames, readModules, type ModuleState } from '../probes/modules.js';
import { MODULES_LOAD_FILE } from './ipvs-modules.js';

// kube-proxy sizes the table as max(--conntrack-max-per-core 32768 × CPUs, --conntrack-min 131072)
// and writes it on start (cmd/kube-proxy/app/conntrack.go, getConntrackMax / setIntSysCtl). Without
// kube-proxy (an eBPF datapath replacing it) nobody raises the kernel's default, which is sized from RAM.
const SOURCE = 'kube-proxy sets nf_conntrack_max = max(32768 per CPU, 131072) when it starts (--conntrack-max-per-core, --conntrack-min); without kube-proxy the kernel default, sized from RAM, stays';

export interface ConntrackLimits {
  min: number;
  warnUsagePercent: number;
}

export const conntrackCapacity: Check = {
  id: 'conntrack.capacity',
  title: 'Conntrack table size and usage',
  async run(ctx): Promise<Finding> {
    const [sysctls, modules] = await Promise.all([readSysctls(ctx, sysctlKeys(ctx.profile)), readModules(ctx, moduleNames(ctx.profile))]);
    return judgeConntrack(
      sysctls.get('net.netfilter.nf_conntrack_max')!,
      sysctls.get('net.netfilter.nf_conntrack_count')!,
      modules.states.get('nf_conntrack'),
      ctx.profile.conntrack,
    );
  },
};

// Sorts after sysctl.drift's 90-prep-node.conf, so a raised limit wins over the profile's. It applies at
// boot because systemd-sysctl runs after systemd-modules-load (nf_conntrack in modules-load.d).
const CONNTRACK_SYSCTL_FILE = '/etc/sysctl.d/91-prep-node-conntrack.conf';

function raiseTo(n: number): string {
  return `sysctl -w net.netfilter.nf_conntrack_max=${n} && echo 'net.netfilter.nf_conntrack_max = ${n}' > ${CONNTRACK_SYSCTL_FILE}`;
}

function int(v: SysctlValue): number | null {
  return v.state === 'value' && /^\d+$/.test(v.value.trim()) ? Number(v.value.trim()) : null;
}

/** The verdict on nf_conntrack_max / nf_conntrack_count; pure. */
export function judgeConntrack(maxV: SysctlValue, countV: SysctlValue, module: ModuleState | undefined, limits: ConntrackLimits): Finding {
  const expected = `nf_conntrack_max >= ${limits.min}, usage <= ${limits.warnUsagePercent}%`;
  if (maxV.state === 'absent') {
    if (module?.state === 'missing') {
      return { status: 'fail', observed: 'no conntrack: nf_conntrack is not in this kernel', expected, remedy: 'boot a kernel with CONFIG_NF_CONNTRACK (see ipvs.modules)', detail: `${module.why}; ${SOURCE}` };
    }
    return {
      status: 'fail',
      observed: 'nf_conntrack is not loaded (no /proc/sys/net/netfilter/nf_conntrack_max)',
      expected,
      remedy: `modprobe nf_conntrack && { grep -qxs nf_conntrack ${MODULES_LOAD_FILE} || echo nf_conntrack >> ${MODULES_LOAD_FILE}; }; then check again`,
      detail: `the table does not exist until nf_conntrack loads; kube-proxy and the datapath's NAT need it. ${SOURCE}`,
    };
  }
  const max = int(maxV);
  const count = int(countV);
  if (max === null || count === null) {
    const bad = max === null ? `nf_conntrack_max ${maxV.state === 'value' ? `= "${maxV.value}"` : maxV.state}` : `nf_conntrack_count ${countV.state === 'value' ? `= "${countV.value}"` : countV.state}`;
    return { status: 'error', observed: bad, expected, detail: 'cannot read the conntrack table size from /proc/sys/net/netfilter' };
  }
  const usage = max > 0 ? (count / max) * 100 : 100;
  const observed = `nf_conntrack_max = ${max}, ${count} in use (${usage.toFixed(1)}%)`;
  if (count >= max) {
    return { status: 'fail', observed, expected, remedy: raiseTo(Math.max(limits.min, max * 2)), detail: `the table is full: the kernel drops new connections ("nf_conntrack: table full, dropping packet"). ${SOURCE}` };
  }
  if (max < limits.min) {
    return { status: 'fail', observed, expected, remedy: raiseTo(limits.min), detail: `${max} entries is below the profile's ${limits.min}. ${SOURCE}` };
  }
  if (usage > limits.warnUsagePercent) {
    return {
      status: 'warn',
      observed,
      expected,
      remedy: raiseTo(Math.max(limits.min, max * 2)),
      detail: `more than ${limits.warnUsagePercent}% of the table is in use: a burst will fill it and drop new connections. ${SOURCE}`,
    };
  }
  return { status: 'pass', observed, expected, detail: SOURCE };
}
