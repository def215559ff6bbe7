// node.binaries: the programs kubeadm's preflight looks for in PATH (InPathCheck,
// cmd/kubeadm/app/preflight/checks_linux.go addExecChecks): ip, iptables, mount and nsenter are
// errors when missing ("%s not found in system path"), conntrack (mandatory before Kubernetes 1.32,
// kubernetes/kubernetes#126952), ebtables, ethtool, socat, tc and touch are warnings.
import type { Check, Finding } from './types.js';
import { MANDATORY_BINARIES, OPTIONAL_BINARIES, nodeFacts } from '../probes/node-facts.js';

const SOURCE = 'kubeadm preflight InPathCheck (checks_linux.go addExecChecks): ip, iptables, mount, nsenter mandatory; conntrack (mandatory before 1.32), ebtables, ethtool, socat, tc, touch optional';

// Debian/Ubuntu and RHEL package names; ip and tc are both iproute2, mount and nsenter util-linux.
const DEB: Record<string, string> = { ip: 'iproute2', tc: 'iproute2', iptables: 'iptables', mount: 'mount', nsenter: 'util-linux', conntrack: 'conntrack', ebtables: 'ebtables', ethtool: 'ethtool', socat: 'socat', touch: 'coreutils' };
const RPM: Record<string, string> = { ip: 'iproute', tc: 'iproute-tc', iptables: 'iptables-nft', mount: 'util-linux', nsenter: 'util-linux', conntrack: 'conntrack-tools', ebtables: 'ebtables-legacy', ethtool: 'ethtool', socat: 'socat', touch: 'coreutils' };

export const nodeBinaries: Check = {
  id: 'node.binaries',
  title: "kubeadm's required programs",
  async run(ctx): Promise<Finding> {
    return judgeBinaries((await nodeFacts(ctx, ctx.profile.preflight.diskPath)).binaries);
  },
};

/** The verdict on which of kubeadm's programs were found; pure. */
export function judgeBinaries(found: ReadonlyMap<string, string | null>): Finding {
  const expected = `${MANDATORY_BINARIES.join(', ')} installed; ${OPTIONAL_BINARIES.join(', ')} recommended`;
  const missing = (names: readonly string[]) => names.filter((b) => (found.get(b) ?? null) === null);
  const hard = missing(MANDATORY_BINARIES);
  const soft = missing(OPTIONAL_BINARIES);
  if (hard.length === 0 && soft.length === 0) return { status: 'pass', observed: 'all found', expected, detail: SOURCE };
  const all = [...hard, ...soft];
  const pkgs = (table: Record<string, string>) => [...new Set(all.map((b) => table[b]!))].join(' ');
  return {
    status: hard.length > 0 ? 'fail' : 'warn',
    observed: [hard.length > 0 ? `missing: ${hard.join(', ')}` : '', soft.length > 0 ? `missing (optional): ${soft.join(', ')}` : ''].filter(Boolean).join('; '),
    expected,
    remedy: `apt-get install -y ${pkgs(DEB)} (Debian/Ubuntu) or dnf install -y ${pkgs(RPM)} (RHEL, Amazon Linux)`,
    detail: SOURCE,
  };
}
