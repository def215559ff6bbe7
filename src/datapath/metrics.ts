// `datapath metrics`: the datapath's counters in the Prometheus text exposition format (0.0.4), and
// the node-side script `install --metrics-textfile DIR` leaves running for node_exporter's textfile
// collector. Both read the same two loader outputs (`status`, `dump drop_counters`) and print the same
// text: the TypeScript renderer here, and an awk program generated from the same metric table (the
// node has no Node.js). test/unit/datapath-metrics.test.ts runs both on one input and compares.
//
// What there is: drops by reason (packets and bytes), forwarded traffic by service (svc_counters:
// packets and bytes the tc program NATed, both directions; connections the socket programs
// translated, whose bytes no program of ours sees), lost events, map fill levels, attachment.
// Services are named from the index sync leaves on the node (observe.ts, NAMES_PATH); a service
// the index does not know has service="" and its svc_id.
import { DROP_REASONS } from './drop-reasons.js';
import type { StatusDoc } from './loader.js';
import { NAMES_PATH, type NamesIndex } from './observe.js';
import { shQuote, type Host } from '../host/host.js';
import { NodeRefusal } from '../errors.js';

export const METRICS_FILE = 'prep_node_datapath.prom';

interface Family {
  name: string;
  type: 'gauge' | 'counter';
  help: string;
}

/** Every metric family, in output order (HELP and TYPE lines come from here for both renderers). */
export const FAMILIES = {
  up: { name: 'prep_node_datapath_up', type: 'gauge', help: 'Whether the prep-node datapath is installed (programs loaded, maps pinned).' },
  drops: { name: 'prep_node_datapath_drops_total', type: 'counter', help: 'Packets dropped (or socket calls rejected) by the datapath, by reason (bpf/include/drop_reasons.h).' },
  dropBytes: { name: 'prep_node_datapath_drop_bytes_total', type: 'counter', help: 'Bytes of the packets dropped by the datapath, by reason (0 for rejected socket calls).' },
  fwdPackets: { name: 'prep_node_datapath_forwarded_packets_total', type: 'counter', help: 'Packets the tc program forwarded to or from a service backend (NATed, both directions), by service.' },
  fwdBytes: { name: 'prep_node_datapath_forwarded_bytes_total', type: 'counter', help: 'Bytes of the packets the tc program forwarded to or from a service backend, by service.' },
  connections: { name: 'prep_node_datapath_service_connections_total', type: 'counter', help: 'Connections translated to a service backend at the socket (connect(), new socket-backend pairs of sendmsg()); their bytes are not counted.' },
  lost: { name: 'prep_node_datapath_events_lost_total', type: 'counter', help: 'Events (drops, forwarded flows) the datapath could not queue because the ring buffer was full.' },
  entries: { name: 'prep_node_datapath_map_entries', type: 'gauge', help: 'Entries in each datapath map (arrays: their size).' },
  capacity: { name: 'prep_node_datapath_map_capacity', type: 'gauge', help: 'max_entries of each datapath map (ring buffer: bytes).' },
  attached: { name: 'prep_node_datapath_program_attached', type: 'gauge', help: 'Whether each datapath program is attached where the install put it.' },
} as const satisfies Record<string, Family>;

function header(f: Family): string[] {
  return [`# HELP ${f.name} ${f.help}`, `# TYPE ${f.name} ${f.type}`];
}

