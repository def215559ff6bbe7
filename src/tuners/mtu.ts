// The MTU tuner: the default-route interface gets mtu.primary, every other physical interface
// mtu.private (the interfaces and roles net.mtu judges). Running value: `ip link set dev IF mtu N`.
// Persistent form: the network manager that configures the interface on this node (netplan,
// systemd-networkd, ifupdown), else a boot unit that sets the MTUs once the network is online.
// An MTU outside the link's range (virtio-net advertises its host's MTU as max_mtu, VIRTIO_NET_F_MTU)
// is refused before anything is written.
import { NodeRefusal } from '../errors.js';
import { shQuote } from '../host/host.js';
import { netFacts, type NetFacts, type NetInterface } from '../probes/net.js';
import type { Profile } from '../profiles/schema.js';
import { fileMatches, readFiles } from './files.js';
import {
  findIfupdownStanza,
  ifupdownMtu,
  ifupdownWithMtu,
  netConfigScript,
  netplanEthernets,
  netplanMatches,
  networkdDropIn,
  networkdMtu,
  parseNetConfig,
  type LinkInfo,
  type NetConfig,
} from './netmgr.js';
import type { FileWrite, Original, TuneContext, Tuner, TunerPlan } from './types.js';

export const NETPLAN_FILE = '/etc/netplan/90-prep-node.yaml';
export const MTU_SCRIPT = '/usr/local/sbin/prep-node-mtu';
export const MTU_UNIT = '/etc/systemd/system/prep-node-mtu.service';
export const MTU_UNIT_LINK = '/etc/systemd/system/multi-user.target.wants/prep-node-mtu.service';

const HEADER = 'Written by prep-node from its profile; `prep-node rollback` removes it. Edits are overwritten by the next apply.';

/** Set one interface's MTU (the running value). */
function setMtu(iface: string, mtu: number | string): string {
  return `ip link set dev ${shQuote(iface)} mtu ${mtu}`;
}

/**
 * The boot script and its unit: at boot, once the network is online, the default-route interface gets
 * mtu.primary and every other physical interface mtu.private. For nodes whose interface names are
 * not known yet (cloud-init) and for nodes whose network manager prep-node does not know.
 * Bridge and bond ports are left alone (their MTU follows the master's configuration).
 */
export function mtuBootFiles(profile: Profile): FileWrite[] {
  const { primary, private: priv } = profile.mtu;
  if (!profile.mtu.apply || (primary === 1500 && priv === 1500)) return [];
  const script = `#!/bin/sh
# ${HEADER}
# profile ${profile.name}: the default-route interface gets ${primary}, every other physical interface ${priv}.
PRIMARY=${primary}
PRIVATE=${priv}
# PREP_NODE_SYSFS: tests point it at a fake /sys.
SYS=\${PREP_NODE_SYSFS:-/sys}
dev=
n=0
while [ $n -lt 30 ]; do
  dev=$(ip -4 route show default 2>/dev/null | sed -n '1s/.* dev \\([^ ]*\\).*/\\1/p')
  [ -n "$dev" ] || dev=$(ip -6 route show default 2>/dev/null | sed -n '1s/.* dev \\([^ ]*\\).*/\\1/p')
  [ -n "$dev" ] && break
  n=$((n + 1))
  sleep 1
done
rc=0
for d in "$SYS"/class/net/*; do
  i=\${d##*/}
  if [ "$i" = lo ] || [ ! -e "$d/device" ] || [ -e "$d/master" ]; then continue; fi
  if [ "$i" = "$dev" ]; then want=$PRIMARY; else want=$PRIVATE; fi
  if [ "$(cat "$d/mtu")" != "$want" ]; then ip link set dev "$i" mtu "$want" || rc=1; fi
done
exit $rc
`;
  const unit = `# ${HEADER}
[Unit]
Description=Interface MTUs from prep-node's profile
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
ExecStart=${MTU_SCRIPT}
RemainAfterExit=yes

[Install]
WantedBy=multi-user.target
`;
  return [
    { path: MTU_SCRIPT, content: script, mode: 0o755 },
    { path: MTU_UNIT, content: unit, mode: 0o644 },
    { path: MTU_UNIT_LINK, symlink: MTU_UNIT },
  ];
}

/** For cloud-init: write_files runs after systemd planned this boot, so run the script once now. */
export function mtuBootCommands(profile: Profile): string[] {
  if (mtuBootFiles(profile).length === 0) return [];
  return ['if [ -d /run/systemd/system ]; then systemctl daemon-reload; fi', MTU_SCRIPT];
}

/** One interface: what it has, what the profile wants, who persists it. */
interface Target {
  iface: NetInterface;
  link: LinkInfo;
  want: number;
  role: 'default route' | 'private';
}

