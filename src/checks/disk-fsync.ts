// disk.fsync: the disk under etcd's data dir syncs small writes fast enough for etcd's WAL: the p99 of
// fdatasync after each 2300-byte sequential write, the measurement etcd's guidance makes with fio.
// Without fio the same pattern is timed by python3 (a true p99), else by a shell loop of dd (an
// estimate, said so): a stock node has neither Node.js nor, always, Python.
import type { Check, CheckContext, Finding } from './types.js';
import { shQuote } from '../host/host.js';
import { parseSections } from '../probes/sections.js';

// etcd docs, "Hardware recommendations" (disks): etcd is very sensitive to disk write latency; the
// WAL's fdatasync p99 should stay below 10 ms. FAQ "What does the etcd warning 'failed to send out
// heartbeat on time' mean?": a slow disk delays the leader's heartbeats and causes elections. The fio
// recipe (IBM Cloud, "Using Fio to Tell Whether Your Storage is Fast Enough for Etcd", cited by etcd):
// fio --rw=write --ioengine=sync --fdatasync=1 --size=22m --bs=2300, read the sync percentiles.
const SOURCE = "etcd docs (Hardware recommendations; FAQ 'failed to send out heartbeat on time'): the WAL's fdatasync p99 must stay below 10 ms; measured as etcd's fio recipe does (IBM Cloud: fio --rw=write --ioengine=sync --fdatasync=1 --size=22m --bs=2300)";

/** etcd's WAL writes about this much per entry (the recipe's --bs). */
export const BLOCK = 2300;
/** The recipe's 22 MiB: about 10 000 writes. */
export const WRITES = Math.floor((22 * 1024 * 1024) / BLOCK);
/** Stop measuring after this long: a slow disk still answers in time (the recipe would take minutes). */
export const MEASURE_SECONDS = 20;
// Writes timed by the dd loop: each costs three process starts, so fewer than fio's.
const DD_WRITES = 1000;
const DD_BASELINE = 50;
const TIMEOUT_MS = (MEASURE_SECONDS + 25) * 1000;

export type Method = 'fio' | 'python' | 'dd';

export const diskFsync: Check = {
  id: 'disk.fsync',
  title: "etcd disk: fdatasync p99",
  async run(ctx): Promise<Finding> {
    if (ctx.profile.role !== 'control-plane') {
      return { status: 'skip', observed: '-', expected: '-', detail: 'worker profile: no etcd' };
    }
    return measureFsync(ctx);
  },
};

/** Where to measure and with what: the nearest existing dir of dataDir, whether we may write it, the tools. */
export function probeCommand(dataDir: string): string {
  return [
    `d=${shQuote(dataDir)}; while [ ! -d "$d" ]; do d=$(dirname -- "$d"); done`,
    `echo '@@ dir'; echo "$d"`,
    `echo '@@ writable'; if [ -w "$d" ]; then echo yes; else echo no; fi`,
    `echo '@@ fs'; stat -f -c %T -- "$d"; df -P -- "$d" | tail -n 1`,
    `echo '@@ tools'; echo "fio=$(command -v fio)"; echo "python=$(command -v python3 || command -v /usr/libexec/platform-python)"; echo "date-ns=$(date +%N)"`,
  ].join('; ');
}

export interface Probe {
  dir: string;
  writable: boolean;
  fsType: string;
  device: string;
  mount: string;
  python: string;
  methods: Method[];
}

export function parseProbe(output: string): Probe {
  const s = parseSections(output);
  const dir = s.get('dir')?.trim();
  if (!dir) throw new Error('could not find the data dir or a parent of it');
  const [fsType = '?', dfLine = ''] = (s.get('fs') ?? '').split('\n');
  const df = dfLine.trim().split(/\s+/);
  const tools = new Map((s.get('tools') ?? '').split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1).trim()] as const));
  const python = tools.get('python') ?? '';
  const methods: Method[] = [];
  if (tools.get('fio')) methods.push('fio');
  if (python) methods.push('python');
  // GNU date prints nanoseconds; busybox prints the format back: the dd loop cannot time writes then.
  if (/^\d{9}$/.test(tools.get('date-ns') ?? '')) methods.push('dd');
  return { dir, writable: s.get('writable')?.trim() === 'yes', fsType: fsType.trim(), device: df[0] ?? '?', mount: df[5] ?? '?', python, methods };
}

// The temp dir is beside etcd's data, on the same filesystem, and is removed on exit and on TERM
// (timeout(1) sends TERM to the whole process group: fio stops, then the shell's trap runs).
function inTempDir(dir: string, body: string): string {
  return `t=$(mktemp -d ${shQuote(dir)}/.prep-node-fsync.XXXXXX) || exit 1; trap 'rm -rf -- "$t"' EXIT; trap 'exit 143' HUP INT TERM; ${body}`;
}

