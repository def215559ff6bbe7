// The agent's own Prometheus metrics (text exposition format 0.0.4): events by kind, the
// event-to-map latency histogram, API errors and reconnects, syncs, objects held, entries per map.
import { escapeLabel } from '../datapath/metrics.js';

/** Histogram buckets (seconds) for event received → map written (10 µs up: the goal is < 1 ms). */
export const LATENCY_BUCKETS = [0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** Exact event → map observations kept for `/latency` (8 bytes each: 1 MiB). */
export const RECENT_LATENCIES = 131_072;

type Labels = Record<string, string>;
const key = (l: Labels) => Object.entries(l).map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(',');

class Counter {
  readonly values = new Map<string, number>();
  inc(labels: Labels = {}, by = 1): void {
    const k = key(labels);
    this.values.set(k, (this.values.get(k) ?? 0) + by);
  }
}

/** Every metric the agent keeps. */
export class AgentMetrics {
  readonly events = new Counter();
  readonly apiErrors = new Counter();
  readonly reconnects = new Counter();
  readonly syncs = new Counter();
  readonly syncErrors = new Counter();
  readonly lists = new Counter();
  readonly namesWritten = new Counter();
  readonly ctGcRuns = new Counter();
  readonly ctGcRemoved = new Counter();
  readonly ctGcErrors = new Counter();
  /** conntrack entries and capacity at the last garbage collection (0: none ran yet) */
  conntrackEntries = 0;
  conntrackCapacity = 0;
  readonly latencyCounts = new Array<number>(LATENCY_BUCKETS.length + 1).fill(0);
  latencySum = 0;
  latencyN = 0;
  /** the last RECENT_LATENCIES observations, exact (seconds; observation n at n % RECENT_LATENCIES) */
  private readonly recent = new Float64Array(RECENT_LATENCIES);
  lastFullSync = 0;
  lastSync = 0;
  objects: Record<string, number> = {};
  entries: Record<string, number> = {};

  observeLatency(seconds: number): void {
    const i = LATENCY_BUCKETS.findIndex((b) => seconds <= b);
    this.latencyCounts[i < 0 ? LATENCY_BUCKETS.length : i]!++;
    this.latencySum += seconds;
    this.recent[this.latencyN % RECENT_LATENCIES] = seconds;
    this.latencyN++;
  }

  /**
   * The exact observations after the first `since` (seconds, in order), for `/latency?since=N`: the
   * bench takes its percentiles from these, not from bucket bounds. `next` is the count to ask from
   * next time; `lost` how many after `since` the ring no longer holds.
   */
  latencySince(since: number): { next: number; lost: number; seconds: number[] } {
    const from = Math.max(since, this.latencyN - RECENT_LATENCIES, 0);
    const seconds: number[] = [];
    for (let n = from; n < this.latencyN; n++) seconds.push(this.recent[n % RECENT_LATENCIES]!);
    return { next: this.latencyN, lost: Math.max(0, from - Math.max(since, 0)), seconds };
  }

  render(ready: boolean): string {
    const out: string[] = [];
    const counter = (name: string, help: string, c: Counter) => {
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} counter`);
      for (const [k, v] of c.values) out.push(`${name}${k ? `{${k}}` : ''} ${v}`);
    };
    const gauge = (name: string, help: string, values: [Labels, number][]) => {
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} gauge`);
      for (const [l, v] of values) out.push(`${name}${Object.keys(l).length ? `{${key(l)}}` : ''} ${v}`);
    };
    counter('prep_node_agent_events_total', 'Watch and list events received, by kind and type.', this.events);
    counter('prep_node_agent_api_errors_total', 'Failed lists and watches, by kind, verb and HTTP status (0: no response).', this.apiErrors);
    counter('prep_node_agent_reconnects_total', 'Informers restarted after an error, by kind.', this.reconnects);
    counter('prep_node_agent_lists_total', 'Lists completed, by kind and type (initial; relist: after a 410 Gone or an outage).', this.lists);
    counter('prep_node_agent_names_written_total', 'Names index writes (what observe and metrics name services, pods and policies by).', this.namesWritten);
    counter('prep_node_agent_ct_gc_runs_total', 'Conntrack garbage collections run (the loader\'s ct-gc), by trigger (interval; flush: UDP backends removed).', this.ctGcRuns);
    counter('prep_node_agent_ct_gc_removed_total', 'Conntrack entries removed by garbage collection, by reason (expired: past their lifetime; flushed: flows of a removed UDP backend).', this.ctGcRemoved);
    counter('prep_node_agent_ct_gc_errors_total', 'Conntrack garbage collections that failed, by trigger.', this.ctGcErrors);
    if (this.conntrackCapacity > 0) {
      gauge('prep_node_agent_conntrack_entries', 'IPv4 conntrack entries left by the last garbage collection.', [[{}, this.conntrackEntries]]);
      gauge('prep_node_agent_conntrack_capacity', 'The IPv4 conntrack map\'s capacity (max_entries).', [[{}, this.conntrackCapacity]]);
    }
    counter('prep_node_agent_syncs_total', 'Syncs written to the maps, by type (full: diffed against a dump of the pinned maps; delta).', this.syncs);
    counter('prep_node_agent_sync_errors_total', 'Syncs that failed to write the maps.', this.syncErrors);
    out.push('# HELP prep_node_agent_event_to_map_seconds Time from an event received to its change written to the maps.', '# TYPE prep_node_agent_event_to_map_seconds histogram');
    let cum = 0;
    LATENCY_BUCKETS.forEach((b, i) => {
      cum += this.latencyCounts[i]!;
      out.push(`prep_node_agent_event_to_map_seconds_bucket{le="${b}"} ${cum}`);
    });
    out.push(`prep_node_agent_event_to_map_seconds_bucket{le="+Inf"} ${this.latencyN}`, `prep_node_agent_event_to_map_seconds_sum ${this.latencySum}`, `prep_node_agent_event_to_map_seconds_count ${this.latencyN}`);
    gauge('prep_node_agent_last_full_sync_timestamp_seconds', 'When the last full sync was written (Unix time; 0: none yet).', [[{}, this.lastFullSync]]);
    gauge('prep_node_agent_last_sync_timestamp_seconds', 'When the last sync was written (Unix time; 0: none yet).', [[{}, this.lastSync]]);
    gauge('prep_node_agent_objects', 'Objects held, by kind.', Object.entries(this.objects).map(([k, v]) => [{ kind: k }, v]));
    gauge('prep_node_agent_map_entries', 'Entries the agent has written and the maps hold, by map.', Object.entries(this.entries).map(([k, v]) => [{ map: k }, v]));
    gauge('prep_node_agent_ready', '1 when every informer has listed and the maps are in sync and writable.', [[{}, ready ? 1 : 0]]);
    return `${out.join('\n')}\n`;
  }
}
