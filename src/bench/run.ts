// One bench run: every mode set up in its own namespaces, then for each size (ascending): every mode
// programs the set; the client's connection runs go round the modes (run 1 of each, run 2 of
// each, ...); every mode adds and removes one service. Modes are interleaved rather than run one
// after the other, so a slow drift of the machine (other work on shared cores) spreads over all of
// them instead of favouring one.
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { gunzipSync } from 'node:zlib';
import { z } from 'zod';
import type { BenchEnv } from './env.js';
import { run, why } from './exec.js';
import { makeMode, Unavailable, type Mode, type ModeContext, type Tools } from './modes.js';
import { runPacketBench } from './packets.js';
import type { BenchConfig, BenchDocument, BenchResult, ConnectFigures, Machine, MemoryFigures, ModeInfo, PacketConfig, PacketSection } from './schema.js';
import { benchServices, type BenchService } from './services.js';
import { figure } from './stats.js';
import { createTopology } from './topology.js';

/** What `prep-node-bench connect` prints. */
const ConnectDoc = z.object({
  target: z.string(),
  connections: z.number(),
  failed: z.number(),
  errors: z.record(z.string(), z.number()),
  elapsed_ns: z.number(),
  per_sec: z.number(),
  latency_ns: z.object({ min: z.number(), p50: z.number(), p90: z.number(), p99: z.number(), max: z.number(), mean: z.number() }).nullable(),
  utime_ns: z.number(),
  stime_ns: z.number(),
});
type ConnectDoc = z.output<typeof ConnectDoc>;

export interface RunOptions {
  config: BenchConfig;
  env: BenchEnv;
  tools: Tools;
  version: string;
  command: string;
  /** the packet section (tc_lb through BPF_PROG_TEST_RUN), or undefined to leave it out */
  packets?: PacketConfig;
  /** progress, one line at a time (stderr) */
  log: (line: string) => void;
}

interface ModeState {
  mode: Mode;
  ctx: ModeContext | null;
  info: ModeInfo;
  /** set once a size could not be programmed: larger sizes are skipped with this */
  stopped: string | null;
  /** the first and the last size programmed with their median times, to predict the next */
  first: { size: number; ms: number } | null;
  last: { size: number; ms: number } | null;
}

const fmtS = (ms: number) => (ms >= 1000 ? `${(ms / 1000).toFixed(ms >= 10_000 ? 0 : 1)} s` : `${ms.toFixed(ms >= 100 ? 0 : 1)} ms`);

export async function runBench(o: RunOptions): Promise<{ doc: BenchDocument; modes: Mode[] }> {
  const { config, env, tools } = o;
  const started = new Date();
  const t0 = Date.now();
  const log = (msg: string) => o.log(`[${String(Math.round((Date.now() - t0) / 1000)).padStart(4)} s] ${msg}`);
  const loadavgStart = os.loadavg();
  const machine = await machineInfo(tools);
  const timeoutMs = config.programTimeoutS * 1000;

  // ---- set up every mode; one that cannot run is reported with why and the others go on
  const states: ModeState[] = [];
  for (const id of config.modes) {
    const mode = makeMode(id);
    const info: ModeInfo = { id, label: mode.label, path: mode.path, available: false, reason: null };
    const st: ModeState = { mode, ctx: null, info, stopped: null, first: null, last: null };
    states.push(st);
    try {
      const topo = await createTopology(env, id, tools.bench);
      st.ctx = { env, topo, tools, timeoutMs };
      await mode.setup(st.ctx);
      info.available = true;
      log(`${id}: ready`);
    } catch (err) {
      info.reason = err instanceof Unavailable ? err.message : `setup failed: ${(err as Error).message}`;
      log(`${id}: unavailable: ${info.reason}`);
    }
  }

  const maxSize = Math.max(...config.sizes);
  const all = benchServices(maxSize + 1, config.endpointsPerService);
  const results: BenchResult[] = [];
  for (const size of config.sizes) {
    const set = all.slice(0, size);
    const extra = all[size]!;
    const last = set[set.length - 1]!;
    const sized: Sized = { size, set, extra, last, config, env, log };
    const live = states.filter((st) => st.info.available && st.ctx);
    // 1. every mode programs the set (each in its own namespaces: the sets coexist)
    const rows = new Map<ModeState, BenchResult>();
    for (const st of live) rows.set(st, await program(st, sized));
    // 2. connection runs, one run of each mode in turn: a drift of the machine (other work on
    //    shared cores) spreads over all modes instead of favouring the one measured first
    const measured = live.filter((st) => rows.get(st)!.status === 'ok');
    const docs = new Map<ModeState, ConnectDoc[]>(measured.map((st) => [st, []]));
    for (let r = 0; r < config.runs; r++) {
      for (const st of measured) {
        const row = rows.get(st)!;
        if (row.status !== 'ok') continue;
        try {
          docs.get(st)!.push(await connectRun(st.ctx!, st.mode, last, config));
        } catch (err) {
          fail(st, row, size, err, log);
        }
      }
    }
    for (const st of measured) {
      const row = rows.get(st)!;
      if (row.status !== 'ok') continue;
      row.connect = connectFigures(st.mode.target(last), docs.get(st)!);
      const c = row.connect;
      log(`${tag(size, st.mode)} ${Math.round(c.perSec.median)} conn/s, p50 ${c.p50Us.median} µs, p99 ${c.p99Us.median} µs, sys ${c.sysUsPerConn.median} µs/conn${c.failed ? `, ${c.failed} failed` : ''}`);
    }
    // 3. one service added and removed, runs times
    for (const st of measured) await update(st, rows.get(st)!, sized);
    results.push(...live.map((st) => rows.get(st)!));
  }

  // conn/s relative to the direct baseline at the same size
  for (const r of results) {
    const base = results.find((b) => b.mode === 'direct' && b.services === r.services && b.connect);
    r.vsDirect = base?.connect && r.connect ? Number((r.connect.perSec.median / base.connect.perSec.median).toFixed(3)) : null;
  }

  // the tc program's cost per packet, after the connection runs (nothing else runs meanwhile)
  let packets: PacketSection | undefined;
  if (o.packets) packets = await runPacketBench(env, tools.loader, o.packets, log);

  const finished = new Date();
  const doc: BenchDocument = {
    schema: 'prep-node/bench/v1',
    version: o.version,
    command: o.command,
    started: started.toISOString(),
    finished: finished.toISOString(),
    durationS: Math.round((finished.getTime() - started.getTime()) / 100) / 10,
    machine: { ...machine, loadavgStart: loadavgStart.map(round2), loadavgEnd: os.loadavg().map(round2) },
    config,
    modes: states.map((s) => s.info),
    results,
    ...(packets ? { packets } : {}),
    notes: [...notes(machine, env), ...(packets ? PACKET_NOTES : [])],
  };
  return { doc, modes: states.filter((s) => s.ctx).map((s) => s.mode) };
}

