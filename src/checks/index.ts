// The check catalogue, in the order checks run (a check's `requires` must come before it).
// virt.kvm comes first: in a container nothing after it can be fixed on the node. disk.fsync is
// last because it is the slow one.
import { bpfFs } from './bpf-fs.js';
import { cgroupV2 } from './cgroup-v2.js';
import { conntrackCapacity } from './conntrack-capacity.js';
import { cpuSteal } from './cpu-steal.js';
import { datapathFeatures } from './datapath-features.js';
import { diskFsync } from './disk-fsync.js';
import { ipvsModules } from './ipvs-modules.js';
import { kernelBtf } from './kernel-btf.js';
import { kernelConfigCheck } from './kernel-config.js';
import { kernelVersion } from './kernel-version.js';
import { kubeletBasics } from './kubelet-basics.js';
import { netMtu } from './net-mtu.js';
import { netMultiqueue } from './net-multiqueue.js';
import { netVirtio } from './net-virtio.js';
import { sysctlDrift } from './sysctl-drift.js';
import { timeSync } from './time-sync.js';
import { virtKvm } from './virt-kvm.js';
import type { Check } from './types.js';

export const CHECKS: readonly Check[] = [
  virtKvm,
  kernelVersion,
  kernelConfigCheck,
  kernelBtf,
  bpfFs,
  cgroupV2,
  datapathFeatures,
  netVirtio,
  netMultiqueue,
  netMtu,
  cpuSteal,
  ipvsModules,
  conntrackCapacity,
  sysctlDrift,
  kubeletBasics,
  timeSync,
  diskFsync,
];
