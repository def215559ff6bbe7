// The mount table as /proc/mounts prints it: bpf.fs and cgroup.v2 read it from the node.

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
