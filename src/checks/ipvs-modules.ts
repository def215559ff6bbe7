// ipvs.modules: the kernel modules the profile lists (kube-proxy's IPVS set, nf_conntrack,
// br_netfilter) are loaded or built in. The remedy also persists them in modules-load.d.
import type { Check, Finding } from './types.js';
import { moduleNames, readModules, type ModuleFacts, type ModuleState } from '../probes/modules.js';

// kube-proxy's IPVS mode needs ip_vs, ip_vs_rr, ip_vs_wrr, ip_vs_sh and nf_conntrack
// (kubernetes.io/docs/reference/networking/virtual-ips/ "IPVS proxy mode", and kube-proxy's
// pkg/proxy/ipvs/README.md "Prerequisite": the same five modules); without them it falls back or fails.
const SOURCE = 'kube-proxy IPVS mode needs these modules (kubernetes.io "Virtual IPs and Service Proxies: IPVS proxy mode"; kubernetes/pkg/proxy/ipvs/README.md)';

/** Where prep-node persists modules: the modules tuner writes this file, and this check's remedy the same. */
export const MODULES_LOAD_FILE = '/etc/modules-load.d/prep-node.conf';

export const ipvsModules: Check = {
  id: 'ipvs.modules',
  title: 'IPVS and netfilter modules',
  async run(ctx): Promise<Finding> {
    return judgeModules(await readModules(ctx, moduleNames(ctx.profile)), ctx.profile.modules);
  },
};

function describe(name: string, st: ModuleState): string {
  switch (st.state) {
    case 'loaded':
      return `${name} loaded`;
    case 'builtin':
      return `${name} built in`;
    case 'loadable':
      return `${name} not loaded`;
    case 'missing':
      return `${name} absent`;
    case 'unknown':
      return `${name} unknown`;
  }
}

/** The verdict on the profile's modules; pure, so each distro's module lists are tested without a host. */
export function judgeModules(facts: ModuleFacts, wanted: string[]): Finding {
  const expected = wanted.length > 0 ? `loaded or built in: ${wanted.join(', ')}` : 'no modules required';
  if (wanted.length === 0) return { status: 'pass', observed: 'profile lists no modules', expected };
  const states = wanted.map((name) => [name, facts.states.get(name)!] as const);
  const observed = states.map(([n, st]) => describe(n, st)).join(', ');
  const loadable = states.filter(([, st]) => st.state === 'loadable').map(([n]) => n);
  const missing = states.filter(([, st]) => st.state === 'missing');
  const unknown = states.filter(([, st]) => st.state === 'unknown');
  // Persist every real module of the profile (not the built-ins, not the absent): one file, rewritten whole.
  const persist = states.filter(([, st]) => st.state === 'loaded' || st.state === 'loadable').map(([n]) => n);

  const remedies: string[] = [];
  if (loadable.length > 0) {
    remedies.push(`modprobe -a ${loadable.join(' ')} && printf '%s\\n' ${persist.join(' ')} > ${MODULES_LOAD_FILE}`);
  }
  if (missing.length > 0) {
    remedies.push(
      `boot a kernel that ships ${missing.map(([n]) => n).join(', ')} (as modules or built in): ` +
        `a distribution kernel (Debian linux-image-amd64, Ubuntu linux-generic${facts.canLoad ? '; on Ubuntu cloud kernels apt-get install linux-modules-extra-$(uname -r)' : ''}), ` +
        'or build with CONFIG_IP_VS=m, CONFIG_IP_VS_RR=m, CONFIG_IP_VS_WRR=m, CONFIG_IP_VS_SH=m, CONFIG_NF_CONNTRACK=m, CONFIG_BRIDGE_NETFILTER=m',
    );
  }
  const why = [...missing, ...unknown].map(([, st]) => (st as { why: string }).why);
  if (loadable.length > 0 || missing.length > 0) {
    return {
      status: 'fail',
      observed,
      expected,
      remedy: remedies.join('; then '),
      detail: [...why, loadable.length > 0 ? `${loadable.join(', ')} can be loaded but ${loadable.length > 1 ? 'are' : 'is'} not (\`prep-node apply\` with this profile loads and persists them, journaled for \`prep-node rollback\`)` : '', SOURCE].filter(Boolean).join('; '),
    };
  }
  if (unknown.length > 0) {
    return { status: 'error', observed, expected, detail: `${why.join('; ')}; ${SOURCE}` };
  }
  const builtins = states.filter(([, st]) => st.state === 'builtin').map(([n, st]) => `${n} (${(st as { evidence: string }).evidence})`);
  return { status: 'pass', observed, expected, detail: builtins.length > 0 ? `built in: ${builtins.join(', ')}` : `all loaded on ${facts.release}` };
}
