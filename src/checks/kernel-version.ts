// kernel.version: the running kernel against the profile's minimum and recommended versions.
import semver from 'semver';
import type { Check, Finding } from './types.js';
import { coerceVersion, parseKernelRelease } from '../probes/kernel-release.js';

// Cilium accepts RHEL 8.6+ kernels (4.18) as equivalent to 5.4 thanks to Red Hat's BPF backports
// (docs.cilium.io "System Requirements": ">= 5.4 or >= 4.18 on RHEL 8.6").
const RHEL8_MIN_MINOR = 6;

export const kernelVersion: Check = {
  id: 'kernel.version',
  title: 'Kernel version',
  async run({ host, profile }): Promise<Finding> {
    const release = (await host.exec('uname -r')).trim();
    const min = coerceVersion(profile.kernel.min)!;
    const recommended = coerceVersion(profile.kernel.recommended)!;
    return judgeKernel(release, min, recommended);
  },
};

/** The verdict on a `uname -r` string; pure, so distro strings are tested without a host. */
export function judgeKernel(release: string, min: string, recommended: string): Finding {
  const expected = `>= ${short(min)} (recommended >= ${short(recommended)})`;
  const parsed = parseKernelRelease(release);
  if (!parsed) {
    return { status: 'error', observed: release || '(empty)', expected, detail: 'cannot read a version from `uname -r`' };
  }
  const upgrade = `install a kernel >= ${short(recommended)} from the distribution and reboot (Debian 11: apt-get install -t bullseye-backports linux-image-amd64; Ubuntu 20.04: apt-get install linux-generic-hwe-20.04)`;
  const rhel = parsed.rhel;
  if (rhel?.major === 8 && semver.lt(parsed.version, min)) {
    const minor = rhel.minor === null ? 'unknown' : `8.${rhel.minor}`;
    if (rhel.minor !== null && rhel.minor >= RHEL8_MIN_MINOR) {
      return {
        status: 'warn',
        observed: `${release} (RHEL ${minor})`,
        expected,
        remedy: 'move to RHEL 9 (kernel 5.14) for the datapath features that need newer kernels',
        detail: `RHEL ${minor} backports BPF features into 4.18: Cilium accepts it as equivalent to 5.4 (docs.cilium.io system requirements), but not every feature of ${short(min)}+ is there`,
      };
    }
    return {
      status: 'fail',
      observed: `${release} (RHEL ${minor})`,
      expected,
      remedy: 'update to RHEL 8.10 (dnf update kernel) or move to RHEL 9, then reboot',
      detail: 'RHEL 8 kernels before 8.6 lack the BPF backports Cilium requires',
    };
  }
  if (semver.lt(parsed.version, min)) {
    return { status: 'fail', observed: release, expected, remedy: upgrade, detail: `kernel ${parsed.version} is older than the profile minimum ${short(min)}` };
  }
  if (semver.lt(parsed.version, recommended)) {
    return {
      status: 'warn',
      observed: release,
      expected,
      remedy: upgrade,
      detail: `${parsed.version} works, but the datapath's newer features need ${short(recommended)}`,
    };
  }
  return { status: 'pass', observed: release, expected };
}

function short(version: string): string {
  return version.replace(/\.0$/, '');
}
