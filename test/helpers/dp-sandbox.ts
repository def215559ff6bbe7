// The single-node sandbox of the datapath's kernel tests (dp-ipv6-services, dp-pmtu, dp-conntrack,
// dp-sctp): network namespaces named after the test's pid (a node, a client, pods, routers), veth
// pairs between them, a private bpffs, a cgroup v2 child (which the client is not in, so its
// sockets are not translated and its flows go through tc_lb), prep-node-dp installed in the node's
// namespace, and a cleanup that removes all of it, also on SIGINT/SIGTERM.
//
// A module of functions: importing it runs nothing. A test creates the sandbox at describe time
// (names only), calls setUp() in before() and cleanup() in after(). Needs root, clang, bpftool,
// iproute2, nsenter; the tests run it under the shared lock (/tmp/prep-node-root.lock).
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, rmdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { compileState } from '../../src/datapath/compile.js';
import { DatapathStateSchema } from '../../src/datapath/schema.js';
import { incrementalSync } from '../../src/datapath/sync.js';
import { opLines, type CurrentEntries } from '../../src/datapath/writer.js';

export const BPF_DIR = fileURLToPath(new URL('../../../bpf/', import.meta.url));
export const DP = `${BPF_DIR}build/prep-node-dp`;
/** The skip reason of a test that needs this sandbox, or false when it can run. */
export const notRoot: string | false = process.getuid?.() !== 0 ? 'needs root (bpffs, cgroups, network namespaces)' : false;

export interface Run { code: number | null; stdout: string; stderr: string }

/** Runs a command (stdin: input, or closed), never throws: its exit code (null when killed) and output. */
export function run(cmd: string, args: string[], input?: string, timeoutMs = 30_000): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { encoding: 'utf8', timeout: timeoutMs }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : null) : 0;
      resolve({ code, stdout, stderr });
    });
    child.stdin?.on('error', () => { /* a command that exits before reading stdin */ });
    child.stdin?.end(input ?? '');
  });
}

/** Runs a command that must exit 0; its stdout. */
export async function must(cmd: string, ...args: string[]): Promise<string> {
  const r = await run(cmd, args);
  assert.equal(r.code, 0, `${cmd} ${args.join(' ')}: ${r.stderr || r.stdout}`);
  return r.stdout;
}

/** A compiled state's entries as a node's current map contents (what an incremental sync diffs against). */
export function contents(entries: ReturnType<typeof compileState>['entries']): CurrentEntries {
  const out: CurrentEntries = {};
  for (const e of entries) (out[e.map] ??= new Map()).set(e.keyHex, e.valueHex);
  return out;
}

/**
 * The `prep-node-dp apply` input that takes a node from `now` (default: empty maps) to `state`
 * (parsed by DatapathStateSchema), compiled by prep-node's own compiler and sync.
 */
export function applyInput(state: unknown, now: CurrentEntries = {}): string {
  const entries = compileState(DatapathStateSchema.parse(state)).entries;
  return `${opLines(incrementalSync(entries, now).ops).join('\n')}\n`;
}

/** Resolves at a child's first line of stdout (its "ready"), rejects if it exits first. */
export function firstOutput(p: ChildProcess, what: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    p.stdout?.once('data', () => resolve());
    p.once('exit', (code) => reject(new Error(`${what} exited ${code}`)));
  });
}

export interface Sandbox<K extends string> {
  /** the namespaces' names, by role */
  readonly ns: Record<K, string>;
  readonly bpffs: string;
  /** the cgroup v2 child the datapath's socket hooks attach to (set by setUp) */
  readonly cgroup: string;
  /** builds bpf/, mounts the bpffs, makes the cgroup and the namespaces (lo up in each) */
  readonly setUp: () => Promise<void>;
  /** a veth pair: `da` in namespace `a`, its peer `db` in `b` */
  readonly link: (a: K, da: string, b: K, db: string) => Promise<void>;
  /** an address on a device, the device up (IPv6 without duplicate address detection) */
  readonly addr: (n: K, dev: string, cidr: string) => Promise<void>;
  /** `ip -n <ns> route add ...` (`-6` when an argument is an IPv6 address) */
  readonly route: (n: K, ...args: string[]) => Promise<void>;
  /** a sysctl written inside a namespace (`net.ipv4.ip_forward=1`) */
  readonly sysctl: (n: K, setting: string) => Promise<void>;
  /** prep-node-dp in the node's namespace with the sandbox's bpffs */
  readonly dp: (args: string[], input?: string) => Promise<Run>;
  /** `prep-node-dp install --cgroup <cgroup> ...args`, which must exit 0 */
  readonly install: (...args: string[]) => Promise<void>;
  /** `prep-node-dp apply` of the input, which must exit 0 */
  readonly apply: (input: string) => Promise<void>;
  /** a command in a namespace */
  readonly inNs: (n: K, cmd: string, ...args: string[]) => Promise<Run>;
  /** a long-running process in a namespace, killed by cleanup() */
  readonly spawnIn: (n: K, cmd: string, args: string[], stdin?: 'ignore' | 'pipe') => ChildProcess;
  /** removes the datapath, the processes, the namespaces, the cgroup, the bpffs; safe to call twice */
  readonly cleanup: () => void;
}

