// The NIC channels tuner: each virtio-net interface's combined channels (queue pairs) set to the
// profile's `channels` — the vCPU count capped at the NIC's pre-set maximum, or a fixed number — so
// RSS spreads receive work over the vCPUs (see checks/net-multiqueue.ts). Running value:
// `ethtool -L IF combined N`. Persistent form: a udev rule that runs a small script whenever a
// virtio-net interface appears (boot's coldplug included); the script reads the vCPUs and the NIC's
// maximum itself, so the same two files serve nodes created by cloud-init, whose NICs are unknown.
import { NodeRefusal } from '../errors.js';
import { shQuote } from '../host/host.js';
import { netFacts, parseChannels } from '../probes/net.js';
import type { Profile } from '../profiles/schema.js';
import { fileMatches, readFiles } from './files.js';
import type { FileWrite, Original, Tuner, TunerPlan } from './types.js';

export const CHANNELS_RULE = '/etc/udev/rules.d/90-prep-node-channels.rules';
export const CHANNELS_SCRIPT = '/usr/local/sbin/prep-node-channels';

const HEADER = 'Written by prep-node from its profile; `prep-node rollback` removes it. Edits are overwritten by the next apply.';

// ethtool lives in /usr/sbin or /sbin, outside a non-root PATH and maybe outside udev's.
const ETHTOOL = 'E=$(command -v ethtool 2>/dev/null); for p in /usr/sbin/ethtool /sbin/ethtool; do if [ -z "$E" ] && [ -x "$p" ]; then E=$p; fi; done';

/** The current combined channels of IF, as the shell prints it (ethtool -l's "Current hardware settings"). */
const CURRENT = (iface: string) => `"$E" -l ${iface} 2>/dev/null | awk '/^Current hardware/ { s = 1 } s && /^Combined:/ { print $2; exit }'`;

/** Set IF's combined channels unless they already are N (ioctl-era ethtool exits 1 on "no channel parameters changed"). */
function setCommand(iface: string, n: string | number): string {
  const q = shQuote(iface);
  return `${ETHTOOL}; if [ "$(${CURRENT(q)})" != ${n} ]; then "$E" -L ${q} combined ${n}; fi`;
}

/** The udev rule and its script, for apply and for cloud-init; none for `channels: keep`. */
export function channelsFiles(profile: Profile): FileWrite[] {
  if (profile.channels === 'keep') return [];
  const want = profile.channels === 'vcpus' ? 'vcpus' : String(profile.channels);
  const script = `#!/bin/sh
# ${HEADER}
# profile ${profile.name}: each virtio-net interface gets ${want === 'vcpus' ? 'one combined channel per vCPU' : `${want} combined channels`}, at most the NIC's maximum.
# Usage: prep-node-channels [IFINDEX]  (udev passes the interface's index; none: every virtio-net interface)
WANT=${want}
# PREP_NODE_SYSFS: tests point it at a fake /sys.
SYS=\${PREP_NODE_SYSFS:-/sys}
${ETHTOOL}
[ -n "$E" ] || { echo "prep-node-channels: ethtool not found" >&2; exit 0; }
cpus=$(awk -F, '{ n = 0; for (i = 1; i <= NF; i++) { k = split($i, r, "-"); n += k == 2 ? r[2] - r[1] + 1 : 1 } print n }' "$SYS/devices/system/cpu/online" 2>/dev/null)
[ -n "$cpus" ] || cpus=$(nproc)
rc=0
for d in "$SYS"/class/net/*; do
  i=\${d##*/}
  if [ -n "\${1:-}" ] && [ "$(cat "$d/ifindex" 2>/dev/null)" != "$1" ]; then continue; fi
  drv=$(readlink "$d/device/driver" 2>/dev/null)
  [ "\${drv##*/}" = virtio_net ] || continue
  out=$("$E" -l "$i" 2>/dev/null) || continue
  max=$(printf '%s\\n' "$out" | awk '/^Pre-set maximums/ { s = 1 } s && /^Combined:/ { print $2; exit }')
  cur=$(printf '%s\\n' "$out" | awk '/^Current hardware/ { s = 1 } s && /^Combined:/ { print $2; exit }')
  case "$max" in '' | *[!0-9]*) continue ;; esac
  if [ "$WANT" = vcpus ]; then n=$cpus; else n=$WANT; fi
  if [ "$n" -gt "$max" ]; then n=$max; fi
  if [ "$cur" != "$n" ]; then "$E" -L "$i" combined "$n" || rc=1; fi
done
exit $rc
`;
  // DRIVERS matches the parent virtio device's driver; IFINDEX survives the rename udev may do.
  const rule = `# ${HEADER}
ACTION=="add", SUBSYSTEM=="net", DRIVERS=="virtio_net", RUN+="${CHANNELS_SCRIPT} $env{IFINDEX}"
`;
  return [
    { path: CHANNELS_SCRIPT, content: script, mode: 0o755 },
    { path: CHANNELS_RULE, content: rule, mode: 0o644 },
  ];
}

