// Line charts as standalone SVG (no library, no script, no external font): what a browser and
// GitHub's Markdown renderer both show. Axes linear or log10, ticks with readable labels, a legend,
// and a vertical bar per point from the runs' min to max.

export interface Point {
  x: number;
  y: number;
  yMin?: number;
  yMax?: number;
}

export interface Series {
  name: string;
  points: Point[];
  /** dashed line (e.g. a baseline) */
  dashed?: boolean;
  /** index into the palette and markers: the same mode keeps its colour across charts */
  style?: number;
  /** "at least y" (a run stopped at a time limit): a hollow marker with an arrow up, not joined */
  atLeast?: Point[];
}

export interface Chart {
  title: string;
  xLabel: string;
  yLabel: string;
  xLog?: boolean;
  yLog?: boolean;
  series: Series[];
  /** text under the chart */
  caption?: string;
  width?: number;
  height?: number;
}

// Okabe-Ito: distinguishable with the common colour-vision deficiencies
const COLORS = ['#000000', '#0072B2', '#56B4E9', '#D55E00', '#E69F00', '#009E73', '#CC79A7', '#F0E442'];
const MARKERS = ['circle', 'square', 'diamond', 'triangle', 'circle', 'square', 'diamond', 'triangle'] as const;

export function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** 1234 -> 1.2k, 0.05 -> 0.05 */
export function shortNumber(v: number): string {
  const a = Math.abs(v);
  const trim = (s: string) => s.replace(/\.0+$/, '').replace(/(\.\d*?)0+$/, '$1');
  if (a >= 1e9) return `${trim((v / 1e9).toFixed(1))}G`;
  if (a >= 1e6) return `${trim((v / 1e6).toFixed(1))}M`;
  if (a >= 1e3) return `${trim((v / 1e3).toFixed(1))}k`;
  if (a >= 1 || a === 0) return trim(v.toFixed(a >= 100 ? 0 : 1));
  return String(Number(v.toPrecision(2)));
}

interface Axis {
  min: number;
  max: number;
  log: boolean;
  ticks: number[];
}

function niceStep(range: number, target: number): number {
  const raw = range / target;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const f = raw / mag;
  return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
}

function axis(values: number[], log: boolean, includeZero: boolean): Axis {
  const pos = log ? values.filter((v) => v > 0) : values;
  let min = pos.length ? Math.min(...pos) : 1;
  let max = pos.length ? Math.max(...pos) : 10;
  if (log) {
    let lo = Math.floor(Math.log10(min));
    let hi = Math.ceil(Math.log10(max));
    if (hi === lo) hi = lo + 1;
    const ticks: number[] = [];
    const step = Math.max(1, Math.ceil((hi - lo) / 8));
    lo = Math.floor(lo / step) * step;
    for (let e = lo; e <= hi; e += step) ticks.push(10 ** e);
    return { min: 10 ** lo, max: ticks[ticks.length - 1]!, log, ticks };
  }
  if (includeZero) min = Math.min(0, min);
  if (max === min) max = min + 1;
  const step = niceStep(max - min, 5);
  min = Math.floor(min / step) * step;
  max = Math.ceil(max / step) * step;
  const ticks: number[] = [];
  for (let v = min; v <= max + step / 2; v += step) ticks.push(Number(v.toPrecision(12)));
  return { min, max, log, ticks };
}

function scale(a: Axis, v: number, from: number, to: number): number {
  const t = a.log ? (Math.log10(v) - Math.log10(a.min)) / (Math.log10(a.max) - Math.log10(a.min)) : (v - a.min) / (a.max - a.min);
  return from + t * (to - from);
}

function marker(kind: (typeof MARKERS)[number], x: number, y: number, color: string, hollow = false): string {
  const r = 4;
  const f = (n: number) => n.toFixed(1);
  const paint = hollow ? `fill="#ffffff" stroke="${color}" stroke-width="1.5"` : `fill="${color}"`;
  switch (kind) {
    case 'circle':
      return `<circle cx="${f(x)}" cy="${f(y)}" r="${r}" ${paint}/>`;
    case 'square':
      return `<rect x="${f(x - r)}" y="${f(y - r)}" width="${2 * r}" height="${2 * r}" ${paint}/>`;
    case 'diamond':
      return `<path d="M${f(x)} ${f(y - r - 1)}L${f(x + r + 1)} ${f(y)}L${f(x)} ${f(y + r + 1)}L${f(x - r - 1)} ${f(y)}Z" ${paint}/>`;
    case 'triangle':
      return `<path d="M${f(x)} ${f(y - r - 1)}L${f(x + r + 1)} ${f(y + r)}L${f(x - r - 1)} ${f(y + r)}Z" ${paint}/>`;
  }
}

