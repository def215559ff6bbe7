// One informer (list, then watch) per kind through @kubernetes/client-node 1.x: the only file that
// imports it. Its ListWatch relists on 410 and rewatches when a stream ends, but on any other error
// (API server unreachable, 403, a reset connection) it emits `error` and stops: each one here is
// restarted with exponential backoff (1 s doubling to 30 s), and the agent is told so it can report
// the error and diff the maps in full once the kind is back.
// Lists are made as kube-proxy's reflector makes them: a GET of the collection in pages of 500
// (`limit`, then `continue` to the end) through client-node's own authentication, read as plain JSON,
// not through the generated typed API (which fetches the whole list in one response and turns it
// into model objects first). Each page's objects are slimmed as the page arrives (the ListWatch's
// list function is this; its watch callback is wrapped), so neither its cache nor the agent's holds
// managedFields or whole specs, and a page's full objects can be collected before the next one. Watches
// ask for BOOKMARKs and end after a random 5–10 min (timeoutSeconds), as client-go's reflector does:
// a bookmark moves the resourceVersion on, so a rewatch after a quiet spell is not a 410 and a relist.
import { request as httpRequest, type RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { KubeConfig, ListWatch, Watch, type KubernetesObject } from '@kubernetes/client-node';
import { slim, type Kind } from './slim.js';

type Obj = Record<string, unknown>;

/** What an informer tells the agent. */
export interface InformerEvents {
  /** an object added or changed (already slimmed) */
  upsert(kind: Kind, o: Obj): void;
  /** an object deleted */
  remove(kind: Kind, o: Obj): void;
  /** the kind's list finished (first time: the cache is synced; later: a relist after 410 or an outage) */
  listed(kind: Kind, relist: boolean): void;
  /** the list or watch failed; the informer is restarted after `retryMs` */
  failed(kind: Kind, verb: 'list' | 'watch', err: ApiError, retryMs: number): void;
  /** a list or watch succeeded again after failures */
  recovered(kind: Kind): void;
  /** the kind is not served by this API server (CiliumNetworkPolicy without its CRD) */
  absent(kind: Kind): void;
  /** a watch event that changes no object (BOOKMARK) */
  bookmark?(kind: Kind): void;
}

/** An API failure reduced to what the log line needs. */
export interface ApiError {
  /** HTTP status, or undefined when there was no response */
  status?: number;
  message: string;
}

interface KindSpec {
  kind: Kind;
  path: string;
  /** resource name for messages (RBAC's spelling) */
  resource: string;
}

const SPECS: KindSpec[] = [
  { kind: 'Namespace', path: '/api/v1/namespaces', resource: 'namespaces' },
  { kind: 'Node', path: '/api/v1/nodes', resource: 'nodes' },
  { kind: 'Pod', path: '/api/v1/pods', resource: 'pods' },
  { kind: 'Service', path: '/api/v1/services', resource: 'services' },
  { kind: 'EndpointSlice', path: '/apis/discovery.k8s.io/v1/endpointslices', resource: 'endpointslices.discovery.k8s.io' },
  { kind: 'NetworkPolicy', path: '/apis/networking.k8s.io/v1/networkpolicies', resource: 'networkpolicies.networking.k8s.io' },
  { kind: 'CiliumNetworkPolicy', path: '/apis/cilium.io/v2/ciliumnetworkpolicies', resource: 'ciliumnetworkpolicies.cilium.io' },
];

/** Objects per list page: client-go's reflector (and so kube-proxy) pages with 500. */
export const LIST_PAGE = 500;
/** A list body larger than this is refused (kube-apiserver's own response limit is about 2 GiB; 500 objects are a few MiB). */
const MAX_PAGE_BYTES = 256 * 1024 * 1024;
/** Restarts of a paginated list whose continue token expired (410) before it falls back to one unpaginated list, as client-go's pager does. */
const MAX_EXPIRED_RESTARTS = 3;

/** A failed request in the shape of client-node's ApiException (`code`: HTTP status, `body`: the Status text), so apiError() and ListWatch (410) read it alike. */
export class ListError extends Error {
  constructor(
    readonly code: number,
    readonly body: string,
  ) {
    super(`HTTP-Code: ${code}\nMessage: list failed\nBody: ${body}`);
  }
}

/**
 * GET one page of a collection as plain JSON through client-node's own authentication
 * (applyToHTTPSOptions: the kubeconfig's TLS, client certificates, token or exec plugin, proxy).
 */
async function getPage(kc: KubeConfig, path: string, query: URLSearchParams): Promise<{ items?: unknown; metadata?: { resourceVersion?: unknown; continue?: unknown } }> {
  const server = kc.getCurrentCluster()?.server;
  if (!server) throw new Error('the kubeconfig has no current cluster: set current-context to a context whose cluster has a server');
  const url = new URL(`${server.replace(/\/+$/, '')}${path}?${query.toString()}`);
  const opts: RequestOptions & { headers: Record<string, string> } = { method: 'GET', headers: { Accept: 'application/json' } };
  await kc.applyToHTTPSOptions(opts);
  return new Promise((resolve, reject) => {
    const req = (url.protocol === 'http:' ? httpRequest : httpsRequest)(url, opts, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > MAX_PAGE_BYTES) {
          req.destroy();
          reject(new Error(`a list page of ${path} is larger than ${MAX_PAGE_BYTES} bytes: refused`));
          return;
        }
        chunks.push(c);
      });
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        chunks.length = 0;
        if (res.statusCode !== 200) return reject(new ListError(res.statusCode ?? 0, text));
        try {
          resolve(JSON.parse(text) as never);
        } catch {
          reject(new Error(`the list of ${path} is not JSON (HTTP 200, ${text.length} bytes)`));
        }
      });
    });
    req.on('error', reject);
    req.end();
  });
}

