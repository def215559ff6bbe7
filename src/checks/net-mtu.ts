// net.mtu: each physical interface's MTU against the profile: the default-route interface against
// mtu.primary, every other one against mtu.private. The pod network's encapsulation is carved out of
// this MTU, so a smaller interface MTU shrinks every pod's, and a larger one than the path carries
// loses packets wherever ICMP "fragmentation needed" is filtered (RFC 2923 §2.1, PMTU black holes).
import { worstStatus, type Check, type Finding, type Status } from './types.js';
import type { Profile } from '../profiles/schema.js';
import { netFacts, type NetFacts, type NetInterface } from '../probes/net.js';

// Encapsulation over IPv4: outer IPv4 20 + UDP 8 + VXLAN header 8 (RFC 7348 §5) + inner Ethernet 14 =
// 50. Geneve's base header is also 8 bytes (RFC 8926 §3.4), so 50 without options. Cilium and
// Flannel subtract the same 50 (docs.cilium.io "MTU"; flannel backend docs).
export const OVERLAY_OVERHEAD: Record<Profile['mtu']['overlay'], number> = { none: 0, vxlan: 50, geneve: 50 };

type MtuProfile = Profile['mtu'];

export const netMtu: Check = {
  id: 'net.mtu',
  title: 'Interface MTU',
  async run(ctx): Promise<Finding> {
    return judgeMtu(await netFacts(ctx), ctx.profile.mtu);
  },
};

/** Is this interface the one carrying the default route (itself, or enslaved to the bridge/bond that does)? */
function isPrimary(i: NetInterface, defaultRoute: string | null): boolean {
  return defaultRoute !== null && (i.name === defaultRoute || i.master === defaultRoute);
}

/** The verdict on every physical interface's MTU against the profile's mtu section. */
export function judgeMtu(facts: NetFacts, mtu: MtuProfile): Finding {
  const overhead = OVERLAY_OVERHEAD[mtu.overlay];
  const expected =
    `default-route interface ${mtu.primary} (mtu.primary), others ${mtu.private} (mtu.private)` +
    (overhead ? `; pods get ${mtu.primary - overhead} under ${mtu.overlay}` : '');
  if (facts.interfaces.length === 0) {
    return { status: 'error', observed: 'no physical interface', expected, detail: 'nothing to judge: net.virtio explains' };
  }
  const verdicts = facts.interfaces.map((i) => {
    const primary = isPrimary(i, facts.defaultRoute);
    const want = primary ? mtu.primary : mtu.private;
    const role = primary ? 'default route' : 'private';
    const podNote = overhead && i.mtu !== null ? `, pods ${i.mtu - overhead}` : '';
    const text = i.mtu === null ? `${i.name} unknown (${role})` : `${i.name} ${i.mtu} (${role}${podNote})`;
    const status: Status = i.mtu === null ? 'error' : i.mtu < want ? 'fail' : i.mtu > want ? 'warn' : 'pass';
    return { i, want, primary, status, text };
  });
  const status = worstStatus(verdicts.map((v) => v.status));
  const observed = verdicts.map((v) => v.text).join('; ') + (facts.defaultRoute === null ? '; no default route' : '');
  if (status === 'pass') return { status, observed, expected };
  const wrong = verdicts.filter((v) => v.status === 'fail' || v.status === 'warn');
  const remedy = wrong.length
    ? `${wrong.map((v) => `ip link set dev ${v.i.name} mtu ${v.want}`).join(' && ')} (takes effect now, lost at reboot; prep-node apply makes it persistent)`
    : undefined;
  const why: string[] = [];
  if (verdicts.some((v) => v.status === 'error')) why.push('an interface\'s MTU could not be read from /sys/class/net/IF/mtu');
  if (verdicts.some((v) => v.status === 'fail')) {
    why.push(
      'an MTU below the profile shrinks every packet the node sends and, with an overlay, every pod\'s MTU too; ' +
        'if the provider\'s network really carries only this much (check its docs), set mtu.primary/mtu.private in your profile instead of raising it',
    );
  }
  if (verdicts.some((v) => v.status === 'warn' && v.primary)) {
    why.push('an MTU above the internet path\'s 1500 makes large packets vanish wherever ICMP "fragmentation needed" is filtered (PMTU black holes, RFC 2923 §2.1)');
  }
  if (verdicts.some((v) => v.status === 'warn' && !v.primary)) {
    why.push('a private interface above the profile: if the provider\'s private network supports jumbo frames, raise mtu.private in the profile to match');
  }
  if (overhead) {
    why.push(
      `${mtu.overlay} encapsulation costs ${overhead} bytes over IPv4 (outer IPv4 20 + UDP 8 + ${mtu.overlay === 'vxlan' ? 'VXLAN 8' : 'Geneve 8'} + inner Ethernet 14; ${mtu.overlay === 'vxlan' ? 'RFC 7348' : 'RFC 8926'}), ` +
        `so pods get the interface MTU minus ${overhead}; every node must agree on it or pod-to-pod packets near full size are dropped`,
    );
  }
  return { status, observed, expected, ...(remedy && { remedy }), detail: why.join('. ') };
}
