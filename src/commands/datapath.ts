// `prep-node datapath install|sync|status|selftest|observe|metrics|remove`: the eBPF datapath on
// nodes. The desired state (a prep-node state file, or Kubernetes manifests: a file or a directory)
// is loaded, translated and validated before any node is touched; each node gets the loader uploaded
// once.
import { ExitCode, PrepNodeError, UsageError, printable } from '../errors.js';
import type { Host } from '../host/host.js';
import * as dp from '../datapath/index.js';
import { ALL_MAPS, VERDICTS, decorate, formatFlow, formatLeftOut, formatIpv4, loadDesired, parseIpv4, parseIpv6, readNames, verdictMatches, type Desired, type NamesIndex, type VerdictFilter } from '../datapath/index.js';
import type { Io } from './check.js';
import { failureKind, failureLine, fleetExitCode, resolveHosts, runOnHosts, throwIfOnlyHostFailed, type HostOptions } from './hosts.js';

export interface DatapathOptions extends HostOptions {
  file?: string;
  full?: boolean;
  dryRun?: boolean;
  json?: boolean;
  tcDev?: string[];
  cap?: string;
  cgroup?: string;
  force?: boolean;
  /** commander's --no-flow-events: false when given */
  flowEvents?: boolean;
  ctTimeout?: string;
  connections?: number;
  allowPartial?: boolean;
  nodeAddress?: string[];
  nodeName?: string;
  metricsTextfile?: string;
  metricsInterval?: number;
  /** seconds between ct-gc runs of the timer install leaves (0: none) */
  ctGcInterval?: number;
}

type Verb = 'install' | 'sync' | 'status' | 'selftest' | 'metrics' | 'remove';

/** `services=2000000,conntrack=524288` → {services: 2000000, ...}. */
export function parseCaps(text: string | undefined): Record<string, number> | undefined {
  if (!text) return undefined;
  const caps: Record<string, number> = {};
  for (const part of text.split(',')) {
    const m = /^([a-z_][a-z0-9_]*)=(\d+)$/.exec(part.trim());
    if (!m) throw new PrepNodeError(`--cap: expected map=entries[,map=entries], got "${part}" (e.g. --cap services=2000000)`, ExitCode.usage);
    if (!(ALL_MAPS as readonly string[]).includes(m[1]!)) throw new PrepNodeError(`--cap: no map named "${m[1]}" (maps: ${ALL_MAPS.join(', ')})`, ExitCode.usage);
    caps[m[1]!] = Number(m[2]);
  }
  return caps;
}

/** Conntrack lifetimes the datapath knows (bpf/lib/ct_gc.h), with their defaults in seconds. */
export const CT_TIMEOUTS = { 'tcp-syn': 60, 'tcp-established': 21600, 'tcp-closing': 10, udp: 60, other: 60 } as const;
const DURATION_UNIT: Record<string, number> = { '': 1, s: 1, m: 60, h: 3600, d: 86400 };

/** `tcp-established=1d,udp=30s` → {'tcp-established': 86400, udp: 30}; 1 s to 30 days each. */
export function parseCtTimeouts(text: string | undefined): Record<string, number> | undefined {
  if (!text) return undefined;
  const out: Record<string, number> = {};
  const names = Object.keys(CT_TIMEOUTS).join(', ');
  for (const part of text.split(',')) {
    const m = /^([a-z-]+)=(\d{1,9})([smhd]?)$/.exec(part.trim());
    if (!m) throw new PrepNodeError(`--ct-timeout: expected name=duration[,name=duration], got "${part}" (e.g. --ct-timeout tcp-established=1d,udp=30s)`, ExitCode.usage);
    if (!(m[1]! in CT_TIMEOUTS)) throw new PrepNodeError(`--ct-timeout: no timeout named "${m[1]}" (timeouts: ${names})`, ExitCode.usage);
    const secs = Number(m[2]) * DURATION_UNIT[m[3]!]!;
    if (secs < 1 || secs > 30 * 86400) throw new PrepNodeError(`--ct-timeout: ${m[1]}=${m[2]}${m[3]} is out of range (1s to 30d)`, ExitCode.usage);
    out[m[1]!] = secs;
  }
  return out;
}

