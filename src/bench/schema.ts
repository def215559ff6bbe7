// `prep-node bench --json`: one document, schema prep-node/bench/v1. Times are milliseconds,
// latencies and CPU times microseconds, memory bytes. Every measured figure is a Figure: the median
// of the runs, their min and max (the spread), and the runs themselves.
import { z } from 'zod';

export const MODE_IDS = ['direct', 'prepnode-sock', 'prepnode-tc', 'iptables-nft', 'iptables-legacy', 'nftables'] as const;
export type ModeId = (typeof MODE_IDS)[number];

export const Figure = z.strictObject({
  median: z.number(),
  min: z.number(),
  max: z.number(),
  runs: z.array(z.number()).min(1),
});
export type Figure = z.output<typeof Figure>;

export const ConnectFigures = z.strictObject({
  /** ip:port the client connected to (the last-added service's VIP, or its endpoint for direct) */
  target: z.string(),
  /** new TCP connections per second, one at a time (socket, connect, close with RST) */
  perSec: Figure,
  /** connect() latency percentiles of each run */
  p50Us: Figure,
  p99Us: Figure,
  /** the client's system and user CPU time per connection (getrusage over the measured loop) */
  sysUsPerConn: Figure,
  userUsPerConn: Figure,
  /** over all runs */
  connections: z.number().int().nonnegative(),
  failed: z.number().int().nonnegative(),
  /** errno name -> count of failed connects */
  errors: z.record(z.string(), z.number().int()),
});
export type ConnectFigures = z.output<typeof ConnectFigures>;

export const MemoryFigures = z.strictObject({
  /** kernel memory charged to the memory cgroup the programming command ran in, after programming the whole set (one measurement) */
  kernelBytes: z.number().int().nullable(),
  /** what kernelBytes reads, or why it is null */
  kernelSource: z.string(),
  /** prep-node: the kernel's accounting of every map (fdinfo memlock) */
  mapsBytes: z.number().int().optional(),
  /** prep-node: of which the maps that grow with services (services, backends, maglev) */
  serviceMapsBytes: z.number().int().optional(),
  /** prep-node: entries in services + backends as the kernel holds them */
  mapEntries: z.number().int().optional(),
});
export type MemoryFigures = z.output<typeof MemoryFigures>;

export const BenchResult = z.strictObject({
  mode: z.enum(MODE_IDS),
  services: z.number().int().positive(),
  /** ok: measured; skipped: not attempted (reason); failed: attempted, did not finish (reason) */
  status: z.enum(['ok', 'skipped', 'failed']),
  reason: z.string().nullable(),
  connect: ConnectFigures.nullable(),
  /** median conn/s over the direct baseline's median at the same size (null without a baseline) */
  vsDirect: z.number().nullable(),
  /** the whole set into an empty datapath/table */
  programMs: Figure.nullable(),
  /** one service added to / removed from the set of this size */
  addMs: Figure.nullable(),
  removeMs: Figure.nullable(),
  memory: MemoryFigures.nullable(),
});
export type BenchResult = z.output<typeof BenchResult>;

export const ModeInfo = z.strictObject({
  id: z.enum(MODE_IDS),
  label: z.string(),
  /** the path a connection takes in this mode */
  path: z.string(),
  available: z.boolean(),
  /** why the mode could not run (kernel support, a missing tool) */
  reason: z.string().nullable(),
});
export type ModeInfo = z.output<typeof ModeInfo>;

export const Machine = z.strictObject({
  kernel: z.string(),
  os: z.string(),
  arch: z.string(),
  cpus: z.number().int(),
  cpuModel: z.string(),
  memoryBytes: z.number(),
  virtualization: z.string().nullable(),
  loadavgStart: z.array(z.number()),
  loadavgEnd: z.array(z.number()),
  /** CONFIG_IRQ_TIME_ACCOUNTING: false means softirq time is charged to the task it interrupted */
  irqTimeAccounting: z.boolean().nullable(),
  /** tool -> its version line, or null when missing */
  tools: z.record(z.string(), z.string().nullable()),
});
export type Machine = z.output<typeof Machine>;

export const BenchConfig = z.strictObject({
  sizes: z.array(z.number().int().positive()).min(1),
  runs: z.number().int().positive(),
  durationMs: z.number().int().positive(),
  warmup: z.number().int().nonnegative(),
  endpointsPerService: z.number().int().positive(),
  modes: z.array(z.enum(MODE_IDS)).min(1),
  programTimeoutS: z.number().positive(),
});
export type BenchConfig = z.output<typeof BenchConfig>;

/** The packet section: tc_lb through BPF_PROG_TEST_RUN (src/bench/packets.ts). */
export const PacketConfig = z.strictObject({
  /** numbers of services in the maps */
  sizes: z.array(z.number().int().positive()).min(1),
  /** iterations of the kernel's loop for `repeat` cases and the floor */
  repeat: z.number().int().positive(),
  /** packets (distinct flows, one test run each) of `flows` cases */
  flows: z.number().int().positive(),
  runs: z.number().int().positive(),
});
export type PacketConfig = z.output<typeof PacketConfig>;

export const PacketCase = z.strictObject({
  /** service-new, conntrack-hit, policy-allow, policy-ct-repeat, policy-deny */
  name: z.string(),
  family: z.union([z.literal(4), z.literal(6)]),
  /** what the packet exercises */
  path: z.string(),
  /** repeat: one packet in the kernel's loop; flows: one test run per packet, each a new flow (or the same flows again) */
  mode: z.enum(['flows', 'repeat']),
  /** over all runs */
  packets: z.number().int().nonnegative(),
  /** the kernel's duration per packet (ns), median of the runs */
  nsPerPacket: Figure,
  /** nsPerPacket's median minus the floor's (measured the same way: repeat or flows) */
  aboveFloorNs: z.number(),
  /** the program's return codes (TC_ACT_* names) over all runs */
  retvals: z.record(z.string(), z.number().int()),
  /** the first output packet's source and destination (what NAT made of it) */
  outSrc: z.string(),
  outDst: z.string(),
});
export type PacketCase = z.output<typeof PacketCase>;

export const PacketResult = z.strictObject({
  services: z.number().int().positive(),
  status: z.enum(['ok', 'skipped', 'failed']),
  reason: z.string().nullable(),
  /** the `prep-node-dp apply` that filled the maps, ms (the sum of both when each family has its own install) */
  fillMs: z.number().nullable(),
  /** a tc program that returns TC_ACT_OK, both ways */
  floor: z.strictObject({ repeatNs: Figure, flowsNs: Figure }).nullable(),
  cases: z.array(PacketCase),
  /** drop counters after the runs (reason -> packets, non-zero only) */
  drops: z.record(z.string(), z.number()),
  conntrackEntries: z.number().int().nullable(),
});
export type PacketResult = z.output<typeof PacketResult>;

export const PacketSection = z.strictObject({
  config: PacketConfig,
  results: z.array(PacketResult),
});
export type PacketSection = z.output<typeof PacketSection>;

export const BenchDocument = z.strictObject({
  schema: z.literal('prep-node/bench/v1'),
  version: z.string(),
  command: z.string(),
  started: z.string(),
  finished: z.string(),
  durationS: z.number(),
  machine: Machine,
  config: BenchConfig,
  modes: z.array(ModeInfo),
  results: z.array(BenchResult),
  /** the tc program's cost per packet (absent when the run was asked not to measure it) */
  packets: PacketSection.optional(),
  notes: z.array(z.string()),
});
export type BenchDocument = z.output<typeof BenchDocument>;
