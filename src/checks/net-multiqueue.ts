// net.multiqueue: NIC queues (ethtool -l channels) against vCPUs. With one queue, one vCPU takes every
// receive interrupt and all NET_RX softirq work; with one queue pair per vCPU, RSS spreads it
// (kernel Documentation/networking/scaling.rst). virtio-net multiqueue gives each vCPU its own pair
// when the host offers them (linux-kvm.org/page/Multiqueue: queues = vCPUs; libvirt
// <driver queues='N'/>); the guest's virtio_net then uses min(queues, online CPUs) by default
// (drivers/net/virtio_net.c, "virtio_net: enable multiqueue by default").
import { worstStatus, type Check, type Finding, type Status } from './types.js';
import { netFacts, parseChannels, type ChannelCounts, type NetFacts, type NetInterface } from '../probes/net.js';

const EXPECTED = 'one queue per vCPU (combined channels = vCPUs, or the most the NIC offers)';

export const netMultiqueue: Check = {
  id: 'net.multiqueue',
  title: 'NIC queues per vCPU',
  requires: ['net.virtio'],
  async run(ctx): Promise<Finding> {
    const facts = await netFacts(ctx);
    // A profile that fixes the channel count (`channels: N`) wants N queues, not one per vCPU.
    const wanted = typeof ctx.profile.channels === 'number' && facts.cpus !== null ? { ...facts, cpus: ctx.profile.channels } : facts;
    const f = judgeMultiqueue(wanted);
    return wanted === facts ? f : { ...f, observed: f.observed.replace(/; \d+ vCPUs?$/, `; profile wants ${ctx.profile.channels} queue${ctx.profile.channels === 1 ? '' : 's'} (${facts.cpus} vCPUs)`) };
  },
};

/** Queue count of a channel section: combined channels, or RX channels for drivers that count them apart (older ENA). */
function queues(c: ChannelCounts): number {
  return c.combined || Math.min(c.rx ?? 0, c.tx ?? c.rx ?? 0) || 0;
}

interface Verdict {
  status: Status;
  text: string;
  /** A command for this interface, or `provider`: only the provider can add queues. */
  remedy?: string;
}

const PROVIDER = 'provider';

/** The verdict on every physical interface's queues against the node's vCPUs. */
export function judgeMultiqueue(facts: NetFacts): Finding {
  const cpus = facts.cpus;
  if (facts.interfaces.length === 0) return { status: 'error', observed: 'no physical interface', expected: EXPECTED, detail: 'nothing to judge: net.virtio explains' };
  if (cpus === null) {
    return { status: 'error', observed: 'vCPU count unknown', expected: EXPECTED, detail: 'neither /sys/devices/system/cpu/online nor nproc gave a CPU count' };
  }
  const verdicts = facts.interfaces.map((i) => judgeInterface(i, cpus));
  const status = worstStatus(verdicts.map((v) => v.status));
  const observed = `${verdicts.map((v) => v.text).join('; ')}; ${cpus} vCPU${cpus === 1 ? '' : 's'}`;
  const detail =
    'one queue means one vCPU takes every receive interrupt and all softirq work for the NIC; one queue pair per vCPU lets RSS ' +
    'spread it (Documentation/networking/scaling.rst); a virtio-net NIC gets them when the host enables multiqueue ' +
    "(linux-kvm.org/page/Multiqueue; libvirt <driver queues='N'/>)";
  if (status === 'pass') return { status, observed, expected: EXPECTED };
  const commands = verdicts.flatMap((v) => (v.remedy && v.remedy !== PROVIDER ? [v.remedy] : []));
  const ask = facts.interfaces.filter((_, n) => verdicts[n]!.remedy === PROVIDER).map((i) => i.name);
  if (ask.length) commands.push(`ask the provider for multiqueue virtio-net on ${ask.join(', ')} (libvirt <driver queues='${cpus}'/>: one queue per vCPU), then reboot`);
  const remedy = commands.join('; ');
  return { status, observed, expected: EXPECTED, ...(remedy && { remedy }), detail };
}

function judgeInterface(i: NetInterface, cpus: number): Verdict {
  // No ethtool on the node (the script then runs no `ethtool -l`): sysfs has the current count only.
  if (!i.channels) {
    const text = `${i.name}: ${i.rxQueues} queue${i.rxQueues === 1 ? '' : 's'} (maximum unknown: no ethtool)`;
    if (cpus === 1 || i.rxQueues >= cpus) return { status: 'pass', text };
    return {
      status: 'warn',
      text,
      remedy: `install ethtool (apt-get install ethtool, or dnf install ethtool) and check again: ethtool -l ${i.name} shows whether more queues are available`,
    };
  }
  const ch = parseChannels(i.channels.text);
  if (ch.kind === 'unreadable') return { status: 'error', text: `${i.name}: ethtool -l failed (${ch.reason})` };
  if (ch.kind === 'unsupported') {
    // No get_channels: the driver has the fixed queues sysfs shows (one, for e1000 and rtl8139).
    const text = `${i.name}: ${i.rxQueues} queue${i.rxQueues === 1 ? '' : 's'}, fixed (${i.driver ?? 'driver'} has no channel support)`;
    if (cpus === 1 || i.rxQueues >= cpus) return { status: 'pass', text };
    return { status: 'warn', text, remedy: PROVIDER };
  }
  const current = queues(ch.current) || i.rxQueues;
  const max = queues(ch.max) || current;
  const text = `${i.name}: ${current} of max ${max} ${ch.current.combined ? 'combined' : 'rx/tx'}`;
  if (cpus === 1) return { status: 'pass', text };
  const target = Math.min(max, cpus);
  if (current < target) {
    const args = ch.current.combined || !ch.current.rx ? `combined ${target}` : `rx ${target} tx ${target}`;
    return { status: 'fail', text, remedy: `ethtool -L ${i.name} ${args} (prep-node apply makes it persistent)` };
  }
  if (current < cpus) return { status: 'warn', text: `${text} (the NIC offers fewer queues than vCPUs)`, remedy: PROVIDER };
  return { status: 'pass', text };
}
