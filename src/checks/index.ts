// The check catalogue, in the order checks run (a check's `requires` must come before it).
import { bpfFs } from './bpf-fs.js';
import { cgroupV2 } from './cgroup-v2.js';
import { kernelBtf } from './kernel-btf.js';
import { kernelConfigCheck } from './kernel-config.js';
import { kernelVersion } from './kernel-version.js';
import { virtKvm } from './virt-kvm.js';
import type { Check } from './types.js';

export const CHECKS: readonly Check[] = [virtKvm, kernelVersion, kernelConfigCheck, kernelBtf, bpfFs, cgroupV2];