const round2 = (x: number) => Math.round(x * 100) / 100;

interface Sized {
  size: number;
  set: readonly BenchService[];
  extra: BenchService;
  /** the last-added service of the set: where the client connects */
  last: BenchService;
  config: BenchConfig;
  env: BenchEnv;
  log: (msg: string) => void;
}

const tag = (size: number, mode: Mode) => `${String(size).padStart(6)} services  ${mode.id.padEnd(15)}`;

function fail(st: ModeState, row: BenchResult, size: number, err: unknown, log: (msg: string) => void): void {
  row.status = 'failed';
  row.reason = (err as Error).message.split('\n')[0] ?? 'failed';
  st.stopped = `not attempted: ${size} services failed (${row.reason})`;
  log(`${tag(size, st.mode)} failed: ${row.reason}`);
}

/** Program the whole set runs times (timed), measure memory once; a row with status ok, or why not. */
async function program(st: ModeState, z: Sized): Promise<BenchResult> {
  const { mode } = st;
  const { size, config, env, log } = z;
  const row: BenchResult = { mode: mode.id, services: size, status: 'ok', reason: null, connect: null, vsDirect: null, programMs: null, addMs: null, removeMs: null, memory: null };
  const limit = config.programTimeoutS;
  if (st.stopped) return { ...row, status: 'skipped', reason: st.stopped };
  if (!mode.programs) return row;
  if (st.first && st.last && st.last.size > st.first.size) {
    // Programming is at least linear in the number of services: do not start what cannot finish.
    // The cost per service is the slope between the first and the last size (the fixed cost of
    // starting the command cancels out), extrapolated from the last size.
    const perService = Math.max(0, (st.last.ms - st.first.ms) / (st.last.size - st.first.size));
    const predicted = st.last.ms + perService * (size - st.last.size);
    if (predicted > limit * 1000) {
      st.stopped = `not attempted: ${st.last.size} services took ${fmtS(st.last.ms)} to program (${fmtS(perService * 1000)} per 1000 services); at least linear growth predicts ${fmtS(predicted)} or more for ${size}, over --program-timeout ${limit} s`;
      log(`${tag(size, mode)} skipped (${fmtS(predicted)} predicted)`);
      return { ...row, status: 'skipped', reason: st.stopped };
    }
  }
  try {
    const mem = env.memCgroup(`${mode.id}-${size}`);
    await mode.prepareSize(mem);
    const before = mem ? env.memBytes(mem) : null;
    const times: number[] = [];
    for (let r = 0; r < config.runs; r++) {
      if (r > 0) await mode.reset();
      const res = await mode.programAll(z.set);
      if (res.timedOut) {
        st.stopped = `not attempted: ${size} services took longer than --program-timeout ${limit} s to program`;
        log(`${tag(size, mode)} programming stopped after ${limit} s`);
        return { ...row, status: 'failed', reason: `programming ${size} services took longer than --program-timeout ${limit} s: stopped` };
      }
      if (res.code !== 0) throw new Error(`programming ${size} services failed: ${why(res)}`);
      times.push(res.ms);
      if (r === 0) {
        const after = mem ? env.memBytes(mem) : null;
        const maps = await mode.mapMemory();
        const memory: MemoryFigures = {
          kernelBytes: before !== null && after !== null ? Math.max(0, after - before) : null,
          kernelSource: 'kind' in env.memory ? env.memory.source : env.memory.reason,
        };
        if (maps) Object.assign(memory, { mapsBytes: maps.mapsBytes, serviceMapsBytes: maps.serviceMapsBytes, mapEntries: maps.entries });
        row.memory = memory;
      }
    }
    row.programMs = figure(times);
    st.last = { size, ms: row.programMs.median };
    st.first ??= st.last;
    log(`${tag(size, mode)} programmed in ${fmtS(row.programMs.median)}`);
  } catch (err) {
    fail(st, row, size, err, log);
  }
  return row;
}

