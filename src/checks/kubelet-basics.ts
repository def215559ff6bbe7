// kubelet.basics: what kubeadm's preflight refuses a node for, checked the same way: swap is off
// (Swap), IPv4 forwarding is on (FileContent--proc-sys-net-ipv4-ip_forward), and bridged traffic
// goes through iptables (FileContent--proc-sys-net-bridge-bridge-nf-call-iptables).
import type { Check, Finding, Status } from './types.js';
import { readSysctls, sysctlKeys, type SysctlValue } from '../probes/sysctl.js';
import { isPresent, moduleNames, readModules, type ModuleState } from '../probes/modules.js';

// kubeadm cmd/kubeadm/app/preflight/checks.go: SwapCheck reads /proc/swaps; the kubelet refuses to
// start with swap on unless configured for it (KubeletConfiguration failSwapOn, default true).
// FileContentCheck{ipv4Forward, "1"}: pods' traffic is routed through the node.
// FileContentCheck{bridgenf, "1"}: kubeadm dropped it in v1.30 (kubernetes/kubernetes#123464) because
// only CNIs that put pods on a Linux bridge need it; we check it when the profile asks for br_netfilter.
const SOURCE = "kubeadm preflight: Swap, FileContent--proc-sys-net-ipv4-ip_forward, FileContent--proc-sys-net-bridge-bridge-nf-call-iptables (cmd/kubeadm/app/preflight/checks.go); the kubelet's failSwapOn defaults to true";

export const SWAPS_COMMAND = 'cat /proc/swaps';

export const kubeletBasics: Check = {
  id: 'kubelet.basics',
  title: 'Swap off, forwarding and bridge netfilter on',
  async run(ctx): Promise<Finding> {
    const [swaps, sysctls, modules] = await Promise.all([ctx.host.exec(SWAPS_COMMAND), readSysctls(ctx, sysctlKeys(ctx.profile)), readModules(ctx, moduleNames(ctx.profile))]);
    return judgeKubeletBasics({
      swaps,
      ipForward: sysctls.get('net.ipv4.ip_forward')!,
      bridgeNfCallIptables: sysctls.get('net.bridge.bridge-nf-call-iptables')!,
      brNetfilter: modules.states.get('br_netfilter'),
      wantBridgeNetfilter: ctx.profile.modules.includes('br_netfilter'),
    });
  },
};

export interface SwapDevice {
  name: string;
  type: string;
  sizeKiB: number;
}

/** /proc/swaps → its devices (the first line is the header "Filename Type Size Used Priority"). */
export function parseSwaps(text: string): SwapDevice[] {
  return text
    .split('\n')
    .slice(1)
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length >= 3 && f[0] !== '')
    // A path with a space is octal-escaped by the kernel (\040): show it as a space.
    .map((f) => ({ name: f[0]!.replace(/\\040/g, ' '), type: f[1]!, sizeKiB: Number(f[2]) }));
}

export interface KubeletFacts {
  swaps: string;
  ipForward: SysctlValue;
  bridgeNfCallIptables: SysctlValue;
  brNetfilter: ModuleState | undefined;
  wantBridgeNetfilter: boolean;
}

interface Part {
  status: Status;
  observed: string;
  remedy?: string;
}

function swapPart(swaps: string): Part {
  const devices = parseSwaps(swaps);
  if (devices.length === 0) return { status: 'pass', observed: 'swap off' };
  const zram = devices.some((d) => d.name.includes('zram'));
  return {
    status: 'fail',
    observed: `swap on: ${devices.map((d) => `${d.name} (${d.type}, ${Math.round(d.sizeKiB / 1024)} MiB)`).join(', ')}`,
    remedy:
      "swapoff -a && sed -i.prep-node.bak -E 's/^([^#].*[[:space:]]swap[[:space:]].*)$/# \\1/' /etc/fstab" +
      (zram ? ' && (dnf remove -y zram-generator-defaults || apt-get remove -y systemd-zram-generator zram-tools)' : ''),
  };
}

function sysctlPart(key: string, v: SysctlValue, remedy: string): Part {
  if (v.state === 'value') {
    const value = v.value.trim();
    return value === '1' ? { status: 'pass', observed: `${key} = 1` } : { status: 'fail', observed: `${key} = ${value}`, remedy };
  }
  if (v.state === 'absent') return { status: 'fail', observed: `${key} absent`, remedy };
  return { status: 'error', observed: `${key} unreadable` };
}

function bridgePart(f: KubeletFacts): Part {
  if (!f.wantBridgeNetfilter) return { status: 'pass', observed: 'bridge netfilter not required by the profile' };
  const key = 'net.bridge.bridge-nf-call-iptables';
  const br = f.brNetfilter;
  if (br?.state === 'missing') return { status: 'fail', observed: `br_netfilter absent`, remedy: 'boot a kernel with CONFIG_BRIDGE_NETFILTER (see ipvs.modules)' };
  if (!isPresent(br)) {
    return { status: 'fail', observed: 'br_netfilter not loaded', remedy: `modprobe br_netfilter && sysctl -w ${key}=1` };
  }
  const part = sysctlPart(key, f.bridgeNfCallIptables, `sysctl -w ${key}=1`);
  return { ...part, observed: `br_netfilter ${br!.state === 'loaded' ? 'loaded' : 'built in'}, ${part.observed}` };
}

const ORDER: Status[] = ['pass', 'skip', 'warn', 'error', 'fail'];

/** The verdict on swap, forwarding and bridge netfilter; pure. */
export function judgeKubeletBasics(f: KubeletFacts): Finding {
  const parts = [swapPart(f.swaps), sysctlPart('net.ipv4.ip_forward', f.ipForward, 'sysctl -w net.ipv4.ip_forward=1'), bridgePart(f)];
  const status = parts.map((p) => p.status).reduce((a, b) => (ORDER.indexOf(b) > ORDER.indexOf(a) ? b : a), 'pass');
  const expected = `swap off; net.ipv4.ip_forward = 1${f.wantBridgeNetfilter ? '; br_netfilter loaded, net.bridge.bridge-nf-call-iptables = 1' : ''}`;
  const remedies = parts.map((p) => p.remedy).filter((r): r is string => r !== undefined);
  return {
    status,
    observed: parts.map((p) => p.observed).join('; '),
    expected,
    ...(status !== 'pass' && remedies.length > 0 && { remedy: remedies.join('; ') }),
    detail: [status === 'error' ? 'cannot read a value as this user' : '', remedies.length > 0 ? 'these fix the running kernel; sysctl.drift and ipvs.modules give the files that persist them' : '', SOURCE]
      .filter(Boolean)
      .join('; '),
  };
}