const pct = (n: number | undefined, max: number | undefined) => (n === undefined || !max ? '' : ` (${((100 * n) / max).toFixed(n > 0 && (100 * n) / max < 0.1 ? 3 : 1)}%)`);

/** Flow-state maps (conntrack and the socket NAT map) at which status warns: an LRU map near full
 * evicts live flows to make room for new ones, and a flow that loses its entry loses its NAT. */
export const NEAR_FULL_PCT = 90;
const FLOW_STATE_MAPS = ['conntrack', 'conntrack6', 'sock_revnat', 'sock_revnat6', 'frags'];

/** A warning line per flow-state map at NEAR_FULL_PCT or more. */
export function nearlyFull(maps: readonly { name: string; entries?: number | undefined; max_entries?: number | undefined }[]): string[] {
  return maps
    .filter((m) => FLOW_STATE_MAPS.includes(m.name) && m.entries !== undefined && m.max_entries && (100 * m.entries) / m.max_entries >= NEAR_FULL_PCT)
    .map((m) => `warning: ${m.name} is ${Math.floor((100 * m.entries!) / m.max_entries!)}% full: new flows evict the least recently used ones; raise it with \`datapath install --force --cap ${m.name}=${2 * m.max_entries!}\``);
}

/** The SNAT port range and conntrack lifetimes the datapath was loaded with (status's text). */
export function loadedConfig(st: { snat_port_min?: number | undefined; snat_port_max?: number | undefined; ct_timeouts?: Record<string, number> | undefined }): string[] {
  const out: string[] = [];
  if (st.snat_port_max !== undefined) {
    out.push(st.snat_port_max > 0
      ? `SNAT source ports: ${st.snat_port_min}-${st.snat_port_max} (${st.snat_port_max - st.snat_port_min! + 1} per backend address and port)`
      : 'SNAT source ports: none (flows that need SNAT drop as SNAT_NO_PORT; lower net.ipv4.ip_local_port_range\'s upper end, as the k8s-worker profile does, then install --force)');
  }
  if (st.ct_timeouts) out.push(`conntrack lifetimes: ${Object.entries(st.ct_timeouts).map(([k, v]) => `${k} ${v} s`).join(', ')}`);
  return out;
}

/** One host's outcome: the lines to print, whether it passed, its --json document. */
interface Outcome {
  lines: string[];
  ok: boolean;
  json: unknown;
}

