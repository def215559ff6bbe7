// The bench document for people: a table on stdout, and the Markdown report with SVG plots.
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { MODE_IDS, type BenchDocument, type BenchResult, type Figure, type PacketSection } from './schema.js';
import { spread } from './stats.js';
import { renderChart, shortNumber, type Series } from './svg.js';

const LABEL: Record<string, string> = {
  direct: 'direct',
  'prepnode-sock': 'prep-node sock',
  'prepnode-tc': 'prep-node tc',
  'iptables-nft': 'iptables-nft',
  'iptables-legacy': 'iptables-legacy',
  nftables: 'nftables',
};

export function modeName(id: string): string {
  return LABEL[id] ?? id;
}

export function fmtMs(ms: number): string {
  if (ms >= 60_000) return `${Math.floor(ms / 60_000)}m${String(Math.round((ms % 60_000) / 1000)).padStart(2, '0')}s`;
  if (ms >= 10_000) return `${(ms / 1000).toFixed(0)} s`;
  if (ms >= 1000) return `${(ms / 1000).toFixed(2)} s`;
  if (ms >= 100) return `${ms.toFixed(0)} ms`;
  if (ms >= 10) return `${ms.toFixed(1)} ms`;
  return `${ms.toFixed(2)} ms`;
}

export function fmtBytes(b: number): string {
  if (b >= 1 << 30) return `${(b / 2 ** 30).toFixed(2)} GiB`;
  if (b >= 1 << 20) return `${(b / 2 ** 20).toFixed(1)} MiB`;
  if (b >= 1 << 10) return `${(b / 2 ** 10).toFixed(0)} KiB`;
  return `${b} B`;
}

function fmtUs(us: number): string {
  return us >= 1000 ? `${(us / 1000).toFixed(us >= 10_000 ? 0 : 1)} ms` : `${us.toFixed(us >= 100 ? 0 : 1)} µs`;
}

/** "12.3k ±4%" */
function withSpread(f: Figure, fmt: (v: number) => string): string {
  const s = spread(f);
  return `${fmt(f.median)} ±${s >= 0.995 ? Math.round(s * 100) : s >= 0.1 ? Math.round(s * 100) : (s * 100).toFixed(s >= 0.01 ? 0 : 1)}%`;
}

/** "12.3k (11.9k–12.8k)" */
function withRange(f: Figure, fmt: (v: number) => string): string {
  return f.runs.length > 1 ? `${fmt(f.median)} (${fmt(f.min)}–${fmt(f.max)})` : fmt(f.median);
}

function memory(r: BenchResult): string {
  const m = r.memory;
  if (!m) return '–';
  const k = m.kernelBytes === null ? 'n/a' : `+${fmtBytes(m.kernelBytes)}`;
  return m.mapsBytes !== undefined ? `${k} (maps ${fmtBytes(m.serviceMapsBytes ?? 0)} / ${fmtBytes(m.mapsBytes)})` : k;
}

interface Row {
  cells: string[];
  note?: string;
}

const HEAD = ['services', 'mode', 'conn/s', 'vs direct', 'p50', 'p99', 'sys/conn', 'program all', 'add one', 'remove one', 'kernel memory'];

function rows(doc: BenchDocument, fmt: (f: Figure, v: (x: number) => string) => string): Row[] {
  const out: Row[] = [];
  for (const r of doc.results) {
    const base = [r.services.toLocaleString('en-US'), modeName(r.mode)];
    if (r.status !== 'ok' && !r.connect && !r.programMs) {
      out.push({ cells: [...base, ...HEAD.slice(2).map(() => '')], note: `${r.status}: ${r.reason ?? ''}` });
      continue;
    }
    const c = r.connect;
    out.push({
      cells: [
        ...base,
        c ? fmt(c.perSec, shortNumber) : '–',
        r.vsDirect === null ? '–' : `${Math.round(r.vsDirect * 100)}%`,
        c ? fmt(c.p50Us, fmtUs) : '–',
        c ? fmt(c.p99Us, fmtUs) : '–',
        c ? fmt(c.sysUsPerConn, fmtUs) : '–',
        r.programMs ? fmt(r.programMs, fmtMs) : '–',
        r.addMs ? fmt(r.addMs, fmtMs) : '–',
        r.removeMs ? fmt(r.removeMs, fmtMs) : '–',
        memory(r),
      ],
      ...(r.status !== 'ok' ? { note: `${r.status}: ${r.reason ?? ''}` } : {}),
    });
  }
  return out;
}

