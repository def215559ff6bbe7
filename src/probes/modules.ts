// Kernel modules: which of the ones the checks need are loaded, built in, loadable, or absent.
// One round-trip per host reads /proc/modules, the running kernel's modules.dep and modules.builtin
// (filtered to the names we ask about), /sys/module, and files that only exist when a feature is in
// the kernel, for built-ins that have no /sys/module entry (a module without parameters has none).
import { memo, type ProbeContext } from './context.js';
import { parseSections } from './sections.js';

export type ModuleState =
  | { state: 'loaded' }
  | { state: 'builtin'; evidence: string }
  | { state: 'loadable' }
  | { state: 'missing'; why: string }
  | { state: 'unknown'; why: string };

/** Files that exist only while a module's feature is in the running kernel (loaded or built in). */
export const FEATURE_FILES: Record<string, string> = {
  ip_vs: '/proc/net/ip_vs',
  nf_conntrack: '/proc/sys/net/netfilter/nf_conntrack_max',
  br_netfilter: '/proc/sys/net/bridge/bridge-nf-call-iptables',
};

// IPVS schedulers are modules of ip_vs (kernel net/netfilter/ipvs/Kconfig: "depends on IP_VS").
function parentOf(name: string): string | null {
  return name.startsWith('ip_vs_') ? 'ip_vs' : null;
}

/** The module names the checks need for a profile (kubelet.basics needs br_netfilter, conntrack nf_conntrack). */
export function moduleNames(profile: { modules: string[] }): string[] {
  return [...new Set([...profile.modules, 'nf_conntrack', 'br_netfilter'])];
}

/**
 * A module's path, as the first field of modules.dep (`kernel/net/netfilter/ipvs/ip_vs.ko.zst: deps`)
 * or a line of modules.builtin: the file name may spell `_` as `-`, and end in .ko[.xz|.zst|.gz].
 */
function pathRegex(names: string[], end: string): string {
  return `^([^:]*/)?(${names.map((n) => n.replace(/_/g, '[_-]')).join('|')})\\.ko(\\.[a-z0-9]+)?${end}`;
}

/** The one command gathering every fact about the named modules. */
export function modulesCommand(names: string[]): string {
  const dir = '/lib/modules/$r';
  return [
    'r=$(uname -r)',
    `echo "@@ release"; echo "$r"`,
    `if [ -r /proc/modules ]; then echo '@@ proc-modules'; cat /proc/modules; fi`,
    `if [ -d "${dir}" ]; then echo '@@ modules-dir'; fi`,
    `if [ -r "${dir}/modules.dep" ]; then echo '@@ modules.dep'; grep -E '${pathRegex(names, ':')}' "${dir}/modules.dep" | cut -d: -f1; fi`,
    `if [ -r "${dir}/modules.builtin" ]; then echo '@@ modules.builtin'; grep -E '${pathRegex(names, '$')}' "${dir}/modules.builtin"; fi`,
    `echo '@@ sys-module'; for m in ${names.join(' ')}; do if [ -d "/sys/module/$m" ]; then echo "$m"; fi; done`,
    `echo '@@ feature-files'; for f in ${Object.values(FEATURE_FILES).join(' ')}; do if [ -e "$f" ]; then echo "$f"; fi; done`,
  ].join('; ');
}

/** `kernel/net/netfilter/ipvs/ip_vs_rr.ko.zst` → `ip_vs_rr`. */
export function moduleNameOfPath(path: string): string {
  const base = path.trim().split('/').pop() ?? '';
  return base.replace(/\.ko(\.[a-z0-9]+)?$/, '').replace(/-/g, '_');
}

function lines(text: string | undefined): string[] {
  return (text ?? '').split('\n').map((l) => l.trim()).filter((l) => l !== '');
}

export interface ModuleFacts {
  release: string;
  /** False when the kernel was built without module support (no /proc/modules): it can load nothing. */
  canLoad: boolean;
  states: Map<string, ModuleState>;
}

/** Judge each named module from modulesCommand's output. */
export function parseModules(output: string, names: string[]): ModuleFacts {
  const s = parseSections(output);
  const release = s.get('release')?.trim() ?? '';
  const canLoad = s.has('proc-modules');
  // /proc/modules: "ip_vs 188416 6 ip_vs_rr,ip_vs_sh,ip_vs_wrr, Live 0x0000000000000000"
  const loaded = new Set(lines(s.get('proc-modules')).map((l) => l.split(/\s+/)[0]!));
  const dep = new Set(lines(s.get('modules.dep')).map(moduleNameOfPath));
  const builtin = new Set(lines(s.get('modules.builtin')).map(moduleNameOfPath));
  const sysModule = new Set(lines(s.get('sys-module')));
  const features = new Set(lines(s.get('feature-files')));
  const hasModulesDir = s.has('modules-dir');
  const hasBuiltinList = s.has('modules.builtin');

  const states = new Map<string, ModuleState>();
  const judge = (name: string): ModuleState => {
    const known = states.get(name);
    if (known) return known;
    const feature = FEATURE_FILES[name];
    let st: ModuleState;
    if (loaded.has(name)) st = { state: 'loaded' };
    else if (builtin.has(name)) st = { state: 'builtin', evidence: 'modules.builtin' };
    else if (sysModule.has(name)) st = { state: 'builtin', evidence: `/sys/module/${name}` };
    else if (feature && features.has(feature)) st = { state: 'builtin', evidence: feature };
    else if (dep.has(name)) st = { state: 'loadable' };
    else {
      const parent = parentOf(name);
      const parentState = parent ? judge(parent) : null;
      if (parentState?.state === 'missing') st = { state: 'missing', why: `this kernel has no ${name} module (it needs ${parent}, which is absent)` };
      else if (!canLoad && (feature || hasBuiltinList)) st = { state: 'missing', why: `this kernel has no ${name} module (built without module support, and ${name} is not built in)` };
      else if (!canLoad) st = { state: 'unknown', why: `this kernel cannot load modules and lists no built-ins: whether ${name} is built in cannot be read` };
      else if (!hasModulesDir) st = { state: 'missing', why: `this kernel has no ${name} module available: /lib/modules/${release} is missing (kernel upgraded and not rebooted?)` };
      else st = { state: 'missing', why: `this kernel has no ${name} module (not in /lib/modules/${release}/modules.dep or modules.builtin)` };
    }
    states.set(name, st);
    return st;
  };
  for (const name of names) judge(name);
  // Keep only what was asked for, in the order asked (a parent may have been judged on the way).
  return { release, canLoad, states: new Map(names.map((n) => [n, states.get(n)!])) };
}

/** Facts about these modules, read once per host and run (checks pass moduleNames(profile)). */
export function readModules(ctx: ProbeContext, names: string[]): Promise<ModuleFacts> {
  return memo(ctx, `kernel-modules:${names.join(',')}`, async () => parseModules(await ctx.host.exec(modulesCommand(names)), names));
}

/** Loaded or built in: the kernel has the feature right now. */
export function isPresent(st: ModuleState | undefined): boolean {
  return st?.state === 'loaded' || st?.state === 'builtin';
}
