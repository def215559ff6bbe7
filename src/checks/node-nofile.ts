// node.nofile: the open-files limit the node's daemons get. k0s warns below 65536 descriptors per
// process (internal/pkg/sysinfo/probes/linux/ulimit.go, AssertProcessMaxFileDescriptors: "< 65536").
// k0s reads its own soft limit after Go raised it to the hard limit (Go >= 1.19 does so at start-up),
// so for Go daemons (containerd, the kubelet, k0s) the hard limit is what counts: systemd's
// DefaultLimitNOFILE for services without their own LimitNOFILE, else the login shell's.
import type { Check, Finding } from './types.js';
import { nodeFacts, type NodeFacts } from '../probes/node-facts.js';

const SOURCE = 'k0s sysinfo AssertProcessMaxFileDescriptors warns below 65536 ("Max. file descriptors per process"); Go >= 1.19 raises a process\'s soft RLIMIT_NOFILE to its hard limit';

export const nodeNofile: Check = {
  id: 'node.nofile',
  title: 'Open-files limit',
  async run(ctx): Promise<Finding> {
    return judgeNofile((await nodeFacts(ctx, ctx.profile.preflight.diskPath)).nofile, ctx.profile.preflight.minOpenFiles);
  },
};

function show(n: number | null): string {
  return n === null ? '?' : n === Number.MAX_SAFE_INTEGER ? 'unlimited' : String(n);
}

/** The verdict on the services' (systemd) or else the shell's hard NOFILE limit; pure. */
export function judgeNofile(n: NodeFacts['nofile'], min: number): Finding {
  const expected = `a hard open-files limit of at least ${min} (preflight.minOpenFiles)`;
  const systemd = n.systemdHard !== null;
  const hard = systemd ? n.systemdHard : n.shellHard;
  const observed = systemd
    ? `systemd services: ${show(n.systemdSoft)} soft, ${show(n.systemdHard)} hard (DefaultLimitNOFILE)`
    : `login shell: ${show(n.shellSoft)} soft, ${show(n.shellHard)} hard (no systemd)`;
  if (hard === null) return { status: 'error', observed, expected, detail: `ulimit -Hn printed no number. ${SOURCE}` };
  if (hard >= min) return { status: 'pass', observed, expected, detail: SOURCE };
  return {
    status: 'warn',
    observed,
    expected,
    remedy: systemd
      ? `mkdir -p /etc/systemd/system.conf.d && printf '[Manager]\\nDefaultLimitNOFILE=${min}:${Math.max(min, 524288)}\\n' > /etc/systemd/system.conf.d/90-prep-node-nofile.conf && systemctl daemon-reexec`
      : `echo '* hard nofile ${Math.max(min, 524288)}' >> /etc/security/limits.d/90-prep-node.conf (and raise the limit of whatever starts the runtime)`,
    detail: SOURCE,
  };
}