/** Add the extra service and remove it again, runs times, each timed. */
async function update(st: ModeState, row: BenchResult, z: Sized): Promise<void> {
  const { mode } = st;
  if (!mode.programs || row.status !== 'ok') return;
  const adds: number[] = [];
  const removes: number[] = [];
  const after = [...z.set, z.extra];
  try {
    for (let r = 0; r < z.config.runs; r++) {
      const a = await mode.add(after, z.extra);
      if (a.code !== 0) throw new Error(`adding one service to ${z.size} failed: ${why(a)}`);
      adds.push(a.ms);
      const d = await mode.remove(z.set, z.extra);
      if (d.code !== 0) throw new Error(`removing one service from ${z.size + 1} failed: ${why(d)}`);
      removes.push(d.ms);
    }
    row.addMs = figure(adds);
    row.removeMs = figure(removes);
    z.log(`${tag(z.size, mode)} add one ${fmtS(row.addMs.median)}, remove one ${fmtS(row.removeMs.median)}`);
  } catch (err) {
    fail(st, row, z.size, err, z.log);
  }
}

/** One run of the load generator against the last-added service. */
async function connectRun(ctx: ModeContext, mode: Mode, last: BenchService, config: BenchConfig): Promise<ConnectDoc> {
  const target = mode.target(last);
  const args = ['connect', '--netns', ctx.topo.path.client, ...(mode.clientCgroup ? ['--cgroup', mode.clientCgroup] : []), '--target', target, '--duration-ms', String(config.durationMs), '--warmup', String(config.warmup)];
  const res = await run(ctx.tools.bench, args, { timeoutMs: config.durationMs + 60_000 });
  if (res.code !== 0) throw new Error(`load generator: ${why(res)}`);
  const doc = ConnectDoc.parse(JSON.parse(res.stdout));
  if (doc.connections === 0 || !doc.latency_ns) {
    const errs = Object.entries(doc.errors).map(([e, n]) => `${e} x${n}`).join(', ');
    throw new Error(`no connection to ${target} succeeded (${errs || 'no error recorded'})`);
  }
  return doc;
}

function connectFigures(target: string, docs: readonly ConnectDoc[]): ConnectFigures {
  const us = (ns: number) => ns / 1000;
  const errors: Record<string, number> = {};
  for (const d of docs) for (const [e, n] of Object.entries(d.errors)) errors[e] = (errors[e] ?? 0) + n;
  return {
    target,
    perSec: figure(docs.map((d) => d.per_sec)),
    p50Us: figure(docs.map((d) => us(d.latency_ns!.p50))),
    p99Us: figure(docs.map((d) => us(d.latency_ns!.p99))),
    sysUsPerConn: figure(docs.map((d) => us(d.stime_ns) / d.connections)),
    userUsPerConn: figure(docs.map((d) => us(d.utime_ns) / d.connections)),
    connections: docs.reduce((n, d) => n + d.connections, 0),
    failed: docs.reduce((n, d) => n + d.failed, 0),
    errors,
  };
}

// ---------------------------------------------------------------- the machine

