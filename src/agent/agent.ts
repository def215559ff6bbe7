// The agent's change tracker and sync loop (kube-proxy's pkg/proxy discipline):
//   - informer events update the held objects; nothing is written until every kind has listed;
//   - the first sync (and the first after an API outage or a failed write) is a full one: the pinned
//     maps are dumped and diffed, so a restarted agent rewrites nothing that is already right;
//   - after that each sync is a delta against what the agent knows the maps hold;
//   - a change is synced at once, on the next turn of the event loop, never behind a timer: what
//     arrives in the same read of a watch stream (a burst) goes into that one sync, what arrives
//     while a sync runs into the next; `minSyncIntervalMs` (default 0) can hold syncs apart
//     (kube-proxy's minSyncPeriod) at the cost of delaying a change by up to that long.
import { MAPS, type MapName } from '../datapath/consts.js';
import { goneBackends, serviceProtocols, udpBackendsLeaving } from '../datapath/ct-flush.js';
import { deltaSync, incrementalSync, type CurrentEntries } from '../datapath/sync.js';
import type { MapWriter } from '../datapath/writer.js';
import type { NamesIndex } from '../datapath/observe.js';
import { compile, HeldObjects } from './desired.js';
import { resourceOf, type ApiError, type InformerEvents } from './informers.js';
import type { Logger } from './log.js';
import { AgentMetrics } from './metrics.js';
import { objectKey, type Kind } from './slim.js';

type Obj = Record<string, unknown>;

export interface AgentOptions {
  writer: MapWriter;
  nodeName: string;
  log: Logger;
  /** the kinds that must list before the first sync */
  kinds: readonly Kind[];
  /** hold syncs this far apart (default 0: none; a change is synced on the next turn of the loop) */
  minSyncIntervalMs?: number;
  /** retry a failed write after this long (default 1 s) */
  retryMs?: number;
  /** leave the names index for `datapath observe` (rewritten after a sync changed what it says, at most once per `intervalMs`, default 1 s) */
  names?: { write(n: NamesIndex): Promise<void>; source: string; intervalMs?: number };
  /** after a sync that removed UDP backends: delete their flows' conntrack entries (ct-gc.ts; off the sync path) */
  flushUdp?: (backends: readonly string[]) => void;
}

/** What one sync did. */
export interface SyncReport {
  full: boolean;
  put: number;
  deleted: number;
  changes: string[];
}

export class Agent implements InformerEvents {
  /** no notes kept: nothing the agent does reads them (the names index is built apart) */
  readonly held = new HeldObjects({ notes: false });
  readonly metrics = new AgentMetrics();
  private readonly hasListed = new Set<Kind>();
  private readonly failing = new Set<Kind>();
  private model: CurrentEntries | null = null;
  /** svc_id → protocol of the services the maps hold (for UDP backend flushes), null until needed */
  private protos: Map<number, number> | null = null;
  private needFull = true;
  private pending: { at: bigint; what: string }[] = [];
  private timer: NodeJS.Timeout | NodeJS.Immediate | undefined;
  private running: Promise<void> | null = null;
  private lastSyncEnd = 0;
  private writable = true;
  private inSync = false;
  private seenFindings = new Set<string>();
  private lastFindings: string[] | null = null;
  private closed = false;
  private namesDirty = false;
  private namesTimer: NodeJS.Timeout | undefined;
  private namesWriting: Promise<void> | null = null;
  private namesLast = 0;
  private namesFailed = false;
  /** the desired state's namesVersion the last index written was built from */
  private namesWritten = -1;
  /** resolves after each sync (tests and the bench wait on it) */
  private waiters: ((r: SyncReport) => void)[] = [];

  constructor(private readonly o: AgentOptions) {}

  // ---- InformerEvents

  upsert(kind: Kind, obj: Obj): void {
    this.metrics.events.inc({ kind, type: 'upsert' });
    if (this.held.upsert(kind, obj)) {
      this.changed(`${kind} ${objectKey(obj)} changed`);
    }
  }

  remove(kind: Kind, obj: Obj): void {
    this.metrics.events.inc({ kind, type: 'delete' });
    if (this.held.remove(kind, objectKey(obj))) {
      this.changed(`${kind} ${objectKey(obj)} deleted`);
    }
  }

  bookmark(kind: Kind): void {
    this.metrics.events.inc({ kind, type: 'bookmark' });
  }

  listed(kind: Kind, relist: boolean): void {
    this.hasListed.add(kind);
    this.metrics.lists.inc({ kind, type: relist ? 'relist' : 'initial' });
    this.namesDirty = true;
    if (relist) {
      this.o.log('info', 'relisted: a full diff follows', { kind });
      this.needFull = true;
    }
    this.changed(relist ? `${kind} relisted` : `${kind} listed`);
  }

