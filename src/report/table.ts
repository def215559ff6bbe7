// Human output: per host, the checks grouped by area (the id's first part), remedies under the row,
// then for several hosts a summary (a check × host grid, or per-check counts for a large fleet).
import type { CheckResult, Status } from '../checks/types.js';
import { printable } from '../errors.js';
import { fixText, wrap } from './fix.js';
import { countStatuses, type HostReport } from './model.js';
import type { FleetResult } from '../checks/fleet.js';

const COLORS: Record<Status, string> = { pass: '32', warn: '33', fail: '31', error: '35', skip: '90' };

export interface Style {
  color: boolean;
  /** The terminal's width: why and fix lines wrap to it with a hanging indent. Unset when not a terminal: no wrapping. */
  width?: number;
}

function paint(style: Style, code: string, text: string): string {
  return style.color ? `\x1b[${code}m${text}\x1b[0m` : text;
}

/** PASS, WARN, FAIL, ERROR, SKIP; a trailing * marks a finding --ignore named. */
function statusLabel(r: { status: Status; ignored: boolean }): string {
  return r.status.toUpperCase() + (r.ignored && r.status !== 'pass' ? '*' : '');
}

function status(style: Style, r: { status: Status; ignored: boolean }): string {
  return paint(style, COLORS[r.status], statusLabel(r).padEnd(6));
}

/** One host's report: a row per check (id, status, observed), grouped by area; under each row that
 *  did not pass, what was expected, why, and the fix. */
export function renderHost(report: HostReport, style: Style): string {
  // Everything but our own colors comes from outside (the node, the operator's files): printable() keeps
  // an escape sequence in an observed value from reaching the terminal.
  const head = paint(style, '1', printable(report.target)) + `  (profile ${printable(report.profile)})`;
  if (report.error) return `${head}\n  ${paint(style, '31', 'UNREACHABLE')}  ${printable(report.error.message)}\n`;
  const idW = Math.max(8, ...report.checks.map((c) => c.id.length));
  const lines = [head, `  ${'CHECK'.padEnd(idW)}  STATUS  OBSERVED`];
  const pad = ' '.repeat(idW + 12);
  let group = '';
  for (const c of report.checks) {
    const g = c.id.split('.')[0]!;
    if (g !== group && group !== '') lines.push('');
    group = g;
    lines.push(`  ${c.id.padEnd(idW)}  ${status(style, c)}  ${printable(c.observed)}`);
    if (c.status === 'pass') continue;
    if (c.status !== 'skip') lines.push(`${pad}expected: ${printable(c.expected)}`);
    if (c.detail) lines.push(`${pad}${paint(style, '90', `why: ${wrap(printable(c.detail), style.width, pad.length + 5, pad.length + 5)}`)}`);
    if (c.remedy) lines.push(`${pad}fix: ${wrap(printable(fixText(c.id, c.remedy, report.target, report.profile)), style.width, pad.length + 5, pad.length + 5)}`);
  }
  const n = countStatuses(report.checks);
  lines.push(`  ${n.pass} pass, ${n.warn} warn, ${n.fail} fail, ${n.error} error, ${n.skip} skip`);
  return lines.join('\n') + '\n';
}

// Up to this many hosts the summary is a check × host grid; past it, one line per check.
const GRID_MAX_HOSTS = 8;

/** The fleet summary: a check × host grid for a few hosts, per-check counts naming the hosts that did not pass for many. */
export function renderMatrix(reports: HostReport[], style: Style): string {
  const ids = [...new Set(reports.flatMap((r) => r.checks.map((c: CheckResult) => c.id)))];
  const unreachable = reports.filter((r) => r.error);
  const lines: string[] = [];
  if (reports.length <= GRID_MAX_HOSTS) {
    const idW = Math.max(5, ...ids.map((id) => id.length));
    const colW = reports.map((r) => Math.max(r.target.length, 6));
    lines.push(`${'CHECK'.padEnd(idW)}  ${reports.map((r, i) => r.target.padEnd(colW[i]!)).join('  ')}`.trimEnd());
    for (const id of ids) {
      const cells = reports.map((r, i) => {
        const c = r.checks.find((x) => x.id === id);
        const text = r.error ? 'unreachable' : c ? statusLabel(c) : '-';
        return paint(style, c && !r.error ? COLORS[c.status] : '31', text.padEnd(colW[i]!));
      });
      lines.push(`${id.padEnd(idW)}  ${cells.join('  ')}`.trimEnd());
    }
  } else {
    const idW = Math.max(5, ...ids.map((id) => id.length));
    for (const id of ids) {
      const results = reports.flatMap((r) => r.checks.filter((c) => c.id === id).map((c) => ({ target: r.target, c })));
      const n = countStatuses(results.map((x) => x.c));
      const bad = results.filter((x) => x.c.status !== 'pass').map((x) => `${x.target} ${statusLabel(x.c)}`);
      const counts = (['pass', 'warn', 'fail', 'error', 'skip'] as const).filter((k) => n[k] > 0).map((k) => paint(style, COLORS[k], `${n[k]} ${k}`));
      lines.push(`${id.padEnd(idW)}  ${counts.join(', ')}${bad.length > 0 ? `  (${bad.slice(0, 10).join(', ')}${bad.length > 10 ? `, +${bad.length - 10} more` : ''})` : ''}`);
    }
  }
  if (unreachable.length > 0) {
    lines.push(paint(style, '31', `unreachable: ${unreachable.map((r) => `${r.target} (${r.error!.kind})`).join(', ')}`));
  }
  return lines.join('\n') + '\n';
}

/** The fleet checks (several hosts): a row per check, the hosts that disagree named under it with what was expected, why and the fix. */
export function renderFleet(fleet: readonly FleetResult[], style: Style): string {
  const idW = Math.max(8, ...fleet.map((c) => c.id.length));
  const pad = ' '.repeat(idW + 12);
  const lines = [paint(style, '1', 'fleet'), `  ${'CHECK'.padEnd(idW)}  STATUS  OBSERVED`];
  for (const c of fleet) {
    lines.push(`  ${c.id.padEnd(idW)}  ${status(style, c)}  ${c.observed}`);
    if (c.status === 'pass') continue;
    if (c.hosts.length > 0) lines.push(`${pad}hosts: ${c.hosts.join(', ')}`);
    if (c.status !== 'skip') lines.push(`${pad}expected: ${c.expected}`);
    if (c.detail) lines.push(`${pad}${paint(style, '90', `why: ${c.detail}`)}`);
    if (c.remedy) lines.push(`${pad}fix: ${c.remedy}`);
  }
  const n = countStatuses(fleet);
  lines.push(`  ${n.pass} pass, ${n.warn} warn, ${n.fail} fail, ${n.error} error, ${n.skip} skip`);
  return lines.join('\n') + '\n';
}
