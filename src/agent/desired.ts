// Held objects → desired map entries: the ONE place where the agent turns what the informers hold
// into the datapath's state, as a sum of per-object contributions (datapath/k8s/kinds/). Each event
// replaces one object's contribution and marks the units it touches dirty; a sync recomputes only
// those units and yields the changed map entries:
//   - one unit per Service: its VIPs and ports joined with its EndpointSlices (or, with none, the
//     pods its selector picks) and this node's addresses → services, backends, maglev entries;
//   - one unit for endpoints and policies: pods, namespaces and policies → endpoints, ipcache,
//     policy entries (label sets and selectors are resolved across all of them, so a pod, namespace
//     or policy change recomputes this unit; a Service or EndpointSlice change never does).
// kube-proxy's own rules apply here: Services labelled service.kubernetes.io/service-proxy-name
// belong to another proxy; NodePort addresses come from this node's Node object.
import { compileState, serviceEntries, type Compiled as CompiledState, type MapEntry } from '../datapath/compile.js';
import { fnv1a32 } from '../datapath/identity.js';
import { contributionOf, newOrigins, sumPolicyHalf } from '../datapath/k8s/sum.js';
import { newSink, type Sink } from '../datapath/k8s/kinds/common.js';
import type { Backend, BackendSource } from '../datapath/k8s/kinds/endpointslice.js';
import type { NamespaceFacts } from '../datapath/k8s/kinds/namespace.js';
import { nodeAddresses } from '../datapath/k8s/kinds/node.js';
import type { PodFacts } from '../datapath/k8s/kinds/pod.js';
import type { PolicyFacts } from '../datapath/k8s/kinds/rules.js';
import { serviceOutputs, type ServiceFacts, type ServiceOut } from '../datapath/k8s/kinds/service.js';
import type { InputObject, Origin } from '../datapath/k8s/manifests.js';
import { buildNames, type NamesIndex } from '../datapath/observe.js';
import type { Origins } from '../datapath/k8s/origins.js';
import { DatapathStateSchema, serviceKey, type DatapathState } from '../datapath/schema.js';
import type { EntryChange } from '../datapath/sync.js';
import { objectKey, SERVICE_PROXY_NAME, type Kind } from './slim.js';

export { nodeAddresses } from '../datapath/k8s/kinds/node.js';

type Obj = Record<string, unknown>;

export interface Compiled {
  entries: MapEntry[];
  /** what cannot be enforced, one line each ("Service ns/name: spec.x: why: what is left out") */
  findings: string[];
  /** units the schema refused (their entries stay as they were): one line each */
  refused?: string;
}

export interface Delta {
  changes: EntryChange[];
  findings: string[];
  refused?: string;
}

function origin(kind: Kind, key: string): Origin {
  return { file: 'api', doc: 0, base: [], what: `${kind} ${key}`, line: 0, col: 0, at: () => ({ line: 0, col: 0 }) };
}

const POLICY_UNIT = 'policy';
const svcUnit = (key: string) => `svc:${key}`;
const entryKey = (e: { map: string; keyHex: string }) => `${e.map}\0${e.keyHex}`;
const findingLines = (s: Sink) => s.findings.list.map((f) => `${f.object}: ${f.path}: ${f.why}: ${f.leftOut}`);

/** svc_ids by VIP:port/protocol, kept while the VIP is desired (so a change elsewhere never moves one). */
class ServiceIds {
  private readonly byVip = new Map<string, number>();
  private readonly taken = new Set<number>();
  get(vkey: string): number {
    let id = this.byVip.get(vkey);
    if (id !== undefined) return id;
    let off = fnv1a32(vkey) % 0x7fffffff;
    while (this.taken.has(1 + off)) off = (off + 1) % 0x7fffffff;
    id = 1 + off;
    this.byVip.set(vkey, id);
    this.taken.add(id);
    return id;
  }
  release(vkey: string): void {
    const id = this.byVip.get(vkey);
    if (id === undefined) return;
    this.byVip.delete(vkey);
    this.taken.delete(id);
  }
}

interface Unit {
  /** its entries (an array: a Map per unit and a "map\0key" string per entry cost more than the entries) */
  entries: MapEntry[];
  findings: string[];
  /** VIP:port/protocol keys a service unit holds */
  vips: string[];
  /** a service unit's part of the names index: [svc_id, its name, VIP, port, protocol] per datapath service */
  names?: [number, string, string, number, string][];
}

