// A stand-in for kube-apiserver on 127.0.0.1, for the agent's tests: no kube-apiserver can be
// installed here (not in Debian's archive, not on npm). It speaks the API's real wire protocol for the
// calls an informer makes, so @kubernetes/client-node talks to it unchanged:
//   GET <collection>[?limit=L[&continue=T]]  → a <Kind>List with metadata.resourceVersion and items;
//       in pages of L with metadata.continue and remainingItemCount while more remain; 410 Expired
//       for a continue token older than the retained history (page() says how it differs)
//   GET <collection>?watch=true&resourceVersion=N[&timeoutSeconds=S][&allowWatchBookmarks=true]
//       → a chunked stream, one {"type":"ADDED|MODIFIED|DELETED|BOOKMARK|ERROR","object":{...}} per
//         line: the events after N, then live ones; ERROR with a Status of code 410 (reason Expired)
//         when N is older than the retained history; the stream ends after timeoutSeconds
//   a forbidden collection                   → 403 with the Status body kube-apiserver sends
//   an unknown collection (a CRD not there)  → 404 Status
// Objects are stored and served in the API's full JSON form (uid, creationTimestamp, generation,
// managedFields, status), as a real server returns them. Plain HTTP on loopback: client-node takes
// http:// only with insecure-skip-tls-verify, which the kubeconfig written here sets.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import type { AddressInfo, Socket } from 'node:net';
import { writeFileSync } from 'node:fs';

type Obj = Record<string, unknown>;

/** The collections served, with their list kind and group/version. */
export const COLLECTIONS: Record<string, { kind: string; apiVersion: string; namespaced: boolean }> = {
  '/api/v1/namespaces': { kind: 'Namespace', apiVersion: 'v1', namespaced: false },
  '/api/v1/nodes': { kind: 'Node', apiVersion: 'v1', namespaced: false },
  '/api/v1/pods': { kind: 'Pod', apiVersion: 'v1', namespaced: true },
  '/api/v1/services': { kind: 'Service', apiVersion: 'v1', namespaced: true },
  '/apis/discovery.k8s.io/v1/endpointslices': { kind: 'EndpointSlice', apiVersion: 'discovery.k8s.io/v1', namespaced: true },
  '/apis/networking.k8s.io/v1/networkpolicies': { kind: 'NetworkPolicy', apiVersion: 'networking.k8s.io/v1', namespaced: true },
  '/apis/cilium.io/v2/ciliumnetworkpolicies': { kind: 'CiliumNetworkPolicy', apiVersion: 'cilium.io/v2', namespaced: true },
};
const RESOURCE: Record<string, string> = { Namespace: 'namespaces', Node: 'nodes', Pod: 'pods', Service: 'services', EndpointSlice: 'endpointslices', NetworkPolicy: 'networkpolicies', CiliumNetworkPolicy: 'ciliumnetworkpolicies' };
const GROUP: Record<string, string> = { EndpointSlice: 'discovery.k8s.io', NetworkPolicy: 'networking.k8s.io', CiliumNetworkPolicy: 'cilium.io' };

interface Event {
  rv: number;
  path: string;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  object: Obj;
}

interface Watcher {
  path: string;
  res: ServerResponse;
  timer?: NodeJS.Timeout;
}

const pathOf = (kind: string) => Object.keys(COLLECTIONS).find((p) => COLLECTIONS[p]!.kind === kind)!;
const keyOf = (o: Obj) => {
  const md = o.metadata as Obj;
  return `${(md.namespace as string | undefined) ?? ''}/${md.name as string}`;
};

function status(code: number, reason: string, message: string, details?: Obj): Obj {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, ...(details ? { details } : {}), code };
}

