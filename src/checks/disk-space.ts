// disk.space: free space where the kubelet, containerd and etcd keep their data (preflight.diskPath,
// /var/lib). k0s wants 1300 MiB free for a worker and 500 MiB more for a controller
// (internal/pkg/sysinfo, AssertFreeDiskSpace); the kubelet starts evicting pods when the node's
// filesystem has less than 10 % free and garbage-collects images below 15 % (default hard eviction
// nodefs.available<10%, imagefs.available<15%; kubernetes.io "Node-pressure Eviction").
import type { Check, Finding } from './types.js';
import { nodeFacts, type NodeFacts } from '../probes/node-facts.js';

const SOURCE =
  'k0s sysinfo AssertFreeDiskSpace: 1300 MiB worker + 500 MiB controller; kubelet hard eviction defaults nodefs.available<10%, imagefs.available<15% (kubernetes.io, Node-pressure Eviction)';
const EVICT_NODEFS = 10;
const EVICT_IMAGEFS = 15;

export const diskSpace: Check = {
  id: 'disk.space',
  title: 'Free disk for /var/lib',
  async run(ctx): Promise<Finding> {
    return judgeDiskSpace((await nodeFacts(ctx, ctx.profile.preflight.diskPath)).disk, ctx.profile.preflight.minFreeDiskMiB);
  },
};

/** The verdict on `df -Pk diskPath`; pure. */
export function judgeDiskSpace(disk: NodeFacts['disk'], minFreeMiB: number): Finding {
  const expected = `at least ${minFreeMiB} MiB free on ${disk.path} (preflight.minFreeDiskMiB) and more than ${EVICT_IMAGEFS} % of its filesystem free`;
  if ('error' in disk) return { status: 'error', observed: `df ${disk.path}: ${disk.error}`, expected, detail: SOURCE };
  const freeMiB = Math.floor(disk.availableKiB / 1024);
  const pct = disk.sizeKiB > 0 ? (100 * disk.availableKiB) / disk.sizeKiB : 0;
  const observed = `${freeMiB} MiB free on ${disk.mountedOn} (${pct.toFixed(1)} % of ${Math.round(disk.sizeKiB / 1024 / 1024)} GiB)`;
  const remedy = `free space on ${disk.mountedOn} (journalctl --vacuum-size=200M; apt-get clean or dnf clean all; crictl rmi --prune) or grow the disk in the provider's panel`;
  if (freeMiB < minFreeMiB || pct < EVICT_NODEFS) return { status: 'fail', observed, expected, remedy, detail: SOURCE };
  if (pct < EVICT_IMAGEFS) return { status: 'warn', observed, expected, remedy, detail: `the kubelet will garbage-collect images and soon evict pods. ${SOURCE}` };
  return { status: 'pass', observed, expected, detail: SOURCE };
}