/** The objects the informers hold, by kind and "namespace/name", and their contributions. */
export class HeldObjects {
  private readonly byKind = new Map<Kind, Map<string, Obj>>();
  /** the Service each EndpointSlice feeds (what a slice's next contribution must be taken from) */
  private readonly sliceService = new Map<string, string>();
  /** the findings of each contribution that has some (a delta lists them without walking every object) */
  private readonly objectFindings = new Map<string, string[]>();
  private readonly services = new Map<string, ServiceFacts>();
  private readonly slices = new Map<string, Map<string, BackendSource>>();
  private readonly pods = new Map<string, PodFacts>();
  private readonly namespaces = new Map<string, NamespaceFacts>();
  private readonly policies = new Map<string, PolicyFacts[]>();
  /** Services with a selector and no EndpointSlice (their backends are pods), by namespace */
  private readonly bySelector = new Map<string, Set<string>>();
  /** every finding now (objects' and units'), rebuilt only after one of them changed */
  private findingsNow: string[] | null = null;
  private readonly units = new Map<string, Unit>();
  private readonly dirty = new Set<string>([POLICY_UNIT]);
  /** Services whose only change since the last delta is in EndpointSlices changed in place: Service key → each such slice's key and its source before the first of those changes */
  private readonly sliceDirty = new Map<string, Map<string, BackendSource>>();
  private readonly vipOwner = new Map<string, string>();
  /** services that lost a VIP to another: recomputed when it is released */
  private readonly vipWaiting = new Map<string, Set<string>>();
  private readonly ids = new ServiceIds();
  private addresses: string[] = [];
  /** the node the entries are for (remote backends and endpoints, Local traffic policies, the SNAT address) */
  private nodeName: string | undefined;
  private refused = new Map<string, string>();
  /** what the names index's endpoint, identity, CIDR and rule parts are built from (the policy unit's last translation) */
  private policyNames: { state: DatapathState; compiled: CompiledState; origins: Origins } | null = null;
  /** counts changes to what the names index says (a unit's service names, the policy unit) */
  namesVersion = 0;

  /**
   * `notes: false`: the entries keep no note (the agent: nothing it does reads them, and at 10k
   * Services they held ~65k strings, 9.6 MiB); `datapath` tooling and the tests keep them.
   */
  constructor(private readonly o: { notes?: boolean } = {}) {}

  private flat(e: MapEntry): MapEntry {
    return this.o.notes === false ? { map: e.map, keyHex: e.keyHex, valueHex: e.valueHex, note: '' } : flat(e);
  }

  /** Store (or replace) an object; false when it equals what is held (a resync or a status-only change). */
  upsert(kind: Kind, o: Obj): boolean {
    const m = this.byKind.get(kind) ?? new Map<string, Obj>();
    this.byKind.set(kind, m);
    const key = objectKey(o);
    const before = m.get(key);
    m.set(key, o);
    if (before && sameExceptVersion(before, o)) return false;
    this.contribute(kind, key, o);
    return true;
  }

  /** Forget an object; false when it was not held. */
  remove(kind: Kind, key: string): boolean {
    if (!this.byKind.get(kind)?.delete(key)) return false;
    this.contribute(kind, key, undefined);
    return true;
  }

  count(kind: Kind): number {
    return this.byKind.get(kind)?.size ?? 0;
  }

  get(kind: Kind, key: string): Obj | undefined {
    return this.byKind.get(kind)?.get(key);
  }

