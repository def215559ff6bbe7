// The sysctl tuner: the profile's sysctls, running (/proc/sys, so procps need not be installed) and
// persistent in /etc/sysctl.d/90-prep-node.conf. 90 sorts after systemd's 50-default.conf (its
// rp_filter and friends) and every distribution's 10-*/30-*/50-* files, so ours win; the user's own
// 99-sysctl.conf (/etc/sysctl.conf) still wins over us, as a local override should.
// Capacity limits keep check's "at least" rule: a node already above the profile is left alone, and
// such a key is left out of our file so a reboot cannot lower it either.
import { NodeRefusal } from '../errors.js';
import { shQuote } from '../host/host.js';
import { SYSCTL_FILE, effectiveDesired, ifAboveFloor, normalizeSysctl, parseSysctls, procSysPath, sysctlCommand, type SysctlValue } from '../probes/sysctl.js';
import type { Profile } from '../profiles/schema.js';
import { fileMatches, readFiles, type FileState } from './files.js';
import type { Change, FileWrite, Original, Tuner, TunerPlan } from './types.js';

/** Sysctl prefixes that exist only while a module is loaded (kernel: br_netfilter, nf_conntrack, ip_vs register them). */
const MODULE_SYSCTLS: [string, string][] = [
  ['net.bridge.bridge-nf-', 'br_netfilter'],
  ['net.netfilter.nf_conntrack_', 'nf_conntrack'],
  ['net.ipv4.vs.', 'ip_vs'],
];

const HEADER = '# Written by prep-node from its profile; `prep-node rollback` removes it. Edits are overwritten by the next apply.\n';

/**
 * The sysctl.d file. `omit` are capacity keys the node already exceeds; `values` overrides the
 * profile's value (a triplet raised only in some fields). Optional keys get systemd's and procps' `-`
 * prefix: a kernel without them ignores the line instead of failing the boot service.
 */
export function sysctlFile(profile: Profile, omit: Set<string> = new Set(), values: Map<string, string> = new Map()): FileWrite {
  const lines = Object.entries(profile.sysctl)
    .filter(([k]) => !omit.has(k))
    .map(([k, v]) => `${profile.optionalSysctl.includes(k) ? '-' : ''}${k} = ${values.get(k) ?? normalizeSysctl(v)}`);
  return { path: SYSCTL_FILE, content: `${HEADER}# profile: ${profile.name}\n${lines.join('\n')}\n`, mode: 0o644 };
}

/** Set one sysctl by writing /proc/sys (what `sysctl -w` does). */
function writeCommand(key: string, value: string): string {
  return `printf '%s\\n' ${shQuote(value)} > /proc/sys/${procSysPath(key)}`;
}

/**
 * For cloud-init: load the file now (systemd-sysctl ran before cloud-init wrote it), and for capacity
 * limits the same floor rule as apply: a key the new node already exceeds is dropped from the file.
 */
export function sysctlBootCommands(profile: Profile): string[] {
  const drop = Object.entries(profile.sysctl).flatMap(([k, v]) => {
    const cmd = ifAboveFloor(k, v, `sed -i '/^-\\?${k.replace(/\./g, '\\.')} = /d' ${SYSCTL_FILE}`);
    return cmd ? [cmd] : [];
  });
  return [...drop, `sysctl -e -p ${SYSCTL_FILE}`];
}

const INTEGER = /^-?\d+$/;

/**
 * Why the kernel would refuse to write `want` where it holds `have`, or undefined. The type is read
 * from the running value: a key that holds integers (rp_filter, somaxconn, the tcp_rmem triplet) takes
 * only integers, as many as it holds (proc_dointvec and friends return EINVAL otherwise). A key that
 * holds text (tcp_congestion_control) is not judged here.
 */
export function kernelRejects(have: string, want: string): string | undefined {
  const h = have.trim().split(/\s+/);
  if (have.trim() === '' || !h.every((f) => INTEGER.test(f))) return undefined;
  const w = want.trim().split(/\s+/);
  if (want.trim() !== '' && w.every((f) => INTEGER.test(f)) && w.length === h.length) return undefined;
  return h.length === 1 ? `${JSON.stringify(want)} is not an integer (it holds ${have.trim()})` : `${JSON.stringify(want)} is not ${h.length} integers (it holds ${h.join(' ')})`;
}

