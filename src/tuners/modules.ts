// The modules tuner: the profile's kernel modules loaded now (modprobe) and at every boot
// (/etc/modules-load.d/prep-node.conf, read by systemd-modules-load before systemd-sysctl runs, so the
// sysctls those modules bring, such as nf_conntrack_max, are set at boot too). A module the kernel does
// not have is refused before anything is written.
import { NodeRefusal } from '../errors.js';
import { moduleNameOfPath, modulesCommand, parseModules } from '../probes/modules.js';
import { parseSections } from '../probes/sections.js';
import type { Host } from '../host/host.js';
import type { Profile } from '../profiles/schema.js';
import { fileMatches, readFiles } from './files.js';
import type { Change, FileWrite, Original, Tuner, TunerPlan } from './types.js';

export const MODULES_FILE = '/etc/modules-load.d/prep-node.conf';

/** The modules-load.d file listing every module of the profile. */
export function modulesFile(profile: Profile): FileWrite {
  const header = '# Written by prep-node from its profile; `prep-node rollback` removes it.\n';
  return { path: MODULES_FILE, content: `${header}# profile: ${profile.name}\n${profile.modules.join('\n')}\n`, mode: 0o644 };
}

/**
 * Every module `modprobe -a names` loads, dependencies (and softdeps) first, as `modprobe --show-depends`
 * lists them; null when the node cannot say (no modprobe, an old kmod).
 */
async function loadOrder(host: Host, names: string[]): Promise<string[] | null> {
  const r = await host.run(`modprobe --show-depends -a ${names.join(' ')}`, { sudo: true });
  if (r.code !== 0) return null;
  const order: string[] = [];
  for (const line of r.stdout.split('\n')) {
    const m = /^insmod (\S+)/.exec(line.trim());
    const name = m ? moduleNameOfPath(m[1]!) : null;
    if (name && !order.includes(name)) order.push(name);
  }
  return order;
}

/** For cloud-init: systemd-modules-load ran before the file existed, so load them now. */
export function modulesBootCommands(profile: Profile): string[] {
  return profile.modules.length > 0 ? [`modprobe -a ${profile.modules.join(' ')}`] : [];
}

export const modulesTuner: Tuner = {
  id: 'modules',
  title: 'kernel modules',
  async plan({ host, profile }): Promise<TunerPlan> {
    const names = profile.modules;
    const empty: TunerPlan = { tuner: 'modules', changes: [], files: [], originals: [], unchanged: [], notes: [] };
    if (names.length === 0) return empty;
    // The file is read alongside the modules (one round trip with a BatchingHost); a refusal about
    // the modules comes first, so its read failing is only reported once it is needed.
    const fileRead = readFiles(host, [MODULES_FILE]);
    fileRead.catch(() => undefined);
    const output = await host.exec(modulesCommand(names), { sudo: true });
    const facts = parseModules(output, names);
    const missing = [...facts.states].filter(([, st]) => st.state === 'missing' || st.state === 'unknown');
    if (missing.length > 0) {
      const [first, st] = missing[0]!;
      const why = 'why' in st ? st.why.replace(/^this kernel has no \S+ module ?/, '').replace(/^\((.*)\)$/, '$1') : '';
      // A kernel built without module support can load nothing: extra module packages cannot help it.
      const fix = facts.canLoad
        ? `install the kernel's extra modules (e.g. linux-modules-extra-${facts.release || '$(uname -r)'}) or drop them from the profile's modules`
        : "boot a kernel with module support or with them built in (a distribution kernel: Debian linux-image-amd64, Ubuntu linux-generic), or drop them from the profile's modules";
      throw new NodeRefusal(host.name, `kernel ${facts.release || '(unknown)'} lacks module${missing.length > 1 ? 's' : ''} ${missing.map(([n]) => n).join(', ')}${why ? ` (${first}: ${why})` : ''}: ${fix}`);
    }
    const plan = { ...empty };
    for (const [name, st] of facts.states) {
      if (st.state === 'loaded' || st.state === 'builtin') {
        plan.unchanged.push(`${name} ${st.state === 'loaded' ? 'loaded' : 'built in'}`);
        continue;
      }
      const change: Change = { key: name, current: 'not loaded', desired: 'loaded', persist: MODULES_FILE };
      plan.changes.push(change);
    }
    // Journal every module the load brings in, not only the profile's (ip_vs brings nf_conntrack,
    // br_netfilter brings bridge, stp, llc), in load order: rollback restores in reverse, so each is
    // unloaded after the modules that use it, and the node ends with exactly the modules it had.
    if (plan.changes.length > 0) {
      const loaded = new Set(
        (parseSections(output).get('proc-modules') ?? '')
          .split('\n')
          .map((l) => l.split(/\s+/)[0]!)
          .filter(Boolean),
      );
      const wanted = plan.changes.map((c) => c.key);
      const order = (await loadOrder(host, wanted)) ?? wanted;
      for (const name of [...order, ...wanted.filter((n) => !order.includes(n))]) {
        if (!loaded.has(name)) plan.originals.push({ tuner: 'modules', key: name, value: 'unloaded' });
      }
    }
    const file = modulesFile(profile);
    const now = (await fileRead).get(file.path) ?? (await readFiles(host, [file.path])).get(file.path);
    plan.files = now && fileMatches(now, file) ? [] : [file];
    return plan;
  },
  applyCommand(plan): string {
    return `modprobe -a ${plan.changes.map((c) => c.key).join(' ')}`;
  },
  restoreCommand(original: Original): string {
    // rmmod, not modprobe -r: every module the load brought in is journaled itself (see plan) and is
    // restored in reverse load order, while modprobe -r would also unload an unused dependency that
    // was loaded before prep-node came. A module in use stays, and says so.
    return original.value === 'unloaded'
      ? `if grep -q '^${original.key} ' /proc/modules; then rmmod ${original.key} 2>/dev/null || echo "prep-node: ${original.key} is in use and stays loaded" >&2; fi`
      : 'true';
  },
};