  /** Replace one object's contribution and mark what it touches dirty. */
  private contribute(kind: Kind, key: string, o: Obj | undefined): void {
    const id = `${kind}/${key}`;
    const skip = kind === 'Node' || (kind === 'Service' && ((o?.metadata as Obj | undefined)?.labels as Obj | undefined)?.[SERVICE_PROXY_NAME] !== undefined);
    const c = o === undefined || skip ? undefined : contributionOf({ origin: origin(kind, key), obj: o } satisfies InputObject);
    if (c && c.sink.findings.length > 0) {
      this.objectFindings.set(id, findingLines(c.sink));
      this.findingsNow = null;
    } else if (this.objectFindings.delete(id)) this.findingsNow = null;
    const ns = key.includes('/') ? key.slice(0, key.indexOf('/')) : '';
    switch (kind) {
      case 'Service': {
        const f = c?.kind === 'Service' ? c.service : null;
        if (f) this.services.set(key, f);
        else this.services.delete(key);
        this.bySelectorUpdate(key);
        this.dirty.add(svcUnit(key));
        break;
      }
      case 'EndpointSlice': {
        const was = this.sliceService.get(key);
        const now = c?.kind === 'EndpointSlice' ? c.source : null;
        if (now) this.sliceService.set(key, now.service);
        else this.sliceService.delete(key);
        // the same slice changed in place (its Service keeps slices before and after): only its
        // backends are new, so the Service's unit takes the slice-only path (sliceUnit)
        const old = was === undefined ? undefined : this.slices.get(was)?.get(key);
        const inPlace = old !== undefined && now !== null && was === now.service;
        if (was !== undefined) {
          this.slices.get(was)?.delete(key);
          if (this.slices.get(was)?.size === 0) this.slices.delete(was);
          this.bySelectorUpdate(was);
          if (!inPlace) this.dirty.add(svcUnit(was));
        }
        if (now) {
          const m = this.slices.get(now.service) ?? new Map<string, BackendSource>();
          m.set(key, now);
          this.slices.set(now.service, m);
          this.bySelectorUpdate(now.service);
          if (!inPlace) this.dirty.add(svcUnit(now.service));
          else {
            const d = this.sliceDirty.get(now.service) ?? new Map<string, BackendSource>();
            if (!d.has(key)) d.set(key, old);
            this.sliceDirty.set(now.service, d);
          }
        }
        break;
      }
      case 'Pod': {
        const p = c?.kind === 'Pod' ? c.pod : null;
        if (p) this.pods.set(key, p);
        else this.pods.delete(key);
        this.dirty.add(POLICY_UNIT);
        for (const s of this.bySelector.get(ns) ?? []) this.dirty.add(svcUnit(s));
        break;
      }
      case 'Namespace':
        if (c?.kind === 'Namespace' && c.namespace) this.namespaces.set(key, c.namespace);
        else this.namespaces.delete(key);
        this.dirty.add(POLICY_UNIT);
        break;
      case 'NetworkPolicy':
      case 'CiliumNetworkPolicy':
        if (c && 'policies' in c) this.policies.set(id, c.policies);
        else this.policies.delete(id);
        this.dirty.add(POLICY_UNIT);
        break;
      case 'Node':
        break;
    }
  }

  private bySelectorUpdate(svc: string): void {
    const ns = svc.slice(0, svc.indexOf('/'));
    const set = this.bySelector.get(ns);
    if (this.services.get(svc)?.selector && !this.slices.has(svc)) {
      if (set) set.add(svc);
      else this.bySelector.set(ns, new Set([svc]));
    } else if (set?.delete(svc) && set.size === 0) this.bySelector.delete(ns);
  }

  /** The entries changed since the last delta or compile, on the node `nodeName`. */
  delta(nodeName: string): Delta {
    const addrs = nodeAddresses(this.get('Node', nodeName));
    if (nodeName !== this.nodeName) {
      // which backends and endpoints are remote changes with the node: every unit again
      this.nodeName = nodeName;
      for (const s of this.services.keys()) this.dirty.add(svcUnit(s));
      this.dirty.add(POLICY_UNIT);
    }
    if (addrs.join(',') !== this.addresses.join(',')) {
      this.addresses = addrs;
      for (const s of this.services.keys()) if (this.services.get(s)!.ports.some((p) => p.nodePort !== undefined)) this.dirty.add(svcUnit(s));
      // a unit refused for want of the node's addresses (an external address's remote backend) is asked again
      for (const u of this.refused.keys()) if (u !== POLICY_UNIT) this.dirty.add(u);
      this.dirty.add(POLICY_UNIT); // node_cfg: the SNAT address
    }
    const changes = new Map<string, EntryChange>();
    while (this.dirty.size > 0 || this.sliceDirty.size > 0) {
      let unit: string;
      let after: Unit | null;
      if (this.dirty.size > 0) {
        unit = this.dirty.values().next().value!;
        this.dirty.delete(unit);
        if (unit !== POLICY_UNIT) this.sliceDirty.delete(unit.slice(4));
        after = unit === POLICY_UNIT ? this.policyUnit() : this.serviceUnit(unit.slice(4));
      } else {
        const [svc, slices] = this.sliceDirty.entries().next().value!;
        this.sliceDirty.delete(svc);
        unit = svcUnit(svc);
        after = this.sliceUnit(svc, slices) ?? this.serviceUnit(svc);
      }
      const before = this.units.get(unit);
      if (after === null) continue; // refused: its entries stay as they were
      if ((before?.findings.length ?? 0) > 0 || after.findings.length > 0) this.findingsNow = null;
      if (after.entries.length === 0 && after.findings.length === 0) this.units.delete(unit);
      else this.units.set(unit, after);
      const was = new Map((before?.entries ?? []).map((e) => [entryKey(e), e]));
      const now = new Set<string>();
      for (const e of after.entries) {
        const k = entryKey(e);
        now.add(k);
        if (was.get(k)?.valueHex !== e.valueHex) changes.set(k, { ...e });
      }
      for (const [k, e] of was) if (!now.has(k)) changes.set(k, { map: e.map, keyHex: e.keyHex, valueHex: null, note: e.note });
    }
    return { changes: [...changes.values()], findings: this.findings(), ...(this.refused.size > 0 && { refused: [...this.refused.values()].join('; ') }) };
  }