function readOr(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

/** CONFIG_IRQ_TIME_ACCOUNTING of the running kernel, null when its config cannot be read. */
function irqTimeAccounting(): boolean | null {
  let config = readOr(`/boot/config-${os.release()}`);
  if (!config) {
    try {
      config = gunzipSync(readFileSync('/proc/config.gz')).toString();
    } catch {
      return null;
    }
  }
  if (/^CONFIG_IRQ_TIME_ACCOUNTING=y$/m.test(config)) return true;
  return /CONFIG_IRQ_TIME_ACCOUNTING is not set/.test(config) ? false : null;
}

async function versionOf(cmd: string, args: string[]): Promise<string | null> {
  try {
    const r = await run(cmd, args, { timeoutMs: 10_000 });
    return r.code === 0 ? (r.stdout.trim().split('\n')[0] ?? '') : null;
  } catch {
    return null;
  }
}

async function machineInfo(tools: Tools): Promise<Omit<Machine, 'loadavgStart' | 'loadavgEnd'>> {
  const osRelease = /^PRETTY_NAME="?([^"\n]*)"?$/m.exec(readOr('/etc/os-release'))?.[1] ?? 'unknown';
  const virt = await versionOf('systemd-detect-virt', []);
  return {
    kernel: os.release(),
    os: osRelease,
    arch: os.arch(),
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model.trim() ?? 'unknown',
    memoryBytes: os.totalmem(),
    virtualization: virt,
    irqTimeAccounting: irqTimeAccounting(),
    tools: {
      'prep-node-dp': await versionOf(tools.loader, ['version']),
      'iptables-nft-restore': await versionOf(tools.iptablesNftRestore, ['--version']),
      'iptables-legacy-restore': await versionOf(tools.iptablesLegacyRestore, ['--version']),
      nft: await versionOf(tools.nft, ['--version']),
    },
  };
}

const PACKET_NOTES = [
  'Per packet: tc_lb as installed (maps filled through prep-node-dp apply) run by BPF_PROG_TEST_RUN; the figure is the kernel\'s own duration (the program runs only, no syscall), beside a tc program that only returns TC_ACT_OK (the floor). "repeat" cases run one packet in the kernel\'s loop; first packets of flows cannot (the first run creates the conntrack entries and rewrites the buffer), so "flows" cases make one test run per packet, each a new flow, and their floor is measured the same way: one run per call includes the kernel\'s timer reads, which the floor carries too.',
  'Per packet: the events ring buffer has no reader during the packet runs; once it is full, drop and flow events are counted as lost instead of written, so later first packets and drops skip the copy into the ring a node with a reader pays.',
  'Per packet: IPv6 has the service cases (service-new, conntrack-hit) and the policy cases over as many IPv6 services as IPv4 ones. Up to BENCH_ONE_STATE_MAX (10k) services both families share one install; above it each family (its services and the policy endpoint) is filled and measured in an install of its own: 1M IPv4 plus 1M IPv6 services in one state ran the compiler out of V8\'s default heap.',
];

function notes(machine: Omit<Machine, 'loadavgStart' | 'loadavgEnd'>, env: BenchEnv): string[] {
  const irq =
    machine.irqTimeAccounting === false
      ? 'This kernel has CONFIG_IRQ_TIME_ACCOUNTING off: softirq work is charged to the task it interrupts, and veth delivers a packet in the sender\'s context, so the client\'s system time includes the forwarding and NAT its packets cause in the node namespace (and the SYN-ACK\'s way back).'
      : machine.irqTimeAccounting === true
        ? 'This kernel has CONFIG_IRQ_TIME_ACCOUNTING on: softirq work (forwarding, NAT in the node namespace) is not in the client\'s system time; it shows only in conn/s and latency.'
        : 'Whether softirq time is charged to the client (CONFIG_IRQ_TIME_ACCOUNTING) is unknown: the kernel config could not be read.';
  return [
    'conn/s: one client, one connection at a time: socket(), connect() to the last-added service, close() with SO_LINGER 0 (a RST: no TIME_WAIT on either side); latency is the time connect() took (SYN to SYN-ACK through the node and back).',
    irq,
    'Programming times are the wall time of the one command that writes the set (iptables-restore --noflush, nft -f, prep-node-dp apply), from spawn to exit, input prepared beforehand; the same command kube-proxy or prep-node would run.',
    'Add/remove one service: iptables as kube-proxy\'s partial sync writes it (KUBE-SERVICES rewritten whole, the service\'s own chains); nftables: its chains and map elements only; prep-node: the map entries an incremental sync writes.',
    `Kernel memory: ${'kind' in env.memory ? `${env.memory.source}, measured once per size after the first full programming (nf_tables, x_tables and BPF map allocations are charged to the memory cgroup of the process that makes them)` : `not measured: ${env.memory.reason}`}. For prep-node the kernel's own map accounting (fdinfo memlock, which counts preallocated LRU maps and hash bucket arrays at their full capacity) is given too; its memory cgroup figure counts only the entries (the install is charged before the measurement starts), and small sets can show +0 because hash map elements first come from per-CPU caches filled when the map is created. Conntrack entries of live connections are not included for any mode.`,
    'iptables rules are written in service order, so the last-added service is the last rule of KUBE-SERVICES: the worst case. kube-proxy writes them in map order; the average service sits halfway.',
  ];
}