/** One host's work per verb, each through the datapath module's public functions (datapath/index.ts). */
const WORK: Record<Verb, (host: Host, options: DatapathOptions, desired: Desired | undefined) => Promise<Outcome>> = {
  async install(host, options) {
    const caps = parseCaps(options.cap);
    const ctTimeouts = parseCtTimeouts(options.ctTimeout);
    if (options.metricsTextfile) await dp.checkMetricsTextfileDir(host, options.metricsTextfile);
    const doc = await dp.install(host, { ...(caps && { caps }), ...(options.tcDev && { tcDevs: options.tcDev }), ...(options.cgroup && { cgroup: options.cgroup }), ...(options.force && { force: true }), ...(options.flowEvents === false && { flowEvents: false }), ...(ctTimeouts && { ctTimeouts }) });
    const lines = [doc.already_installed ? 'already installed (use --force to re-install; map contents are lost)' : 'installed: programs attached, maps pinned under /sys/fs/bpf/prep-node/'];
    const interval = options.ctGcInterval ?? 300;
    const gc = interval > 0 ? await dp.installCtGc(host, interval) : null;
    if (gc) lines.push(gc.runner === 'systemd' ? `conntrack: expired entries removed every ${gc.intervalSeconds} s (systemd timer prep-node-dp-ct-gc; journalctl -u prep-node-dp-ct-gc)` : 'conntrack: no systemd on the node, so no timer removes expired entries (the LRU evicts the oldest when full); run `prep-node-dp ct-gc` from cron, or the agent, which runs it itself');
    const json = { ...doc, ...(gc && { ct_gc: gc }) };
    if (!options.metricsTextfile) return { lines, ok: true, json };
    const tf = await dp.installMetricsTextfile(host, options.metricsTextfile, options.metricsInterval ?? 15);
    lines.push(`metrics: ${tf.file} rewritten every ${tf.intervalSeconds} s (${tf.runner === 'systemd' ? 'systemd service prep-node-dp-metrics' : 'background process, no systemd on the node: it ends at reboot, as the datapath does'})`);
    return { lines, ok: true, json: { ...json, metrics_textfile: tf } };
  },
  async sync(host, options, desired) {
    const d = desired!;
    const r = await dp.syncState(host, d.state, { ...(options.full && { full: true }), ...(options.dryRun && { dryRun: true }) });
    const lines = [`${options.dryRun ? 'would write' : 'synced'}: ${r.plan.puts} put, ${r.plan.dels} deleted, ${r.plan.clears} cleared${r.plan.lines.length === 0 ? ' (already as desired)' : ''}`];
    if (r.ctFlushed) lines.push(`  conntrack: ${r.ctFlushed.entries} entries of flows to ${r.ctFlushed.backends.length} removed UDP backend(s) flushed (${r.ctFlushed.backends.join(', ')})`);
    if (d.format === 'manifests') {
      const kinds = Object.entries(d.counts).map(([k, n]) => `${n} ${k}`).join(', ');
      lines.push(`  from ${kinds || 'no objects'}: ${d.state.endpoints.length} endpoints, ${d.state.services.length} service ports, ${d.state.policies.length} policies`);
    }
    if (d.notes.length > 0) lines.push(`  not used (${d.notes.length}): ${d.notes.slice(0, 3).join('; ')}${d.notes.length > 3 ? '; ... (--json lists all)' : ''}`);
    if (d.leftOut.length > 0) {
      lines.push(`  left out (--allow-partial), ${d.leftOut.length}:`);
      for (const f of d.leftOut) lines.push(`    ${formatLeftOut(f)}`);
    }
    if (options.dryRun) {
      // a loop, not push(...list): a plan of 100k entries would overflow the stack as arguments
      for (const e of r.plan.put) lines.push(`  put ${e.map}: ${e.note}`);
      for (const dd of r.plan.deleted) lines.push(`  del ${dd.map} ${dd.keyHex}`);
    }
    else await dp.recordNames(host, d, r.compiled, options.file ?? '');
    return { lines, ok: true, json: { plan: { puts: r.plan.puts, dels: r.plan.dels, clears: r.plan.clears }, applied: r.applied, left_out: d.leftOut, notes: d.notes } };
  },
  async metrics(host) {
    return { lines: [await dp.metrics(host)], ok: true, json: null };
  },
  async status(host) {
    const st = await dp.status(host);
    if (!st.installed) return { lines: ['not installed'], ok: true, json: st };
    const lines = [`installed${st.kernel ? ` (kernel ${st.kernel})` : ''}`, 'programs:'];
    for (const p of st.programs) lines.push(`  ${p.name}  ${p.type ?? ''}  ${p.attach ?? ''}${p.id !== undefined ? `  id ${p.id}` : ''}`);
    lines.push('maps (entries / capacity):');
    for (const m of st.maps) lines.push(`  ${m.name.padEnd(14)} ${m.entries ?? '-'} / ${m.max_entries ?? '-'}${pct(m.entries, m.max_entries)}${m.memlock_bytes !== undefined ? `  ${(m.memlock_bytes / 1048576).toFixed(1)} MiB` : ''}`);
    lines.push(...nearlyFull(st.maps));
    lines.push(...loadedConfig(st));
    lines.push('drops by reason:');
    for (const d of st.dropReasons) lines.push(`  ${String(d.num).padStart(3)} ${d.name.padEnd(22)} ${d.count}  ${d.description}`);
    return { lines, ok: true, json: st };
  },
  async selftest(host, options) {
    const r = await dp.selftest(host, { ...(options.connections && { connections: options.connections }) });
    const lines = r.steps.map((s) => `  ${s.pass ? 'pass' : 'FAIL'}  ${s.name.padEnd(34)} ${String(s.ms).padStart(6)} ms  ${s.detail}`);
    lines.unshift(`selftest ${r.pass ? 'passed' : 'FAILED'}: ${r.steps.filter((s) => s.pass).length} of ${r.steps.length} steps`);
    return { lines, ok: r.pass, json: r };
  },
  async remove(host) {
    const { textfileRemoved: textfile, ctGcTimerRemoved: gcTimer, ...doc } = await dp.remove(host);
    const lines = [doc.removed === false ? 'not installed: nothing to remove' : 'removed: programs detached, pins and maps gone'];
    if (textfile) lines.push('  metrics textfile writer stopped and its file removed');
    if (gcTimer) lines.push('  conntrack garbage collection timer stopped and removed');
    return { lines, ok: true, json: { ...doc, ...(textfile && { metrics_textfile_removed: true }), ...(gcTimer && { ct_gc_timer_removed: true }) } };
  },
};

