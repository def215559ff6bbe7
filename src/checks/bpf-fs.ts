// bpf.fs: bpffs is mounted at /sys/fs/bpf, and will be again after a reboot. Pinned maps and
// programs live there: without it the datapath's state dies with the process that loaded it.
import type { Check, Finding } from './types.js';
import { BPFFS, BPFFS_SCRIPT, SYSTEMD_BPFFS_SINCE, mountAt, parseMounts } from '../probes/mounts.js';
import { parseSections } from '../probes/sections.js';

const EXPECTED = `bpf filesystem at ${BPFFS}, mounted again at boot`;
const FSTAB_LINE = `bpffs ${BPFFS} bpf rw,nosuid,nodev,noexec,relatime,mode=700 0 0`;
// mode=700 as systemd mounts it: only root may pin or open pinned objects.
const MOUNT_NOW = `mount -t bpf -o mode=700 bpf ${BPFFS}`;

export const bpfFs: Check = {
  id: 'bpf.fs',
  title: 'BPF filesystem mounted and persistent',
  async run({ host }): Promise<Finding> {
    return judgeBpfFs(await host.exec(BPFFS_SCRIPT));
  },
};

/** The verdict on the gather script's output; pure. */
export function judgeBpfFs(output: string): Finding {
  const s = parseSections(output);
  const lines = (name: string) => (s.get(name) ?? '').split('\n').map((l) => l.trim()).filter(Boolean);
  const first = (name: string) => lines(name)[0] ?? '';
  const mounts = parseMounts(s.get('mounts') ?? '');
  const at = mountAt(mounts, BPFFS);
  const elsewhere = mounts.filter((m) => m.type === 'bpf' && m.target !== BPFFS).map((m) => m.target);
  const systemdVersion = Number(/^systemd (\d+)/.exec(first('systemd-version'))?.[1] ?? NaN);
  const booted = first('systemd-booted') === 'yes';
  const pid1 = first('pid1') || 'unknown';
  const fstab = lines('fstab');
  const units = lines('mount-units');

  const persistence: string[] = [];
  if (booted && systemdVersion >= SYSTEMD_BPFFS_SINCE) persistence.push(`systemd ${systemdVersion} mounts it at boot`);
  if (fstab.length > 0) persistence.push(`/etc/fstab: ${fstab[0]!.trim().replace(/\s+/g, ' ')}`);
  if (units.length > 0) persistence.push(`mount unit ${units[0]}`);
  const init = booted ? `systemd ${Number.isFinite(systemdVersion) ? systemdVersion : '(version unknown)'} is PID 1` : `PID 1 is ${pid1}, not systemd`;
  const others = elsewhere.length > 0 ? `; bpffs also at ${elsewhere.join(', ')}` : '';

  if (!at || at.type !== 'bpf') {
    const what = at ? `${BPFFS} is ${at.type}, not bpf` : `${BPFFS} not mounted`;
    return {
      status: 'fail',
      observed: `${what}; ${init}${persistence.length ? `; mounted again at the next boot (${persistence.join('; ')})` : ''}${others}`,
      expected: EXPECTED,
      // Already persistent (it was unmounted by hand, or a unit failed): mounting now is enough.
      remedy: persistence.length > 0 ? MOUNT_NOW : `${MOUNT_NOW} && echo '${FSTAB_LINE}' >> /etc/fstab`,
      detail:
        'pinned maps and programs live in bpffs: without it the datapath\'s maps (conntrack, backends) vanish when the loader exits (Cilium "System Requirements": mount the BPF filesystem; systemd >= 238 mounts it itself, except in containers)',
    };
  }
  const mode = at.options.find((o) => o.startsWith('mode=')) ?? 'mode=0777 (default)';
  if (persistence.length > 0) {
    const rw = at.options.includes('ro') ? 'ro' : 'rw';
    return { status: 'pass', observed: `mounted (${rw}, ${mode}); ${persistence.join('; ')}${others}`, expected: EXPECTED };
  }
  const why = booted
    ? `systemd ${Number.isFinite(systemdVersion) ? systemdVersion : '(unknown version)'} predates bpffs mounting (v${SYSTEMD_BPFFS_SINCE})`
    : `PID 1 is ${pid1}, not systemd, so nothing mounts it at boot`;
  return {
    status: 'warn',
    observed: `mounted, but not persistent: ${why}; no /etc/fstab line, no sys-fs-bpf.mount${others}`,
    expected: EXPECTED,
    remedy: `echo '${FSTAB_LINE}' >> /etc/fstab`,
    detail: 'after a reboot bpffs would be missing until someone mounts it again, and pinned datapath state could not be restored',
  };
}