/** For cloud-init: the NICs were added before the rule existed, so run the script once now. */
export function channelsBootCommands(profile: Profile): string[] {
  if (profile.channels === 'keep') return [];
  return [RELOAD, CHANNELS_SCRIPT];
}

const RELOAD = 'if command -v udevadm >/dev/null 2>&1; then udevadm control --reload 2>/dev/null || true; fi';

export const channelsTuner: Tuner = {
  id: 'channels',
  title: 'NIC channels',
  cutsSession: true,
  async plan(ctx): Promise<TunerPlan> {
    const plan: TunerPlan = { tuner: 'channels', changes: [], files: [], originals: [], unchanged: [], notes: [] };
    const setting = ctx.profile.channels;
    if (setting === 'keep') return plan;
    const facts = await netFacts(ctx);
    const refuse = (detail: string): never => {
      throw new NodeRefusal(ctx.host.name, detail);
    };
    const wanted = channelsFiles(ctx.profile);
    for (const i of facts.interfaces) {
      if (i.driver !== 'virtio_net') {
        plan.notes.push(`${i.name}: ${i.driver ?? 'no driver'}, not virtio-net: channels left alone`);
        continue;
      }
      if (facts.cpus === null) refuse('cannot count the vCPUs (/sys/devices/system/cpu/online, nproc)');
      const cpus = facts.cpus!;
      if (i.channels === null) {
        // No ethtool: sysfs has the current queues, not the maximum. Already enough needs no tool.
        const enough = setting === 'vcpus' ? i.rxQueues >= cpus : i.rxQueues === setting;
        if (enough) {
          plan.unchanged.push(`${i.name} ${i.rxQueues} combined`);
          continue;
        }
        refuse(`${i.name} has ${i.rxQueues} queue${i.rxQueues === 1 ? '' : 's'} and ethtool is missing to change that: install ethtool: apt-get install ethtool (or dnf install ethtool)`);
      }
      const ch = parseChannels(i.channels!.text);
      if (ch.kind === 'unsupported') {
        plan.notes.push(`${i.name}: the driver has no channel settings`);
        continue;
      }
      if (ch.kind === 'unreadable') refuse(`ethtool -l ${i.name} failed (${ch.reason})`);
      if (ch.kind !== 'ok') continue;
      const max = ch.max.combined ?? 0;
      const current = ch.current.combined ?? 0;
      if (max < 1) {
        plan.notes.push(`${i.name}: no combined channels (ethtool -l): left alone`);
        continue;
      }
      if (typeof setting === 'number' && setting > max) {
        refuse(`${i.name} offers at most ${max} combined channels (ethtool -l), the profile's channels asks ${setting}: set channels to ${max} or less, or "vcpus"`);
      }
      const want = setting === 'vcpus' ? Math.min(cpus, max) : setting;
      if (current === want) {
        plan.unchanged.push(`${i.name} ${current} combined${setting === 'vcpus' && max < cpus ? ` (the NIC's maximum; ${cpus} vCPUs)` : ''}`);
        continue;
      }
      plan.changes.push({ key: i.name, current: `${current} combined`, desired: `${want} combined`, persist: `udev rule (${CHANNELS_RULE})` });
      plan.originals.push({ tuner: 'channels', key: i.name, value: String(current) });
    }
    // The rule is wanted when something changes, and kept current once prep-node installed it.
    const states = await readFiles(ctx.host, wanted.map((f) => f.path));
    const installed = [...states.values()].some((s) => s.kind !== 'absent');
    if (plan.changes.length > 0 || installed) plan.files = wanted.filter((f) => !fileMatches(states.get(f.path)!, f));
    return plan;
  },
  applyCommand(plan): string {
    return plan.changes.map((c) => `{ ${setCommand(c.key, Number.parseInt(c.desired, 10))}; }`).join(' && ');
  },
  restoreCommand(original: Original): string {
    return setCommand(original.key, /^\d+$/.test(original.value) ? original.value : '1');
  },
  reloadCommand: RELOAD,
};
