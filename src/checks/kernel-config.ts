// kernel.config: the running kernel was built with what an eBPF datapath needs (cgroup sock_addr
// hooks, tc programs on clsact, BTF, perf events), read from the kernel's own build config.
import type { Profile } from '../profiles/schema.js';
import type { Check, CheckContext, Finding } from './types.js';
import { memo } from './types.js';

// Debian, Ubuntu, RHEL and Amazon Linux install /boot/config-<release>; Fedora/RHEL's kernel-core
// also keeps it at /lib/modules/<release>/config; custom and minimal kernels may only offer
// /proc/config.gz (CONFIG_IKCONFIG_PROC). The first readable one wins, in one round-trip.
export const CONFIG_COMMAND = [
  'r=$(uname -r)',
  'for f in /boot/config-$r /lib/modules/$r/config; do if [ -r $f ]; then echo "# source: $f"; exec cat $f; fi; done',
  'if [ -r /proc/config.gz ]; then echo "# source: /proc/config.gz"; exec zcat /proc/config.gz; fi',
  'for f in /boot/config-$r /lib/modules/$r/config /proc/config.gz; do if [ -e $f ]; then echo "$f: not readable by $(id -un)" >&2; else echo "$f: missing" >&2; fi; done',
  'exit 3',
].join('\n');

/**
 * A kernel option the datapath needs. `builtin`: must be y (a bool option). `ciliumOnly`: on
 * Cilium's list but unused by prep-node's own datapath, so its absence warns instead of failing.
 */
export interface ConfigRequirement {
  name: string;
  builtin: boolean;
  why: string;
  ciliumOnly?: boolean;
}

// Cilium's "System Requirements" → "Base Requirements" (docs.cilium.io/en/stable/operations/
// system_requirements/): "When an option can be built as a module or statically linked, either
// choice is valid" — so tristate options accept m; bool options can only be y.
const CILIUM_BASE: ConfigRequirement[] = [
  { name: 'CONFIG_BPF', builtin: true, why: 'the BPF core' },
  { name: 'CONFIG_BPF_SYSCALL', builtin: true, why: 'the bpf(2) system call: loading programs and maps' },
  { name: 'CONFIG_BPF_JIT', builtin: true, why: 'JIT-compiled programs (the interpreter is too slow for a datapath)' },
  { name: 'CONFIG_NET_CLS_BPF', builtin: false, why: 'tc BPF classifier (cls_bpf): the tc programs for forwarded and NodePort traffic' },
  { name: 'CONFIG_NET_CLS_ACT', builtin: true, why: 'tc actions: direct-action mode for tc programs' },
  { name: 'CONFIG_NET_SCH_INGRESS', builtin: false, why: 'the ingress/clsact qdisc tc programs attach to' },
  { name: 'CONFIG_CRYPTO_SHA1', builtin: false, why: 'SHA-1, which iproute2\'s tc loader hashes BPF objects with through AF_ALG', ciliumOnly: true },
  { name: 'CONFIG_CRYPTO_USER_API_HASH', builtin: false, why: 'AF_ALG hash sockets, how that loader reaches SHA-1', ciliumOnly: true },
  { name: 'CONFIG_CGROUPS', builtin: true, why: 'control groups' },
  { name: 'CONFIG_CGROUP_BPF', builtin: true, why: 'cgroup BPF hooks: the sock_addr programs that translate Service VIPs at connect()/sendmsg()' },
  { name: 'CONFIG_PERF_EVENTS', builtin: true, why: 'perf event buffers: drop and trace events to userspace' },
  { name: 'CONFIG_SCHEDSTATS', builtin: true, why: 'scheduler statistics', ciliumOnly: true },
];

// Not in Cilium's base list (Cilium can compile on the node instead): our datapath ships CO-RE
// objects, which libbpf relocates against the kernel's BTF (libbpf README, "BPF CO-RE").
const CO_RE: ConfigRequirement = { name: 'CONFIG_DEBUG_INFO_BTF', builtin: true, why: 'kernel BTF (/sys/kernel/btf/vmlinux) for CO-RE relocation' };

// Cilium's "Requirements for Tunneling and Routing": the overlay device the profile uses, and
// policy routing. Tristate overlay drivers may be modules.
const FIB_RULES: ConfigRequirement = { name: 'CONFIG_FIB_RULES', builtin: true, why: 'policy routing rules (Cilium "Requirements for Tunneling and Routing")' };
const OVERLAY: Record<string, ConfigRequirement> = {
  vxlan: { name: 'CONFIG_VXLAN', builtin: false, why: 'the VXLAN overlay the profile selects (mtu.overlay: vxlan)' },
  geneve: { name: 'CONFIG_GENEVE', builtin: false, why: 'the Geneve overlay the profile selects (mtu.overlay: geneve)' },
};

