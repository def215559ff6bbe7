// `prep-node bench`: the prep-node datapath against kube-proxy's iptables and nftables modes, on
// this machine, in network namespaces the bench creates and removes (src/bench/). A table on
// stdout, or --json; --report DIR adds a Markdown report with SVG plots. Root only.
//
// Cleanup: SIGINT, SIGTERM and SIGHUP kill the children and remove every namespace, mount and
// cgroup before exiting (128 + signal number). A SIGKILLed run cannot clean up: everything it
// creates is named after its pid (src/bench/env.ts), and the next run, or `--cleanup`, removes
// what belongs to a pid that is no longer a bench.
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ExitCode, PrepNodeError, UsageError } from '../errors.js';
import { LOCAL_LOADER } from '../datapath/loader.js';
import { BenchEnv, removeLeftovers } from '../bench/env.js';
import { killAll } from '../bench/exec.js';
import { renderText, writeReport } from '../bench/render.js';
import { runBench } from '../bench/run.js';
import { cleanupAgentBench, renderAgentText, runAgentBench } from '../bench/agent.js';
import { mkdirSync, writeFileSync } from 'node:fs';
import { MODE_IDS, type BenchConfig, type ModeId, type PacketConfig } from '../bench/schema.js';
import { maxServices } from '../bench/services.js';
import type { Tools } from '../bench/modes.js';
import type { Io } from './check.js';

/** bpf/build/prep-node-bench (dist/src/commands -> repo root/bpf/build) */
export const LOCAL_BENCH = resolve(dirname(fileURLToPath(import.meta.url)), '../../../bpf/build/prep-node-bench');

export const DEFAULT_SIZES = [1, 1000, 10_000, 100_000];

export interface BenchOptions {
  /** numbers of services, e.g. ['1', '1000'] (commander's list collector) */
  sizes?: string[];
  runs?: number;
  /** ms of connections per run */
  duration?: number;
  warmup?: number;
  endpoints?: number;
  modes?: string[];
  /** seconds one programming command may take */
  programTimeout?: number;
  json?: boolean;
  report?: string;
  /** only remove what interrupted runs left behind */
  cleanup?: boolean;
  /** no progress lines on stderr */
  quiet?: boolean;
  /** run the agent's benchmark instead of the datapath modes */
  agent?: boolean;
  /** the agent's benchmark at 1000 services and 10 s of churn per rate */
  quick?: boolean;
  /** with --agent: seconds of churn per rate */
  churn?: number;
  /** false: leave the packet section out (--no-pkt) */
  pkt?: boolean;
  /** numbers of services of the packet section */
  pktSizes?: string[];
  pktRepeat?: number;
  pktFlows?: number;
}

export const DEFAULT_PKT_SIZES = [10, 10_000, 1_000_000];
/** flows of all runs must fit below the deny case's source port (src/bench/packets.ts) */
const PKT_PORTS = 60_000 - 1024;

/** Tool paths; PREP_NODE_BENCH_<TOOL> overrides one (a missing tool makes its mode unavailable). */
export function benchTools(env: NodeJS.ProcessEnv = process.env): Tools {
  return {
    bench: env.PREP_NODE_BENCH_BIN ?? LOCAL_BENCH,
    loader: env.PREP_NODE_BENCH_LOADER ?? LOCAL_LOADER,
    iptablesNftRestore: env.PREP_NODE_BENCH_IPTABLES_NFT_RESTORE ?? 'iptables-nft-restore',
    iptablesLegacyRestore: env.PREP_NODE_BENCH_IPTABLES_LEGACY_RESTORE ?? 'iptables-legacy-restore',
    nft: env.PREP_NODE_BENCH_NFT ?? 'nft',
  };
}

