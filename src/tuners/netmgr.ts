// Which network manager configures an interface on a node, read in one round-trip: the link's MTU
// range (`ip -d -o link`), systemd-networkd's state file, NetworkManager's device, and the netplan and
// ifupdown configuration files themselves. The MTU tuner turns this into the manager's own persistent
// form; the parsers here are pure and tested on fixtures.
import { parse as parseYaml } from 'yaml';
import { NodeRefusal } from '../errors.js';
import { shQuote } from '../host/host.js';
import { parseSections } from '../probes/sections.js';

/** What the node says about one interface. */
export interface LinkInfo {
  name: string;
  /** From `ip -d link show`: `minmtu 68 maxmtu 65535` (iproute2 >= 4.19 prints them); null when not printed. */
  minMtu: number | null;
  maxMtu: number | null;
  mac: string | null;
  /** systemd-networkd's NETWORK_FILE for the link (/run/systemd/netif/links/IFINDEX) when it configures it. */
  networkdFile: string | null;
  /** NetworkManager's active connection on the device, when NetworkManager runs and manages it. */
  nmConnection: string | null;
}

export interface NetConfig {
  /** systemd is PID 1 (/run/systemd/system exists): units and networkd drop-ins are usable. */
  systemd: boolean;
  /** The netplan command exists. */
  netplan: boolean;
  links: Map<string, LinkInfo>;
  /** netplan YAML (/lib, /etc, /run netplan) and ifupdown files (/etc/network/interfaces, interfaces.d/*), exact bytes. */
  files: Map<string, Buffer>;
}

export const NETPLAN_DIRS = ['/lib/netplan', '/etc/netplan', '/run/netplan'];
export const IFUPDOWN_FILES = ['/etc/network/interfaces', '/etc/network/interfaces.d/*'];

/** The script printing a NetConfig for these interfaces (as root: netplan files are mode 0600). */
export function netConfigScript(ifaces: string[]): string {
  const list = ifaces.map(shQuote).join(' ');
  const files = [...NETPLAN_DIRS.map((d) => `${d}/*.yaml`), ...IFUPDOWN_FILES].join(' ');
  return [
    'echo "@@ systemd"; if [ -d /run/systemd/system ]; then echo yes; else echo no; fi',
    'echo "@@ netplan"; if command -v netplan >/dev/null 2>&1 || [ -x /usr/sbin/netplan ]; then echo yes; else echo no; fi',
    'NM=; if command -v nmcli >/dev/null 2>&1 && nmcli -t -g RUNNING general status 2>/dev/null | grep -q running; then NM=yes; fi',
    `for i in ${list}; do`,
    '  echo "@@ link $i"',
    '  echo "iplink $(ip -d -o link show dev "$i" 2>&1)"',
    '  echo "mac $(cat "/sys/class/net/$i/address" 2>/dev/null)"',
    '  x=$(cat "/sys/class/net/$i/ifindex" 2>/dev/null)',
    `  if [ -n "$x" ] && [ -f "/run/systemd/netif/links/$x" ]; then sed -n 's/^NETWORK_FILE=/networkd-file /p; s/^ADMIN_STATE=/networkd-state /p' "/run/systemd/netif/links/$x"; fi`,
    '  if [ -n "$NM" ]; then echo "nm $(nmcli -t -g GENERAL.STATE,GENERAL.CONNECTION device show "$i" 2>/dev/null | tr \'\\n\' \' \')"; fi',
    'done',
    `for f in ${files}; do if [ -f "$f" ]; then echo "@@ file $f"; base64 -w0 "$f" || exit 1; echo; fi; done`,
    'exit 0',
  ].join('\n');
}

/** Parse netConfigScript's output. */
export function parseNetConfig(out: string, ifaces: string[]): NetConfig {
  const s = parseSections(out);
  const links = new Map<string, LinkInfo>();
  for (const name of ifaces) {
    const info: LinkInfo = { name, minMtu: null, maxMtu: null, mac: null, networkdFile: null, nmConnection: null };
    let networkdState = '';
    for (const line of (s.get(`link ${name}`) ?? '').split('\n')) {
      const sp = line.indexOf(' ');
      const key = sp < 0 ? line : line.slice(0, sp);
      const value = sp < 0 ? '' : line.slice(sp + 1).trim();
      if (key === 'iplink') {
        info.minMtu = num(/\bminmtu (\d+)/.exec(value)?.[1]);
        info.maxMtu = num(/\bmaxmtu (\d+)/.exec(value)?.[1]);
      } else if (key === 'mac') info.mac = value.toLowerCase() || null;
      else if (key === 'networkd-file') info.networkdFile = value || null;
      else if (key === 'networkd-state') networkdState = value;
      else if (key === 'nm') {
        // `100 (connected) Wired connection 1 ` from -t -g STATE,CONNECTION; 10 is unmanaged, 20 unavailable, 30 disconnected.
        const m = /^(\d+) \([^)]*\) (.*)$/.exec(value);
        if (m && Number(m[1]) >= 40 && m[2]!.trim() !== '') info.nmConnection = m[2]!.trim();
      }
    }
    // networkd keeps a state file for links it does not manage too ("unmanaged", no NETWORK_FILE).
    if (!['configured', 'configuring', 'degraded', 'failed', 'pending', 'initialized'].includes(networkdState)) info.networkdFile = null;
    links.set(name, info);
  }
  const files = new Map<string, Buffer>();
  for (const [name, text] of s) if (name.startsWith('file ')) files.set(name.slice(5), Buffer.from(text.trim(), 'base64'));
  return { systemd: s.get('systemd')?.trim() === 'yes', netplan: s.get('netplan')?.trim() === 'yes', links, files };
}

