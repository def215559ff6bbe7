// The network facts net.virtio, net.multiqueue and net.mtu share: gathered by one remote script per
// host (memo key `net.interfaces`), parsed by pure functions tested on recorded outputs.
import { memo, type ProbeContext } from './context.js';

/** One physical interface: a netdev with /sys/class/net/IF/device (not lo, veth, bridges, tunnels). */
export interface NetInterface {
  name: string;
  /** Kernel driver bound to the device (virtio_net, e1000, ena...); null when none is bound. */
  driver: string | null;
  mtu: number | null;
  operstate: string;
  /** The bridge or bond this interface is enslaved to, if any. */
  master: string | null;
  /** Queues the kernel currently uses (/sys/class/net/IF/queues): the current channel count. */
  rxQueues: number;
  txQueues: number;
  /** `ethtool -l IF` output and exit status; null when ethtool is not installed. */
  channels: { code: number; text: string } | null;
}

export interface NetFacts {
  interfaces: NetInterface[];
  /** Interface holding the IPv4 default route (lowest metric), else the IPv6 one; null without one. */
  defaultRoute: string | null;
  /** Online CPUs (/sys/devices/system/cpu/online, else nproc); null when neither could be read. */
  cpus: number | null;
  /** Path of ethtool on the node; null when it is not installed. */
  ethtool: string | null;
}

// Debian and Ubuntu leave /usr/sbin out of a non-root user's PATH: look there too. `ethtool -l` and
// -i are read-only requests the kernel answers without CAP_NET_ADMIN (ethtool netlink GET ops;
// ETHTOOL_GCHANNELS is in the ioctl's unprivileged list), so no sudo is needed.
// Every line is `key value`; ethtool's own lines are prefixed so the parser never guesses.
export const NET_FACTS_SCRIPT = [
  'echo "nproc $(nproc 2>/dev/null)"',
  'echo "online $(cat /sys/devices/system/cpu/online 2>/dev/null)"',
  'E=$(command -v ethtool 2>/dev/null)',
  'for p in /usr/sbin/ethtool /sbin/ethtool; do if [ -z "$E" ] && [ -x "$p" ]; then E=$p; fi; done',
  'echo "ethtool ${E:--}"',
  "sed 's/^/route /' /proc/net/route 2>/dev/null",
  "sed 's/^/route6 /' /proc/net/ipv6_route 2>/dev/null",
  'for d in /sys/class/net/*; do',
  '  i=${d##*/}',
  '  if [ "$i" = lo ] || [ ! -e "$d/device" ]; then continue; fi',
  '  echo "iface $i"',
  '  v=$(readlink "$d/device/driver" 2>/dev/null); v=${v##*/}',
  `  if [ -z "$v" ] && [ -n "$E" ]; then v=$("$E" -i "$i" 2>/dev/null | sed -n 's/^driver: //p'); fi`,
  '  echo "driver $v"',
  '  echo "mtu $(cat "$d/mtu" 2>/dev/null)"',
  '  echo "operstate $(cat "$d/operstate" 2>/dev/null)"',
  '  v=$(readlink "$d/master" 2>/dev/null); echo "master ${v##*/}"',
  `  echo "rxq $(ls "$d/queues" 2>/dev/null | grep -c '^rx-')"`,
  `  echo "txq $(ls "$d/queues" 2>/dev/null | grep -c '^tx-')"`,
  '  if [ -n "$E" ]; then',
  `    v=$("$E" -l "$i" 2>&1); echo "ethtool-l-rc $?"; printf '%s\\n' "$v" | sed 's/^/ethtool-l /'`,
  '  fi',
  'done',
  'exit 0',
].join('\n');

/** The shared facts, fetched once per host and run. */
export function netFacts(ctx: ProbeContext): Promise<NetFacts> {
  return memo(ctx, 'net.interfaces', async () => {
    const r = await ctx.host.run(NET_FACTS_SCRIPT, { timeoutMs: 30_000 });
    if (r.code !== 0) throw new Error(`listing network interfaces failed (exit ${r.code ?? 'timeout'}): ${r.stderr.trim() || r.stdout.trim()}`);
    return parseNetFacts(r.stdout);
  });
}

/** Parse NET_FACTS_SCRIPT's output. */
export function parseNetFacts(out: string): NetFacts {
  const interfaces: NetInterface[] = [];
  const route: string[] = [];
  const route6: string[] = [];
  let nproc: number | null = null;
  let online: number | null = null;
  let ethtool: string | null = null;
  let cur: NetInterface | undefined;
  for (const line of out.split('\n')) {
    const sp = line.indexOf(' ');
    const key = sp < 0 ? line : line.slice(0, sp);
    const value = sp < 0 ? '' : line.slice(sp + 1);
    switch (key) {
      case 'nproc':
        nproc = toInt(value);
        break;
      case 'online':
        online = countCpuList(value);
        break;
      case 'ethtool':
        ethtool = value === '-' || value === '' ? null : value;
        break;
      case 'route':
        route.push(value);
        break;
      case 'route6':
        route6.push(value);
        break;
      case 'iface':
        cur = { name: value, driver: null, mtu: null, operstate: 'unknown', master: null, rxQueues: 0, txQueues: 0, channels: null };
        interfaces.push(cur);
        break;
      default:
        if (cur) readInterfaceLine(cur, key, value);
    }
  }
  return { interfaces, defaultRoute: defaultRouteV4(route.join('\n')) ?? defaultRouteV6(route6.join('\n')), cpus: online ?? nproc, ethtool };
}