export function benchConfig(o: BenchOptions): BenchConfig {
  const endpoints = o.endpoints ?? 2;
  const sizes = o.sizes && o.sizes.length > 0 ? o.sizes.map((s) => parseSize(s)) : DEFAULT_SIZES;
  const limit = maxServices(endpoints) - 1;
  for (const s of sizes) if (s > limit) throw new UsageError(`--sizes: ${s} services with ${endpoints} endpoints each do not fit the bench's address ranges (at most ${limit})`);
  const modes = o.modes && o.modes.length > 0 ? o.modes : [...MODE_IDS];
  for (const m of modes) if (!(MODE_IDS as readonly string[]).includes(m)) throw new UsageError(`--modes: unknown mode "${m}" (expected ${MODE_IDS.join(', ')})`);
  // direct is the baseline every mode is compared with: always first
  const chosen = [...new Set(['direct', ...modes])] as ModeId[];
  return {
    sizes: [...new Set(sizes)].sort((a, b) => a - b),
    runs: o.runs ?? 3,
    durationMs: o.duration ?? 1000,
    warmup: o.warmup ?? 200,
    endpointsPerService: endpoints,
    modes: chosen,
    programTimeoutS: o.programTimeout ?? 60,
  };
}

/** The packet section's configuration, or undefined with --no-pkt. */
export function packetConfig(o: BenchOptions, runs: number): PacketConfig | undefined {
  if (o.pkt === false) return undefined;
  const sizes = o.pktSizes && o.pktSizes.length > 0 ? o.pktSizes.map((s) => parseSize(s, '--pkt-sizes')) : DEFAULT_PKT_SIZES;
  const limit = maxServices(1);
  for (const s of sizes) if (s > limit) throw new UsageError(`--pkt-sizes: ${s} services do not fit the bench's address ranges (at most ${limit})`);
  const flows = o.pktFlows ?? 10_000;
  if (flows * runs > PKT_PORTS) throw new UsageError(`--pkt-flows ${flows} x --runs ${runs} is more than the ${PKT_PORTS} source ports the flows of all runs use: lower one of them`);
  return { sizes: [...new Set(sizes)].sort((a, b) => a - b), repeat: o.pktRepeat ?? 1_000_000, flows, runs };
}

function parseSize(s: string, flag = '--sizes'): number {
  const m = /^(\d+)([km])?$/i.exec(s.trim());
  const n = m ? Number(m[1]) * (m[2] ? (m[2].toLowerCase() === 'k' ? 1000 : 1_000_000) : 1) : NaN;
  if (!Number.isSafeInteger(n) || n < 1) throw new UsageError(`${flag}: expected numbers of services such as 1,1000,10k,1m, got "${s}"`);
  return n;
}

const SIGNALS: Record<string, number> = { SIGINT: 2, SIGTERM: 15, SIGHUP: 1 };

export async function bench(options: BenchOptions, io: Io): Promise<number> {
  if (process.getuid?.() !== 0) {
    throw new PrepNodeError('bench needs root: it creates network namespaces, cgroups and a bpffs, loads BPF programs and nftables/iptables rules (inside its own namespaces only). Run it with sudo.', ExitCode.privilege);
  }
  const log = (line: string) => {
    if (!options.quiet) io.stderr.write(`bench: ${line}\n`);
  };
  if (options.cleanup) {
    const removed = removeLeftovers();
    for (const r of removed) log(`removed ${r}`);
    log(removed.length ? `removed ${removed.length} leftovers of interrupted runs` : 'nothing left behind by earlier runs');
    return ExitCode.ok;
  }
  if (options.agent) return agentBench(options, io, log);
  if (options.quick) throw new UsageError('--quick applies to --agent only');
  if (options.runs === 0) throw new UsageError('--runs 0 applies to --agent only (it leaves the nftables figure out): give 1 or more');
  const config = benchConfig(options);
  const packets = packetConfig(options, config.runs);
  const tools = benchTools();
  if (!existsSync(tools.bench)) throw new UsageError(`the load generator ${tools.bench} is missing: build it with \`make -C bpf\``);

  for (const r of removeLeftovers(true)) log(`removed leftover of an interrupted run: ${r}`);
  const env = new BenchEnv();
  let cleaned = false;
  const cleanup = () => {
    if (cleaned) return;
    cleaned = true;
    killAll();
    env.cleanup();
  };
  const handlers = Object.keys(SIGNALS).map((sig) => {
    const h = () => {
      io.stderr.write(`bench: ${sig}: removing the namespaces, mounts and cgroups of this run\n`);
      cleanup();
      process.exit(128 + SIGNALS[sig]!);
    };
    process.on(sig, h);
    return [sig, h] as const;
  });
  try {
    env.init();
    const command = ['prep-node', 'bench', ...process.argv.slice(process.argv.indexOf('bench') + 1)].join(' ');
    const { doc, modes } = await runBench({ config, env, tools, version: io.version, command, log, ...(packets ? { packets } : {}) });
    for (const m of modes) await m.teardown().catch(() => undefined);
    cleanup();
    if (options.report) {
      const files = await writeReport(options.report, doc);
      log(`report: ${files.join(', ')}`);
    }
    io.stdout.write(options.json ? `${JSON.stringify(doc, null, 2)}\n` : renderText(doc));
    return ExitCode.ok;
  } finally {
    cleanup();
    for (const [sig, h] of handlers) process.off(sig, h);
  }
}

