// The tuners in the order they run: modules first (loading nf_conntrack or br_netfilter creates their
// sysctls), then sysctls and bpffs, and the changes that can cut the SSH session last.
import { bpffsTuner } from './bpffs.js';
import { channelsTuner } from './channels.js';
import { mtuTuner } from './mtu.js';
import { modulesTuner } from './modules.js';
import { sysctlTuner } from './sysctl.js';
import type { Tuner } from './types.js';

export const TUNERS: Tuner[] = [modulesTuner, sysctlTuner, bpffsTuner, mtuTuner, channelsTuner];