function readInterfaceLine(i: NetInterface, key: string, value: string): void {
  switch (key) {
    case 'driver':
      i.driver = value || null;
      break;
    case 'mtu':
      i.mtu = toInt(value);
      break;
    case 'operstate':
      i.operstate = value || 'unknown';
      break;
    case 'master':
      i.master = value || null;
      break;
    case 'rxq':
      i.rxQueues = toInt(value) ?? 0;
      break;
    case 'txq':
      i.txQueues = toInt(value) ?? 0;
      break;
    case 'ethtool-l-rc':
      i.channels = { code: toInt(value) ?? -1, text: '' };
      break;
    case 'ethtool-l':
      if (i.channels) i.channels.text += `${value}\n`;
      break;
  }
}

/** Count a sysfs CPU list such as `0-3,6,8-9`. */
export function countCpuList(list: string): number | null {
  const s = list.trim();
  if (!/^\d+(-\d+)?(,\d+(-\d+)?)*$/.test(s)) return null;
  let n = 0;
  for (const part of s.split(',')) {
    const [a, b] = part.split('-').map(Number);
    n += b === undefined ? 1 : b - a! + 1;
  }
  return n;
}

/** The interface of the lowest-metric IPv4 default route in /proc/net/route (destination and mask 0, RTF_UP). */
export function defaultRouteV4(procNetRoute: string): string | null {
  let best: { iface: string; metric: number } | null = null;
  for (const line of procNetRoute.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8) continue;
    const [iface, dest, , flags, , , metric, mask] = f;
    // RTF_UP = 0x1 (include/uapi/linux/route.h).
    if (dest !== '00000000' || mask !== '00000000' || (parseInt(flags!, 16) & 0x1) === 0) continue;
    const m = Number(metric);
    if (!best || m < best.metric) best = { iface: iface!, metric: m };
  }
  return best?.iface ?? null;
}

/** The interface of the lowest-metric IPv6 default route in /proc/net/ipv6_route (::/0 and up). */
export function defaultRouteV6(procNetIpv6Route: string): string | null {
  let best: { iface: string; metric: number } | null = null;
  for (const line of procNetIpv6Route.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10) continue;
    const [dest, plen, , , , metric, , , flags, iface] = f;
    const fl = parseInt(flags!, 16);
    // RTF_UP = 0x1 (include/uapi/linux/route.h); lo's ::/0 reject route (flags 00200200) lacks it.
    if (!/^0+$/.test(dest!) || plen !== '00' || (fl & 0x1) === 0) continue;
    const m = parseInt(metric!, 16);
    if (!best || m < best.metric) best = { iface: iface!, metric: m };
  }
  return best?.iface ?? null;
}

function toInt(s: string): number | null {
  return /^\d+$/.test(s.trim()) ? Number(s.trim()) : null;
}

/** One section of `ethtool -l`; null for `n/a` (ethtool's netlink output for an attribute the driver left 0). */
export interface ChannelCounts {
  rx: number | null;
  tx: number | null;
  other: number | null;
  combined: number | null;
}

export type Channels =
  | { kind: 'ok'; max: ChannelCounts; current: ChannelCounts }
  /** The driver has no get_channels (e1000, rtl8139): it has exactly the queues sysfs shows. */
  | { kind: 'unsupported' }
  | { kind: 'unreadable'; reason: string };

/** Parse `ethtool -l IF` output (ioctl-era ethtool prints 0, netlink-era prints n/a, for unused kinds). */
export function parseChannels(text: string): Channels {
  if (/Operation not supported/i.test(text)) return { kind: 'unsupported' };
  const max: ChannelCounts = { rx: null, tx: null, other: null, combined: null };
  const current: ChannelCounts = { rx: null, tx: null, other: null, combined: null };
  let section: ChannelCounts | null = null;
  let seen = 0;
  for (const line of text.split('\n')) {
    if (/^Pre-set maximums:/i.test(line)) section = max;
    else if (/^Current hardware settings:/i.test(line)) section = current;
    const m = /^(RX|TX|Other|Combined):\s+(\d+|n\/a)\s*$/i.exec(line);
    if (m && section) {
      const key = m[1]!.toLowerCase() as keyof ChannelCounts;
      section[key] = m[2] === 'n/a' ? null : Number(m[2]);
      seen++;
    }
  }
  if (seen === 0) return { kind: 'unreadable', reason: text.trim().split('\n').pop()?.trim() || 'empty output' };
  return { kind: 'ok', max, current };
}