export function renderChart(c: Chart): string {
  const W = c.width ?? 760;
  const H = c.height ?? 440;
  const legendW = 210;
  const m = { left: 78, right: legendW + 20, top: 44, bottom: c.caption ? 76 : 58 };
  const px0 = m.left;
  const px1 = W - m.right;
  const py0 = H - m.bottom;
  const py1 = m.top;
  // room above an "at least" point for its arrow
  const pts = c.series.flatMap((s) => [...s.points, ...(s.atLeast ?? []).flatMap((p) => [p, { x: p.x, y: c.yLog ? p.y * 4 : p.y * 1.2 }])]);
  const xa = axis(pts.map((p) => p.x), c.xLog ?? false, false);
  const ya = axis(pts.flatMap((p) => [p.y, p.yMin ?? p.y, p.yMax ?? p.y]), c.yLog ?? false, !(c.yLog ?? false));
  const X = (v: number) => scale(xa, v, px0, px1);
  const Y = (v: number) => scale(ya, v, py0, py1);
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="Helvetica, Arial, sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="#ffffff"/>`);
  out.push(`<text x="${W / 2}" y="24" text-anchor="middle" font-size="15" font-weight="bold">${esc(c.title)}</text>`);
  // grid and ticks
  for (const t of ya.ticks) {
    const y = Y(t).toFixed(1);
    out.push(`<line x1="${px0}" x2="${px1}" y1="${y}" y2="${y}" stroke="#e3e3e3"/>`);
    out.push(`<text x="${px0 - 8}" y="${y}" text-anchor="end" dominant-baseline="middle">${shortNumber(t)}</text>`);
  }
  for (const t of xa.ticks) {
    const x = X(t).toFixed(1);
    out.push(`<line x1="${x}" x2="${x}" y1="${py0}" y2="${py1}" stroke="#e3e3e3"/>`);
    out.push(`<text x="${x}" y="${py0 + 18}" text-anchor="middle">${shortNumber(t)}</text>`);
  }
  out.push(`<rect x="${px0}" y="${py1}" width="${px1 - px0}" height="${py0 - py1}" fill="none" stroke="#444"/>`);
  const xl = `${c.xLabel}${c.xLog ? ' (log scale)' : ''}`;
  const yl = `${c.yLabel}${c.yLog ? ' (log scale)' : ''}`;
  out.push(`<text x="${(px0 + px1) / 2}" y="${py0 + 40}" text-anchor="middle">${esc(xl)}</text>`);
  out.push(`<text transform="translate(18 ${(py0 + py1) / 2}) rotate(-90)" text-anchor="middle">${esc(yl)}</text>`);
  // series
  c.series.forEach((s, i) => {
    const k = s.style ?? i;
    const color = COLORS[k % COLORS.length]!;
    const shape = MARKERS[k % MARKERS.length]!;
    const ps = s.points.filter((p) => !(c.xLog && p.x <= 0) && !(c.yLog && p.y <= 0)).sort((a, b) => a.x - b.x);
    if (ps.length > 1) {
      const d = ps.map((p, k) => `${k ? 'L' : 'M'}${X(p.x).toFixed(1)} ${Y(p.y).toFixed(1)}`).join('');
      out.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>`);
    }
    for (const p of ps) {
      if (p.yMin !== undefined && p.yMax !== undefined && p.yMax > p.yMin && !(c.yLog && p.yMin <= 0)) {
        const x = X(p.x).toFixed(1);
        out.push(`<line x1="${x}" x2="${x}" y1="${Y(p.yMin).toFixed(1)}" y2="${Y(p.yMax).toFixed(1)}" stroke="${color}" stroke-width="1.5"/>`);
      }
      out.push(marker(shape, X(p.x), Y(p.y), color));
    }
    for (const p of s.atLeast ?? []) {
      const x = X(p.x);
      const y = Y(p.y);
      out.push(`<path d="M${x.toFixed(1)} ${(y - 6).toFixed(1)}V${(y - 22).toFixed(1)}M${(x - 4).toFixed(1)} ${(y - 17).toFixed(1)}L${x.toFixed(1)} ${(y - 22).toFixed(1)}L${(x + 4).toFixed(1)} ${(y - 17).toFixed(1)}" fill="none" stroke="${color}" stroke-width="1.5"/>`);
      out.push(marker(shape, x, y, color, true));
      out.push(`<text x="${(x + 7).toFixed(1)}" y="${(y - 12).toFixed(1)}" font-size="10" fill="${color}">stopped</text>`);
    }
    // legend
    const ly = py1 + 8 + i * 22;
    const lx = px1 + 16;
    out.push(`<line x1="${lx}" x2="${lx + 26}" y1="${ly}" y2="${ly}" stroke="${color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>`);
    out.push(marker(shape, lx + 13, ly, color));
    out.push(`<text x="${lx + 34}" y="${ly}" dominant-baseline="middle">${esc(s.name)}</text>`);
  });
  if (c.caption) out.push(`<text x="${px0}" y="${H - 14}" font-size="11" fill="#555">${esc(c.caption)}</text>`);
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