/** A label value escaped as the exposition format wants (backslash, double quote, newline). */
export function escapeLabel(s: string): string {
  return s.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** `dump drop_counters`: reason (u32 key) → packets and bytes (two u64 words, summed over CPUs), little-endian. */
export function parseDropCounters(dump: string): Map<number, { packets: bigint; bytes: bigint }> {
  const out = new Map<number, { packets: bigint; bytes: bigint }>();
  for (const line of dump.split('\n')) {
    const m = /^([0-9a-f]{8}) ([0-9a-f]{32})$/i.exec(line.trim());
    if (!m) continue;
    const key = Buffer.from(m[1]!, 'hex').readUInt32LE(0);
    const v = Buffer.from(m[2]!, 'hex');
    out.set(key, { packets: v.readBigUInt64LE(0), bytes: v.readBigUInt64LE(8) });
  }
  return out;
}

export interface SvcCounter {
  svcId: number;
  packets: bigint;
  bytes: bigint;
  connections: bigint;
}

/** `dump svc_counters`: svc_id (u32 key) → packets, bytes, connections (three u64 words summed over CPUs), in dump order. */
export function parseSvcCounters(dump: string): SvcCounter[] {
  const out: SvcCounter[] = [];
  for (const line of dump.split('\n')) {
    const m = /^([0-9a-f]{8}) ([0-9a-f]{48})$/i.exec(line.trim());
    if (!m) continue;
    const v = Buffer.from(m[2]!, 'hex');
    out.push({ svcId: Buffer.from(m[1]!, 'hex').readUInt32LE(0), packets: v.readBigUInt64LE(0), bytes: v.readBigUInt64LE(8), connections: v.readBigUInt64LE(16) });
  }
  return out;
}

type Program = { name: string; attach?: string | undefined; attached?: unknown };

/**
 * The exposition text from the loader's status document, its drop_counters and svc_counters dumps,
 * and the node's names index (for service names; null: none).
 */
export function renderMetrics(status: StatusDoc, dropCountersDump: string, svcCountersDump = '', names: NamesIndex | null = null): string {
  const lines: string[] = [...header(FAMILIES.up), `${FAMILIES.up.name} ${status.installed ? 1 : 0}`];
  if (!status.installed) return lines.join('\n') + '\n';
  const counters = parseDropCounters(dropCountersDump);
  for (const [fam, pick] of [
    [FAMILIES.drops, 'packets'],
    [FAMILIES.dropBytes, 'bytes'],
  ] as const) {
    lines.push(...header(fam));
    for (const r of DROP_REASONS) lines.push(`${fam.name}{reason="${r.name}",code="${r.num}"} ${counters.get(r.num)?.[pick] ?? 0n}`);
  }
  const svcs = parseSvcCounters(svcCountersDump);
  for (const [fam, pick] of [
    [FAMILIES.fwdPackets, 'packets'],
    [FAMILIES.fwdBytes, 'bytes'],
    [FAMILIES.connections, 'connections'],
  ] as const) {
    lines.push(...header(fam));
    for (const c of svcs) lines.push(`${fam.name}{service="${escapeLabel(names?.services[String(c.svcId)]?.name ?? '')}",svc_id="${c.svcId}"} ${c[pick]}`);
  }
  const lost = (status as { events_lost?: unknown }).events_lost;
  lines.push(...header(FAMILIES.lost), `${FAMILIES.lost.name} ${typeof lost === 'number' ? lost : 0}`);
  lines.push(...header(FAMILIES.entries));
  for (const m of status.maps) if (typeof m.entries === 'number') lines.push(`${FAMILIES.entries.name}{map="${escapeLabel(m.name)}"} ${m.entries}`);
  lines.push(...header(FAMILIES.capacity));
  for (const m of status.maps) if (typeof m.max_entries === 'number') lines.push(`${FAMILIES.capacity.name}{map="${escapeLabel(m.name)}"} ${m.max_entries}`);
  lines.push(...header(FAMILIES.attached));
  for (const p of status.programs as Program[]) lines.push(`${FAMILIES.attached.name}{program="${escapeLabel(p.name)}",attach="${escapeLabel(p.attach ?? '')}"} ${p.attached === false ? 0 : 1}`);
  return lines.join('\n') + '\n';
}

// ------------------------------------------------------------------------------ the textfile writer

/** Where the node keeps the writer script and its settings. */
export const TEXTFILE_SCRIPT = '/var/lib/prep-node/datapath/metrics-textfile.sh';
export const TEXTFILE_UNIT = 'prep-node-dp-metrics.service';
export const TEXTFILE_PIDFILE = '/run/prep-node-dp-metrics.pid';

/**
 * awk: status JSON (one line, as the loader's JSON writer prints it: no spaces) on the first input
 * line, then optionally the names index (one JSON line, as writeNames writes it), then
 * `dump drop_counters` and `dump svc_counters` lines (told apart by value length) → the same text
 * renderMetrics gives. Service names are taken from the index's JSON string as it is: JSON and the
 * exposition format escape backslash, double quote and newline the same way.
 */
export function metricsAwk(): string {
  const h = (f: Family) => `print "# HELP ${f.name} ${f.help}"; print "# TYPE ${f.name} ${f.type}"`;
  const reasons = DROP_REASONS.map((r) => `rn[${r.num}] = "${r.name}"`).join('; ');
  const order = DROP_REASONS.map((r) => r.num).join(' ');
  return `
function hexle(s,   i, v, n) { v = 0; n = length(s); for (i = n - 1; i >= 1; i -= 2) v = v * 256 + hexd(substr(s, i, 1)) * 16 + hexd(substr(s, i + 1, 1)); return v }
function hexd(c) { return index("0123456789abcdef", tolower(c)) - 1 }
function field(obj, key,   m) { if (match(obj, "\\"" key "\\":(\\"([^\\"\\\\\\\\]|\\\\\\\\.)*\\"|[^,}]*)")) { m = substr(obj, RSTART + length(key) + 3, RLENGTH - length(key) - 3); if (substr(m, 1, 1) == "\\"") m = substr(m, 2, length(m) - 2); return m } return "" }
function section(s, key,   start, depth, i, c, instr) {
  start = index(s, "\\"" key "\\":["); if (!start) return ""
  start += length(key) + 4; depth = 1; instr = 0
  for (i = start; i <= length(s); i++) { c = substr(s, i, 1)
    if (instr) { if (c == "\\\\") i++; else if (c == "\\"") instr = 0; continue }
    if (c == "\\"") instr = 1; else if (c == "[") depth++; else if (c == "]") { depth--; if (!depth) return substr(s, start, i - start) } }
  return ""
}
function objects(s, out,   n, depth, i, c, instr, start) {
  n = 0; depth = 0; instr = 0
  for (i = 1; i <= length(s); i++) { c = substr(s, i, 1)
    if (instr) { if (c == "\\\\") i++; else if (c == "\\"") instr = 0; continue }
    if (c == "\\"") instr = 1; else if (c == "{") { if (!depth) start = i; depth++ } else if (c == "}") { depth--; if (!depth) out[++n] = substr(s, start, i - start + 1) } }
  return n
}
function svcname(id,   rest, p) {
  p = index(names, "\\"services\\":{"); if (!p) return ""
  rest = substr(names, p + 12)
  if (match(rest, "\\"" id "\\":\\\\{\\"name\\":\\"([^\\"\\\\\\\\]|\\\\\\\\.)*\\"")) return substr(rest, RSTART + length(id) + 12, RLENGTH - length(id) - 13)
  return ""
}
NR == 1 { status = $0; next }
/^\\{/ { names = $0; next }
NF == 2 && length($1) == 8 && length($2) == 32 { k = hexle($1); pk[k] = hexle(substr($2, 1, 16)); by[k] = hexle(substr($2, 17, 16)) }
NF == 2 && length($1) == 8 && length($2) == 48 { ns++; sid[ns] = hexle($1); sp[ns] = hexle(substr($2, 1, 16)); sb[ns] = hexle(substr($2, 17, 16)); sc[ns] = hexle(substr($2, 33, 16)) }
END {
  ${reasons}
  ${h(FAMILIES.up)}
  if (status !~ /"installed":true/) { print "${FAMILIES.up.name} 0"; exit }
  print "${FAMILIES.up.name} 1"
  split("${order}", ord, " ")
  ${h(FAMILIES.drops)}
  for (i = 1; i in ord; i++) printf "${FAMILIES.drops.name}{reason=\\"%s\\",code=\\"%d\\"} %.0f\\n", rn[ord[i]], ord[i], pk[ord[i]] + 0
  ${h(FAMILIES.dropBytes)}
  for (i = 1; i in ord; i++) printf "${FAMILIES.dropBytes.name}{reason=\\"%s\\",code=\\"%d\\"} %.0f\\n", rn[ord[i]], ord[i], by[ord[i]] + 0
  for (i = 1; i <= ns; i++) sn[i] = svcname(sprintf("%.0f", sid[i]))
  ${h(FAMILIES.fwdPackets)}
  for (i = 1; i <= ns; i++) printf "${FAMILIES.fwdPackets.name}{service=\\"%s\\",svc_id=\\"%.0f\\"} %.0f\\n", sn[i], sid[i], sp[i]
  ${h(FAMILIES.fwdBytes)}
  for (i = 1; i <= ns; i++) printf "${FAMILIES.fwdBytes.name}{service=\\"%s\\",svc_id=\\"%.0f\\"} %.0f\\n", sn[i], sid[i], sb[i]
  ${h(FAMILIES.connections)}
  for (i = 1; i <= ns; i++) printf "${FAMILIES.connections.name}{service=\\"%s\\",svc_id=\\"%.0f\\"} %.0f\\n", sn[i], sid[i], sc[i]
  ${h(FAMILIES.lost)}
  v = field(status, "events_lost"); print "${FAMILIES.lost.name} " (v == "" ? 0 : v)
  nm = objects(section(status, "maps"), maps)
  ${h(FAMILIES.entries)}
  for (i = 1; i <= nm; i++) { v = field(maps[i], "entries"); if (v != "") print "${FAMILIES.entries.name}{map=\\"" field(maps[i], "name") "\\"} " v }
  ${h(FAMILIES.capacity)}
  for (i = 1; i <= nm; i++) { v = field(maps[i], "max_entries"); if (v != "") print "${FAMILIES.capacity.name}{map=\\"" field(maps[i], "name") "\\"} " v }
  np = objects(section(status, "programs"), progs)
  ${h(FAMILIES.attached)}
  for (i = 1; i <= np; i++) print "${FAMILIES.attached.name}{program=\\"" field(progs[i], "name") "\\",attach=\\"" field(progs[i], "attach") "\\"} " (field(progs[i], "attached") == "false" ? 0 : 1)
}
`;
}

/**
 * Shell: `dir_ok` checks $DIR before root writes in it (the textfile writer before every write, and
 * `install --metrics-textfile` before anything is installed). One copy, so both refuse alike.
 */
export const TEXTFILE_DIR_CHECK = `# The writer is root and DIR may be another account's (node_exporter's often is): a file name
# that account can predict or replace would let it point root's write at any file. So DIR must be
# root's and writable by nobody else (a sticky root directory such as /tmp is fine: others cannot
# touch our files there), checked before every write; the temp file comes from mktemp (O_EXCL,
# random name) and is renamed over OUT (rename replaces a planted link, never follows it).
dir_ok() {
  set -- $(stat -L -c '%u %a' "$DIR" 2>/dev/null) || true
  if [ $# -ne 2 ]; then echo "prep-node metrics: refusing textfile directory $DIR: it does not exist" >&2; return 1; fi
  if [ "$1" != "$(id -u)" ]; then echo "prep-node metrics: refusing textfile directory $DIR: owned by uid $1, not by uid $(id -u) (chown it to root, or pick a directory only root can write)" >&2; return 1; fi
  if [ $((0$2 & 022)) -ne 0 ] && [ $((0$2 & 01000)) -eq 0 ]; then echo "prep-node metrics: refusing textfile directory $DIR: writable by group or others and not sticky (chmod go-w it)" >&2; return 1; fi
}`;

/**
 * The node-side writer: `sh metrics-textfile.sh once` writes DIR/prep_node_datapath.prom once (to a
 * temporary file first, then renamed: node_exporter never reads half a file); `loop` does it every
 * interval seconds until killed.
 */
export function textfileScript(o: { bin: string; dir: string; intervalSeconds: number }): string {
  return `#!/bin/sh
# prep-node datapath metrics for node_exporter's textfile collector (generated by prep-node; do not edit)
set -u
DP=${shQuote(o.bin)}
DIR=${shQuote(o.dir)}
INTERVAL=${o.intervalSeconds}
OUT="$DIR/${METRICS_FILE}"

${TEXTFILE_DIR_CHECK}
write_once() {
  dir_ok || return 1
  tmp=$(mktemp "$OUT.tmp.XXXXXX") || return 1
  if { "$DP" status 2>/dev/null | head -n 1 || echo '{}'; head -n 1 ${NAMES_PATH} 2>/dev/null; "$DP" dump drop_counters 2>/dev/null; "$DP" dump svc_counters 2>/dev/null; } | awk ${shQuote(metricsAwk())} >"$tmp" && chmod 0644 "$tmp" && mv -f "$tmp" "$OUT"; then return 0; fi
  rm -f "$tmp"; return 1
}

case "\${1:-once}" in
  once) write_once || exit 1 ;;
  loop)
    [ -n "\${2:-}" ] && echo $$ >"$2"
    trap 'rm -f "$OUT".tmp.*; exit 0' TERM INT HUP
    while :; do write_once; sleep "$INTERVAL" & wait $!; done ;;
  *) echo "usage: $0 once|loop [pidfile]" >&2; exit 2 ;;
esac
`;
}

/** The systemd unit that keeps the writer running (nodes with systemd). */
export function textfileUnit(): string {
  return `# prep-node datapath metrics for node_exporter's textfile collector (generated by prep-node)
[Unit]
Description=prep-node datapath metrics for node_exporter's textfile collector

[Service]
ExecStart=/bin/sh ${TEXTFILE_SCRIPT} loop
Restart=always
RestartSec=5

[Install]
WantedBy=multi-user.target
`;
}

/** Where the writer runs: a systemd service, or (no systemd) a background process with a pid file. */
export interface TextfileResult {
  file: string;
  runner: 'systemd' | 'background';
  intervalSeconds: number;
}

/** Refuse a textfile directory another account could use to redirect root's writes (before any install step). */
export async function checkTextfileDir(host: Host, dir: string): Promise<void> {
  const r = await host.run(`DIR=${shQuote(dir)}\n${TEXTFILE_DIR_CHECK}\nif [ -e "$DIR" ]; then dir_ok; fi`, { sudo: true });
  if (r.code !== 0) throw new NodeRefusal(host.name, `--metrics-textfile: ${(r.stderr.trim().split('\n').pop() ?? '').replace(/^prep-node metrics: /, '')}`);
}

/** Install the textfile writer on the node (replacing one that runs), write the file once, start it. */
export async function installTextfile(host: Host, o: { bin: string; dir: string; intervalSeconds: number }): Promise<TextfileResult> {
  await removeTextfile(host, { keepFile: true });
  await host.exec(`mkdir -p -m 0755 /var/lib/prep-node/datapath ${shQuote(o.dir)}`, { sudo: true });
  await host.writeFile(TEXTFILE_SCRIPT, textfileScript(o), { sudo: true, mode: 0o755 });
  const file = `${o.dir.replace(/\/+$/, '')}/${METRICS_FILE}`;
  await host.exec(`/bin/sh ${TEXTFILE_SCRIPT} once && test -s ${shQuote(file)}`, { sudo: true });
  const systemd = (await host.run('test -d /run/systemd/system')).code === 0;
  if (systemd) {
    await host.writeFile(`/etc/systemd/system/${TEXTFILE_UNIT}`, textfileUnit(), { sudo: true, mode: 0o644 });
    await host.exec(`systemctl daemon-reload && systemctl enable ${TEXTFILE_UNIT} && systemctl restart ${TEXTFILE_UNIT}`, { sudo: true });
  } else {
    await host.exec(`setsid /bin/sh ${TEXTFILE_SCRIPT} loop ${TEXTFILE_PIDFILE} </dev/null >/dev/null 2>&1 &`, { sudo: true });
  }
  return { file, runner: systemd ? 'systemd' : 'background', intervalSeconds: o.intervalSeconds };
}

/** Stop the writer, remove it and (unless keepFile) the metrics file it kept. Idempotent. */
export async function removeTextfile(host: Host, o: { keepFile?: boolean } = {}): Promise<boolean> {
  const unit = `/etc/systemd/system/${TEXTFILE_UNIT}`;
  const script = `
found=0
if [ -f ${unit} ]; then found=1; systemctl disable --now ${TEXTFILE_UNIT} >/dev/null 2>&1; rm -f ${unit}; systemctl daemon-reload >/dev/null 2>&1; fi
if [ -f ${TEXTFILE_PIDFILE} ]; then found=1; pid=$(cat ${TEXTFILE_PIDFILE}); case "$pid" in ''|*[!0-9]*) ;; *) kill "$pid" 2>/dev/null ;; esac; rm -f ${TEXTFILE_PIDFILE}; fi
if [ -f ${TEXTFILE_SCRIPT} ]; then
  found=1
  ${o.keepFile ? ':' : `out=$(sh -c "$(grep '^OUT=\\|^DIR=' ${TEXTFILE_SCRIPT}); printf %s \\"\\$OUT\\"") && [ -n "$out" ] && rm -f "$out"`}
  rm -f ${TEXTFILE_SCRIPT}
fi
echo "found=$found"`;
  const r = await host.run(script, { sudo: true });
  return r.stdout.includes('found=1');
}
