// Namespace (v1) → its labels, which namespaceSelector and cilium's namespace labels select on.
// kubernetes.io/metadata.name is set by the API server on every namespace, so it is implied here.
import type { InputObject } from '../manifests.js';
import { NamespaceShape, parseShape } from '../shapes.js';
import type { Sink } from './common.js';

/** A Namespace's contribution: its name and labels. */
export interface NamespaceFacts {
  name: string;
  labels: Record<string, string>;
}

/** The labels of a namespace no Namespace object describes. */
export const implicitNamespaceLabels = (ns: string): Record<string, string> => ({ 'kubernetes.io/metadata.name': ns });

/** The Namespace's labels; null when a field is wrongly shaped (a finding: selectors cannot be matched on labels it does not have). */
export function namespaceFacts(o: InputObject, sink: Sink): NamespaceFacts | null {
  const r = parseShape(NamespaceShape, o.obj);
  if ('problems' in r) {
    for (const p of r.problems) sink.findings.add(o.origin, p.path, p.why, 'this Namespace is left out: namespaceSelector sees only its name label');
    return null;
  }
  const name = r.data.metadata?.name ?? '';
  return { name, labels: { ...(r.data.metadata?.labels ?? {}), ...implicitNamespaceLabels(name) } };
}
