// The ways the bench programs the same service set, each in its own namespaces (topology.ts):
//
//   direct           no service at all: the client connects to the last service's first endpoint
//                    (the baseline every mode is compared with)
//   prepnode-sock    prep-node's datapath, sock_lb: the client runs in a cgroup v2 directory with
//                    connect4/sendmsg4/... attached; connect() is translated once, packets are
//                    never touched (the primary path: pod -> ClusterIP from a local socket)
//   prepnode-tc      prep-node's datapath, tc_lb on the node's n0 and n1 ingress: DNAT, conntrack
//                    map and reverse NAT per packet (what forwarded traffic gets)
//   iptables-nft     kube-proxy's iptables mode through iptables-restore with the nf_tables backend
//   iptables-legacy  the same rules through iptables-legacy-restore (x_tables)
//   nftables         kube-proxy's nftables mode through nft -f
//
// Programming commands run through `prep-node-bench exec` in the node namespace (the loader in the
// client's for sock_lb, whose programs are not per-namespace) and in a memory cgroup, so the kernel
// memory they allocate is charged somewhere the bench can read.
import { existsSync } from 'node:fs';
import { compileState } from '../datapath/compile.js';
import type { DatapathState } from '../datapath/schema.js';
import { deleteEntries, fullSync, incrementalSync, type CurrentEntries } from '../datapath/sync.js';
import type { MapEntry } from '../datapath/compile.js';
import { opLines } from '../datapath/writer.js';
import type { BenchEnv } from './env.js';
import { run, why, type ExecResult } from './exec.js';
import { IPTABLES_FLUSH, iptablesAdd, iptablesBaseRules, iptablesFull, iptablesRemove } from './kube-iptables.js';
import { NFT_DELETE_TABLE, nftAdd, nftFull, nftRemove } from './kube-nftables.js';
import type { ModeId } from './schema.js';
import type { BenchService } from './services.js';
import { NODE_BACKEND_SIDE, NODE_CLIENT_SIDE, type Topology } from './topology.js';

export { MODE_IDS, type ModeId } from './schema.js';

/** A mode the kernel or the machine cannot run: the reason is reported, the other modes go on. */
export class Unavailable extends Error {}

export interface Tools {
  /** bpf/build/prep-node-bench */
  bench: string;
  /** bpf/build/prep-node-dp */
  loader: string;
  iptablesNftRestore: string;
  iptablesLegacyRestore: string;
  nft: string;
}

export interface ModeContext {
  env: BenchEnv;
  topo: Topology;
  tools: Tools;
  /** limit for one programming command */
  timeoutMs: number;
}

/** Figures a mode can add to the memory column besides the memory cgroup's. */
export interface MapMemory {
  /** the kernel's accounting of every map of the datapath (fdinfo memlock, read by the loader's status) */
  mapsBytes: number;
  /** of which the maps that grow with services: services, backends, maglev */
  serviceMapsBytes: number;
  /** entries in services and backends */
  entries: number;
}

export interface Mode {
  readonly id: ModeId;
  readonly label: string;
  /** which path the connections take, for the report */
  readonly path: string;
  /** false: nothing to program (direct) */
  readonly programs: boolean;
  /** the cgroup v2 directory the client joins, if any */
  clientCgroup: string | null;
  /** build what the mode needs; throws Unavailable with the reason */
  setup(ctx: ModeContext): Promise<void>;
  /** where the client connects for a service */
  target(s: BenchService): string;
  /** before a new size: leave nothing programmed; later programming charges memCgroup (may be null) */
  prepareSize(memCgroup: string | null): Promise<void>;
  /** untimed: remove every service (between timed runs) */
  reset(): Promise<void>;
  /** the whole set into an empty datapath, timed */
  programAll(services: readonly BenchService[]): Promise<ExecResult>;
  /** one service added: `after` is the set with it, timed */
  add(after: readonly BenchService[], added: BenchService): Promise<ExecResult>;
  /** one service removed: `after` is the set without it, timed */
  remove(after: readonly BenchService[], removed: BenchService): Promise<ExecResult>;
  /** the kernel's own accounting of the datapath's maps, where there are maps */
  mapMemory(): Promise<MapMemory | null>;
  /** best effort: undo what setup did inside the namespaces (they are deleted afterwards anyway) */
  teardown(): Promise<void>;
}

