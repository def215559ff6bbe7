// The fleet: targets from argv and/or an inventory file, each with optional user, port, key and
// profile. Three formats, detected from the text: our own YAML (`hosts:` as a list), Ansible's YAML
// (top-level groups with hosts/children/vars) and Ansible's INI ([group], [group:vars],
// [group:children], `key=value` host variables). `--limit` selects hosts with Ansible's patterns.
import { isMap, isScalar, isSeq, type Node, type Pair } from 'yaml';
import { z } from 'zod';
import { UsageError } from './errors.js';
import { parseTarget, type Target } from './host/target.js';
import { parseYamlSource, readTextFile, type YamlSource } from './yaml-source.js';

/** An inventory's size limit: about 300,000 hosts written one `user@host:port` a line. */
const MAX_INVENTORY_BYTES = 16 * 1024 * 1024;

export interface HostSpec {
  target: Target;
  /** Profile name or path for this host, overriding --profile. */
  profile?: string;
}

/** More hosts than this in one inventory (ranges expanded) is refused before anything is built. */
export const MAX_INVENTORY_HOSTS = 1_000_000;

const port = z.number().int().min(1).max(65535);
const entry = z.union([
  z.string(),
  z.strictObject({ host: z.string(), user: z.string().optional(), port: port.optional(), profile: z.string().optional() }),
]);
const InventorySchema = z.strictObject({
  defaults: z.strictObject({ user: z.string().optional(), port: port.optional(), profile: z.string().optional() }).optional(),
  hosts: z.array(entry).min(1, 'expected at least one host'),
});

/** Read an inventory in any of the three formats, then apply `--limit` when given. */
export async function loadInventory(file: string, limit?: string): Promise<HostSpec[]> {
  const text = await readTextFile(file, `inventory ${file}`, MAX_INVENTORY_BYTES);
  const inv = readInventory(text, file);
  return toSpecs(inv, limit === undefined ? allHosts(inv) : selectHosts(inv, limit), file);
}

/** Our own format only (kept for callers that hold the text): hosts in file order. */
export function parseInventory(text: string, file: string): HostSpec[] {
  const inv = readInventory(text, file);
  return toSpecs(inv, allHosts(inv), file);
}

// ------------------------------------------------------------------------------------------ model

/** Ansible's inventory model: groups of hosts and child groups, variables on both. */
export interface Inventory {
  format: 'prep-node' | 'ansible-ini' | 'ansible-yaml';
  /** host name → its own variables and the line that first named it */
  hosts: Map<string, { vars: Record<string, unknown>; line: number; groups: Set<string> }>;
  groups: Map<string, Group>;
  /** for our own format: the specs, already resolved, by host name */
  specs?: Map<string, HostSpec>;
}
interface Group {
  hosts: Set<string>;
  children: Set<string>;
  vars: Record<string, unknown>;
  line: number;
}

function group(inv: Inventory, name: string, line: number): Group {
  let g = inv.groups.get(name);
  if (!g) {
    g = { hosts: new Set(), children: new Set(), vars: {}, line };
    inv.groups.set(name, g);
  }
  return g;
}

function addHost(inv: Inventory, groupName: string, name: string, vars: Record<string, unknown>, line: number, where: string): void {
  let h = inv.hosts.get(name);
  if (!h) {
    if (inv.hosts.size >= MAX_INVENTORY_HOSTS) throw new UsageError(`${where}: more than ${MAX_INVENTORY_HOSTS} hosts in one inventory: split it into several files`);
    h = { vars: {}, line, groups: new Set() };
    inv.hosts.set(name, h);
  }
  Object.assign(h.vars, vars);
  if (groupName !== 'all' && groupName !== 'ungrouped') {
    group(inv, groupName, line).hosts.add(name);
    h.groups.add(groupName);
  } else if (groupName === 'ungrouped') {
    group(inv, 'ungrouped', line).hosts.add(name);
  }
}

const GROUP_NAME = /^[A-Za-z_][A-Za-z0-9_.-]*$/;