/**
 * The whole collection as kube-proxy's reflector lists it: pages of LIST_PAGE objects, following
 * `continue` to the end, each page's items slimmed as it arrives (its full objects can then be
 * collected); the list's resourceVersion is the last page's. A continue token that expired (410)
 * restarts the list from the start; after MAX_EXPIRED_RESTARTS, one unpaginated list (client-go's
 * pager falls back to a full list the same way). Any other failure throws a ListError (status and
 * Status body) or the socket's error (ECONNREFUSED …), as client-node's typed calls did.
 */
export async function listAll(kc: KubeConfig, kind: Kind, path: string, pageSize = LIST_PAGE): Promise<{ items: Obj[]; metadata: { resourceVersion?: string }; pages: number }> {
  let pages = 0;
  for (let restart = 0; ; restart++) {
    const limit = restart > MAX_EXPIRED_RESTARTS ? 0 : pageSize;
    const items: Obj[] = [];
    let cont = '';
    let rv: string | undefined;
    try {
      do {
        const q = new URLSearchParams();
        if (limit > 0) q.set('limit', String(limit));
        if (cont) q.set('continue', cont);
        const page = await getPage(kc, path, q);
        pages++;
        if (page === null || typeof page !== 'object' || !Array.isArray(page.items)) throw new Error(`the list of ${path} has no items array`);
        for (const o of page.items as unknown[]) items.push(slim(kind, o, true));
        rv = typeof page.metadata?.resourceVersion === 'string' ? page.metadata.resourceVersion : undefined;
        cont = typeof page.metadata?.continue === 'string' ? page.metadata.continue : '';
      } while (cont !== '' && limit > 0);
      return { items, metadata: { resourceVersion: rv }, pages };
    } catch (err) {
      // an expired continue token: the list so far is dropped and made again from the start
      if (cont !== '' && err instanceof ListError && err.code === 410) continue;
      throw err;
    }
  }
}

/** The resource name RBAC uses for a kind ("endpointslices.discovery.k8s.io"). */
export const resourceOf = (kind: Kind): string => SPECS.find((s) => s.kind === kind)!.resource;

/** HTTP status and message of whatever client-node threw (ApiException has `code` and a Status `body`). */
export function apiError(err: unknown): ApiError {
  const e = err as { code?: unknown; statusCode?: unknown; body?: unknown; message?: unknown; cause?: { code?: unknown } };
  const status = typeof e.code === 'number' ? e.code : typeof e.statusCode === 'number' ? e.statusCode : undefined;
  let message = typeof e.message === 'string' ? e.message.split('\n')[0]! : String(err);
  const body = typeof e.body === 'string' ? safeJson(e.body) : e.body;
  if (body && typeof (body as Obj).message === 'string') message = (body as Obj).message as string;
  else if (typeof e.cause?.code === 'string') message = e.cause.code;
  else if (/ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH/.exec(message)) message = /ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH/.exec(message)![0];
  return status === undefined ? { message } : { status, message };
}

function safeJson(s: string): unknown {
  try {
    return JSON.parse(s);
  } catch {
    return undefined;
  }
}

const BACKOFF_MIN_MS = 1000;
const BACKOFF_MAX_MS = 30_000;
/** client-go's reflector: minWatchTimeout 5 min, each watch's timeoutSeconds random in [5, 10) min */
const WATCH_TIMEOUT_MIN_S = 300;

type WatchCallback = (phase: string, obj: unknown, watchObj?: unknown) => void;

/** client-node's Watch with bookmarks and timeoutSeconds asked for, and ADDED/MODIFIED/DELETED objects slimmed before the cache sees them. */
class SlimWatch extends Watch {
  constructor(
    kc: KubeConfig,
    private readonly kind: Kind,
    private readonly onBookmark: () => void,
  ) {
    super(kc);
  }