function machineLine(doc: BenchDocument): string {
  const m = doc.machine;
  return `${m.cpus} × ${m.cpuModel}${m.virtualization && m.virtualization !== 'none' ? ` (${m.virtualization})` : ''}, ${fmtBytes(m.memoryBytes)}, Linux ${m.kernel}, ${m.os}; load average ${m.loadavgStart[0]} at start, ${m.loadavgEnd[0]} at end`;
}

/** The table for a terminal: medians ± half the min-max range. */
export function renderText(doc: BenchDocument): string {
  const lines: string[] = [];
  lines.push(`prep-node bench: ${machineLine(doc)}`);
  lines.push(`${doc.config.runs} runs per figure (median ±half the min-max range), ${doc.config.durationMs} ms of connections per run, ${doc.config.endpointsPerService} endpoints per service`);
  for (const m of doc.modes.filter((x) => !x.available)) lines.push(`${modeName(m.id)}: unavailable: ${m.reason ?? ''}`);
  lines.push('');
  const rs = rows(doc, withSpread);
  const widths = HEAD.map((h, i) => Math.max(h.length, ...rs.map((r) => r.cells[i]!.length)));
  const right = new Set([0, 2, 3, 4, 5, 6, 7, 8, 9]);
  const fmtRow = (cells: string[]) => cells.map((c, i) => (right.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd();
  lines.push(fmtRow(HEAD));
  let size = -1;
  for (const [i, r] of rs.entries()) {
    const s = doc.results[i]!.services;
    if (size !== -1 && s !== size) lines.push('');
    size = s;
    if (r.note && r.cells.slice(2).every((c) => c === '')) lines.push(`${fmtRow(r.cells.slice(0, 2).concat(HEAD.slice(2).map(() => ''))).trimEnd()}  ${r.note}`);
    else {
      lines.push(fmtRow(r.cells));
      if (r.note) lines.push(`${' '.repeat(widths[0]! + 2)}${r.note}`);
    }
  }
  lines.push('');
  lines.push('kernel memory: charged to the memory cgroup of the programming command; prep-node also: (service maps / all maps) as the kernel accounts them.');
  if (doc.packets) {
    lines.push('');
    lines.push('per packet: tc_lb through BPF_PROG_TEST_RUN, the kernel\'s duration (median of the runs, (min–max))');
    lines.push(renderPacketTable(doc.packets).trimEnd());
    for (const g of packetGrowth(doc.packets)) lines.push(g);
  }
  return `${lines.join('\n')}\n`;
}

/** The table as Markdown: medians with (min–max). */
export function renderMarkdownTable(doc: BenchDocument): string {
  const rs = rows(doc, withRange);
  const lines = [`| ${HEAD.join(' | ')} |`, `|${HEAD.map((_, i) => (i === 1 ? ':--' : '--:')).join('|')}|`];
  for (const r of rs) {
    const cells = r.note && r.cells.slice(2).every((c) => c === '') ? [...r.cells.slice(0, 2), r.note, ...HEAD.slice(3).map(() => '')] : r.cells;
    lines.push(`| ${cells.map((c) => c.replace(/\|/g, '\\|')).join(' | ')} |`);
  }
  return `${lines.join('\n')}\n`;
}

// ---------------------------------------------------------------- per packet

const PKT_HEAD = ['services', 'case', 'family', 'how', 'ns/packet', 'over the floor', 'return codes', 'first output'];

const fmtNs = (f: Figure) => (f.runs.length > 1 ? `${f.median} (${f.min}–${f.max})` : `${f.median}`);

/** One row per size and case, the floors first; growth from the smallest to the largest size. */
export function renderPacketTable(p: PacketSection): string {
  const lines = [`| ${PKT_HEAD.join(' | ')} |`, '|--:|:--|:--|:--|--:|--:|:--|:--|'];
  for (const r of p.results) {
    if (r.status !== 'ok' || !r.floor) {
      lines.push(`| ${r.services.toLocaleString('en-US')} | ${r.status}: ${(r.reason ?? '').replace(/\|/g, '\\|')} |  |  |  |  |  |  |`);
      continue;
    }
    const n = r.services.toLocaleString('en-US');
    lines.push(`| ${n} | floor (returns TC_ACT_OK) | – | repeat ${p.config.repeat.toLocaleString('en-US')} | ${fmtNs(r.floor.repeatNs)} | – | – | – |`);
    lines.push(`| ${n} | floor (returns TC_ACT_OK) | – | flows ${p.config.flows.toLocaleString('en-US')} | ${fmtNs(r.floor.flowsNs)} | – | – | – |`);
    for (const c of r.cases) {
      const how = c.mode === 'repeat' ? `repeat ${p.config.repeat.toLocaleString('en-US')}` : `flows ${p.config.flows.toLocaleString('en-US')}`;
      const rc = Object.entries(c.retvals).map(([k, v]) => `${k} ${v}`).join(', ');
      lines.push(`| ${n} | ${c.name} | IPv${c.family} | ${how} | ${fmtNs(c.nsPerPacket)} | ${c.aboveFloorNs >= 0 ? '+' : ''}${c.aboveFloorNs} | ${rc} | ${c.outSrc} → ${c.outDst} |`);
    }
  }
  return `${lines.join('\n')}\n`;
}

/** Growth of each case's ns/packet from the smallest to the largest size measured, against the goals. */
export function packetGrowth(p: PacketSection): string[] {
  const ok = p.results.filter((r) => r.status === 'ok' && r.floor);
  if (ok.length < 2) return [];
  const first = ok[0]!;
  const last = ok[ok.length - 1]!;
  return first.cases.map((c, i) => {
    const d = last.cases[i];
    if (!d) return '';
    const growth = (d.nsPerPacket.median / c.nsPerPacket.median - 1) * 100;
    const flat = growth <= 10 ? 'flat (≤ 10 %)' : 'not flat (> 10 %)';
    const under = d.aboveFloorNs < 100 ? 'under 100 ns over the floor' : 'not under 100 ns over the floor';
    return `${c.name} IPv${c.family}: ${c.nsPerPacket.median} → ${d.nsPerPacket.median} ns from ${first.services.toLocaleString('en-US')} to ${last.services.toLocaleString('en-US')} services (${growth >= 0 ? '+' : ''}${growth.toFixed(1)} %): ${flat}; ${under} at ${last.services.toLocaleString('en-US')} (+${d.aboveFloorNs} ns)`;
  }).filter(Boolean);
}

// ---------------------------------------------------------------- plots

/** One series per mode with data; `stopped`: where a mode hit the time limit, an "at least" point at it. */
function series(doc: BenchDocument, pick: (r: BenchResult) => Figure | null | undefined, stopped?: (r: BenchResult) => number | null): Series[] {
  const out: Series[] = [];
  for (const m of doc.modes.filter((x) => x.available)) {
    const rs = doc.results.filter((r) => r.mode === m.id);
    const points = rs.flatMap((r) => {
      const f = pick(r);
      return f ? [{ x: r.services, y: f.median, yMin: f.min, yMax: f.max }] : [];
    });
    const atLeast = stopped ? rs.flatMap((r) => {
      const y = stopped(r);
      return y === null ? [] : [{ x: r.services, y }];
    }) : [];
    if (points.length > 0 || atLeast.length > 0) out.push({ name: modeName(m.id), points, atLeast, dashed: m.id === 'direct', style: (MODE_IDS as readonly string[]).indexOf(m.id) });
  }
  return out;
}

/** The time limit, for a size whose programming was stopped at it. */
function stoppedAt(doc: BenchDocument): (r: BenchResult) => number | null {
  return (r) => (r.status === 'failed' && !r.programMs && /--program-timeout/.test(r.reason ?? '') ? doc.config.programTimeoutS * 1000 : null);
}

export function charts(doc: BenchDocument): { file: string; alt: string; svg: string }[] {
  const caption = `${doc.machine.cpus} CPUs, Linux ${doc.machine.kernel}; median of ${doc.config.runs} runs, bars: min to max`;
  return [
    {
      file: 'connections.svg',
      alt: 'New TCP connections per second against the number of services, per mode',
      svg: renderChart({
        title: 'New TCP connections per second to the last-added service',
        xLabel: 'services',
        yLabel: 'connections/s',
        xLog: true,
        yLog: true,
        series: series(doc, (r) => r.connect?.perSec),
        caption,
      }),
    },
    {
      file: 'latency.svg',
      alt: 'Median connect() latency against the number of services, per mode',
      svg: renderChart({
        title: 'connect() latency, median (p99 is in the table)',
        xLabel: 'services',
        yLabel: 'µs',
        xLog: true,
        yLog: true,
        series: series(doc, (r) => r.connect?.p50Us),
        caption,
      }),
    },
    {
      file: 'programming.svg',
      alt: 'Time to program the whole service set against the number of services, per mode',
      svg: renderChart({
        title: 'Time to program the whole service set',
        xLabel: 'services',
        yLabel: 'ms',
        xLog: true,
        yLog: true,
        series: series(doc, (r) => r.programMs, stoppedAt(doc)),
        caption: `${caption}; hollow: stopped at --program-timeout`,
      }),
    },
    {
      file: 'update.svg',
      alt: 'Time to add one service against the number of services already there, per mode',
      svg: renderChart({
        title: 'Time to add one service',
        xLabel: 'services already programmed',
        yLabel: 'ms',
        xLog: true,
        yLog: true,
        series: series(doc, (r) => r.addMs),
        caption,
      }),
    },
  ];
}

/** A skipped or failed row in a few words. */
function shortReason(r: BenchResult, doc: BenchDocument): string {
  const why = r.reason ?? '';
  if (/took longer than --program-timeout/.test(why) && r.status === 'failed') return `could not program ${r.services.toLocaleString('en-US')} services in ${doc.config.programTimeoutS} s`;
  if (/took longer than --program-timeout/.test(why)) return 'not attempted: a smaller set already hit the time limit';
  const predicted = /predicts (\S+ \S+) or more/.exec(why)?.[1];
  if (predicted) return `not attempted: ${predicted} or more predicted`;
  return `${r.status}: ${why}`;
}

/** Medians only, a few columns: the table the project README shows. */
export function renderSummary(doc: BenchDocument): string {
  const head = ['services', 'mode', 'conn/s (vs direct)', 'connect p50', 'sys CPU / conn', 'program all', 'add one', 'kernel memory'];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map((_, i) => (i === 1 ? ':--' : '--:')).join('|')}|`];
  for (const r of doc.results) {
    const c = r.connect;
    const base = [r.services.toLocaleString('en-US'), modeName(r.mode)];
    if (!c && !r.programMs) {
      lines.push(`| ${[...base, shortReason(r, doc), '', '', '', '', ''].join(' | ')} |`);
      continue;
    }
    const mem = r.memory?.kernelBytes !== null && r.memory?.kernelBytes !== undefined ? `+${fmtBytes(r.memory.kernelBytes)}` : '–';
    lines.push(
      `| ${[
        ...base,
        c ? `${shortNumber(c.perSec.median)}${r.vsDirect !== null && r.mode !== 'direct' ? ` (${Math.round(r.vsDirect * 100)}%)` : ''}` : '–',
        c ? fmtUs(c.p50Us.median) : '–',
        c ? fmtUs(c.sysUsPerConn.median) : '–',
        r.programMs ? fmtMs(r.programMs.median) : '–',
        r.addMs ? fmtMs(r.addMs.median) : '–',
        mem,
      ].join(' | ')} |`,
    );
  }
  return `${lines.join('\n')}\n`;
}

export function renderReport(doc: BenchDocument): string {
  const out: string[] = [];
  out.push('# prep-node bench');
  out.push('');
  out.push(`Machine: ${machineLine(doc)}.`);
  out.push('');
  out.push(`Run ${doc.started} (${doc.durationS} s) with \`${doc.command}\`: sizes ${doc.config.sizes.join(', ')}; ${doc.config.runs} runs per figure, median with (min–max); ${doc.config.durationMs} ms of connections per run; ${doc.config.endpointsPerService} endpoints per service.`);
  out.push('');
  out.push('## Modes');
  out.push('');
  out.push('| mode | path | available |');
  out.push('|:--|:--|:--|');
  for (const m of doc.modes) out.push(`| ${modeName(m.id)} | ${m.path} | ${m.available ? 'yes' : `no: ${(m.reason ?? '').replace(/\|/g, '\\|')}`} |`);
  out.push('');
  out.push('## Summary');
  out.push('');
  out.push(renderSummary(doc));
  out.push('Medians; the full table below has the spread of every figure.');
  out.push('');
  out.push('## Results');
  out.push('');
  out.push(renderMarkdownTable(doc));
  out.push('conn/s and latency: one client, one connection at a time, to the last-added service; vs direct: conn/s against a connection straight to the endpoint at the same size. sys/conn: the client\'s system time per connection. kernel memory: charged to the memory cgroup the programming command ran in; for prep-node, in brackets, the service maps and all maps as the kernel accounts them (fdinfo memlock).');
  out.push('');
  for (const c of charts(doc)) {
    out.push(`![${c.alt}](${c.file})`);
    out.push('');
  }
  if (doc.packets) {
    out.push('## Per packet: tc_lb through BPF_PROG_TEST_RUN');
    out.push('');
    out.push(`The installed tc program, its maps filled through \`prep-node-dp apply\` with each size of services (one endpoint each) and one policy endpoint, run by \`prep-node-dp bench-pkt\`: ns/packet is the kernel's own duration, median of ${doc.packets.config.runs} runs (min–max), beside a tc program that only returns TC_ACT_OK (the floor). "repeat N": one packet in the kernel's loop; "flows N": N packets, each a new flow (or the same flows again for conntrack-hit), one test run each, against the floor measured the same way. Anchors: katran 194 ns/packet/core, a BPF hash lookup 20–32 ns; goals: flat (≤ 10 % growth from the smallest to the largest size) and under 100 ns over the floor.`);
    out.push('');
    out.push(renderPacketTable(doc.packets));
    const g = packetGrowth(doc.packets);
    for (const line of g) out.push(`- ${line}`);
    if (g.length) out.push('');
    for (const c of doc.packets.results.find((r) => r.status === 'ok')?.cases ?? []) out.push(`- ${c.name} (IPv${c.family}): ${c.path}`);
    out.push('');
  }
  out.push('## Notes');
  out.push('');
  for (const n of doc.notes) out.push(`- ${n}`);
  out.push('');
  out.push(`Tools: ${Object.entries(doc.machine.tools).map(([k, v]) => `${k} ${v ?? '(missing)'}`).join('; ')}.`);
  out.push('');
  return out.join('\n');
}

/** DIR/README.md, DIR/bench.json and the SVGs; each written beside its name and renamed over it. */
export async function writeReport(dir: string, doc: BenchDocument): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const files: [string, string][] = [
    ['README.md', renderReport(doc)],
    ['bench.json', `${JSON.stringify(doc, null, 2)}\n`],
    ...charts(doc).map((c) => [c.file, c.svg] as [string, string]),
  ];
  for (const [name, text] of files) {
    const tmp = `${dir}/.${name}.tmp`;
    await writeFile(tmp, text);
    await rename(tmp, `${dir}/${name}`);
  }
  return files.map(([n]) => `${dir}/${n}`);
}