export class FakeApiServer {
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  private readonly store = new Map<string, Map<string, Obj>>(Object.keys(COLLECTIONS).map((p) => [p, new Map()]));
  private history: Event[] = [];
  /** the oldest resourceVersion a watch may start from; older ones get 410 Expired */
  private oldestRv = 1;
  private rv = 100;
  private watchers = new Set<Watcher>();
  /** collections that answer 403 (RBAC missing), by kind */
  readonly forbidden = new Set<string>();
  /** whether the CiliumNetworkPolicy CRD is installed */
  crd = true;
  /** requests served: "list <kind>", "watch <kind>" → count */
  readonly requests = new Map<string, number>();
  /** called on every list request (a test's hook: compact() between two pages) */
  onList?: (kind: string, query: URLSearchParams) => void;
  /** the query and status of every list request, in order */
  readonly listQueries: { kind: string; query: URLSearchParams; status: number }[] = [];
  /** the query of every watch request, in order ("Service resourceVersion=…&timeoutSeconds=…") */
  readonly watchQueries: { kind: string; query: URLSearchParams }[] = [];
  port = 0;

  /** Listen on 127.0.0.1 (port 0: any; a port: the same as before a stop). */
  async start(port = this.port): Promise<string> {
    const server = createServer((req, res) => this.handle(req, res));
    server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((res, rej) => {
      server.once('error', rej);
      server.listen(port, '127.0.0.1', () => res());
    });
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
    return this.url;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Go away as a crashed API server does: every connection reset, nothing listening. */
  async stop(): Promise<void> {
    for (const w of this.watchers) clearTimeout(w.timer);
    this.watchers.clear();
    for (const s of this.sockets) s.destroy();
    const server = this.server;
    this.server = null;
    if (server) await new Promise<void>((res) => server.close(() => res()));
  }

  /** Forget the event history (an etcd compaction): watches from an older resourceVersion get 410. */
  compact(): void {
    this.history = [];
    this.oldestRv = this.rv + 1;
  }

  /** End every open watch stream mid-way (a dropped connection, not a clean end). */
  dropWatches(): void {
    for (const w of this.watchers) {
      clearTimeout(w.timer);
      w.res.socket?.destroy();
    }
    this.watchers.clear();
  }

  /** End every open watch stream cleanly, as the server does when a watch's timeoutSeconds expires. */
  endWatches(): void {
    for (const w of this.watchers) {
      clearTimeout(w.timer);
      w.res.end();
    }
    this.watchers.clear();
  }

  /** Send a BOOKMARK with the current resourceVersion to every watch that asked for them. */
  bookmark(): void {
    for (const w of this.watchers) {
      if (!(w as Watcher & { bookmarks?: boolean }).bookmarks) continue;
      const c = COLLECTIONS[w.path]!;
      w.res.write(`${JSON.stringify({ type: 'BOOKMARK', object: { kind: c.kind, apiVersion: c.apiVersion, metadata: { resourceVersion: String(this.rv) } } })}\n`);
    }
  }

  /** Write a kubeconfig for this server to `file`. */
  writeKubeconfig(file: string): void {
    writeFileSync(
      file,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'fake', cluster: { server: this.url, 'insecure-skip-tls-verify': true } }],
        users: [{ name: 'agent', user: { token: 'fake-token' } }],
        contexts: [{ name: 'fake', context: { cluster: 'fake', user: 'agent' } }],
        'current-context': 'fake',
      }),
    );
  }

  // ---- the store

  /** Create or replace an object (given with apiVersion, kind, metadata.name[, namespace]); it gets the server's fields. */
  apply(o: Obj): Obj {
    const path = pathOf(o.kind as string);
    const m = this.store.get(path)!;
    const prev = m.get(keyOf(o));
    const rv = ++this.rv;
    const md = o.metadata as Obj;
    const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    const full: Obj = {
      ...o,
      metadata: {
        ...md,
        uid: (prev?.metadata as Obj | undefined)?.uid ?? randomUUID(),
        resourceVersion: String(rv),
        generation: ((prev?.metadata as Obj | undefined)?.generation as number | undefined ?? 0) + 1,
        creationTimestamp: (prev?.metadata as Obj | undefined)?.creationTimestamp ?? now,
        managedFields: [{ manager: 'kubectl-client-side-apply', operation: 'Update', apiVersion: o.apiVersion, time: now, fieldsType: 'FieldsV1', fieldsV1: { 'f:metadata': { 'f:labels': {} }, 'f:spec': {} } }],
      },
    };
    m.set(keyOf(o), full);
    this.emit({ rv, path, type: prev ? 'MODIFIED' : 'ADDED', object: full });
    return full;
  }

  /** Delete an object; false when there is none. */
  delete(kind: string, namespace: string | undefined, name: string): boolean {
    const path = pathOf(kind);
    const m = this.store.get(path)!;
    const k = `${namespace ?? ''}/${name}`;
    const prev = m.get(k);
    if (!prev) return false;
    m.delete(k);
    const rv = ++this.rv;
    this.emit({ rv, path, type: 'DELETED', object: { ...prev, metadata: { ...(prev.metadata as Obj), resourceVersion: String(rv) } } });
    return true;
  }

  private emit(e: Event): void {
    this.history.push(e);
    for (const w of this.watchers) if (w.path === e.path) w.res.write(`${JSON.stringify({ type: e.type, object: e.object })}\n`);
  }

  private count(what: string): void {
    this.requests.set(what, (this.requests.get(what) ?? 0) + 1);
  }

  // ---- lists in chunks (limit, continue), as kube-apiserver serves them

  /**
   * One page of a list: `limit` objects in key order ("namespace/name", etcd's order) after the
   * continue token's key. The token is kube-apiserver's own form (base64 of
   * {"v":"meta.k8s.io/v1","rv":N,"start":"<key>\u0000"}); a token whose resourceVersion is older than
   * the retained history (after compact()) is 410 Expired, with kube-apiserver's message. Unlike
   * kube-apiserver (which reads etcd at the token's revision), later pages come from the current
   * store: a change between two pages can show in the list, as it would on a relist.
   */
  private page(url: URL): { objects: Obj[]; rv: number; next?: string; remaining?: number } | { expired: string } | { bad: string } {
    const limitParam = url.searchParams.get('limit');
    const limit = limitParam === null ? 0 : Number(limitParam);
    if (!Number.isInteger(limit) || limit < 0) return { bad: `invalid limit: ${limitParam}` };
    const token = url.searchParams.get('continue');
    let rv = this.rv;
    let start = '';
    if (token) {
      let t: { v?: unknown; rv?: unknown; start?: unknown };
      try {
        t = JSON.parse(Buffer.from(token, 'base64').toString('utf8')) as typeof t;
      } catch {
        return { bad: 'continue key is not valid: illegal base64 data' };
      }
      if (t.v !== 'meta.k8s.io/v1' || typeof t.rv !== 'number' || typeof t.start !== 'string') return { bad: 'continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)' };
      if (t.rv < this.oldestRv - 1)
        return {
          expired:
            'The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.',
        };
      rv = t.rv;
      start = t.start;
    }
    const m = this.store.get(url.pathname)!;
    const keys = [...m.keys()].filter((k) => k >= start).sort();
    const take = limit > 0 ? keys.slice(0, limit) : keys;
    const objects = take.map((k) => m.get(k)!);
    if (limit === 0 || keys.length <= limit) return { objects, rv };
    const next = Buffer.from(JSON.stringify({ v: 'meta.k8s.io/v1', rv, start: `${take[take.length - 1]!}\u0000` })).toString('base64');
    return { objects, rv, next, remaining: keys.length - limit };
  }

  // ---- HTTP

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://x');
    const c = COLLECTIONS[url.pathname];
    const send = (code: number, body: Obj) => {
      res.writeHead(code, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.method !== 'GET') return send(405, status(405, 'MethodNotAllowed', `the fake API server serves only GET, not ${req.method}`));
    if (req.headers.authorization !== 'Bearer fake-token') return send(401, status(401, 'Unauthorized', 'Unauthorized'));
    if (!c || (c.kind === 'CiliumNetworkPolicy' && !this.crd)) return send(404, status(404, 'NotFound', 'the server could not find the requested resource'));
    const watch = url.searchParams.get('watch') === 'true' || url.searchParams.get('watch') === '1';
    const verb = watch ? 'watch' : 'list';
    this.count(`${verb} ${c.kind}`);
    if (this.forbidden.has(c.kind)) {
      const resource = RESOURCE[c.kind]!;
      const group = GROUP[c.kind] ?? '';
      return send(403, status(403, 'Forbidden', `${resource}${group ? `.${group}` : ''} is forbidden: User "system:serviceaccount:kube-system:prep-node" cannot ${verb} resource "${resource}" in API group "${group}" at the cluster scope`, { group, kind: resource }));
    }
    if (!watch) {
      this.onList?.(c.kind, url.searchParams);
      const page = this.page(url);
      const code = 'expired' in page ? 410 : 'bad' in page ? 400 : 200;
      this.listQueries.push({ kind: c.kind, query: url.searchParams, status: code });
      if ('expired' in page) return send(410, status(410, 'Expired', page.expired));
      if ('bad' in page) return send(400, status(400, 'BadRequest', page.bad));
      const items = page.objects.map((o) => {
        // a list's items carry no apiVersion/kind, as kube-apiserver's do
        const rest = { ...o };
        delete rest.apiVersion;
        delete rest.kind;
        return rest;
      });
      const metadata: Obj = { resourceVersion: String(page.rv) };
      if (page.next !== undefined) Object.assign(metadata, { continue: page.next, remainingItemCount: page.remaining });
      return send(200, { kind: `${c.kind}List`, apiVersion: c.apiVersion, metadata, items });
    }
    this.watchQueries.push({ kind: c.kind, query: url.searchParams });
    const from = Number(url.searchParams.get('resourceVersion') ?? '0');
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    if (from !== 0 && from < this.oldestRv - 1) {
      res.end(`${JSON.stringify({ type: 'ERROR', object: status(410, 'Expired', `too old resource version: ${from} (${this.oldestRv - 1})`) })}\n`);
      return;
    }
    for (const e of this.history) if (e.path === url.pathname && e.rv > from) res.write(`${JSON.stringify({ type: e.type, object: e.object })}\n`);
    const w: Watcher & { bookmarks?: boolean } = { path: url.pathname, res, bookmarks: url.searchParams.get('allowWatchBookmarks') === 'true' };
    const timeout = Number(url.searchParams.get('timeoutSeconds') ?? '0');
    if (timeout > 0)
      w.timer = setTimeout(() => {
        this.watchers.delete(w);
        res.end();
      }, timeout * 1000);
    this.watchers.add(w);
    res.on('close', () => {
      clearTimeout(w.timer);
      this.watchers.delete(w);
    });
  }
}

