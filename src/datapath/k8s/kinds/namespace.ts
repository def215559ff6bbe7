// Namespace (v1) → its labels, which namespaceSelector and cilium's namespace labels select on.
// kubernetes.io/metadata.name is set by the API server on every namespace, so it is implied here.
import type { InputObject } from '../manifests.js';
import { labelsOf, nameOf } from './common.js';

/** A Namespace's contribution: its name and labels. */
export interface NamespaceFacts {
  name: string;
  labels: Record<string, string>;
}

/** The labels of a namespace no Namespace object describes. */
export const implicitNamespaceLabels = (ns: string): Record<string, string> => ({ 'kubernetes.io/metadata.name': ns });

export function namespaceFacts(o: InputObject): NamespaceFacts {
  const name = nameOf(o);
  return { name, labels: { ...labelsOf((o.obj.metadata as Record<string, unknown> | undefined)?.labels), ...implicitNamespaceLabels(name) } };
}
