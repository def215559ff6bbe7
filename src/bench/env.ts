// Everything the bench creates on the machine, named so that a run killed with SIGKILL can be found
// and removed by the next one (or by `prep-node bench --cleanup`):
//
//   network namespaces   pnb-<pid>-<mode>-{c,n,b}        (ip netns; rules and tc filters live inside)
//   a directory          /run/prep-node-bench/<pid>/      (private bpffs mounts: the pinned maps)
//   cgroups              <cgroup v2 root>/prep-node-bench-<pid>/...       (sock_lb attach point)
//                        <cgroup v1 memory>/prep-node-bench-<pid>/...     (memory accounting, v1 hosts)
//
// <pid> is the bench's process id: a leftover is one whose process is gone (or is no bench). The
// root namespace's rules, /sys/fs/bpf and the machine's cgroups are never touched.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { outputSync, runSync } from './exec.js';

export const NETNS_PREFIX = 'pnb-';
export const RUN_ROOT = '/run/prep-node-bench';
export const CGROUP_PREFIX = 'prep-node-bench-';
const V1_MEMORY = '/sys/fs/cgroup/memory';

/** The cgroup v2 mount: /sys/fs/cgroup (unified) or /sys/fs/cgroup/unified (hybrid), or null. */
export function cgroupV2Root(): string | null {
  return ['/sys/fs/cgroup', '/sys/fs/cgroup/unified'].find((p) => existsSync(`${p}/cgroup.procs`) && existsSync(`${p}/cgroup.controllers`)) ?? null;
}

export interface MemoryAccounting {
  kind: 'v1' | 'v2';
  /** where the bench's memory cgroups go */
  parent: string;
  /** what is read, for the report */
  source: string;
}

/** How kernel memory can be attributed: a memory cgroup the programming command runs in, or why not. */
export function memoryAccounting(v2: string | null): MemoryAccounting | { reason: string } {
  if (v2 === '/sys/fs/cgroup') {
    const ctl = readOr(`${v2}/cgroup.subtree_control`);
    if (ctl.split(/\s+/).includes('memory')) return { kind: 'v2', parent: v2, source: 'cgroup v2 memory.stat "kernel" of the cgroup the command ran in' };
    return { reason: 'the memory controller is not enabled for child cgroups of the cgroup v2 root' };
  }
  if (existsSync(`${V1_MEMORY}/memory.kmem.usage_in_bytes`)) {
    return { kind: 'v1', parent: V1_MEMORY, source: 'cgroup v1 memory.kmem.usage_in_bytes of the cgroup the command ran in' };
  }
  return { reason: 'no memory cgroup with kernel memory accounting (cgroup v1 memory.kmem or cgroup v2 memory)' };
}

function readOr(path: string, fallback = ''): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return fallback;
  }
}

/** Kernel memory charged to a memory cgroup, bytes. */
export function memcgKernelBytes(kind: 'v1' | 'v2', dir: string): number {
  if (kind === 'v1') return Number(readOr(`${dir}/memory.kmem.usage_in_bytes`, 'NaN').trim());
  const m = /^kernel (\d+)$/m.exec(readOr(`${dir}/memory.stat`));
  return m ? Number(m[1]) : Number(readOr(`${dir}/memory.current`, 'NaN').trim());
}

/** The resources of one bench run. */
export class BenchEnv {
  readonly pid = process.pid;
  readonly runDir = `${RUN_ROOT}/${process.pid}`;
  readonly v2 = cgroupV2Root();
  /** <v2 root>/prep-node-bench-<pid>, created by init() when there is a v2 mount */
  v2Dir: string | null = null;
  readonly memory: MemoryAccounting | { reason: string };
  /** the parent of the per-size memory cgroups */
  memDir: string | null = null;

  constructor() {
    this.memory = memoryAccounting(this.v2);
  }

  init(): void {
    mkdirSync(this.runDir, { recursive: true, mode: 0o700 });
    if (this.v2) {
      this.v2Dir = `${this.v2}/${CGROUP_PREFIX}${this.pid}`;
      mkdirSync(this.v2Dir);
    }
    if ('kind' in this.memory) {
      if (this.memory.kind === 'v2' && this.v2Dir) {
        writeFileSync(`${this.v2Dir}/cgroup.subtree_control`, '+memory');
        this.memDir = this.v2Dir;
      } else if (this.memory.kind === 'v1') {
        this.memDir = `${this.memory.parent}/${CGROUP_PREFIX}${this.pid}`;
        mkdirSync(this.memDir);
      }
    }
  }

  netns(name: string): string {
    return `${NETNS_PREFIX}${this.pid}-${name}`;
  }

  /** A child of the bench's cgroup v2 directory (sock_lb attach point, client membership). */
  v2Cgroup(name: string): string {
    if (!this.v2Dir) throw new Error('no cgroup v2 mount');
    const dir = `${this.v2Dir}/${name}`;
    mkdirSync(dir, { recursive: true });
    return dir;
  }

  /** A fresh memory cgroup (null when kernel memory cannot be accounted). */
  memCgroup(name: string): string | null {
    if (!this.memDir) return null;
    const dir = `${this.memDir}/${name}`;
    if (existsSync(dir)) removeCgroupTree(dir);
    mkdirSync(dir);
    return dir;
  }