/** How a group of interfaces is persisted: the files wanted and, per interface, what the config says now. */
interface Persistence {
  label: string;
  /** MTU the node's configuration sets at boot, per interface (absent: none). */
  configured: Map<string, number>;
  /** The files that make `targets` persistent (all of them: the caller drops the ones already right). */
  files: (targets: Target[]) => FileWrite[];
  /** Interfaces whose persistent form prep-node wrote before: kept in its files on every apply. */
  owned: Set<string>;
}

function refuse(ctx: TuneContext, detail: string): never {
  throw new NodeRefusal(ctx.host.name, detail);
}

/** netplan: our own file amends the interface's existing definition (same ID), mode 0600 as netplan wants. */
function netplanPersistence(ctx: TuneContext, config: NetConfig, targets: Target[]): { persist: Persistence; ids: Map<string, string> } {
  const all = netplanEthernets(ctx.host.name, config.files);
  const others = netplanEthernets(ctx.host.name, config.files, [NETPLAN_FILE]);
  const ours = config.files.has(NETPLAN_FILE) ? netplanEthernets(ctx.host.name, new Map([[NETPLAN_FILE, config.files.get(NETPLAN_FILE)!]])) : new Map();
  const ids = new Map<string, string>();
  const configured = new Map<string, number>();
  const owned = new Set<string>();
  for (const t of targets) {
    const who = { name: t.iface.name, mac: t.link.mac, driver: t.iface.driver };
    const matching = [...others].filter(([id, def]) => netplanMatches(id, def, who)).map(([id]) => id);
    if (matching.length === 0) continue;
    if (matching.length > 1) refuse(ctx, `${t.iface.name} matches several netplan definitions (${matching.join(', ')}): merge them, or set mtu.apply: false and set the MTU yourself`);
    const id = matching[0]!;
    ids.set(t.iface.name, id);
    const mtu = all.get(id)?.mtu;
    if (typeof mtu === 'number') configured.set(t.iface.name, mtu);
    if (ours.has(id)) owned.add(t.iface.name);
  }
  const files = (ts: Target[]): FileWrite[] => {
    const byId = new Map<string, number>();
    for (const t of ts) {
      const id = ids.get(t.iface.name)!;
      const other = byId.get(id);
      if (other !== undefined && other !== t.want) refuse(ctx, `netplan definition ${id} covers interfaces that need MTUs ${other} and ${t.want}: split it, or set mtu.apply: false`);
      byId.set(id, t.want);
    }
    // netplan renders dhcp4 with networkd's UseMTU=true: a DHCP-supplied MTU (option 26) would undo ours at every lease.
    const dhcp = (id: string) => [true, 'true', 'yes', 'on'].includes(others.get(id)?.dhcp4 as string | boolean);
    const body = [...byId]
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([id, mtu]) => `    ${JSON.stringify(id)}:\n      mtu: ${mtu}\n${dhcp(id) ? '      dhcp4-overrides:\n        use-mtu: false\n' : ''}`);
    return [{ path: NETPLAN_FILE, content: `# ${HEADER}\n# profile ${ctx.profile.name}\nnetwork:\n  version: 2\n  ethernets:\n${body.join('')}`, mode: 0o600 }];
  };
  return { persist: { label: `netplan (${NETPLAN_FILE})`, configured, files, owned }, ids };
}

/** systemd-networkd: a drop-in next to the .network file that configures the link. */
async function networkdPersistence(ctx: TuneContext, targets: Target[]): Promise<Persistence> {
  const paths = [...new Set(targets.flatMap((t) => [t.link.networkdFile!, networkdDropIn(t.link.networkdFile!)]))];
  const states = await readFiles(ctx.host, paths);
  const text = (p: string) => {
    const s = states.get(p);
    return s?.kind === 'file' ? s.content.toString('utf8') : null;
  };
  const configured = new Map<string, number>();
  const owned = new Set<string>();
  for (const t of targets) {
    const dropIn = text(networkdDropIn(t.link.networkdFile!));
    if (dropIn !== null) owned.add(t.iface.name);
    const mtu = (dropIn !== null ? networkdMtu(dropIn) : null) ?? networkdMtu(text(t.link.networkdFile!) ?? '');
    if (mtu !== null) configured.set(t.iface.name, mtu);
  }
  const files = (ts: Target[]): FileWrite[] => {
    const byFile = new Map<string, number>();
    for (const t of ts) {
      const f = t.link.networkdFile!;
      const other = byFile.get(f);
      if (other !== undefined && other !== t.want) refuse(ctx, `${f} configures interfaces that need MTUs ${other} and ${t.want}: give each its own .network file, or set mtu.apply: false`);
      byFile.set(f, t.want);
    }
    return [...byFile].map(([f, mtu]) => ({ path: networkdDropIn(f), content: `# ${HEADER}\n# profile ${ctx.profile.name}\n[Link]\nMTUBytes=${mtu}\n`, mode: 0o644 }));
  };
  const where = [...new Set(targets.map((t) => networkdDropIn(t.link.networkdFile!)))].join(', ');
  return { label: `systemd-networkd (${where})`, configured, files, owned };
}

