// Kubernetes label selectors (matchLabels AND matchExpressions with In, NotIn, Exists, DoesNotExist),
// as NetworkPolicy and CiliumNetworkPolicy use them. Cilium's keys may carry a source prefix:
// `k8s:app` and `any:app` mean `app`; `reserved:*` labels (host, world, ...) name no pod and are refused.
import { isObject, type Path } from './manifests.js';

export interface Requirement {
  key: string;
  operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';
  values: string[];
}

export interface Selector {
  requirements: Requirement[];
}

/** Why a selector cannot be used, with the path inside it. */
export interface SelectorProblem {
  path: Path;
  why: string;
}

const OPERATORS = new Set(['In', 'NotIn', 'Exists', 'DoesNotExist']);

function ciliumKey(key: string): string | SelectorProblem {
  const colon = key.indexOf(':');
  if (colon < 0) return key;
  const source = key.slice(0, colon);
  if (source === 'k8s' || source === 'any') return key.slice(colon + 1);
  if (source === 'reserved') return { path: [], why: `"${key}" is a reserved identity (host, world, health, ...), not pod labels; this datapath has no reserved identities in policy (use fromEntities: [world] or a CIDR)` };
  return { path: [], why: `label source "${source}:" is not supported (only k8s: and any:)` };
}

/** Parse a LabelSelector; `cilium` accepts source-prefixed keys. */
export function parseSelector(v: unknown, cilium: boolean): Selector | SelectorProblem {
  if (v === null || v === undefined) return { requirements: [] };
  if (!isObject(v)) return { path: [], why: 'expected a label selector (matchLabels, matchExpressions)' };
  for (const k of Object.keys(v)) if (k !== 'matchLabels' && k !== 'matchExpressions') return { path: [k], why: `unknown field of a label selector (expected matchLabels, matchExpressions)` };
  const requirements: Requirement[] = [];
  const key = (k: string, path: Path): string | SelectorProblem => {
    if (!cilium) return k;
    const r = ciliumKey(k);
    return typeof r === 'string' ? r : { path, why: r.why };
  };
  // null reads as absent (as the API server reads it): `matchLabels:` with nothing after it selects everything
  if (v.matchLabels !== undefined && v.matchLabels !== null) {
    if (!isObject(v.matchLabels)) return { path: ['matchLabels'], why: 'expected a map of label keys to values' };
    for (const [k, val] of Object.entries(v.matchLabels)) {
      const kk = key(k, ['matchLabels', k]);
      if (typeof kk !== 'string') return kk;
      if (typeof val !== 'string') return { path: ['matchLabels', k], why: 'expected a string label value (quote numbers and booleans)' };
      requirements.push({ key: kk, operator: 'In', values: [val] });
    }
  }
  if (v.matchExpressions !== undefined && v.matchExpressions !== null) {
    if (!Array.isArray(v.matchExpressions)) return { path: ['matchExpressions'], why: 'expected a list' };
    for (const [i, e] of v.matchExpressions.entries()) {
      const p: Path = ['matchExpressions', i];
      if (!isObject(e)) return { path: p, why: 'expected {key, operator, values}' };
      for (const k of Object.keys(e)) if (!['key', 'operator', 'values'].includes(k)) return { path: [...p, k], why: 'unknown field (expected key, operator, values)' };
      if (typeof e.key !== 'string') return { path: [...p, 'key'], why: 'expected a label key' };
      const kk = key(e.key, [...p, 'key']);
      if (typeof kk !== 'string') return kk;
      if (typeof e.operator !== 'string' || !OPERATORS.has(e.operator)) return { path: [...p, 'operator'], why: 'expected In, NotIn, Exists or DoesNotExist' };
      const values = e.values ?? [];
      if (!Array.isArray(values) || values.some((x) => typeof x !== 'string')) return { path: [...p, 'values'], why: 'expected a list of strings' };
      const op = e.operator as Requirement['operator'];
      if ((op === 'In' || op === 'NotIn') && values.length === 0) return { path: [...p, 'values'], why: `${op} needs at least one value` };
      if ((op === 'Exists' || op === 'DoesNotExist') && values.length > 0) return { path: [...p, 'values'], why: `${op} takes no values` };
      requirements.push({ key: kk, operator: op, values: values as string[] });
    }
  }
  return { requirements };
}

export function isProblem(s: Selector | SelectorProblem): s is SelectorProblem {
  return 'why' in s;
}

/** Whether labels satisfy every requirement (an empty selector matches everything). */
export function matches(sel: Selector, labels: Record<string, string>): boolean {
  return sel.requirements.every((r) => {
    const has = Object.hasOwn(labels, r.key);
    switch (r.operator) {
      case 'In':
        return has && r.values.includes(labels[r.key]!);
      case 'NotIn':
        return !has || !r.values.includes(labels[r.key]!);
      case 'Exists':
        return has;
      case 'DoesNotExist':
        return !has;
    }
  });
}

/** Whether the selector says anything about this key. */
export function mentions(sel: Selector, key: string): boolean {
  return sel.requirements.some((r) => r.key === key);
}