/** Run a command in a namespace (and memory cgroup) through the load generator's exec. */
function inNs(ctx: ModeContext, netns: string, memCgroup: string | null, cmd: string[], input: string, timeoutMs: number): Promise<ExecResult> {
  const args = ['exec', '--netns', netns, ...(memCgroup ? ['--cgroup', memCgroup] : []), '--', ...cmd];
  return run(ctx.tools.bench, args, { input, timeoutMs });
}

/** The full rule text of a size, generated once (100k services take seconds to write out). */
function cached(cache: Map<number, string>, size: number, make: () => string): string {
  let t = cache.get(size);
  if (t === undefined) {
    cache.clear();
    t = make();
    cache.set(size, t);
  }
  return t;
}

function ok(r: ExecResult, what: string): ExecResult {
  if (r.code !== 0) throw new Error(`${what}: ${why(r)}`);
  return r;
}

// ---------------------------------------------------------------- direct

class DirectMode implements Mode {
  readonly id = 'direct' as const;
  readonly label = 'direct (no service)';
  readonly path = 'client -> node (forwarding only) -> the endpoint address itself';
  readonly programs = false;
  clientCgroup: string | null = null;
  async setup(): Promise<void> {}
  target(s: BenchService): string {
    return `${s.endpoints[0]!.ip}:${s.endpoints[0]!.port}`;
  }
  async prepareSize(): Promise<void> {}
  async reset(): Promise<void> {}
  programAll(): Promise<ExecResult> {
    throw new Error('direct programs nothing');
  }
  add(): Promise<ExecResult> {
    throw new Error('direct programs nothing');
  }
  remove(): Promise<ExecResult> {
    throw new Error('direct programs nothing');
  }
  mapMemory(): Promise<null> {
    return Promise.resolve(null);
  }
  async teardown(): Promise<void> {}
}

// ---------------------------------------------------------------- prep-node datapath

/** The datapath's desired state for a service set (services only: no endpoints, no policy). */
export function datapathState(services: readonly BenchService[]): DatapathState {
  return {
    endpoints: [],
    policies: [],
    services: services.map((s) => ({
      name: s.name,
      vip: s.vip,
      port: s.port,
      protocol: s.protocol,
      backends: s.endpoints.map((e) => ({ ip: e.ip, port: e.port, weight: 1 })),
      algorithm: 'random' as const,
    })),
  };
}

function contents(entries: readonly MapEntry[]): CurrentEntries {
  const out: CurrentEntries = {};
  for (const e of entries) (out[e.map] ??= new Map<string, string>()).set(e.keyHex, e.valueHex);
  return out;
}

const SERVICE_MAPS = new Set(['services', 'backends', 'maglev']);

class PrepNodeMode implements Mode {
  readonly programs = true;
  readonly label: string;
  readonly path: string;
  clientCgroup: string | null = null;
  private ctx!: ModeContext;
  private bpffs = '';
  private attachCgroup = '';
  private memCgroup: string | null = null;
  /** compiled entries of the last set programmed, keyed by its size */
  private compiled = new Map<number, MapEntry[]>();
  /** what programAll wrote (the set is back to it after each add + remove) */
  private programmed: MapEntry[] | null = null;

  constructor(readonly id: 'prepnode-sock' | 'prepnode-tc') {
    this.label = id === 'prepnode-sock' ? 'prep-node sock_lb' : 'prep-node tc_lb';
    this.path =
      id === 'prepnode-sock'
        ? 'client connect() translated by sock_lb (cgroup connect4) -> node forwards, no per-packet work'
        : 'client -> tc_lb on the node ingress (DNAT + conntrack map + reverse NAT per packet) -> endpoint';
  }