  /** Every finding (the same array while none changed: a delta does not walk every unit). */
  private findings(): string[] {
    if (this.findingsNow) return this.findingsNow;
    const out: string[] = [];
    for (const f of this.objectFindings.values()) out.push(...f);
    for (const u of this.units.values()) out.push(...u.findings);
    return (this.findingsNow = out);
  }

  /**
   * A Service's unit when only some of its EndpointSlices changed in place: its VIPs, ports and
   * flags are as they were (a change to any of them goes through serviceUnit), so the schema is asked
   * only about the backends those slices contribute, each under the datapath service it lands in
   * (every per-backend rule: address, port, family, node). What the schema checks across backends
   * holds by construction here: pickBackends keeps one per address:port, a slice's backends are of
   * its addressType, and serviceOutputs leaves a port out (its names change: serviceUnit then)
   * when SCTP or Maglev cannot take them. Of those slices' backends only the ones that are new or
   * changed since the unit was last computed, and any at an address:port that left one of them, are
   * validated: the others were picked and validated then (with no terminating endpoint in the
   * Service, kube-proxy's pick is exactly the ready ones, one per address:port).
   * undefined: not this path (serviceUnit decides).
   */
  private sliceUnit(key: string, changed: Map<string, BackendSource>): Unit | null | undefined {
    const f = this.services.get(key);
    const before = this.units.get(svcUnit(key));
    const slices = this.slices.get(key);
    if (!f || !before || !slices || this.refused.has(svcUnit(key))) return undefined;
    const id = (b: Backend) => `${b.ip}|${b.port}|${b.nodeName ?? ''}|${b.ready ? 1 : 0}`;
    const fresh = new Set<string>();
    for (const src of slices.values()) for (const list of src.byPort.values()) for (const b of list) if (b.terminating) return undefined;
    for (const [sk, was] of changed) {
      for (const list of was.byPort.values()) for (const b of list) if (b.terminating) return undefined;
      const had = new Set<string>();
      const has = new Set<string>();
      for (const list of was.byPort.values()) for (const b of list) had.add(id(b));
      for (const list of slices.get(sk)?.byPort.values() ?? []) for (const b of list) has.add(id(b));
      for (const list of slices.get(sk)?.byPort.values() ?? []) for (const b of list) if (b.ready && !had.has(id(b))) fresh.add(`${b.ip}|${b.port}`);
      // an address:port that left a slice: another slice's backend there (its nodeName, say) may be picked now in its place
      for (const list of was.byPort.values()) for (const b of list) if (b.ready && !has.has(id(b))) fresh.add(`${b.ip}|${b.port}`);
    }
    const sink = newSink();
    const claimed: string[] = [];
    // the claims are as they were: read, never moved (a VIP released elsewhere makes this unit dirty)
    const claim = (vkey: string, owner: string) => {
      const other = this.vipOwner.get(vkey);
      if (claimed.includes(vkey)) return owner;
      if (other !== undefined && other !== key) return `Service ${other}`;
      claimed.push(vkey);
      return undefined;
    };
    const origins = new Map<string, string>();
    const outs = serviceOutputs(f, { slices: [...slices.values()], pods: () => [], nodeAddresses: this.addresses, nodeName: this.nodeName, claim, origins }, sink);
    // the same datapath services as before (same names, VIPs, ports, svc_ids), the same findings
    const namesBefore = before.names ?? [];
    if (outs.length !== namesBefore.length || claimed.length !== before.vips.length) return undefined;
    for (let i = 0; i < outs.length; i++) {
      const s = outs[i]!;
      const [nid, name, vip, port, protocol] = namesBefore[i]!;
      if (name !== (origins.get(s.name) ?? s.name) || vip !== s.vip || port !== s.port || protocol !== s.protocol || nid !== this.ids.get(serviceKey(s)) || s.backends.length > 65535) return undefined;
    }
    const findings = sink.findings.length === 0 ? [] : findingLines(sink);
    if (findings.length !== before.findings.length || findings.some((x, i) => x !== before.findings[i])) return undefined;
    const check: { at: number; backends: number[]; svc: ServiceOut }[] = [];
    outs.forEach((s, at) => {
      const idx = s.backends.flatMap((b, j) => (fresh.has(`${b.ip}|${b.port}`) ? [j] : []));
      if (idx.length > 0) check.push({ at, backends: idx, svc: { ...s, backends: idx.map((j) => s.backends[j]!) } });
    });
    if (check.length > 0) {
      const r = DatapathStateSchema.safeParse({ services: check.map((c) => c.svc), ...this.nodeObject() });
      if (!r.success) {
        const issue = r.error.issues[0]!;
        // the path as the whole unit's would read: its service and backend indexes
        const path = issue.path.map((p, i) => (i === 1 && typeof p === 'number' ? check[p]!.at : i === 3 && typeof issue.path[1] === 'number' && typeof p === 'number' ? check[issue.path[1]]!.backends[p]! : p));
        this.refused.set(svcUnit(key), `Service ${key}: ${path.map(String).join('.')}: ${issue.message}`);
        return null;
      }
    }
    const entries = new Map<string, MapEntry>();
    outs.forEach((s, i) => {
      for (const e of serviceEntries(s, namesBefore[i]![0], this.nodeName)) entries.set(entryKey(e), this.flat(e));
    });
    return { entries: [...entries.values()], findings: before.findings, vips: before.vips, ...(namesBefore.length > 0 && { names: namesBefore }) };
  }