// ---- objects as a real API server returns them (the server adds uid, resourceVersion, managedFields)

const labelsOf = (l?: Record<string, string>) => (l ? { labels: l } : {});

export function namespace(name: string, labels?: Record<string, string>): Obj {
  return { apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels: { 'kubernetes.io/metadata.name': name, ...labels } }, spec: { finalizers: ['kubernetes'] }, status: { phase: 'Active' } };
}

export function node(name: string, internalIP: string): Obj {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name, labels: { 'kubernetes.io/hostname': name, 'kubernetes.io/os': 'linux' }, annotations: { 'node.alpha.kubernetes.io/ttl': '0' } },
    spec: { podCIDR: '198.18.0.0/24', podCIDRs: ['198.18.0.0/24'] },
    status: {
      addresses: [
        { type: 'InternalIP', address: internalIP },
        { type: 'Hostname', address: name },
      ],
      conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'kubelet is posting ready status', lastHeartbeatTime: '2026-01-01T00:00:00Z', lastTransitionTime: '2026-01-01T00:00:00Z' }],
      nodeInfo: { kernelVersion: '6.1.0-18-amd64', kubeletVersion: 'v1.31.0', containerRuntimeVersion: 'containerd://1.7.0', osImage: 'Debian GNU/Linux 12 (bookworm)', architecture: 'amd64', operatingSystem: 'linux', bootID: '', machineID: '', systemUUID: '' },
      capacity: { cpu: '2', memory: '4026532Ki', pods: '110' },
    },
  };
}