/** The options this profile needs, in the order they are reported. */
export function configRequirements(profile: Pick<Profile, 'mtu'>): ConfigRequirement[] {
  const overlay = OVERLAY[profile.mtu.overlay];
  return [...CILIUM_BASE, CO_RE, FIB_RULES, ...(overlay ? [overlay] : [])];
}

/** A parsed kernel config, or why it could not be read. */
export type KernelConfig = { source: string; options: Map<string, string> } | { error: string };

/** `.config` text → option → value (`y`, `m`, a string or number); `# CONFIG_X is not set` → `n`. */
export function parseKernelConfig(text: string): KernelConfig {
  const options = new Map<string, string>();
  let source = '(unknown)';
  for (const line of text.split('\n')) {
    const src = /^# source: (.+)$/.exec(line);
    if (src) source = src[1]!.trim();
    const set = /^(CONFIG_[A-Za-z0-9_]+)=(.*)$/.exec(line);
    if (set) options.set(set[1]!, set[2]!.replace(/^"(.*)"$/, '$1'));
    const unset = /^# (CONFIG_[A-Za-z0-9_]+) is not set/.exec(line);
    if (unset) options.set(unset[1]!, 'n');
  }
  if (options.size === 0) return { error: `${source}: no CONFIG_ lines (not a kernel config)` };
  return { source, options };
}

/** The running kernel's config, read once per host (ipvs.modules and others may read it too). */
export function kernelConfig(ctx: CheckContext): Promise<KernelConfig> {
  return memo(ctx, 'kernel.config', async () => {
    const r = await ctx.host.run(CONFIG_COMMAND);
    if (r.code !== 0) {
      const why = r.timedOut ? 'timed out' : r.stderr.trim().split('\n').join('; ') || `exit ${r.code}`;
      return { error: why };
    }
    return parseKernelConfig(r.stdout);
  });
}

export const kernelConfigCheck: Check = {
  id: 'kernel.config',
  title: 'Kernel build options for eBPF',
  async run(ctx): Promise<Finding> {
    return judgeKernelConfig(await kernelConfig(ctx), configRequirements(ctx.profile));
  },
};

/** The verdict on a config against the requirements; pure. */
export function judgeKernelConfig(config: KernelConfig, required: readonly ConfigRequirement[]): Finding {
  const expected = `${required.map((r) => `${short(r.name)}=${r.builtin ? 'y' : 'y|m'}`).join(' ')}`;
  if ('error' in config) {
    return {
      status: 'error',
      observed: `kernel config unreadable: ${config.error}`,
      expected,
      remedy: 'if the kernel has CONFIG_IKCONFIG=m, `modprobe configs` provides /proc/config.gz; otherwise install the distribution\'s kernel package (it ships /boot/config-$(uname -r))',
      detail: 'cannot tell which BPF features the kernel was built with',
    };
  }
  const missing: ConfigRequirement[] = [];
  const notBuiltin: ConfigRequirement[] = [];
  const modules: string[] = [];
  for (const req of required) {
    const v = config.options.get(req.name) ?? 'n';
    if (v === 'y') continue;
    if (v === 'm') {
      if (req.builtin) notBuiltin.push(req);
      else modules.push(short(req.name));
    } else {
      missing.push(req);
    }
  }
  const asModules = modules.length > 0 ? `; as modules: ${modules.join(', ')}` : '';
  if (missing.length === 0 && notBuiltin.length === 0) {
    return { status: 'pass', observed: `all ${required.length} set in ${config.source}${asModules}`, expected, detail: 'required options from Cilium\'s "System Requirements" (base, tunneling and routing), plus DEBUG_INFO_BTF for CO-RE' };
  }
  const problems = [
    ...missing.map((r) => `${short(r.name)} not set`),
    ...notBuiltin.map((r) => `${short(r.name)}=m (must be y)`),
  ];
  const all = [...missing, ...notBuiltin];
  const needed = all.filter((r) => !r.ciliumOnly);
  return {
    status: needed.length > 0 ? 'fail' : 'warn',
    observed: `${problems.join(', ')} in ${config.source}${asModules}`,
    expected,
    remedy:
      'install the distribution kernel and reboot (Debian: apt-get install linux-image-cloud-amd64; Ubuntu: apt-get install linux-virtual; RHEL: dnf install kernel); ' +
      `for a custom kernel: scripts/config ${all.map((r) => `--enable ${short(r.name)}`).join(' ')} && make olddefconfig, then rebuild`,
    detail:
      `${all.map((r) => `${short(r.name)}: ${r.why}${r.ciliumOnly ? ' (Cilium\'s base list; prep-node\'s datapath does not use it)' : ''}`).join('; ')}. ` +
      'Sources: Cilium "System Requirements" (base, tunneling and routing); DEBUG_INFO_BTF: libbpf README "BPF CO-RE"',
  };
}

function short(name: string): string {
  return name.replace(/^CONFIG_/, '');
}
