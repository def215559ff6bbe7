// cpu.steal: how much of its vCPUs' time the hypervisor gave to other guests while this one wanted to
// run, sampled from /proc/stat over --steal-seconds. Steal is time a runnable vCPU waited for a
// physical CPU (proc(5), "steal"): on an oversold host it shows up as latency in every softirq,
// health check and packet the node handles.
import type { Check, Finding } from './types.js';

// /proc/stat cpu columns (proc(5)): user nice system idle iowait irq softirq steal guest guest_nice.
const STEAL = 7;
// guest and guest_nice are already counted in user and nice (kernel/sched/cputime.c,
// account_guest_time), so the total is the first eight columns; adding them would count guest time twice.
const TOTAL_COLUMNS = 8;

export const cpuSteal: Check = {
  id: 'cpu.steal',
  title: 'CPU steal time',
  async run({ host, profile, options }): Promise<Finding> {
    const seconds = options.stealSeconds;
    // One command, so both samples are exactly `seconds` apart on the node whatever the link's latency.
    const out = await host.exec(stealCommand(seconds), { timeoutMs: (seconds + 30) * 1000 });
    return judgeSteal(out, seconds, profile.steal.warnPercent, profile.steal.failPercent);
  },
};

/** The command cpu.steal runs: two /proc/stat snapshots `seconds` apart. */
export function stealCommand(seconds: number): string {
  return `cat /proc/stat; sleep ${seconds}; cat /proc/stat`;
}

/** Steal as a percentage of all CPU time between two snapshots, per `cpu` line (`cpu` = all CPUs). */
export function stealPercentages(out: string): Map<string, number> | string {
  const snapshots: Map<string, number[]>[] = [];
  for (const line of out.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (!/^cpu\d*$/.test(f[0] ?? '')) continue;
    if (f[0] === 'cpu') snapshots.push(new Map());
    snapshots.at(-1)?.set(f[0]!, f.slice(1).map(Number));
  }
  if (snapshots.length !== 2) return `expected two /proc/stat snapshots, found ${snapshots.length}`;
  const [a, b] = snapshots as [Map<string, number[]>, Map<string, number[]>];
  const result = new Map<string, number>();
  for (const [name, before] of a) {
    const after = b.get(name);
    if (!after) continue; // a CPU taken offline during the sample
    if (before.length <= STEAL || after.length <= STEAL) return 'this kernel reports no steal column in /proc/stat (it needs Linux >= 2.6.11)';
    const total = sum(after.slice(0, TOTAL_COLUMNS)) - sum(before.slice(0, TOTAL_COLUMNS));
    const steal = after[STEAL]! - before[STEAL]!;
    if (total <= 0 || steal < 0 || [...before, ...after].some(Number.isNaN)) continue;
    result.set(name, (100 * steal) / total);
  }
  if (!result.has('cpu')) return 'no CPU time passed between the two /proc/stat samples';
  return result;
}

/** The verdict on `cat /proc/stat; sleep N; cat /proc/stat` output. */
export function judgeSteal(out: string, seconds: number, warnPercent: number, failPercent: number): Finding {
  const expected = `<= ${warnPercent} % (warn above, fail above ${failPercent} %)`;
  const pct = stealPercentages(out);
  if (typeof pct === 'string') return { status: 'error', observed: '-', expected, detail: `cannot measure steal: ${pct}` };
  const overall = pct.get('cpu')!;
  let worst: [string, number] | null = null;
  for (const [name, p] of pct) if (name !== 'cpu' && (!worst || p > worst[1])) worst = [name, p];
  const observed = `${fmt(overall)} %${worst ? ` (worst ${worst[0]} ${fmt(worst[1])} %)` : ''} over ${seconds} s`;
  if (overall <= warnPercent) return { status: 'pass', observed, expected };
  return {
    status: overall > failPercent ? 'fail' : 'warn',
    observed,
    expected,
    remedy:
      'move the node to a less contended host or plan (ask the provider to migrate it), or to a plan with dedicated vCPUs; ' +
      'confirm over time first: vmstat 5 (the st column) or sar -u 5',
    detail:
      'steal is time a runnable vCPU waited while the hypervisor ran someone else (proc(5), /proc/stat "steal"): other guests on ' +
      `the same physical cores are taking CPU this node was sold. It adds latency to every packet and softirq; one ${seconds} s sample ` +
      'sees one moment, so measure at busy hours too (prep-node check --steal-seconds 60)',
  };
}

function sum(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0);
}

function fmt(p: number): string {
  return p.toFixed(1);
}
