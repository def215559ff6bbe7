// The mount table as /proc/mounts prints it (bpf.fs and cgroup.v2 read it from the node), and the
// facts about the BPF filesystem that bpf.fs and the bpffs tuner both read.
import { sectionHeader as h } from './sections.js';

/** One /proc/mounts line: device, mount point, type, options. */
export interface MountEntry {
  source: string;
  target: string;
  type: string;
  options: string[];
}

/** Parse /proc/mounts text (octal escapes such as \040 for a space are decoded). */
export function parseMounts(text: string): MountEntry[] {
  const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  const entries: MountEntry[] = [];
  for (const line of text.split('\n')) {
    const [source, target, type, options] = line.trim().split(/\s+/);
    if (!source || !target || !type) continue;
    entries.push({ source: unescape(source), target: unescape(target), type, options: (options ?? '').split(',') });
  }
  return entries;
}

/** The mount visible at a path: the last one stacked there. */
export function mountAt(entries: readonly MountEntry[], target: string): MountEntry | undefined {
  return entries.filter((e) => e.target === target).at(-1);
}

export const BPFFS = '/sys/fs/bpf';

// One round-trip: the mount table, whether systemd is PID 1 (sd_booted(3): /run/systemd/system
// exists) and its version, and the two ways a mount is made persistent by hand.
export const BPFFS_SCRIPT = [
  `${h('mounts')}; grep -E "^[^ ]+ [^ ]+ bpf |^[^ ]+ /sys/fs/bpf " /proc/mounts`,
  `${h('pid1')}; cat /proc/1/comm 2>/dev/null`,
  `${h('systemd-booted')}; if [ -d /run/systemd/system ]; then echo yes; else echo no; fi`,
  `${h('systemd-version')}; systemctl --version 2>/dev/null | head -n 1`,
  `${h('fstab')}; grep -E "^[^#]*[[:space:]]/sys/fs/bpf/?[[:space:]]" /etc/fstab 2>/dev/null`,
  `${h('mount-units')}; for d in /etc/systemd/system /run/systemd/system /usr/lib/systemd/system /lib/systemd/system; do [ -f $d/sys-fs-bpf.mount ] && echo $d/sys-fs-bpf.mount; done`,
  'true',
].join('\n');

// systemd mounts bpffs at /sys/fs/bpf itself since v238 (systemd PR #8205, "bpf/cgroup
// improvements", Feb 2018: src/core/mount-setup.c mount_table), on every boot, outside containers.
export const SYSTEMD_BPFFS_SINCE = 238;
