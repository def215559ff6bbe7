// kernel.btf: the kernel publishes its own type information at /sys/kernel/btf/vmlinux.
// libbpf relocates the datapath's CO-RE programs against it, so one build runs on every kernel.
import type { Check, Finding } from './types.js';

export const BTF_PATH = '/sys/kernel/btf/vmlinux';

// One line back: the size in bytes, `missing`, or `nobtfdir` when the kernel has no /sys/kernel/btf.
export const BTF_COMMAND = `if [ -e ${BTF_PATH} ]; then stat -L -c %s ${BTF_PATH}; elif [ -d /sys/kernel/btf ]; then echo missing; else echo nobtfdir; fi`;

export const kernelBtf: Check = {
  id: 'kernel.btf',
  title: 'Kernel BTF type information',
  async run({ host }): Promise<Finding> {
    const r = await host.run(BTF_COMMAND);
    return judgeBtf(r.stdout, r.code === 0 ? '' : r.stderr);
  },
};

const EXPECTED = `${BTF_PATH} present (CONFIG_DEBUG_INFO_BTF=y)`;

// Distribution kernels built with CONFIG_DEBUG_INFO_BTF=y, from libbpf's README ("BPF CO-RE"):
// Fedora 31+, RHEL 8.2+, Arch (5.7.1), Ubuntu 20.10+, Debian 11+. Amazon Linux 2023's 6.1 kernel has it too.
const REMEDY =
  'boot a kernel built with CONFIG_DEBUG_INFO_BTF=y: the distribution kernels of Debian >= 11, Ubuntu >= 20.10, ' +
  'RHEL/Rocky/Alma >= 8.2, Fedora >= 31 and Amazon Linux 2023 have it ' +
  '(Debian: apt-get install linux-image-cloud-amd64; Ubuntu 20.04: apt-get install linux-generic-hwe-20.04), then reboot';

/** The verdict on the command's output; pure. */
export function judgeBtf(stdout: string, stderr = ''): Finding {
  const out = stdout.trim();
  if (out === 'missing' || out === 'nobtfdir') {
    return {
      status: 'fail',
      observed: out === 'missing' ? `${BTF_PATH} missing` : '/sys/kernel/btf missing (kernel built without BTF)',
      expected: EXPECTED,
      remedy: REMEDY,
      detail: 'without kernel BTF, libbpf cannot relocate CO-RE programs (libbpf README, "BPF CO-RE"); Cilium falls back to compiling on the node with clang',
    };
  }
  const size = /^\d+$/.test(out) ? Number(out) : NaN;
  if (!Number.isFinite(size)) {
    return { status: 'error', observed: out || stderr.trim() || '(no output)', expected: EXPECTED, detail: `cannot read the size of ${BTF_PATH}` };
  }
  if (size === 0) {
    return { status: 'fail', observed: `${BTF_PATH} is empty`, expected: EXPECTED, remedy: REMEDY, detail: 'an empty BTF blob means the kernel build lost its type information (pahole too old at build time), and libbpf cannot relocate CO-RE programs without it (libbpf README, "BPF CO-RE")' };
  }
  return { status: 'pass', observed: `${BTF_PATH} present, ${mib(size)}`, expected: EXPECTED };
}

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB (${bytes} bytes)`;
}
