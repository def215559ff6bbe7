// What a probe gets: the node, and a per-run memo so that a fact several checks and tuners want
// (interfaces, sysctls, modules) costs one round-trip. Checks and tuners both pass their own
// context, which carries these two fields; probes never see a profile, only the names they read.
import type { Host } from '../host/host.js';

export interface ProbeContext {
  host: Host;
  /** Per-host memo: facts several readers want are read once. */
  cache: Map<string, Promise<unknown>>;
}

/** Compute a fact once per host and run; later callers share the first call's promise. */
export function memo<T>(ctx: ProbeContext, key: string, compute: () => Promise<T>): Promise<T> {
  let p = ctx.cache.get(key) as Promise<T> | undefined;
  if (!p) {
    p = compute();
    ctx.cache.set(key, p);
  }
  return p;
}