/** ifupdown: the `mtu` option (or a pre-up command) in the interface's own stanza. */
function ifupdownPersistence(ctx: TuneContext, config: NetConfig, targets: Target[]): Persistence {
  const configured = new Map<string, number>();
  for (const t of targets) {
    const st = findIfupdownStanza(config.files, t.iface.name)!;
    const mtu = ifupdownMtu(config.files, st, t.iface.name);
    if (mtu !== null) configured.set(t.iface.name, mtu);
  }
  const files = (ts: Target[]): FileWrite[] => {
    // Several interfaces may share one file: apply the edits one after another.
    const edited = new Map(config.files);
    for (const t of ts) {
      const st = findIfupdownStanza(edited, t.iface.name)!;
      edited.set(st.file, Buffer.from(ifupdownWithMtu(edited, st, t.iface.name, t.want), 'utf8'));
    }
    return [...edited].filter(([p, c]) => !c.equals(config.files.get(p)!)).map(([path, c]) => ({ path, content: c.toString('utf8') }));
  };
  const where = [...new Set(targets.map((t) => findIfupdownStanza(config.files, t.iface.name)!.file))].join(', ');
  return { label: `ifupdown (${where})`, configured, files, owned: new Set() };
}

/** No known manager: the boot unit (systemd only). */
async function unitPersistence(ctx: TuneContext, config: NetConfig, targets: Target[]): Promise<Persistence> {
  const names = targets.map((t) => t.iface.name).join(', ');
  if (!config.systemd) {
    refuse(ctx, `no netplan, systemd-networkd or ifupdown configuration for ${names} and no systemd to run a boot unit: set the MTU in your init's network configuration and mtu.apply: false in the profile`);
  }
  const state = (await readFiles(ctx.host, [MTU_SCRIPT])).get(MTU_SCRIPT);
  const owned = new Set(state?.kind === 'file' ? targets.map((t) => t.iface.name) : []);
  // The script sets exactly what the profile asks of each role, so an installed one "configures" the wanted MTU.
  const configured = new Map([...owned].map((n) => [n, targets.find((t) => t.iface.name === n)!.want]));
  return { label: `boot unit (${MTU_UNIT})`, configured, files: () => mtuBootFiles(ctx.profile), owned };
}

/** The network manager in charge of the interface, in the order a node's boot applies them. */
function managerOf(t: Target, config: NetConfig, netplanIds: Map<string, string>): 'netplan' | 'networkd' | 'networkmanager' | 'ifupdown' | 'unit' {
  if (config.netplan && netplanIds.has(t.iface.name)) return 'netplan';
  if (t.link.networkdFile !== null) return 'networkd';
  if (t.link.nmConnection !== null) return 'networkmanager';
  if (findIfupdownStanza(config.files, t.iface.name) !== null) return 'ifupdown';
  return 'unit';
}

/** Targets for every physical interface: roles as net.mtu gives them. */
function targetsOf(facts: NetFacts, config: NetConfig, mtu: Profile['mtu']): Target[] {
  return facts.interfaces.map((iface) => {
    const primary = facts.defaultRoute !== null && (iface.name === facts.defaultRoute || iface.master === facts.defaultRoute);
    return { iface, link: config.links.get(iface.name)!, want: primary ? mtu.primary : mtu.private, role: primary ? 'default route' : 'private' };
  });
}