  private serviceUnit(key: string): Unit | null {
    const f = this.services.get(key);
    const sink = newSink();
    const claimed: string[] = [];
    const claim = (vkey: string, owner: string) => {
      const other = this.vipOwner.get(vkey);
      if (claimed.includes(vkey)) return owner;
      if (other !== undefined && other !== key) {
        const w = this.vipWaiting.get(vkey) ?? new Set<string>();
        this.vipWaiting.set(vkey, w.add(key));
        return `Service ${other}`;
      }
      claimed.push(vkey);
      return undefined;
    };
    const ns = key.slice(0, key.indexOf('/'));
    const origins = new Map<string, string>();
    const outs = f ? serviceOutputs(f, { slices: [...(this.slices.get(key)?.values() ?? [])], pods: () => [...this.pods.values()].filter((p) => p.ns === ns), nodeAddresses: this.addresses, nodeName: this.nodeName, claim, origins }, sink) : [];
    const r = DatapathStateSchema.safeParse({ services: outs, ...this.nodeObject() });
    if (!r.success) {
      const issue = r.error.issues[0]!;
      this.refused.set(svcUnit(key), `Service ${key}: ${issue.path.map(String).join('.')}: ${issue.message}`);
      return null;
    }
    this.refused.delete(svcUnit(key));
    const old = this.units.get(svcUnit(key))?.vips ?? [];
    for (const v of claimed) this.vipOwner.set(v, key);
    const entries = new Map<string, MapEntry>();
    const names: NonNullable<Unit['names']> = [];
    for (const s of r.data.services) {
      const id = this.ids.get(serviceKey(s));
      for (const e of serviceEntries(s, id, this.nodeName)) entries.set(entryKey(e), this.flat(e));
      names.push([id, flatten(origins.get(s.name) ?? s.name), s.vip, s.port, s.protocol]);
    }
    const namesBefore = this.units.get(svcUnit(key))?.names ?? [];
    if (names.length !== namesBefore.length || names.some((n, i) => n.join('\0') !== namesBefore[i]!.join('\0'))) this.namesVersion++;
    for (const v of old)
      if (!claimed.includes(v)) {
        this.vipOwner.delete(v);
        this.ids.release(v);
        for (const w of this.vipWaiting.get(v) ?? []) this.dirty.add(svcUnit(w));
        this.vipWaiting.delete(v);
      }
    return { entries: [...entries.values()], findings: findingLines(sink), vips: claimed, ...(names.length > 0 && { names }) };
  }

  /** This node as the schema reads it: its name (local and remote backends) and its addresses (what flows from an external address to another node's backend are SNATed to) */
  private nodeObject(): { node?: { name: string; addresses?: string[] } } {
    return this.nodeName === undefined ? {} : { node: { name: this.nodeName, ...(this.addresses.length > 0 && { addresses: this.addresses }) } };
  }