/** The CLI this file belongs to (dist/src/commands -> dist/src/cli.js). */
const LOCAL_CLI = resolve(dirname(fileURLToPath(import.meta.url)), '../cli.js');

/** `bench --agent`: the agent against the fake API server on real pinned maps (src/bench/agent.ts). */
async function agentBench(options: BenchOptions, io: Io, log: (line: string) => void): Promise<number> {
  const tools = benchTools();
  if (!existsSync(tools.loader)) throw new UsageError(`the loader ${tools.loader} is missing: build it with \`make -C bpf\``);
  const quick = options.quick === true;
  // interrupted: the agent child killed (its mount namespace, bpffs and datapath go with it), the
  // nftables namespace and the cgroup removed
  const handlers = Object.keys(SIGNALS).map((sig) => {
    const h = () => {
      io.stderr.write(`bench: ${sig}: stopping the agent, removing the namespace and cgroup of this run\n`);
      killAll();
      cleanupAgentBench();
      process.exit(128 + SIGNALS[sig]!);
    };
    process.on(sig, h);
    return [sig, h] as const;
  });
  try {
    return await agentBenchRun(options, io, log, tools, quick);
  } finally {
    for (const [sig, h] of handlers) process.off(sig, h);
  }
}

async function agentBenchRun(options: BenchOptions, io: Io, log: (line: string) => void, tools: Tools, quick: boolean): Promise<number> {
  if (options.sizes && options.sizes.length !== 1) throw new UsageError('--agent takes one size: --sizes N (services)');
  const services = options.sizes ? parseSize(options.sizes[0]!) : quick ? 1000 : 10_000;
  if (services > maxServices(5) - 1) throw new UsageError(`--sizes: ${services} services with 5 endpoints each do not fit the bench's address ranges (at most ${maxServices(5) - 1})`);
  const doc = await runAgentBench({
    services,
    endpointsPer: 5,
    pods: Math.floor(services / 2),
    rates: [100, 1000],
    churnSeconds: options.churn ?? (quick ? 10 : 30),
    nftRuns: options.runs ?? 3,
    ...(process.env.PREP_NODE_BENCH_AGENT_NODE_ARGS && { agentNodeArgs: process.env.PREP_NODE_BENCH_AGENT_NODE_ARGS }),
    cli: LOCAL_CLI,
    loader: tools.loader,
    nft: tools.nft,
    log,
  });
  killAll();
  if (options.report) {
    mkdirSync(options.report, { recursive: true });
    const name = services === 10_000 && !options.churn ? 'agent' : `agent-${services}`;
    writeFileSync(`${options.report}/${name}.json`, `${JSON.stringify(doc, null, 2)}\n`);
    writeFileSync(`${options.report}/${name}.txt`, renderAgentText(doc));
    log(`report: ${options.report}/${name}.json, ${options.report}/${name}.txt`);
  }
  io.stdout.write(options.json ? `${JSON.stringify(doc, null, 2)}\n` : renderAgentText(doc));
  return ExitCode.ok;
}