export function pod(ns: string, name: string, ip: string, labels: Record<string, string>, o: { ready?: boolean; nodeName?: string; ports?: { name: string; containerPort: number }[] } = {}): Obj {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: ns, ...labelsOf(labels), annotations: { 'kubectl.kubernetes.io/restartedAt': '2026-01-01T00:00:00Z' }, ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: `${name}-rs`, uid: randomUUID(), controller: true, blockOwnerDeletion: true }] },
    spec: {
      nodeName: o.nodeName ?? 'node-a',
      serviceAccountName: 'default',
      serviceAccount: 'default',
      containers: [{ name: 'app', image: 'registry.example/app:1', ports: (o.ports ?? []).map((p) => ({ ...p, protocol: 'TCP' })), resources: {}, terminationMessagePath: '/dev/termination-log', terminationMessagePolicy: 'File', imagePullPolicy: 'IfNotPresent' }],
      restartPolicy: 'Always',
      terminationGracePeriodSeconds: 30,
      dnsPolicy: 'ClusterFirst',
      schedulerName: 'default-scheduler',
      tolerations: [{ key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 }],
    },
    status: {
      phase: 'Running',
      conditions: [
        { type: 'Initialized', status: 'True', lastTransitionTime: '2026-01-01T00:00:00Z' },
        { type: 'Ready', status: o.ready === false ? 'False' : 'True', lastTransitionTime: '2026-01-01T00:00:00Z' },
      ],
      hostIP: '198.18.0.1',
      podIP: ip,
      podIPs: [{ ip }],
      startTime: '2026-01-01T00:00:00Z',
      containerStatuses: [{ name: 'app', ready: o.ready !== false, restartCount: 0, image: 'registry.example/app:1', imageID: 'registry.example/app@sha256:00', containerID: 'containerd://00', started: true, state: { running: { startedAt: '2026-01-01T00:00:00Z' } } }],
      qosClass: 'BestEffort',
    },
  };
}

