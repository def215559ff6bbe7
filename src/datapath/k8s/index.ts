// `sync -f FILE|DIR`: the desired state from a prep-node state file or from Kubernetes manifests. The
// whole input is read, translated and validated before anything touches a node: a part the datapath
// cannot enforce is refused with file, document, field path and why, unless --allow-partial, which
// enforces the rest and lists what was left out.
import { UsageError } from '../../errors.js';
import { DatapathStateSchema, type DatapathState } from '../schema.js';
import { parseState } from '../state.js';
import { formatFinding, formatPath, type Finding } from './findings.js';
import { inputObjects, isStateFormat, readInput, type InputFile } from './manifests.js';
import { translate, type Origins } from './sum.js';

export { translate, LABELSET_LABEL, NAMESPACE_LABEL, type Origins, type Translation, type TranslateOptions } from './sum.js';
export { formatFinding, formatLeftOut, type Finding } from './findings.js';
export { readInput, parseFile, inputObjects } from './manifests.js';

export interface DesiredOptions {
  allowPartial?: boolean;
  /** NodePort services match on these addresses */
  nodeAddresses?: string[];
  /** this node's name (remote backends, traffic policies): see TranslateOptions */
  nodeName?: string;
}

export interface Desired {
  state: DatapathState;
  format: 'state' | 'manifests';
  /** what --allow-partial left out (empty otherwise: findings are refused) */
  leftOut: Finding[];
  notes: string[];
  origins: Origins;
  counts: Record<string, number>;
}

const MAX_LISTED = 40;

/** The manifests have parts the datapath cannot enforce: one line, then each finding as a detail. */
export class ManifestRefusal extends UsageError {
  readonly details: string[];
  constructor(readonly findings: Finding[]) {
    super(`${findings.length === 1 ? 'a part' : `${findings.length} parts`} of the manifests cannot be enforced by the datapath; nothing was synced (--allow-partial enforces the rest and lists what is left out):`);
    this.name = 'ManifestRefusal';
    this.details = findings.slice(0, MAX_LISTED).map(formatFinding);
    if (findings.length > MAX_LISTED) this.details.push(`... and ${findings.length - MAX_LISTED} more`);
  }
}

/** Read FILE or DIR and make the desired state; throws UsageError listing every refused part. */
export async function loadDesired(path: string, options: DesiredOptions = {}): Promise<Desired> {
  return desiredFromFiles(await readInput(path), options);
}

/** The same from parsed files (tests). */
export function desiredFromFiles(files: InputFile[], options: DesiredOptions = {}): Desired {
  if (isStateFormat(files)) {
    const f = files[0]!;
    if (options.nodeName !== undefined) throw new UsageError(`--node-name is for Kubernetes manifests; ${f.file} is a prep-node state file: set its node: {name: ${options.nodeName}} instead`);
    const state = parseState(f.text, f.file);
    return { state, format: 'state', leftOut: [], notes: [], origins: identityOrigins(state), counts: {} };
  }
  const { objects, notObjects } = inputObjects(files);
  const t = translate(objects, { ...(options.nodeAddresses && { nodeAddresses: options.nodeAddresses }), ...(options.nodeName !== undefined && { nodeName: options.nodeName }) });
  for (const n of notObjects) t.findings.add(n.origin, [], 'expected a Kubernetes object (a map with apiVersion and kind)', 'this document is left out');
  const findings = t.findings.list;
  if (findings.length > 0 && !options.allowPartial) {
    throw new ManifestRefusal(findings);
  }
  const r = DatapathStateSchema.safeParse(t.state);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    const path = issue.path.filter((k): k is string | number => typeof k !== 'symbol');
    const [list, index] = path;
    const item = typeof list === 'string' && typeof index === 'number' ? (t.state as unknown as Record<string, { name?: string }[]>)[list]?.[index]?.name : undefined;
    throw new UsageError(`the manifests translate to a state the datapath refuses at ${formatPath(path)}${item ? ` (${item})` : ''}: ${issue.message}`);
  }
  return { state: r.data, format: 'manifests', leftOut: findings, notes: t.notes, origins: t.origins, counts: t.counts };
}

/** Origins of a plain state file: every name is its own. */
export function identityOrigins(state: DatapathState): Origins {
  const rules = new Map<string, { policy: string; rule: string }>();
  for (const p of state.policies) {
    (p.ingress ?? []).forEach((_, j) => rules.set(`${p.name}/ingress/${j}`, { policy: p.name, rule: `ingress[${j}]` }));
    (p.egress ?? []).forEach((_, j) => rules.set(`${p.name}/egress/${j}`, { policy: p.name, rule: `egress[${j}]` }));
  }
  return {
    endpoints: new Map(state.endpoints.map((e) => [e.name, e.name])),
    services: new Map(state.services.map((s) => [s.name, `${s.name} (${s.vip}:${s.port}/${s.protocol})`])),
    rules,
    policies: new Map(state.policies.map((p) => [p.name, p.name])),
  };
}
