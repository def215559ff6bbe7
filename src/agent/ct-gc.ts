// Conntrack garbage collection from the agent (issue 13 item 3): the loader's `ct-gc` (a batch walk of
// the pinned conntrack map from userspace, bpf/loader/ct.c) run as a child process, so the event
// loop never waits on a walk of 2^18 entries:
//   - every `intervalMs` (cilium's conntrack GC starts at 5 minutes: pkg/maps/ctmap/gc), removing
//     expired entries before the LRU has to evict live ones to make room;
//   - at once after a sync removed UDP backends (`flush`), deleting their flows' entries, so a client
//     that keeps sending from one port reaches a current backend (kube-proxy clears UDP conntrack of
//     stale endpoints likewise: kubernetes/kubernetes#126130).
// One run at a time: flushes asked for while a run is in flight go into the next run together.
import type { CtGcDoc } from '../datapath/loader.js';
import type { Logger } from './log.js';
import type { AgentMetrics } from './metrics.js';

/** Runs the loader's `ct-gc` with these `--backend` targets (the agent: loader.ctGc on the LocalHost). */
export type CtGcRunner = (backends: readonly string[]) => Promise<CtGcDoc>;

/** Default seconds between runs (cilium's starting conntrack GC interval). */
export const CT_GC_INTERVAL_S = 300;

export class CtGc {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | null = null;
  private queued = new Set<string>();
  private flushWanted = false;
  private closed = false;
  private failing = false;

  constructor(
    private readonly run: CtGcRunner,
    private readonly o: { intervalMs: number; log: Logger; metrics: AgentMetrics },
  ) {}

  /** Start the periodic runs (the first one interval from now). */
  start(): void {
    this.arm();
  }

  /** Delete the entries of these backends' flows (`addr:port/udp`) as soon as no run is in flight. */
  flush(backends: readonly string[]): Promise<void> {
    if (this.closed || backends.length === 0) return Promise.resolve();
    for (const b of backends) this.queued.add(b);
    this.flushWanted = true;
    return this.kick('flush');
  }

  /** Resolves when no run is in flight. */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  private arm(): void {
    if (this.closed || this.o.intervalMs <= 0) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.kick('interval'), this.o.intervalMs);
    this.timer.unref();
  }

  private kick(trigger: 'interval' | 'flush'): Promise<void> {
    if (this.running) return this.running.then(() => (this.flushWanted ? this.kick('flush') : undefined));
    const backends = [...this.queued].sort();
    this.queued.clear();
    this.flushWanted = false;
    this.running = this.once(trigger, backends).finally(() => {
      this.running = null;
      this.arm(); // the next periodic run an interval after this one, whatever triggered it
    });
    return this.running;
  }

  private async once(trigger: 'interval' | 'flush', backends: string[]): Promise<void> {
    const m = this.o.metrics;
    try {
      const doc = await this.run(backends);
      m.ctGcRuns.inc({ trigger });
      m.ctGcRemoved.inc({ reason: 'expired' }, doc.expired);
      m.ctGcRemoved.inc({ reason: 'flushed' }, doc.flushed);
      m.conntrackEntries = doc.entries;
      m.conntrackCapacity = doc.capacity;
      if (this.failing) this.o.log('info', 'conntrack garbage collection runs again');
      this.failing = false;
      if (backends.length > 0 || doc.expired > 0) {
        this.o.log('info', backends.length > 0 ? 'conntrack: flows of removed UDP backends flushed' : 'conntrack: expired entries removed', {
          expired: doc.expired,
          flushed: doc.flushed,
          ...(backends.length > 0 && { backends: backends.length > 3 ? `${backends.slice(0, 3).join(', ')} and ${backends.length - 3} more` : backends.join(', ') }),
          entries: doc.entries,
          capacity: doc.capacity,
        });
      }
      if (doc.warning) this.o.log('warn', doc.warning, { fill_pct: doc.fill_pct });
    } catch (err) {
      m.ctGcErrors.inc({ trigger });
      // a flush that failed is retried with the next run; periodic runs just try again later
      for (const b of backends) this.queued.add(b);
      if (backends.length > 0) this.flushWanted = true;
      if (!this.failing) this.o.log('warn', `conntrack garbage collection failed; retrying at the next run: ${(err as Error).message.split('\n')[0]}`, { trigger });
      this.failing = true;
    }
  }

  /** Stop the timer and wait for a run in flight. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    await this.idle();
  }
}