// Python 3.6 (RHEL 8's platform-python) and later: no f-strings, no perf_counter_ns. Times only the
// fdatasync, as fio's "sync" latency does; the file is preallocated, as fio lays it out.
const PYTHON = `import os, sys, time
d, n, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
fd = os.open(os.path.join(d, "probe"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
try:
    os.posix_fallocate(fd, 0, n * ${BLOCK})
except (AttributeError, OSError):
    pass
buf = os.urandom(${BLOCK})
end = time.monotonic() + secs
out = []
for i in range(n):
    os.write(fd, buf)
    t0 = time.perf_counter()
    os.fdatasync(fd)
    out.append("s %d" % ((time.perf_counter() - t0) * 1e9))
    if time.monotonic() > end:
        break
os.close(fd)
sys.stdout.write("\\n".join(out) + "\\n")
`;

/** The measuring command for a method (run with sudo when the dir is not writable by the login user). */
export function measureCommand(method: Method, dir: string, python = 'python3'): string {
  switch (method) {
    case 'fio':
      return inTempDir(
        dir,
        `fio --rw=write --ioengine=sync --fdatasync=1 --directory="$t" --size=22m --bs=${BLOCK} --name=prep-node-fsync --output-format=json --runtime=${MEASURE_SECONDS}`,
      );
    case 'python':
      return inTempDir(dir, `${shQuote(python)} - "$t" ${WRITES} ${MEASURE_SECONDS} <<'PY'\n${PYTHON}PY`);
    case 'dd':
      // Each write is its own dd (write + fdatasync), timed by date(1) around it. The same dd without
      // fdatasync, timed the same way, is the loop's own cost; its median is subtracted later.
      return inTempDir(
        dir,
        `f="$t/probe"; b="$t/base"; fallocate -l ${DD_WRITES * BLOCK} "$f" 2>/dev/null; ` +
          `end=$(($(date +%s%N) + ${MEASURE_SECONDS}000000000)); ` +
          `i=0; while [ $i -lt ${DD_BASELINE} ]; do a=$(date +%s%N); dd if=/dev/zero of="$b" bs=${BLOCK} count=1 seek=$i conv=notrunc 2>/dev/null || exit 2; z=$(date +%s%N); echo "b $((z - a))"; i=$((i + 1)); done; ` +
          `z=0; i=0; ` +
          `while [ $i -lt ${DD_WRITES} ] && [ $z -lt $end ]; do a=$(date +%s%N); dd if=/dev/zero of="$f" bs=${BLOCK} count=1 seek=$i conv=notrunc,fdatasync 2>/dev/null || exit 2; z=$(date +%s%N); echo "s $((z - a))"; i=$((i + 1)); done`,
      );
  }
}

export interface Measurement {
  method: Method;
  /** p99 of fdatasync latency in ms (for dd: an estimate). */
  p99Ms: number;
  samples: number;
  /** True for fio and python (each fdatasync timed); false for the dd estimate. */
  exact: boolean;
  /** dd only: the p99 less the loop's slowest own cost, a floor the true p99 is very likely above. */
  lowMs?: number;
  how: string;
}