function num(s: string | undefined): number | null {
  return s === undefined ? null : Number(s);
}

// ---------------------------------------------------------------------------------------------
// netplan: files in /lib, /etc and /run/netplan are read in the lexical order of their base names
// (a /run file shadows an /etc file of the same name, which shadows /lib); a later file amends the
// mappings of an earlier one with the same interface ID and overrides its scalars (netplan(5),
// "General structure"). So our own file only needs `ethernets: {ID: {mtu: N}}` with the ID under
// which the interface is already defined, whatever `match:` that definition uses.

/** The netplan files that take effect, in the order netplan reads them. */
export function netplanOrder(paths: string[]): string[] {
  const byName = new Map<string, string>();
  for (const dir of NETPLAN_DIRS) for (const p of paths) if (p.startsWith(`${dir}/`) && p.endsWith('.yaml')) byName.set(p.slice(dir.length + 1), p);
  return [...byName.keys()].sort().map((n) => byName.get(n)!);
}

type Yaml = Record<string, unknown>;

function isMap(v: unknown): v is Yaml {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** netplan's merge: mappings merge key by key, anything else is replaced. */
function merge(a: unknown, b: unknown): unknown {
  if (!isMap(a) || !isMap(b)) return b;
  const out: Yaml = { ...a };
  for (const [k, v] of Object.entries(b)) out[k] = k in out ? merge(out[k], v) : v;
  return out;
}

/** The merged `network.ethernets` of these netplan files (an unparsable file is an error naming it). */
export function netplanEthernets(host: string, files: Map<string, Buffer>, skip: string[] = []): Map<string, Yaml> {
  let merged: Yaml = {};
  for (const path of netplanOrder([...files.keys()])) {
    if (skip.includes(path)) continue;
    let doc: unknown;
    try {
      doc = parseYaml(files.get(path)!.toString('utf8'));
    } catch (err) {
      throw new NodeRefusal(host, `${path} is not valid YAML (${(err as Error).message.split('\n')[0]}): netplan cannot read it either; fix it first`);
    }
    const eth = isMap(doc) && isMap(doc.network) ? doc.network.ethernets : undefined;
    if (isMap(eth)) merged = merge(merged, eth) as Yaml;
  }
  return new Map(Object.entries(merged).filter((e): e is [string, Yaml] => isMap(e[1])));
}

/** A glob as netplan and networkd take it (fnmatch: `*`, `?`, `[...]`). */
function globMatch(glob: string, s: string): boolean {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*') re += '.*';
    else if (c === '?') re += '.';
    else if (c === '[') {
      const end = glob.indexOf(']', i + 2);
      if (end < 0) re += '\\[';
      else {
        re += `[${glob.slice(i + 1, end).replace(/^!/, '^').replace(/\\/g, '\\\\')}]`;
        i = end;
      }
    } else re += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`).test(s);
}

/** Does this netplan ethernets definition apply to the interface? */
export function netplanMatches(id: string, def: Yaml, iface: { name: string; mac: string | null; driver: string | null }): boolean {
  const match = def.match;
  if (!isMap(match)) return id === iface.name;
  if (typeof def['set-name'] === 'string' && def['set-name'] !== iface.name) return false;
  if (typeof match.name === 'string' && !globMatch(match.name, iface.name)) return false;
  if (typeof match.macaddress === 'string' && match.macaddress.toLowerCase() !== iface.mac) return false;
  if (match.driver !== undefined) {
    const drivers = (Array.isArray(match.driver) ? match.driver : [match.driver]).map(String);
    if (iface.driver === null || !drivers.some((d) => globMatch(d, iface.driver!))) return false;
  }
  return match.name !== undefined || match.macaddress !== undefined || match.driver !== undefined;
}

// ---------------------------------------------------------------------------------------------
// ifupdown: /etc/network/interfaces(5). A stanza runs from its `iface` line to the next line that
// starts a stanza. ifupdown 0.8 (Debian 10-12) sets the link MTU from an `mtu` option only for the
// inet `static` and `manual` methods (`ip link set dev IF mtu N`); `inet dhcp` and the inet6 methods
// ignore it or set only the IPv6 MTU (seen with `ifup --no-act -v` on ifupdown 0.8.41), so there a
// `pre-up` command sets it.

const STANZA_START = /^\s*(iface|mapping|auto|allow-\S+|source|source-directory|rename|no-auto-down|no-scripts)(\s|$)/;

export interface IfupdownStanza {
  file: string;
  family: string;
  method: string;
  /** 0-based line index of the `iface` line and one past the stanza's last option line. */
  start: number;
  end: number;
}

/** The interface's first inet stanza (else its first inet6 one) in the ifupdown files, in the order ifupdown reads them. */
export function findIfupdownStanza(files: Map<string, Buffer>, iface: string): IfupdownStanza | null {
  const paths = [...files.keys()].filter((p) => p === '/etc/network/interfaces' || p.startsWith('/etc/network/interfaces.d/')).sort((a, b) => (a === '/etc/network/interfaces' ? -1 : b === '/etc/network/interfaces' ? 1 : a < b ? -1 : 1));
  let inet6: IfupdownStanza | null = null;
  for (const file of paths) {
    const lines = files.get(file)!.toString('utf8').split('\n');
    for (let i = 0; i < lines.length; i++) {
      const m = /^\s*iface\s+(\S+)\s+(\S+)\s+(\S+)/.exec(lines[i]!);
      if (!m || m[1] !== iface) continue;
      let end = i + 1;
      for (let j = i + 1; j < lines.length && !STANZA_START.test(lines[j]!); j++) if (/^\s*[^\s#]/.test(lines[j]!)) end = j + 1;
      const stanza = { file, family: m[2]!, method: m[3]!, start: i, end };
      if (stanza.family === 'inet') return stanza;
      inet6 ??= stanza;
    }
  }
  return inet6;
}

/** Whether the `mtu` option sets the link MTU for this stanza's method (else a pre-up command does). */
function mtuOptionWorks(st: IfupdownStanza): boolean {
  return st.family === 'inet' && (st.method === 'static' || st.method === 'manual');
}

const mtuLine = (iface: string) => new RegExp(`^\\s*pre-up\\s+ip\\s+link\\s+set\\s+(dev\\s+)?${iface.replace(/[.+*?^$()[\]{}|\\]/g, '\\$&')}\\s+mtu\\s+(\\d+)\\s*$`);

/** The MTU the stanza sets at ifup, if any. */
export function ifupdownMtu(files: Map<string, Buffer>, st: IfupdownStanza, iface: string): number | null {
  const lines = files.get(st.file)!.toString('utf8').split('\n').slice(st.start + 1, st.end);
  const re = mtuOptionWorks(st) ? /^\s*mtu\s+(\d+)\s*$/ : mtuLine(iface);
  for (const l of lines) {
    const m = re.exec(l);
    if (m) return Number(m[m.length - 1]);
  }
  return null;
}

/** The stanza's file with the MTU line added or replaced (everything else byte for byte). */
export function ifupdownWithMtu(files: Map<string, Buffer>, st: IfupdownStanza, iface: string, mtu: number): string {
  const lines = files.get(st.file)!.toString('utf8').split('\n');
  const body = lines.slice(st.start + 1, st.end);
  const indent = /^(\s+)\S/.exec(body.find((l) => /^\s+\S/.test(l)) ?? '')?.[1] ?? '    ';
  const want = mtuOptionWorks(st) ? `mtu ${mtu}` : `pre-up ip link set dev ${iface} mtu ${mtu}`;
  const re = mtuOptionWorks(st) ? /^\s*mtu\s+\d+\s*$/ : mtuLine(iface);
  const at = body.findIndex((l) => re.test(l));
  if (at >= 0) lines[st.start + 1 + at] = `${/^(\s*)/.exec(body[at]!)![1]}${want}`;
  else lines.splice(st.end, 0, `${indent}${want}`);
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------
// systemd-networkd: a `.network` file's drop-ins are `<name>.network.d/*.conf` in any of its search
// directories (systemd.network(5)); /etc wins and survives package upgrades.

/** The drop-in prep-node writes for a .network file. */
export function networkdDropIn(networkFile: string): string {
  return `/etc/systemd/network/${networkFile.slice(networkFile.lastIndexOf('/') + 1)}.d/90-prep-node.conf`;
}

/** MTUBytes= in a [Link] section of a .network file or drop-in; null when not set. */
export function networkdMtu(text: string): number | null {
  let section = '';
  let mtu: number | null = null;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    const sec = /^\[(.+)\]$/.exec(line);
    if (sec) section = sec[1]!;
    const m = /^MTUBytes\s*=\s*(\d+)([KMG]?)\s*$/i.exec(line);
    if (section === 'Link' && m) mtu = Number(m[1]) * (m[2] ? 1024 ** ('KMG'.indexOf(m[2].toUpperCase()) + 1) : 1);
  }
  return mtu;
}