  private policyUnit(): Unit | null {
    const sink = newSink();
    const sorted = <T>(m: Map<string, T>) => [...m.keys()].sort().map((k) => m.get(k)!);
    const origins = newOrigins();
    const half = sumPolicyHalf(sorted(this.pods), this.namespaces, sorted(this.policies).flat(), sink, origins, this.nodeName);
    // the node (its SNAT address: node_cfg) goes with the endpoints: remote ones are told apart by it
    const r = DatapathStateSchema.safeParse({ endpoints: half.endpoints, policies: half.policies, ...this.nodeObject() });
    if (!r.success) {
      const issue = r.error.issues[0]!;
      this.refused.set(POLICY_UNIT, `endpoints and policies: ${issue.path.map(String).join('.')}: ${issue.message}`);
      return null;
    }
    this.refused.delete(POLICY_UNIT);
    const entries = new Map<string, MapEntry>();
    const compiled = compileState(r.data);
    for (const e of compiled.entries) entries.set(entryKey(e), this.flat(e));
    // the names index's other parts are built from these when it is next written, off the event path
    this.policyNames = { state: r.data, compiled: { ...compiled, entries: [] }, origins };
    this.namesVersion++;
    return { entries: [...entries.values()], findings: findingLines(sink), vips: [] };
  }

  /**
   * The names index of what the units hold now (what the last delta or compile wrote): the service
   * names each Service's unit kept, with the svc_ids the agent gave them, and the endpoint, identity,
   * CIDR and rule names of the policy unit's last translation. No translation here: a Service unit
   * keeps its part when it is recomputed, the policy unit the inputs of its part.
   */
  names(source: string, now = new Date()): NamesIndex {
    const p = this.policyNames;
    const base = p ? buildNames({ ...p.state, services: [] }, p.compiled, p.origins, source, now) : buildNames(DatapathStateSchema.parse({}), { entries: [], identities: { byLabels: new Map(), byEndpoint: new Map(), byCidr: new Map() }, serviceIds: new Map(), rules: new Map() }, newOrigins(), source, now);
    for (const u of this.units.values()) for (const [id, name, vip, port, protocol] of u.names ?? []) base.services[String(id)] = { name, vip, port, protocol };
    return base;
  }

  /** Every entry desired now (the full sync's side of the diff against the pinned maps). */
  compile(nodeName: string): Compiled {
    const d = this.delta(nodeName);
    const entries = [...this.units.values()].flatMap((u) => u.entries);
    return { entries, findings: d.findings, ...(d.refused !== undefined && { refused: d.refused }) };
  }
}

/**
 * The entry with its note as one flat string: a template literal is a tree of V8 cons strings (32
 * bytes a node, each holding its parts), several per note, and the agent keeps ~65k notes at 10k
 * Services. Buffer's round trip is the reliable way to flatten one.
 */
function flat(e: MapEntry): MapEntry {
  return { map: e.map, keyHex: e.keyHex, valueHex: e.valueHex, note: flatten(e.note) };
}

const flatten = (s: string): string => Buffer.from(s).toString();

/** Equal but for metadata.resourceVersion (a resync, a status-only change): compared in place, nothing serialised. */
function sameExceptVersion(a: Obj, b: Obj): boolean {
  for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
    if (k !== 'metadata') {
      if (!deepEqual(a[k], b[k])) return false;
      continue;
    }
    const ma = a.metadata as Obj | undefined;
    const mb = b.metadata as Obj | undefined;
    if (!ma || !mb) return ma === mb;
    const keys = new Set([...Object.keys(ma), ...Object.keys(mb)]);
    for (const m of keys) if (m !== 'resourceVersion' && !deepEqual(ma[m], mb[m])) return false;
  }
  return true;
}

/** Deep equality of JSON values (an absent key equals an undefined one, as JSON.stringify has it). */
function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) return a.length === (b as unknown[]).length && a.every((x, i) => deepEqual(x, (b as unknown[])[i]));
  const oa = a as Obj;
  const ob = b as Obj;
  const keys = new Set([...Object.keys(oa), ...Object.keys(ob)]);
  for (const k of keys) if (!deepEqual(oa[k], ob[k])) return false;
  return true;
}

/** Every map entry the held objects ask for, on the node `nodeName`. */
export function compile(held: HeldObjects, nodeName: string): Compiled {
  return held.compile(nodeName);
}
