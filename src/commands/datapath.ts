// `prep-node datapath install|sync|status|selftest|remove`: the eBPF datapath on nodes. The state
// file is loaded and validated before any node is touched; each node gets the loader uploaded once.
import { ExitCode, PrepNodeError, oneLine } from '../errors.js';
import type { Host } from '../host/host.js';
import * as dp from '../datapath/index.js';
import type { Io } from './check.js';
import { resolveHosts, runOnHosts, type HostOptions } from './hosts.js';

export interface DatapathOptions extends HostOptions {
  file?: string;
  full?: boolean;
  dryRun?: boolean;
  json?: boolean;
  tcDev?: string[];
  cap?: string;
  cgroup?: string;
  force?: boolean;
  connections?: number;
}

type Verb = 'install' | 'sync' | 'status' | 'selftest' | 'remove';

/** `services=2000000,conntrack=524288` → {services: 2000000, ...}. */
export function parseCaps(text: string | undefined): Record<string, number> | undefined {
  if (!text) return undefined;
  const caps: Record<string, number> = {};
  for (const part of text.split(',')) {
    const m = /^([a-z_]+)=(\d+)$/.exec(part.trim());
    if (!m) throw new PrepNodeError(`--cap: expected map=entries[,map=entries], got "${part}" (e.g. --cap services=2000000)`, ExitCode.usage);
    caps[m[1]!] = Number(m[2]);
  }
  return caps;
}

const pct = (n: number | undefined, max: number | undefined) => (n === undefined || !max ? '' : ` (${((100 * n) / max).toFixed(n > 0 && (100 * n) / max < 0.1 ? 3 : 1)}%)`);

/** One host's work for a verb: returns the lines to print and whether it passed. */
async function work(verb: Verb, host: Host, options: DatapathOptions, state: dp.DatapathState | undefined): Promise<{ lines: string[]; ok: boolean; json: unknown }> {
  switch (verb) {
    case 'install': {
      const caps = parseCaps(options.cap);
      const doc = await dp.install(host, { ...(caps && { caps }), ...(options.tcDev && { tcDevs: options.tcDev }), ...(options.cgroup && { cgroup: options.cgroup }), ...(options.force && { force: true }) });
      return { lines: [doc.already_installed ? 'already installed (use --force to re-install; map contents are lost)' : 'installed: programs attached, maps pinned under /sys/fs/bpf/prep-node/'], ok: true, json: doc };
    }
    case 'sync': {
      const r = await dp.syncState(host, state!, { ...(options.full && { full: true }), ...(options.dryRun && { dryRun: true }) });
      const lines = [`${options.dryRun ? 'would write' : 'synced'}: ${r.plan.puts} put, ${r.plan.dels} deleted, ${r.plan.clears} cleared${r.plan.lines.length === 0 ? ' (already as desired)' : ''}`];
      if (options.dryRun) lines.push(...r.plan.put.map((e) => `  put ${e.map}: ${e.note}`), ...r.plan.deleted.map((d) => `  del ${d.map} ${d.keyHex}`));
      return { lines, ok: true, json: { plan: { puts: r.plan.puts, dels: r.plan.dels, clears: r.plan.clears }, applied: r.applied } };
    }
    case 'status': {
      const st = await dp.status(host);
      if (!st.installed) return { lines: ['not installed'], ok: true, json: st };
      const lines = [`installed${st.kernel ? ` (kernel ${st.kernel})` : ''}`, 'programs:'];
      for (const p of st.programs) lines.push(`  ${p.name}  ${p.type ?? ''}  ${p.attach ?? ''}${p.id !== undefined ? `  id ${p.id}` : ''}`);
      lines.push('maps (entries / capacity):');
      for (const m of st.maps) lines.push(`  ${m.name.padEnd(14)} ${m.entries ?? '-'} / ${m.max_entries ?? '-'}${pct(m.entries, m.max_entries)}${m.memlock_bytes !== undefined ? `  ${(m.memlock_bytes / 1048576).toFixed(1)} MiB` : ''}`);
      lines.push('drops by reason:');
      for (const d of st.dropReasons) lines.push(`  ${String(d.num).padStart(3)} ${d.name.padEnd(22)} ${d.count}  ${d.description}`);
      return { lines, ok: true, json: st };
    }
    case 'selftest': {
      const r = await dp.selftest(host, { ...(options.connections && { connections: options.connections }) });
      const lines = r.steps.map((s) => `  ${s.pass ? 'pass' : 'FAIL'}  ${s.name.padEnd(34)} ${String(s.ms).padStart(6)} ms  ${s.detail}`);
      lines.unshift(`selftest ${r.pass ? 'passed' : 'FAILED'}: ${r.steps.filter((s) => s.pass).length} of ${r.steps.length} steps`);
      return { lines, ok: r.pass, json: r };
    }
    case 'remove': {
      const doc = await dp.remove(host);
      return { lines: [doc.removed === false ? 'not installed: nothing to remove' : 'removed: programs detached, pins and maps gone'], ok: true, json: doc };
    }
  }
}

export async function datapath(verb: Verb, targets: string[], options: DatapathOptions, io: Io): Promise<ExitCode> {
  const state = verb === 'sync' ? await dp.loadState(options.file!) : undefined;
  if (verb === 'install') parseCaps(options.cap);
  const specs = await resolveHosts(targets, options);
  const outcomes = await runOnHosts(specs, options, { work: (host) => work(verb, host, options, state), summarize: (r) => r.lines[0] ?? '' }, !options.json && io.stdout.isTTY === true);
  if (outcomes.length === 1 && 'error' in outcomes[0]!) throw outcomes[0].error;
  let code: ExitCode = ExitCode.ok;
  const docs: unknown[] = [];
  for (const o of outcomes) {
    const name = o.spec.target.spec;
    if ('error' in o) {
      code = o.error.exitCode;
      docs.push({ target: name, error: { kind: o.error.kind, message: o.error.message } });
      if (!options.json) io.stdout.write(`${name}: ${oneLine(o.error)}\n`);
      continue;
    }
    if (!o.value.ok && code === ExitCode.ok) code = ExitCode.findings;
    docs.push({ target: name, ...(o.value.json as object) });
    if (!options.json) io.stdout.write(`${name}: ${o.value.lines.join('\n')}\n`);
  }
  if (options.json) io.stdout.write(JSON.stringify(docs.length === 1 ? docs[0] : docs, null, 2) + '\n');
  return code;
}