export function service(ns: string, name: string, clusterIP: string, ports: { name?: string; port: number; targetPort?: number | string; protocol?: string; nodePort?: number }[], o: { type?: string; selector?: Record<string, string>; labels?: Record<string, string> } = {}): Obj {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: ns, ...labelsOf(o.labels), annotations: { 'kubectl.kubernetes.io/last-applied-configuration': '{}' } },
    spec: {
      type: o.type ?? 'ClusterIP',
      clusterIP,
      clusterIPs: [clusterIP],
      ipFamilies: ['IPv4'],
      ipFamilyPolicy: 'SingleStack',
      internalTrafficPolicy: 'Cluster',
      ...(o.type === 'NodePort' ? { externalTrafficPolicy: 'Cluster' } : {}),
      sessionAffinity: 'None',
      ...(o.selector ? { selector: o.selector } : {}),
      ports: ports.map((p) => ({ name: p.name ?? '', protocol: p.protocol ?? 'TCP', port: p.port, targetPort: p.targetPort ?? p.port, ...(p.nodePort ? { nodePort: p.nodePort } : {}) })),
    },
    status: { loadBalancer: {} },
  };
}

export function endpointSlice(ns: string, service: string, suffix: string, ports: { name?: string; port: number; protocol?: string }[], endpoints: { ip: string; ready?: boolean; serving?: boolean; terminating?: boolean; pod?: string }[]): Obj {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: `${service}-${suffix}`, namespace: ns, labels: { 'kubernetes.io/service-name': service, 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io' }, generateName: `${service}-`, ownerReferences: [{ apiVersion: 'v1', kind: 'Service', name: service, uid: randomUUID(), controller: true, blockOwnerDeletion: true }] },
    addressType: 'IPv4',
    endpoints: endpoints.map((e) => ({
      addresses: [e.ip],
      conditions: { ready: e.ready ?? true, serving: e.serving ?? e.ready ?? true, terminating: e.terminating ?? false },
      nodeName: 'node-a',
      ...(e.pod ? { targetRef: { kind: 'Pod', namespace: ns, name: e.pod, uid: randomUUID() } } : {}),
    })),
    ports: ports.map((p) => ({ name: p.name ?? '', protocol: p.protocol ?? 'TCP', port: p.port })),
  };
}

export function networkPolicy(ns: string, name: string, spec: Obj): Obj {
  return { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name, namespace: ns, annotations: { 'kubectl.kubernetes.io/last-applied-configuration': '{}' } }, spec };
}