/** Nearest-rank percentile of unsorted values. */
export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** fio --output-format=json: jobs[0].sync.lat_ns.percentile["99.000000"] (fio >= 3.5 reports sync percentiles). */
export function parseFio(output: string): Measurement {
  const start = output.search(/^\{/m);
  if (start < 0) throw new Error(`fio printed no JSON: ${output.trim().split('\n').pop() ?? ''}`);
  const json = JSON.parse(output.slice(start)) as {
    'fio version'?: string;
    jobs?: { error?: number; sync?: { lat_ns?: { N?: number; percentile?: Record<string, number> }; total_ios?: number } }[];
  };
  const job = json.jobs?.[0];
  if (job?.error) throw new Error(`fio job failed with error ${job.error}`);
  const p99 = job?.sync?.lat_ns?.percentile?.['99.000000'];
  if (p99 === undefined) throw new Error(`${json['fio version'] ?? 'fio'} reports no fdatasync percentiles (needs fio >= 3.5)`);
  const n = job?.sync?.lat_ns?.N ?? job?.sync?.total_ios ?? 0;
  return { method: 'fio', p99Ms: p99 / 1e6, samples: n, exact: true, how: `${json['fio version'] ?? 'fio'}, etcd's recipe` };
}

/** `s <ns>` (a write with fdatasync) and `b <ns>` (the dd loop's cost without sync) lines. */
export function parseSamples(output: string, method: 'python' | 'dd'): Measurement {
  const sync: number[] = [];
  const base: number[] = [];
  for (const line of output.split('\n')) {
    const m = /^([sb]) (\d+)$/.exec(line.trim());
    if (m) (m[1] === 's' ? sync : base).push(Number(m[2]));
  }
  if (sync.length === 0) throw new Error(`${method} timed no writes: ${output.trim().split('\n').pop() ?? '(no output)'}`);
  if (method === 'python') {
    return { method, p99Ms: percentile(sync, 99) / 1e6, samples: sync.length, exact: true, how: 'python3 timing each fdatasync' };
  }
  const overhead = base.length > 0 ? percentile(base, 50) : 0;
  const worst = base.length > 0 ? percentile(base, 99) : 0;
  return {
    method,
    p99Ms: Math.max(0, percentile(sync, 99) - overhead) / 1e6,
    lowMs: Math.max(0, percentile(sync, 99) - worst) / 1e6,
    samples: sync.length,
    exact: false,
    how: `estimate: dd write+fdatasync timed by date(1), minus the loop's own ${(overhead / 1e6).toFixed(2)} ms (median dd without sync)`,
  };
}

function place(p: Probe): string {
  return `${p.dir} on ${p.device} (${p.fsType})`;
}

/** The verdict on a measurement; pure. */
export function judgeFsync(m: Measurement, limitMs: number, probe: Probe): Finding {
  const expected = `fdatasync p99 < ${limitMs} ms`;
  const few = m.samples < 100 ? ` (only ${m.samples} writes in ${MEASURE_SECONDS} s: the p99 is about the slowest)` : '';
  const observed = `p99 ${m.exact ? '' : '≈ '}${m.p99Ms.toFixed(2)} ms over ${m.samples} writes (${m.how}) at ${place(probe)}${few}`;
  const recheck = `fio --rw=write --ioengine=sync --fdatasync=1 --directory=${probe.dir} --size=22m --bs=${BLOCK} --name=etcd-check --unlink=1`;
  const move = `put etcd's data dir on a faster disk (a local SSD/NVMe volume of its own, or a VPS plan with better storage), then re-measure: ${recheck}`;
  const method = m.exact ? `a true p99 (${m.method})` : 'an estimate (no fio or python3 on the node: per-write dd timings include process start-up, subtracted as a median)';
  if (m.p99Ms < limitMs) return { status: 'pass', observed, expected, detail: `${method}. ${SOURCE}` };
  // An estimate fails only when even the loop's slowest own cost leaves it above the limit.
  if (!m.exact && (m.lowMs ?? 0) < limitMs) {
    return {
      status: 'warn',
      observed,
      expected,
      remedy: `measure exactly: apt-get install -y fio (or dnf install -y fio) and check again; if it stays above ${limitMs} ms: ${move}`,
      detail: `${method}; less the loop's slowest own cost it is ${(m.lowMs ?? 0).toFixed(2)} ms, below the limit: too close to call. ${SOURCE}`,
    };
  }
  const floor = m.exact ? '' : `, still ${(m.lowMs ?? 0).toFixed(2)} ms less the loop's slowest own cost`;
  return { status: 'fail', observed, expected, remedy: move, detail: `${method}${floor}; a slow WAL fsync delays heartbeats and triggers leader elections. ${SOURCE}` };
}

/** Probe, pick the best method the node has, measure, judge. */
async function measureFsync(ctx: CheckContext): Promise<Finding> {
  const { host, profile } = ctx;
  const limit = profile.etcd.fsyncP99Ms;
  const probe = parseProbe(await host.exec(probeCommand(profile.etcd.dataDir)));
  if (probe.methods.length === 0) {
    return {
      status: 'error',
      observed: `no way to time writes at ${place(probe)}`,
      expected: `fdatasync p99 < ${limit} ms`,
      remedy: 'apt-get install -y fio (or dnf install -y fio) and check again',
      detail: 'neither fio nor python3 is installed, and date(1) has no nanoseconds (not GNU coreutils)',
    };
  }
  const failures: string[] = [];
  for (const method of probe.methods) {
    // Root only when the login user may not write the dir (a root-owned /var/lib for a sudo user).
    const r = await host.run(measureCommand(method, probe.dir, probe.python), { sudo: !probe.writable, timeoutMs: TIMEOUT_MS });
    if (r.timedOut) {
      failures.push(`${method} took longer than ${TIMEOUT_MS / 1000} s`);
      continue;
    }
    try {
      if (r.code !== 0) throw new Error(`exit ${r.code}: ${r.stderr.trim().split('\n').pop() ?? ''}`);
      const m = method === 'fio' ? parseFio(r.stdout) : parseSamples(r.stdout, method);
      const f = judgeFsync(m, limit, probe);
      return failures.length > 0 ? { ...f, detail: `${f.detail ?? ''} (fell back: ${failures.join('; ')})` } : f;
    } catch (err) {
      failures.push(`${method}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  return { status: 'error', observed: `could not measure at ${place(probe)}`, expected: `fdatasync p99 < ${limit} ms`, detail: failures.join('; ') };
}
