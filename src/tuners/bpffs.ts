// The bpffs tuner: the BPF filesystem mounted at /sys/fs/bpf now, and again at boot. systemd >= 238
// mounts it itself (see checks/bpf-fs.ts); elsewhere an /etc/fstab line does, which both systemd's
// fstab generator and a SysV/busybox init's `mount -a` read.
import { BPFFS, BPFFS_SCRIPT, SYSTEMD_BPFFS_SINCE, mountAt, parseMounts } from '../probes/mounts.js';
import { parseSections } from '../probes/sections.js';
import { NodeRefusal } from '../errors.js';
import type { Profile } from '../profiles/schema.js';
import { readFiles } from './files.js';
import type { FileWrite, Original, Tuner, TunerPlan } from './types.js';

const FSTAB = '/etc/fstab';
// mode=700 as systemd mounts it: only root may pin or open pinned objects.
export const FSTAB_LINE = `bpffs ${BPFFS} bpf rw,nosuid,nodev,noexec,relatime,mode=700 0 0`;
const MOUNT = `mount -t bpf -o mode=700 bpffs ${BPFFS}`;

/** For cloud-init: nothing to write on a systemd node (it mounts bpffs); the boot command covers the rest. */
export function bpffsFiles(_profile: Profile): FileWrite[] {
  return [];
}

/** For cloud-init: mount it if nothing did, and persist it in fstab where systemd will not mount it. */
export function bpffsBootCommands(profile: Profile): string[] {
  if (!profile.bpffs) return [];
  return [`if ! grep -q ' ${BPFFS} bpf ' /proc/mounts; then ${MOUNT} && { [ -d /run/systemd/system ] || echo '${FSTAB_LINE}' >> ${FSTAB}; }; fi`];
}

export const bpffsTuner: Tuner = {
  id: 'bpffs',
  title: 'BPF filesystem',
  async plan({ host, profile }): Promise<TunerPlan> {
    const plan: TunerPlan = { tuner: 'bpffs', changes: [], files: [], originals: [], unchanged: [], notes: [] };
    if (!profile.bpffs) return plan;
    const s = parseSections(await host.exec(BPFFS_SCRIPT, { sudo: true }));
    const mounted = mountAt(parseMounts(s.get('mounts') ?? ''), BPFFS);
    const systemd = (s.get('systemd-booted') ?? '').trim() === 'yes' && Number(/^systemd (\d+)/.exec(s.get('systemd-version') ?? '')?.[1] ?? 0) >= SYSTEMD_BPFFS_SINCE;
    const persisted = systemd || (s.get('fstab') ?? '').trim() !== '' || (s.get('mount-units') ?? '').trim() !== '';
    const persist = systemd ? 'systemd mounts it at boot' : FSTAB;
    if (mounted && mounted.type !== 'bpf') throw new NodeRefusal(host.name, `${BPFFS} is a ${mounted.type} mount, not bpf: unmount it first`);
    if (mounted) plan.unchanged.push(`${BPFFS} mounted`);
    else {
      plan.changes.push({ key: BPFFS, current: 'not mounted', desired: 'bpffs mounted (mode=700)', persist });
      plan.originals.push({ tuner: 'bpffs', key: BPFFS, value: 'unmounted' });
    }
    if (!persisted) {
      const fstab = (await readFiles(host, [FSTAB])).get(FSTAB);
      const text = fstab?.kind === 'file' ? fstab.content.toString('utf8') : '';
      const sep = text === '' || text.endsWith('\n') ? '' : '\n';
      plan.files.push({ path: FSTAB, content: `${text}${sep}${FSTAB_LINE}\n`, mode: 0o644 });
    } else plan.unchanged.push(`persistent: ${persist}`);
    return plan;
  },
  applyCommand(): string {
    return `mkdir -p ${BPFFS} && ${MOUNT}`;
  },
  restoreCommand(original: Original): string {
    return original.value === 'unmounted' ? `if grep -q ' ${BPFFS} bpf ' /proc/mounts; then umount ${BPFFS}; fi` : 'true';
  },
};
