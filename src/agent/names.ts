// The names index the agent leaves on the node (NAMES_PATH, as `datapath sync` writes it), so that
// `datapath observe` and `datapath metrics` name what the agent wrote: pods by "namespace/name",
// services by "namespace/service:port", policies and rules by their manifest names.
// Names depend on Services, Pods, Namespaces, policies and this Node, not on EndpointSlices (an
// endpoint's name comes from its Pod; service and rule ids are hashes of stable names): the agent
// rebuilds the index only after a change to one of those kinds, at most once per interval, off the
// event-to-map path, so endpoint churn never pays for it.
import { compileState } from '../datapath/compile.js';
import type { InputObject, Origin } from '../datapath/k8s/manifests.js';
import { translate } from '../datapath/k8s/sum.js';
import { buildNames, type NamesIndex } from '../datapath/observe.js';
import { DatapathStateSchema } from '../datapath/schema.js';
import { SERVICE_PROXY_NAME, type Kind } from './slim.js';

type Obj = Record<string, unknown>;

/** The kinds whose changes change the names index. */
export const NAMED_KINDS: ReadonlySet<Kind> = new Set<Kind>(['Service', 'Pod', 'Namespace', 'NetworkPolicy', 'CiliumNetworkPolicy', 'Node']);

function origin(kind: Kind, key: string): Origin {
  return { file: 'api', doc: 0, base: [], what: `${kind} ${key}`, line: 0, col: 0, at: () => ({ line: 0, col: 0 }) };
}

/**
 * The names index of the held objects (the same selection the agent programs: no Node objects, no
 * Services another proxy owns), or null when the translated state is refused (nothing was written).
 */
export function agentNames(objects: Iterable<[Kind, string, Obj]>, nodeAddresses: string[], source: string, now = new Date()): NamesIndex | null {
  const input: InputObject[] = [];
  for (const [kind, key, o] of objects) {
    if (kind === 'Node') continue;
    if (kind === 'Service' && ((o.metadata as Obj | undefined)?.labels as Obj | undefined)?.[SERVICE_PROXY_NAME] !== undefined) continue;
    input.push({ origin: origin(kind, key), obj: o });
  }
  const t = translate(input, { nodeAddresses });
  const r = DatapathStateSchema.safeParse(t.state);
  if (!r.success) return null;
  return buildNames(r.data, compileState(r.data), t.origins, source, now);
}