export const sysctlTuner: Tuner = {
  id: 'sysctl',
  title: 'sysctls',
  plansAfterModules: true,
  async plan({ host, profile }): Promise<TunerPlan> {
    const keys = Object.keys(profile.sysctl).sort();
    // The file is read alongside the values (one round trip with a BatchingHost); a refusal about
    // the values comes first, so its read failing is only reported once it is needed.
    const fileRead = keys.length > 0 ? readFiles(host, [SYSCTL_FILE]) : Promise.resolve(new Map<string, FileState>());
    fileRead.catch(() => undefined);
    const current = keys.length > 0 ? parseSysctls(await host.exec(sysctlCommand(keys), { sudo: true }), keys) : new Map<string, SysctlValue>();
    // A key a profile module brings (net.bridge.* with br_netfilter) is absent until the module loads;
    // the modules tuner runs first, and this plan runs again after it.
    const fromModule = (k: string) => MODULE_SYSCTLS.find(([prefix, mod]) => k.startsWith(prefix) && profile.modules.includes(mod))?.[1];
    const unknown = keys.filter((k) => current.get(k)?.state === 'absent' && !profile.optionalSysctl.includes(k) && !fromModule(k));
    if (unknown.length > 0) {
      throw new NodeRefusal(
        host.name,
        `unknown sysctl${unknown.length > 1 ? 's' : ''} on this kernel: ${unknown.join(', ')} (fix the name in the profile, or list it under optionalSysctl if a module or kernel version provides it)`,
      );
    }
    const rejected = keys.flatMap((k) => {
      const cur = current.get(k);
      const why = cur?.state === 'value' ? kernelRejects(cur.value, normalizeSysctl(profile.sysctl[k]!)) : undefined;
      return why ? [`${k}: ${why}`] : [];
    });
    if (rejected.length > 0) throw new NodeRefusal(host.name, `the kernel would reject ${rejected.join('; ')}: fix the value${rejected.length > 1 ? 's' : ''} in the profile`);
    const changes: Change[] = [];
    const originals: Original[] = [];
    const unchanged: string[] = [];
    const notes: string[] = [];
    const above = new Set<string>();
    const merged = new Map<string, string>();
    for (const key of keys) {
      const want = normalizeSysctl(profile.sysctl[key]!);
      const cur = current.get(key)!;
      if (cur.state === 'absent') {
        const mod = fromModule(key);
        notes.push(mod ? `${key}: appears when ${mod} loads (set then)` : `${key}: absent on this kernel (optional): left out until it exists`);
        continue;
      }
      if (cur.state === 'unreadable') throw new NodeRefusal(host.name, `cannot read /proc/sys/${procSysPath(key)} even as root`);
      const have = normalizeSysctl(cur.value);
      const eff = effectiveDesired(key, have, want);
      if (eff !== want) merged.set(key, eff);
      if (have === eff) {
        if (have !== want) {
          above.add(key);
          unchanged.push(`${key} = ${have} (at least ${want}: kept)`);
        } else unchanged.push(`${key} = ${have}`);
        continue;
      }
      changes.push({ key, current: have || '(empty)', desired: eff, persist: SYSCTL_FILE });
      originals.push({ tuner: 'sysctl', key, value: cur.value });
    }
    // A profile without sysctls owns no sysctl.d file.
    if (keys.length === 0) return { tuner: 'sysctl', changes, originals, unchanged, notes, files: [] };
    const file = sysctlFile(profile, above, merged);
    const files = (await fileRead).get(file.path) ?? (await readFiles(host, [file.path])).get(file.path);
    return { tuner: 'sysctl', changes, originals, unchanged, notes, files: files && fileMatches(files, file) ? [] : [file] };
  },
  applyCommand(plan): string {
    return plan.changes.map((c) => writeCommand(c.key, c.desired)).join(' && ');
  },
  restoreCommand(original: Original): string {
    return writeCommand(original.key, original.value);
  },
};