export const mtuTuner: Tuner = {
  id: 'mtu',
  title: 'interface MTU',
  cutsSession: true,
  async plan(ctx): Promise<TunerPlan> {
    const plan: TunerPlan = { tuner: 'mtu', changes: [], files: [], originals: [], unchanged: [], notes: [] };
    if (!ctx.profile.mtu.apply) return plan;
    const facts = await netFacts(ctx);
    if (facts.interfaces.length === 0) {
      plan.notes.push('no physical interface: no MTU to set');
      return plan;
    }
    const names = facts.interfaces.map((i) => i.name);
    const config = parseNetConfig(await ctx.host.exec(netConfigScript(names), { sudo: true, timeoutMs: 30_000 }), names);
    const targets = targetsOf(facts, config, ctx.profile.mtu);
    for (const t of targets) {
      if (t.iface.mtu === null) refuse(ctx, `cannot read ${t.iface.name}'s MTU (/sys/class/net/${t.iface.name}/mtu)`);
      if (t.iface.mtu === t.want) continue;
      const { minMtu, maxMtu } = t.link;
      const key = t.role === 'default route' ? 'mtu.primary' : 'mtu.private';
      if (maxMtu !== null && t.want > maxMtu) {
        refuse(ctx, `${t.iface.name} carries at most MTU ${maxMtu} (ip -d link: maxmtu ${maxMtu}; the host or provider sets it), the profile's ${key} asks ${t.want}: set ${key} to ${maxMtu} or less`);
      }
      if (minMtu !== null && t.want < minMtu) refuse(ctx, `${t.iface.name} takes no MTU below ${minMtu} (ip -d link: minmtu ${minMtu}), the profile's ${key} asks ${t.want}: raise ${key}`);
      if (t.iface.master !== null) {
        refuse(ctx, `${t.iface.name} is a port of ${t.iface.master}: prep-node does not set MTUs on bridge or bond ports; set ${t.want} on ${t.iface.master} and its ports in the network configuration, and mtu.apply: false in the profile`);
      }
    }
    // Group by manager; a group is persisted when one of its interfaces changes, its configuration says
    // another MTU, or prep-node persisted it before (so its files stay complete).
    const { persist: netplanP, ids } = netplanPersistence(ctx, config, targets);
    const groups = new Map<string, Target[]>();
    for (const t of targets) {
      const kind = managerOf(t, config, ids);
      groups.set(kind, [...(groups.get(kind) ?? []), t]);
    }
    const persistence = new Map<string, Persistence>();
    for (const [kind, ts] of groups) {
      if (kind === 'netplan') persistence.set(kind, netplanP);
      else if (kind === 'networkd') persistence.set(kind, await networkdPersistence(ctx, ts));
      else if (kind === 'ifupdown') persistence.set(kind, ifupdownPersistence(ctx, config, ts));
      else if (kind === 'unit') persistence.set(kind, await unitPersistence(ctx, config, ts));
    }
    const wanted: FileWrite[] = [];
    for (const [kind, ts] of groups) {
      const p = persistence.get(kind);
      const differs = (t: Target) => p !== undefined && p.configured.has(t.iface.name) && p.configured.get(t.iface.name) !== t.want;
      const scope = ts.filter((t) => t.iface.mtu !== t.want || p?.owned.has(t.iface.name) || differs(t));
      if (scope.length === 0) {
        for (const t of ts) plan.unchanged.push(`${t.iface.name} mtu ${t.want} (${t.role})`);
        continue;
      }
      if (!p) {
        const t = scope[0]!;
        refuse(
          ctx,
          `${t.iface.name} is managed by NetworkManager (connection "${t.link.nmConnection}"), which prep-node does not edit: ` +
            `run nmcli connection modify ${shQuote(t.link.nmConnection!)} 802-3-ethernet.mtu ${t.want} and set mtu.apply: false in the profile`,
        );
      }
      wanted.push(...p.files(scope));
      for (const t of ts) {
        if (t.iface.mtu === t.want) {
          plan.unchanged.push(`${t.iface.name} mtu ${t.want} (${t.role})${differs(t) ? `: ${p.label} said ${p.configured.get(t.iface.name)}, rewritten` : ''}`);
          continue;
        }
        plan.changes.push({ key: t.iface.name, current: String(t.iface.mtu), desired: String(t.want), persist: p.label });
        plan.originals.push({ tuner: 'mtu', key: t.iface.name, value: String(t.iface.mtu) });
      }
    }
    if (wanted.length) {
      const states = await readFiles(ctx.host, wanted.map((f) => f.path));
      plan.files = wanted.filter((f) => !fileMatches(states.get(f.path)!, f));
    }
    // The default-route interface last: a wrong value there is the one that cuts the session.
    plan.changes.sort((a, b) => Number(a.key === facts.defaultRoute) - Number(b.key === facts.defaultRoute));
    return plan;
  },
  applyCommand(plan): string {
    return plan.changes.map((c) => setMtu(c.key, c.desired)).join(' && ');
  },
  restoreCommand(original: Original): string {
    return setMtu(original.key, /^\d+$/.test(original.value) ? original.value : '1500');
  },
  // Re-read without reconfiguring: netplan regenerates networkd/NetworkManager files under /run (what
  // `netplan apply` would then apply; we never call it), systemd learns about the boot unit. networkd
  // reads its drop-in at its next start; `networkctl reload` is not run because it reconfigures links.
  reloadCommand:
    'if [ -d /run/systemd/system ]; then systemctl daemon-reload; fi; if command -v netplan >/dev/null 2>&1; then netplan generate; fi',
};
