// node.cpu: enough CPUs for the node's role. kubeadm refuses a control plane with fewer than 2
// (preflight NumCPU, cmd/kubeadm/app/preflight/checks.go: "the number of available CPUs %d is less
// than the required %d"); workers have no upstream floor, the profile says.
import type { Check, Finding } from './types.js';
import { nodeFacts } from '../probes/node-facts.js';

const SOURCE = 'kubeadm preflight NumCPU: "the number of available CPUs N is less than the required 2" on control planes (constants.ControlPlaneNumCPU)';

export const nodeCpu: Check = {
  id: 'node.cpu',
  title: 'CPU count for the role',
  async run(ctx): Promise<Finding> {
    return judgeCpu((await nodeFacts(ctx, ctx.profile.preflight.diskPath)).cpus, ctx.profile.preflight.minCpus);
  },
};

/** The verdict on the online CPU count (nproc) against preflight.minCpus; pure. */
export function judgeCpu(cpus: number | null, min: number): Finding {
  const expected = `at least ${min} CPU${min === 1 ? '' : 's'} (preflight.minCpus)`;
  if (cpus === null) return { status: 'error', observed: 'nproc printed nothing', expected, detail: SOURCE };
  const observed = `${cpus} CPU${cpus === 1 ? '' : 's'}`;
  if (cpus >= min) return { status: 'pass', observed, expected, detail: SOURCE };
  return {
    status: 'fail',
    observed,
    expected,
    remedy: `resize the VPS to at least ${min} vCPUs in the provider's panel (or use a profile whose preflight.minCpus fits this node's role)`,
    detail: SOURCE,
  };
}