  failed(kind: Kind, verb: 'list' | 'watch', err: ApiError, retryMs: number): void {
    this.metrics.apiErrors.inc({ kind, verb, code: String(err.status ?? 0) });
    this.metrics.reconnects.inc({ kind });
    this.failing.add(kind);
    if (err.status === 403) {
      this.o.log('error', `forbidden: RBAC does not allow ${verb} on ${resourceOf(kind)} (cluster-wide); grant ${verb === 'list' ? 'list and watch' : 'watch'} on it to the agent's account`, { kind, retry_ms: retryMs });
    } else {
      this.o.log('warn', `${verb} failed; the datapath keeps serving the last state; retrying`, { kind, status: err.status, error: err.message, retry_ms: retryMs });
    }
  }

  recovered(kind: Kind): void {
    this.failing.delete(kind);
    this.o.log('info', 'API server reachable again: a full diff follows', { kind });
    this.needFull = true;
    this.changed(`${kind} reconnected`);
  }

  absent(kind: Kind): void {
    this.o.log('info', `${kind} is not served by this API server (its CRD is not installed): not watched`, { kind });
    this.hasListed.add(kind);
    this.changed(`${kind} absent`);
  }

  // ---- state

  /** Every kind has listed. */
  synced(): boolean {
    return this.o.kinds.every((k) => this.hasListed.has(k));
  }

  /** Ready: synced, the last sync wrote everything, and the maps are writable. */
  ready(): boolean {
    return this.synced() && this.inSync && this.writable && this.pending.length === 0;
  }

  /** Why the agent is not ready (for /readyz), or '' when it is. */
  notReadyReason(): string {
    if (!this.synced()) return `waiting for the first list of ${this.o.kinds.filter((k) => !this.hasListed.has(k)).join(', ')}`;
    if (!this.writable) return 'the last write to the maps failed';
    if (!this.inSync || this.pending.length > 0) return 'changes not yet written';
    return '';
  }

  /** While ready: what is degraded ('' when nothing), e.g. informers failing during an API outage. */
  degraded(): string {
    if (this.failing.size === 0) return '';
    return `the API server does not answer for ${[...this.failing].join(', ')}: serving the last state, retrying with backoff`;
  }

  /** Resolves true once a sync has left the agent ready (false when it was closed before; pending while it is not ready). */
  async firstSync(): Promise<boolean> {
    while (!this.ready()) {
      if (this.closed) return false;
      await this.nextSync();
    }
    return true;
  }

  /** The next sync's report. */
  nextSync(): Promise<SyncReport> {
    return new Promise((res) => this.waiters.push(res));
  }

  // ---- the loop

  private changed(what: string): void {
    this.pending.push({ at: process.hrtime.bigint(), what });
    this.schedule();
  }

  private schedule(delayMs?: number): void {
    if (this.closed || this.timer || this.running || !this.synced()) return;
    const wait = delayMs ?? Math.max(0, this.lastSyncEnd + (this.o.minSyncIntervalMs ?? 0) - Date.now());
    const run = () => {
      this.timer = undefined;
      this.running = this.sync().finally(() => {
        this.running = null;
        if (this.pending.length > 0) this.schedule();
      });
    };
    // setImmediate: everything already queued in this turn (a whole list) goes into one sync
    this.timer = wait === 0 ? setImmediate(run) : setTimeout(run, wait);
  }