/**
 * A sandbox whose namespaces are `<prefix><pid % 100000><suffix>`, one per role: `node` is where
 * the datapath runs. `scratch` names its temporary directory (/tmp/prep-node-<scratch>-XXXXXX).
 */
export function dpSandbox<K extends string>(prefix: string, scratchName: string, roles: Record<K, string> & { node: string }): Sandbox<K> {
  const tag = `${prefix}${process.pid % 100000}`;
  const ns = Object.fromEntries(Object.entries(roles).map(([role, suffix]) => [role, `${tag}${String(suffix)}`])) as Record<K, string>;
  const node = (ns as Record<string, string>).node!;
  let scratch = '';
  let bpffs = '';
  let cgroup = '';
  let mounted = false;
  const procs: ChildProcess[] = [];

  const inNs = (n: K, cmd: string, ...args: string[]) => run('nsenter', [`--net=/run/netns/${ns[n]}`, cmd, ...args]);
  const dp = (args: string[], input?: string) => run('nsenter', [`--net=/run/netns/${node}`, DP, '--bpffs', bpffs, ...args], input);

  function cleanup(): void {
    const quiet = { stdio: 'ignore' as const };
    try {
      if (bpffs && existsSync(`${bpffs}/prep-node`)) execFileSync('nsenter', [`--net=/run/netns/${node}`, DP, '--bpffs', bpffs, 'remove'], quiet);
    } catch { /* reported by the test that left it */ }
    for (const p of procs.splice(0)) p.kill('SIGKILL');
    for (const n of Object.values<string>(ns)) {
      try { execFileSync('ip', ['netns', 'del', n], quiet); } catch { /* not created */ }
    }
    for (let i = 0; cgroup && existsSync(cgroup) && i < 50; i++) {
      try { rmdirSync(cgroup); } catch { execFileSync('sleep', ['0.1']); }
    }
    if (mounted) {
      try { execFileSync('umount', [bpffs], quiet); mounted = false; } catch { /* busy */ }
    }
    if (scratch && !mounted) rmSync(scratch, { recursive: true, force: true });
  }
  const onSignal = (sig: NodeJS.Signals) => { cleanup(); process.kill(process.pid, sig); };

  return {
    ns,
    get bpffs() { return bpffs; },
    get cgroup() { return cgroup; },
    async setUp() {
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      // synchronous and without run()'s 30 s limit: a first build on a busy machine takes longer
      execFileSync('make', ['-C', BPF_DIR, '-j1', 'all'], { stdio: 'pipe', timeout: 600_000 });
      scratch = mkdtempSync(`/tmp/prep-node-${scratchName}-`);
      bpffs = `${scratch}/bpffs`;
      mkdirSync(bpffs);
      await must('mount', '-t', 'bpf', 'bpf', bpffs);
      mounted = true;
      const v2 = ['/sys/fs/cgroup', '/sys/fs/cgroup/unified'].find((p) => existsSync(`${p}/cgroup.procs`) && existsSync(`${p}/cgroup.controllers`));
      assert.ok(v2, 'no cgroup v2 mount');
      cgroup = `${v2}/${tag}`;
      mkdirSync(cgroup);
      for (const n of Object.values<string>(ns)) {
        await must('ip', 'netns', 'add', n);
        await must('ip', '-n', n, 'link', 'set', 'lo', 'up');
      }
    },
    async link(a, da, b, db) {
      await must('ip', '-n', ns[a], 'link', 'add', da, 'type', 'veth', 'peer', 'name', db, 'netns', ns[b]);
    },
    async addr(n, dev, cidr) {
      await must('ip', '-n', ns[n], 'addr', 'add', cidr, 'dev', dev, ...(cidr.includes(':') ? ['nodad'] : []));
      await must('ip', '-n', ns[n], 'link', 'set', dev, 'up');
    },
    async route(n, ...args) {
      await must('ip', '-n', ns[n], ...(args.some((a) => a.includes(':')) ? ['-6'] : []), 'route', 'add', ...args);
    },
    async sysctl(n, setting) {
      await must('ip', 'netns', 'exec', ns[n], 'sysctl', '-qw', setting);
    },
    dp,
    async install(...args) {
      const r = await dp(['install', '--cgroup', cgroup, ...args]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
    },
    async apply(input) {
      const r = await dp(['apply'], input);
      assert.equal(r.code, 0, r.stdout + r.stderr);
    },
    inNs,
    spawnIn(n, cmd, args, stdin = 'ignore') {
      const p = spawn('nsenter', [`--net=/run/netns/${ns[n]}`, cmd, ...args], { stdio: [stdin, 'pipe', 'inherit'] });
      procs.push(p);
      return p;
    },
    cleanup,
  };
}