  memBytes(dir: string): number | null {
    if (!('kind' in this.memory)) return null;
    const n = memcgKernelBytes(this.memory.kind, dir);
    return Number.isFinite(n) ? n : null;
  }

  /** A private bpffs for one mode (the loader pins under <dir>/prep-node). */
  mountBpffs(name: string): string {
    const dir = `${this.runDir}/${name}`;
    mkdirSync(dir, { recursive: true });
    if (!runSync('mount', ['-t', 'bpf', 'bpf', dir])) throw new Error(`cannot mount a bpffs at ${dir}`);
    return dir;
  }

  /** Remove everything of this run (synchronous: also called from signal handlers). */
  cleanup(): string[] {
    return removeRun(this.pid);
  }
}

// ---------------------------------------------------------------- finding and removing runs

const NETNS_RE = new RegExp(`^${NETNS_PREFIX}(\\d+)-[a-z0-9-]+$`);
const CGROUP_RE = new RegExp(`^${CGROUP_PREFIX}(\\d+)$`);

function netnsNames(): string[] {
  return outputSync('ip', ['netns', 'list'])
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter((n) => NETNS_RE.test(n));
}

function cgroupParents(): string[] {
  const v2 = cgroupV2Root();
  return [...(v2 ? [v2] : []), ...(existsSync(`${V1_MEMORY}/cgroup.procs`) ? [V1_MEMORY] : [])];
}

/** pids that have something of a bench run on this machine. */
export function benchRunPids(): number[] {
  const pids = new Set<number>();
  for (const n of netnsNames()) pids.add(Number(NETNS_RE.exec(n)![1]));
  if (existsSync(RUN_ROOT)) for (const d of readdirSync(RUN_ROOT)) if (/^\d+$/.test(d)) pids.add(Number(d));
  for (const parent of cgroupParents()) {
    for (const d of readdirSync(parent)) {
      const m = CGROUP_RE.exec(d);
      if (m) pids.add(Number(m[1]));
    }
  }
  return [...pids].sort((a, b) => a - b);
}

/** Whether pid is a live bench (a reused pid of another program does not count). */
export function isLiveBench(pid: number): boolean {
  const cmdline = readOr(`/proc/${pid}/cmdline`);
  return cmdline !== '' && cmdline.split('\0').includes('bench');
}

/** Remove what dead bench runs left behind; descriptions of what was removed. Before this process
 *  has created anything, a leftover named after its own pid (a dead run whose pid came round again)
 *  is one of them: includeSelf. */
export function removeLeftovers(includeSelf = false): string[] {
  const removed: string[] = [];
  for (const pid of benchRunPids()) {
    if (pid === process.pid ? includeSelf : !isLiveBench(pid)) removed.push(...removeRun(pid));
  }
  return removed;
}

function killPids(pids: string): void {
  for (const p of pids.split(/\s+/).filter((x) => /^\d+$/.test(x))) {
    if (Number(p) === process.pid) continue;
    try {
      process.kill(Number(p), 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** rmdir a cgroup and its children, depth first, killing what is inside. */
function removeCgroupTree(dir: string): boolean {
  let entries: string[] = [];
  try {
    entries = readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
  } catch {
    return !existsSync(dir);
  }
  for (const e of entries) removeCgroupTree(`${dir}/${e}`);
  killPids(readOr(`${dir}/cgroup.procs`));
  for (let i = 0; i < 50; i++) {
    try {
      rmdirSync(dir);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return true;
      sleepSync(100); // killed processes leave the cgroup when they are reaped
    }
  }
  return false;
}

/** Remove every resource named after pid: namespaces (their processes first), bpffs mounts, cgroups, the run directory. */
export function removeRun(pid: number): string[] {
  const removed: string[] = [];
  for (const n of netnsNames().filter((x) => NETNS_RE.exec(x)![1] === String(pid))) {
    killPids(outputSync('ip', ['netns', 'pids', n]));
    if (runSync('ip', ['netns', 'del', n])) removed.push(`netns ${n}`);
  }
  const dir = `${RUN_ROOT}/${pid}`;
  // bpffs mounts: unmounting drops the pins, which releases the maps, programs and cgroup links
  const mounts = readOr('/proc/self/mounts')
    .split('\n')
    .map((l) => l.split(' ')[1] ?? '')
    .filter((m) => m.startsWith(`${dir}/`))
    .sort()
    .reverse();
  for (const m of mounts) if (runSync('umount', ['-l', m])) removed.push(`bpffs ${m}`);
  for (const parent of cgroupParents()) {
    const cg = `${parent}/${CGROUP_PREFIX}${pid}`;
    if (existsSync(cg) && removeCgroupTree(cg)) removed.push(`cgroup ${cg}`);
  }
  if (existsSync(dir)) {
    try {
      rmSync(dir, { recursive: true, force: true });
      removed.push(`dir ${dir}`);
    } catch {
      /* a mount still busy: the next run retries */
    }
  }
  try {
    if (existsSync(RUN_ROOT) && readdirSync(RUN_ROOT).length === 0) rmdirSync(RUN_ROOT);
  } catch {
    /* another run created its directory meanwhile */
  }
  return removed;
}