  private async sync(): Promise<void> {
    const batch = this.pending;
    this.pending = [];
    const full = this.needFull || this.model === null;
    try {
      // a full sync diffs everything desired against the pinned maps; otherwise only the entries of
      // the units the batch touched (desired.ts) are compared with what the maps are known to hold
      const c = full ? compile(this.held, this.o.nodeName) : this.held.delta(this.o.nodeName);
      if (c.findings !== this.lastFindings) {
        for (const f of c.findings) if (!this.seenFindings.has(f)) this.o.log('warn', `left out: ${f}`);
        this.seenFindings = new Set(c.findings);
        this.lastFindings = c.findings;
      }
      if (c.refused !== undefined) this.o.log('error', `the datapath refuses what these objects translate to; their entries are left as they were: ${c.refused}`);
      if (full) {
        this.needFull = false;
        this.model = await this.o.writer.dump(MAPS);
        this.protos = null;
      }
      const plan = 'entries' in c ? incrementalSync(c.entries, this.model!) : deltaSync(c.changes, this.model!);
      const ops = plan.ops;
      // UDP backends whose slots this plan overwrites or deletes (by the maps before it); the services'
      // protocols are read from the model once per full sync and kept up to date from the puts after
      const touched = this.o.flushUdp ? [...plan.put, ...plan.deleted].filter((e) => e.map === 'backends' || e.map === 'backends6') : [];
      const protos = touched.length > 0 ? (this.protos ??= serviceProtocols(this.model!)) : null;
      const leaving = protos ? udpBackendsLeaving(this.model!, protos, touched) : new Set<string>();
      if (ops.length > 0) await this.o.writer.batch(ops);
      for (const e of plan.put) (this.model![e.map] ??= new Map()).set(e.keyHex, e.valueHex);
      for (const d of plan.deleted) this.model![d.map]?.delete(d.keyHex);
      if ('entries' in c) {
        // the dump's strings replaced by the desired entries' equal ones (held anyway by the units):
        // one copy of each key and value instead of two (~130k strings at 10k Services)
        for (const e of c.entries) {
          const m = this.model![e.map];
          if (m?.get(e.keyHex) === e.valueHex) {
            m.delete(e.keyHex);
            m.set(e.keyHex, e.valueHex);
          }
        }
      }
      if (this.protos) {
        const puts = (map: string) => plan.put.filter((e) => e.map === map).map((e) => [e.keyHex, e.valueHex] as [string, string]);
        for (const [k, v] of serviceProtocols({ services: puts('services'), services6: puts('services6') })) this.protos.set(k, v);
      }
      if (leaving.size > 0) {
        // their live UDP flows would stay on them: flushed now that no slot names them
        const gone = goneBackends(this.model!, this.protos!, leaving);
        if (gone.length > 0) this.o.flushUdp!(gone);
      }
      this.writable = true;
      const report = { full, put: plan.puts, deleted: plan.dels, changes: batch.map((b) => b.what) };
      if (full || ops.length > 0) {
        const changes = report.changes.filter((w) => !/ (listed|relisted|reconnected|absent)$/.test(w));
        this.o.log('info', full ? 'full sync: diffed against the pinned maps' : 'synced', {
          put: plan.puts,
          deleted: plan.dels,
          changes: changes.length > 3 ? `${changes.slice(0, 3).join('; ')}; and ${changes.length - 3} more` : changes.join('; ') || undefined,
        });
      }
      this.finish(batch, report, true);
    } catch (err) {
      this.writable = false;
      this.needFull = true;
      this.metrics.syncErrors.inc();
      this.o.log('error', `writing the maps failed; retrying with a full diff: ${(err as Error).message.split('\n')[0]}`);
      this.pending = [...batch, ...this.pending];
      this.schedule(this.o.retryMs ?? 1000);
    }
  }

  private finish(batch: { at: bigint }[], report: SyncReport, ok: boolean): void {
    const now = process.hrtime.bigint();
    for (const b of batch) this.metrics.observeLatency(Number(now - b.at) / 1e9);
    const t = Date.now();
    this.lastSyncEnd = t;
    this.inSync = ok;
    this.metrics.syncs.inc({ type: report.full ? 'full' : 'delta' });
    this.metrics.lastSync = t / 1000;
    if (report.full) this.metrics.lastFullSync = t / 1000;
    for (const m of MAPS as readonly MapName[]) this.metrics.entries[m] = this.model?.[m]?.size ?? 0;
    for (const k of this.o.kinds) this.metrics.objects[k] = this.held.count(k);
    if (ok && this.held.namesVersion !== this.namesWritten) this.namesDirty = true;
    if (ok) this.scheduleNames();
    for (const w of this.waiters.splice(0)) w(report);
  }

  // ---- the names index (off the event-to-map path)

  private scheduleNames(): void {
    if (!this.o.names || !this.namesDirty || this.namesTimer || this.namesWriting || this.closed) return;
    const wait = Math.max(0, this.namesLast + (this.o.names.intervalMs ?? 1000) - Date.now());
    this.namesTimer = setTimeout(() => {
      this.namesTimer = undefined;
      this.namesWriting = this.writeNames().finally(() => {
        this.namesWriting = null;
        this.scheduleNames();
      });
    }, wait);
  }

  private async writeNames(): Promise<void> {
    const o = this.o.names!;
    this.namesDirty = false;
    this.namesLast = Date.now();
    try {
      // assembled from the units' parts (desired.ts): no translation of the held objects
      const version = this.held.namesVersion;
      await o.write(this.held.names(o.source));
      this.namesWritten = version;
      this.metrics.namesWritten.inc();
      if (this.namesFailed) this.o.log('info', 'names index written again: observe names what the agent wrote');
      this.namesFailed = false;
    } catch (err) {
      if (!this.namesFailed) this.o.log('warn', `writing the names index failed (observe shows addresses without names); retrying after the next change: ${(err as Error).message.split('\n')[0]}`);
      this.namesFailed = true;
      this.namesDirty = true;
    }
  }

  /** Stop syncing (after the one in flight). */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.namesTimer);
    if (this.timer) {
      clearTimeout(this.timer as NodeJS.Timeout);
      clearImmediate(this.timer as NodeJS.Immediate);
    }
    await this.running;
    await this.namesWriting;
  }
}
