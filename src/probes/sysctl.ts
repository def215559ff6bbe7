// Sysctls read from /proc/sys in one round-trip per host, shared by sysctl.drift, kubelet.basics,
// conntrack.capacity and the sysctl tuner. Reading /proc/sys needs no root and no procps (`sysctl`
// may be missing). Also the one home of the capacity-floor ("at least") rule that the profile schema,
// sysctl.drift, the sysctl tuner and cloud-init's boot commands apply.
import { memo, type ProbeContext } from './context.js';
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

/** These sysctls, read once per host and run (checks pass sysctlKeys(profile): the same keys every time). */
export function readSysctls(ctx: ProbeContext, keys: string[]): Promise<Map<string, SysctlValue>> {
  return memo(ctx, `proc-sys:${keys.join(',')}`, async () => parseSysctls(await ctx.host.exec(sysctlCommand(keys)), keys));
}

// Capacity limits: a node already above the profile's value is fine, and lowering it could only hurt
// (systemd >= 240 sets fs.file-max to LONG_MAX; kernel docs admin-guide/sysctl/{fs,vm,net}.rst describe
// each as a maximum). For these the profile's value is a floor; every other key must match exactly.
export const AT_LEAST = new Set([
  'fs.file-max',
  'fs.nr_open',
  'fs.inotify.max_user_instances',
  'fs.inotify.max_user_watches',
  'kernel.pid_max',
  'kernel.threads-max',
  'net.core.somaxconn',
  'net.core.netdev_max_backlog',
  'net.ipv4.tcp_max_syn_backlog',
  'net.netfilter.nf_conntrack_max',
  'vm.max_map_count',
  // Socket buffer limits: a kernel that already allows more (6.x raised tcp_rmem's max to 32 MiB) keeps it.
  'net.core.rmem_max',
  'net.core.wmem_max',
  // min default max triplets: compared field by field.
  'net.ipv4.tcp_rmem',
  'net.ipv4.tcp_wmem',
]);

/**
 * The value a node should have: the profile's, except that for capacity limits a field the node
 * already exceeds keeps the node's (field by field for triplets such as tcp_rmem).
 */
export function effectiveDesired(key: string, current: string, desired: string | number): string {
  const want = normalizeSysctl(desired);
  if (!AT_LEAST.has(key)) return want;
  const have = normalizeSysctl(current).split(' ');
  const wantF = want.split(' ');
  if (have.length !== wantF.length || ![...have, ...wantF].every((f) => /^\d+$/.test(f))) return want;
  return wantF.map((w, i) => (BigInt(have[i]!) > BigInt(w) ? have[i]! : w)).join(' ');
}

/**
 * The same rule in sh, for a node prep-node is not connected to (cloud-init at first boot): runs
 * `then` when the node's single-integer capacity limit is already above `desired`. Undefined for a
 * key that is no floor or a value that is not one integer (those are written as given).
 */
export function ifAboveFloor(key: string, desired: string | number, then: string): string | undefined {
  const want = normalizeSysctl(desired);
  if (!AT_LEAST.has(key) || !/^\d+$/.test(want)) return undefined;
  return `f=/proc/sys/${procSysPath(key)}; if [ -r $f ] && [ "$(cat $f)" -gt ${want} ] 2>/dev/null; then ${then}; fi`;
}

/** The file prep-node persists the profile's sysctls in: the sysctl tuner writes it, and this check's remedy the same. */
export const SYSCTL_FILE = '/etc/sysctl.d/90-prep-node.conf';
