// The check catalogue, in the order checks run (a check's `requires` must come before it).
// virt.kvm comes first: in a container nothing after it can be fixed on the node. disk.fsync is
// last because it is the slow one.
import { bpfFs } from './bpf-fs.js';
import { cgroupV2 } from './cgroup-v2.js';
import { conntrackCapacity } from './conntrack-capacity.js';
import { datapathMemory } from './datapath-memory.js';
import { diskSpace } from './disk-space.js';
import { cpuSteal } from './cpu-steal.js';
import { datapathFeatures } from './datapath-features.js';
import { diskFsync } from './disk-fsync.js';
import { ipvsModules } from './ipvs-modules.js';
import { kernelBtf } from './kernel-btf.js';
import { kernelConfigCheck } from './kernel-config.js';
import { kernelVersion } from './kernel-version.js';
import { kubeletBasics } from './kubelet-basics.js';
import { netLocalhost } from './net-localhost.js';
import { netMtu } from './net-mtu.js';
import { netMultiqueue } from './net-multiqueue.js';
import { netPorts } from './net-ports.js';
import { netVirtio } from './net-virtio.js';
import { nodeBinaries } from './node-binaries.js';
import { nodeCpu } from './node-cpu.js';
import { nodeHostname } from './node-hostname.js';
import { nodeMemory } from './node-memory.js';
import { nodeNofile } from './node-nofile.js';
import { runtimeSocket } from './runtime-socket.js';
import { securityLsm } from './security-lsm.js';
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
  // kubeadm/k0s preflight parity: one shared read of the node (node-facts.ts).
  nodeCpu,
  nodeMemory,
  diskSpace,
  netPorts,
  nodeBinaries,
  runtimeSocket,
  nodeHostname,
  netLocalhost,
  nodeNofile,
  securityLsm,
  datapathMemory,
  diskFsync,
];
