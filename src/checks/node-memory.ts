// node.memory: enough RAM for the node's role. kubeadm refuses a control plane under 1700 MB
// (preflight Mem, checks_linux.go: "the system RAM (%d MB) is less than the minimum %d MB"; its MB is
// Totalram/1024/1024, i.e. MiB, what /proc/meminfo calls MemTotal); k0s rejects a controller under
// 1 GiB and a worker under 500 MiB (internal/pkg/sysinfo, AssertTotalMemory); kubeadm's install docs
// ask 2 GB per machine.
import type { Check, Finding } from './types.js';
import { nodeFacts } from '../probes/node-facts.js';

const SOURCE =
  'kubeadm preflight Mem: "the system RAM (N MB) is less than the minimum 1700 MB" on control planes; k0s sysinfo AssertTotalMemory: 1 GiB controller, 500 MiB worker; kubeadm install docs: 2 GB or more per machine';

export const nodeMemory: Check = {
  id: 'node.memory',
  title: 'Memory for the role',
  async run(ctx): Promise<Finding> {
    return judgeMemory((await nodeFacts(ctx, ctx.profile.preflight.diskPath)).memTotalKiB, ctx.profile.preflight.memoryMiB);
  },
};

/** The verdict on MemTotal against preflight.memoryMiB; pure. */
export function judgeMemory(memTotalKiB: number | null, want: { min: number; recommended: number }): Finding {
  const expected = `at least ${want.min} MiB (preflight.memoryMiB.min), ${want.recommended} MiB recommended`;
  if (memTotalKiB === null) return { status: 'error', observed: 'no MemTotal in /proc/meminfo', expected, detail: SOURCE };
  const mib = Math.floor(memTotalKiB / 1024);
  const observed = `${mib} MiB`;
  const remedy = `resize the VPS to at least ${want.recommended} MiB of RAM in the provider's panel`;
  if (mib < want.min) return { status: 'fail', observed, expected, remedy, detail: SOURCE };
  if (mib < want.recommended) return { status: 'warn', observed, expected, remedy, detail: `enough to start, little left for pods. ${SOURCE}` };
  return { status: 'pass', observed, expected, detail: SOURCE };
}