/**
 * A host's result lines for the terminal: `target: first line`, then the rest. Service names, clusterIPs,
 * labels, the node's kernel and map names all come from outside: each line goes through printable(),
 * so an escape sequence in one is printed as text (JSON output is escaped by JSON.stringify).
 */
export function hostLines(name: string, lines: string[]): string {
  return `${printable(name)}: ${lines.map(printable).join('\n')}\n`;
}

/** A Kubernetes node name (a DNS-1123 subdomain), as the state schema's node.name takes it. */
const NODE_NAME = /^(?=.{1,253}$)[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/;

export async function datapath(verb: Verb, targets: string[], options: DatapathOptions, io: Io): Promise<ExitCode> {
  for (const a of options.nodeAddress ?? []) {
    const v6 = parseIpv4(a) === null ? parseIpv6(a) : null;
    if (parseIpv4(a) === null && v6 === null) throw new UsageError(`--node-address: expected an IPv4 or IPv6 address, got "${a}"`);
    if (v6 !== null && v6 >> 32n === 0xffffn) throw new UsageError(`--node-address: ${a} is an IPv4-mapped IPv6 address: give the IPv4 address ${formatIpv4(Number(v6 & 0xffffffffn))}`);
  }
  if (options.nodeName !== undefined && !NODE_NAME.test(options.nodeName))
    throw new UsageError(`--node-name: expected a Kubernetes node name (lowercase letters, digits, dots and dashes, at most 253), got "${options.nodeName}"`);
  if (options.nodeName !== undefined && targets.length !== 1) throw new UsageError('--node-name names one node: give one target');
  const desired =
    verb === 'sync'
      ? await loadDesired(options.file!, { ...(options.allowPartial && { allowPartial: true }), ...(options.nodeAddress && { nodeAddresses: options.nodeAddress }), ...(options.nodeName !== undefined && { nodeName: options.nodeName }) })
      : undefined;
  if (verb === 'install') parseCaps(options.cap);
  const specs = await resolveHosts(targets, options);
  if (verb === 'metrics' && specs.length !== 1) throw new UsageError('datapath metrics prints one node\'s exposition: give one target');
  const outcomes = await runOnHosts(specs, options, { work: (host) => WORK[verb](host, options, desired), summarize: (r) => r.lines[0] ?? '' }, !options.json && verb !== 'metrics' && io.stdout.isTTY === true);
  if (verb === 'metrics') {
    const o = outcomes[0]!;
    if ('error' in o) throw o.error;
    io.stdout.write(o.value.lines[0]!);
    return ExitCode.ok;
  }
  throwIfOnlyHostFailed(outcomes);
  let code: ExitCode = ExitCode.ok;
  const docs: unknown[] = [];
  for (const o of outcomes) {
    const name = o.spec.target.spec;
    if ('error' in o) {
      docs.push({ target: name, error: { kind: failureKind(o.error), message: o.error.message } });
      if (!options.json) io.stdout.write(`${printable(failureLine(o.spec, o.error))}\n`);
      continue;
    }
    if (!o.value.ok) code = ExitCode.findings;
    docs.push({ target: name, ...(o.value.json as object) });
    if (!options.json) io.stdout.write(hostLines(name, o.value.lines));
  }
  if (options.json) io.stdout.write(JSON.stringify(docs.length === 1 ? docs[0] : docs, null, 2) + '\n');
  return fleetExitCode(outcomes, code);
}

export interface ObserveOptions extends HostOptions {
  verdict?: string;
  follow?: boolean;
  json?: boolean;
  max?: number;
}

/** How long one poll of the node's ring buffer lasts in --follow (Host.run returns output at exit). */
export const FOLLOW_POLL_MS = 1000;

/**
 * `datapath observe`: flow events (drops, forwarded flows: --verdict) with names. Reading consumes the
 * node's ring buffer: events of the other verdict read in the same pass are not shown. Without --follow: what the ring buffer holds now.
 * With --follow: the loader's `events --timeout-ms 1000` in a loop (Host.run returns output when the
 * command ends, so events arrive in batches at most a second late), until SIGINT or --max.
 */
export async function observe(targets: string[], options: ObserveOptions, io: Io): Promise<ExitCode> {
  const verdict = (options.verdict ?? 'dropped') as VerdictFilter;
  if (!(VERDICTS as readonly string[]).includes(verdict)) throw new UsageError(`--verdict: expected ${VERDICTS.join(', ')}, got "${verdict}"`);
  const specs = await resolveHosts(targets, options);
  const many = specs.length > 1;
  let stop = false;
  const onSigint = () => (stop = true);
  if (options.follow) process.once('SIGINT', onSigint);
  try {
    const outcomes = await runOnHosts(
      specs,
      options,
      {
        work: async (host) => {
          const names: NamesIndex | null = await readNames(host);
          const prefix = many ? `${printable(host.name)}: ` : '';
          let seen = 0;
          let lastLost: number | undefined;
          const print = (batch: { events: dp.EventDoc[]; lost: number }) => {
            for (const ev of batch.events) {
              const flow = decorate(ev, names);
              if (!verdictMatches(flow, verdict) || (options.max !== undefined && seen >= options.max)) continue;
              io.stdout.write(options.json ? JSON.stringify({ ...(many && { target: host.name }), ...flow }) + '\n' : `${prefix}${formatFlow(flow)}\n`);
              seen++;
            }
            if (lastLost === undefined || batch.lost !== lastLost) {
              if (options.json) io.stdout.write(JSON.stringify({ ...(many && { target: host.name }), lost: batch.lost }) + '\n');
              else if (batch.lost > 0 || !options.follow)
                io.stdout.write(`${prefix}${batch.lost} events lost since install${batch.lost > 0 ? ' (the ring buffer was full: read more often, or install with a bigger --cap events=BYTES)' : ''}${lastLost !== undefined && batch.lost > lastLost ? `, ${batch.lost - lastLost} of them just now` : ''}\n`);
              lastLost = batch.lost;
            }
          };
          if (!names && !options.json) io.stdout.write(`${prefix}(no names on the node: run datapath sync to see pods, services and policies)\n`);
          do {
            // the loader's --max counts every event; with a verdict filter only matching ones count here
            const left = options.max !== undefined && verdict === 'all' ? options.max - seen : undefined;
            const batch = await dp.events(host, { ...(options.follow && { timeoutMs: FOLLOW_POLL_MS }), ...(left !== undefined && { max: left }) });
            print(batch);
          } while (options.follow && !stop && (options.max === undefined || seen < options.max));
          return seen;
        },
        summarize: (n) => `${n} events`,
      },
      false,
    );
    throwIfOnlyHostFailed(outcomes);
    for (const o of outcomes) if ('error' in o) io.stdout.write(`${printable(failureLine(o.spec, o.error))}\n`);
    return fleetExitCode(outcomes, ExitCode.ok);
  } finally {
    process.off('SIGINT', onSigint);
  }
}
