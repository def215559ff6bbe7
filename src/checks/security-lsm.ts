// security.lsm: AppArmor and SELinux in a state the runtime copes with. kubeadm's install docs set
// SELinux to permissive ("This is required to allow containers to access the host filesystem"), and
// with AppArmor enabled containerd loads its default profile through apparmor_parser, failing every
// container without it ("apparmor_parser: executable file not found"; k0s probes AppArmor too,
// internal/pkg/sysinfo/probes/linux/apparmor.go).
import type { Check, Finding } from './types.js';
import { nodeFacts, type NodeFacts } from '../probes/node-facts.js';

const SOURCE =
  'kubeadm install docs: "setenforce 0 ... required to allow containers to access the host filesystem"; containerd applies its AppArmor profile with apparmor_parser when AppArmor is enabled';

export const securityLsm: Check = {
  id: 'security.lsm',
  title: 'AppArmor / SELinux state',
  async run(ctx): Promise<Finding> {
    return judgeLsm(await nodeFacts(ctx, ctx.profile.preflight.diskPath));
  },
};

/** The verdict on AppArmor and SELinux; pure. */
export function judgeLsm(f: Pick<NodeFacts, 'lsm' | 'apparmor' | 'selinuxEnforcing' | 'binaries'>): Finding {
  const expected = 'SELinux off or permissive; AppArmor off, or on with apparmor_parser installed';
  const aa = f.apparmor === true ? 'AppArmor enabled' : f.apparmor === false ? 'AppArmor disabled' : 'no AppArmor';
  const se = f.selinuxEnforcing === true ? 'SELinux enforcing' : f.selinuxEnforcing === false ? 'SELinux permissive' : 'no SELinux';
  const observed = `${aa}; ${se}${f.lsm.length > 0 ? ` (LSMs: ${f.lsm.join(',')})` : ''}`;
  const parserMissing = f.apparmor === true && (f.binaries.get('apparmor_parser') ?? null) === null;
  const remedies: string[] = [];
  if (f.selinuxEnforcing === true) remedies.push("setenforce 0 && sed -i 's/^SELINUX=enforcing$/SELINUX=permissive/' /etc/selinux/config");
  if (parserMissing) remedies.push('apt-get install -y apparmor');
  if (remedies.length === 0) return { status: 'pass', observed, expected, detail: SOURCE };
  return {
    status: 'warn',
    observed: observed + (parserMissing ? '; apparmor_parser missing' : ''),
    expected,
    remedy: remedies.join('; '),
    detail: `${f.selinuxEnforcing === true ? 'enforcing SELinux needs container-selinux and labelled volumes, or pods that mount host paths fail; ' : ''}${SOURCE}`,
  };
}
