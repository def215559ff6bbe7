// The profile schema: one zod schema that also gives the TypeScript type. Unknown keys are rejected
// so a typo never goes unnoticed. The checks read what they expect from here; the tuners apply the
// same values.
import { z } from 'zod';
import { coerceVersion } from '../probes/kernel-release.js';
import { AT_LEAST } from '../probes/sysctl.js';

const kernelVersion = z
  .string()
  .refine((v) => coerceVersion(v) !== null, { message: 'expected a kernel version such as "5.10" or "5.15.0"' });
// 68: the IPv4 minimum (RFC 791); 65535: the largest MTU Linux accepts on any link (IP_MAX_MTU).
const mtu = z.number().int().min(68).max(65535);
const percent = z.number().min(0).max(100);
const sysctlKey = z.string().regex(/^[a-z0-9_]+(\.[A-Za-z0-9_-]+)+$/, 'expected a sysctl name such as net.core.somaxconn');

export const ProfileSchema = z.strictObject({
  name: z.string().regex(/^[a-z0-9][a-z0-9-]*$/, 'expected lowercase letters, digits and dashes'),
  description: z.string(),
  /** control-plane nodes also run etcd: disk.fsync applies to them only. */
  role: z.enum(['worker', 'control-plane']).default('worker'),
  kernel: z.strictObject({
    /** Below this the node fails kernel.version. */
    min: kernelVersion,
    /** Below this kernel.version warns: newer datapath features are missing. */
    recommended: kernelVersion,
  }),
  /** Desired sysctls; sysctl.drift compares each. Values as `sysctl -n` prints them (tabs or spaces between fields). */
  sysctl: z
    .record(sysctlKey, z.union([z.number().int(), z.string()]))
    .superRefine((values, ctx) => {
      // Capacity limits are numbers (or number triplets, tcp_rmem): "lots" is a typo, caught here.
      for (const [key, value] of Object.entries(values)) {
        if (AT_LEAST.has(key) && typeof value === 'string' && !/^\s*\d+(\s+\d+)*\s*$/.test(value)) {
          ctx.addIssue({ code: 'custom', path: [key], message: `expected an integer, got ${JSON.stringify(value)}` });
        }
      }
    })
    .default({}),
  /** Sysctls that may be absent on some kernels (no error when missing). */
  optionalSysctl: z.array(sysctlKey).default([]),
  /** Kernel modules that must be available and loaded (or built in). */
  modules: z.array(z.string().regex(/^[a-z0-9_]+$/, 'expected a module name such as ip_vs')).default([]),
  mtu: z
    .strictObject({
      /** The interface holding the default route. */
      primary: mtu.default(1500),
      /** Every other physical interface (a provider's private network). */
      private: mtu.default(1500),
      /** The pod network's encapsulation: its header costs this much of the interface MTU. */
      overlay: z.enum(['none', 'vxlan', 'geneve']).default('vxlan'),
      /** Whether `apply` sets the MTUs (false: only `check` compares them). */
      apply: z.boolean().default(true),
    })
    .default({ primary: 1500, private: 1500, overlay: 'vxlan', apply: true }),
  /** Mount the BPF filesystem at /sys/fs/bpf (and keep it mounted across reboots): pinned maps live there. */
  bpffs: z.boolean().default(true),
  /**
   * virtio-net combined channels (queue pairs): "vcpus" sets them to the vCPU count (capped at the
   * NIC's maximum), a number sets that many, "keep" leaves them alone.
   */
  channels: z.union([z.literal('vcpus'), z.literal('keep'), z.number().int().min(1).max(1024)]).default('vcpus'),
  steal: z
    .strictObject({ warnPercent: percent.default(5), failPercent: percent.default(10) })
    .default({ warnPercent: 5, failPercent: 10 }),
  conntrack: z
    .strictObject({
      /** nf_conntrack_max must be at least this. */
      min: z.number().int().positive().default(262144),
      /** Warn when more of the table than this is in use. */
      warnUsagePercent: percent.default(75),
    })
    .default({ min: 262144, warnUsagePercent: 75 }),
  etcd: z
    .strictObject({
      dataDir: z.string().default('/var/lib/etcd'),
      /** etcd's guidance: the 99th percentile of fdatasync must stay below 10 ms. */
      fsyncP99Ms: z.number().positive().default(10),
    })
    .default({ dataDir: '/var/lib/etcd', fsyncP99Ms: 10 }),
  /**
   * What kubeadm's and k0s's preflight ask of a node (node.cpu, node.memory, disk.space, net.ports,
   * node.nofile) and how much of its memory the datapath's maps may take (datapath.memory). The
   * defaults are a worker's; k8s-control-plane raises them. Sources in profiles/k8s-worker.yaml.
   */
  preflight: z
    .strictObject({
      minCpus: z.number().int().min(1).default(1),
      memoryMiB: z
        .strictObject({ min: z.number().int().positive().default(500), recommended: z.number().int().positive().default(2048) })
        .default({ min: 500, recommended: 2048 }),
      /** Free space on the filesystem holding diskPath (kubelet, containerd and etcd keep their data under /var/lib). */
      diskPath: z.string().regex(/^\/[A-Za-z0-9._/-]*$/, 'expected an absolute path such as /var/lib').default('/var/lib'),
      minFreeDiskMiB: z.number().int().positive().default(1300),
      /** TCP ports that must be free: numbers or "first-last" ranges. */
      ports: z
        .array(
          z.union([
            z.number().int().min(1).max(65535),
            z
              .string()
              .regex(/^\d{1,5}-\d{1,5}$/, 'expected a port or a range such as "30000-32767"')
              .refine((r) => r.split('-').every((p) => Number(p) >= 1 && Number(p) <= 65535), { message: 'expected ports between 1 and 65535' }),
          ]),
        )
        .default([10250, '30000-32767']),
      minOpenFiles: z.number().int().positive().default(65536),
      datapathMemory: z
        .strictObject({ warnPercent: percent.default(10), failPercent: percent.default(25) })
        .default({ warnPercent: 10, failPercent: 25 }),
    })
    .default({
      minCpus: 1,
      memoryMiB: { min: 500, recommended: 2048 },
      diskPath: '/var/lib',
      minFreeDiskMiB: 1300,
      ports: [10250, '30000-32767'],
      minOpenFiles: 65536,
      datapathMemory: { warnPercent: 10, failPercent: 25 },
    }),
});

export type Profile = z.infer<typeof ProfileSchema>;