  private get loaderNs(): string {
    // tc filters are per namespace: the tc install and its removal happen in the node's
    return this.id === 'prepnode-tc' ? this.ctx.topo.path.node : this.ctx.topo.path.client;
  }

  private loader(args: string[], input = '', memCgroup: string | null = null, timeoutMs = this.ctx.timeoutMs): Promise<ExecResult> {
    return inNs(this.ctx, this.loaderNs, memCgroup, [this.ctx.tools.loader, '--bpffs', this.bpffs, ...args], input, timeoutMs);
  }

  async setup(ctx: ModeContext): Promise<void> {
    this.ctx = ctx;
    if (!existsSync(ctx.tools.loader)) throw new Unavailable(`the loader ${ctx.tools.loader} is missing: build it with \`make -C bpf\``);
    if (!ctx.env.v2Dir) throw new Unavailable('no cgroup v2 mount: sock_lb attaches to a cgroup v2 directory (the loader needs one for tc_lb too)');
    try {
      this.bpffs = ctx.env.mountBpffs(`bpffs-${this.id}`);
    } catch (err) {
      throw new Unavailable(`no bpffs: ${(err as Error).message}`);
    }
    // sock mode: the client joins the cgroup the programs are attached to; tc mode: an empty cgroup
    this.attachCgroup = ctx.env.v2Cgroup(this.id);
    if (this.id === 'prepnode-sock') this.clientCgroup = this.attachCgroup;
    const r = await this.install(null);
    if (r.code !== 0) throw new Unavailable(`prep-node-dp install: ${why(r)}`);
  }

  /** Load, pin and attach; the maps (and the entries written later) are charged to memCgroup. */
  private install(memCgroup: string | null): Promise<ExecResult> {
    const tc = this.id === 'prepnode-tc' ? ['--tc-dev', 'n0', '--tc-dev', 'n1'] : [];
    return this.loader(['install', '--cgroup', this.attachCgroup, ...tc], '', memCgroup, 120_000);
  }

  target(s: BenchService): string {
    return `${s.vip}:${s.port}`;
  }

  /** A fresh install per size: map entries are charged to the memory cgroup the maps were created in. */
  async prepareSize(memCgroup: string | null): Promise<void> {
    this.memCgroup = memCgroup;
    this.programmed = null;
    ok(await this.loader(['remove'], '', null, 120_000), 'prep-node-dp remove');
    ok(await this.install(memCgroup), 'prep-node-dp install');
  }

  /** Deletes exactly what programAll wrote. (Not `clear`: the loader's clear restarts its key walk
   *  from the first bucket after every delete, which takes minutes on a map of 10k+ entries.) */
  async reset(): Promise<void> {
    if (!this.programmed) return;
    const lines = opLines(deleteEntries(this.programmed));
    this.programmed = null;
    ok(await this.loader(['apply'], `${lines.join('\n')}\n`, null, this.ctx.timeoutMs * 2), 'prep-node-dp apply (delete the set)');
  }

  /** Compiled entries of a set, cached by size (a run uses N and N+1 services, over and over). */
  private entries(services: readonly BenchService[]): MapEntry[] {
    let e = this.compiled.get(services.length);
    if (!e) {
      e = compileState(datapathState(services)).entries;
      if (this.compiled.size >= 2) this.compiled.delete(this.compiled.keys().next().value!);
      this.compiled.set(services.length, e);
    }
    return e;
  }

  /** `prep-node datapath sync --full`'s lines: clear the owned maps, then every entry. */
  programAll(services: readonly BenchService[]): Promise<ExecResult> {
    this.programmed = this.entries(services);
    const lines = fullSync(this.programmed).lines;
    return this.loader(['apply'], `${lines.join('\n')}\n`, this.memCgroup);
  }

  /** What an incremental sync (`prep-node datapath sync`) writes to go from one set to the other. */
  private diff(before: readonly BenchService[], after: readonly BenchService[]): string {
    const plan = incrementalSync(this.entries(after), contents(this.entries(before)));
    return `${plan.lines.join('\n')}\n`;
  }

