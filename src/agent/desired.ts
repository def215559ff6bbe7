// Held objects → desired map entries: the ONE place where the agent turns what the informers hold
// into the datapath's state. Today it re-translates the whole held set (translate + compileState) on
// each sync; the per-kind contribution store of the seams work replaces the body of `compile` here.
// kube-proxy's own rules that translate does not apply are applied here: Services labelled
// service.kubernetes.io/service-proxy-name belong to another proxy; NodePort addresses come from
// this node's Node object.
import { compileState, type MapEntry } from '../datapath/compile.js';
import { parseIpv4 } from '../datapath/ip.js';
import type { InputObject, Origin } from '../datapath/k8s/manifests.js';
import { translate } from '../datapath/k8s/sum.js';
import { DatapathStateSchema } from '../datapath/schema.js';
import { objectKey, SERVICE_PROXY_NAME, type Kind } from './slim.js';

type Obj = Record<string, unknown>;

export interface Compiled {
  entries: MapEntry[];
  /** what cannot be enforced, one line each ("Service ns/name: spec.x: why: what is left out") */
  findings: string[];
  /** the schema refused the translated state: nothing should be programmed from it */
  refused?: string;
}

function origin(kind: Kind, key: string): Origin {
  return { file: 'api', doc: 0, base: [], what: `${kind} ${key}`, line: 0, col: 0, at: () => ({ line: 0, col: 0 }) };
}

/** The objects the informers hold, by kind and "namespace/name". */
export class HeldObjects {
  private readonly byKind = new Map<Kind, Map<string, Obj>>();

  /** Store (or replace) an object; false when it equals what is held (a resync or a status-only change). */
  upsert(kind: Kind, o: Obj): boolean {
    const m = this.byKind.get(kind) ?? new Map<string, Obj>();
    this.byKind.set(kind, m);
    const key = objectKey(o);
    const before = m.get(key);
    m.set(key, o);
    return !before || !sameExceptVersion(before, o);
  }

  /** Forget an object; false when it was not held. */
  remove(kind: Kind, key: string): boolean {
    return this.byKind.get(kind)?.delete(key) ?? false;
  }

  count(kind: Kind): number {
    return this.byKind.get(kind)?.size ?? 0;
  }

  get(kind: Kind, key: string): Obj | undefined {
    return this.byKind.get(kind)?.get(key);
  }

  *all(): Generator<[Kind, string, Obj]> {
    for (const [kind, m] of this.byKind) for (const [key, o] of m) yield [kind, key, o];
  }
}

function sameExceptVersion(a: Obj, b: Obj): boolean {
  const strip = (o: Obj) => JSON.stringify({ ...o, metadata: { ...(o.metadata as Obj), resourceVersion: undefined } });
  return strip(a) === strip(b);
}

/** This node's IPv4 addresses (InternalIP, ExternalIP) from its Node object: NodePort services listen there. */
export function nodeAddresses(node: Obj | undefined): string[] {
  const addrs = (node?.status as Obj | undefined)?.addresses;
  if (!Array.isArray(addrs)) return [];
  return [
    ...new Set(
      addrs
        .filter((a: Obj) => (a.type === 'InternalIP' || a.type === 'ExternalIP') && typeof a.address === 'string' && parseIpv4(a.address) !== null)
        .map((a: Obj) => a.address as string),
    ),
  ];
}

/** Every map entry the held objects ask for, on the node `nodeName`. */
export function compile(held: HeldObjects, nodeName: string): Compiled {
  const objects: InputObject[] = [];
  for (const [kind, key, o] of held.all()) {
    if (kind === 'Node') continue;
    if (kind === 'Service' && ((o.metadata as Obj).labels as Obj | undefined)?.[SERVICE_PROXY_NAME] !== undefined) continue;
    objects.push({ origin: origin(kind, key), obj: o });
  }
  const t = translate(objects, { nodeAddresses: nodeAddresses(held.get('Node', nodeName)) });
  const findings = t.findings.list.map((f) => `${f.object}: ${f.path}: ${f.why}: ${f.leftOut}`);
  const r = DatapathStateSchema.safeParse(t.state);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    return { entries: [], findings, refused: `${issue.path.map(String).join('.')}: ${issue.message}` };
  }
  return { entries: compileState(r.data).entries, findings };
}
