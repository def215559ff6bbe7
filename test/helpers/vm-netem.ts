// A simulated provider path for the test VM: a network that carries IP packets up to some size and
// silently drops bigger ones (no ICMP "fragmentation needed"), the MTU black hole that real VPS
// networks have. QEMU's user-mode network terminates TCP in QEMU itself, so no guest MTU breaks
// anything there by itself: the limit is made in the guest, on eth0's egress.
//
// How: eth0's root qdisc becomes a token bucket filter (tbf) whose bucket holds one frame of
// `frameLimit` bytes. tbf drops any packet longer than that, but first cuts a TCP GSO packet (the
// kernel hands qdiscs segments glued into one big skb; they are split only after the qdisc) into
// its real segments when those fit. That is exactly a link with a size limit. A classifier on the
// IP total length (`tc filter ... basic match 'cmp(u16 at 2 layer network gt N)' action drop`) is
// not: it also drops the GSO packets whose segments would fit (measured on the guest: 15 of 32
// packets of a 256 KiB transfer at MTU 1400), so bulk transfers limp even below the limit.
// The rate (100 Mbit/s) is far above what an emulated guest sends, so it never limits; its only
// job is tbf's size arithmetic, which is precise to a byte or two at this rate (at 1 Gbit/s tc
// rounds the bucket by ~40 bytes).
import type { Vm } from './vm.js';
import { sshVm, sshVmOk } from './vm-reboot.js';

/** Ethernet header: what tbf counts on top of the IP packet. */
const ETH_HEADER = 14;

/**
 * Make eth0's path drop IP packets longer than `ipLimit` bytes without telling anyone: frames up to
 * `ipLimit + ETH_HEADER` (+ a little slack, never up to `dropAbove`) pass. Returns what tc shows.
 */
export function blackHoleAbove(vm: Vm, ipLimit: number, dropAbove: number): string {
  if (dropAbove <= ipLimit + 2) throw new Error(`blackHoleAbove: ${dropAbove} must be well above ${ipLimit}`);
  // The bucket sits halfway between the largest frame that must pass and the smallest that must not.
  const burst = Math.floor((ipLimit + dropAbove) / 2) + ETH_HEADER;
  return sshVmOk(vm, `tc qdisc replace dev eth0 root tbf rate 100mbit burst ${burst} latency 100ms && tc qdisc show dev eth0 root`).trim();
}

/** Put the stock qdisc back (the path carries full-size packets again). */
export function clearBlackHole(vm: Vm): void {
  sshVmOk(vm, 'tc qdisc del dev eth0 root; tc qdisc show dev eth0 root | grep -v " tbf "');
}

/** Packets the simulated path has dropped so far (null: no black hole on eth0). */
export function blackHoleDrops(vm: Vm): number | null {
  const r = sshVm(vm, 'tc -s qdisc show dev eth0 root', { timeoutMs: 30_000 });
  if (r.status !== 0 || !/ tbf /.test(r.stdout)) return null;
  const m = /\(dropped (\d+),/.exec(r.stdout);
  return m ? Number(m[1]) : null;
}