  add(after: readonly BenchService[], added: BenchService): Promise<ExecResult> {
    return this.loader(['apply'], this.diff(after.filter((s) => s !== added), after), this.memCgroup);
  }

  remove(after: readonly BenchService[], removed: BenchService): Promise<ExecResult> {
    return this.loader(['apply'], this.diff([...after, removed], after), this.memCgroup);
  }

  async mapMemory(): Promise<MapMemory | null> {
    const r = await this.loader(['status'], '', null, 120_000);
    if (r.code !== 0) return null;
    const st = JSON.parse(r.stdout) as { maps?: { name: string; memlock_bytes?: number; entries?: number }[] };
    const maps = st.maps ?? [];
    return {
      mapsBytes: maps.reduce((n, m) => n + (m.memlock_bytes ?? 0), 0),
      serviceMapsBytes: maps.filter((m) => SERVICE_MAPS.has(m.name)).reduce((n, m) => n + (m.memlock_bytes ?? 0), 0),
      entries: maps.filter((m) => m.name === 'services' || m.name === 'backends').reduce((n, m) => n + (m.entries ?? 0), 0),
    };
  }

  async teardown(): Promise<void> {
    if (this.bpffs) await this.loader(['remove'], '', null, 60_000).catch(() => undefined);
  }
}

// ---------------------------------------------------------------- kube-proxy, iptables

class IptablesMode implements Mode {
  readonly programs = true;
  readonly label: string;
  readonly path: string;
  clientCgroup: string | null = null;
  private ctx!: ModeContext;
  private memCgroup: string | null = null;
  private readonly text = new Map<number, string>();

  constructor(readonly id: 'iptables-nft' | 'iptables-legacy') {
    this.label = id === 'iptables-nft' ? 'kube-proxy iptables (nf_tables backend)' : 'kube-proxy iptables (legacy x_tables)';
    this.path = 'client -> node: nat PREROUTING KUBE-SERVICES (one rule per service, in order) -> KUBE-SVC (statistic random) -> KUBE-SEP DNAT -> endpoint';
  }

  private get bin(): string {
    return this.id === 'iptables-nft' ? this.ctx.tools.iptablesNftRestore : this.ctx.tools.iptablesLegacyRestore;
  }

  /** iptables-restore in the node namespace; -w waits for the xtables lock other tools may hold */
  private restore(input: string, noflush: boolean, memCgroup: string | null, timeoutMs = this.ctx.timeoutMs): Promise<ExecResult> {
    return inNs(this.ctx, this.ctx.topo.path.node, memCgroup, [this.bin, '-w', '5', ...(noflush ? ['--noflush'] : [])], input, timeoutMs);
  }

  async setup(ctx: ModeContext): Promise<void> {
    this.ctx = ctx;
    const version = await run(this.bin, ['--version']).catch((err: Error) => ({ code: 127, stdout: '', stderr: err.message }) as ExecResult);
    if (version.code !== 0) throw new Unavailable(`${this.bin}: ${why(version)}`);
    const backend = /\((nf_tables|legacy)\)/.exec(version.stdout)?.[1];
    const want = this.id === 'iptables-nft' ? 'nf_tables' : 'legacy';
    if (backend !== want) throw new Unavailable(`${this.bin} is not the ${want} backend: ${version.stdout.trim()}`);
    const r = await this.restore(iptablesBaseRules(), true, null);
    if (r.code !== 0) throw new Unavailable(`the kernel refused kube-proxy's base rules (${this.id}): ${why(r)}`);
  }

  target(s: BenchService): string {
    return `${s.vip}:${s.port}`;
  }

  async prepareSize(memCgroup: string | null): Promise<void> {
    this.memCgroup = memCgroup;
    await this.reset();
  }

  async reset(): Promise<void> {
    ok(await this.restore(IPTABLES_FLUSH, false, null, this.ctx.timeoutMs * 2), `${this.bin} (flush)`);
    ok(await this.restore(iptablesBaseRules(), true, null), `${this.bin} (base rules)`);
  }

