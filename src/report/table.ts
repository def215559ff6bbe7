// Human output: per host, the checks grouped by area (the id's first part), remedies under the row,
// then for several hosts a host × check matrix.
import type { CheckResult, Status } from '../checks/types.js';
import { countStatuses, type HostReport } from './model.js';

const COLORS: Record<Status, string> = { pass: '32', warn: '33', fail: '31', error: '35', skip: '90' };

export interface Style {
  color: boolean;
}

function paint(style: Style, code: string, text: string): string {
  return style.color ? `\x1b[${code}m${text}\x1b[0m` : text;
}

function status(style: Style, r: { status: Status; ignored: boolean }): string {
  const label = r.status.toUpperCase() + (r.ignored && r.status !== 'pass' ? '*' : '');
  return paint(style, COLORS[r.status], label.padEnd(6));
}

/** One host's report. */
export function renderHost(report: HostReport, style: Style): string {
  const head = paint(style, '1', `${report.target}`) + `  (profile ${report.profile})`;
  if (report.error) return `${head}\n  ${paint(style, '31', 'UNREACHABLE')}  ${report.error.message}\n`;
  const idW = Math.max(8, ...report.checks.map((c) => c.id.length));
  const obsW = Math.min(40, Math.max(8, ...report.checks.map((c) => c.observed.length)));
  const lines = [head, `  ${'CHECK'.padEnd(idW)}  STATUS  ${'OBSERVED'.padEnd(obsW)}  EXPECTED`];
  let group = '';
  for (const c of report.checks) {
    const g = c.id.split('.')[0]!;
    if (g !== group && group !== '') lines.push('');
    group = g;
    lines.push(`  ${c.id.padEnd(idW)}  ${status(style, c)}  ${c.observed.padEnd(obsW)}  ${c.expected}`);
    const pad = ' '.repeat(idW + 4);
    if (c.detail) lines.push(`${pad}${paint(style, '90', c.detail)}`);
    if (c.remedy && c.status !== 'pass') lines.push(`${pad}fix: ${c.remedy}`);
  }
  const n = countStatuses(report.checks);
  lines.push(`  ${n.pass} pass, ${n.warn} warn, ${n.fail} fail, ${n.error} error, ${n.skip} skip`);
  return lines.join('\n') + '\n';
}

/** Host × check matrix for a fleet. */
export function renderMatrix(reports: HostReport[], style: Style): string {
  const ids = [...new Set(reports.flatMap((r) => r.checks.map((c: CheckResult) => c.id)))];
  const hostW = Math.max(4, ...reports.map((r) => r.target.length));
  const colW = ids.map((id) => Math.max(id.length, 6));
  const lines = [`${'HOST'.padEnd(hostW)}  ${ids.map((id, i) => id.padEnd(colW[i]!)).join('  ')}`];
  for (const r of reports) {
    const cells = r.error
      ? [paint(style, '31', `unreachable (${r.error.kind})`)]
      : ids.map((id, i) => {
          const c = r.checks.find((x) => x.id === id);
          return c ? status(style, c).padEnd(colW[i]! + (style.color ? 9 : 0)) : '-'.padEnd(colW[i]!);
        });
    lines.push(`${r.target.padEnd(hostW)}  ${cells.join('  ')}`);
  }
  return lines.join('\n') + '\n';
}
