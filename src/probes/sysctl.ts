// Sysctls read from /proc/sys in one round-trip per host, shared by sysctl.drift, kubelet.basics and
// conntrack.capacity. Reading /proc/sys needs no root and no procps (`sysctl` may be missing).
import { memo, type CheckContext } from '../checks/types.js';
import { parseSections } from './sections.js';

export type SysctlValue =
  | { state: 'value'; value: string }
  /** The kernel has no such key (module not loaded, or a kernel without the feature). */
  | { state: 'absent' }
  /** The key exists but the login user may not read it (a few are root-only, mode 0600). */
  | { state: 'unreadable' };

/** Keys these checks always read, whatever the profile says. */
export const BASE_SYSCTLS = [
  'net.ipv4.ip_forward',
  'net.bridge.bridge-nf-call-iptables',
  'net.netfilter.nf_conntrack_max',
  'net.netfilter.nf_conntrack_count',
] as const;

/** Every key the checks need for a profile, sorted so the command is stable. */
export function sysctlKeys(profile: { sysctl: Record<string, unknown>; optionalSysctl: string[] }): string[] {
  return [...new Set([...BASE_SYSCTLS, ...Object.keys(profile.sysctl), ...profile.optionalSysctl])].sort();
}

/** sysctl name → its /proc/sys path (net.core.somaxconn → net/core/somaxconn). */
export function procSysPath(key: string): string {
  return key.replace(/\./g, '/');
}

/** The one command that prints every key's value (or why it has none) under `@@ path/of/key`. */
export function sysctlCommand(keys: string[]): string {
  // Keys are validated by the profile schema ([A-Za-z0-9_.-]): safe unquoted in the for list.
  const paths = keys.map(procSysPath).join(' ');
  return (
    `for k in ${paths}; do echo "@@ $k"; f="/proc/sys/$k"; ` +
    `if [ -e "$f" ]; then cat "$f" 2>/dev/null || echo '@@!unreadable'; else echo '@@!absent'; fi; done`
  );
}

/** Parse sysctlCommand's output; a key missing from the output is an error (the command was cut short). */
export function parseSysctls(output: string, keys: string[]): Map<string, SysctlValue> {
  const sections = parseSections(output);
  const values = new Map<string, SysctlValue>();
  for (const key of keys) {
    const text = sections.get(procSysPath(key));
    if (text === undefined) throw new Error(`reading /proc/sys gave no answer for ${key}`);
    if (text === '@@!absent') values.set(key, { state: 'absent' });
    else if (text === '@@!unreadable') values.set(key, { state: 'unreadable' });
    else values.set(key, { state: 'value', value: text });
  }
  return values;
}

/** `1024\t65535` and `1024 65535` are the same value: compare sysctls with whitespace collapsed. */
export function normalizeSysctl(value: string | number): string {
  return String(value).trim().split(/\s+/).join(' ');
}

/** All the sysctls the checks need, read once per host. */
export function readSysctls(ctx: CheckContext): Promise<Map<string, SysctlValue>> {
  return memo(ctx, 'proc-sys', async () => {
    const keys = sysctlKeys(ctx.profile);
    return parseSysctls(await ctx.host.exec(sysctlCommand(keys)), keys);
  });
}