  programAll(services: readonly BenchService[]): Promise<ExecResult> {
    return this.restore(cached(this.text, services.length, () => iptablesFull(services)), true, this.memCgroup);
  }

  add(after: readonly BenchService[], added: BenchService): Promise<ExecResult> {
    return this.restore(iptablesAdd(after, added), true, this.memCgroup);
  }

  remove(after: readonly BenchService[], removed: BenchService): Promise<ExecResult> {
    return this.restore(iptablesRemove(after, removed), true, this.memCgroup);
  }

  mapMemory(): Promise<null> {
    return Promise.resolve(null);
  }

  async teardown(): Promise<void> {
    await this.restore(IPTABLES_FLUSH, false, null, 60_000).catch(() => undefined);
  }
}

// ---------------------------------------------------------------- kube-proxy, nftables

class NftablesMode implements Mode {
  readonly id = 'nftables' as const;
  readonly label = 'kube-proxy nftables';
  readonly path = 'client -> node: nat prerouting, verdict map on daddr . l4proto . dport (one lookup) -> service chain (numgen random) -> endpoint chain DNAT -> endpoint';
  readonly programs = true;
  clientCgroup: string | null = null;
  private ctx!: ModeContext;
  private memCgroup: string | null = null;
  private readonly nodeIps = [NODE_CLIENT_SIDE, NODE_BACKEND_SIDE];
  private readonly text = new Map<number, string>();

  private nft(input: string, memCgroup: string | null, timeoutMs = this.ctx.timeoutMs): Promise<ExecResult> {
    return inNs(this.ctx, this.ctx.topo.path.node, memCgroup, [this.ctx.tools.nft, '-f', '-'], input, timeoutMs);
  }

  async setup(ctx: ModeContext): Promise<void> {
    this.ctx = ctx;
    const version = await run(ctx.tools.nft, ['--version']).catch((err: Error) => ({ code: 127, stdout: '', stderr: err.message }) as ExecResult);
    if (version.code !== 0) throw new Unavailable(`${ctx.tools.nft}: ${why(version)}`);
    const r = await this.nft(nftFull([], this.nodeIps), null);
    if (r.code !== 0) throw new Unavailable(`the kernel refused kube-proxy's nftables table: ${why(r)}`);
    await this.nft(NFT_DELETE_TABLE, null);
  }

  target(s: BenchService): string {
    return `${s.vip}:${s.port}`;
  }

  async prepareSize(memCgroup: string | null): Promise<void> {
    this.memCgroup = memCgroup;
    await this.reset();
  }

  async reset(): Promise<void> {
    // "delete table" of a table that is not there fails: that is fine here
    await this.nft(NFT_DELETE_TABLE, null, this.ctx.timeoutMs * 2);
  }

  programAll(services: readonly BenchService[]): Promise<ExecResult> {
    return this.nft(cached(this.text, services.length, () => nftFull(services, this.nodeIps)), this.memCgroup);
  }

  add(_after: readonly BenchService[], added: BenchService): Promise<ExecResult> {
    return this.nft(nftAdd(added), this.memCgroup);
  }

  remove(_after: readonly BenchService[], removed: BenchService): Promise<ExecResult> {
    return this.nft(nftRemove(removed), this.memCgroup);
  }

  mapMemory(): Promise<null> {
    return Promise.resolve(null);
  }

  async teardown(): Promise<void> {
    await this.nft(NFT_DELETE_TABLE, null, 60_000).catch(() => undefined);
  }
}

export function makeMode(id: ModeId): Mode {
  switch (id) {
    case 'direct':
      return new DirectMode();
    case 'prepnode-sock':
    case 'prepnode-tc':
      return new PrepNodeMode(id);
    case 'iptables-nft':
    case 'iptables-legacy':
      return new IptablesMode(id);
    case 'nftables':
      return new NftablesMode();
  }
}