  override watch(path: string, queryParams: Record<string, string | number | boolean | undefined>, callback: WatchCallback, done: (err: unknown) => void): Promise<AbortController> {
    const q = { ...queryParams, allowWatchBookmarks: true, timeoutSeconds: WATCH_TIMEOUT_MIN_S + Math.floor(Math.random() * WATCH_TIMEOUT_MIN_S) };
    return super.watch(
      path,
      q,
      (phase, obj, watchObj) => {
        if (phase === 'ADDED' || phase === 'MODIFIED' || phase === 'DELETED') return callback(phase, slim(this.kind, obj, true), watchObj);
        if (phase === 'BOOKMARK') this.onBookmark();
        return callback(phase, obj, watchObj);
      },
      done,
    );
  }
}

/** One kind's informer, restarted with backoff whenever it stops on an error. */
class KindInformer {
  private informer: ListWatch<KubernetesObject>;
  private lists = 0;
  private failures = 0;
  private phase: 'list' | 'watch' = 'list';
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly spec: KindSpec,
    kc: KubeConfig,
    private readonly ev: InformerEvents,
  ) {
    const listFn = async () => {
      this.phase = 'list';
      // slimmed page by page, before the ListWatch caches the items
      const r = await listAll(kc, spec.kind, spec.path);
      const slimmed = { metadata: r.metadata, items: r.items };
      this.lists++;
      this.phase = 'watch';
      // the cache adds the items right after this returns; the agent syncs on a later tick
      queueMicrotask(() => {
        this.ok();
        this.ev.listed(spec.kind, this.lists > 1);
      });
      return slimmed as never;
    };
    this.informer = new ListWatch(spec.path, new SlimWatch(kc, spec.kind, () => this.ev.bookmark?.(spec.kind)), listFn, false);
    this.informer.on('add', (o) => this.event(() => this.ev.upsert(spec.kind, o as unknown as Obj)));
    this.informer.on('update', (o) => this.event(() => this.ev.upsert(spec.kind, o as unknown as Obj)));
    this.informer.on('delete', (o) => this.event(() => this.ev.remove(spec.kind, o as unknown as Obj)));
    this.informer.on('error', (err: unknown) => this.error(err));
  }

  private event(f: () => void): void {
    this.ok();
    f();
  }

  private ok(): void {
    if (this.failures > 0) {
      this.failures = 0;
      this.ev.recovered(this.spec.kind);
    }
  }

  private error(err: unknown): void {
    if (this.stopped) return;
    const e = apiError(err);
    if (this.spec.kind === 'CiliumNetworkPolicy' && e.status === 404 && this.lists === 0) {
      this.ev.absent(this.spec.kind);
      return;
    }
    this.failures++;
    const retryMs = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** (this.failures - 1));
    this.ev.failed(this.spec.kind, this.lists === 0 ? 'list' : this.phase, e, retryMs);
    this.timer = setTimeout(() => void this.start(), retryMs);
  }

  async start(): Promise<void> {
    if (this.stopped) return;
    const before = this.failures;
    await this.informer.start();
    // a watch that resumed from its resourceVersion after failures: no list, maybe no event; it is back
    if (before > 0 && this.failures === before && this.lists > 0) this.ok();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.informer.stop();
  }

  /** What the ListWatch's own cache holds (tests: slimmed objects only). */
  cached(): readonly KubernetesObject[] {
    return this.informer.list();
  }

  get kind(): Kind {
    return this.spec.kind;
  }
}

/** The informers of every kind the agent watches. */
export class Informers {
  private readonly kinds: KindInformer[];

  constructor(kc: KubeConfig, ev: InformerEvents) {
    this.kinds = SPECS.map((s) => new KindInformer(s, kc, ev));
  }

  /** The kinds, in the order they are started. */
  static readonly KINDS: readonly Kind[] = SPECS.map((s) => s.kind);

  start(): void {
    for (const k of this.kinds) void k.start();
  }

  /** The objects client-node's cache holds for a kind. */
  cached(kind: Kind): readonly KubernetesObject[] {
    return this.kinds.find((k) => k.kind === kind)!.cached();
  }

  async stop(): Promise<void> {
    await Promise.all(this.kinds.map((k) => k.stop()));
  }
}

/** A KubeConfig from a file, or in-cluster (service-account token, KUBERNETES_SERVICE_HOST/PORT). */
export function loadKubeConfig(file: string | undefined): KubeConfig {
  const kc = new KubeConfig();
  if (file) kc.loadFromFile(file);
  else kc.loadFromCluster();
  return kc;
}
