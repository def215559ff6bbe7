// Several runs of one measurement -> the median, with the spread (min and max) and the runs themselves.
import type { Figure } from './schema.js';

export function median(xs: readonly number[]): number {
  if (xs.length === 0) throw new Error('median of nothing');
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Rounded to 4 significant digits: run-to-run noise is far larger than that. */
function round(x: number): number {
  return x === 0 || !Number.isFinite(x) ? x : Number(x.toPrecision(4));
}

export function figure(runs: readonly number[]): Figure {
  return { median: round(median(runs)), min: round(Math.min(...runs)), max: round(Math.max(...runs)), runs: runs.map(round) };
}

/** Half the min-max range as a share of the median (0.05 = ±5%). */
export function spread(f: Figure): number {
  return f.median === 0 ? 0 : (f.max - f.min) / 2 / f.median;
}