/** Detect the format and parse. */
export function readInventory(text: string, file: string): Inventory {
  const first = text.split('\n').find((l) => l.trim() !== '' && !/^\s*[#;]/.test(l)) ?? '';
  if (/^\s*\[[^\]]*\]\s*([#;].*)?$/.test(first) && !/^\s*\[.*,/.test(first)) return parseIni(text, file);
  let src: YamlSource;
  try {
    src = parseYamlSource(text, file, MAX_INVENTORY_BYTES);
  } catch (err) {
    // `host1 ansible_host=…` lines before any section are INI, and not a YAML mapping
    if (/^\s*[^\s:#]+(\s+\S+=\S*)*\s*$/.test(first)) return parseIni(text, file);
    throw err;
  }
  const root = src.doc.contents;
  if (root === null || isScalar(root)) return parseIni(text, file);
  if (isMap(root) && root.items.some((p) => isScalar(p.key) && p.key.value === 'hosts' && isSeq(p.value))) return ourFormat(src);
  if (isMap(root)) return parseAnsibleYaml(src);
  throw new UsageError(`${file}:1: expected our format (hosts: [...]) or Ansible's (all: {hosts: ..., children: ...})`);
}

function ourFormat(src: YamlSource): Inventory {
  const parsed = InventorySchema.safeParse(src.doc.toJS());
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(top level)'}: ${i.message}`).join('; ');
    throw new UsageError(`${src.file}: ${issues} (expected hosts: [ "user@host:port" | {host, user, port, profile} ])`);
  }
  const inv: Inventory = { format: 'prep-node', hosts: new Map(), groups: new Map([['all', { hosts: new Set(), children: new Set(), vars: {}, line: 1 }]]), specs: new Map() };
  const d = parsed.data.defaults ?? {};
  for (const h of parsed.data.hosts) {
    const e = typeof h === 'string' ? { host: h } : h;
    const t = parseTarget(e.host);
    const user = t.user ?? e.user ?? d.user;
    const p = t.port ?? e.port ?? d.port;
    const profile = e.profile ?? d.profile;
    const target: Target = { ...t, ...(user && !t.local && { user }), ...(p && !t.local && { port: p }) };
    if (inv.hosts.has(t.spec)) throw new UsageError(`${src.file}: target "${t.spec}" is given twice`);
    inv.hosts.set(t.spec, { vars: {}, line: 1, groups: new Set() });
    inv.specs!.set(t.spec, { target, ...(profile && { profile }) });
  }
  return inv;
}

// ------------------------------------------------------------------------------------ host ranges

/** `node[01:20]`, `db-[a:f].example`, `n[1:9:2]`: every host a pattern names, in order (callback per name). */
export function expandHostPattern(pattern: string, each: (name: string) => void, where: string): void {
  const m = /^(.*?)\[([^\]]*)\](.*)$/.exec(pattern);
  if (!m) {
    each(pattern);
    return;
  }
  const [, head, range, tail] = m as unknown as [string, string, string, string];
  const parts = range.split(':');
  if (parts.length < 2 || parts.length > 3) throw new UsageError(`${where}: bad host range "[${range}]" in "${pattern}": expected [start:end] or [start:end:stride]`);
  const [beg, end, strideText] = parts as [string, string, string?];
  const stride = strideText === undefined || strideText === '' ? 1 : Number(strideText);
  if (!Number.isInteger(stride) || stride < 1) throw new UsageError(`${where}: bad stride "${strideText}" in "${pattern}": expected a positive integer`);
  const count = (n: number) => {
    if (n > MAX_INVENTORY_HOSTS) throw new UsageError(`${where}: "${pattern}" names ${n} hosts, more than ${MAX_INVENTORY_HOSTS} in one inventory: split it into several files`);
  };
  if (/^[a-z]$/.test(beg) && /^[a-z]$/.test(end)) {
    const a = beg.charCodeAt(0);
    const b = end.charCodeAt(0);
    if (a > b) throw new UsageError(`${where}: bad host range "[${range}]" in "${pattern}": the start is after the end`);
    for (let c = a; c <= b; c += stride) expandHostPattern(`${head}${String.fromCharCode(c)}${tail}`, each, where);
    return;
  }
  if (!/^\d*$/.test(beg) || !/^\d+$/.test(end)) throw new UsageError(`${where}: bad host range "[${range}]" in "${pattern}": expected numbers or single lowercase letters`);
  const a = beg === '' ? 0 : Number(beg);
  const b = Number(end);
  if (a > b) throw new UsageError(`${where}: bad host range "[${range}]" in "${pattern}": the start is after the end`);
  count(Math.floor((b - a) / stride) + 1);
  const width = beg.length > 1 && beg.startsWith('0') ? beg.length : 0;
  if (width > 0 && end.length !== width) throw new UsageError(`${where}: bad host range "[${range}]" in "${pattern}": a zero-padded start and the end must have the same width`);
  for (let i = a; i <= b; i += stride) expandHostPattern(`${head}${String(i).padStart(width, '0')}${tail}`, each, where);
}

// ------------------------------------------------------------------------------------ Ansible INI

/** Split a host line as Python's shlex does (quotes and backslashes; `#` starts a comment). */
function shlexSplit(line: string, where: string): string[] {
  const out: string[] = [];
  let cur = '';
  let inWord = false;
  let quote: string | null = null;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quote) {
      if (c === quote) quote = null;
      else if (c === '\\' && quote === '"' && i + 1 < line.length) cur += line[++i];
      else cur += c;
    } else if (c === '"' || c === "'") {
      quote = c;
      inWord = true;
    } else if (c === '\\' && i + 1 < line.length) {
      cur += line[++i];
      inWord = true;
    } else if (c === '#' && !inWord) {
      break;
    } else if (/\s/.test(c)) {
      if (inWord) out.push(cur);
      cur = '';
      inWord = false;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (quote) throw new UsageError(`${where}: unclosed ${quote} quote`);
  if (inWord) out.push(cur);
  return out;
}

/** An INI value as Ansible reads it: a Python literal (number, True/False/None, quoted string,
 * list/dict in JSON-compatible form) when it is one, else the text itself. */
export function iniValue(text: string): unknown {
  const v = text.trim();
  if (/^[-+]?\d+$/.test(v)) return Number(v);
  if (/^[-+]?(\d+\.\d*|\.\d+)([eE][-+]?\d+)?$/.test(v)) return Number(v);
  if (v === 'True') return true;
  if (v === 'False') return false;
  if (v === 'None') return null;
  if (/^'[^'\\]*'$/.test(v) || /^"[^"\\]*"$/.test(v)) return v.slice(1, -1);
  if (/^[[{]/.test(v)) {
    try {
      return JSON.parse(v.replace(/'/g, '"').replace(/\bTrue\b/g, 'true').replace(/\bFalse\b/g, 'false').replace(/\bNone\b/g, 'null')) as unknown;
    } catch {
      return v;
    }
  }
  return v;
}

function parseIni(text: string, file: string): Inventory {
  const inv: Inventory = { format: 'ansible-ini', hosts: new Map(), groups: new Map() };
  group(inv, 'all', 1);
  let section = 'ungrouped';
  let kind: 'hosts' | 'vars' | 'children' = 'hosts';
  const pending: { parent: string; child: string; line: number }[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const where = `${file}:${i + 1}`;
    const line = lines[i]!.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    if (line.startsWith('[')) {
      const m = /^\[([^\]:]+)(?::(\w+))?\]\s*(?:[#;].*)?$/.exec(line);
      if (!m) throw new UsageError(`${where}: bad section header "${line}": expected [group], [group:vars] or [group:children]`);
      section = m[1]!;
      if (!GROUP_NAME.test(section)) throw new UsageError(`${where}: bad group name "${section}": letters, digits, _ . - (not starting with a digit)`);
      const suffix = m[2] ?? 'hosts';
      if (suffix !== 'hosts' && suffix !== 'vars' && suffix !== 'children') throw new UsageError(`${where}: unknown section kind ":${suffix}": expected :vars or :children`);
      kind = suffix;
      group(inv, section, i + 1);
      continue;
    }
    if (kind === 'vars') {
      const eq = line.indexOf('=');
      if (eq <= 0) throw new UsageError(`${where}: expected key=value in [${section}:vars], got "${line}"`);
      group(inv, section, i + 1).vars[line.slice(0, eq).trim()] = iniValue(line.slice(eq + 1));
    } else if (kind === 'children') {
      const child = line.split(/\s+/)[0]!;
      if (!GROUP_NAME.test(child)) throw new UsageError(`${where}: bad group name "${child}" in [${section}:children]`);
      pending.push({ parent: section, child, line: i + 1 });
    } else {
      const [pattern, ...rest] = shlexSplit(line, where);
      if (pattern === undefined) continue;
      const vars: Record<string, unknown> = {};
      for (const kv of rest) {
        const eq = kv.indexOf('=');
        if (eq <= 0) throw new UsageError(`${where}: expected key=value after the host name, got "${kv}"`);
        vars[kv.slice(0, eq)] = iniValue(kv.slice(eq + 1));
      }
      // `host:port`, not for IPv6 addresses (several colons)
      let name = pattern;
      const colons = (pattern.match(/:/g) ?? []).length;
      if (colons === 1 && !pattern.includes('[')) {
        name = pattern.slice(0, pattern.indexOf(':'));
        vars.ansible_port = iniValue(pattern.slice(pattern.indexOf(':') + 1));
      } else if (colons === 1 && /\]:\d+$/.test(pattern)) {
        name = pattern.slice(0, pattern.lastIndexOf(':'));
        vars.ansible_port = iniValue(pattern.slice(pattern.lastIndexOf(':') + 1));
      }
      expandHostPattern(name, (h) => addHost(inv, section, h, vars, i + 1, where), where);
    }
  }
  for (const { parent, child, line } of pending) {
    group(inv, child, line);
    group(inv, parent, line).children.add(child);
  }
  checkCycles(inv, file);
  return inv;
}

// ----------------------------------------------------------------------------------- Ansible YAML

function parseAnsibleYaml(src: YamlSource): Inventory {
  const inv: Inventory = { format: 'ansible-yaml', hosts: new Map(), groups: new Map() };
  group(inv, 'all', 1);
  const at = (node: Node | null | undefined) => `${src.file}:${node?.range ? src.lines.linePos(node.range[0]).line : 1}`;
  const keyOf = (p: Pair, where: string): string => {
    if (!isScalar(p.key) || (typeof p.key.value !== 'string' && typeof p.key.value !== 'number')) throw new UsageError(`${where}: expected a name as the key`);
    return String(p.key.value);
  };
  const walkGroup = (name: string, node: unknown, where: string): void => {
    if (!GROUP_NAME.test(name)) throw new UsageError(`${where}: bad group name "${name}": letters, digits, _ . - (not starting with a digit)`);
    const line = Number(where.slice(where.lastIndexOf(':') + 1));
    const g = group(inv, name, line);
    if (node === null || (isScalar(node) && node.value === null)) return;
    if (!isMap(node)) throw new UsageError(`${where}: group "${name}": expected a mapping with hosts, children and/or vars`);
    for (const p of node.items) {
      const k = keyOf(p, at(p.key as Node));
      const kWhere = at(p.key as Node);
      const v = p.value as Node | null;
      const empty = v === null || (isScalar(v) && v.value === null);
      if (k === 'vars') {
        if (empty) continue;
        if (!isMap(v)) throw new UsageError(`${kWhere}: ${name}.vars: expected a mapping of variables`);
        Object.assign(g.vars, v.toJSON() as Record<string, unknown>);
      } else if (k === 'hosts') {
        if (empty) continue;
        if (!isMap(v)) throw new UsageError(`${kWhere}: ${name}.hosts: expected a mapping of host names (each with its variables or nothing)`);
        for (const hp of v.items) {
          const hWhere = at(hp.key as Node);
          const host = keyOf(hp, hWhere);
          const hv = hp.value as Node | null;
          let vars: Record<string, unknown> = {};
          if (hv !== null && !(isScalar(hv) && hv.value === null)) {
            if (!isMap(hv)) throw new UsageError(`${hWhere}: ${name}.hosts.${host}: expected the host's variables as a mapping (or nothing)`);
            vars = hv.toJSON() as Record<string, unknown>;
          }
          const hLine = Number(hWhere.slice(hWhere.lastIndexOf(':') + 1));
          expandHostPattern(host, (h) => addHost(inv, name, h, vars, hLine, hWhere), hWhere);
        }
      } else if (k === 'children') {
        if (empty) continue;
        if (!isMap(v)) throw new UsageError(`${kWhere}: ${name}.children: expected a mapping of groups`);
        for (const cp of v.items) {
          const cWhere = at(cp.key as Node);
          const child = keyOf(cp, cWhere);
          walkGroup(child, cp.value, cWhere);
          g.children.add(child);
        }
      } else {
        throw new UsageError(`${kWhere}: group "${name}": unknown key "${k}": expected hosts, children or vars`);
      }
    }
  };
  const root = src.doc.contents;
  if (!isMap(root)) throw new UsageError(`${src.file}:1: expected groups at the top level`);
  for (const p of root.items) {
    const where = at(p.key as Node);
    const name = keyOf(p, where);
    walkGroup(name, p.value, where);
  }
  checkCycles(inv, src.file);
  return inv;
}

function checkCycles(inv: Inventory, file: string): void {
  const state = new Map<string, 1 | 2>();
  const visit = (name: string, path: string[]): void => {
    if (state.get(name) === 2) return;
    if (state.get(name) === 1) throw new UsageError(`${file}:${inv.groups.get(name)?.line ?? 1}: group "${name}" is its own descendant (${[...path, name].join(' → ')})`);
    state.set(name, 1);
    for (const c of inv.groups.get(name)?.children ?? []) visit(c, [...path, name]);
    state.set(name, 2);
  };
  for (const name of inv.groups.keys()) visit(name, []);
}

// ----------------------------------------------------------------------------------- resolution

/** Depth of every group below `all` (the longest path), as Ansible sorts groups when merging vars. */
function depths(inv: Inventory): Map<string, number> {
  const parents = parentMap(inv);
  const memo = new Map<string, number>();
  const depth = (name: string): number => {
    if (name === 'all') return 0;
    const known = memo.get(name);
    if (known !== undefined) return known;
    const d = 1 + Math.max(0, ...(parents.get(name) ?? []).map(depth));
    memo.set(name, d);
    return d;
  };
  for (const name of inv.groups.keys()) depth(name);
  return memo;
}

/** Every group a host is in: its own, their ancestors, and `all` (plus `ungrouped` when it has no other). */
function hostGroups(inv: Inventory, parents: Map<string, string[]>, host: string): Set<string> {
  const out = new Set<string>(['all']);
  const direct = inv.hosts.get(host)?.groups ?? new Set<string>();
  const stack = [...direct];
  if (direct.size === 0) out.add('ungrouped');
  while (stack.length > 0) {
    const g = stack.pop()!;
    if (out.has(g)) continue;
    out.add(g);
    for (const p of parents.get(g) ?? []) stack.push(p);
  }
  return out;
}

function parentMap(inv: Inventory): Map<string, string[]> {
  const parents = new Map<string, string[]>();
  for (const [name, g] of inv.groups) for (const c of g.children) parents.set(c, [...(parents.get(c) ?? []), name]);
  return parents;
}

/** A host's variables: `all`, then its groups by depth then name, then its own. */
export function hostVars(inv: Inventory, host: string, ctx: { d: Map<string, number>; parents: Map<string, string[]> } = { d: depths(inv), parents: parentMap(inv) }): Record<string, unknown> {
  const d = ctx.d;
  const groups = [...hostGroups(inv, ctx.parents, host)].sort((a, b) => (d.get(a) ?? (a === 'all' ? 0 : 1)) - (d.get(b) ?? (b === 'all' ? 0 : 1)) || a.localeCompare(b));
  const vars: Record<string, unknown> = {};
  for (const g of groups) Object.assign(vars, inv.groups.get(g)?.vars ?? {});
  return Object.assign(vars, inv.hosts.get(host)?.vars ?? {});
}

function allHosts(inv: Inventory): string[] {
  return [...inv.hosts.keys()];
}

// -------------------------------------------------------------------------------------- --limit

/** Ansible's host patterns: `a:b` or `a,b` (union), `&g` (intersection), `!g` (exclusion), globs
 * (`web*`, `node0?`), `~regex`; each term a host or group name. Unions first, then intersections,
 * then exclusions, as Ansible orders them. Hosts keep their inventory order. */
export function selectHosts(inv: Inventory, pattern: string): string[] {
  const terms = (pattern.includes(',') ? pattern.split(',') : pattern.split(':')).map((t) => t.trim()).filter((t) => t !== '');
  if (terms.length === 0) throw new UsageError(`--limit "${pattern}": empty pattern`);
  const membersCache = new Map<string, Set<string>>();
  const groupMembers = (g: string): Set<string> => {
    let m = membersCache.get(g);
    if (m) return m;
    m = new Set();
    if (g === 'all') for (const h of inv.hosts.keys()) m.add(h);
    else if (g === 'ungrouped') {
      for (const [h, v] of inv.hosts) if (v.groups.size === 0) m.add(h);
    } else {
      const stack = [g];
      const seen = new Set<string>();
      while (stack.length > 0) {
        const cur = stack.pop()!;
        if (seen.has(cur)) continue;
        seen.add(cur);
        const grp = inv.groups.get(cur);
        for (const h of grp?.hosts ?? []) m.add(h);
        for (const c of grp?.children ?? []) stack.push(c);
      }
    }
    membersCache.set(g, m);
    return m;
  };
  const match = (term: string): Set<string> => {
    const out = new Set<string>();
    let test: (name: string) => boolean;
    if (term.startsWith('~')) {
      let re: RegExp;
      try {
        re = new RegExp(term.slice(1));
      } catch {
        throw new UsageError(`--limit: bad regular expression "${term.slice(1)}"`);
      }
      test = (n) => re.test(n);
    } else if (/[*?[]/.test(term)) {
      const re = new RegExp(`^${term.replace(/[.+^${}()|\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`);
      test = (n) => re.test(n);
    } else {
      test = (n) => n === term;
    }
    for (const g of new Set(['all', 'ungrouped', ...inv.groups.keys()])) if (test(g)) for (const h of groupMembers(g)) out.add(h);
    for (const h of inv.hosts.keys()) if (test(h)) out.add(h);
    return out;
  };
  const unions = terms.filter((t) => !t.startsWith('&') && !t.startsWith('!'));
  let selected = new Set<string>();
  for (const t of unions.length > 0 ? unions : ['all']) for (const h of match(t)) selected.add(h);
  for (const t of terms.filter((x) => x.startsWith('&'))) {
    const m = match(t.slice(1));
    selected = new Set([...selected].filter((h) => m.has(h)));
  }
  for (const t of terms.filter((x) => x.startsWith('!'))) for (const h of match(t.slice(1))) selected.delete(h);
  const out: string[] = [];
  for (const h of inv.hosts.keys()) if (selected.has(h)) out.push(h);
  if (out.length === 0) throw new UsageError(`--limit "${pattern}" matches no host in the inventory: name hosts or groups it has (globs, a:b, &group, !group)`);
  return out;
}

// ------------------------------------------------------------------------------------- to specs

const str = (v: unknown): string | undefined => (v === undefined || v === null ? undefined : typeof v === 'string' ? v : JSON.stringify(v));

/** Hosts (by name) to specs: ansible_host/user/port/ssh_private_key_file, ansible_connection=local,
 * and prep_node_profile for the profile. */
function toSpecs(inv: Inventory, names: string[], file: string): HostSpec[] {
  const out: HostSpec[] = [];
  if (inv.specs) {
    for (const n of names) out.push(inv.specs.get(n)!);
    return out;
  }
  if (names.length === 0) throw new UsageError(`${file}: the inventory has no hosts`);
  const ctx = { d: depths(inv), parents: parentMap(inv) };
  for (const name of names) {
    const v = hostVars(inv, name, ctx);
    const where = `${file}:${inv.hosts.get(name)?.line ?? 1}`;
    if (v.ansible_connection === 'local' || name === 'local') {
      out.push({ target: parseTarget('local'), ...(str(v.prep_node_profile) && { profile: str(v.prep_node_profile)! }) });
      continue;
    }
    const address = str(v.ansible_host ?? v.ansible_ssh_host) ?? name;
    const user = str(v.ansible_user ?? v.ansible_ssh_user);
    const rawPort = v.ansible_port ?? v.ansible_ssh_port;
    let portNo: number | undefined;
    if (rawPort !== undefined && rawPort !== null) {
      portNo = typeof rawPort === 'number' ? rawPort : Number(rawPort);
      if (!Number.isInteger(portNo) || portNo < 1 || portNo > 65535) throw new UsageError(`${where}: ${name}: ansible_port "${str(rawPort) ?? ''}" is not a number from 1 to 65535`);
    }
    let t: Target;
    try {
      t = parseTarget(address.includes(':') && !address.startsWith('[') ? `[${address}]` : address);
    } catch (err) {
      throw new UsageError(`${where}: ${name}: ${err instanceof Error ? err.message : String(err)}`);
    }
    if (user !== undefined && !/^[A-Za-z0-9._][A-Za-z0-9._-]*$/.test(user)) throw new UsageError(`${where}: ${name}: invalid ansible_user "${user}"`);
    const target: Target = { ...t, spec: name, ...(user && { user }), ...(portNo && { port: portNo }) };
    const key = str(v.ansible_ssh_private_key_file ?? v.ansible_private_key_file);
    const profile = str(v.prep_node_profile);
    if (key) target.identityFile = key;
    out.push({ target, ...(profile && { profile }) });
  }
  return out;
}
